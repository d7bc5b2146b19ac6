// The State of our Access-Challenge as real VPN servers hand it back. ocserv (through radcli) keeps it as a
// C string and returns only the octets before the first 0x00; these tests play that NAS over real UDP.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { newChallenge } from '../src/flow/challenge.js';
import { Attr, Code } from '../src/radius/packet.js';
import { MemoryState } from '../src/state/memory.js';
import { enrollTotp, startTestServer, type EnrolledUser, type TestServer } from './helpers/server.js';
import { buildAccessRequest, decodeReply, UdpClient } from './helpers/udp.js';

/** The issue saw 11 of 200 ocserv challenge logins fail; 200 raw 16-octet States all free of 0x00 has odds of 3.5e-6. */
const LOGINS = 200;
const PRINTABLE = /^[\x21-\x7e]+$/;

async function challengeServer(t: TestContext): Promise<{ s: TestServer; alice: EnrolledUser; c: UdpClient }> {
  // first_factor none: no argon2 per login, so 200 logins take well under a second of server time.
  const s = await startTestServer({ config: { first_factor: { type: 'none' }, mfa: { challenge: { timeout: '60s' } } } });
  t.after(() => s.close());
  const alice = await enrollTotp(s.store, 'alice', { method: 'challenge' });
  const c = await UdpClient.open();
  t.after(() => c.close());
  return { s, alice, c };
}

async function exchange(s: TestServer, c: UdpClient, password: string, state?: Buffer) {
  const req = buildAccessRequest({ secret: s.secret, userName: 'alice', password, attributes: state ? [[Attr.State, state]] : [] });
  const reply = await c.request(req, s.authPort);
  assert.ok(reply, 'no reply');
  const { packet, verified } = decodeReply(reply.bytes, req, s.secret);
  assert.ok(verified);
  return { code: packet.code, state: packet.attributes.find((a) => a.type === Attr.State)?.value };
}

/** What ocserv sends back: the State up to (not including) its first 0x00. */
function asCString(state: Buffer): Buffer {
  const nul = state.indexOf(0);
  return nul === -1 ? state : state.subarray(0, nul);
}

test('a challenge answered with its State cut at the first 0x00, as ocserv returns it, is accepted', async (t) => {
  const { s, alice, c } = await challengeServer(t);
  for (let i = 0; i < LOGINS; i++) {
    const challenge = await exchange(s, c, 'ignored-by-first-factor-none');
    assert.equal(challenge.code, Code.AccessChallenge);
    const returned = asCString(Buffer.from(challenge.state!));
    // A new time step for every login: the replay guard takes each code once.
    s.clock.advance(30_000);
    const answer = await exchange(s, c, alice.codeAt(s.clock.now()), returned);
    assert.equal(
      answer.code,
      Code.AccessAccept,
      `login ${i + 1}: State ${challenge.state!.toString('hex')} came back as ${returned.toString('hex')} and was refused (${s.logs.audits('alice').at(-1)?.reason})`,
    );
  }
});

test('every State is printable ASCII of at least 128 random bits, and no two are alike', async (t) => {
  const { s, c } = await challengeServer(t);
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const { code, state } = await exchange(s, c, 'ignored-by-first-factor-none');
    assert.equal(code, Code.AccessChallenge);
    const text = state!.toString('latin1');
    assert.match(text, PRINTABLE, `State ${state!.toString('hex')} is not printable ASCII`);
    // base64url carries 6 bits a character.
    assert.ok(text.length * 6 >= 128, `State ${text} is too short to be unguessable`);
    seen.add(text);
  }
  assert.equal(seen.size, 50);
});

test('a State made from random octets that are all 0x00 is still printable and finds its challenge', async () => {
  const state = new MemoryState(() => 0);
  const record = { username: 'alice', clientName: 'nas', method: 'challenge', expires: 60_000 };
  const token = await newChallenge(state, record, (n) => Buffer.alloc(n, 0));
  assert.match(token.toString('latin1'), PRINTABLE);
  // The lookup key of src/flow/access.ts: the hex of the octets the NAS sent back.
  assert.deepEqual(await state.takeChallenge(token.toString('hex')), record);
  assert.equal(await state.takeChallenge(token.toString('hex')), undefined, 'a State is good for one answer only');
});
