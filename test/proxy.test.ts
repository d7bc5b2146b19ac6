// The proxy pass as pure functions: what goes upstream (EAP-Message fragments in order, hop-by-hop
// attributes left out, CHAP's implied challenge made explicit) and what tells a refused peer it failed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Attr, decodePacket, encodeAttribute } from '../src/radius/packet.js';
import { findInAttributes, nasAttributesOf, nonPapKindOf, refusalAttributes, relayedAttributesOf } from '../src/radius/proxy.js';
import { attributeKeyOf } from '../src/radius/dictionary.js';

function request(attrs: Buffer[]) {
  const body = Buffer.concat(attrs);
  const raw = Buffer.alloc(20 + body.length);
  raw[0] = 1;
  raw[1] = 42;
  raw.writeUInt16BE(raw.length, 2);
  raw.fill(0xa5, 4, 20);
  body.copy(raw, 20);
  const d = decodePacket(raw);
  assert.ok(d.ok);
  return d.packet;
}

const ms = (type: number, value: Buffer) => {
  const v = Buffer.alloc(6 + value.length);
  v.writeUInt32BE(311, 0);
  v[4] = type;
  v[5] = value.length + 2;
  value.copy(v, 6);
  return encodeAttribute(Attr.VendorSpecific, v);
};

test('EAP-Message fragments go upstream whole and in order; Message-Authenticator, Proxy-State and User-Password do not', () => {
  const frags = [Buffer.alloc(253, 1), Buffer.alloc(253, 2), Buffer.alloc(40, 3)].map((v) => encodeAttribute(Attr.EapMessage, v));
  const p = request([encodeAttribute(Attr.UserName, 'anonymous'), frags[0]!, encodeAttribute(Attr.ProxyState, 'ps'), frags[1]!, encodeAttribute(Attr.State, 'upstream-state'), frags[2]!, encodeAttribute(Attr.MessageAuthenticator, Buffer.alloc(16))]);
  assert.equal(nonPapKindOf(p), 'eap');
  const out = relayedAttributesOf(p, []);
  assert.deepEqual(out, [encodeAttribute(Attr.UserName, 'anonymous'), frags[0], frags[1], encodeAttribute(Attr.State, 'upstream-state'), frags[2]]);
});

test('CHAP without CHAP-Challenge: the Request Authenticator was the challenge (RFC 2865 §5.3), sent as CHAP-Challenge', () => {
  const p = request([encodeAttribute(Attr.UserName, 'u'), encodeAttribute(Attr.ChapPassword, Buffer.alloc(17, 9))]);
  assert.equal(nonPapKindOf(p), 'chap');
  const out = Buffer.concat(relayedAttributesOf(p, []));
  assert.deepEqual(findInAttributes(out, 60), Buffer.alloc(16, 0xa5));
  const withChallenge = request([encodeAttribute(Attr.ChapPassword, Buffer.alloc(17, 9)), encodeAttribute(60, Buffer.alloc(16, 7))]);
  assert.equal(relayedAttributesOf(withChallenge, []).filter((a) => a[0] === 60).length, 1);
});

test("the NAS's own attributes for a PAP request, less those dropped by name (vendor ones too)", () => {
  const cisco = Buffer.concat([Buffer.from([0, 0, 0, 9, 1, 7]), Buffer.from('a=b')]);
  const p = request([encodeAttribute(Attr.UserName, 'u'), encodeAttribute(Attr.NasIdentifier, 'gw'), encodeAttribute(61, Buffer.from([0, 0, 0, 5])), encodeAttribute(Attr.VendorSpecific, cisco), encodeAttribute(Attr.ReplyMessage, 'x')]);
  assert.deepEqual(nasAttributesOf(p, []).map((a) => a[0]), [Attr.NasIdentifier, 61, Attr.VendorSpecific]);
  assert.deepEqual(nasAttributesOf(p, [attributeKeyOf('Cisco-AVPair')!, attributeKeyOf('NAS-Port-Type')!]).map((a) => a[0]), [Attr.NasIdentifier]);
});

test('refusals: EAP-Failure with the EAP identifier, MS-CHAP-Error with the MS-CHAP ident and challenge', () => {
  const eap = request([encodeAttribute(Attr.EapMessage, Buffer.from([2, 17, 0, 5, 1]))]);
  assert.deepEqual(refusalAttributes(eap), Buffer.from([79, 6, 4, 17, 0, 4]));
  assert.deepEqual(refusalAttributes(eap, 23), Buffer.from([79, 6, 4, 23, 0, 4]));
  const v2 = request([ms(11, Buffer.alloc(16, 0xab)), ms(25, Buffer.concat([Buffer.from([5, 0]), Buffer.alloc(48)]))]);
  assert.equal(nonPapKindOf(v2), 'mschapv2');
  const err = refusalAttributes(v2);
  assert.equal(err.readUInt32BE(2), 311);
  assert.equal(err[6], 2);
  assert.equal(err[8], 5);
  assert.equal(err.subarray(9).toString(), `E=691 R=0 C=${'AB'.repeat(16)} V=3`);
  assert.equal(refusalAttributes(request([ms(1, Buffer.alloc(50))])).subarray(9).toString(), 'E=691 R=0');
  assert.equal(refusalAttributes(request([encodeAttribute(Attr.ChapPassword, Buffer.alloc(17))])).length, 0);
});

test('malformed encoded attributes end the search instead of reading past them', () => {
  assert.equal(findInAttributes(Buffer.from([79, 1, 1]), 79), undefined);
  assert.equal(findInAttributes(Buffer.from([1, 3, 0x41, 79, 9, 0]), 79), undefined);
  assert.deepEqual(findInAttributes(Buffer.from([1, 3, 0x41, 79, 3, 7]), 79), Buffer.from([7]));
});
