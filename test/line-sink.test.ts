// The log's sink (src/log/line-sink.ts): lines written in one macrotask leave in one write at its end, and
// a pipe whose reader falls behind (EAGAIN on a non-blocking pipe) loses nothing and reorders nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { LineSink } from '../src/log/line-sink.js';

/** A FIFO with a reader (that reads only when told) and a non-blocking writer, as line-sink.ts opens stdout. */
function nonBlockingPipe(t: { after(fn: () => void): void }): { reader: number; writer: number; fifo: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'line-sink-'));
  const fifo = join(dir, 'fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  t.after(() => {
    closeSync(reader);
    try {
      closeSync(writer);
    } catch {
      // closed by the test
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return { reader, writer, fifo, dir };
}

function readAvailable(fd: number, into: string[]): void {
  const chunk = Buffer.alloc(65536);
  for (;;) {
    let n = 0;
    try {
      n = readSync(fd, chunk, 0, chunk.length, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return;
      throw err;
    }
    if (n === 0) return;
    into.push(chunk.toString('latin1', 0, n));
  }
}

test('lines of one macrotask are written together at its end, not one by one', async (t) => {
  const { reader, writer } = nonBlockingPipe(t);
  const sink = new LineSink(writer);
  const got: string[] = [];
  for (let i = 0; i < 100; i++) sink.write(`{"n":${i}}\n`);
  readAvailable(reader, got);
  assert.deepEqual(got, [], 'written before the macrotask ended');
  await nextTurn();
  readAvailable(reader, got);
  assert.equal(got.join(''), Array.from({ length: 100 }, (_, i) => `{"n":${i}}\n`).join(''));
});

const LINES = 50_000; // ~3 MB: many times a pipe's 64 KiB
const line = (i: number) => `{"level":"info","q":${i},"user":"someone-with-a-longer-name"}\n`;
const ALL = Array.from({ length: LINES }, (_, i) => line(i)).join('');

test('a pipe whose reader falls behind (EAGAIN): every line arrives, in order', async (t) => {
  const { reader, writer } = nonBlockingPipe(t);
  const sink = new LineSink(writer);
  const got: string[] = [];
  for (let i = 0; i < LINES; i++) {
    sink.write(line(i));
    // The reader takes what is there now and then: far slower than the writer.
    if (i % 5000 === 4999) {
      await nextTurn();
      readAvailable(reader, got);
    }
  }
  const deadline = Date.now() + 10_000;
  while (got.join('').length < ALL.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1));
    readAvailable(reader, got);
  }
  assert.ok(got.join('') === ALL, `${got.join('').length} of ${ALL.length} bytes, or out of order`);
});

test('flushSync (exit, SIGTERM) writes everything still buffered, waiting for a slow reader', (t) => {
  const { writer, fifo, dir } = nonBlockingPipe(t);
  const out = join(dir, 'out');
  // Another process reads, after a pause: this thread is blocked in flushSync meanwhile.
  const cat = spawn('sh', ['-c', `sleep 0.3; cat < '${fifo}' > '${out}'`], { stdio: 'ignore' });
  const sink = new LineSink(writer);
  for (let i = 0; i < LINES; i++) sink.write(line(i));
  sink.flushSync();
  closeSync(writer);
  return new Promise<void>((resolve) => cat.once('exit', () => resolve())).then(() => assert.ok(readFileSync(out, 'latin1') === ALL, 'lines lost or out of order'));
});

test('a reader that takes nothing holds flushSync (and the exit) for stallLimitMs at most; the lines lost are counted on stderr', async (t) => {
  const { fifo } = nonBlockingPipe(t); // the reader end stays open and is never read
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', `
    import { openSync, constants } from 'node:fs';
    import { LineSink } from ${JSON.stringify(new URL('../src/log/line-sink.ts', import.meta.url).href)};
    const sink = new LineSink(openSync(${JSON.stringify(fifo)}, constants.O_WRONLY | constants.O_NONBLOCK), 300);
    for (let i = 0; i < 10000; i++) sink.write('line ' + String(i).padStart(5, '0') + ' '.repeat(40) + '\\n');
    sink.flushSync();
    process.stdout.write('returned\\n');
  `], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, stderr);
  assert.equal(stdout, 'returned\n');
  // 10,000 lines of 52 bytes; a pipe holds 64 KiB (1,260 lines): the rest is dropped, and said so.
  const m = /the log's reader took nothing for 300 ms: (\d+) log lines dropped/.exec(stderr);
  assert.ok(m, stderr);
  assert.ok(Number(m[1]) > 8000 && Number(m[1]) < 10000, m[1]);
});
