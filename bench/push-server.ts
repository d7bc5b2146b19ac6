/**
 * The server for bench/push.ts, run as its own process: what `radius-mfa serve` builds (config file,
 * SQLite store with its user cache, in-memory state, pino to stdout, RADIUS + HTTP), with one
 * difference: the PushSender hands each push (token, request id) to the bench over the IPC channel
 * instead of FCM, so the bench's simulated phones learn their request ids the way a phone does from
 * an FCM data message, without 10,000 polls of /pending.
 *
 * Runs dist/ (npm run build), or src/ when BENCH_PUSH_FROM_SRC=1. Stops on SIGTERM.
 *   node --import tsx bench/push-server.ts CONFIG
 */
import type { App } from '../src/app.js';
import type * as Load from '../src/config/load.js';
import type * as Logger from '../src/log/logger.js';
import type { PushSender } from '../src/mfa/push-sender.js';
import type * as SecretBox from '../src/mfa/secret-box.js';
import type * as Memory from '../src/state/memory.js';
import type * as Sqlite from '../src/store/sqlite.js';

const root = process.env.BENCH_PUSH_FROM_SRC === '1' ? '../src' : '../dist';
const load = (await import(`${root}/config/load.js`)) as typeof Load;
const { buildApp } = (await import(`${root}/app.js`)) as { buildApp: (...a: unknown[]) => App };
const { createLogger } = (await import(`${root}/log/logger.js`)) as typeof Logger;
const { resolveEncryptionKey } = (await import(`${root}/mfa/secret-box.js`)) as typeof SecretBox;
const { MemoryState } = (await import(`${root}/state/memory.js`)) as typeof Memory;
const { openSqliteStore } = (await import(`${root}/store/sqlite.js`)) as typeof Sqlite;

const configPath = process.argv[2];
if (!configPath || !process.send) throw new Error('usage: bench/push.ts runs this with a config path and an IPC channel');
const loaded = load.loadConfig(configPath);
if (!loaded.ok) throw new Error(load.formatIssues(loaded.issues));
const config = loaded.config;
const logger = createLogger(config.log.level);
const store = openSqliteStore(config.store, resolveEncryptionKey(config.store).key);
const state = new MemoryState(Date.now);
const pushSender: PushSender = {
  async send(token, message) {
    process.send!([token, message.requestId]);
    return { ok: true };
  },
};
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
