// Ephemeral state in Redis (or Valkey), shared by every node that answers the same appliances: a code
// used at node A is a replay at node B, five failures spread over A and B lock the user on both.
// Every check-and-act is one atomic step on the server (a Lua script or GETDEL), never a read then a write.
import { readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config/schema.js';
import { openSecret, sealSecret } from '../store/secret-box.js';
import type { TotpEnrollment } from '../mfa/enrollment.js';
import type { PendingPushes } from '../mfa/pending.js';
import { RedisPendingPushes } from './redis-pushes.js';
import type { ChallengeRecord, EphemeralState } from './state.js';

// The counts, marks and TOTP claims on every request's path, each an atomic step of its own, sent in
// one script per turn of the event loop: one command to parse and answer for a batch of requests, not
// one each (docs/performance.md). KEYS[i] is the key of op i; ARGV[3i-2..3i] its name and arguments.
// An op that fails (a key of the wrong type) fails alone: its slot in the reply is an error.
// - count: the window starts at the first event: only the INCR that made the key (or a key somehow left
//   without an expiry) sets it; later events keep its end. PEXPIRE NX (Redis 7) would do the same; this
//   runs on 6.2 and Valkey too.
// - takeBack: DECR keeps the key's expiry; at zero the key goes, as the memory state forgets it.
// - claim: RFC 6238 §5.2: a step at or before the last accepted one is a replay, across every node.
// - mark: lasts at least ttl from now: a later, longer mark extends it; a shorter one never cuts it.
const STATE_OPS = `
local function run(op, key, a, b)
  if op == 'count' then
    local n = redis.call('INCR', key)
    if n == 1 or redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, a) end
    return n
  elseif op == 'takeBack' then
    local n = redis.call('DECR', key)
    if n <= 0 then redis.call('DEL', key) end
    return n
  elseif op == 'claim' then
    local last = redis.call('GET', key)
    if last and tonumber(last) >= tonumber(a) then return 0 end
    redis.call('SET', key, a, 'PX', b)
    return 1
  elseif op == 'mark' then
    if redis.call('PTTL', key) < tonumber(a) then redis.call('SET', key, '1', 'PX', a) end
    return 1
  elseif op == 'exists' then
    return redis.call('EXISTS', key)
  elseif op == 'del' then
    return redis.call('DEL', key)
  end
  error('unknown op ' .. tostring(op))
end
local out = {}
for i, key in ipairs(KEYS) do
  local ok, r = pcall(run, ARGV[3 * i - 2], key, ARGV[3 * i - 1], ARGV[3 * i])
  if ok then out[i] = r else out[i] = { err = type(r) == 'table' and r.err or tostring(r) } end
end
return out`;

type StateOp = 'count' | 'takeBack' | 'claim' | 'mark' | 'exists' | 'del';

interface Commands {
  /** numberOfKeys, then the keys, then three arguments per key (STATE_OPS). */
  stateOps(...keysThenArgs: Array<string | number>): Promise<Array<number | Error>>;
}

/** The ops of one turn, sent together at its end (RedisState.endTurn). */
interface OpBatch {
  keys: string[];
  args: Array<string | number>;
  waiters: Array<{ resolve: (n: number) => void; reject: (err: Error) => void }>;
}

type ScriptedRedis = Redis & Commands;

export interface RedisStateOptions {
  now: () => number;
  prefix: string;
  /**
   * The store key: TOTP secrets of unconfirmed enrollments and challenge records are sealed with it
   * (AES-GCM, bound to their Redis key), so a Redis dump or a MONITOR shows no secret.
   */
  sealKey: Buffer;
}

interface SealedEnrollment {
  s: string;
  a: TotpEnrollment['algorithm'];
  d: TotpEnrollment['digits'];
  p: number;
}

export class RedisState implements EphemeralState {
  private readonly redis: ScriptedRedis;
  private readonly prefix: string;
  private pending: RedisPendingPushes | undefined;
  /** The socket corked this turn (send). */
  private corked: Writable | undefined;
  private turnEnding = false;
  /** The ops of this turn, not sent yet. */
  private batch: OpBatch | undefined;

  constructor(
    redis: Redis,
    private readonly options: RedisStateOptions,
  ) {
    redis.defineCommand('stateOps', { lua: STATE_OPS });
    this.redis = redis as ScriptedRedis;
    this.prefix = options.prefix;
  }

  /** The connection (for pub/sub and health checks). */
  get client(): Redis {
    return this.redis;
  }

  async claimTotpStep(username: string, step: number, ttlMs: number): Promise<boolean> {
    return (await this.op('claim', this.key('step', username), step, Math.max(1, Math.ceil(ttlMs)))) === 1;
  }

  /**
   * Security counts are plain keys with an expiry. They are never evicted early only if Redis is told so:
   * maxmemory-policy noeviction (docs/ha.md; a warning at start otherwise). Out of memory then fails the
   * command, and the request is rejected (state_unavailable): fail closed, never a forgotten count.
   */
  async increment(key: string, windowMs: number): Promise<number> {
    return this.op('count', this.key('count', key), Math.max(1, Math.ceil(windowMs)));
  }

  async decrement(key: string): Promise<void> {
    await this.op('takeBack', this.key('count', key));
  }

  async reset(key: string): Promise<void> {
    await this.op('del', this.key('count', key));
  }

  /** Marks live beside the counts (one namespace), so `entries` lists both, as the memory state does. */
  async mark(key: string, ttlMs: number): Promise<boolean> {
    await this.op('mark', this.key('count', key), Math.max(1, Math.ceil(ttlMs)));
    return true;
  }

  async marked(key: string): Promise<boolean> {
    return (await this.op('exists', this.key('count', key))) === 1;
  }

  /** SCAN, not KEYS: an admin's `user show` must not stall Redis for every node. */
  async entries(prefix: string): Promise<{ key: string; n: number; expires: number }[]> {
    const base = this.key('count', '');
    const match = `${globEscape(base + prefix)}*`;
    const out: { key: string; n: number; expires: number }[] = [];
    let cursor = '0';
    for (let i = 0; i < 100_000; i++) {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', match, 'COUNT', 500);
      for (const k of keys) {
        const [value, ttl] = await Promise.all([this.redis.get(k), this.redis.pttl(k)]);
        if (value !== null && ttl > 0) out.push({ key: k.slice(base.length), n: Number(value), expires: this.options.now() + ttl });
      }
      cursor = next;
      if (cursor === '0') break;
    }
    return out;
  }

  async countBySource(key: string, windowMs: number): Promise<number> {
    return this.op('count', this.key('source', key), Math.max(1, Math.ceil(windowMs)));
  }

  async putEnrollment(key: string, enrollment: TotpEnrollment, ttlMs: number): Promise<void> {
    const k = this.key('enroll', key);
    const value: SealedEnrollment = { s: this.seal(enrollment.secret, k).toString('base64'), a: enrollment.algorithm, d: enrollment.digits, p: enrollment.period };
    await this.send().set(k, JSON.stringify(value), 'PX', Math.max(1, Math.ceil(ttlMs)));
  }

  async getEnrollment(key: string): Promise<TotpEnrollment | undefined> {
    const k = this.key('enroll', key);
    const raw = await this.send().get(k);
    if (raw === null) return undefined;
    const v = JSON.parse(raw) as SealedEnrollment;
    const secret = this.open(Buffer.from(v.s, 'base64'), k);
    return secret ? { secret, algorithm: v.a, digits: v.d, period: v.p } : undefined;
  }

  async deleteEnrollment(key: string): Promise<void> {
    await this.send().del(this.key('enroll', key));
  }

  async putChallenge(state: string, record: ChallengeRecord): Promise<void> {
    const k = this.key('challenge', state);
    const ttl = Math.max(1, record.expires - this.options.now());
    await this.send().set(k, this.seal(Buffer.from(JSON.stringify(record)), k).toString('base64'), 'PX', ttl);
  }

  async takeChallenge(state: string): Promise<ChallengeRecord | undefined> {
    const k = this.key('challenge', state);
    // GETDEL: one State, one answer, even when two nodes get it at once.
    const raw = await this.send().getdel(k);
    if (raw === null) return undefined;
    const opened = this.open(Buffer.from(raw, 'base64'), k);
    if (!opened) return undefined;
    const record = JSON.parse(opened.toString('utf8')) as ChallengeRecord;
    return record.expires > this.options.now() ? record : undefined;
  }

  async putSession(key: string, session: string, ttlMs: number, existing: boolean): Promise<void> {
    const k = this.key('session', key);
    const sealed = this.seal(Buffer.from(session), k).toString('base64');
    const ttl = Math.max(1, Math.ceil(ttlMs));
    await (existing ? this.send().set(k, sealed, 'PX', ttl, 'XX') : this.send().set(k, sealed, 'PX', ttl, 'NX'));
  }

  async getSession(key: string): Promise<string | undefined> {
    const k = this.key('session', key);
    const raw = await this.send().get(k);
    return raw === null ? undefined : this.open(Buffer.from(raw, 'base64'), k)?.toString('utf8');
  }

  async deleteSession(key: string): Promise<void> {
    await this.send().del(this.key('session', key));
  }

  /** Shared pending pushes: commands on this connection, decisions heard on a subscriber connection of their own. */
  pushes(): PendingPushes {
    this.pending ??= new RedisPendingPushes(this.redis, this.redis.duplicate({ connectionName: 'radius-mfa-sub' }), this.options);
    return this.pending;
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  async close(): Promise<void> {
    await this.pending?.close();
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  /**
   * The connection, its socket corked until this turn's microtasks are done: the commands of every
   * request of a received batch (each reaches its next await in the same turn) leave in one write, not
   * one system call each (docs/performance.md).
   */
  private send(): ScriptedRedis {
    const stream = this.redis.stream;
    if (!this.corked && stream?.writable) {
      this.corked = stream;
      stream.cork();
    }
    if (!this.turnEnding) {
      this.turnEnding = true;
      // After the microtasks: a tick queued while they run waits until none is left.
      process.nextTick(this.endTurn);
    }
    return this.redis;
  }

  /** One op of STATE_OPS, sent with the others of this turn. */
  private op(op: StateOp, key: string, a: string | number = '', b: string | number = ''): Promise<number> {
    this.send();
    const batch = (this.batch ??= { keys: [], args: [], waiters: [] });
    batch.keys.push(key);
    batch.args.push(op, a, b);
    return new Promise((resolve, reject) => batch.waiters.push({ resolve, reject }));
  }

  private readonly endTurn = (): void => {
    this.turnEnding = false;
    const batch = this.batch;
    if (batch) {
      this.batch = undefined;
      this.redis.stateOps(batch.keys.length, ...batch.keys, ...batch.args).then(
        (replies) => batch.waiters.forEach((w, i) => (replies[i] instanceof Error ? w.reject(replies[i]) : w.resolve(replies[i] as number))),
        (err: Error) => batch.waiters.forEach((w) => w.reject(err)),
      );
    }
    const corked = this.corked;
    if (corked) {
      this.corked = undefined;
      corked.uncork();
    }
  };

  private key(kind: string, name: string): string {
    return `${this.prefix}${kind}:${name}`;
  }

  private seal(plaintext: Buffer, redisKey: string): Buffer {
    return sealSecret(this.options.sealKey, plaintext, `redis:${redisKey}`);
  }

  /** A value sealed under another key (another deployment sharing the prefix) reads as absent, never as garbage. */
  private open(sealed: Buffer, redisKey: string): Buffer | undefined {
    const r = openSecret(this.options.sealKey, sealed, `redis:${redisKey}`);
    return r.ok ? r.plaintext : undefined;
  }
}

/** A printable form of the URL for logs: the password is never shown. */
export function describeRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'redis://(unparsable URL)';
  }
}

/**
 * ioredis options for state.url / tls / sentinel / timeout. Commands fail fast while disconnected (no
 * offline queue, one try): a request needing Redis is rejected at once (state_unavailable), not held
 * until the NAS gives up. Reconnects go on in the background, so recovery needs no restart.
 */
export function redisOptions(config: Config['state']): RedisOptions {
  const url = new URL(config.url!);
  const tlsOn = url.protocol === 'rediss:';
  const tls = tlsOn ? { ca: config.tls ? readFileSync(config.tls.ca, 'utf8') : undefined } : undefined;
  const db = Number(url.pathname.replace(/^\//, '') || 0);
  const common: RedisOptions = {
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db: Number.isInteger(db) ? db : 0,
    tls,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: config.timeout,
    connectTimeout: Math.max(1000, config.timeout),
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
    connectionName: 'radius-mfa',
  };
  if (config.sentinel) {
    return {
      ...common,
      sentinels: config.sentinel.nodes.map((n) => ({ host: n.host, port: n.port })),
      name: config.sentinel.name,
      enableTLSForSentinelMode: tlsOn,
      sentinelTLS: tls,
      // Leave the old master when a sentinel announces +switch-master: it stays writable until the sentinel
      // demotes it (seconds later), and counts or TOTP claims written there would be lost.
      failoverDetector: true,
    };
  }
  return { ...common, host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 6379) };
}

/**
 * Connects to Redis and returns the state; warnings (an eviction policy that could drop security
 * counts) go to `warn`. Throws when Redis cannot be reached at start.
 */
export async function openRedisState(config: Config['state'], options: RedisStateOptions & { warn?: (message: string) => void }): Promise<RedisState> {
  const redis = new Redis(redisOptions(config));
  // Without a listener an 'error' event would crash the process; outages are reported by the engine monitor.
  redis.on('error', () => {});
  try {
    await connectRedis(redis);
    const version = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1];
    if (version && Number(version.split('.')[0]) < 6) throw new Error(`Redis ${version} is too old: 6.2 or later (or Valkey) is needed (GETDEL)`);
    const policy = await redis.config('GET', 'maxmemory-policy').then(
      (r) => (r as string[])[1],
      () => undefined, // CONFIG is often disabled on managed services: nothing to check then.
    );
    if (policy && policy !== 'noeviction') {
      options.warn?.(
        `Redis maxmemory-policy is ${policy}: under memory pressure it may evict lockout counts and replay marks early; set maxmemory-policy noeviction (docs/ha.md)`,
      );
    }
  } catch (err) {
    redis.disconnect();
    throw new Error(`Redis at ${describeRedisUrl(config.url!)}: ${(err as Error).message}`, { cause: err });
  }
  return new RedisState(redis, options);
}

/**
 * connect(), failing with why: ioredis rejects with only "Connection is closed." and gives the reason (refused,
 * a certificate not trusted) as an 'error' event.
 */
export async function connectRedis(redis: Redis): Promise<void> {
  let why: Error | undefined;
  const remember = (err: Error) => (why ??= err);
  redis.on('error', remember);
  try {
    await redis.connect();
  } catch (err) {
    throw new Error((why ?? (err as Error)).message, { cause: err });
  } finally {
    redis.off('error', remember);
  }
}

/** SCAN MATCH is a glob: a username with * ? [ ] or a backslash in it must match only itself. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
