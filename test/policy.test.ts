// The method and reply attributes a user gets: precedence (user > config user > group > default) and
// the order of reply attributes (groups in config order, then the config user's).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configSchema } from '../src/config/schema.js';
import { Policy } from '../src/flow/policy.js';
import type { UserRecord } from '../src/store/store.js';
import { baseConfig, mergeConfig } from './helpers/server.js';

const policy = new Policy(
  configSchema.parse(
    mergeConfig(baseConfig('127.0.0.1', 'policy-test-secret'), {
      mfa: { default_method: 'totp' },
      groups: {
        staff: { members: ['alice', 'bob', 'carol'], reply: { 'Filter-Id': 'staff' } },
        admins: { members: ['alice', 'dave'], method: 'push', reply: { Class: 'admins' } },
        contractors: { members: [], method: 'deny' },
      },
      users: { alice: { method: 'challenge', reply: { 'Session-Timeout': 600 } }, erin: { reply: { 'Filter-Id': 'erin' } } },
    }),
  ),
);

/** Attribute types of an encoded reply (Type, Length, Value ...), in order. */
function types(reply: Buffer): number[] {
  const out: number[] = [];
  for (let at = 0; at < reply.length; at += reply[at + 1]!) out.push(reply[at]!);
  return out;
}
const FILTER_ID = 11, CLASS = 25, SESSION_TIMEOUT = 27;

test('a user in no group and no users: entry gets the default method and no reply attributes', () => {
  const p = policy.profileOf('zoe', undefined);
  assert.deepEqual({ method: p.method, source: p.source, types: types(p.reply) }, { method: 'totp', source: 'default', types: [] });
});

test('the first group in config order that sets a method gives it; replies come in config order, then the users: entry', () => {
  const dave = policy.profileOf('dave', undefined);
  assert.deepEqual({ method: dave.method, source: dave.source, types: types(dave.reply) }, { method: 'push', source: 'group', types: [CLASS] });
  const alice = policy.profileOf('alice', undefined);
  assert.deepEqual({ method: alice.method, source: alice.source }, { method: 'challenge', source: 'config_user' });
  assert.deepEqual(types(alice.reply), [FILTER_ID, CLASS, SESSION_TIMEOUT]);
  const erin = policy.profileOf('erin', undefined);
  assert.deepEqual({ method: erin.method, source: erin.source, types: types(erin.reply) }, { method: 'totp', source: 'default', types: [FILTER_ID] });
});

test("the user's own method wins over users: and groups; directory groups add theirs after the config's", () => {
  const own = policy.profileOf('alice', { method: 'none' } as UserRecord);
  assert.deepEqual({ method: own.method, source: own.source }, { method: 'none', source: 'user' });
  const bob = policy.profileOf('bob', undefined, ['contractors', 'staff', 'unknown']);
  assert.deepEqual({ method: bob.method, source: bob.source, types: types(bob.reply) }, { method: 'deny', source: 'group', types: [FILTER_ID] });
});
