// The spray stage's client (a child on the generator's core, driven over IPC): wrong passwords for random
// enrolled users (each costs a password check unless the server sheds it) at `rate` a second, while the
// real users, the last `realUsers` + 1 (never sprayed), log in every `everyMs` as a NAS does: every other
// one from the place they signed in from before the spray, the rest from a new one; the last right after.
// Replies to the spray are counted, not verified.
import { randomBytes, randomFillSync, randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { setTimeout as sleep } from 'node:timers/promises';
import { hmacMd5Key } from '../src/radius/md5.js';
import { writeAccessRequest } from './packet.js';
import { probeAccess } from './probe.js';
import { makeUsers, totpCode, totpStep } from './users.js';

export type SprayOptions = { port: number; secret: string; users: number; password: string; realUsers: number; rate: number; seconds: number; everyMs: number };
export type SprayResult = Awaited<ReturnType<typeof spray>>;

export async function spray(o: SprayOptions) {
  const users = makeUsers(o.users, o.password);
  const secret = Buffer.from(o.secret);
  const maKey = hmacMd5Key(secret);
  const nas = Buffer.from('bench-vpn');
  const sockets = Array.from({ length: 4 }, () => createSocket('udp4'));
  let answered = 0;
  let accepts = 0;
  for (const s of sockets) {
    s.on('message', (m) => {
      answered++;
      if (m[0] === 2) accepts++;
    });
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  }
  const buf = Buffer.alloc(4096);
  let sent = 0;
  const sendOne = () => {
    randomFillSync(buf, 4, 16);
    const u = users[randomInt(o.users - o.realUsers - 1)]!;
    const station = Buffer.from(`10.${randomInt(256)}.${randomInt(256)}.${randomInt(256)}`);
    const len = writeAccessRequest(buf, sent & 255, Buffer.from(u.name), Buffer.from(randomBytes(6).toString('base64url')), Buffer.from(String(randomInt(1e6)).padStart(6, '0')), nas, secret, maKey, station);
    sockets[sent++ & 3]!.send(buf.subarray(0, len), o.port, '127.0.0.1');
  };
  // Before the spray, each real user signs in once from their usual place, with the previous step's
  // code (the login during the spray uses the current one: no replay).
  const realUser = (k: number) => users[o.users - o.realUsers - 1 + k]!;
  const usualPlace = (k: number) => `02-00-00-00-00-${String(k).padStart(2, '0')}`;
  for (let k = 0; k < o.realUsers; k += 2) {
    const u = realUser(k);
    const r = await probeAccess({ port: o.port, secret: o.secret, userName: u.name, password: u.password + totpCode(u.key, totpStep() - 1), timeoutMs: 5000, tries: 3, callingStation: usualPlace(k) });
    if (r.code !== 2) throw new Error(`${u.name} could not sign in before the spray (code ${r.code})`);
  }
  const t0 = performance.now();
  const tick = setInterval(() => {
    const due = Math.min(o.seconds * 1000, performance.now() - t0) * (o.rate / 1000);
    while (sent < due) sendOne();
  }, 5);
  const logins = [];
  for (let k = 0; k < o.realUsers && performance.now() - t0 < o.seconds * 1000; k++) {
    const u = realUser(k);
    const familiar = k % 2 === 0;
    logins.push(probeAccess({
      port: o.port, secret: o.secret, userName: u.name, password: u.password + totpCode(u.key),
      timeoutMs: 5000, tries: 3, callingStation: familiar ? usualPlace(k) : `02-00-00-00-01-${String(k).padStart(2, '0')}`,
    }).then((r) => ({ user: u.name, familiar, ...r })));
    await sleep(o.everyMs);
  }
  await sleep(Math.max(0, o.seconds * 1000 - (performance.now() - t0)));
  clearInterval(tick);
  const real = await Promise.all(logins);
  // The next user's login right after the spray: is the server answering at once again?
  const u = users[o.users - 1]!;
  const after = await probeAccess({ port: o.port, secret: o.secret, userName: u.name, password: u.password + totpCode(u.key), timeoutMs: 5000, tries: 3 });
  for (const s of sockets) s.close();
  return { sent, answered, accepts, real, afterSpray: { code: after.code, ms: Math.round(after.ms) } };
}

if (process.send) {
  process.once('disconnect', () => process.exit(0));
  process.once('message', (o: SprayOptions) => {
    spray(o).then((r) => process.send!({ ok: r }), (e: unknown) => process.send!({ error: String(e) }));
  });
}
