// A real server for integration tests: real UDP sockets on loopback port 0, a real SQLite store on a
// temp file, in-memory state, an injected clock and every log line captured.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp, type App } from '../../src/app.js';
import { hashPassword } from '../../src/auth/password-hash.js';
import { configSchema, type Config, type Method } from '../../src/config/schema.js';
import { createLogger } from '../../src/log/logger.js';
import { encodeBase32 } from '../../src/mfa/totp-secret.js';
import { hotp, timeStep } from '../../src/mfa/totp.js';
import type { PushSender } from '../../src/mfa/push-sender.js';
import { MemoryState } from '../../src/state/memory.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { EphemeralState } from '../../src/state/state.js';
import type { Store } from '../../src/store/store.js';
import type { TotpAlgorithm } from '../../src/mfa/enrollment.js';

/** 2023-11-14T22:13:20Z: a fixed start, so codes and log timestamps are the same on every run. */
export const T0 = 1_700_000_000_000;

export interface TestClock {
  now: () => number;
  set(ms: number): void;
  advance(ms: number): void;
}

export function createClock(start = T0): TestClock {
  let t = start;
  return {
    now: () => t,
    set(ms) {
      t = ms;
    },
    advance(ms) {
      t += ms;
    },
  };
}

export type LogRecord = Record<string, unknown> & { level: string; msg?: string };

/** A pino destination that keeps every JSON line (the first `limit` of them) and counts lines by level. */
export class LogCapture {
  readonly lines: string[] = [];
  readonly counts: Record<string, number> = {};

  constructor(private readonly limit = Infinity) {}

  write(chunk: string): void {
    for (const line of chunk.split('\n')) {
      if (!line) continue;
      const level = /"level":"(\w+)"/.exec(line)?.[1] ?? 'unknown';
      this.counts[level] = (this.counts[level] ?? 0) + 1;
      if (this.lines.length < this.limit) this.lines.push(line);
    }
  }

  get records(): LogRecord[] {
    return this.lines.map((l) => JSON.parse(l) as LogRecord);
  }

  filter(match: Partial<LogRecord> | ((r: LogRecord) => boolean)): LogRecord[] {
    const pred = typeof match === 'function' ? match : (r: LogRecord) => Object.entries(match).every(([k, v]) => r[k] === v);
    return this.records.filter(pred);
  }

  /** Audit lines (one per Access-Request decision). */
  audits(user?: string): LogRecord[] {
    return this.filter((r) => r.audit === true && (user === undefined || r.user === user));
  }

  /** Resolves with the first line that matches, polling every 5 ms for at most `timeoutMs`. */
  async waitFor(match: Partial<LogRecord> | ((r: LogRecord) => boolean), timeoutMs = 3000): Promise<LogRecord> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
      const hit = this.filter(match)[0];
      if (hit) return hit;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`no log line matched within ${timeoutMs} ms; have:\n${this.lines.join('\n')}`);
  }
}

export type ConfigInput = Record<string, unknown>;

export interface StartOptions {
  /** Merged over the base config (objects deeply, arrays and scalars replaced) before configSchema.parse. */
  config?: ConfigInput;
  /** Listen host for auth and acct: '127.0.0.1' (default) or '::1'. */
  host?: string;
  /** Shared secret of the default client (random when not given). */
  secret?: string;
  start?: number;
  /** FCM delivery; default none (devices poll). */
  pushSender?: PushSender;
  /** The HTTPS agent Web Push goes through: one that trusts a local fake push service. */
  webPushAgent?: Agent;
  /** Keep at most this many log lines (all are still counted by level). Default: all. */
  logLimit?: number;
  /** Another store than a fresh SQLite file (e.g. PostgreSQL); the test server closes it. */
  openStore?: (config: Config, now: () => number) => Promise<Store>;
  /** Another state than memory (e.g. Redis); the test server closes it. */
  openState?: (config: Config, now: () => number) => Promise<EphemeralState>;
}

export interface TestServer {
  authPort: number;
  acctPort: number;
  /** 0 unless the config has `listen.radsec`. */
  radsecPort: number;
  /** 0 unless the config has `http`. */
  httpPort: number;
  /** 0 unless the config has `metrics`. */
  metricsPort: number;
  host: string;
  secret: string;
  config: Config;
  clock: TestClock;
  store: Store;
  state: EphemeralState;
  logs: LogCapture;
  app: App;
  close(): Promise<void>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function mergeConfig(base: ConfigInput, over: ConfigInput): ConfigInput {
  const out: ConfigInput = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isPlainObject(v) && isPlainObject(out[k]) ? mergeConfig(out[k] as ConfigInput, v) : v;
  }
  return out;
}

/** The config every test starts from: one client on the listen host, no reject delay (tests that need one set it). */
export function baseConfig(host: string, secret: string): ConfigInput {
  const hp = host.includes(':') ? `[${host}]:0` : `${host}:0`;
  return {
    listen: { auth: hp, acct: hp },
    clients: [{ name: 'test-nas', address: host, secret }],
    first_factor: { type: 'local' },
    mfa: { reject_delay: '0ms', lockout: { max_failures: 5, duration: '15m' } },
    log: { level: 'trace' },
  };
}

export async function startTestServer(opts: StartOptions = {}): Promise<TestServer> {
  const host = opts.host ?? '127.0.0.1';
  const secret = opts.secret ?? `test-secret-${randomBytes(8).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-test-'));
  const config = configSchema.parse(mergeConfig(mergeConfig(baseConfig(host, secret), { store: { path: join(dir, 'users.db') } }), opts.config ?? {}));
  const clock = createClock(opts.start ?? T0);
  const logs = new LogCapture(opts.logLimit);
  const logger = createLogger(config.log.level, logs);
  const store = opts.openStore ? await opts.openStore(config, clock.now) : openSqliteStore(config.store, randomBytes(32), { now: clock.now });
  const state = opts.openState ? await opts.openState(config, clock.now) : new MemoryState(clock.now);
  const app = buildApp(config, { store, state, logger, now: clock.now, pushSender: opts.pushSender, webPushAgent: opts.webPushAgent });
  let bound;
  try {
    bound = await app.start();
  } catch (err) {
    await app.close();
    await state.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const port = (role: 'auth' | 'acct' | 'radsec' | 'http' | 'metrics') => bound.find((b) => b.role === role)?.port ?? 0;
  let closed = false;
  return {
    authPort: port('auth'),
    acctPort: port('acct'),
    radsecPort: port('radsec'),
    httpPort: port('http'),
    metricsPort: port('metrics'),
    host,
    secret,
    config,
    clock,
    store,
    state,
    logs,
    app,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      await state.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TotpOptions {
  password?: string;
  method?: Method | null;
  /** Raw key; default 20 random bytes. */
  secret?: Buffer;
  digits?: 6 | 8;
  period?: number;
  algorithm?: TotpAlgorithm;
  /** false: the user gets no TOTP enrollment at all. */
  enroll?: boolean;
}

export interface EnrolledUser {
  username: string;
  password: string | undefined;
  secret: Buffer;
  base32: string;
  digits: 6 | 8;
  period: number;
  algorithm: TotpAlgorithm;
  /** The code for the step that contains `ms`. */
  codeAt(ms: number): string;
}

/** Adds a user with a known TOTP secret (and an argon2id password hash when a password is given). */
export async function enrollTotp(store: Store, username: string, opts: TotpOptions = {}): Promise<EnrolledUser> {
  const secret = opts.secret ?? randomBytes(20);
  const digits = opts.digits ?? 6;
  const period = opts.period ?? 30;
  const algorithm = opts.algorithm ?? 'SHA1';
  await store.addUser({
    username,
    method: opts.method ?? null,
    passwordHash: opts.password === undefined ? null : await hashPassword(opts.password),
    totp: opts.enroll === false ? null : { secret, algorithm, digits, period },
  });
  return {
    username,
    password: opts.password,
    secret,
    base32: encodeBase32(secret),
    digits,
    period,
    algorithm,
    codeAt: (ms) => codeAt(secret, ms, { digits, period, algorithm }),
  };
}

/** RFC 6238 code for the time step containing `ms`. */
export function codeAt(secret: Buffer, ms: number, opts: { digits?: number; period?: number; algorithm?: TotpAlgorithm } = {}): string {
  return hotp(secret, timeStep(ms, opts.period ?? 30), opts.digits ?? 6, opts.algorithm ?? 'SHA1');
}

/** A code of the right length that matches none of the steps the server accepts at `ms` (window ±`window`). */
export function wrongCodeAt(user: EnrolledUser, ms: number, window = 1): string {
  const valid = new Set<string>();
  for (let d = -window; d <= window; d++) valid.add(user.codeAt(ms + d * user.period * 1000));
  for (let n = 0; n < 100; n++) {
    const candidate = String(123_456 + n * 7_919).padStart(user.digits, '0').slice(-user.digits);
    if (!valid.has(candidate)) return candidate;
  }
  throw new Error('unreachable: 100 candidates all valid');
}
