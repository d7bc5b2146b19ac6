import { test } from 'node:test';
import assert from 'node:assert/strict';
import argon2 from 'argon2';
import { checkPasswordHash, hashPassword, verifyPassword } from '../src/auth/password-hash.js';

test('hashPassword makes an argon2id PHC string that verifyPassword accepts for the right password only', async () => {
  const hash = await hashPassword('correct horse');
  assert.match(hash, /^\$argon2id\$v=19\$/);
  assert.equal(checkPasswordHash(hash), undefined);
  assert.equal(await verifyPassword(hash, 'correct horse'), true);
  assert.equal(await verifyPassword(hash, 'correct horsE'), false);
});

test('verifyPassword returns false for malformed hashes instead of throwing', async () => {
  for (const bad of ['', 'plain', '$argon2id$', '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$', '$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234']) {
    assert.equal(await verifyPassword(bad, 'x'), false, bad);
  }
});

test('imported argon2i hashes (parameters in any order) verify; argon2d, bcrypt and absurd costs are refused', async () => {
  const argon2i = await argon2.hash('pw', { type: argon2.argon2i, memoryCost: 4096, timeCost: 2, parallelism: 1 });
  assert.equal(checkPasswordHash(argon2i), undefined);
  assert.equal(await verifyPassword(argon2i, 'pw'), true);
  // Reference form with t before p and no version (argon2 1.0).
  assert.equal(checkPasswordHash('$argon2i$m=4096,t=3,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A'), undefined);

  assert.match(checkPasswordHash('$argon2d$v=19$m=4096,t=3,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A')!, /argon2d/);
  assert.match(checkPasswordHash('$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234')!, /not an argon2 PHC string/);
  assert.match(checkPasswordHash('$argon2id$v=19$m=4194304,t=3,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A')!, /m=4194304 out of range/);
  assert.match(checkPasswordHash('$argon2id$v=19$m=4096,t=3$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A')!, /m, t and p/);
  assert.match(checkPasswordHash('$argon2id$v=19$m=4096,t=3,p=1$c2FsdA$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A')!, /salt/);
});
