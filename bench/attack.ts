// Issue 12's stages (docs/performance.md), first_factor local with argon2id at the default password_hash
// parameters and TOTP, our server on core 0: logins (per second on one core, beside FreeRADIUS with a
// SHA-512 crypt hash) and spray (real users logging in during a wrong-password spray at `--spray-factor`
// times that capacity, on the default config otherwise: reject delay, lockout, rate limits, audit log).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hashPassword } from '../src/auth/password-hash.js';
import { DEFAULT_HASH_PARAMS } from '../src/config/schema.js';
import { freeUdpPort } from '../scripts/engines/ports.js';
import { procStatus } from './proc.js';
import { provisionOurs, startFreeradius, startOurs } from './servers.js';
import type { SprayOptions, SprayResult } from './spray.js';
import { BenchChild, generator, LOCAL_PASSWORD, SECRET, SERVER_CPU, measured, median, round2, type Ctx, type Measured, type Stage } from './stage.js';
import { makeUsers } from './users.js';

const LOGIN_LOAD = { concurrency: 16, sharedPassword: LOCAL_PASSWORD, timeoutMs: 5000, warmupSeconds: 1 };

async function localStore(ctx: Ctx): Promise<{ dir: string; users: ReturnType<typeof makeUsers> }> {
  const users = makeUsers(ctx.o.users, LOCAL_PASSWORD);
  return { dir: provisionOurs(users, SECRET, await hashPassword(LOCAL_PASSWORD, DEFAULT_HASH_PARAMS)), users };
}

export const loginsStage: Stage = {
  name: 'logins',
  about: 'local-password (argon2id, default parameters) + TOTP logins per second on one core, beside FreeRADIUS with SHA-512 crypt',
  estimateMs: (o) => 8000 + 2 * (o.loginSeconds + 2.5) * 1000,
  run: async (ctx) => {
    const { dir, users } = await localStore(ctx);
    const crypt = spawnSync('openssl', ['passwd', '-6', LOCAL_PASSWORD], { encoding: 'utf8' }).stdout.trim();
    const gen = generator(ctx);
    const ours = ctx.track(await startOurs(dir, { secret: SECRET, firstFactor: 'local', logLevel: 'info', throughput: true, auditTo: ctx.o.auditTo }, SERVER_CPU));
    const fr = ctx.track(await startFreeradius({ port: await freeUdpPort(), secret: SECRET, users, cpu: SERVER_CPU, threads: ctx.o.frThreads, authLog: true, cryptHash: crypt }));
    const load = { ...LOGIN_LOAD, seconds: ctx.o.loginSeconds };
    const o = await measured(ctx, gen, 'ours, argon2id', ours, load);
    const f = await measured(ctx, gen, 'FreeRADIUS, SHA-512 crypt', fr, load);
    const line = (name: string, m: Measured) => `  ${name}: ${m.result.answeredPerSec} logins/s (${m.result.accept} accepted, ${m.result.reject} rejected, ${m.result.timeouts} timed out), ` +
      `p50 ${m.result.latency.p50Ms} ms, p99 ${m.result.latency.p99Ms} ms, server CPU ${m.result.server?.cpuPercent}%`;
    console.log(`local password + TOTP logins on one core, ${LOGIN_LOAD.concurrency} outstanding (argon2id m=${DEFAULT_HASH_PARAMS.memory} KiB t=${DEFAULT_HASH_PARAMS.time} p=${DEFAULT_HASH_PARAMS.parallelism}):`);
    console.log(line('ours (argon2id)', o));
    console.log(line('FreeRADIUS (SHA-512 crypt, 5000 rounds)', f));
    console.log(`  ours / FreeRADIUS: ${round2(o.result.answeredPerSec / f.result.answeredPerSec)}x (the hashes differ in cost by design: argon2id is memory-hard)`);
    return { hashParams: DEFAULT_HASH_PARAMS, ours: o, freeradius: f };
  },
};

export const sprayStage: Stage = {
  name: 'spray',
  about: 'real users logging in (5 s timeout, 3 tries) during a wrong-password spray at 10x the first-factor capacity',
  estimateMs: (o) => 12_000 + (o.spraySeconds + 4) * 1000,
  run: async (ctx) => {
    const o = ctx.o;
    const { dir } = await localStore(ctx);
    const srv = ctx.track(await startOurs(dir, { secret: SECRET, firstFactor: 'local', logLevel: 'info', throughput: false }, SERVER_CPU));
    let capacity = (ctx.results.logins as { ours?: Measured } | undefined)?.ours?.result.answeredPerSec;
    capacity ||= (await measured(ctx, generator(ctx), 'first-factor capacity', srv, { ...LOGIN_LOAD, seconds: 2 })).result.answeredPerSec;
    const rate = Math.max(1, Math.round(capacity * o.sprayFactor));
    const everyMs = 500;
    // Audit lines ("msg":"decision") in the log so far: a small file, one line per answer.
    const decisions = () => readFileSync(srv.logFile, 'latin1').split('"msg":"decision"').length - 1;
    const seen = [decisions()];
    const sampler = setInterval(() => seen.push(decisions()), 1000);
    const rss0 = procStatus(srv.pid).rssKiB;
    console.log(`spray: ${rate} wrong passwords/s (${o.sprayFactor} x ${capacity} logins/s) for ${o.spraySeconds} s; a real user logs in every ${everyMs} ms`);
    const client = ctx.track(new BenchChild<SprayOptions, SprayResult>('bench/spray.ts'));
    const r = await client.run({ port: srv.port, secret: SECRET, users: o.users, password: LOCAL_PASSWORD, realUsers: Math.ceil((o.spraySeconds * 1000) / everyMs), rate, seconds: o.spraySeconds, everyMs });
    clearInterval(sampler);
    const [lines, perSecond] = [decisions() - seen[0]!, seen.slice(1).map((n, i) => n - seen[i]!)];
    const rss = procStatus(srv.pid);
    const summary = (logins: SprayResult['real']) => {
      const ms = logins.filter((x) => x.code === 2).map((x) => x.ms);
      return { logins: logins.length, accepted: ms.length, medianMs: ms.length ? Math.round(median(ms)) : NaN, maxMs: ms.length ? Math.round(Math.max(...ms)) : NaN, retried: logins.filter((x) => x.tries > 1).length };
    };
    const result = {
      capacity, rate, seconds: o.spraySeconds, spray: { sent: r.sent, answered: r.answered, accepts: r.accepts },
      real: { usualPlace: summary(r.real.filter((x) => x.familiar)), newPlace: summary(r.real.filter((x) => !x.familiar)), detail: r.real },
      afterSpray: r.afterSpray,
      rssMiB: { before: Math.round(rss0 / 1024), after: Math.round(rss.rssKiB / 1024), peak: Math.round(rss.hwmKiB / 1024) },
      audit: { decisionLines: lines, repliesSeen: r.answered + r.real.filter((x) => x.code !== null).length + (r.afterSpray.code === null ? 0 : 1), linesPerSecond: perSecond },
    };
    for (const [what, s] of [['at their usual place', result.real.usualPlace], ['at a new place', result.real.newPlace]] as const) {
      console.log(`  real users ${what}: ${s.accepted}/${s.logins} got in (median ${s.medianMs} ms, max ${s.maxMs} ms, ${s.retried} needed a retry)`);
    }
    console.log(`  real users refused: ${r.real.filter((x) => x.code !== 2).map((x) => `${x.user} ${x.code ?? 'no answer'}`).join(', ') || 'none'}`);
    console.log(`  spray: ${r.sent} sent, ${r.answered} answered (${r.accepts} accepted); right after it a login took ${r.afterSpray.ms} ms (code ${r.afterSpray.code})`);
    console.log(`  server RSS ${result.rssMiB.before} MiB before, ${result.rssMiB.after} MiB after, peak ${result.rssMiB.peak} MiB`);
    console.log(`  audit log: ${lines} decision lines written for ${result.audit.repliesSeen} answers the clients saw; lines per second during the run: ${perSecond.join(' ')}`);
    return result;
  },
};
