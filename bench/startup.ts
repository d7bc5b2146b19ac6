// Start-up time: from spawning `node dist/cli.js --config CFG serve` to the first verified answer to a
// Status-Server (RFC 5997), as a NAS or a load balancer's health check sees a restart. Prints each run,
// the median, and the same for `node -e 0` (what Node itself takes here) for scale. A benchmark, not a test:
// `npm run build`, then `node --import tsx bench/startup.ts [--runs 7] [--first-factor none|local] [--cpu 0]`.
import { randomFillSync } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { hmacMd5Key } from '../src/radius/md5.js';
import { writeBenchConfig } from './config.js';
import { OURS_CLI, REPO } from './ours.js';
import { packetLength, verifyResponseAuthenticator, writeStatusServer } from './packet.js';
import { freeUdpPort } from './ports.js';
import { spawnOnCore } from './processes.js';

const { values: a } = parseArgs({ options: { runs: { type: 'string', default: '7' }, 'first-factor': { type: 'string', default: 'none' }, cpu: { type: 'string' } } });
const RUNS = Number(a.runs);
const CPU = a.cpu === undefined ? undefined : Number(a.cpu);
const SECRET = 'startup-bench-secret';
/** Give up on a run after this long (a broken build must not hang the bench). */
const LIMIT_MS = 20_000;
/** Status-Server every this many ms while waiting: the answer is seen within this of the server being ready. */
const PROBE_EVERY_MS = 2;

/** ms from spawn to the first verified Status-Server answer; the process is stopped afterwards. */
async function timeToFirstAnswer(cfg: string, port: number): Promise<number> {
  const secret = Buffer.from(SECRET);
  const key = hmacMd5Key(secret);
  const sock = createSocket('udp4');
  sock.on('error', () => undefined); // ICMP port unreachable until the server binds
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const buf = Buffer.alloc(38);
  const t0 = performance.now();
  const child = spawnOnCore(CPU, process.execPath, [OURS_CLI, '--config', cfg, 'serve'], { cwd: REPO, stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    return await new Promise<number>((resolve, reject) => {
      let id = 0;
      const sent = new Map<number, Buffer>();
      sock.on('message', (msg) => {
        const req = sent.get(msg[1]!);
        const n = packetLength(msg);
        if (req && n > 0 && verifyResponseAuthenticator(msg, n, req, 4, secret)) finish(() => resolve(performance.now() - t0));
      });
      const probe = setInterval(() => {
        id = (id + 1) & 255;
        randomFillSync(buf, 4, 16);
        writeStatusServer(buf, id, key);
        sent.set(id, Buffer.from(buf));
        sock.send(buf, port, '127.0.0.1');
      }, PROBE_EVERY_MS);
      const limit = setTimeout(() => finish(() => reject(new Error(`no answer within ${LIMIT_MS} ms`))), LIMIT_MS);
      void exited.then(() => finish(() => reject(new Error(`serve exited with ${child.exitCode} before answering`))));
      const finish = (then: () => void) => {
        clearInterval(probe);
        clearTimeout(limit);
        then();
      };
    });
  } finally {
    sock.close();
    child.kill('SIGTERM');
    await exited;
  }
}

async function nodeItself(): Promise<number> {
  const t0 = performance.now();
  const child = spawnOnCore(CPU, process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await new Promise((r) => child.once('exit', r));
  return performance.now() - t0;
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');

const dir = mkdtempSync(join(tmpdir(), 'bench-startup-'));
try {
  const port = await freeUdpPort();
  const cfg = writeBenchConfig(dir, { authPort: port, secret: SECRET, firstFactor: a['first-factor'] === 'local' ? 'local' : 'none', logLevel: 'info' });
  // The first start creates the store and its key file: timed, but reported apart.
  const first = await timeToFirstAnswer(cfg, port);
  const runs: number[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await timeToFirstAnswer(cfg, port));
  const bare: number[] = [];
  for (let i = 0; i < RUNS; i++) bare.push(await nodeItself());
  console.log(`start-up to the first answered Status-Server (first_factor ${a['first-factor']}, log info, ${CPU === undefined ? 'any core' : `core ${CPU}`}; load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')})`);
  console.log(`  first start (creates store + key): ${first.toFixed(0)} ms`);
  console.log(`  ${RUNS} starts: median ${median(runs).toFixed(0)} ms (${fmt(runs)})`);
  console.log(`  node -e 0 for scale: median ${median(bare).toFixed(0)} ms (${fmt(bare)})`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
