import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Database, SQLITE_DRIVER } from '../src/store/sqlite-driver.js';

// In a child process (a native abort would take the test runner with it): open, use and close
// databases and drop statements while allocating in an optimized function, as the store and the
// CLI do over a run. With better-sqlite3 12 on Node 24.21 this aborted within the first rounds
// (`Assertion failed: (env) != nullptr` in ~Statement/~Database, a GC outside a JS context).
const ROUNDS = 300;
const STATEMENTS = 50;

function churn(): void {
  const allocate = (n: number) => {
    let last: object | undefined;
    for (let i = 0; i < n; i++) last = { i, pair: [i, i + 1] };
    return last;
  };
  for (let round = 0; round < ROUNDS; round++) {
    const db = new Database(':memory:');
    for (let i = 0; i < STATEMENTS; i++) db.prepare('select ?').get(i);
    db.close();
    allocate(20_000);
  }
  process.stdout.write(`ok ${ROUNDS * STATEMENTS}\n`);
}

if (process.env.RADIUS_SQLITE_CHURN === '1') {
  churn();
} else {
  test('closed databases and dropped statements are collected without aborting the process', async (t) => {
    const version = (createRequire(import.meta.url)(`${SQLITE_DRIVER}/package.json`) as { version: string }).version;
    t.diagnostic(`node ${process.version} (Node-API ${process.versions.napi}): ${SQLITE_DRIVER} = better-sqlite3 ${version}`);
    const { code, signal, stdout, stderr } = await new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], { env: { ...process.env, RADIUS_SQLITE_CHURN: '1' }, timeout: 60_000 }, (err, stdout, stderr) => {
        const e = err as (Error & { code?: number; signal?: string }) | null;
        resolve({ code: e ? (e.code ?? null) : 0, signal: e?.signal ?? null, stdout, stderr });
      });
    });
    assert.deepEqual({ code, signal, stdout }, { code: 0, signal: null, stdout: `ok ${ROUNDS * STATEMENTS}\n` }, stderr.slice(-2000));
  });
}
