/**
 * The server for bench/push.ts, run as its own process: what `radius-mfa serve` builds (config file,
 * SQLite store with its user cache, in-memory state, pino to stdout, RADIUS + HTTP), with one
 * difference: the PushSender hands each push to the bench over the IPC channel (['push', token, id])
 * instead of FCM, so the bench's simulated phones learn their request ids as from an FCM data message.
 * Over the same channel the bench asks for ['memory'] (two full GCs, then process.memoryUsage(); the
 * process runs with --expose-gc) and, with BENCH_PUSH_PACED_PROFILE, ['profile', 'start' | FILE].
 *
 * Plain JavaScript on purpose: with dist/ it runs as `node bench/push-server.mjs CONFIG`, as the
 * product does, with no tsx loader (whose own thread collected garbage on the server's pinned core).
 * With BENCH_PUSH_FROM_SRC=1 it imports src/ and needs `--import tsx`. Stops on SIGTERM.
 */
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';

const root = process.env.BENCH_PUSH_FROM_SRC === '1' ? '../src' : '../dist';
const load = await import(`${root}/config/load.js`);
const { buildApp } = await import(`${root}/app.js`);
const { createLogger } = await import(`${root}/log/logger.js`);
const { resolveEncryptionKey } = await import(`${root}/store/secret-box.js`);
const { MemoryState } = await import(`${root}/state/memory.js`);
const { openSqliteStore } = await import(`${root}/store/sqlite.js`);

const configPath = process.argv[2];
if (!configPath || !process.send || !globalThis.gc) throw new Error('usage: bench/push.ts runs this with --expose-gc, a config path and an IPC channel');
const loaded = load.loadConfig(configPath);
if (!loaded.ok) throw new Error(load.formatIssues(loaded.issues));
const config = loaded.config;
const logger = createLogger(config.log.level);
const store = openSqliteStore(config.store, resolveEncryptionKey(config.store).key);
const state = new MemoryState(Date.now);
/** @type {import('../src/mfa/push-sender.js').PushSender} */
const pushSender = {
  async send(token, message) {
    process.send(['push', token, message.requestId]);
    return { ok: true };
  },
};
const app = buildApp(config, { store, state, logger, pushSender });
logger.warn({ listen: await app.start(), from: root }, 'bench push server listening');
process.send('up'); // RADIUS and HTTP both listen

const profiler = new Session();
process.on('message', async ([kind, arg]) => {
  if (kind === 'memory') {
    globalThis.gc();
    globalThis.gc(); // weak callbacks of the first free more
    process.send(['memory', process.memoryUsage()]);
  } else if (kind === 'profile' && arg === 'start') {
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
    await profiler.post('Profiler.start');
    process.send(['profile']);
  } else if (kind === 'profile') {
    writeFileSync(arg, JSON.stringify((await profiler.post('Profiler.stop')).profile));
    profiler.disconnect();
    process.send(['profile']);
  }
});
// The bench holds the other end of the IPC channel: if it dies, this server must not linger.
process.once('disconnect', () => process.exit(1));
process.once('SIGTERM', () => {
  void app.close().then(async () => {
    await state.close();
    store.close();
    process.exit(0);
  });
});
