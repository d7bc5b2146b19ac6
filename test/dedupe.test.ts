import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DedupeCache } from '../src/radius/dedupe.js';

function cache(maxEntries = 3) {
  let now = 0;
  const c = new DedupeCache({ windowMs: 1000, maxEntries, inFlightMs: 5000, now: () => now });
  return { c, advance: (ms: number) => (now += ms) };
}

test('a request in flight drops its copies; once answered its reply is re-sent until the window ends', () => {
  const { c, advance } = cache();
  assert.deepEqual(c.begin('a'), { kind: 'new' });
  assert.deepEqual(c.begin('a'), { kind: 'in_flight' });
  c.answered('a', Buffer.from('reply'));
  assert.deepEqual(c.begin('a'), { kind: 'answered', reply: Buffer.from('reply') });
  advance(1000);
  assert.deepEqual(c.begin('a'), { kind: 'new' }, 'after the window the same key is a new request');
});

test('answered entries are bounded: the oldest goes first', () => {
  const { c } = cache(2);
  for (const k of ['a', 'b', 'c']) {
    c.begin(k);
    c.answered(k, Buffer.from(k));
  }
  assert.equal(c.begin('a').kind, 'new');
  assert.equal(c.begin('c').kind, 'answered');
});

test('requests being decided are bounded too, and forgotten after inFlightMs', () => {
  const { c, advance } = cache(2);
  assert.equal(c.begin('a').kind, 'new');
  assert.equal(c.begin('b').kind, 'new');
  assert.equal(c.begin('c').kind, 'overloaded');
  c.abandon('a');
  assert.equal(c.begin('c').kind, 'new');
  advance(5000);
  assert.equal(c.begin('d').kind, 'new', 'stale in-flight entries expired');
  assert.equal(c.size, 1);
});
