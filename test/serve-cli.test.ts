// `radius-mfa serve` as an admin runs it: a child process on a config file, JSON logs on stdout,
// SIGHUP reloads (a broken file keeps the running config), SIGTERM stops it with exit code 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSqliteStore } from '../src/store/sqlite.js';
import { radclient } from './helpers/radclient.js';
import { enrollTotp, type EnrolledUser } from './helpers/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PASSWORD = 'Serve-Test-Passw0rd';

function configYaml(dir: string, key: string, secret: string): string {
  return `# written by test/serve-cli.test.ts
listen:
  auth: "127.0.0.1:0"
  acct: "127.0.0.1:0"
clients:
  - name: test-nas
    address: 127.0.0.1
    secret: "${secret}"
first_factor:
  type: local
mfa:
  reject_delay: 0
store:
  path: "${join(dir, 'users.db')}"
  encryption_key: "${key}"
log:
  level: info
`;
}

type LogLine = Record<string, unknown> & { msg?: string };

/** Replaces the file in one rename, as deploy tools do, so that the watcher never reads half a file. */
function writeAtomically(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

test('serve: listens, survives a broken config on SIGHUP, applies a new client secret on SIGHUP, exits 0 on SIGTERM', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-serve-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const configPath = join(dir, 'config.yaml');
  const keyHex = randomBytes(32).toString('hex');
  const oldSecret = `old-secret-${randomBytes(6).toString('hex')}`;
  const newSecret = `new-secret-${randomBytes(6).toString('hex')}`;
  writeAtomically(configPath, configYaml(dir, keyHex, oldSecret));

  // Users go in before the server starts (the same store file and key the config names).
  const store = openSqliteStore({ type: 'sqlite', path: join(dir, 'users.db') }, Buffer.from(keyHex, 'hex'));
  const users: Record<string, EnrolledUser> = {};
  for (const name of ['alice', 'bob', 'carol']) users[name] = await enrollTotp(store, name, { password: PASSWORD });
  store.close();

  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', '--config', configPath, 'serve'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RADIUS_MFA_CONFIG: '' },
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines: LogLine[] = [];
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    let nl;
    while ((nl = stdout.indexOf('\n')) >= 0) {
      const line = stdout.slice(0, nl);
      stdout = stdout.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        lines.push({ msg: `(not JSON) ${line}` });
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const output = () => `stdout:\n${lines.map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${stderr}`;

  /** The first log line (after `from`) that matches; polls every 10 ms, at most `timeoutMs`. */
  const waitForLine = async (match: (l: LogLine) => boolean, from = 0, timeoutMs = 20_000): Promise<LogLine> => {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 5000 && Date.now() < deadline; i++) {
      const hit = lines.slice(from).find(match);
      if (hit) return hit;
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`no matching log line within ${timeoutMs} ms (exit code ${child.exitCode})\n${output()}`);
  };

  const listening = await waitForLine((l) => l.msg === 'listening');
  const bound = listening.listen as { role: string; address: string; port: number }[];
  const authPort = bound.find((b) => b.role === 'auth')!.port;
  assert.ok(authPort > 0, `no auth port in ${JSON.stringify(listening)}`);
  const ask = (user: string, secret: string, timeout = 5) =>
    radclient({ 'User-Name': user, 'User-Password': PASSWORD + users[user]!.codeAt(Date.now()) }, { port: authPort, secret, timeout });

  const first = await ask('alice', oldSecret);
  assert.equal(first.code, 'Access-Accept', `${first.stdout}\n${output()}`);

  // A syntax error: reported with file and line, and the running config stays.
  let mark = lines.length;
  writeAtomically(configPath, `${configYaml(dir, keyHex, newSecret)}clients: [unclosed\n`);
  child.kill('SIGHUP');
  const failed = await waitForLine((l) => l.trigger === 'SIGHUP' && /reload failed/.test(String(l.msg)), mark);
  assert.equal(failed.level, 'error');
  assert.match(JSON.stringify(failed.issues), new RegExp(`${configPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+`));
  const stillOld = await ask('bob', oldSecret);
  assert.equal(stillOld.code, 'Access-Accept', `the running config did not stay: ${stillOld.stdout}\n${output()}`);

  // A valid change: the new client secret applies at once.
  mark = lines.length;
  writeAtomically(configPath, configYaml(dir, keyHex, newSecret));
  child.kill('SIGHUP');
  const reloaded = await waitForLine((l) => l.trigger === 'SIGHUP' && /^config reloaded/.test(String(l.msg)), mark);
  assert.equal(reloaded.level, 'info');
  const withNew = await ask('carol', newSecret);
  assert.equal(withNew.code, 'Access-Accept', `${withNew.stdout}\n${output()}`);
  const withOld = await ask('alice', oldSecret, 0.5);
  assert.equal(withOld.code, 'timeout', 'the old secret still works after the reload');

  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([exited, new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), 10_000)))]);
  clearTimeout(timer);
  assert.notEqual(result, 'hung', `serve did not exit within 10 s of SIGTERM\n${output()}`);
  assert.deepEqual(result, { code: 0, signal: null }, output());
  assert.ok(lines.some((l) => l.msg === 'stopping' && l.signal === 'SIGTERM'), `no "stopping" line\n${output()}`);

  // The audit lines are there, and neither secret nor the password reached the output.
  assert.deepEqual(
    lines.filter((l) => l.audit === true).map((l) => [l.user, l.result]),
    [
      ['alice', 'accept'],
      ['bob', 'accept'],
      ['carol', 'accept'],
    ],
  );
  const all = `${lines.map((l) => JSON.stringify(l)).join('\n')}\n${stderr}`;
  for (const secret of [oldSecret, newSecret, PASSWORD]) assert.ok(!all.includes(secret), `a secret appears in the serve output`);
});
