// docs/mobile-api.md is a contract for third-party app authors: every example in it runs here against
// a real server (HTTP API, real UDP, the real radclient as the VPN), so the page cannot drift from the code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, sign as nodeSign, verify, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { API_ERRORS } from '../src/api/errors.js';
import { configSchema } from '../src/config/schema.js';
import { createActivation } from '../src/mfa/activation.js';
import webpush from 'web-push';
import { FakeFcm, PROJECT, senderFor } from './helpers/fake-fcm.js';
import { FakePushService, Subscriber } from './helpers/fake-push-service.js';
import { httpCall, SimulatedPhone } from './helpers/phone.js';
import { radclient } from './helpers/radclient.js';
import { enrollTotp, startTestServer, type StartOptions, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

const DOC = readFileSync(fileURLToPath(new URL('../docs/mobile-api.md', import.meta.url)), 'utf8');

/** The fenced block right after `<!-- test: NAME -->`. */
function block(name: string): string {
  const m = new RegExp(`<!-- test: ${name} -->\\n\`\`\`\\w*\\n([\\s\\S]*?)\\n\`\`\``).exec(DOC);
  assert.ok(m, `docs/mobile-api.md has no block marked <!-- test: ${name} -->`);
  return m[1]!;
}

/** Loads a JS block as an ES module that exports the given names. */
async function loadModule<T>(t: { after: (fn: () => void) => void }, name: string, exports: string[]): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'mobile-api-docs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, `${name}.mjs`);
  writeFileSync(file, `${block(name)}\nexport { ${exports.join(', ')} };\n`);
  return (await import(pathToFileURL(file).href)) as T;
}

async function pushServer(opts: StartOptions = {}) {
  const server = await startTestServer({
    ...opts,
    config: { http: { listen: '127.0.0.1:0' }, mfa: { default_method: 'push', push: { timeout: '10s' } }, ...(opts.config ?? {}) },
  });
  await enrollTotp(server.store, 'alice', { password: 'pw-alice' });
  await enrollTotp(server.store, 'bob', { password: 'pw-bob' });
  return { server, base: `http://127.0.0.1:${server.httpPort}` };
}

const code = async (server: TestServer, user = 'alice') => (await createActivation(server.store, server.config, user, server.clock.now())).activation_code;
const login = (server: TestServer, user = 'alice') =>
  radclient({ 'User-Name': user, 'User-Password': `pw-${user}`, 'NAS-Identifier': 'vpn-gw-1', 'Calling-Station-Id': '203.0.113.7' }, { port: server.authPort, secret: server.secret, timeout: 12 });

interface Device {
  device_id: string;
  device_token: string;
  account_name: string;
  username: string;
  privateKey: unknown;
}
interface WebCryptoModule {
  activate(baseUrl: string, code: string, name: string, pushToken?: string): Promise<Device>;
  listPending(baseUrl: string, device: Device): Promise<{ id: string; username: string; client: string; calling_station: string; nas_identifier: string; pin_required: boolean; time: string; expires: string }[]>;
  answer(baseUrl: string, device: Device, id: string, decision: string, pin?: string): Promise<{ status: string }>;
}

test('the WebCrypto example activates, lists the held request and approves it: the VPN gets Access-Accept; deny rejects', async (t) => {
  const { server, base } = await pushServer();
  t.after(() => server.close());
  const api = await loadModule<WebCryptoModule>(t, 'webcrypto', ['activate', 'listPending', 'answer']);

  const device = await api.activate(base, await code(server), 'docs phone');
  assert.equal(device.username, 'alice');
  assert.match(device.device_token, /^[A-Za-z0-9_-]{43}$/);
  assert.equal((device.privateKey as { extractable: boolean }).extractable, false);

  const held = login(server);
  const pending = async () => {
    const list = await api.listPending(base, device);
    return list.length ? list : undefined;
  };
  const [request] = await until(pending, 'a pending request');
  assert.deepEqual(
    { ...request!, id: undefined, time: undefined, expires: undefined },
    { id: undefined, username: 'alice', client: 'test-nas', nas_identifier: 'vpn-gw-1', calling_station: '203.0.113.7', pin_required: false, time: undefined, expires: undefined },
  );
  assert.equal(Date.parse(request!.expires) - Date.parse(request!.time), 10_000);
  assert.deepEqual(await api.answer(base, device, request!.id, 'approve'), { status: 'approved' });
  assert.equal((await held).code, 'Access-Accept');

  const denied = login(server);
  const [second] = await until(pending, 'a second request');
  assert.deepEqual(await api.answer(base, device, second!.id, 'deny'), { status: 'denied' });
  assert.equal((await denied).code, 'Access-Reject');
  await assert.rejects(api.answer(base, device, second!.id, 'approve'), (err: { code: string; status: number }) => err.code === 'ALREADY_ANSWERED' && err.status === 409);
});

interface NodeCryptoModule {
  newDeviceKeys(): { publicKeyBase64: string; privateKey: KeyObject };
  signAnswer(privateKey: KeyObject, id: string, decision: string): string;
  derToP1363(der: Buffer): Buffer;
}

test('the node:crypto example signs answers the server accepts, and derToP1363 turns DER signatures into ones it accepts', async (t) => {
  const { server, base } = await pushServer();
  t.after(() => server.close());
  const ex = await loadModule<NodeCryptoModule>(t, 'node-crypto', ['newDeviceKeys', 'signAnswer', 'derToP1363']);

  const keys = ex.newDeviceKeys();
  const activation = await httpCall<{ device_token: string }>('POST', `${base}/api/v1/activation`, { activation_code: await code(server), device_name: 'node', public_key: keys.publicKeyBase64 });
  assert.equal(activation.status, 201);
  const token = activation.body.device_token;
  const pendingId = () => until(async () => (await httpCall<{ id: string }[]>('GET', `${base}/api/v1/pending`, undefined, token)).body[0]?.id, 'a pending request');
  const post = (id: string, body: unknown) => httpCall<Record<string, unknown>>('POST', `${base}/api/v1/requests/${id}/answer`, body, token);

  let held = login(server);
  let id = await pendingId();
  assert.deepEqual((await post(id, { decision: 'approve', signature: ex.signAnswer(keys.privateKey, id, 'approve') })).body, { status: 'approved' });
  assert.equal((await held).code, 'Access-Accept');

  // DER (what OpenSSL, Java and iOS SecKey produce) is refused as it is, accepted after derToP1363.
  held = login(server);
  id = await pendingId();
  const der = nodeSign('sha256', Buffer.from(`${id}.approve`), keys.privateKey);
  const refused = await post(id, { decision: 'approve', signature: der.toString('base64') });
  assert.deepEqual([refused.status, (refused.body.error as { code: string }).code], [403, 'BAD_SIGNATURE']);
  // base64url is accepted too, as the page says.
  assert.deepEqual((await post(id, { decision: 'approve', signature: ex.derToP1363(der).toString('base64url') })).body, { status: 'approved' });
  assert.equal((await held).code, 'Access-Accept');
});

test('derToP1363 gives exactly the r||s that node:crypto itself produces for the same signature', async (t) => {
  const ex = await loadModule<NodeCryptoModule>(t, 'node-crypto', ['derToP1363']);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  for (let i = 0; i < 200; i++) {
    const data = Buffer.from(`request-${i}.approve`);
    const der = nodeSign('sha256', data, privateKey);
    assert.equal(verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, ex.derToP1363(der)), true, `signature ${i}`);
  }
});

test('a raw P-256 point with the documented 26-byte SPKI prefix is a valid public_key; unknown body fields are ignored', async (t) => {
  const { server, base } = await pushServer();
  t.after(() => server.close());
  const prefix = /`([0-9a-f]{52})`/.exec(DOC.slice(DOC.indexOf('raw uncompressed point')))![1]!;
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
  const spki = Buffer.concat([Buffer.from(prefix, 'hex'), point]);
  assert.deepEqual(spki, publicKey.export({ type: 'spki', format: 'der' }));
  const r = await httpCall('POST', `${base}/api/v1/activation`, { activation_code: await code(server), device_name: 'ios', public_key: spki.toString('base64'), some_future_field: true });
  assert.equal(r.status, 201, JSON.stringify(r.body));
});

test('the curl + openssl session activates, approves the held sign-in, rotates the push token and deregisters', async (t) => {
  const { server, base } = await pushServer();
  t.after(() => server.close());
  // alice already has a phone, so her sign-in is held; the curl device sees the same pending request.
  const other = await SimulatedPhone.activate(base, await code(server));
  const dir = mkdtempSync(join(tmpdir(), 'mobile-api-curl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = ['set -euo pipefail', block('curl-activate'), 'until [ "$(curl -sS "$BASE/api/v1/pending" -H "authorization: Bearer $TOKEN" | jq length)" -gt 0 ]; do sleep 0.05; done', block('curl-answer'), 'echo', block('curl-device')].join('\n');
  const activationCode = await code(server);
  const held = login(server);
  await other.waitForPending();
  const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile('bash', ['-c', script], { cwd: dir, env: { ...process.env, BASE: base, CODE: activationCode }, timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, '{"status":"approved"}\n204\n204\n');
  assert.equal((await held).code, 'Access-Accept');
  const devices = await server.store.devices.list('alice');
  assert.deepEqual(devices.map((d) => d.name), ['test phone'], 'the curl device deregistered itself');
  const activation = JSON.parse(readFileSync(join(dir, 'activation.json'), 'utf8')) as { device_token: string };
  assert.equal((await httpCall('GET', `${base}/api/v1/pending`, undefined, activation.device_token)).status, 401);
});

test('the FCM message on the page is what the server sends through firebase-admin (to a local fake FCM)', async (t) => {
  const fcm = await FakeFcm.start((n) => ({ status: 200, body: { name: `projects/${PROJECT}/messages/${n}` } }));
  t.after(() => fcm.close());
  const { sender } = await senderFor(fcm.port);
  const { server, base } = await pushServer({ pushSender: sender, config: { http: { listen: '127.0.0.1:0' }, mfa: { default_method: 'push' } } });
  t.after(() => server.close());
  const phone = await SimulatedPhone.activate(base, await code(server), { pushToken: 'token-from-the-fcm-sdk' });
  const held = login(server);
  const pending = await phone.waitForPending();
  await until(async () => fcm.received[0], 'the FCM request');
  const documented = JSON.parse(block('fcm-message')) as { message: { token: string; data: { request_id: string } } };
  documented.message.token = 'token-from-the-fcm-sdk';
  documented.message.data.request_id = pending.id;
  assert.deepEqual(fcm.received[0]!.body, documented);
  await phone.answer(pending.id, 'approve');
  assert.equal((await held).code, 'Access-Accept');
});

test('the Web Push token on the page is accepted as push_token, and the payload is what a subscription gets (decrypted at a local fake push service)', async (t) => {
  // No mobile_app.web_push here: the documented endpoint is a real push service and must never be sent to.
  const { server, base } = await pushServer();
  t.after(() => server.close());
  const phone = await SimulatedPhone.activate(base, await code(server));
  const documentedToken = block('web-push-token');
  assert.equal((await httpCall('POST', `${base}/api/v1/push-token`, { push_token: documentedToken }, phone.token)).status, 204);
  // Kept as checked: the normalized endpoint and the keys, nothing else of the JSON.
  const { endpoint, keys: subscriptionKeys } = JSON.parse(documentedToken.slice('webpush:'.length)) as { endpoint: string; keys: unknown };
  assert.equal((await server.store.devices.list('alice'))[0]!.pushToken, `webpush:${JSON.stringify({ endpoint, keys: subscriptionKeys })}`);

  const service = await FakePushService.start();
  t.after(() => service.close());
  const keys = webpush.generateVAPIDKeys();
  const { server: pushing, base: pushingBase } = await pushServer({
    webPushAgent: service.agent,
    config: { http: { listen: '127.0.0.1:0' }, mfa: { default_method: 'push', push: { timeout: '10s' } }, mobile_app: { web_push: { vapid_public_key: keys.publicKey, vapid_private_key: keys.privateKey, subject: 'mailto:helpdesk@example.com', push_services: ['127.0.0.1'] } } },
  });
  t.after(() => pushing.close());
  const subscriber = new Subscriber(`${service.origin}/push/docs`);
  const browserPhone = await SimulatedPhone.activate(pushingBase, await code(pushing), { pushToken: subscriber.pushToken });
  const held = login(pushing);
  const [push] = await service.waitForPushes(1);
  const pending = await browserPhone.waitForPending();
  const documented = JSON.parse(block('web-push-payload')) as { request_id: string };
  documented.request_id = pending.id;
  assert.deepEqual(JSON.parse(subscriber.decrypt(push!.body).toString('utf8')), documented);
  await browserPhone.answer(pending.id, 'approve');
  assert.equal((await held).code, 'Access-Accept');
});

test('the error table lists every code of src/api/errors.ts with its status, and the server answers with them', async (t) => {
  const table = DOC.slice(DOC.indexOf('<!-- test: error-table -->')).split('\n').slice(1).filter((l) => l.startsWith('| `'));
  const documented = new Map(table.map((l) => {
    const [, codeCell, status] = l.split('|').map((c) => c.trim());
    return [codeCell!.replace(/`/g, ''), Number(status)] as const;
  }));
  const expected = new Map<string, number>([...Object.entries(API_ERRORS).map(([c, e]) => [c, e.status] as const), ['BAD_REQUEST', 400], ['NOT_FOUND', 404], ['INTERNAL', 500]]);
  assert.deepEqual([...documented.entries()].sort(), [...expected.entries()].sort());

  const { server, base } = await pushServer({ config: { http: { listen: '127.0.0.1:0' }, mfa: { default_method: 'push', push: { timeout: '1s' } } } });
  t.after(() => server.close());
  const seen = new Map<string, number>();
  const note = (r: { status: number; body: unknown }) => {
    const c = (r.body as { error?: { code: string } } | undefined)?.error?.code;
    if (c) seen.set(c, r.status);
    return r;
  };
  const json = (method: string, path: string, body?: unknown, token?: string) => httpCall(method, `${base}/api/v1${path}`, body, token).then(note);
  await json('POST', '/activation', {});
  await json('POST', '/activation', { activation_code: '1234-5678-9012', device_name: 'x', public_key: Buffer.alloc(60).toString('base64') });
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await json('POST', '/activation', { activation_code: '0000-0000-0000', device_name: 'x', public_key: publicKey.export({ type: 'spki', format: 'der' }).toString('base64') });
  await json('GET', '/pending');
  await json('GET', '/nothing-here');
  note(await fetch(`${base}/api/v1/activation`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' }).then(async (r) => ({ status: r.status, body: await r.json() })));

  const alice = await SimulatedPhone.activate(base, await code(server));
  const bob = await SimulatedPhone.activate(base, await code(server, 'bob'));
  await json('POST', '/requests/no-such-request/answer', { decision: 'approve', signature: 'AAAA' }, alice.token);
  const first = login(server);
  const request = await alice.waitForPending();
  note(await bob.answer(request.id, 'approve'));
  note(await alice.answer(request.id, 'approve', { signText: `${request.id}.deny` }));
  await alice.answer(request.id, 'deny');
  note(await alice.answer(request.id, 'approve'));
  await first;
  const second = login(server);
  const late = await alice.waitForPending();
  assert.equal((await second).code, 'Access-Reject'); // push.timeout 1s
  note(await alice.answer(late.id, 'approve'));
  for (let i = 0; i < 11; i++) await json('POST', '/activation', { activation_code: '0000-0000-0000', device_name: 'x', public_key: publicKey.export({ type: 'spki', format: 'der' }).toString('base64') });

  for (const [c, status] of seen) assert.equal(documented.get(c), status, `${c} answered ${status}`);
  assert.deepEqual(
    [...seen.keys()].sort(),
    ['ACTIVATION_INVALID', 'ALREADY_ANSWERED', 'BAD_REQUEST', 'BAD_SIGNATURE', 'INVALID_PUBLIC_KEY', 'NOT_FOUND', 'NOT_YOUR_REQUEST', 'RATE_LIMITED', 'REQUEST_EXPIRED', 'REQUEST_NOT_FOUND', 'UNAUTHORIZED', 'VALIDATION'],
  );
});

test('the QR payload is {url}/app/?activate=CODE&account=NAME, and the service URL is what precedes /app/ (also with a path)', async () => {
  const config = configSchema.parse({
    listen: { auth: '127.0.0.1:0' },
    clients: [{ name: 'v', address: '127.0.0.1', secret: 's' }],
    mobile_app: { public_url: 'https://example.com/mfa/', account_name: 'ACME VPN' },
    store: { path: ':memory:' },
  });
  let stored: unknown[] = [];
  const store = { devices: { addActivation: async (...a: unknown[]) => void (stored = a) } } as never;
  const a = await createActivation(store, config, 'alice', Date.now());
  const payload = new URL(a.qr_payload);
  assert.equal(payload.searchParams.get('activate'), a.activation_code.replace(/-/g, ''));
  assert.equal(payload.searchParams.get('account'), 'ACME VPN');
  assert.equal(a.qr_payload.slice(0, a.qr_payload.lastIndexOf('/app/')), 'https://example.com/mfa');
  assert.equal(a.url, 'https://example.com/mfa');
  assert.equal(stored[0], 'alice');
});

test('the OpenAPI document is served at /api/v1/openapi.json and has every endpoint the page describes', async (t) => {
  const { server, base } = await pushServer();
  t.after(() => server.close());
  const r = await httpCall<{ openapi: string; paths: Record<string, Record<string, unknown>> }>('GET', `${base}/api/v1/openapi.json`);
  assert.equal(r.status, 200);
  assert.match(r.body.openapi, /^3\./);
  const documented = [...DOC.matchAll(/^### `(GET|POST|DELETE) (\/api\/v1\/[^`]+)`$/gm)].map((m) => [m[1]!.toLowerCase(), m[2]!]);
  assert.deepEqual(documented.map(([m, p]) => `${m} ${p}`).sort(), ['delete /api/v1/device', 'get /api/v1/device', 'get /api/v1/pending', 'get /api/v1/web-push', 'post /api/v1/activation', 'post /api/v1/push-token', 'post /api/v1/requests/{id}/answer', 'post /api/v1/totp/confirm']);
  for (const [method, path] of documented) assert.ok(r.body.paths[path!]?.[method!], `${method} ${path} in openapi.json`);
});
