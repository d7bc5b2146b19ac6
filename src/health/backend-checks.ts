// Connectivity checks of every configured backend, for `check-config --connect` and /readyz. Each
// check answers ok with a detail, or the cause and the fix, naming the config field to change.
// ldapts and web-push are loaded by the check that needs them: `serve` imports this file for /readyz.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import type * as Ldapts from 'ldapts';
import type WebPush from 'web-push';
import type { Config } from '../config/schema.js';
import { vapidPublicKeyOf } from '../mfa/vapid.js';
import { probeStatusServer, type StatusResult } from '../radius/status-server.js';

export type CheckOutcome = { ok: true; detail: string } | { ok: false; cause: string; fix: string };

export interface BackendCheck {
  /** What is checked, e.g. "ldap ldap://dc1:389" or "radius upstream 10.0.0.5:1812". */
  name: string;
  run(): Promise<CheckOutcome>;
}

export interface CheckOptions {
  /** Per network check; default 5 s (LDAP uses first_factor.timeout). */
  timeoutMs?: number;
  /** Include the FCM token fetch (it goes to Google): off for /readyz, which runs often. */
  fcm?: boolean;
}

const ok = (detail: string): CheckOutcome => ({ ok: true, detail });
const fail = (cause: string, fix: string): CheckOutcome => ({ ok: false, cause, fix });

/** The checks for this config, in config order; none for backends that are not configured. */
export function backendChecks(config: Config, options: CheckOptions = {}): BackendCheck[] {
  const checks: BackendCheck[] = [];
  const ff = config.first_factor;
  if (ff.type === 'ldap') {
    for (const url of [...(ff.url ?? []), ...(ff.urls ?? [])]) checks.push({ name: `ldap ${url}`, run: () => checkLdap(ff, url) });
  }
  if (ff.type === 'radius') {
    ff.servers.forEach((s, i) =>
      checks.push({
        name: `radius upstream ${s.address.host}:${s.address.port}`,
        run: () => checkRadius(s, 'auth', `first_factor.servers[${i}]`, options.timeoutMs),
      }),
    );
  }
  config.accounting.forward?.servers.forEach((s, i) =>
    checks.push({
      name: `accounting forward ${s.address.host}:${s.address.port}`,
      run: () => checkRadius(s, 'acct', `accounting.forward.servers[${i}]`, options.timeoutMs),
    }),
  );
  const firebase = config.mobile_app.firebase;
  if (firebase && options.fcm !== false) {
    checks.push({ name: `fcm ${firebase.service_account_file}`, run: () => checkFcm(firebase.service_account_file, options.timeoutMs ?? 10_000) });
  }
  const vapid = config.mobile_app.web_push;
  if (vapid) checks.push({ name: 'web push keys', run: async () => checkWebPush(vapid, (await import('web-push')).default) });
  return checks;
}

type LdapConfig = Extract<Config['first_factor'], { type: 'ldap' }>;

async function checkLdap(ff: LdapConfig, url: string): Promise<CheckOutcome> {
  const ldapts = await import('ldapts');
  const secure = /^ldaps:/i.test(url);
  let ca: Buffer | undefined;
  if (ff.ca_file) {
    try {
      ca = readFileSync(ff.ca_file);
    } catch (err) {
      return fail(`cannot read first_factor.ca_file ${ff.ca_file}: ${(err as Error).message}`, 'point first_factor.ca_file at the PEM bundle of the CA that signed the LDAP server certificate');
    }
  }
  const tls: ConnectionOptions = { ...(ca ? { ca } : {}), minVersion: 'TLSv1.2' };
  const client = new ldapts.Client({ url, timeout: ff.timeout, connectTimeout: ff.timeout, ...(secure ? { tlsOptions: { ...tls } } : {}), strictDN: false });
  let step = 'connect';
  try {
    if (ff.start_tls) {
      step = 'StartTLS';
      await client.startTLS({ ...tls });
    }
    if (!ff.search) {
      // Without a service account only an anonymous root DSE read is possible: it proves the server answers.
      step = 'read the root DSE';
      await client.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['namingContexts'] });
      return ok('connected (no first_factor.search service account: binds happen as each user)');
    }
    step = `bind as ${ff.search.bind_dn}`;
    await client.bind(ff.search.bind_dn, ff.search.password);
    step = `search ${ff.search.base}`;
    await client.search(ff.search.base, { scope: 'base', filter: '(objectClass=*)', attributes: ['dn'], sizeLimit: 1 });
    return ok(`service bind as ${ff.search.bind_dn} and search of ${ff.search.base} succeeded`);
  } catch (err) {
    return ldapFailure(err, step, url, ff, ldapts);
  } finally {
    await client.unbind().catch(() => {});
  }
}

function ldapFailure(err: unknown, step: string, url: string, ff: LdapConfig, { InvalidCredentialsError, NoSuchObjectError }: typeof Ldapts): CheckOutcome {
  const code = (err as { code?: string }).code;
  const message = (err as Error).message ?? String(err);
  if (err instanceof InvalidCredentialsError) {
    return fail(`${step}: invalid credentials`, 'fix first_factor.search.bind_dn and first_factor.search.password (the service account)');
  }
  if (err instanceof NoSuchObjectError) {
    return fail(`${step}: no such object`, 'fix first_factor.search.base: the entry does not exist on this server');
  }
  if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENOTFOUND' || /timeout/i.test(message)) {
    return fail(`cannot connect to ${url}: ${message}`, 'check first_factor.url, that the LDAP server runs and that a firewall lets this host reach it');
  }
  if (/certificate|self.signed|unable to verify|altnames|TLS|SSL/i.test(message) || (code !== undefined && /^(ERR_TLS|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED)/.test(code))) {
    return fail(`${step}: ${message}`, ff.ca_file ? `first_factor.ca_file does not trust the server certificate, or its name does not match ${url}` : 'set first_factor.ca_file to the CA that signed the LDAP server certificate');
  }
  return fail(`${step}: ${message}`, `check the first_factor LDAP settings against the server at ${url}`);
}

type UpstreamConfig = Extract<Config['first_factor'], { type: 'radius' }>['servers'][number];

async function checkRadius(s: UpstreamConfig, role: 'auth' | 'acct', field: string, timeoutMs = 2000): Promise<CheckOutcome> {
  const r: StatusResult = await probeStatusServer({ host: s.address.host, port: s.address.port, secret: Buffer.from(s.secret, 'utf8'), role }, timeoutMs, 2);
  switch (r.kind) {
    case 'alive':
      return ok(`answered Status-Server in ${r.ms} ms`);
    case 'bad_reply':
      return fail(`answered Status-Server, but ${r.detail}`, `make ${field}.secret the shared secret the server has for this host`);
    case 'no_answer':
      return fail(
        `no answer to Status-Server after ${r.tries} tries of ${r.timeoutMs} ms: the server is down, ${field}.secret is wrong (requests that do not verify are dropped), or it does not answer Status-Server`,
        `check ${field}.address and .secret; on FreeRADIUS enable status_server = yes in radiusd.conf; NPS does not answer Status-Server: test a login with radius-mfa test USER instead`,
      );
    case 'error':
      return fail(`${r.detail}`, `check ${field}.address and that the RADIUS server runs`);
  }
}

/** A token fetch proves the service account key is valid and Google's token endpoint is reachable. */
async function checkFcm(file: string, timeoutMs: number): Promise<CheckOutcome> {
  const field = 'mobile_app.firebase.service_account_file';
  const path = resolve(file);
  if (!existsSync(path)) return fail(`${field} ${path} does not exist`, 'download the service account key (Firebase console > Project settings > Service accounts) to that path');
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    return fail(`${field} ${path} is not JSON: ${(err as Error).message}`, 'download the service account key again: it is a JSON file');
  }
  const { cert } = await import('firebase-admin/app');
  let credential;
  try {
    credential = cert(json as never);
  } catch (err) {
    return fail(`${field} ${path}: ${(err as Error).message}`, 'use a service account key file from the Firebase console (it has project_id, client_email and private_key)');
  }
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
  try {
    const r = await Promise.race([credential.getAccessToken(), limit]);
    if (r === 'timeout') return fail(`no access token from Google within ${timeoutMs} ms`, 'let this host reach https://oauth2.googleapis.com');
    return ok(`access token fetched for ${(json as { client_email?: string }).client_email} (project ${(json as { project_id?: string }).project_id})`);
  } catch (err) {
    const message = (err as Error).message;
    if (/invalid_grant|invalid_client|unauthorized_client|account not found/i.test(message)) {
      return fail(`Google refused the service account key: ${message.split('\n')[0]}`, 'the key was deleted or disabled, or this host clock is wrong: create a new key in the Firebase console and check NTP');
    }
    return fail(`token fetch failed: ${message.split('\n')[0]}`, 'let this host reach https://oauth2.googleapis.com');
  } finally {
    clearTimeout(timer);
  }
}

function checkWebPush(vapid: NonNullable<Config['mobile_app']['web_push']>, webpush: typeof WebPush): CheckOutcome {
  const field = 'mobile_app.web_push';
  if (vapidPublicKeyOf(vapid.vapid_private_key) !== vapid.vapid_public_key) {
    return fail(`${field}.vapid_public_key is not the public half of vapid_private_key`, 'copy both keys from one run of radius-mfa web-push keys');
  }
  try {
    // Signing a VAPID JWT is exactly what each push does: the key must work for it.
    webpush.getVapidHeaders('https://push.example', vapid.subject, vapid.vapid_public_key, vapid.vapid_private_key, 'aes128gcm');
  } catch (err) {
    return fail(`${field}: cannot sign a VAPID token: ${(err as Error).message}`, 'make a new key pair with radius-mfa web-push keys');
  }
  return ok(`VAPID key pair valid (subject ${vapid.subject}); push services ${vapid.push_services.join(', ')}`);
}

/** Runs checks one after the other (the output reads in config order). */
export async function runChecks(checks: readonly BackendCheck[]): Promise<{ check: BackendCheck; outcome: CheckOutcome }[]> {
  const out = [];
  for (const check of checks) {
    let outcome: CheckOutcome;
    try {
      outcome = await check.run();
    } catch (err) {
      outcome = fail(`check failed: ${(err as Error).message}`, 'this is a bug in the check: report it with the config section');
    }
    out.push({ check, outcome });
  }
  return out;
}
