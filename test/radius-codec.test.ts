import { test } from 'node:test';
import assert from 'node:assert/strict';
import radius from 'radius';
import { decodePacket, Code, Attr, findAttribute, findText, encodeAttribute, encodeReplyMessage } from '../src/radius/packet.js';
import {
  revealPassword,
  hidePassword,
  encodeResponse,
  verifyRequestMessageAuthenticator,
  verifyResponse,
  verifyAccountingRequestAuthenticator,
} from '../src/radius/crypto.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const XYZZY = Buffer.from('xyzzy5461');

// RFC 2865 §7.1
const RFC_REQUEST = hex(`01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb 98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d
  93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8 01 10 05 06 00 00 00 03`);
const RFC_ACCEPT = hex(`02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf 9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00
  0e 06 c0 a8 01 03`);

test('decodes the RFC 2865 §7.1 Access-Request and reveals "arctangent"', () => {
  const r = decodePacket(RFC_REQUEST);
  assert.ok(r.ok);
  assert.equal(r.packet.code, Code.AccessRequest);
  assert.equal(findAttribute(r.packet, Attr.UserName)?.toString(), 'nemo');
  const pw = revealPassword(findAttribute(r.packet, Attr.UserPassword)!, XYZZY, r.packet.authenticator);
  assert.equal(pw?.toString(), 'arctangent');
});

test('attribute values and texts are read from the packet: the first of a type, exact bytes, empty values too', () => {
  const body = Buffer.concat([encodeAttribute(Attr.UserName, 'ålice'), encodeAttribute(Attr.NasIdentifier, Buffer.alloc(0)), encodeAttribute(Attr.UserName, 'bob')]);
  const packet = Buffer.concat([Buffer.from([Code.AccessRequest, 9, 0, 20 + body.length]), Buffer.alloc(16, 1), body]);
  const decoded = decodePacket(packet);
  assert.ok(decoded.ok);
  assert.equal(findText(decoded.packet, Attr.UserName), 'ålice');
  assert.deepEqual(findAttribute(decoded.packet, Attr.UserName), Buffer.from('ålice'));
  assert.equal(findText(decoded.packet, Attr.NasIdentifier), '');
  assert.equal(findAttribute(decoded.packet, Attr.NasIdentifier)?.length, 0);
  assert.equal(findText(decoded.packet, Attr.State), undefined);
  assert.deepEqual(decoded.packet.attributes.map((a) => [a.type, a.offset, a.value.toString()]), [[1, 20, 'ålice'], [32, 28, ''], [1, 30, 'bob']]);
});

test('hides a password exactly as RFC 2865 §7.1 shows', () => {
  const auth = RFC_REQUEST.subarray(4, 20);
  assert.deepEqual(hidePassword(Buffer.from('arctangent'), XYZZY, auth), hex('0d be 70 8d 93 d4 13 ce 31 96 e4 3f 78 2a 0a ee'));
});

test('computes the RFC 2865 §7.1 Access-Accept Response Authenticator', () => {
  const attrs = RFC_ACCEPT.subarray(20);
  const out = encodeResponse({
    code: Code.AccessAccept, identifier: 0, requestAuthenticator: RFC_REQUEST.subarray(4, 20), attributes: attrs,
    proxyStates: [], secret: XYZZY, withMessageAuthenticator: false,
  });
  assert.deepEqual(out, RFC_ACCEPT);
});

test('round-trips passwords of every legal length, 1 to 128 octets', () => {
  const auth = Buffer.alloc(16, 7);
  for (let n = 1; n <= 128; n++) {
    const pw = Buffer.alloc(n, 0x41 + (n % 26));
    const hidden = hidePassword(pw, XYZZY, auth);
    assert.equal(hidden.length, Math.max(16, Math.ceil(n / 16) * 16));
    assert.deepEqual(revealPassword(hidden, XYZZY, auth), pw);
  }
  assert.equal(revealPassword(Buffer.alloc(15), XYZZY, auth), undefined);
  assert.equal(revealPassword(Buffer.alloc(144), XYZZY, auth), undefined);
  assert.throws(() => hidePassword(Buffer.alloc(129), XYZZY, auth), RangeError);
});

test('rejects malformed packets with a reason instead of throwing', () => {
  const cases: [Buffer, string][] = [
    [Buffer.alloc(19), 'short_datagram'],
    [Buffer.concat([RFC_REQUEST.subarray(0, 2), Buffer.from([0x00, 0x13]), RFC_REQUEST.subarray(4)]), 'bad_length'],
    [Buffer.concat([RFC_REQUEST.subarray(0, 2), Buffer.from([0x10, 0x01]), RFC_REQUEST.subarray(4)]), 'bad_length'],
    [RFC_REQUEST.subarray(0, 40), 'truncated'],
    [Buffer.concat([Buffer.from([99]), RFC_REQUEST.subarray(1)]), 'unknown_code'],
  ];
  for (const [buf, reason] of cases) assert.deepEqual(decodePacket(buf), { ok: false, reason });
  const badAttr = Buffer.from(RFC_REQUEST);
  badAttr[21] = 1; // User-Name length 1 < 2
  assert.deepEqual(decodePacket(badAttr), { ok: false, reason: 'attribute_overrun' });
  const overrun = Buffer.from(RFC_REQUEST);
  overrun[21] = 60;
  assert.deepEqual(decodePacket(overrun), { ok: false, reason: 'attribute_overrun' });
});

test('ignores bytes past the Length field (RFC 2865 §3 padding)', () => {
  const r = decodePacket(Buffer.concat([RFC_REQUEST, Buffer.alloc(10, 0xff)]));
  assert.ok(r.ok);
  assert.equal(r.packet.raw.length, RFC_REQUEST.length);
});

function requestWithMA(secret: string, extra: [string, unknown][] = []) {
  return radius.encode({
    code: 'Access-Request', secret, identifier: 42,
    attributes: [['User-Name', 'alice'], ['User-Password', 'pw123456'], ...extra] as never,
    add_message_authenticator: true,
  } as never);
}

test('verifies a Message-Authenticator made by an independent implementation, and refuses a wrong secret', () => {
  const r = decodePacket(requestWithMA('s3cret'));
  assert.ok(r.ok && r.packet.messageAuthenticatorOffset > 0);
  assert.equal(verifyRequestMessageAuthenticator(r.packet, Buffer.from('s3cret')), true);
  assert.equal(verifyRequestMessageAuthenticator(r.packet, Buffer.from('wrong')), false);
  const tampered = Buffer.from(r.packet.raw);
  tampered.writeUInt8(tampered.readUInt8(tampered.length - 1) ^ 1, tampered.length - 1);
  const t = decodePacket(tampered);
  assert.ok(t.ok);
  assert.equal(verifyRequestMessageAuthenticator(t.packet, Buffer.from('s3cret')), false);
  // Every octet of the Message-Authenticator counts: one bit changed anywhere in it is refused.
  const at = r.packet.messageAuthenticatorOffset + 2;
  for (let i = 0; i < 16; i++) {
    const forged = Buffer.from(r.packet.raw);
    forged[at + i]! ^= 0x80;
    const f = decodePacket(forged);
    assert.ok(f.ok);
    assert.equal(verifyRequestMessageAuthenticator(f.packet, Buffer.from('s3cret')), false, `octet ${i}`);
  }
});

test('signs replies that an independent implementation verifies: Message-Authenticator first, Proxy-State in order', () => {
  const reqBuf = requestWithMA('s3cret', [['Proxy-State', Buffer.from('one')], ['Proxy-State', Buffer.from('two')]]);
  const req = decodePacket(reqBuf);
  assert.ok(req.ok);
  const proxyStates = req.packet.attributes.filter((a) => a.type === Attr.ProxyState).map((a) => req.packet.raw.subarray(a.offset, a.offset + a.value.length + 2));
  for (const code of [Code.AccessAccept, Code.AccessReject, Code.AccessChallenge]) {
    const out = encodeResponse({
      code, identifier: 42, requestAuthenticator: req.packet.authenticator,
      attributes: Buffer.concat([encodeReplyMessage('hello'), encodeAttribute(Attr.State, Buffer.from('st'))]),
      proxyStates, secret: Buffer.from('s3cret'), withMessageAuthenticator: true,
    });
    assert.equal(radius.verify_response({ request: reqBuf, response: out, secret: 's3cret' }), true);
    assert.equal(radius.verify_response({ request: reqBuf, response: out, secret: 'other' }), false);
    const d = decodePacket(out);
    assert.ok(d.ok);
    assert.equal(d.packet.attributes[0]!.type, Attr.MessageAuthenticator);
    assert.deepEqual(d.packet.attributes.filter((a) => a.type === Attr.ProxyState).map((a) => a.value.toString()), ['one', 'two']);
    assert.equal(verifyResponse(d.packet, req.packet.authenticator, Buffer.from('s3cret')), true);
  }
});

test('splits long Reply-Message text over several attributes', () => {
  const text = 'x'.repeat(600);
  const bytes = encodeReplyMessage(text);
  assert.equal(bytes.length, 600 + 3 * 2);
  assert.equal(bytes[1], 255);
});

test('verifies an Accounting-Request authenticator (RFC 2866 §3)', () => {
  const buf = radius.encode({ code: 'Accounting-Request', secret: 's3cret', identifier: 1, attributes: [['Acct-Status-Type', 'Start'], ['User-Name', 'bob']] } as never);
  const r = decodePacket(buf);
  assert.ok(r.ok);
  assert.equal(verifyAccountingRequestAuthenticator(r.packet, Buffer.from('s3cret')), true);
  assert.equal(verifyAccountingRequestAuthenticator(r.packet, Buffer.from('nope')), false);
});

test('refuses a second Message-Authenticator in one packet', () => {
  const buf = requestWithMA('s3cret');
  const ma = buf.subarray(buf.length - 18);
  const doubled = Buffer.concat([buf, ma]);
  doubled.writeUInt16BE(doubled.length, 2);
  assert.deepEqual(decodePacket(doubled), { ok: false, reason: 'bad_message_authenticator' });
});
