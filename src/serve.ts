// `radius-mfa serve`: load the config, open the store, run until SIGTERM/SIGINT, reload on SIGHUP or file change.
import { resolve } from 'node:path';
import { buildApp } from './app.js';
import { loadConfig, formatIssues } from './config/load.js';
import { watchConfig } from './config/watch.js';
import { createLogger } from './log/logger.js';
import { UserError } from './shared/errors.js';
import { createFirebasePushSender } from './mfa/push-sender.js';
import { resolveEncryptionKey } from './store/secret-box.js';
import { openState } from './state/open-state.js';
import type { Logger } from 'pino';
import { canonicalUsername, usernameRules } from './flow/username.js';
import { openStore } from './store/open-store.js';
import type { Store } from './store/store.js';
import { VERSION } from './version.js';

export async function serve(configPath: string): Promise<void> {
  const loaded = loadConfig(configPath);
  if (!loaded.ok) throw new UserError('CONFIG_INVALID', formatIssues(loaded.issues));
  const config = loaded.config;
  const logger = createLogger(config.log.level);
  for (const w of loaded.warnings) logger.warn({ config: configPath }, w);

  const key = resolveEncryptionKey(config.store);
  if (key.created) logger.warn({ key_file: key.source }, 'created a new store encryption key file (0600): back it up with the database, secrets cannot be read without it');
  const store = await openStore(config.store, key.key, { onIdleError: (err) => logger.warn({ err: err.message }, 'store: an idle PostgreSQL connection failed') });
  await warnOfStrayUsernames(store, config.usernames.realms, logger);
  const state = await openState(config.state, { now: Date.now, sealKey: key.key, warn: (message) => logger.warn(message) });
  const firebase = config.mobile_app.firebase;
  const pushSender = firebase ? await firebaseSender(firebase.service_account_file) : undefined;
  if (!firebase && !config.mobile_app.web_push && config.http) logger.info('no mobile_app.firebase or mobile_app.web_push: phones poll /api/v1/pending for sign-in requests');
  const app = buildApp(config, { store, state, logger, pushSender, configPath });
  try {
    const bound = await app.start();
    // pg and ioredis are loaded only for a config that uses them (start-up time): so are their URL printers.
    const storeUrl = config.store.type === 'postgres' ? (await import('./store/postgres.js')).describePostgresUrl(config.store.url!) : undefined;
    const stateUrl = config.state.type === 'redis' ? (await import('./state/redis.js')).describeRedisUrl(config.state.url!) : undefined;
    // One line that says what runs: the version, where it listens, and what it checks and keeps against.
    logger.info(
      {
        version: VERSION,
        node: process.version,
        listen: bound,
        config: configPath,
        first_factor: config.first_factor.type,
        store: {
          type: config.store.type,
          ...(storeUrl !== undefined
            ? { url: storeUrl }
            : { path: config.store.path === ':memory:' ? ':memory:' : resolve(config.store.path) }),
          key_from: key.source,
        },
        state: stateUrl !== undefined ? { type: 'redis', url: stateUrl, prefix: config.state.prefix, sentinel: config.state.sentinel?.name } : config.state.type,
      },
      'listening',
    );
  } catch (err) {
    await app.close();
    await store.close();
    throw err;
  }

  const reload = (trigger: string) => {
    const next = loadConfig(configPath);
    if (!next.ok) {
      logger.error({ trigger, issues: next.issues.map((i) => `${i.file}:${i.line}:${i.column} ${i.path}: ${i.message}`) }, 'config reload failed: the running config stays');
      return;
    }
    for (const w of next.warnings) logger.warn({ config: configPath }, w);
    const restart = app.reload(next.config);
    logger.info({ trigger, restart_needed: restart.length ? restart : undefined }, restart.length ? 'config reloaded; restart to apply the listed sections' : 'config reloaded');
  };
  const onHup = () => reload('SIGHUP');
  process.on('SIGHUP', onHup);
  const stopWatching = watchConfig(configPath, () => reload('file_change'));

  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info({ signal }, 'stopping');
  process.off('SIGHUP', onHup);
  stopWatching();
  await app.close();
  await state.close();
  await store.close();
  logger.flush();
}

/** FCM from the service account file; a file that is missing or not a service account key is the admin's to fix, not a bug. */
async function firebaseSender(file: string) {
  try {
    return await createFirebasePushSender({ serviceAccountFile: file });
  } catch (err) {
    const why = err instanceof SyntaxError ? 'is not JSON' : (err as Error).message;
    throw new UserError('SERVICE_ACCOUNT_INVALID', `mobile_app.firebase.service_account_file ${file}: ${why}`);
  }
}

/** Rows stored under another spelling (before canonical names) are never found: say so at start, with the fix. */
async function warnOfStrayUsernames(store: Store, realms: readonly string[], logger: Logger): Promise<void> {
  const rules = usernameRules(realms);
  const stray = (await store.listUsernames()).filter((name) => canonicalUsername(name, rules) !== name);
  if (stray.length === 0) return;
  logger.error(
    { users: stray.slice(0, 20), count: stray.length },
    'stored usernames not in canonical form (NFKC, trimmed, lower-case, usernames.realms removed) are never matched, so these users are rejected: remove them and add them again under the canonical name (radius-mfa user remove NAME, then user add / totp enroll)',
  );
}
