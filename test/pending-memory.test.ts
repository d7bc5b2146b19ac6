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
