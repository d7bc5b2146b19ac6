// MemoryPendingPushes' deadlines: one timer for every push (src/mfa/pending.ts Deadlines), so pushes
// created with different timeouts must still each time out at their own time, and a push decided
// before its deadline must not be touched when that deadline comes. The waits are the clock: no sleeps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryPendingPushes, type PendingPushInit, type PushOutcome } from '../src/mfa/pending.js';

const init = (username: string): PendingPushInit => ({ username, clientName: 'vpn', nasIp: undefined, nasIdentifier: undefined, callingStation: undefined, pinRequired: false, number: undefined });
const approve: PushOutcome = { kind: 'approve', deviceId: 'dev-1' };

test('pushes with different timeouts each time out at their own time, earliest first, whatever order they were made in', async (t) => {
  const pending = new MemoryPendingPushes(Date.now);
  t.after(() => pending.close());
  const timeouts = { slow: 1000, fast: 60, mid: 180 };
  const order: string[] = [];
  const open: number[] = [];
  await Promise.all(
    Object.entries(timeouts).map(async ([name, ms]) => {
      const from = performance.now();
      const push = await pending.create(init(name), ms);
      assert.deepEqual(await pending.wait(push.id), { kind: 'timeout' });
      assert.ok(performance.now() - from >= ms, `${name} timed out after ${performance.now() - from} ms, before its ${ms} ms`);
      order.push(name);
      open.push(pending.openCount);
    }),
  );
  assert.deepEqual(order, ['fast', 'mid', 'slow']);
  // Not all at the slowest push's deadline: each at its own.
  assert.deepEqual(open, [2, 1, 0]);
  assert.equal(pending.openCount, 0);
});

test('a push decided before its deadline keeps its outcome when the deadline passes', async (t) => {
  const pending = new MemoryPendingPushes(Date.now);
  t.after(() => pending.close());
  const early = await pending.create(init('alice'), 40);
  assert.equal(await pending.decide(early.id, approve), true);
  // Times out after early's deadline has come and gone.
  const later = await pending.create(init('bob'), 120);
  assert.deepEqual(await pending.wait(later.id), { kind: 'timeout' });
  assert.deepEqual((await pending.get(early.id))?.outcome, approve, 'kept for the request that comes back with its State');
  assert.deepEqual(await pending.claim(early.id), approve);
  assert.equal(await pending.get(early.id), undefined, 'claimed: forgotten');
});

test('deadlines left behind by approved pushes are dropped, and the pushes still open keep theirs, in order', { timeout: 10_000 }, async (t) => {
  const pending = new MemoryPendingPushes(Date.now);
  t.after(() => pending.close());
  // Each approved and claimed push leaves two deadlines behind: 600 of them are enough to be dropped.
  const approveMany = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const push = await pending.create(init(`user${i}`), 60_000);
      assert.equal(await pending.decide(push.id, approve), true);
      assert.deepEqual(await pending.claim(push.id), approve);
    }
  };
  // Decided, not claimed: its keep-decided deadline stands, high in the heap's array at first.
  const kept = await pending.create(init('erin'), 60_000);
  await pending.decide(kept.id, approve);
  const open: { name: string; id: string }[] = [];
  for (const [name, ms] of [['slow', 900], ['fast', 150], ['mid', 400]] as const) {
    open.push({ name, id: (await pending.create(init(name), ms)).id });
    await approveMany(600);
  }
  const order: string[] = [];
  const stillOpen: number[] = [];
  await Promise.all(
    open.map(async ({ name, id }) => {
      assert.deepEqual(await pending.wait(id), { kind: 'timeout' });
      order.push(name);
      stillOpen.push(pending.openCount);
    }),
  );
  assert.deepEqual(order, ['fast', 'mid', 'slow']);
  assert.deepEqual(stillOpen, [2, 1, 0]);
  assert.deepEqual((await pending.get(kept.id))?.outcome, approve);
});
