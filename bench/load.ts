// The load generator's command line: `node --import tsx bench/load.ts --port 1812 --secret s ...`
// (bench/run.ts runs it as a child pinned to its own core); prints a summary or, with --json, the result.
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { runLoad, type LoadOptions, type LoadResult } from './load-generator.js';

export function formatResult(r: LoadResult): string {
  const l = r.latency;
  return [
    `${r.target}: ${r.answeredPerSec} answered/s over ${r.windowSeconds}s (concurrency ${r.options.concurrency}, ${r.options.users} users, ${r.options.sockets} socket(s))`,
    `  accept ${r.accept}  reject ${r.reject}  challenge ${r.challenge}  other ${r.other}  bad-authenticator ${r.badAuthenticator}  timeouts ${r.timeouts}  late ${r.late}` +
      (r.serverSocketDrops !== undefined ? `  dropped at the server's socket ${r.serverSocketDrops}` : ''),
    `  latency ms: p50 ${l.p50Ms}  p90 ${l.p90Ms}  p99 ${l.p99Ms}  p99.9 ${l.p999Ms}  max ${l.maxMs}  mean ${l.meanMs}`,
    `  reply Message-Authenticator: first ${r.replyMessageAuthenticator.first}  not-first ${r.replyMessageAuthenticator.notFirst}  missing ${r.replyMessageAuthenticator.missing}  bad ${r.replyMessageAuthenticator.bad}`,
    `  generator CPU ${r.generator.cpuPercent}% of one core (user ${r.generator.userPercent}%, sys ${r.generator.systemPercent}%), event-loop utilization ${r.generator.eventLoopUtilization}` +
      (r.server ? `; server pid ${r.server.pid} CPU ${r.server.cpuPercent}% (${r.server.answeredPerCpuSecond} answered per server CPU-second)` : ''),
    `  cores busy (all processes): ${r.cores.map((c) => `cpu${c.cpu} ${c.busyPercent}%` + (c.stealPercent ? ` (steal ${c.stealPercent}%)` : '')).join('  ')}`,
  ].join('\n');
}

/** CLI flags -> options (shared with bench/run.ts, which spawns this file pinned to a core). */
export function parseLoadArgs(argv: string[]): { opts: Partial<LoadOptions> & Pick<LoadOptions, 'port' | 'secret'>; json: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string' }, port: { type: 'string' }, secret: { type: 'string' },
      users: { type: 'string' }, 'user-seed': { type: 'string' }, 'shared-password': { type: 'string' }, concurrency: { type: 'string' },
      seconds: { type: 'string' }, warmup: { type: 'string' }, timeout: { type: 'string' },
      sockets: { type: 'string' }, nas: { type: 'string' }, pick: { type: 'string' },
      'password-mode': { type: 'string' }, 'no-verify-ma': { type: 'boolean' },
      'server-pid': { type: 'string' }, json: { type: 'boolean' },
    },
    strict: true,
  });
  if (!values.port || !values.secret) throw new Error('--port and --secret are required');
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const opts: Partial<LoadOptions> & Pick<LoadOptions, 'port' | 'secret'> = { port: Number(values.port), secret: values.secret };
  const set = <K extends keyof LoadOptions>(k: K, v: LoadOptions[K] | undefined) => { if (v !== undefined) opts[k] = v; };
  set('host', values.host);
  set('users', num(values.users));
  set('userSeed', values['user-seed']);
  set('sharedPassword', values['shared-password']);
  set('concurrency', num(values.concurrency));
  set('seconds', num(values.seconds));
  set('warmupSeconds', num(values.warmup));
  set('timeoutMs', num(values.timeout));
  set('sockets', num(values.sockets));
  set('nasIdentifier', values.nas);
  if (values.pick !== undefined) {
    if (values.pick !== 'round-robin' && values.pick !== 'random') throw new Error('--pick round-robin|random');
    opts.pick = values.pick;
  }
  if (values['password-mode'] !== undefined) {
    if (values['password-mode'] !== 'password+code' && values['password-mode'] !== 'code') throw new Error('--password-mode password+code|code');
    opts.passwordMode = values['password-mode'];
  }
  if (values['no-verify-ma']) opts.verifyReplyMa = false;
  set('serverPid', num(values['server-pid']));
  return { opts, json: values.json ?? false };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { opts, json } = parseLoadArgs(process.argv.slice(2));
  const result = await runLoad(opts);
  console.log(json ? JSON.stringify(result) : formatResult(result));
}
