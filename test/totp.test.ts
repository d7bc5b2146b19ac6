import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateSync, generateSecret, ScureBase32Plugin } from 'otplib';
import { createHmac, randomBytes } from 'node:crypto';
import { hotp, verifyTotp, timeStep } from '../src/mfa/totp.js';
import { hmacSha1Key, hotpSha1Binary } from '../src/mfa/sha1.js';
import { splitCode } from '../src/flow/access.js';
import type { TotpEnrollment } from '../src/mfa/enrollment.js';

const SEED = {
  SHA1: Buffer.from('12345678901234567890'),
  SHA256: Buffer.from('12345678901234567890123456789012'),
  SHA512: Buffer.from('1234567890123456789012345678901234567890123456789012345678901234'),
};

// RFC 6238 Appendix B
const VECTORS: [number, string, string, string][] = [
  [59, '94287082', '46119246', '90693936'],
  [1111111109, '07081804', '68084774', '25091201'],
  [1111111111, '14050471', '67062674', '99943326'],
  [1234567890, '89005924', '91819424', '93441116'],
  [2000000000, '69279037', '90698825', '38618901'],
  [20000000000, '65353130', '77737706', '47863826'],
];

test('matches the RFC 6238 Appendix B vectors for SHA1, SHA256 and SHA512', () => {
  for (const [time, sha1, sha256, sha512] of VECTORS) {
    const step = timeStep(time * 1000, 30);
    assert.equal(hotp(SEED.SHA1, step, 8, 'SHA1'), sha1, `SHA1 at ${time}`);
    assert.equal(hotp(SEED.SHA256, step, 8, 'SHA256'), sha256, `SHA256 at ${time}`);
    assert.equal(hotp(SEED.SHA512, step, 8, 'SHA512'), sha512, `SHA512 at ${time}`);
  }
});

test('matches the RFC 4226 Appendix D HOTP values', () => {
  const expected = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
  expected.forEach((code, counter) => assert.equal(hotp(SEED.SHA1, counter, 6, 'SHA1'), code));
});

test('the JS HMAC-SHA1 truncation equals node:crypto for key lengths 0..140 and counters up to 2^53', () => {
  const counters = [0, 1, 0xffffffff, 0x1_0000_0000, 0x1f_ffff_ffff_ffff, 56_666_666];
  for (let length = 0; length <= 140; length++) {
    const key = randomBytes(length);
    const midstates = hmacSha1Key(key);
    for (const counter of [...counters, Math.floor(Math.random() * 2 ** 40)]) {
      const msg = Buffer.alloc(8);
      msg.writeBigUInt64BE(BigInt(counter));
      const mac = createHmac('sha1', key).update(msg).digest();
      const offset = mac[19]! & 0x0f;
      assert.equal(hotpSha1Binary(midstates, counter), mac.readUInt32BE(offset) & 0x7fffffff, `key length ${length}, counter ${counter}`);
    }
  }
});

test('agrees with otplib for random secrets, algorithms, digits and periods', () => {
  const b32 = new ScureBase32Plugin();
  for (let i = 0; i < 200; i++) {
    const secret = generateSecret();
    const algorithm = (['SHA1', 'SHA256', 'SHA512'] as const)[i % 3]!;
    const digits = i % 2 ? 6 : 8;
    const period = [30, 60][i % 2]!;
    const epoch = 1_600_000_000 + i * 7919;
    const theirs = generateSync({ secret, epoch, algorithm: algorithm.toLowerCase() as 'sha1', digits, period });
    const ours = hotp(Buffer.from(b32.decode(secret)), timeStep(epoch * 1000, period), digits, algorithm);
    assert.equal(ours, theirs);
  }
});

test('accepts codes within the window and returns the matched step, refuses outside it', () => {
  const t: TotpEnrollment = { secret: SEED.SHA1, algorithm: 'SHA1', digits: 6, period: 30 };
  const now = 1_700_000_000_000;
  const step = timeStep(now, 30);
  for (const delta of [-1, 0, 1]) assert.equal(verifyTotp(t, hotp(t.secret, step + delta, 6, 'SHA1'), now, 1), step + delta);
  for (const delta of [-2, 2]) assert.equal(verifyTotp(t, hotp(t.secret, step + delta, 6, 'SHA1'), now, 1), undefined);
  assert.equal(verifyTotp(t, hotp(t.secret, step - 1, 6, 'SHA1'), now, 0), undefined);
  assert.equal(verifyTotp(t, '12345', now, 1), undefined);
  assert.equal(verifyTotp(t, 'abcdef', now, 1), undefined);
});

test('splits the code from the password, with and without a separator', () => {
  assert.deepEqual(splitCode('s3cret123456', 6, ''), { password: 's3cret', code: '123456' });
  assert.deepEqual(splitCode('s3cret,123456', 6, ','), { password: 's3cret', code: '123456' });
  assert.deepEqual(splitCode('pa,ss,123456', 6, ','), { password: 'pa,ss', code: '123456' });
  assert.deepEqual(splitCode('123456', 6, ''), { password: '', code: '123456' });
  assert.equal(splitCode('s3cret', 6, ''), undefined);
  assert.equal(splitCode('s3cret12345x', 6, ''), undefined);
  assert.equal(splitCode('s3cret123456', 6, ','), undefined);
  assert.equal(splitCode('s3cret,12345', 6, ','), undefined);
  assert.deepEqual(splitCode('pw12345678', 8, ''), { password: 'pw', code: '12345678' });
});
