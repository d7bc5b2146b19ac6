// The load generator's process. bench/run.ts starts it once, pinned to the generator's core, and sends it
// one LoadOptions per run over IPC; alone it takes flags and prints the result:
//   node --import tsx bench/load.ts --port 1812 --secret s [--users 10000 --concurrency 64 --seconds 10
//     --warmup 2 --timeout 2000 --shared-password PW --server-pid PID]
import { parseArgs } from 'node:util';
import { runLoad, type LoadJob } from './load-generator.js';

if (process.send) {
  process.on('message', (o: LoadJob) => {
    runLoad(o).then((r) => process.send!({ ok: r }), (e: unknown) => process.send!({ error: String(e) }));
  });
  process.once('disconnect', () => process.exit(0));
} else {
  const { values: v } = parseArgs({
    options: Object.fromEntries(['host', 'port', 'secret', 'users', 'concurrency', 'seconds', 'warmup', 'timeout', 'shared-password', 'server-pid']
      .map((k) => [k, { type: 'string' as const }])),
  });
  if (!v.port || !v.secret) throw new Error('--port and --secret are required');
  const num = (s: string | undefined) => (s === undefined ? undefined : Number(s));
  const o = Object.fromEntries(Object.entries({
    host: v.host, port: num(v.port), secret: v.secret, users: num(v.users), concurrency: num(v.concurrency), seconds: num(v.seconds),
    warmupSeconds: num(v.warmup), timeoutMs: num(v.timeout), sharedPassword: v['shared-password'], serverPid: num(v['server-pid']),
  }).filter(([, x]) => x !== undefined)) as LoadJob;
  console.log(JSON.stringify(await runLoad(o), null, 1));
}
