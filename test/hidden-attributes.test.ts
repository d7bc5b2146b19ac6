// Hidden attributes through the proxy (RFC 2548 §2.4.1-2.4.3, RFC 2868 §3.5): decrypted with the upstream
// secret and Request Authenticator, re-encrypted for the NAS. Vectors computed independently (Python hashlib)
// from the RFC algorithm with secret "xyzzy5461", Request Authenticator 00..0f.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hideSalted, revealPasswordBlocks, revealSalted, hidePassword } from '../src/radius/crypto.js';
import { decodePacket, encodeAttribute, Attr } from '../src/radius/packet.js';
import { isHidden, rehide, TUNNEL_PASSWORD, VENDOR_MICROSOFT } from '../src/radius/proxy.js';

const secret = Buffer.from('xyzzy5461');
const ra = Buffer.from([...Array(16).keys()]);
const key = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
const MPPE = Buffer.from('8001e1e617ac6cf5b7d8426c2c8f0ed602942279a7b5d4e40f1995a0a489d0e7cbc2', 'hex');
const TUNNEL = Buffer.from('8542117720c38185c8fad139fd1861600c37', 'hex');
const MPPE_KEYS = Buffer.from('4000e8ebca134cfb5bc0603a66859764ddecf844c97cfc4e30bccdf6c12a6533', 'hex');

test('RFC 2548 §2.4.2 salted key: hide and reveal match the independent vector', () => {
  assert.deepEqual(hideSalted(key, secret, ra, Buffer.from([0x80, 0x01])), MPPE);
  assert.deepEqual(revealSalted(MPPE, secret, ra), key);
  assert.deepEqual(hideSalted(Buffer.from('tunnel-secret'), secret, ra, Buffer.from([0x85, 0x42])), TUNNEL);
  assert.deepEqual(revealSalted(TUNNEL, secret, ra)?.toString(), 'tunnel-secret');
});

test('RFC 2548 §2.4.1 MS-CHAP-MPPE-Keys: the User-Password chain without NUL trimming', () => {
  const plain = Buffer.from([...Array(32).keys()]);
  assert.deepEqual(hidePassword(plain, secret, ra), MPPE_KEYS);
  assert.deepEqual(revealPasswordBlocks(MPPE_KEYS, secret, ra), plain);
});

test('salted values of every wrong length or with a length octet past the end do not reveal', () => {
  for (let n = 0; n < 40; n++) {
    const v = Buffer.alloc(n, 0x11);
    const r = revealSalted(v, secret, ra);
    if (n < 18 || (n - 2) % 16 !== 0) assert.equal(r, undefined, `length ${n}`);
  }
  // A forged length octet (255) that does not fit the 16 octets: refused.
  const forged = hideSalted(Buffer.alloc(0), secret, ra, Buffer.from([0x80, 0]));
  forged[2] = forged[2]! ^ 0xff; // flips the length octet's plaintext to 0xff
  assert.equal(revealSalted(forged, secret, ra), undefined);
});

function vsa(vendorType: number, data: Buffer): Buffer {
  const v = Buffer.alloc(6 + data.length);
  v.writeUInt32BE(VENDOR_MICROSOFT, 0);
  v[4] = vendorType;
  v[5] = data.length + 2;
  data.copy(v, 6);
  return encodeAttribute(Attr.VendorSpecific, v);
}

function packetOf(attrs: Buffer[]) {
  const body = Buffer.concat(attrs);
  const raw = Buffer.alloc(20 + body.length);
  raw[0] = 2;
  raw.writeUInt16BE(raw.length, 2);
  body.copy(raw, 20);
  const d = decodePacket(raw);
  assert.ok(d.ok);
  return d.packet;
}

test('rehide: MS-MPPE keys, MS-CHAP-MPPE-Keys and Tunnel-Password read back with the NAS secret and authenticator', () => {
  const nasSecret = Buffer.from('nas-secret');
  const nasRa = Buffer.alloc(16, 0xab);
  const p = packetOf([vsa(16, MPPE), vsa(17, MPPE), vsa(12, MPPE_KEYS), encodeAttribute(TUNNEL_PASSWORD, Buffer.concat([Buffer.from([1]), TUNNEL]))]);
  const k = { fromSecret: secret, fromAuthenticator: ra, toSecret: nasSecret, toAuthenticator: nasRa, random: (n: number) => Buffer.alloc(n, 0x07) };
  const out = p.attributes.map((a) => {
    assert.ok(isHidden(a));
    return rehide(a, k)!;
  });
  const back = packetOf(out);
  const [send, recv, keys, tunnel] = back.attributes;
  assert.deepEqual(revealSalted(send!.value.subarray(6), nasSecret, nasRa), key);
  assert.deepEqual(revealSalted(recv!.value.subarray(6), nasSecret, nasRa), key);
  assert.equal(send!.value[6]! & 0x80, 0x80, 'salt high bit set');
  assert.deepEqual(revealPasswordBlocks(keys!.value.subarray(6), nasSecret, nasRa), Buffer.from([...Array(32).keys()]));
  assert.equal(tunnel!.value[0], 1, 'tag kept');
  assert.equal(revealSalted(tunnel!.value.subarray(1), nasSecret, nasRa)?.toString(), 'tunnel-secret');
  // Broken lengths are refused, never passed on garbled.
  const broken = packetOf([vsa(16, MPPE.subarray(0, 10)), encodeAttribute(TUNNEL_PASSWORD, Buffer.from([1, 0x80]))]);
  for (const a of broken.attributes) assert.equal(rehide(a, k), undefined);
});
