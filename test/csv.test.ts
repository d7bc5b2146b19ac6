import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCsv } from '../src/cli/csv.js';
import { planUserImport } from '../src/cli/user-import.js';
import { encodeBase32, parseBase32Secret } from '../src/mfa/totp-secret.js';

const fieldsOf = (text: string) => {
  const r = parseCsv(text);
  assert.ok(r.ok, JSON.stringify(r));
  return r.records.map((rec) => [rec.line, ...rec.fields]);
};

test('parses plain, quoted and empty fields with LF or CRLF, skipping blank lines and a BOM', () => {
  assert.deepEqual(fieldsOf('\uFEFFa,b,c\n1,,3\r\n\n"x,y","say ""hi""",\n'), [
    [1, 'a', 'b', 'c'],
    [2, '1', '', '3'],
    [4, 'x,y', 'say "hi"', ''],
  ]);
  assert.deepEqual(fieldsOf('a,b'), [[1, 'a', 'b']]);
});

test('a quoted field may span lines and the next record keeps its own line number', () => {
  assert.deepEqual(fieldsOf('h\n"two\nlines"\nnext\n'), [
    [1, 'h'],
    [2, 'two\nlines'],
    [4, 'next'],
  ]);
});

test('rejects stray quotes, text after a closing quote and unterminated quotes, with the line', () => {
  assert.deepEqual(parseCsv('a\nb"c\n'), { ok: false, line: 2, message: 'a quote inside an unquoted field (quote the whole field and double the quote)' });
  assert.deepEqual(parseCsv('a\n"b"c\n'), { ok: false, line: 2, message: 'unexpected text after a closing quote' });
  assert.deepEqual(parseCsv('a\n\n"b\n'), { ok: false, line: 3, message: 'unterminated quoted field' });
});

test('base32 secrets: spaces, lower case and padding are accepted; bad characters and short secrets are not', () => {
  const twenty = Buffer.from('12345678901234567890');
  const b32 = encodeBase32(twenty);
  assert.equal(b32, 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
  assert.deepEqual(parseBase32Secret(b32.toLowerCase().replace(/(.{4})/g, '$1 ')), { ok: true, secret: twenty });
  assert.deepEqual(parseBase32Secret('JBSWY3DPEHPK3PXP'), {
    ok: true,
    secret: Buffer.from('48656c6c6f21deadbeef', 'hex'),
    warning: 'legacy 10-byte secret accepted; RFC 4226 asks for at least 16 bytes, re-enroll when convenient',
  });
  assert.equal(parseBase32Secret('JBSWY3DP').ok, false);
  assert.match((parseBase32Secret('JBSWY3DPEHPK3PX1') as { problem: string }).problem, /"1" is not a base32 character/);
  assert.match((parseBase32Secret('JBSWY3DPEHPK3PXPA') as { problem: string }).problem, /truncated/);
  assert.equal(parseBase32Secret(encodeBase32(Buffer.alloc(65))).ok, false);
});

const TOTP = { digits: 6, period: 30, algorithm: 'SHA1', window: 1, issuer: 'x', separator: '' } as const;
const HASH = '$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A';

test('an import plan turns good rows into users with the configured TOTP parameters', () => {
  const csv = `username,method,totp_secret,password_hash\nalice,,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,"${HASH}"\nbob,challenge,,\n`;
  const plan = planUserImport('u.csv', csv, { ...TOTP }, new Set());
  assert.deepEqual(plan.problems, []);
  assert.deepEqual(plan.users, [
    { username: 'alice', method: null, passwordHash: HASH, totp: { secret: Buffer.from('12345678901234567890'), algorithm: 'SHA1', digits: 6, period: 30 } },
    { username: 'bob', method: 'challenge', passwordHash: null, totp: null },
  ]);
});

test('an import plan reports every bad row as FILE:LINE: field: problem', () => {
  const csv = [
    'username,method,totp_secret,password_hash',
    'alice,sms,,',
    'bob,,NOT-BASE32!,',
    'carol,,,$2b$10$abcdefghijklmnopqrstuv',
    'alice,,,',
    'existing,,,',
    `dave,,,${HASH}`,
    ',totp,,',
  ].join('\n');
  const plan = planUserImport('u.csv', csv, { ...TOTP }, new Set(['existing']));
  assert.deepEqual(
    plan.problems.map((p) => p.split(': ').slice(0, 2).join(': ')),
    [
      'u.csv:2: method',
      'u.csv:3: totp_secret',
      'u.csv:4: password_hash',
      'u.csv:5: username',
      'u.csv:6: username',
      'u.csv:7: row',
      'u.csv:8: username',
    ],
  );
  assert.match(plan.problems[3]!, /already on line 2/);
  assert.match(plan.problems[5]!, /quote/);
  const header = planUserImport('u.csv', 'user,secret\n', { ...TOTP }, new Set());
  assert.match(header.problems[0]!, /^u\.csv:1: header: unknown column "user"/);
});
