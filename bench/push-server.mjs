/**
 * The server for bench/push.ts, run as its own process: what `radius-mfa serve` builds (config file,
 * SQLite store with its user cache, in-memory state, pino to stdout, RADIUS + HTTP), with one
 * difference: the PushSender hands each push (token, request id) to the bench over the IPC channel
 * instead of FCM, so the bench's simulated phones learn their request ids the way a phone does from
 * an FCM data message, without 10,000 polls of /pending.
 *
 * Plain JavaScript on purpose: with dist/ it runs as `node bench/push-server.mjs CONFIG`, as the
 * product does, with no tsx loader. A loader runs in a thread of its own whose garbage collections
 * shared the server's pinned core and showed up in the approve-to-Accept tail.
 * With BENCH_PUSH_FROM_SRC=1 it imports src/ and needs `--import tsx`. Stops on SIGTERM.
 */
const root = process.env.BENCH_PUSH_FROM_SRC === '1' ? '../src' : '../dist';
const load = await import(`${root}/config/load.js`);
const { buildApp } = await import(`${root}/app.js`);
const { createLogger } = await import(`${root}/log/logger.js`);
const { resolveEncryptionKey } = await import(`${root}/store/secret-box.js`);
const { MemoryState } = await import(`${root}/state/memory.js`);
const { openSqliteStore } = await import(`${root}/store/sqlite.js`);

const configPath = process.argv[2];
if (!configPath || !process.send) throw new Error('usage: bench/push.ts runs this with a config path and an IPC channel');
const loaded = load.loadConfig(configPath);
if (!loaded.ok) throw new Error(load.formatIssues(loaded.issues));
const config = loaded.config;
const logger = createLogger(config.log.level);
const store = openSqliteStore(config.store, resolveEncryptionKey(config.store).key);
const state = new MemoryState(Date.now);
/** @type {import('../src/mfa/push-sender.js').PushSender} */
const pushSender = {
  async send(token, message) {
    process.send([token, message.requestId]);
    return { ok: true };
  },
};
// BENCH_PUSH_GC_LOG=FILE: every GC pause as "start_epoch_ms,duration_ms,kind", to line up with the approver's times.
if (process.env.BENCH_PUSH_GC_LOG) {
  const { PerformanceObserver } = await import('node:perf_hooks');
  const { appendFileSync } = await import('node:fs');
  const file = process.env.BENCH_PUSH_GC_LOG;
  new PerformanceObserver((list) => {
    appendFileSync(file, list.getEntries().map((e) => `${(performance.timeOrigin + e.startTime).toFixed(3)},${e.duration.toFixed(3)},${e.detail?.kind}\n`).join(''));
  }).observe({ type: 'gc' });
}
const app = buildApp(config, { store, state, logger, pushSender });
logger.warn({ listen: await app.start(), from: root }, 'bench push server listening');
// The bench holds the other end of the IPC channel: if it dies, this server must not linger.
process.once('disconnect', () => process.exit(1));
process.once('SIGTERM', () => {
  void app.close().then(async () => {
    await state.close();
    store.close();
    process.exit(0);
  });
});
