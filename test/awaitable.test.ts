// shared/awaitable.ts, and the request flow built on it: a decision is made at once when every step
// answers at once (memory state, SQLite's user cache, first_factor none), and waits from the first step
// that answers with a promise (Redis, PostgreSQL, a password hash) with the same outcome.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { noFirstFactor } from '../src/auth/none.js';
import { configSchema } from '../src/config/schema.js';
import { decideAccess, type AccessAttempt, type AccessDeps, type Decision, type Hold } from '../src/flow/access.js';
import { Policy } from '../src/flow/policy.js';
import { RateLimiter } from '../src/flow/rate-limit.js';
import { secondFactorSettings } from '../src/flow/second-factor.js';
import { usernameRules } from '../src/flow/username.js';
import { allDone, run, then, wait, type Flow } from '../src/shared/awaitable.js';
import { MemoryState } from '../src/state/memory.js';
import type { EphemeralState } from '../src/state/state.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { baseConfig, createClock, enrollTotp, mergeConfig } from './helpers/server.js';

function* addUp(steps: (() => number | Promise<number>)[]): Flow<number> {
  let sum = 0;
  for (const step of steps) sum += yield* wait(step());
  return sum;
}

test('run: a flow whose steps all answer at once gives its value at once; one promise makes it wait from there', async () => {
  assert.equal(run(addUp([() => 1, () => 2])), 3);
  const order: string[] = [];
  const later = run(addUp([() => 1, () => (order.push('async step'), Promise.resolve(2)), () => (order.push('after it'), 3)]));
  order.push('run returned');
  assert.ok(later instanceof Promise);
  assert.equal(await later, 6);
  assert.deepEqual(order, ['async step', 'run returned', 'after it']);
});

test("run: a step's failure is thrown into the flow, which may catch it; else it is the flow's (thrown or rejected)", async () => {
  function* guarded(step: () => number | Promise<number>): Flow<string> {
    try {
      return `ok ${yield* wait(step())}`;
    } catch (err) {
      return `caught ${(err as Error).message}`;
    }
  }
  assert.equal(await run(guarded(() => Promise.reject(new Error('async')))), 'caught async');
  assert.equal(run(guarded(() => { throw new Error('sync'); })), 'caught sync');
  assert.throws(() => run(addUp([() => { throw new Error('at once'); }])), /at once/);
  await assert.rejects(async () => run(addUp([() => Promise.resolve(1), () => { throw new Error('later'); }])), /later/);
});

test('then and allDone: at once for values, a promise only when a step made one', async () => {
  assert.equal(then(2, (x) => x * 3), 6);
  assert.equal(await then(Promise.resolve(2), (x) => x * 3), 6);
  assert.equal(allDone([1, undefined, true]), undefined);
  const waited = allDone([1, Promise.resolve(2)]);
  assert.ok(waited instanceof Promise);
  assert.equal(await waited, undefined);
});

async function flowSetup(t: TestContext, state: (now: () => number) => EphemeralState) {
  const config = configSchema.parse(mergeConfig(baseConfig('127.0.0.1', 'unused'), { store: { path: ':memory:' }, first_factor: { type: 'none' } }));
  const clock = createClock();
  const store = openSqliteStore(config.store, randomBytes(32), { now: clock.now });
  const s = state(clock.now);
  const pending = s.pushes();
  t.after(async () => {
    await pending.close();
    store.close();
  });
  const usernames = usernameRules(config.usernames.realms);
  const deps: AccessDeps = {
    config, settings: secondFactorSettings(config), policy: new Policy(config, usernames), store, state: s, firstFactor: noFirstFactor, portalFirstFactor: noFirstFactor,
    usernames, pending, pushSender: undefined, onLock: () => {}, rates: new RateLimiter(() => performance.now()), now: clock.now,
  };
  const alice = await enrollTotp(store, 'alice');
  const attempt = (password: string): AccessAttempt => ({
    q: 1, clientName: 'test-nas', username: 'alice', password, state: undefined, nasIp: '192.0.2.1', nasIdentifier: undefined,
    callingStation: '198.51.100.7', nasPort: undefined, receivedAt: clock.now(), arrival: performance.now(),
  });
  return { deps, attempt, code: () => alice.codeAt(clock.now()) };
}

const outcome = (d: Decision | Hold) => (d.kind === 'hold' ? ['hold'] : [d.kind, d.reason]);

test('decideAccess with the state in memory and the user in SQLite: an accept is decided at once', async (t) => {
  const s = await flowSetup(t, (now) => new MemoryState(now));
  const code = s.code();
  const first = decideAccess(s.attempt(code), s.deps);
  assert.ok(!(first instanceof Promise), 'no step of this flow waits');
  assert.deepEqual(outcome(first), ['accept', 'second_factor_ok']);
  // A failure that counts toward lockout writes through Slot.fail, which is async: decided later.
  assert.deepEqual(outcome(await decideAccess(s.attempt(code), s.deps)), ['reject', 'replay']);
});

test('decideAccess with a state that answers with promises (as Redis does): the same decisions, later', async (t) => {
  // Every method of the memory state, answered through a promise.
  const later = (now: () => number) =>
    new Proxy(new MemoryState(now), {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' && prop !== 'pushes' ? (...args: unknown[]) => Promise.resolve((v as (...a: unknown[]) => unknown).apply(target, args)) : v;
      },
    });
  const s = await flowSetup(t, later);
  const code = s.code();
  const first = decideAccess(s.attempt(code), s.deps);
  assert.ok(first instanceof Promise);
  assert.deepEqual(outcome(await first), ['accept', 'second_factor_ok']);
  assert.deepEqual(outcome(await decideAccess(s.attempt(code), s.deps)), ['reject', 'replay']);
});

/** The store, counting its getUser calls. */
function countingReads(deps: AccessDeps) {
  const counted = { reads: 0 };
  const store = deps.store;
  const counting = Object.create(store) as typeof store;
  counting.getUser = (username) => {
    counted.reads++;
    return store.getUser(username);
  };
  return Object.assign(counted, { deps: { ...deps, store: counting } });
}

test('decideAccess reads the user once when no step waited, and again after a password check that waited: a lock that landed meanwhile stands', async (t) => {
  const s = await flowSetup(t, (now) => new MemoryState(now));
  const sync = countingReads(s.deps);
  assert.deepEqual(outcome(decideAccess(s.attempt(s.code()), sync.deps) as Decision), ['accept', 'second_factor_ok']);
  assert.equal(sync.reads, 1, 'nothing else ran between the reads: the record read first is the one');

  // A password check that waits, and during which the user is locked (another node, the CLI, a parallel guess).
  const store = s.deps.store;
  const lockingCheck = countingReads({
    ...s.deps,
    firstFactor: {
      type: 'none',
      async check() {
        await store.lockUser('alice', s.deps.now() + 60_000, 'too_many_failures');
        return { kind: 'accept' };
      },
    },
  });
  const waited = decideAccess(s.attempt('123456'), lockingCheck.deps);
  assert.ok(waited instanceof Promise);
  assert.deepEqual(outcome(await waited), ['reject', 'locked']);
  assert.equal(lockingCheck.reads, 2);
});
