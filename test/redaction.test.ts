// Secrets never reach the logs (STYLE.md rule 7): every line of a full run of accept, reject, challenge,
// wrong-secret and lockout flows is searched for the password, the codes, the shared secret and the TOTP key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { radclient, type AttributeInput } from './helpers/radclient.js';
import { createLogger } from '../src/log/logger.js';
import { enrollTotp, LogCapture, startTestServer, wrongCodeAt, type EnrolledUser } from './helpers/server.js';
import { buildAccessRequest, UdpClient } from './helpers/udp.js';

const PASSWORD = 'Zebra-Quartz-Marmalade-41';
const SHARED_SECRET = 'Shared-Secret-Nobody-Logs-7f3a9c';
// Fixed keys (not random) so the codes at the fixed test clock are the same on every run.
const KEYS = {
  alice: Buffer.from('alice-totp-key-0123456789abcdef!', 'utf8'),
  carol: Buffer.from('carol-totp-key-0123456789abcdef!', 'utf8'),
  eve: Buffer.from('eve-totp-key-0123456789abcdefgh!', 'utf8'),
};

/** The ways a secret could show up in a JSON log line: as text, hex, base64, base32, or pino's Buffer form. */
function renderings(label: string, value: Buffer, base32?: string): [string, string][] {
  const out: [string, string][] = [
    [`${label} (hex)`, value.toString('hex')],
    [`${label} (base64)`, value.toString('base64').replace(/=+$/, '')],
    [`${label} (Buffer JSON)`, `[${Array.from(value).join(',')}]`],
  ];
  const text = value.toString('utf8');
  if (/^[\x20-\x7e]+$/.test(text)) out.push([`${label} (text)`, text]);
  if (base32) out.push([`${label} (base32)`, base32]);
  return out;
}

test('no log line carries the password, a TOTP code, the shared secret or a TOTP secret', async (t) => {
  const s = await startTestServer({
    secret: SHARED_SECRET,
    config: {
      mfa: { lockout: { max_failures: 3, duration: '15m' }, challenge: { timeout: '60s' } },
      groups: { staff: { members: ['alice'], reply: { 'Filter-Id': 'vpn-users' } } },
    },
  });
  t.after(() => s.close());
  const users: EnrolledUser[] = [
    await enrollTotp(s.store, 'alice', { password: PASSWORD, secret: KEYS.alice }),
    await enrollTotp(s.store, 'carol', { password: PASSWORD, secret: KEYS.carol, method: 'challenge' }),
    await enrollTotp(s.store, 'eve', { password: PASSWORD, secret: KEYS.eve }),
  ];
  const [alice, carol, eve] = users as [EnrolledUser, EnrolledUser, EnrolledUser];
  const codes = new Set<string>();
  const ask = (attributes: AttributeInput, secret = SHARED_SECRET, timeout = 5) =>
    radclient(attributes, { port: s.authPort, secret, timeout });
  const pap = (user: EnrolledUser, code: string) => {
    codes.add(code);
    return { 'User-Name': user.username, 'User-Password': PASSWORD + code };
  };

  // accept, then the same code again (replay)
  assert.equal((await ask(pap(alice, alice.codeAt(s.clock.now())))).code, 'Access-Accept');
  assert.equal((await ask(pap(alice, alice.codeAt(s.clock.now())))).code, 'Access-Reject');
  // reject: wrong code, then no code at all, then an unknown user
  s.clock.advance(30_000);
  assert.equal((await ask(pap(alice, wrongCodeAt(alice, s.clock.now())))).code, 'Access-Reject');
  assert.equal((await ask({ 'User-Name': 'alice', 'User-Password': PASSWORD })).code, 'Access-Reject');
  assert.equal((await ask(pap({ ...alice, username: 'mallory' }, alice.codeAt(s.clock.now())))).code, 'Access-Reject');
  // challenge: password, then the code with the State
  const challenge = await ask({ 'User-Name': 'carol', 'User-Password': PASSWORD });
  assert.equal(challenge.code, 'Access-Challenge');
  const carolCode = carol.codeAt(s.clock.now());
  codes.add(carolCode);
  const answered = await ask({ 'User-Name': 'carol', 'User-Password': carolCode, State: challenge.attributes.State![0]! });
  assert.equal(answered.code, 'Access-Accept');
  // wrong shared secret (radclient), and a raw one so that the dropped packet carries our real password
  assert.equal((await ask(pap(alice, alice.codeAt(s.clock.now())), 'not-the-shared-secret', 0.5)).code, 'timeout');
  const c = await UdpClient.open();
  t.after(() => c.close());
  await c.send(buildAccessRequest({ secret: 'not-the-shared-secret', userName: 'alice', password: PASSWORD + alice.codeAt(s.clock.now()) }), s.authPort);
  // lockout: three wrong codes, then a right one refused as locked
  for (let i = 0; i < 3; i++) assert.equal((await ask(pap(eve, wrongCodeAt(eve, s.clock.now())))).code, 'Access-Reject');
  assert.equal((await ask(pap(eve, eve.codeAt(s.clock.now())))).code, 'Access-Reject');
  assert.equal(s.logs.audits('eve').at(-1)?.reason, 'locked');
  // Accounting with the same user, for completeness.
  await radclient({ 'User-Name': 'alice', 'Acct-Status-Type': 'Start', 'Acct-Session-Id': 's1' }, { port: s.acctPort, secret: SHARED_SECRET, type: 'acct', messageAuthenticator: false });

  await s.logs.waitFor({ reason: 'bad_message_authenticator' });
  await s.close();

  const lines = s.logs.lines;
  // The search finds what is there: usernames, reasons and the drop line are logged.
  assert.ok(lines.some((l) => l.includes('"user":"alice"')), 'no line names alice: is the capture working?');
  assert.ok(s.logs.audits().length >= 11, `only ${s.logs.audits().length} audit lines`);
  assert.ok(s.logs.filter({ reason: 'bad_message_authenticator' }).length >= 1, 'the wrong-secret drop was not logged');

  const needles: [string, string][] = [
    ...renderings('password', Buffer.from(PASSWORD)),
    ...renderings('shared secret', Buffer.from(SHARED_SECRET)),
    ...users.flatMap((u) => renderings(`TOTP secret of ${u.username}`, u.secret, u.base32)),
  ];
  const leaks: string[] = [];
  for (const line of lines) {
    for (const [what, needle] of needles) if (line.includes(needle)) leaks.push(`${what} in: ${line}`);
    // A code is six digits: a leak is the code on its own, not six digits inside a longer number.
    for (const code of codes) if (new RegExp(`(?<!\\d)${code}(?!\\d)`).test(line)) leaks.push(`TOTP code ${code} in: ${line}`);
  }
  assert.deepEqual(leaks, []);
  t.diagnostic(`${lines.length} log lines searched for ${needles.length} secret renderings and ${codes.size} codes`);
});

test("redaction keeps an error's code (EADDRINUSE, SQLITE_BUSY) readable in error lines", () => {
  const logs = new LogCapture();
  const logger = createLogger('info', logs);
  const err = Object.assign(new Error('bind EADDRINUSE 127.0.0.1:1812'), { code: 'EADDRINUSE', syscall: 'bind' });
  logger.error({ err, role: 'auth' }, 'socket error');
  const [line] = logs.records;
  assert.equal((line?.err as { code?: string } | undefined)?.code, 'EADDRINUSE', JSON.stringify(line));
});
