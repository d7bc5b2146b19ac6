// The one canonical username (src/flow/username.ts): pure, so checked case by case.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalUsername, NO_REALMS, usernameRules } from '../src/flow/username.js';

test('case, width and spaces fold as a directory folds them; an empty name is none', () => {
  assert.equal(canonicalUsername('Alice', NO_REALMS), 'alice');
  assert.equal(canonicalUsername('  ALICE \t', NO_REALMS), 'alice');
  assert.equal(canonicalUsername('\uff21lice', NO_REALMS), 'alice', 'a full-width A is A (NFKC)');
  assert.equal(canonicalUsername('Jose\u0301', NO_REALMS), 'jos\u00e9', 'a combining accent composes');
  assert.equal(canonicalUsername('   ', NO_REALMS), undefined);
});

test('only configured realms are stripped, from either side; other realms stay part of the name', () => {
  const rules = usernameRules(['CORP', 'Corp.Example.com']);
  assert.equal(canonicalUsername('CORP\\Alice', rules), 'alice');
  assert.equal(canonicalUsername('alice@corp.example.com', rules), 'alice');
  assert.equal(canonicalUsername('ALICE@CORP.EXAMPLE.COM', rules), 'alice');
  assert.equal(canonicalUsername('EVIL\\alice', rules), 'evil\\alice', 'another realm is another person');
  assert.equal(canonicalUsername('alice@evil.example', rules), 'alice@evil.example');
  assert.equal(canonicalUsername('alice', usernameRules([])), 'alice');
  assert.equal(canonicalUsername('\\alice', rules), '\\alice', 'no realm before the backslash');
});
