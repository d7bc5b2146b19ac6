// /healthz and /readyz on metrics.listen: JSON for load balancers and orchestrators.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { enginesDownProbe } from '../src/health/engine-monitor.js';
import { startTestServer } from './helpers/server.js';

async function get(port: number, path: string): Promise<{ status: number; type: string | null; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as Record<string, unknown> };
}

test('healthz answers 200 while the process runs; readyz is 200 with the config and store checked', async (t) => {
  const s = await startTestServer({ config: { metrics: { listen: '127.0.0.1:0' } } });
  t.after(() => s.close());
  const live = await get(s.metricsPort, '/healthz');
  assert.equal(live.status, 200);
  assert.equal(live.type, 'application/json');
  assert.equal(live.body.status, 'ok');
  const ready = await get(s.metricsPort, '/readyz');
  assert.equal(ready.status, 200);
  assert.equal(ready.body.status, 'ready');
  const checks = ready.body.checks as Record<string, { ok: boolean }>;
  assert.equal(checks.config?.ok, true);
  assert.equal(checks.store?.ok, true);
});

test('readyz is 503 naming the store when it cannot be read, and the upstream that does not answer', async (t) => {
  const silent = createSocket('udp4');
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
  t.after(() => silent.close());
  const s = await startTestServer({
    config: {
      metrics: { listen: '127.0.0.1:0' },
      first_factor: { type: 'radius', timeout: '1s', servers: [{ address: `127.0.0.1:${silent.address().port}`, secret: 'x' }] },
    },
  });
  t.after(() => s.close());
  const notReady = await get(s.metricsPort, '/readyz');
  assert.equal(notReady.status, 503);
  assert.equal(notReady.body.status, 'not_ready');
  const checks = notReady.body.checks as Record<string, { ok: boolean; error?: string; fix?: string }>;
  const upstream = checks[`radius upstream 127.0.0.1:${silent.address().port}`];
  assert.equal(upstream?.ok, false);
  assert.match(upstream?.error ?? '', /no answer to Status-Server/);
  assert.equal(checks.store?.ok, true);
  // Liveness is not readiness: the process still answers.
  assert.equal((await get(s.metricsPort, '/healthz')).status, 200);
  await s.store.close();
  const storeGone = await get(s.metricsPort, '/readyz');
  assert.equal(storeGone.status, 503);
  assert.match(String((storeGone.body.checks as Record<string, { error?: string }>).store?.error), /not open|closed/i);
});

test('the engine probe behind Status-Server: a failing or silent engine is down, concurrent probes share one ping', async () => {
  let storePings = 0;
  let stateAnswers = true;
  const probe = enginesDownProbe(
    [
      { engine: 'store', kind: 'postgres', ping: () => void storePings++ },
      { engine: 'state', kind: 'redis', ping: () => (stateAnswers ? Promise.resolve() : new Promise<void>(() => {})) },
    ],
    50,
  );
  assert.deepEqual(await probe(), []);
  stateAnswers = false;
  const before = storePings;
  const [one, two] = await Promise.all([probe(), probe()]);
  assert.deepEqual(one, [{ engine: 'state', kind: 'redis' }], 'a ping that never settles counts as down after the cap');
  assert.equal(two, one);
  assert.equal(storePings - before, 1, 'two probes at once, one ping');
  const failing = enginesDownProbe([{ engine: 'store', kind: 'postgres', ping: () => Promise.reject(new Error('ECONNREFUSED')) }], 1000);
  assert.deepEqual(await failing(), [{ engine: 'store', kind: 'postgres' }]);
});
