import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { hmacMd5, hmacMd5Key, md5 } from '../src/radius/md5.js';

function ourMd5(data: Buffer): string {
  const out = Buffer.alloc(16);
  md5(data, 0, data.length, out, 0);
  return out.toString('hex');
}

function ourHmac(key: Buffer, data: Buffer): string {
  const out = Buffer.alloc(16);
  hmacMd5(hmacMd5Key(key), data, 0, data.length, out, 0);
  return out.toString('hex');
}

test('matches the RFC 1321 test suite', () => {
  const vectors: [string, string][] = [
    ['', 'd41d8cd98f00b204e9800998ecf8427e'],
    ['a', '0cc175b9c0f1b6a831c399e269772661'],
    ['abc', '900150983cd24fb0d6963f7d28e17f72'],
    ['message digest', 'f96b697d7cb7938d525a2f31aaf161d0'],
    ['abcdefghijklmnopqrstuvwxyz', 'c3fcd3d76192e4007dfb496cca67e13b'],
    ['12345678901234567890123456789012345678901234567890123456789012345678901234567890', '57edf4a22be3c955ac49da2e2107b67a'],
  ];
  for (const [input, digest] of vectors) assert.equal(ourMd5(Buffer.from(input)), digest, JSON.stringify(input));
});

test('matches the RFC 2202 HMAC-MD5 test cases, including a key longer than a block', () => {
  assert.equal(ourHmac(Buffer.alloc(16, 0x0b), Buffer.from('Hi There')), '9294727a3638bb1c13f48ef8158bfc9d');
  assert.equal(ourHmac(Buffer.from('Jefe'), Buffer.from('what do ya want for nothing?')), '750c783e6ab0b503eaa86e310a5db738');
  assert.equal(ourHmac(Buffer.alloc(80, 0xaa), Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First')), '6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd');
});

test('agrees with node:crypto for every length 0..300 and random keys', () => {
  for (let n = 0; n <= 300; n++) {
    const data = randomBytes(n);
    assert.equal(ourMd5(data), createHash('md5').update(data).digest('hex'), `md5 length ${n}`);
    const key = randomBytes(1 + (n % 90));
    assert.equal(ourHmac(key, data), createHmac('md5', key).update(data).digest('hex'), `hmac length ${n}`);
  }
});

test('hashes a range inside a larger buffer without touching the rest', () => {
  const big = randomBytes(500);
  const copy = Buffer.from(big);
  const out = Buffer.alloc(16);
  md5(big, 37, 200, out, 0);
  assert.equal(out.toString('hex'), createHash('md5').update(big.subarray(37, 237)).digest('hex'));
  assert.deepEqual(big, copy);
});
