// The bench's own fast RADIUS encoder (bench/packet.ts, what the load generator sends) against the server's
// decoder and crypto: a wrong hiding or signature would read as "the server rejects everything".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hmacMd5Key } from '../src/radius/md5.js';
import { Attr, Code, decodePacket, findAttribute } from '../src/radius/packet.js';
import { encodeResponse, revealPassword, verifyRequestMessageAuthenticator } from '../src/radius/crypto.js';
import { checkReplyMessageAuthenticator, hideInPlace, verifyResponseAuthenticator, writeAccessRequest, writeStatusServer } from '../bench/packet.js';

const secret = Buffer.from('xyzzy5461');
const maKey = hmacMd5Key(secret);

test('hides a password as RFC 2865 §7.1 shows', () => {
  const hidden = Buffer.alloc(16);
  hidden.write('arctangent');
  hideInPlace(hidden, 0, 16, secret, Buffer.from('0f403f9473978057bd83d5cb98f4227a', 'hex'), 0);
  assert.equal(hidden.toString('hex'), '0dbe708d93d413ce3196e43f782a0aee');
});

test('an Access-Request the server decodes: Message-Authenticator first and valid, the password revealed, at every length', () => {
  for (let n = 0; n <= 120; n++) {
    const buf = Buffer.alloc(4096);
    buf.fill(n + 7, 4, 20); // the Request Authenticator
    const password = Buffer.alloc(n, 'p');
    const len = writeAccessRequest(buf, n, Buffer.from('alice'), password, Buffer.from('123456'), Buffer.from('nas'), secret, maKey, Buffer.from('10.0.0.1'));
    const r = decodePacket(buf.subarray(0, len));
    assert.ok(r.ok, `length ${n}`);
    assert.equal(r.packet.code, Code.AccessRequest);
    assert.equal(r.packet.identifier, n);
    assert.equal(r.packet.messageAuthenticatorOffset, 20);
    assert.ok(verifyRequestMessageAuthenticator(r.packet, secret), `length ${n}`);
    assert.equal(findAttribute(r.packet, Attr.UserName)?.toString(), 'alice');
    assert.equal(findAttribute(r.packet, Attr.CallingStationId)?.toString(), '10.0.0.1');
    assert.equal(revealPassword(findAttribute(r.packet, Attr.UserPassword)!, secret, r.packet.authenticator)?.toString(), `${'p'.repeat(n)}123456`);
  }
});

test("a Status-Server the server accepts, and a signed reply's authenticators checked (a wrong one refused)", () => {
  const buf = Buffer.alloc(64);
  buf.fill(3, 4, 20);
  const r = decodePacket(buf.subarray(0, writeStatusServer(buf, 9, maKey)));
  assert.ok(r.ok && r.packet.code === Code.StatusServer && verifyRequestMessageAuthenticator(r.packet, secret));
  const reply = encodeResponse({ code: Code.AccessAccept, identifier: 9, requestAuthenticator: buf.subarray(4, 20), attributes: Buffer.from([18, 4, 0x6f, 0x6b]), proxyStates: [], secret, withMessageAuthenticator: true });
  assert.ok(verifyResponseAuthenticator(reply, reply.length, buf, 4, secret));
  assert.equal(checkReplyMessageAuthenticator(reply, reply.length, buf, 4, maKey), 0); // first
  assert.ok(!verifyResponseAuthenticator(reply, reply.length, buf, 4, Buffer.from('other')));
  reply[reply.length - 1]! ^= 1;
  assert.equal(checkReplyMessageAuthenticator(reply, reply.length, buf, 4, maKey), 3); // bad
});
