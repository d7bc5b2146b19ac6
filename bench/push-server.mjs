// A node of the push stages (bench/push.ts), one process each: what `radius-mfa serve` builds from the
// config (store and state as configured, pino to stdout, RADIUS + HTTP), with one difference: the
// PushSender hands each push to the bench over the IPC channel (['push', token, id]) instead of FCM, so
// the bench's simulated phones learn their request ids as from an FCM data message. On ['memory'] it
// collects fully (it runs with --expose-gc) and answers ['memory', process.memoryUsage()].
// Plain JavaScript on purpose: with dist/ it runs as `node bench/push-server.mjs CONFIG`, as the
// product does, with no tsx loader (whose own thread collected garbage on the server's pinned core).
// With BENCH_PUSH_FROM_SRC=1 it imports src/ and needs `--import tsx`. Stops on SIGTERM.
import { getHeapSpaceStatistics } from 'node:v8';

const root = process.env.BENCH_PUSH_FROM_SRC === '1' ? '../src' : '../dist';
const { loadConfig, formatIssues } = await import(`${root}/config/load.js`);
const { buildApp } = await import(`${root}/app.js`);
const { createLogger } = await import(`${root}/log/logger.js`);
const { resolveEncryptionKey } = await import(`${root}/store/secret-box.js`);
const { openStore } = await import(`${root}/store/open-store.js`);
const { openState } = await import(`${root}/state/open-state.js`);

if (!process.send || !globalThis.gc) throw new Error('usage: bench/push.ts runs this with --expose-gc, a config path and an IPC channel');
const loaded = loadConfig(process.argv[2]);
if (!loaded.ok) throw new Error(formatIssues(loaded.issues));
const config = loaded.config;
const logger = createLogger(config.log.level);
const key = resolveEncryptionKey(config.store).key;
const store = await openStore(config.store, key);
const state = await openState(config.state, { now: Date.now, sealKey: key, warn: (message) => logger.warn(message) });
/** @type {import('../src/mfa/push-sender.js').PushSender} */
const pushSender = {
  async send(token, message) {
    process.send(['push', token, message.requestId]);
    return { ok: true };
  },
};
const app = buildApp(config, { store, state, logger, pushSender });
logger.warn({ listen: await app.start(), from: root }, 'bench push server listening');
process.send(['up']); // RADIUS and HTTP both listen

process.on('message', ([kind]) => {
  if (kind !== 'memory') return;
  globalThis.gc();
  globalThis.gc(); // weak callbacks of the first free more
  // The young generation's committed size too: V8 grows it (up to 2 x 16 MiB) when many objects survive its scavenges.
  const young = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space');
  process.send(['memory', { ...process.memoryUsage(), youngCommitted: young?.space_size ?? 0 }]);
});
// The bench holds the other end of the IPC channel: if it dies, this server must not linger.
process.once('disconnect', () => process.exit(1));
process.once('SIGTERM', () => {
  void app.close().then(async () => {
    await state.close();
    await store.close();
    process.exit(0);
  });
});
