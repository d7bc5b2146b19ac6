// Stage ha-totp (issue 13; opt-in): the TOTP path (first_factor none, no audit lines) on one node with
// store postgres + state redis beside store sqlite + state memory, `--runs` alternating pairs at each
// concurrency; goal >= 0.7x answered/s. Every request reads the user from the store and claims its
// (user, step) in the state, so both engines are on its path. PostgreSQL and Redis are not pinned: as on
// one box, they share the machine with the server and the generator. The postgres node gets its users as
// an admin who outgrows one box would: `user import` into SQLite, then `store copy --to postgres://...`.
import { startPostgres } from '../scripts/engines/postgres.js';
import { probeAccess } from './probe.js';
import { startRedis } from '../scripts/engines/redis.js';
import { oursCli, provisionOurs, startOurs, type RunningServer } from './servers.js';
import { generator, SECRET, SERVER_CPU, measured, median, round2, runMs, table, type Measured, type Stage } from './stage.js';
import { totpCode, type BenchUser } from './users.js';

const GOAL = 0.7;
/** Enough for 10,000 users at a cold cache's pace here (~3,000/s: a PostgreSQL read each). */
const WARM_SECONDS = 4;
type Variant = 'sqlite/memory' | 'postgres/redis';
type Run = { variant: Variant; concurrency: number; run: number; m: Measured };

export const haTotpStage: Stage = {
  name: 'ha-totp',
  about: 'TOTP path with store postgres + state redis beside sqlite + memory on one node: answered/s, per server CPU-second, p99 vs the 0.7x goal (opt-in: --ha-totp)',
  estimateMs: (o) => 15_000 + 2 * (WARM_SECONDS * 1000 + 500) + 2 * o.levels.length * o.runs * runMs(o),
  run: async (ctx) => {
    const o = ctx.o;
    const [pg, redis] = [await startPostgres(), await startRedis()];
    for (const e of [pg, redis]) ctx.track({ stop: () => e.close() });
    const gen = generator(ctx);
    let t0 = performance.now();
    const dir = provisionOurs(ctx.users, SECRET);
    const importMs = Math.round(performance.now() - t0);
    const postgresUrl = await pg.createDatabase('radius_mfa_bench');
    t0 = performance.now();
    oursCli(dir, ['store', 'copy', '--to', postgresUrl]);
    const copyMs = Math.round(performance.now() - t0);
    console.log(`${o.users} users imported into SQLite in ${importMs} ms, copied to PostgreSQL in ${copyMs} ms`);
    const node = { secret: SECRET, firstFactor: 'none', logLevel: 'warn', throughput: true } as const;
    const nodes: Array<{ variant: Variant; srv: RunningServer }> = [
      { variant: 'sqlite/memory', srv: ctx.track(await startOurs(dir, node, SERVER_CPU)) },
      { variant: 'postgres/redis', srv: ctx.track(await startOurs(dir, { ...node, shared: { postgresUrl, redisUrl: redis.url } }, SERVER_CPU)) },
    ];
    const [u, w] = [ctx.users[1]!, ctx.users[2]!];
    const ask = async (v: BenchUser, code: string) => (await probeAccess({ port: nodes[1]!.srv.port, secret: SECRET, userName: v.name, password: v.password + code, timeoutMs: 3000 })).code;
    const sanity = { right: await ask(u, totpCode(u.key)), replay: await ask(u, totpCode(u.key)), wrong: await ask(w, String((Number(totpCode(w.key)) + 1) % 1_000_000).padStart(6, '0')) };
    console.log(`postgres/redis node: right code ${sanity.right}, same code again ${sanity.replay}, wrong code ${sanity.wrong} (2 = Accept, 3 = Reject)`);

    // A node that has been up a while has its users' records cached (the store's cache, kept current by
    // LISTEN/NOTIFY): a first pass over every user, unmeasured, so the runs compare steady states.
    for (const n of nodes) {
      const first = await gen.run({ secret: SECRET, port: n.srv.port, users: o.users, concurrency: 64, seconds: WARM_SECONDS, warmupSeconds: 0 });
      console.log(`${n.variant}: first pass over the users (records not yet cached), ${first.answered} answered: ${first.answeredPerSec}/s`);
    }
    const runs: Run[] = [];
    for (const [li, c] of o.levels.entries()) {
      for (let run = 1; run <= o.runs; run++) {
        // Alternate which goes first, so that neither always follows a quiet spell.
        for (const n of (run + li) % 2 === 1 ? nodes : [...nodes].reverse()) {
          runs.push({ variant: n.variant, concurrency: c, run, m: await measured(ctx, gen, `run ${run} ${n.variant} c=${c}`, n.srv, { concurrency: c }) });
        }
      }
    }
    console.log(`\nTOTP path on one node, shared engines beside the one-box default (server on core ${SERVER_CPU}):`);
    console.log(table(['store/state', 'conc', 'run', 'answered/s', 'per srv CPU-s', 'accept', 'reject', 'timeouts', 'p50 ms', 'p99 ms', 'srv CPU %', 'under load'],
      runs.map(({ variant, concurrency, run, m: { result: r, loaded } }) => [variant, concurrency, run, r.answeredPerSec, r.server?.answeredPerCpuSecond,
        r.accept, r.reject, r.timeouts, r.latency.p50Ms, r.latency.p99Ms, r.server?.cpuPercent, loaded ? 'yes' : ''])));
    // postgres/redis over sqlite/memory at each concurrency: medians of each side's runs.
    const ratios = o.levels.map((concurrency) => {
      const med = (v: Variant, pick: (m: Measured) => number | undefined) => median(runs.filter((r) => r.variant === v && r.concurrency === concurrency).map((r) => pick(r.m) ?? NaN));
      const of = (pick: (m: Measured) => number | undefined) => round2(med('postgres/redis', pick) / med('sqlite/memory', pick));
      return { concurrency, answeredPerSec: of((m) => m.result.answeredPerSec), perServerCpuSecond: of((m) => m.result.server?.answeredPerCpuSecond), p99: of((m) => m.result.latency.p99Ms) };
    });
    for (const x of ratios) {
      console.log(`postgres/redis vs sqlite/memory at concurrency ${x.concurrency} (medians): answered/s ${x.answeredPerSec}x, per server CPU-second ${x.perServerCpuSecond}x, ` +
        `p99 ${x.p99}x. Goal: >= ${GOAL}x answered/s: ${x.answeredPerSec >= GOAL ? 'met' : 'NOT met'}.`);
    }
    console.log("PostgreSQL and Redis are not pinned: they share both cores with the server and the generator, and their CPU is not in 'srv CPU %'; " +
      'accept = one per (user, 30 s step), the rest are replays (same work).');
    return { goal: GOAL, importMs, copyMs, sanity, ratios, runs: runs.map(({ m, ...r }) => ({ ...r, ...m })) };
  },
};
