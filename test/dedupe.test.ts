import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { DedupeCache, type DuplicateStatus } from '../src/radius/dedupe.js';
import { Peer, ipv6Octets } from '../src/radius/udp-socket.js';

const NAS = Peer.ipv4('192.0.2.1', 1812);

/** A cache whose requests are named by strings: each name is a Request Authenticator from one NAS. */
function cache(maxEntries = 3) {
  let now = 0;
  const c = new DedupeCache({ windowMs: 1000, maxEntries, inFlightMs: 5000, now: () => now });
  const authenticator = (name: string) => Buffer.concat([Buffer.from(name), Buffer.alloc(16)]).subarray(0, 16);
  const begin = (name: string): DuplicateStatus => c.begin(0, NAS, 1, authenticator(name));
  /** Begins a request and returns its ticket. */
  const ticket = (name: string): number => {
    const s = begin(name);
    assert.equal(s.kind, 'new', `${name} is new`);
    return (s as { ticket: number }).ticket;
  };
  return { c, begin, ticket, advance: (ms: number) => (now += ms) };
}

/** The status without the ticket's number: tests compare kinds and replies. */
function kindOf(s: DuplicateStatus): DuplicateStatus | { kind: 'new' } {
  return s.kind === 'new' ? { kind: 'new' } : s;
}

test('a request in flight drops its copies; once answered its reply is re-sent until the window ends', () => {
  const { c, begin, ticket, advance } = cache();
  const a = ticket('a');
  assert.deepEqual(begin('a'), { kind: 'in_flight' });
  c.answered(a, Buffer.from('reply'));
  assert.deepEqual(begin('a'), { kind: 'answered', reply: Buffer.from('reply') });
  advance(1000);
  assert.deepEqual(kindOf(begin('a')), { kind: 'new' }, 'after the window the same key is a new request');
});

test('answered entries are bounded: the oldest goes first', () => {
  const { c, begin, ticket } = cache(2);
  for (const k of ['a', 'b', 'c']) c.answered(ticket(k), Buffer.from(k));
  assert.equal(begin('a').kind, 'new');
  assert.equal(begin('c').kind, 'answered');
});

test('requests being decided are bounded too, and forgotten after inFlightMs', () => {
  const { c, begin, ticket, advance } = cache(2);
  const a = ticket('a');
  ticket('b');
  assert.equal(begin('c').kind, 'overloaded');
  c.abandon(a);
  assert.equal(begin('a').kind, 'new', 'an abandoned request is decided afresh');
  advance(5000);
  assert.equal(begin('d').kind, 'new', 'stale in-flight entries expired');
  assert.equal(c.size, 1);
});

test('a request forgotten in flight is decided afresh: only the fresh decision is kept, for its own window', () => {
  const { c, begin, ticket, advance } = cache();
  const first = ticket('a');
  advance(4999);
  ticket('b'); // the once-a-second sweep runs now, before 'a' is stale: begin() itself finds it stale next
  advance(1);
  const second = ticket('a');
  c.answered(first, Buffer.from('first'));
  assert.deepEqual(begin('a'), { kind: 'in_flight' }, 'the stale decision answers nothing for the fresh one');
  c.abandon(first);
  assert.deepEqual(begin('a'), { kind: 'in_flight' }, 'nor does a stale ticket abandon it');
  advance(500);
  c.answered(second, Buffer.from('second'));
  c.answered(second, Buffer.from('again'));
  advance(600);
  assert.deepEqual(begin('a'), { kind: 'answered', reply: Buffer.from('second') });
  advance(400);
  assert.equal(begin('a').kind, 'new');
});

test('a ticket in flight gives back its Request Authenticator; answered, abandoned or forgotten, none', () => {
  let now = 0;
  const c = new DedupeCache({ windowMs: 1000, maxEntries: 8, inFlightMs: 5000, now: () => now });
  const out = Buffer.alloc(16);
  const start = (authenticator: Buffer) => (c.begin(0, NAS, 1, authenticator) as { ticket: number }).ticket;
  const [a, b, d] = [randomBytes(16), Buffer.alloc(16, 0xff), randomBytes(16)];
  const [ta, tb] = [start(a), start(b)];
  assert.ok(c.requestAuthenticator(ta, out));
  assert.deepEqual(out, a);
  assert.ok(c.requestAuthenticator(tb, out));
  assert.deepEqual(out, b, 'every bit, the sign bits of its words too');
  c.answered(ta, Buffer.from('reply'));
  assert.equal(c.requestAuthenticator(ta, out), false, 'answered');
  c.abandon(tb);
  assert.equal(c.requestAuthenticator(tb, out), false, 'abandoned');
  const td = start(d);
  now += 5000;
  start(randomBytes(16)); // its sweep forgets d
  assert.equal(c.requestAuthenticator(td, out), false, 'forgotten in flight');
});

test('keys differ by listener, address, port, identifier and authenticator; the same request is the same key', () => {
  const c = new DedupeCache({ windowMs: 1000, maxEntries: 100, inFlightMs: 5000, now: () => 0 });
  const auth = Buffer.alloc(16, 7);
  const requests: [number, Peer, number, Buffer][] = [
    [0, NAS, 5, auth],
    [1, NAS, 5, auth],
    [0, Peer.ipv4('192.0.2.10', 1812), 5, auth],
    [0, Peer.ipv4('192.0.2.1', 1813), 5, auth],
    [0, NAS, 6, auth],
    [0, NAS, 5, Buffer.alloc(16, 8)],
    [0, Peer.fromText('2001:db8::1', 1812), 5, auth],
    [0, Peer.fromText('2001:db8::2', 1812), 5, auth],
    [0, Peer.fromText('::ffff:192.0.2.1', 1812), 5, auth],
  ];
  for (const r of requests) assert.equal(c.begin(...r).kind, 'new');
  for (const r of requests) assert.equal(c.begin(...r).kind, 'in_flight');
  assert.equal(c.begin(0, Peer.ipv4('192.0.2.1', 1812), 5, Buffer.alloc(16, 7)).kind, 'in_flight', 'equal values, other objects');
  assert.equal(c.size, requests.length);
});

test('IPv6 text gives the octets a datagram carries', () => {
  assert.equal(ipv6Octets('2001:db8::1').toString('hex'), '20010db8000000000000000000000001');
  assert.equal(ipv6Octets('::').toString('hex'), '0'.repeat(32));
  assert.equal(ipv6Octets('fe80::1:2%eth0').toString('hex'), 'fe800000000000000000000000010002');
  assert.equal(ipv6Octets('::ffff:192.0.2.1').toString('hex'), '00000000000000000000ffffc0000201');
  assert.equal(ipv6Octets('1:2:3:4:5:6:7:8').toString('hex'), '00010002000300040005000600070008');
  assert.throws(() => ipv6Octets('192.0.2.1'), /not an IPv6 address/);
});

test('replies come back byte for byte, and long ones (relayed EAP) push no answer out before the entry bound', () => {
  // 100 entries. Replies of 20..4096 bytes (deterministic sizes and contents) wrap the arena many times;
  // each of the last 60 answers (within the bound and the window) must be there, with exactly its bytes.
  const { c, begin, ticket, advance } = cache(100);
  const stored = new Map<string, Buffer>();
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  let found = 0;
  for (let i = 0; i < 5000; i++) {
    const key = `k${i}`;
    const t = ticket(key);
    const reply = Buffer.alloc(i % 50 === 0 ? 4096 : 20 + (next() % 300), i % 251);
    reply.writeUInt32BE(i, 0);
    c.answered(t, reply);
    stored.set(key, reply);
    reply.fill(0xee); // the caller may reuse its buffer: the cache kept a copy
    stored.set(key, Buffer.alloc(reply.length, i % 251));
    stored.get(key)!.writeUInt32BE(i, 0);
    for (let back = 1; back <= 60 && back <= i; back += 7) {
      const old = `k${i - back}`;
      const r = begin(old);
      if (r.kind !== 'answered') assert.fail(`${old} was forgotten within the bound and the window`);
      found++;
      assert.ok(r.reply.equals(stored.get(old)!), `${old}: wrong bytes`);
    }
    advance(0);
  }
  assert.ok(begin('k4999').kind === 'answered', 'the newest reply is always there');
  assert.ok(found > 10_000, `only ${found} cached answers checked`);
});

test('20,000 random steps against a plain model: the same answers (chains, frees and reuse of entries)', () => {
  // 3,000 keys on 2,048 buckets: chains of several entries, unlinked from the head, middle and end.
  const { c, begin, advance } = cache(1000);
  type Model = { state: 'in_flight'; since: number; ticket: number } | { state: 'answered'; expires: number; reply: Buffer };
  const model = new Map<string, Model>();
  const live: number[] = [];
  const seen = { new: 0, in_flight: 0, answered: 0, overloaded: 0 };
  let now = 0;
  let seed = 11;
  const next = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  for (let step = 0; step < 20_000; step++) {
    const op = next(10);
    if (op < 5) {
      const key = `r${next(3000)}`;
      let m = model.get(key);
      if (m?.state === 'answered' && m.expires <= now) m = undefined;
      const got = begin(key);
      seen[got.kind]++;
      if (m?.state === 'answered') assert.deepEqual(got, { kind: 'answered', reply: m.reply }, `step ${step}: ${key}`);
      else if (m?.state === 'in_flight' && now - m.since < 5000) assert.equal(got.kind, 'in_flight', `step ${step}: ${key}`);
      else {
        assert.equal(got.kind, 'new', `step ${step}: ${key}`);
        const ticket = (got as { ticket: number }).ticket;
        model.set(key, { state: 'in_flight', since: now, ticket });
        live.push(ticket);
      }
    } else if (op < 9 && live.length > 0) {
      const ticket = live.splice(next(live.length), 1)[0]!;
      const key = [...model].find(([, m]) => m.state === 'in_flight' && m.ticket === ticket)?.[0];
      if (op < 8) {
        const reply = Buffer.from(`reply ${step}`);
        c.answered(ticket, reply);
        if (key) model.set(key, { state: 'answered', expires: now + 1000, reply });
      } else {
        c.abandon(ticket);
        if (key) model.delete(key);
      }
    } else {
      advance(100);
      now += 100;
    }
  }
  assert.ok(seen.new > 3000 && seen.in_flight > 500 && seen.answered > 500, `too few of each: ${JSON.stringify(seen)}`);
});
