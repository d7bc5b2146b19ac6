// `radius-mfa test USER`: a login as a NAS sends it (radtest for this server). A signed Access-Request
// (Message-Authenticator), the password and codes read by prompt or from stdin, challenges followed,
// a held push waited through; the reply, its attributes, the audit line (with --log) and the time.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP, isIPv4 } from 'node:net';
import { pino } from 'pino';
import { loadConfig, formatIssues } from '../config/load.js';
import { parseHostPort, type Config } from '../config/schema.js';
import { UpstreamClient } from '../radius/client.js';
import { buildClientTable } from '../radius/clients.js';
import { radiusWithVendors } from '../radius/dictionary.js';
import { Attr, Code, encodeAttribute, findAttribute, type RadiusPacket } from '../radius/packet.js';
import { checkUsername, CliError, print } from './context.js';
import { stdinLines, type LineSource } from './prompt.js';

export interface TestOptions {
  server?: string;
  secret?: string;
  nasIp: string;
  timeout?: string;
  log?: string;
}

/** Each try waits this long before the same packet is sent again, as a NAS retransmits (the server joins it to the held request). */
const TRY_MS = 5000;
const MAX_ROUNDS = 5;
const CODE_NAMES: Record<number, string> = { [Code.AccessAccept]: 'Access-Accept', [Code.AccessReject]: 'Access-Reject', [Code.AccessChallenge]: 'Access-Challenge' };

interface Target {
  host: string;
  port: number;
  secret: string;
  /** The config, when it could be read: default timeout and (for a local server) nothing else. */
  config?: Config;
}

function loopbackFor(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

/** --server/--secret, else the config's first auth listener and the secret of the client that 127.0.0.1 (or ::1) is. */
function resolveTarget(configPath: string, opts: TestOptions): Target {
  let config: Config | undefined;
  let configProblem: string | undefined;
  if (existsSync(configPath)) {
    const loaded = loadConfig(configPath);
    if (loaded.ok) config = loaded.config;
    else configProblem = formatIssues(loaded.issues);
  } else configProblem = `${configPath} does not exist`;
  const need = (what: string, flag: string) =>
    new CliError(`${what} is not known: give ${flag}, or a readable config with --config (${configProblem ?? 'it has none'})`, 2);

  let host: string;
  let port: number;
  if (opts.server) {
    const hp = parseHostPort(opts.server) ?? (isIP(opts.server) || /^[\w.-]+$/.test(opts.server) ? { host: opts.server, port: 1812 } : undefined);
    if (!hp) throw new CliError(`--server ${JSON.stringify(opts.server)}: use HOST:PORT, e.g. 127.0.0.1:1812 or [::1]:1812`, 2);
    ({ host, port } = hp);
  } else {
    const listen = config?.listen.auth?.[0];
    if (!listen) throw need('the server address', '--server HOST:PORT');
    if (listen.port === 0) throw new CliError(`listen.auth in ${configPath} has port 0 (a random port): give --server HOST:PORT`, 2);
    host = loopbackFor(listen.host);
    port = listen.port;
  }
  let secret = opts.secret;
  if (secret === undefined) {
    if (!config) throw need('the shared secret', '--secret');
    const source = isIPv4(host) || !host.includes(':') ? '127.0.0.1' : '::1';
    // UDP clients only: a TLS (RadSec) client is matched by its certificate, not by this test's address.
    const table = buildClientTable(config.clients.filter((c) => c.address && !c.tls).map((c) => ({ addresses: c.address!, client: { name: c.name, secret: Buffer.from(c.secret), requireMessageAuthenticator: true } })));
    const client = table.lookup(source);
    if (!client) throw new CliError(`no client in ${configPath} covers ${source}, where this test comes from: add one (clients: - {name: local-test, address: ${source}, secret: ...}) or give --secret`);
    secret = client.secret.toString('utf8');
  }
  return { host, port, secret, config };
}

function show(value: unknown): string {
  if (Buffer.isBuffer(value)) return `0x${value.toString('hex')}`;
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}

/** The reply's attributes by dictionary name, one line each (Message-Authenticator left out: it was verified). */
export function describeAttributes(packet: RadiusPacket): string[] {
  const decoded = radiusWithVendors().decode_without_secret({ packet: packet.raw });
  const lines: string[] = [];
  for (const [name, value] of Object.entries(decoded.attributes)) {
    if (name === 'Message-Authenticator') continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      if (name === 'Vendor-Specific' && v && typeof v === 'object' && !Buffer.isBuffer(v)) {
        for (const [vn, vv] of Object.entries(v as Record<string, unknown>)) for (const x of Array.isArray(vv) ? vv : [vv]) lines.push(`\t${vn} = ${show(x)}`);
      } else lines.push(`\t${name} = ${show(v)}`);
    }
  }
  return lines;
}

/** Audit lines of this test's requests (matched by their NAS-Identifier) in a log file the server writes. */
async function auditLines(file: string, tag: string, expected: number): Promise<string[]> {
  const deadline = Date.now() + 2000;
  for (;;) {
    let found: string[] = [];
    try {
      found = readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.includes(tag) && l.includes('"audit":true'));
    } catch (err) {
      throw new CliError(`--log ${file}: ${(err as Error).message}`);
    }
    if (found.length >= expected || Date.now() > deadline) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sends the login; returns the exit code: 0 on Access-Accept, 1 otherwise. */
export async function runTest(configPath: string, username: string, opts: TestOptions, input: LineSource = stdinLines()): Promise<number> {
  // Sent as typed, as a NAS would: the server makes it canonical.
  const problem = checkUsername(username);
  if (problem) throw new CliError(`username ${JSON.stringify(username)} ${problem}`, 2);
  if (!isIPv4(opts.nasIp)) throw new CliError(`--nas-ip ${JSON.stringify(opts.nasIp)} must be an IPv4 address`, 2);
  const target = resolveTarget(configPath, opts);
  const totalMs = opts.timeout !== undefined ? Number(opts.timeout) * 1000 : (target.config?.mfa.push.timeout ?? 60_000) + 5000;
  if (!Number.isFinite(totalMs) || totalMs <= 0) throw new CliError(`--timeout ${JSON.stringify(opts.timeout)} must be a number of seconds`, 2);
  const client = new UpstreamClient({
    servers: [{ host: target.host, port: target.port, secret: Buffer.from(target.secret, 'utf8') }],
    timeoutMs: Math.min(TRY_MS, totalMs),
    retries: Math.max(0, Math.ceil(totalMs / TRY_MS) - 1),
    logger: pino({ level: 'silent' }),
  });
  // A NAS-Identifier of our own finds this test's audit lines in the server log.
  const tag = `radius-mfa-test-${randomBytes(4).toString('hex')}`;
  const where = target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  const started = performance.now();
  let rounds = 0;
  let code = 0;
  try {
    let answer = await input.ask(`Password for ${username}: `, 'password');
    let state: Buffer | undefined;
    for (;;) {
      rounds++;
      const attrs = [encodeAttribute(Attr.UserName, username), encodeAttribute(Attr.NasIpAddress, Buffer.from(opts.nasIp.split('.').map(Number))), encodeAttribute(Attr.NasIdentifier, tag)];
      if (state) attrs.push(encodeAttribute(Attr.State, state));
      const password = Buffer.from(answer, 'utf8');
      if (password.length > 128) throw new CliError('the answer is longer than 128 bytes, the RADIUS User-Password limit (RFC 2865 §5.2)');
      print(`Sent Access-Request for ${username} to ${where}${state ? ' (answering the challenge)' : ''}`);
      const t0 = performance.now();
      const waiting = setTimeout(() => process.stderr.write('waiting for the reply: approve the sign-in on the phone if a push was sent...\n'), 3000);
      const r = await client.exchange({ code: Code.AccessRequest, attributes: Buffer.concat(attrs), password }).finally(() => clearTimeout(waiting));
      if (r.kind === 'no_response') {
        print(`No reply from ${where} in ${Math.round(performance.now() - t0)} ms`);
        throw new CliError(
          `no valid reply from ${where}: ${r.detail}. Check --server (or listen.auth), that the server runs, and --secret (or the clients: entry for this host)`,
        );
      }
      const p = r.packet;
      code = p.code;
      print(`Received ${CODE_NAMES[p.code] ?? `code ${p.code}`} from ${where} in ${Math.round(performance.now() - t0)} ms`);
      for (const l of describeAttributes(p)) print(l);
      if (p.code !== Code.AccessChallenge) break;
      if (rounds >= MAX_ROUNDS) throw new CliError(`still challenged after ${MAX_ROUNDS} answers: giving up`);
      state = findAttribute(p, Attr.State);
      const message = p.attributes.filter((a) => a.type === Attr.ReplyMessage).map((a) => a.value.toString('utf8')).join('');
      answer = await input.ask(`${message || 'Challenge'}: `, 'answer to the challenge');
    }
  } finally {
    input.close();
    await client.close();
  }
  print(`Total time ${Math.round(performance.now() - started)} ms (${rounds} request${rounds === 1 ? '' : 's'})`);
  if (opts.log) {
    const lines = await auditLines(opts.log, tag, rounds);
    if (lines.length === 0) print(`No audit line with nas_id ${tag} in ${opts.log}: is that the file the server logs to?`);
    for (const l of lines) print(`audit: ${l}`);
  } else {
    print(`Audit line: the server logged it with nas_id ${tag} (e.g. journalctl -u radius-mfa -g ${tag}, or --log FILE)`);
  }
  return code === Code.AccessAccept ? 0 : 1;
}
