// Pending pushes in Redis, shared by every node: the push a NAS's request at node A made is joined by
// the same attempt failing over to node B, listed to the phone by whichever node it polls, and decided
// by whichever node the phone's answer reaches. The node that holds the VPN request learns of the
// decision by pub/sub (its own subscriber connection), not by polling: a few milliseconds.
//
// Every check-and-act is one Lua script: join-or-create, decide (and publish, in the same step), claim,
// the number-matching State. A waiter registers before it reads the outcome, so a decision published
// before it looked is read, and one published after is heard. Expiry runs on Redis's clock (PTTL):
// an open push lives `timeout + GRACE_MS`; a node that waits on it (or made it) decides `timeout` at the
// end of `timeout`; after that, until it is gone, it reads as timed out even if no node was left to say so.
//
// Keys (under state.prefix): push:ID (a hash), attempt:SHA256 (the attempt's push id), pushes:USER (a
// sorted set of the user's open ids), and the channel push-decided. The number a phone shows is sealed
// with the store key, so reading Redis does not defeat number matching.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { attemptKey, KEEP_DECIDED_MS, newPush, waitFor, type PendingPush, type PendingPushes, type PendingPushInit, type PushOutcome, type PushWaiter } from '../mfa/pending.js';
import { openSecret, sealSecret } from '../store/secret-box.js';

/** An open push outlives its timeout by this much, so the node that times it out finds it there. */
export const GRACE_MS = 5_000;
/** Bounds what a device's poll reads (the push rate limit per user bounds it long before). */
const MAX_LISTED = 100;

// KEYS: new push, user's open set, attempt key (absent without a Calling-Station-Id).
// ARGV: id, ttl, the request's age (µs), push key prefix, grace, then the hash's field/value pairs.
// Times are Redis's own clock, never a node's: a node whose clock runs ahead or behind must not make a
// decided push look younger than a request (which would join it, and take its approval).
// An attempt's push is joined while open and in time, or when decided after this request arrived.
// The open set is ordered by Redis's clock in microseconds: oldest first, the same for every node.
// Returns the id of the attempt's push to join, or false once a new one is made.
const JOIN = `
local now = redis.call('TIME')
if KEYS[3] then
  local id = redis.call('GET', KEYS[3])
  if id then
    local k = ARGV[4] .. id
    local f = redis.call('HMGET', k, 'u', 'o', 'da')
    local arrived = tonumber(now[1]) * 1000000 + tonumber(now[2]) - tonumber(ARGV[3])
    if f[1] and ((not f[2] and redis.call('PTTL', k) > tonumber(ARGV[5])) or (f[2] and tonumber(f[3]) >= arrived)) then return id end
  end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if KEYS[3] then
  redis.call('HSET', KEYS[1], 'j', KEYS[3])
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
end
redis.call('ZADD', KEYS[2], now[1] .. string.format('%06d', tonumber(now[2])), ARGV[1])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return false`;

// KEYS: push. ARGV: id, kind, device, keep ms, channel, open-set prefix, grace. Decided at: Redis's clock (µs).
// A phone's answer after the timeout (no node was left to time it out) is recorded as the timeout.
// Returns 1 when this call decided it, 0 when it was unknown or decided already.
const DECIDE = `
local f = redis.call('HMGET', KEYS[1], 'u', 'o', 'j')
if not f[1] or f[2] then return 0 end
local kind, device = ARGV[2], ARGV[3]
if kind ~= 'timeout' and redis.call('PTTL', KEYS[1]) <= tonumber(ARGV[7]) then
  kind, device = 'timeout', ''
end
local now = redis.call('TIME')
redis.call('HSET', KEYS[1], 'o', kind, 'd', device, 'da', now[1] .. string.format('%06d', tonumber(now[2])))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZREM', ARGV[6] .. f[1], ARGV[1])
if f[3] and redis.call('GET', f[3]) == ARGV[1] then redis.call('PEXPIRE', f[3], ARGV[4]) end
redis.call('PUBLISH', ARGV[5], ARGV[1] .. ' ' .. kind .. ' ' .. device)
if kind ~= ARGV[2] then return 0 end
return 1`;

// KEYS: push. ARGV: id, grace. The outcome, once: the push (and its attempt's pointer to it) is gone
// after. An undecided push past its timeout (no node was left to time it out) is claimed as timed out.
const CLAIM = `
local f = redis.call('HMGET', KEYS[1], 'o', 'd', 'j', 'u')
if not f[4] then return false end
if not f[1] then
  if redis.call('PTTL', KEYS[1]) > tonumber(ARGV[2]) then return false end
  f[1], f[2] = 'timeout', ''
end
redis.call('DEL', KEYS[1])
if f[3] and redis.call('GET', f[3]) == ARGV[1] then redis.call('DEL', f[3]) end
return {f[1], f[2]}`;

// KEYS: push. ARGV: expected State ('' = none), new State. Returns the State that stands.
const OFFER_STATE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local current = redis.call('HGET', KEYS[1], 'st') or ''
if current ~= ARGV[1] then return current end
redis.call('HSET', KEYS[1], 'st', ARGV[2])
return ARGV[2]`;

// KEYS: push. Its fields and remaining time in one step.
const READ = `
local f = redis.call('HGETALL', KEYS[1])
if #f == 0 then return false end
return {redis.call('PTTL', KEYS[1]), f}`;

// KEYS: the user's open set. ARGV: push key prefix, grace, max. Open pushes whose time is not up,
// oldest first; ids whose push is gone are dropped from the set.
const OPEN_FOR = `
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)) do
  local k = ARGV[1] .. id
  local ttl = redis.call('PTTL', k)
  if ttl < 0 then redis.call('ZREM', KEYS[1], id)
  elseif ttl > tonumber(ARGV[2]) and redis.call('HEXISTS', k, 'o') == 0 then
    table.insert(out, {ttl, redis.call('HGETALL', k)})
  end
end
return out`;

interface Scripts {
  pushJoin(...args: (string | number)[]): Promise<string | null>;
  pushJoinAlone(...args: (string | number)[]): Promise<string | null>;
  pushDecide(key: string, ...args: (string | number)[]): Promise<number>;
  pushClaim(key: string, id: string, grace: number): Promise<[string, string] | null>;
  pushOfferState(key: string, expected: string, state: string): Promise<string | null>;
  pushRead(key: string): Promise<[number, string[]] | null>;
  pushOpenFor(key: string, prefix: string, grace: number, max: number): Promise<[number, string[]][]>;
}

/** What this node does for one push: the requests that wait on it here, and the timer that times it out. */
interface Watch {
  waiters: PushWaiter[];
  timer: NodeJS.Timeout | undefined;
}

export interface RedisPushesOptions {
  now: () => number;
  prefix: string;
  sealKey: Buffer;
  /** The subscriber's PING interval; tests shorten it. Default SUBSCRIBER_HEARTBEAT_MS. */
  heartbeatMs?: number;
}

/**
 * The subscriber is PINGed this often, and reconnected when a PING is still unanswered at the next:
 * a connection cut without a word (a firewall's or a load balancer's idle timeout) would otherwise
 * go unnoticed for TCP keepalive's ~11 minutes, and every decision made at another node unheard.
 */
const SUBSCRIBER_HEARTBEAT_MS = 5000;

export class RedisPendingPushes implements PendingPushes {
  private readonly redis: Redis & Scripts;
  private readonly watches = new Map<string, Watch>();
  private readonly channel: string;
  private started: Promise<void> | undefined;
  private connectedOnce = false;
  private closed = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private pingUnanswered = false;

  /** `redis` runs the commands; `subscriber` (a connection of its own) only listens for decisions. */
  constructor(
    redis: Redis,
    private readonly subscriber: Redis,
    private readonly options: RedisPushesOptions,
  ) {
    redis.defineCommand('pushJoin', { numberOfKeys: 3, lua: JOIN });
    redis.defineCommand('pushJoinAlone', { numberOfKeys: 2, lua: JOIN });
    redis.defineCommand('pushDecide', { numberOfKeys: 1, lua: DECIDE });
    redis.defineCommand('pushClaim', { numberOfKeys: 1, lua: CLAIM });
    redis.defineCommand('pushOfferState', { numberOfKeys: 1, lua: OFFER_STATE });
    redis.defineCommand('pushRead', { numberOfKeys: 1, lua: READ });
    redis.defineCommand('pushOpenFor', { numberOfKeys: 1, lua: OPEN_FOR });
    this.redis = redis as Redis & Scripts;
    this.channel = `${options.prefix}push-decided`;
    subscriber.on('error', () => {});
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.heard(message);
    });
    // Decisions published while the subscriber was away were not heard: read them.
    subscriber.on('ready', () => {
      if (this.connectedOnce && !this.closed) void this.resubscribeAndRecheck();
    });
  }

  start(): Promise<void> {
    this.started ??= (async () => {
      if (this.subscriber.status === 'wait') await this.subscriber.connect();
      await this.subscriber.subscribe(this.channel);
      this.connectedOnce = true;
      this.heartbeat = setInterval(() => this.checkSubscriber(), this.options.heartbeatMs ?? SUBSCRIBER_HEARTBEAT_MS).unref();
    })();
    return this.started;
  }

  /** Reconnecting makes 'ready' resubscribe and read what was decided meanwhile. */
  private checkSubscriber(): void {
    if (this.subscriber.status !== 'ready') return;
    if (this.pingUnanswered) {
      this.pingUnanswered = false;
      this.subscriber.disconnect(true);
      return;
    }
    this.pingUnanswered = true;
    this.subscriber.ping().then(
      () => (this.pingUnanswered = false),
      () => {}, // Disconnected meanwhile: the reconnect is under way.
    );
  }

  async join(init: PendingPushInit, timeoutMs: number, arrival: number): Promise<{ push: PendingPush; created: boolean }> {
    const key = attemptKey(init);
    if (key === undefined) return { push: await this.create(init, timeoutMs), created: true };
    // How long ago the request arrived (this node's monotonic clock); Redis places it on its own clock.
    const ageUs = Math.max(0, Math.round((performance.now() - arrival) * 1000));
    for (let i = 0; i < 3; i++) {
      const made = this.record(init, timeoutMs);
      const existing = await this.redis.pushJoin(made.key, this.openKey(init.username), this.attemptKeyOf(key), ...this.joinArgs(made, timeoutMs, ageUs));
      if (existing === null) {
        this.watch(made.push.id, timeoutMs);
        return { push: made.push, created: true };
      }
      const push = await this.get(existing);
      // Gone between the two steps (claimed, expired): look again.
      if (push) return { push, created: false };
    }
    throw new Error('pending push: the attempt kept changing under us');
  }

  async create(init: PendingPushInit, timeoutMs: number): Promise<PendingPush> {
    const made = this.record(init, timeoutMs);
    await this.redis.pushJoinAlone(made.key, this.openKey(init.username), ...this.joinArgs(made, timeoutMs, 0));
    this.watch(made.push.id, timeoutMs);
    return made.push;
  }

  private joinArgs(made: { push: PendingPush; fields: string[] }, timeoutMs: number, ageUs: number): (string | number)[] {
    return [made.push.id, timeoutMs + GRACE_MS, ageUs, this.pushKey(''), GRACE_MS, ...made.fields];
  }

  async get(id: string): Promise<PendingPush | undefined> {
    const r = await this.redis.pushRead(this.pushKey(id));
    return r ? this.parse(id, r[1], r[0]) : undefined;
  }

  async openFor(username: string): Promise<PendingPush[]> {
    const rows = await this.redis.pushOpenFor(this.openKey(username), this.pushKey(''), GRACE_MS, MAX_LISTED);
    const out: PendingPush[] = [];
    for (const [ttl, fields] of rows) {
      const id = fieldOf(fields, 'id');
      if (id !== undefined) out.push(this.parse(id, fields, ttl));
    }
    return out;
  }

  listen(id: string, waiter: PushWaiter): void {
    // Registered before the read: a decision published meanwhile is heard, one made before is read.
    const watch = this.watchOf(id);
    watch.waiters.push(waiter);
    const waiting = () => this.watches.get(id) === watch && watch.waiters.includes(waiter);
    this.redis.pushRead(this.pushKey(id)).then(
      (r) => {
        if (!waiting()) return;
        if (!r) return this.settleHere(id, undefined);
        const push = this.parse(id, r[1], r[0]);
        if (push.outcome) return this.settleHere(id, push.outcome);
        if (!watch.timer) this.armTimer(id, watch, Math.max(0, r[0] - GRACE_MS));
      },
      (err: unknown) => {
        if (!waiting()) return;
        this.unlisten(id, waiter);
        waiter.failed(err);
      },
    );
  }

  /** Stops telling `waiter` (a wait that gives up; waitFor): nothing when it was told already. */
  unlisten(id: string, waiter: PushWaiter): void {
    const watch = this.watches.get(id);
    const at = watch?.waiters.indexOf(waiter) ?? -1;
    if (at < 0) return;
    watch!.waiters.splice(at, 1);
    this.dropIfIdle(id, watch!);
  }

  wait(id: string, maxWaitMs?: number): Promise<PushOutcome | undefined> {
    return waitFor(this, id, maxWaitMs);
  }

  async decide(id: string, outcome: PushOutcome): Promise<boolean> {
    const device = outcome.kind === 'timeout' ? '' : outcome.deviceId;
    const r = await this.redis.pushDecide(this.pushKey(id), id, outcome.kind, device, KEEP_DECIDED_MS, this.channel, this.openKey(''), GRACE_MS);
    // Waiters here need not wait for the message to come back.
    if (r === 1) this.settleHere(id, outcome);
    return r === 1;
  }

  async claim(id: string): Promise<PushOutcome | undefined> {
    const r = await this.redis.pushClaim(this.pushKey(id), id, GRACE_MS);
    return r ? outcomeOf(r[0], r[1]) : undefined;
  }

  async offerChallengeState(id: string, expected: string | undefined, state: string): Promise<string | undefined> {
    const r = await this.redis.pushOfferState(this.pushKey(id), expected ?? '', state);
    return r === null || r === '' ? undefined : r;
  }

  get size(): number {
    return this.watches.size;
  }

  get openCount(): number {
    return this.watches.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const w of this.watches.values()) if (w.timer) clearTimeout(w.timer);
    this.watches.clear();
    if (this.subscriber.status === 'wait' || this.subscriber.status === 'end') return this.subscriber.disconnect();
    try {
      await this.subscriber.quit();
    } catch {
      this.subscriber.disconnect();
    }
  }

  /** A new push's record: the object this node returns and the hash fields Redis keeps. */
  private record(init: PendingPushInit, timeoutMs: number): { push: PendingPush; key: string; fields: string[] } {
    const push = newPush(init, this.options.now(), timeoutMs);
    const key = this.pushKey(push.id);
    const fields = ['id', push.id, 'u', init.username, 'c', init.clientName, 'pin', init.pinRequired ? '1' : '0', 't', String(push.createdAt), 'e', String(push.expires)];
    if (init.nasIp !== undefined) fields.push('ni', init.nasIp);
    if (init.nasIdentifier !== undefined) fields.push('nd', init.nasIdentifier);
    if (init.callingStation !== undefined) fields.push('cs', init.callingStation);
    if (init.nasPort !== undefined) fields.push('np', String(init.nasPort));
    if (init.number !== undefined) fields.push('n', sealSecret(this.options.sealKey, Buffer.from(init.number), `redis:${key}`).toString('base64'));
    return { push, key, fields };
  }

  private parse(id: string, flat: string[], ttl: number): PendingPush {
    const f = new Map<string, string>();
    for (let i = 0; i + 1 < flat.length; i += 2) f.set(flat[i]!, flat[i + 1]!);
    const sealed = f.get('n');
    const number = sealed === undefined ? undefined : openSecret(this.options.sealKey, Buffer.from(sealed, 'base64'), `redis:${this.pushKey(id)}`);
    const kind = f.get('o');
    // Undecided past its timeout (no node was left to say so): it reads as what it is, timed out.
    const outcome = kind !== undefined ? outcomeOf(kind, f.get('d') ?? '') : ttl <= GRACE_MS ? ({ kind: 'timeout' } as const) : undefined;
    return {
      id,
      username: f.get('u')!,
      clientName: f.get('c')!,
      nasIp: f.get('ni'),
      nasIdentifier: f.get('nd'),
      callingStation: f.get('cs'),
      nasPort: f.has('np') ? Number(f.get('np')) : undefined,
      pinRequired: f.get('pin') === '1',
      // A number sealed under another key (another deployment on the prefix) cannot be shown: '??' matches nothing typed.
      number: sealed === undefined ? undefined : number?.ok ? number.plaintext.toString('utf8') : '??',
      createdAt: Number(f.get('t')),
      expires: Number(f.get('e')),
      outcome,
      ...(f.has('st') ? { challengeState: f.get('st') } : {}),
    };
  }

  /** This node made the push: it times it out if nobody decides it first (memory does the same). */
  private watch(id: string, timeoutMs: number): void {
    const watch = this.watchOf(id);
    if (!watch.timer) this.armTimer(id, watch, timeoutMs);
  }

  private watchOf(id: string): Watch {
    let watch = this.watches.get(id);
    if (!watch) this.watches.set(id, (watch = { waiters: [], timer: undefined }));
    return watch;
  }

  private armTimer(id: string, watch: Watch, ms: number): void {
    watch.timer = setTimeout(() => void this.timeOut(id, watch), ms);
  }

  /** The push's time is up: decide it as timed out, or learn what decided it (or that it is gone). */
  private async timeOut(id: string, watch: Watch): Promise<void> {
    if (this.watches.get(id) !== watch) return;
    if (watch.timer) clearTimeout(watch.timer);
    watch.timer = undefined;
    try {
      if (await this.decide(id, { kind: 'timeout' })) return;
      const push = await this.get(id);
      this.settleHere(id, push ? (push.outcome ?? { kind: 'timeout' }) : undefined);
    } catch (err) {
      // Redis is away: what the phone said cannot be known. Refuse (state_unavailable), never guess.
      const waiters = watch.waiters;
      watch.waiters = [];
      this.dropIfIdle(id, watch);
      for (const w of waiters) w.failed(err);
    }
  }

  /** A decision published by any node (this one too): `ID KIND DEVICE`. */
  private heard(message: string): void {
    const a = message.indexOf(' ');
    const b = message.indexOf(' ', a + 1);
    if (a < 0 || b < 0) return;
    const id = message.slice(0, a);
    if (this.watches.has(id)) this.settleHere(id, outcomeOf(message.slice(a + 1, b), message.slice(b + 1)));
  }

  private settleHere(id: string, outcome: PushOutcome | undefined): void {
    const watch = this.watches.get(id);
    if (!watch) return;
    this.watches.delete(id);
    if (watch.timer) clearTimeout(watch.timer);
    const waiters = watch.waiters;
    watch.waiters = [];
    for (const w of waiters) w.settled(outcome);
  }

  private dropIfIdle(id: string, watch: Watch): void {
    if (watch.waiters.length === 0 && !watch.timer && this.watches.get(id) === watch) this.watches.delete(id);
  }

  private async resubscribeAndRecheck(): Promise<void> {
    try {
      await this.subscriber.subscribe(this.channel);
    } catch {
      return; // Gone again: the next 'ready' tries again.
    }
    for (const [id, watch] of [...this.watches]) {
      const push = await this.get(id).catch(() => null);
      if (push === null) continue;
      if (!push) this.settleHere(id, undefined);
      else if (push.outcome) void this.timeOut(id, watch);
    }
  }

  private pushKey(id: string): string {
    return `${this.options.prefix}push:${id}`;
  }

  private openKey(username: string): string {
    return `${this.options.prefix}pushes:${username}`;
  }

  private attemptKeyOf(key: string): string {
    return `${this.options.prefix}attempt:${createHash('sha256').update(key).digest('base64url')}`;
  }
}

function fieldOf(flat: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i] === name) return flat[i + 1];
  return undefined;
}

function outcomeOf(kind: string, device: string): PushOutcome {
  return kind === 'timeout' ? { kind: 'timeout' } : { kind: kind as 'approve' | 'deny' | 'fraud' | 'locked', deviceId: device };
}
