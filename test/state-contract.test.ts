// One contract for every EphemeralState backend: the same tests run against the memory state and a
// private Redis started here, so the two cannot drift. Both run on the real clock (Redis expires keys by
// its own), with short windows waited out by polling, never by fixed sleeps. Capacity limits of the
// memory state are in security.test.ts; Redis-only behaviour is in redis-state.test.ts.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MemoryState } from '../src/state/memory.js';
import { openRedisState } from '../src/state/redis.js';
import type { ChallengeRecord, EphemeralState } from '../src/state/state.js';
import type { TotpEnrollment } from '../src/mfa/enrollment.js';
import { startRedis, type RedisInstance } from './helpers/redis.js';
import { until } from './helpers/until.js';
import { configSchema } from '../src/config/schema.js';

interface Backend {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** Two views of one shared state: two nodes for Redis, the same object for memory (one node). */
  fresh(t: TestContext): Promise<[EphemeralState, EphemeralState]>;
}

const memory: Backend = {
  name: 'memory',
  async setup() {},
  async teardown() {},
  async fresh(t) {
    const s = new MemoryState(Date.now);
    t.after(() => s.close());
    return [s, s];
  },
};

let redisServer: RedisInstance | undefined;
let prefixes = 0;
const redis: Backend = {
  name: 'redis',
  async setup() {
    redisServer = await startRedis();
  },
  async teardown() {
    await redisServer?.close();
  },
  async fresh(t) {
    const config = configSchema.shape.state.parse({ type: 'redis', url: redisServer!.url });
    // A prefix per test: tests share one Redis as deployments may.
    const options = { now: Date.now, prefix: `test${++prefixes}:`, sealKey: sealKey };
    const a = await openRedisState(config, options);
    const b = await openRedisState(config, options);
    t.after(() => Promise.all([a.close(), b.close()]));
    return [a, b];
  },
};
const sealKey = randomBytes(32);

/** Waits (polling, bounded) until `ms` have passed since `from`. */
const elapsed = (from: number, ms: number) => until(() => (Date.now() >= from + ms ? true : undefined), `${ms} ms to pass`, ms + 5000);

const enrollment = (): TotpEnrollment => ({ secret: randomBytes(20), algorithm: 'SHA256', digits: 8, period: 60 });

for (const backend of [memory, redis]) {
  describe(`EphemeralState contract: ${backend.name}`, () => {
    before(() => backend.setup());
    after(() => backend.teardown());

    test('a TOTP step is good once per user: the same or an earlier step is a replay, on any node', async (t) => {
      const [a, b] = await backend.fresh(t);
      assert.equal(await a.claimTotpStep('alice', 100, 90_000), true);
      assert.equal(await b.claimTotpStep('alice', 100, 90_000), false, 'the same step again');
      assert.equal(await b.claimTotpStep('alice', 99, 90_000), false, 'an earlier step');
      assert.equal(await b.claimTotpStep('bob', 100, 90_000), true, 'another user');
      assert.equal(await b.claimTotpStep('alice', 101, 90_000), true, 'a later step');
      assert.equal(await a.claimTotpStep('alice', 101, 90_000), false);
    });

    test('one step claimed by many requests at once is granted exactly once', async (t) => {
      const [a, b] = await backend.fresh(t);
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).claimTotpStep('alice', 7, 90_000)));
      assert.equal(results.filter(Boolean).length, 1);
    });

    test('a security count counts within a window that starts at the first event, then starts again', async (t) => {
      const [a, b] = await backend.fresh(t);
      assert.equal(await a.increment('fail:alice', 60_000), 1);
      assert.equal(await b.increment('fail:alice', 60_000), 2);
      assert.equal(await a.increment('fail:bob', 60_000), 1);
      const counts = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).increment('fail:alice', 60_000)));
      assert.deepEqual([...counts].sort((x, y) => x - y), [3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 'parallel increments never lose a count');

      const start = Date.now();
      assert.equal(await a.increment('short', 300), 1);
      assert.equal(await a.increment('short', 60_000), 2, 'a later event does not move the end of the window');
      await elapsed(start, 400);
      assert.equal(await b.increment('short', 300), 1, 'the window ended: counting starts again');
    });

    test('decrement takes a count back and forgets the key at zero; reset forgets it at once', async (t) => {
      const [a, b] = await backend.fresh(t);
      await a.increment('slot:alice', 60_000);
      await a.increment('slot:alice', 60_000);
      await b.decrement('slot:alice');
      assert.equal(await a.increment('slot:alice', 60_000), 2);
      await b.decrement('slot:alice');
      await b.decrement('slot:alice');
      assert.equal(await a.increment('slot:alice', 60_000), 1, 'forgotten at zero, not counted below it');
      await b.decrement('never-counted');
      assert.equal(await a.increment('never-counted', 60_000), 1);
      await a.increment('fail:carol', 60_000);
      await b.reset('fail:carol');
      assert.equal(await a.increment('fail:carol', 60_000), 1);
    });

    test('counts by source are apart from the security counts of the same name', async (t) => {
      const [a, b] = await backend.fresh(t);
      assert.equal(await a.countBySource('203.0.113.7', 60_000), 1);
      assert.equal(await b.countBySource('203.0.113.7', 60_000), 2);
      assert.equal(await a.increment('203.0.113.7', 60_000), 1);
      const start = Date.now();
      assert.equal(await a.countBySource('198.51.100.1', 300), 1);
      await elapsed(start, 400);
      assert.equal(await b.countBySource('198.51.100.1', 300), 1);
    });

    test('a mark lasts its time on every node, is never shortened, and entries list marks and counts under a prefix', async (t) => {
      const [a, b] = await backend.fresh(t);
      assert.equal(await b.marked('user:ann\0seen\x00203.0.113.7'), false);
      assert.equal(await a.mark('user:ann\0seen\x00203.0.113.7', 60_000), true);
      assert.equal(await b.marked('user:ann\0seen\x00203.0.113.7'), true);
      await a.mark('user:ann\0seen\x00203.0.113.7', 10);
      await a.increment('user:ann\0fail', 60_000);
      await a.increment('user:ann\0fail', 60_000);
      await a.increment('user:ann*\0fail', 60_000);
      const start = Date.now();
      await a.mark('user:ann\0wrong\0x', 300);
      await elapsed(start, 400);
      const listed = (await b.entries('user:ann\0')).map((e) => [e.key, e.n]).sort();
      assert.deepEqual(listed, [['user:ann\0fail', 2], ['user:ann\0seen\x00203.0.113.7', 1]], 'the short mark expired; a shorter mark did not cut the long one; "ann*" is another user');
      const seen = (await b.entries('user:ann\0seen')).find((e) => e.key.endsWith('203.0.113.7'));
      assert.ok(seen && seen.expires > Date.now() + 50_000, 'the expiry is reported');
    });

    test('an unconfirmed enrollment is kept until taken or expired', async (t) => {
      const [a, b] = await backend.fresh(t);
      const e = enrollment();
      await a.putEnrollment('device-1', e, 60_000);
      assert.deepEqual(await b.getEnrollment('device-1'), e);
      assert.deepEqual(await b.getEnrollment('device-1'), e, 'reading does not take it');
      await b.deleteEnrollment('device-1');
      assert.equal(await a.getEnrollment('device-1'), undefined);
      const start = Date.now();
      await a.putEnrollment('device-2', enrollment(), 200);
      await elapsed(start, 300);
      assert.equal(await b.getEnrollment('device-2'), undefined, 'expired');
    });

    test('a challenge State is good for one answer, on whichever node it arrives, and not after it expires', async (t) => {
      const [a, b] = await backend.fresh(t);
      const record: ChallengeRecord = {
        username: 'alice',
        clientName: 'nas',
        method: 'push',
        pushId: 'p1',
        firstFactor: { upstreamState: 'abcd', reply: '0102', groups: ['vpn'] },
        expires: Date.now() + 60_000,
      };
      await a.putChallenge('s1', record);
      const taken = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).takeChallenge('s1')));
      assert.deepEqual(taken.filter(Boolean), [record], 'exactly one taker gets it');
      assert.equal(await a.takeChallenge('s1'), undefined);
      assert.equal(await a.takeChallenge('never-issued'), undefined);

      await a.putChallenge('s2', { ...record, expires: Date.now() + 200 });
      const start = Date.now();
      await elapsed(start, 300);
      assert.equal(await b.takeChallenge('s2'), undefined, 'expired');
    });
  });
}
