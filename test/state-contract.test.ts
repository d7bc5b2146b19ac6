// One contract for every EphemeralState backend: the same tests run against the memory state and a
// private Redis started here, so the two cannot drift. Both run on the real clock (Redis expires keys by
// its own), with short windows waited out by polling, never by fixed sleeps. Capacity limits of the
// memory state are in security.test.ts; Redis-only behaviour is in redis-state.test.ts. Pending pushes and
// portal sessions, kept with the state, are held to their own contracts at the end.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { PendingPushes, PendingPushInit, PushOutcome, PushWaiter } from '../src/mfa/pending.js';
import { SessionStore } from '../src/portal/session.js';
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

// Pending pushes and portal sessions, held to one contract: memory (one node, the same object twice) and
// Redis (two nodes on one Redis: what A makes, B joins, lists, decides, claims).
const init = (over: Partial<PendingPushInit> = {}): PendingPushInit => ({
  username: 'alice',
  clientName: 'vpn',
  nasIp: '192.0.2.1',
  nasIdentifier: 'gw-1',
  callingStation: '203.0.113.7',
  pinRequired: false,
  number: undefined,
  ...over,
});

async function twoNodes(backend: Backend, t: TestContext): Promise<[PendingPushes, PendingPushes]> {
  const [a, b] = await backend.fresh(t);
  const [pa, pb] = [a.pushes(), b.pushes()];
  await Promise.all([pa.start(), pb.start()]);
  return [pa, pb];
}

for (const backend of [memory, redis]) {
  describe(`PendingPushes contract: ${backend.name}`, () => {
    before(() => backend.setup());
    after(() => backend.teardown());

    test('a push made at one node is read and listed at the other, as it was made', async (t) => {
      const [a, b] = await twoNodes(backend, t);
      const made = await a.create(init({ number: '42', pinRequired: true, nasIp: undefined, nasPort: 1001 }), 60_000);
      const read = await b.get(made.id);
      assert.deepEqual(read, made);
      assert.equal(read?.number, '42');
      assert.equal(read?.nasIp, undefined);
      assert.deepEqual(await b.openFor('alice'), [made]);
      assert.deepEqual(await b.openFor('bob'), []);
      assert.equal(await b.get('no-such-push'), undefined);
      const second = await b.create(init({ callingStation: '198.51.100.9' }), 60_000);
      assert.deepEqual((await a.openFor('alice')).map((p) => p.id), [made.id, second.id], 'oldest first');
    });

    test('requests of one attempt join one push on either node, at once too; another attempt gets its own', async (t) => {
      const [a, b] = await twoNodes(backend, t);
      const arrival = performance.now();
      const joined = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).join(init(), 60_000, arrival)));
      assert.equal(new Set(joined.map((j) => j.push.id)).size, 1, 'one push for the attempt');
      assert.equal(joined.filter((j) => j.created).length, 1, 'made once');
      const other = await b.join(init({ callingStation: '198.51.100.9' }), 60_000, arrival);
      assert.equal(other.created, true);
      const otherSession = await a.join(init({ nasPort: 7 }), 60_000, arrival);
      assert.equal(otherSession.created, true, 'another NAS port behind the same address is another attempt');
      assert.deepEqual(await b.join(init({ nasPort: 7 }), 60_000, arrival), { push: otherSession.push, created: false }, 'whose re-sent request joins it');
      const noStation = await a.join(init({ callingStation: undefined }), 60_000, arrival);
      const noStation2 = await b.join(init({ callingStation: undefined }), 60_000, arrival);
      assert.equal(noStation.created && noStation2.created, true, 'without a Calling-Station-Id nothing is joined');
      assert.equal((await a.openFor('alice')).length, 5);
    });

    test('a decision at one node wakes the waiter at the other at once, once; then it is no longer listed', async (t) => {
      const [a, b] = await twoNodes(backend, t);
      const push = await a.create(init(), 60_000);
      const waiting = a.wait(push.id);
      const started = performance.now();
      assert.equal(await b.decide(push.id, { kind: 'approve', deviceId: 'dev-1' }), true);
      assert.deepEqual(await waiting, { kind: 'approve', deviceId: 'dev-1' });
      assert.ok(performance.now() - started < 500, 'woken at once, not by a poll');
      assert.equal(await a.decide(push.id, { kind: 'deny', deviceId: 'dev-2' }), false, 'decided once');
      assert.deepEqual((await a.get(push.id))?.outcome, { kind: 'approve', deviceId: 'dev-1' });
      assert.deepEqual(await b.openFor('alice'), []);
      assert.deepEqual(await a.wait(push.id), { kind: 'approve', deviceId: 'dev-1' }, 'a wait after the decision reads it');
      assert.equal(await b.decide('no-such-push', { kind: 'approve', deviceId: 'x' }), false);
    });

    test('listen tells each held waiter once, at either node: when decided, or at once when already decided or unknown', async (t) => {
      const [a, b] = await twoNodes(backend, t);
      const told: [string, PushOutcome | undefined][] = [];
      const waiter = (name: string): PushWaiter => ({ settled: (outcome) => told.push([name, outcome]), failed: (err) => assert.fail(`${name}: ${String(err)}`) });
      const push = await a.create(init(), 60_000);
      a.listen(push.id, waiter('a1'));
      b.listen(push.id, waiter('b1'));
      b.listen(push.id, waiter('b2'));
      assert.equal(await b.wait(push.id, 50), undefined, 'a wait that gives up');
      assert.equal(told.length, 0, 'nobody is told while the push is open');
      await a.decide(push.id, { kind: 'approve', deviceId: 'dev-1' });
      await until(() => (told.length >= 3 ? true : undefined), 'the three waiters told');
      const approve = { kind: 'approve', deviceId: 'dev-1' };
      assert.deepEqual([...told].sort(([x], [y]) => x.localeCompare(y)), [['a1', approve], ['b1', approve], ['b2', approve]]);
      b.listen(push.id, waiter('late'));
      b.listen('no-such-push', waiter('unknown'));
      await until(() => (told.length >= 5 ? true : undefined), 'the late waiters told');
      assert.deepEqual(told.slice(3).sort(([x], [y]) => x.localeCompare(y)), [['late', approve], ['unknown', undefined]]);
      assert.deepEqual(await b.wait(push.id), approve);
      assert.equal(told.length, 5, 'each told once');
    });

    test('a decision made before a node waits is read, not missed', async (t) => {
      const [a, b] = await twoNodes(backend, t);
      const push = await a.create(init(), 60_000);
      await a.decide(push.id, { kind: 'deny', deviceId: 'dev-1' });
      assert.deepEqual(await b.wait(push.id), { kind: 'deny', deviceId: 'dev-1' });
      assert.equal(await b.wait('no-such-push'), undefined);
      assert.equal(await b.wait((await a.create(init(), 60_000)).id, 50), undefined, 'still open after maxWait');
    });

    test('the outcome is claimed exactly once across nodes; the push is then gone and the attempt starts again', async (t) => {
      const [a, b] = await twoNodes(backend, t);
      const { push } = await a.join(init(), 60_000, performance.now());
      assert.equal(await b.claim(push.id), undefined, 'nothing to claim while open');
      await b.decide(push.id, { kind: 'approve', deviceId: 'dev-1' });
      const claims = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).claim(push.id)));
      assert.deepEqual(claims.filter(Boolean), [{ kind: 'approve', deviceId: 'dev-1' }]);
      assert.equal(await a.get(push.id), undefined);
      const again = await b.join(init(), 60_000, 0);
      assert.equal(again.created, true);
    });

    test('a request that arrived before the decision joins the decided push; one that arrived after gets a new push', async (t) => {
      const [a, b] = await twoNodes(backend, t);
      const early = performance.now();
      const { push } = await a.join(init(), 60_000, early);
      await new Promise((r) => setTimeout(r, 20));
      await a.decide(push.id, { kind: 'approve', deviceId: 'dev-1' });
      await new Promise((r) => setTimeout(r, 20));
      const before = await b.join(init(), 60_000, early);
      assert.equal(before.created, false);
      assert.equal(before.push.id, push.id);
      assert.deepEqual(before.push.outcome, { kind: 'approve', deviceId: 'dev-1' });
      const later = await b.join(init(), 60_000, performance.now());
      assert.equal(later.created, true);
      assert.notEqual(later.push.id, push.id);
    });

    test("a node whose wall clock runs a minute ahead decides: a request arriving after the decision still gets a new push, not the approval", async (t) => {
      const [a, b] = await twoNodes(backend, t);
      const { push } = await a.join(init(), 60_000, performance.now());
      const wallClock = Date.now;
      Date.now = () => wallClock() + 60_000;
      try {
        assert.equal(await b.decide(push.id, { kind: 'approve', deviceId: 'dev-1' }), true);
      } finally {
        Date.now = wallClock;
      }
      const later = await a.join(init(), 60_000, performance.now());
      assert.equal(later.created, true, "a new attempt must not ride on the earlier approval");
    });

    test('a push nobody answers times out for the waiters of both nodes; a later answer is refused', async (t) => {
      const [a, b] = await twoNodes(backend, t);
      const { push } = await a.join(init(), 300, performance.now());
      const joined = await b.join(init(), 300, performance.now());
      assert.equal(joined.push.id, push.id);
      const outcomes = await Promise.all([a.wait(push.id), b.wait(push.id)]);
      assert.deepEqual(outcomes, [{ kind: 'timeout' }, { kind: 'timeout' }]);
      assert.equal(await b.decide(push.id, { kind: 'approve', deviceId: 'dev-1' }), false);
      assert.deepEqual((await b.get(push.id))?.outcome, { kind: 'timeout' });
      assert.deepEqual(await a.openFor('alice'), []);
    });

    test('a number-matching push has one outstanding State: racing offers leave exactly one standing', async (t) => {
      const [a, b] = await twoNodes(backend, t);
      const push = await a.create(init({ number: '17' }), 60_000);
      const offers = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).offerChallengeState(push.id, undefined, `s${i}`)));
      assert.equal(new Set(offers).size, 1, 'every offer sees the same winner');
      const standing = offers[0]!;
      assert.equal((await b.get(push.id))?.challengeState, standing);
      assert.equal(await a.offerChallengeState(push.id, 'not-the-one', 'x'), standing, 'a stale expectation changes nothing');
      assert.equal(await b.offerChallengeState(push.id, standing, 'renewed'), 'renewed', 'the holder of the standing one may renew it');
      assert.equal(await a.offerChallengeState('no-such-push', undefined, 'y'), undefined);
    });
  });

  describe(`Portal session storage contract: ${backend.name}`, () => {
    before(() => backend.setup());
    after(() => backend.teardown());

    test('a session stored at one node is read at the other until deleted or expired', async (t) => {
      const [a, b] = await backend.fresh(t);
      await a.putSession('portal:k1', '{"id":"x"}', 60_000, false);
      assert.equal(await b.getSession('portal:k1'), '{"id":"x"}');
      await b.putSession('portal:k1', '{"id":"y"}', 60_000, true);
      assert.equal(await a.getSession('portal:k1'), '{"id":"y"}', 'the last write stands');
      await a.deleteSession('portal:k1');
      assert.equal(await b.getSession('portal:k1'), undefined);
      // A request loaded it before the sign-out and saves after: the signed-out session stays gone.
      await b.putSession('portal:k1', '{"id":"z"}', 60_000, true);
      assert.equal(await a.getSession('portal:k1'), undefined, 'not brought back after its deletion');
      const start = Date.now();
      await a.putSession('portal:k2', '{}', 200, false);
      await elapsed(start, 300);
      assert.equal(await b.getSession('portal:k2'), undefined, 'expired');
    });

    test('a session with a TOTP enrollment being set up reads back whole at the other node (secret and parameters)', async (t) => {
      const [a, b] = await backend.fresh(t);
      const times = { ttlMs: 60_000, maxMs: 600_000 };
      const session = new SessionStore(a, Date.now).create();
      session.enrollment = enrollment();
      await new SessionStore(a, Date.now).save(session, undefined, times);
      const read = await new SessionStore(b, Date.now).get(session.id, times);
      assert.deepEqual(read?.session.enrollment, session.enrollment);
      assert.equal(read?.session.csrf, session.csrf);
    });
  });
}
