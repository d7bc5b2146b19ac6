/**
 * HMAC-SHA1 (RFC 2104, FIPS 180-4) of an 8-octet HOTP counter, in plain JavaScript from a per-key
 * midstate. Why not node:crypto: a `createHmac('sha1')` costs ~8-12 µs per call here (object
 * creation, EVP fetch), and a TOTP check with window 1 may need three; from precomputed inner and
 * outer states one HOTP value is two SHA-1 compressions (~1 µs). SHA-1 is additions, rotations and
 * logic with no data-dependent branch or table lookup. test/totp.test.ts checks it against
 * node:crypto and the RFC 4226 / RFC 6238 vectors.
 */

/** SHA-1 states after absorbing (key XOR ipad) and (key XOR opad). */
export type HmacSha1Key = { inner: Int32Array; outer: Int32Array };

const INIT = Int32Array.of(0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476, 0xc3d2e1f0 | 0);
const W = new Int32Array(80);
const ST = new Int32Array(5);

/** One SHA-1 compression of the 16 big-endian words in W[0..16) into st. */
function compress(st: Int32Array): void {
  const w = W;
  for (let t = 16; t < 80; t++) {
    const x = w[t - 3]! ^ w[t - 8]! ^ w[t - 14]! ^ w[t - 16]!;
    w[t] = (x << 1) | (x >>> 31);
  }
  let a = st[0]!, b = st[1]!, c = st[2]!, d = st[3]!, e = st[4]!;
  // Four loops of 20 rounds, one per round function: no branch per round.
  for (let t = 0; t < 20; t++) {
    const temp = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + 0x5a827999 + w[t]!) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = temp;
  }
  for (let t = 20; t < 40; t++) {
    const temp = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + 0x6ed9eba1 + w[t]!) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = temp;
  }
  for (let t = 40; t < 60; t++) {
    const temp = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + (0x8f1bbcdc | 0) + w[t]!) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = temp;
  }
  for (let t = 60; t < 80; t++) {
    const temp = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + (0xca62c1d6 | 0) + w[t]!) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = temp;
  }
  st[0] = (st[0]! + a) | 0;
  st[1] = (st[1]! + b) | 0;
  st[2] = (st[2]! + c) | 0;
  st[3] = (st[3]! + d) | 0;
  st[4] = (st[4]! + e) | 0;
}

function loadBlock(bytes: Uint8Array, p: number): void {
  for (let i = 0; i < 16; i++, p += 4) W[i] = (bytes[p]! << 24) | (bytes[p + 1]! << 16) | (bytes[p + 2]! << 8) | bytes[p + 3]!;
}

/** SHA-1 of a whole message (for keys longer than the 64-octet block, RFC 2104 §3). */
function sha1(message: Uint8Array): Uint8Array {
  const padded = new Uint8Array((((message.length + 8) >> 6) + 1) * 64);
  padded.set(message);
  padded[message.length] = 0x80;
  const bits = message.length * 8;
  new DataView(padded.buffer).setUint32(padded.length - 8, Math.floor(bits / 0x1_0000_0000));
  new DataView(padded.buffer).setUint32(padded.length - 4, bits >>> 0);
  const st = INIT.slice();
  for (let p = 0; p < padded.length; p += 64) {
    loadBlock(padded, p);
    compress(st);
  }
  const out = new Uint8Array(20);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 5; i++) view.setInt32(i * 4, st[i]!);
  return out;
}

/** Precomputes the HMAC-SHA1 midstates of a key. */
export function hmacSha1Key(key: Uint8Array): HmacSha1Key {
  const k = key.length > 64 ? sha1(key) : key;
  const pad = new Uint8Array(64);
  const state = (xor: number) => {
    for (let i = 0; i < 64; i++) pad[i] = (k[i] ?? 0) ^ xor;
    loadBlock(pad, 0);
    const st = INIT.slice();
    compress(st);
    return st;
  };
  return { inner: state(0x36), outer: state(0x5c) };
}

/** ST = a midstate. Plain stores (and plain zeroing of W below): for so few words, TypedArray set/fill calls cost more. */
function startFrom(st: Int32Array): void {
  ST[0] = st[0]!;
  ST[1] = st[1]!;
  ST[2] = st[2]!;
  ST[3] = st[3]!;
  ST[4] = st[4]!;
}

/**
 * The RFC 4226 §5.3 dynamic truncation of HMAC-SHA1(key, counter): the 31-bit number that HOTP
 * reduces modulo 10^digits. `counter` is the 8-octet big-endian moving factor (< 2^53).
 */
export function hotpSha1Binary(key: HmacSha1Key, counter: number): number {
  // Inner hash: one block = 8 counter octets, 0x80, zeros, bit length (64 + 8) * 8.
  W[0] = Math.floor(counter / 0x1_0000_0000) | 0;
  W[1] = counter | 0;
  W[2] = 0x80000000 | 0;
  for (let i = 3; i < 15; i++) W[i] = 0;
  W[15] = (64 + 8) * 8;
  startFrom(key.inner);
  compress(ST);
  // Outer hash: one block = the 20-octet inner digest, 0x80, zeros, bit length (64 + 20) * 8.
  W[0] = ST[0]!;
  W[1] = ST[1]!;
  W[2] = ST[2]!;
  W[3] = ST[3]!;
  W[4] = ST[4]!;
  W[5] = 0x80000000 | 0;
  for (let i = 6; i < 15; i++) W[i] = 0;
  W[15] = (64 + 20) * 8;
  startFrom(key.outer);
  compress(ST);
  const offset = ST[4]! & 0x0f; // the low 4 bits of the last octet of the 20
  // The 4 octets at `offset` of the big-endian digest, top bit cleared.
  const word = offset >> 2, shift = (offset & 3) * 8;
  const hi = ST[word]!, lo = ST[word + 1]!; // offset <= 15, so word <= 3
  const bits = shift === 0 ? hi : (hi << shift) | (lo >>> (32 - shift));
  return bits & 0x7fffffff;
}
