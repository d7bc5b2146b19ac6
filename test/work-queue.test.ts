// The bounded, deadline-aware queue in front of every first factor (src/auth/work-queue.ts): unit tests
// with a controlled clock and hand-released jobs, no sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SHED, WorkQueue } from '../src/auth/work-queue.js';
import { CheckTimes } from '../src/auth/bounded-first-factor.js';

/** A job that finishes when the test says so. */
function gate() {
  let open!: () => void;
  const done = new Promise<void>((resolve) => (open = resolve));
  return { open, job: async () => done.then(() => 'done') };
}

const tick = () => new Promise((r) => setImmediate(r));

test('runs at most `concurrency` jobs at once and starts the next when one ends', async () => {
  const q = new WorkQueue({ concurrency: 2, maxQueued: 10, now: () => 0 });
  const gates = [gate(), gate(), gate()];
  const results = gates.map((g, i) => q.run(`u${i}`, Infinity, 'other', g.job));
  await tick();
  assert.equal(q.stats.running, 2);
  assert.equal(q.queued, 1);
  gates[0]!.open();
  assert.equal(await results[0], 'done');
  await tick();
  assert.equal(q.stats.running, 2, 'the third started');
  gates[1]!.open();
  gates[2]!.open();
  assert.deepEqual(await Promise.all(results), ['done', 'done', 'done']);
});

test('one check per username at a time: a second one for the same name waits, others pass it', async () => {
  const q = new WorkQueue({ concurrency: 4, maxQueued: 10, now: () => 0 });
  const a1 = gate();
  const a2 = gate();
  const b = gate();
  const first = q.run('alice', Infinity, 'other', a1.job);
  const second = q.run('alice', Infinity, 'other', a2.job);
  const bob = q.run('bob', Infinity, 'other', b.job);
  await tick();
  assert.equal(q.stats.running, 2, 'alice once, and bob');
  b.open();
  assert.equal(await bob, 'done');
  a1.open();
  await first;
  await tick();
  assert.equal(q.stats.running, 1, 'now alice\'s second');
  a2.open();
  assert.equal(await second, 'done');
});

test('a job that can no longer meet its deadline is shed, not started', async () => {
  let now = 0;
  const q = new WorkQueue({ concurrency: 1, maxQueued: 10, now: () => now });
  const busy = gate();
  const running = q.run('a', Infinity, 'other', busy.job);
  const late = q.run('b', 5_000, 'other', async () => 'ran');
  await tick();
  now = 6_000;
  busy.open();
  await running;
  assert.equal(await late, SHED);
  assert.equal(q.stats.shed, 1);
});

test('a full queue sheds the newest stranger for a familiar source, and refuses a stranger outright', async () => {
  const q = new WorkQueue({ concurrency: 1, maxQueued: 2, now: () => 0 });
  const busy = gate();
  const running = q.run('a', Infinity, 'other', busy.job);
  const s1 = q.run('s1', Infinity, 'other', async () => 's1');
  const s2 = q.run('s2', Infinity, 'other', async () => 's2');
  const s3 = q.run('s3', Infinity, 'other', async () => 's3');
  assert.equal(await s3, SHED, 'no room for another stranger');
  const familiar = q.run('alice', Infinity, 'familiar', async () => 'alice');
  assert.equal(await s2, SHED, 'the newest stranger made room');
  busy.open();
  await running;
  assert.equal(await familiar, 'alice');
  assert.equal(await s1, 's1');
  assert.equal(q.stats.shed, 2);
});

test('CheckTimes draws refusal delays from the durations of real checks', () => {
  let r = 0;
  const times = new CheckTimes(4, () => r);
  assert.equal(times.sample(), 0, 'nothing measured yet');
  for (const ms of [10, 20, 30, 40, 50]) times.record(ms);
  const drawn = [0, 0.25, 0.5, 0.99].map((x) => ((r = x), times.sample()));
  assert.deepEqual(drawn, [50, 20, 30, 40], 'the oldest (10) was replaced by the newest (50)');
});
