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

test('a key answered twice (its first copy outlived inFlightMs) keeps the later reply until that one expires', () => {
  const { c, advance } = cache();
  assert.equal(c.begin('a').kind, 'new');
  advance(5000);
  assert.equal(c.begin('a').kind, 'new', 'the first copy is forgotten as in flight');
  c.answered('a', Buffer.from('first'));
  advance(500);
  c.answered('a', Buffer.from('second'));
  advance(600);
  assert.deepEqual(c.begin('a'), { kind: 'answered', reply: Buffer.from('second') });
  advance(400);
  assert.equal(c.begin('a').kind, 'new');
});

test('keys differ by listener, address, port, identifier and authenticator; the same request gives the same key', () => {
  const auth = Buffer.alloc(16, 7);
  const base = DedupeCache.key(0, '192.0.2.1', 1812, 5, auth);
  const others = [
    DedupeCache.key(1, '192.0.2.1', 1812, 5, auth),
    DedupeCache.key(0, '192.0.2.10', 1812, 5, auth),
    DedupeCache.key(0, '192.0.2.1', 1813, 5, auth),
    DedupeCache.key(0, '192.0.2.1', 1812, 6, auth),
    DedupeCache.key(0, '192.0.2.1', 1812, 5, Buffer.alloc(16, 8)),
    DedupeCache.key(0, '2001:db8::1', 1812, 5, auth),
  ];
  assert.equal(new Set([base, ...others]).size, 7);
  assert.equal(DedupeCache.key(0, '192.0.2.1', 1812, 5, Buffer.alloc(16, 7)), base);
});

test('replies come back byte for byte, and long ones (relayed EAP) push no answer out before the entry bound', () => {
  // 100 entries. Replies of 20..4096 bytes (deterministic sizes and contents) wrap the arena many times;
  // each of the last 60 answers (within the bound and the window) must be there, with exactly its bytes.
  const { c, advance } = cache(100);
  const stored = new Map<string, Buffer>();
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  let found = 0;
  for (let i = 0; i < 5000; i++) {
    const key = `k${i}`;
    c.begin(key);
    const reply = Buffer.alloc(i % 50 === 0 ? 4096 : 20 + (next() % 300), i % 251);
    reply.writeUInt32BE(i, 0);
    c.answered(key, reply);
    stored.set(key, reply);
    reply.fill(0xee); // the caller may reuse its buffer: the cache kept a copy
    stored.set(key, Buffer.alloc(reply.length, i % 251));
    stored.get(key)!.writeUInt32BE(i, 0);
    for (let back = 1; back <= 60 && back <= i; back += 7) {
      const old = `k${i - back}`;
      const r = c.begin(old);
      if (r.kind !== 'answered') assert.fail(`${old} was forgotten within the bound and the window`);
      found++;
      assert.ok(r.reply.equals(stored.get(old)!), `${old}: wrong bytes`);
    }
    advance(0);
  }
  assert.ok(c.begin('k4999').kind === 'answered', 'the newest reply is always there');
  assert.ok(found > 10_000, `only ${found} cached answers checked`);
});
