// Stage ha-push (issue 13; opt-in: --ha-push): two nodes (bench/push-harness.ts, unpinned) on one
// PostgreSQL and one Redis (private instances): 1,000 requests held at A and approved at B, paced at
// 200/s, beside 1,000 held and approved at A; then `--users` (10,000) held, half at each node: RSS per
// node after a full GC, Redis used_memory per push.
import { Redis } from 'ioredis';
import { type LatencySummary } from './histogram.js';
import { query, startPostgres } from '../scripts/engines/postgres.js';
import { Requests, formatLatency as l, mib, settle, setUp, startNode, usersNamed, type Node } from './push-harness.js';
import { startRedis } from '../scripts/engines/redis.js';
import { FROM_SRC } from './servers.js';
import { type Stage } from './stage.js';

const HA = { warmUp: 200, paced: 1000, rate: 200, targetP99Ms: 10 };

export const haPushStage: Stage = {
  name: 'ha-push',
  about: 'two nodes on PostgreSQL + Redis: approve at B -> Access-Accept from A, 10,000 held pushes (RSS, Redis memory) (opt-in: --ha-push)',
  estimateMs: (o) => 25_000 + o.users * 2.5,
  run: async (ctx) => {
    const [postgres, redis] = [await startPostgres(), await startRedis()];
    for (const e of [postgres, redis]) ctx.track({ stop: () => e.close() });
    const shared = { postgresUrl: await postgres.createDatabase('radius_mfa_bench'), redisUrl: redis.url };
    const names = { warm: usersNamed('w', HA.warmUp), cross: usersNamed('c', HA.paced), local: usersNamed('l', HA.paced), held: usersNamed('h', ctx.o.users) };
    const { dir, key } = await setUp(ctx, 'ha-push', Object.values(names).flat(), shared.postgresUrl);
    // Statistics for the planner now, not an autovacuum in the middle of a timed phase.
    await query(shared.postgresUrl, 'VACUUM ANALYZE');
    const nodes = [ctx.track(await startNode(dir, 'a', undefined, shared)), ctx.track(await startNode(dir, 'b', undefined, shared))];
    const [a, b] = nodes as [Node, Node];
    const redisClient = new Redis(shared.redisUrl);
    ctx.track({ stop: async () => redisClient.disconnect() });
    // Held at `at`, approved through `via`, paced; the warm-up runs every such path first, on both nodes.
    const approveAcross = async (users: string[], at: Node, via: Node, rate: number) => {
      const set = await Requests.open(users, at);
      await set.hold(20);
      await settle(nodes);
      const http = await set.approve(via.httpPort, 0, users.length, rate, 8, key);
      set.close();
      if (set.check().length) throw new Error(set.check().slice(0, 3).join('; '));
      return { accept: set.latency(0, users.length), http: http.summary() };
    };
    for (const [at, via] of [[a, b], [b, a], [a, a]]) await approveAcross(names.warm, at!, via!, 1000);
    const crossNode = await approveAcross(names.cross, a, b, HA.rate);
    console.log(`held at A, approved at B: approve -> Access-Accept ${l(crossNode.accept)}`);
    const sameNode = await approveAcross(names.local, a, a, HA.rate);

    await settle(nodes);
    const usage = async () => ({ rss: [(await a.memory()).rssKiB, (await b.memory()).rssKiB], redis: Number(/used_memory:(\d+)/.exec(await redisClient.info('memory'))?.[1]) });
    const base = await usage();
    const halves = [await Requests.open(names.held.filter((_, i) => i % 2 === 0), a), await Requests.open(names.held.filter((_, i) => i % 2 === 1), b)];
    const t0 = performance.now();
    await Promise.all(halves.map((h) => h.hold(20)));
    console.log(`${ctx.o.users} requests held (half at each node) in ${Math.round(performance.now() - t0)} ms`);
    const after = await usage();
    const answered = halves.reduce((sum, h) => sum + h.code.filter((c) => c > 0).length, 0);
    if (answered) throw new Error(`${answered} held requests were answered before any approval (see ${dir})`);
    for (const h of halves) h.close();
    const r = {
      server: FROM_SRC ? 'bench/push-server.mjs from src/ via tsx (build dist/ for the numbers to report)' : 'bench/push-server.mjs from dist/',
      crossNode,
      sameNode,
      held: {
        count: ctx.o.users,
        perNode: ['A', 'B'].map((node, i) => ({ node, baseMiB: mib(base.rss[i]!), heldMiB: mib(after.rss[i]!), perHeldKiB: Math.round(((after.rss[i]! - base.rss[i]!) / halves[i]!.names.length) * 100) / 100 })),
        redisBaseMiB: mib(base.redis / 1024), redisHeldMiB: mib(after.redis / 1024), redisPerHeldBytes: Math.round((after.redis - base.redis) / ctx.o.users),
      },
      targets: { crossNodeP99Ms: HA.targetP99Ms, met: crossNode.accept.p99Ms <= HA.targetP99Ms },
    };
    const lc = (s: LatencySummary) => `${l(s)} (${s.count})`;
    console.log([
      `Two nodes, PostgreSQL + Redis (${r.server}; engines on this machine)`,
      `  approve -> Access-Accept, held at A, answered at B: ${lc(crossNode.accept)} (target p99 <= ${HA.targetP99Ms} ms: ${r.targets.met ? 'met' : 'NOT MET'})`,
      `    the answer's own HTTP 200 from B, same answers: ${lc(crossNode.http)}`,
      `  approve -> Access-Accept, held at A, answered at A: ${lc(sameNode.accept)}`,
      `  ${ctx.o.users} held pushes, half at each node (RSS after a full GC):`,
      ...r.held.perNode.map((x) => `    node ${x.node}: ${x.baseMiB} -> ${x.heldMiB} MiB (${x.perHeldKiB} KiB per held request)`),
      `    Redis used_memory: ${r.held.redisBaseMiB} -> ${r.held.redisHeldMiB} MiB (${r.held.redisPerHeldBytes} bytes per push)`,
    ].join('\n'));
    return r;
  },
};
