// `npm run bench [-- OPTIONS]` (docs/performance.md lists them): the stages below in order, each server
// pinned to core 0 and the load on core 1. Prints as it goes and writes the whole result to
// bench/out/bench-<time>.json and latest.json (with --json also to stdout), from which docs/performance.md
// is updated by hand. Bounded: the plan's estimate must fit in HARD_LIMIT_MS (else it says what to cut),
// re-runs of disturbed runs only spend the slack, and everything stops at the limit.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loginsStage, sprayStage } from './attack.js';
import { allocStage, compareStage, echoStage, profileStage } from './compare.js';
import { haTotpStage } from './ha-totp.js';
import { formatLoad, machineLoad } from './proc.js';
import { FROM_SRC, REPO, canPin, freeradiusVersion } from './servers.js';
import { haPushStage } from './ha-push.js';
import { pushStage } from './push.js';
import { type Ctx, type Options, type Stage, type Stoppable } from './stage.js';
import { makeUsers } from './users.js';

const HARD_LIMIT_MS = 175_000;

const STAGES: Stage[] = [echoStage, compareStage, loginsStage, sprayStage, profileStage, allocStage, pushStage, haTotpStage, haPushStage];
/** Not in the default plan (they would not fit the limit beside the others): --profile, --alloc, --push, --ha-totp, --ha-push, or --only. */
const OPT_IN = new Set(['profile', 'alloc', 'push', 'ha-totp', 'ha-push']);

const { values: a } = parseArgs({
  options: {
    only: { type: 'string' }, skip: { type: 'string', default: '' }, profile: { type: 'boolean', default: false }, alloc: { type: 'boolean', default: false }, push: { type: 'boolean', default: false }, 'ha-totp': { type: 'boolean', default: false }, 'ha-push': { type: 'boolean', default: false },
    seconds: { type: 'string', default: '2' }, warmup: { type: 'string', default: '0.5' }, concurrency: { type: 'string', default: '64,256' },
    runs: { type: 'string', default: '3' }, users: { type: 'string', default: '10000' }, 'fr-threads': { type: 'string', default: '5:32' },
    'audit-to': { type: 'string', default: 'file' }, 'load-gate': { type: 'string', default: '15' }, retries: { type: 'string', default: '2' },
    'login-seconds': { type: 'string', default: '2' }, 'spray-seconds': { type: 'string', default: '5' }, 'spray-factor': { type: 'string', default: '10' },
    'keep-dirs': { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, help: { type: 'boolean', default: false },
  },
  strict: true,
});

function num(name: string, lo: number, hi: number, s = (a as Record<string, unknown>)[name] as string): number {
  const v = Number(s);
  if (!Number.isFinite(v) || v < lo || v > hi) throw new Error(`--${name} must be in ${lo}..${hi} (got ${s})`);
  return v;
}
const [frStart, frMax] = a['fr-threads'].split(':').map((s) => num('fr-threads', 1, 64, s));
if (a['audit-to'] !== 'file' && a['audit-to'] !== 'pipe') throw new Error('--audit-to file|pipe');
const o: Options = {
  seconds: num('seconds', 0.5, 30), warmup: num('warmup', 0, 10), runs: num('runs', 1, 5), users: num('users', 100, 200_000),
  levels: a.concurrency.split(',').map((c) => num('concurrency', 1, 4096, c)), frThreads: [frStart!, frMax ?? frStart!],
  gate: num('load-gate', 0, 100), retries: num('retries', 0, 5), auditTo: a['audit-to'],
  loginSeconds: num('login-seconds', 1, 30), spraySeconds: num('spray-seconds', 1, 30), sprayFactor: num('spray-factor', 1, 100), keepDirs: a['keep-dirs'],
};
const names = STAGES.map((s) => s.name);
const only = a.only?.split(',').filter(Boolean);
const skip = new Set(a.skip.split(',').filter(Boolean));
for (const n of [...(only ?? []), ...skip]) if (!names.includes(n)) throw new Error(`unknown stage ${n}: one of ${names.join(', ')}`);
const plan = STAGES.filter((s) => (only ? only.includes(s.name) : (!OPT_IN.has(s.name) || a[s.name as 'profile' | 'alloc' | 'push' | 'ha-totp' | 'ha-push']) && !skip.has(s.name)));
const estimate = 3000 + plan.reduce((t, s) => t + s.estimateMs(o), 0);

if (a.help) {
  console.log(`stages (in order; --only / --skip by name): ${STAGES.map((s) => `\n  ${s.name}: ${s.about} (~${Math.round(s.estimateMs(o) / 1000)} s with these options)`).join('')}`);
  process.exit(0);
}
if (estimate > HARD_LIMIT_MS) {
  console.error(`bench: this plan needs ~${Math.round(estimate / 1000)} s (${plan.map((s) => `${s.name} ${Math.round(s.estimateMs(o) / 1000)} s`).join(', ')}), ` +
    `over the ${HARD_LIMIT_MS / 1000} s limit: fewer --seconds, --runs or --concurrency levels, or fewer stages (--only / --skip)`);
  process.exit(2);
}

const t0 = Date.now();
const json = { startedAt: new Date(t0).toISOString(), durationSeconds: 0, complete: false, machine: {} as unknown, options: o, stageSeconds: {} as Record<string, number>, results: {} as Record<string, unknown> };
const { results, stageSeconds } = json;
const started: Stoppable[] = [];
async function cleanup(): Promise<void> {
  await Promise.all(started.map((s) => s.stop().catch(() => undefined)));
  if (!o.keepDirs) for (const s of started) if (s.dir) rmSync(s.dir, { recursive: true, force: true });
}
setTimeout(() => {
  console.error(`bench: hard limit of ${HARD_LIMIT_MS / 1000} s reached; stopping`);
  void cleanup().then(() => {
    writeResult();
    process.exit(3);
  });
}, HARD_LIMIT_MS).unref();
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

async function main(): Promise<void> {
  const load = await machineLoad(1000);
  const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, freeradius: freeradiusVersion(), pinned: canPin(), load };
  console.log(`bench: ${machine.cores} cores (${machine.cpu}), Node ${machine.node}, ${machine.freeradius}, ours from ${FROM_SRC ? 'src/ via tsx (not numbers to report)' : 'dist/'}`);
  console.log(`bench: ${formatLoad(load)}`);
  const left = STAGES.filter((s) => !plan.includes(s)).map((s) => s.name);
  console.log(`bench: stages ${plan.map((s) => s.name).join(', ')}${left.length ? ` (not run: ${left.join(', ')}; --only / --profile / --alloc / --push / --ha-totp / --ha-push)` : ''}: ~${Math.round(estimate / 1000)} s planned, limit ${HARD_LIMIT_MS / 1000} s; a run with over ${o.gate}% of a core used by other processes is re-run (at most ${o.retries} times, within the slack)`);
  if (!machine.pinned) console.log('bench: WARNING fewer than 2 cores or no taskset: server and load share cores, numbers are not meaningful');
  const slack = Math.max(0, (HARD_LIMIT_MS - 10_000 - estimate) / estimate); // the share of its estimate a stage may spend on re-runs
  const ctx: Ctx = { o, users: makeUsers(o.users), results, track: (s) => (started.push(s), s), reRunMs: 0 };
  json.machine = machine;
  for (const stage of plan) {
    ctx.reRunMs = stage.estimateMs(o) * slack;
    console.log(`\n== ${stage.name}: ${stage.about}`);
    const [s0, mark] = [Date.now(), started.length];
    try {
      results[stage.name] = await stage.run(ctx);
    } catch (err) {
      console.log(`${stage.name}: FAILED: ${err instanceof Error ? err.message : String(err)}`);
      results[stage.name] = { error: String(err) };
    }
    for (const s of started.slice(mark).reverse()) await s.stop().catch(() => undefined);
    stageSeconds[stage.name] = Math.round((Date.now() - s0) / 100) / 10;
  }
  await cleanup();
  json.complete = true;
  writeResult();
  if (a.json) console.log(JSON.stringify(json));
}

/** bench/out/bench-<time>.json and latest.json: at the end, or with what was done when the hard limit struck. */
function writeResult(): void {
  json.durationSeconds = Math.round((Date.now() - t0) / 1000);
  const outDir = join(REPO, 'bench', 'out');
  mkdirSync(outDir, { recursive: true });
  const stamp = json.startedAt.replace(/[:.]/g, '-');
  for (const f of [`bench-${stamp}.json`, 'latest.json']) writeFileSync(join(outDir, f), JSON.stringify(json, null, 1));
  console.log(`\nwrote bench/out/bench-${stamp}.json (${json.durationSeconds} s${json.complete ? '' : ', incomplete'})`);
}

main().then(() => process.exit(0), async (err) => {
  console.error(err instanceof Error ? err.message : err);
  await cleanup();
  process.exit(1);
});
