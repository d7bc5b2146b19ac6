import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateConfigJsonSchema } from '../src/config/json-schema.js';
import { formatIssues, loadConfig, type ConfigIssue, type LoadResult } from '../src/config/load.js';
import { METHODS } from '../src/config/schema.js';
import { watchConfig } from '../src/config/watch.js';
import { configWarnings, semiSpaceCapMiB } from '../src/config/warnings.js';
import webpush from 'web-push';
import { ldapFirstFactor } from '../src/auth/ldap.js';
import { createLogger } from '../src/log/logger.js';
import { LogCapture } from './helpers/server.js';

const EXAMPLE = fileURLToPath(new URL('../config/config.yaml', import.meta.url));
const JSON_SCHEMA = fileURLToPath(new URL('../config/config.schema.json', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
function load(yaml: string, env: NodeJS.ProcessEnv = {}): { result: LoadResult; file: string } {
  const file = join(dir, `config-${++fileNo}.yaml`);
  writeFileSync(file, yaml);
  return { result: loadConfig(file, env), file };
}

function issuesOf(result: LoadResult): ConfigIssue[] {
  assert.equal(result.ok, false, 'expected the config to be rejected');
  return (result as { issues: ConfigIssue[] }).issues;
}

function onlyIssue(result: LoadResult): ConfigIssue {
  const issues = issuesOf(result);
  assert.equal(issues.length, 1, formatIssues(issues));
  return issues[0]!;
}

const GOOD_SECRET = 'a-long-random-shared-secret-0123';
const minimal = (clientExtra = '', top = '') => `listen:
  auth: "0.0.0.0:1812"
clients:
  - name: vpn
    address: 10.0.0.1
    secret: ${GOOD_SECRET}
${clientExtra}${top}`;

describe('loadConfig', () => {
  test('the example config/config.yaml loads with no issues', () => {
    const result = loadConfig(EXAMPLE, {});
    assert.ok(result.ok, result.ok ? '' : formatIssues(result.issues));
    assert.equal(result.config.clients[0]!.secret, 'testing123');
    assert.deepEqual(result.config.listen.auth, [{ host: '127.0.0.1', port: 1812 }]);
    assert.deepEqual(result.config.listen.acct, [{ host: '127.0.0.1', port: 1813 }]);
    // The only warning is the short "testing123" fallback; a real secret from the environment silences it.
    assert.equal(result.warnings.length, 1);
    assert.match(result.warnings[0]!, /config\.yaml:\d+:\d+ clients\[0\]\.secret: .*shorter than 16/);
    const withSecret = loadConfig(EXAMPLE, { RADIUS_SECRET: GOOD_SECRET });
    assert.ok(withSecret.ok);
    assert.deepEqual(withSecret.warnings, []);
    assert.equal(withSecret.config.clients[0]!.secret, GOOD_SECRET);
  });

  test('the example starts with the yaml-language-server schema comment', () => {
    assert.equal(readFileSync(EXAMPLE, 'utf8').split('\n')[0], '# yaml-language-server: $schema=./config.schema.json');
  });

  test('the example mentions every key the schema knows', () => {
    const example = readFileSync(EXAMPLE, 'utf8');
    const keys = new Set<string>();
    const collect = (node: unknown): void => {
      if (Array.isArray(node)) return node.forEach(collect);
      if (node === null || typeof node !== 'object') return;
      const { properties, ...rest } = node as { properties?: Record<string, unknown> };
      for (const [key, child] of Object.entries(properties ?? {})) {
        keys.add(key);
        collect(child);
      }
      Object.values(rest).forEach(collect);
    };
    collect(JSON.parse(generateConfigJsonSchema()));
    const missing = [...keys].filter((k) => !new RegExp(`(^|[\\s{,#])${k}:`, 'm').test(example));
    assert.deepEqual(missing, [], 'add these keys (or a comment with their default) to config/config.yaml');
  });

  test('fills in defaults and turns durations into milliseconds', () => {
    const { result } = load(minimal());
    assert.ok(result.ok);
    const c = result.config;
    assert.deepEqual(c.listen.auth, [{ host: '0.0.0.0', port: 1812 }]);
    assert.equal(c.listen.acct, undefined);
    assert.equal(c.clients.length, 1);
    assert.equal(c.clients[0]!.name, 'vpn');
    assert.deepEqual(c.clients[0]!.address, ['10.0.0.1']);
    assert.equal(c.clients[0]!.secret, GOOD_SECRET);
    assert.equal(c.clients[0]!.require_message_authenticator, true);
    assert.deepEqual(c.first_factor, { type: 'local', password_hash: { memory: 19_456, time: 2, parallelism: 1 } });
    assert.equal(c.mfa.default_method, 'totp');
    assert.equal(c.mfa.reject_delay, 1000);
    assert.deepEqual(c.mfa.lockout, { max_failures: 5, duration: 900_000, familiar_for: 30 * 86_400_000 });
    assert.equal(c.mfa.totp.window, 1);
    assert.equal(c.mfa.totp.digits, 6);
    assert.equal(c.mfa.totp.period, 30);
    assert.equal(c.mfa.totp.separator, '');
    assert.equal(c.mfa.challenge.timeout, 120_000);
    assert.deepEqual(c.dedupe, { window: 30_000, max_entries: 100_000 });
    assert.deepEqual(c.store, { type: 'sqlite', path: './data/radius-mfa.db' });
    assert.deepEqual(c.state, { type: 'memory', prefix: 'radius-mfa:', timeout: 2000 });
    assert.equal(c.log.level, 'info');
    assert.deepEqual(result.warnings, []);
  });

  test('accepts durations as seconds or with units, and IPv6 listen addresses', () => {
    const { result } = load(minimal('', 'mfa: { reject_delay: 500ms, lockout: { duration: 2 } }\n').replace('"0.0.0.0:1812"', '["[::]:1812", "0.0.0.0:1812"]'));
    assert.ok(result.ok, result.ok ? '' : formatIssues(result.issues));
    assert.equal(result.config.mfa.reject_delay, 500);
    assert.equal(result.config.mfa.lockout.duration, 2000);
    assert.deepEqual(result.config.listen.auth, [
      { host: '::', port: 1812 },
      { host: '0.0.0.0', port: 1812 },
    ]);
  });

  test('deep-freezes the loaded config', () => {
    const { result } = load(minimal());
    assert.ok(result.ok);
    assert.ok(Object.isFrozen(result.config));
    assert.ok(Object.isFrozen(result.config.clients[0]!.address));
    assert.ok(Object.isFrozen(result.config.mfa.lockout));
    assert.throws(() => {
      (result.config.mfa.lockout as { max_failures: number }).max_failures = 0;
    }, TypeError);
  });
});

describe('loadConfig reports bad values at file:line:column with the path', () => {
  test('a wrong enum value, listing the allowed values', () => {
    const { result, file } = load(minimal('', 'mfa:\n  default_method: sms\n'));
    const issue = onlyIssue(result);
    assert.deepEqual(issue, {
      file,
      line: 8,
      column: 19,
      path: 'mfa.default_method',
      message: `must be one of: ${METHODS.join(', ')}; got "sms"`,
    });
  });

  test('an unknown key, at the key, with the allowed keys', () => {
    const { result } = load(minimal('    bogus: 1\n'));
    const issue = onlyIssue(result);
    assert.equal(issue.line, 7);
    assert.equal(issue.column, 5);
    assert.equal(issue.path, 'clients[0].bogus');
    assert.match(issue.message, /^unknown key "bogus"; allowed: name, address, secret, require_message_authenticator\b/);
  });

  test('an unknown top-level key', () => {
    const issue = onlyIssue(load(minimal('', 'radius: {}\n')).result);
    assert.equal(issue.path, 'radius');
    assert.match(issue.message, /^unknown key "radius"; allowed: listen, clients, /);
    for (const key of ['first_factor', 'mfa', 'store', 'log']) assert.match(issue.message, new RegExp(`\\b${key}\\b`));
  });

  test('an empty secret', () => {
    const { result, file } = load(minimal().replace(GOOD_SECRET, '""'));
    const issue = onlyIssue(result);
    assert.deepEqual(issue, { file, line: 6, column: 13, path: 'clients[0].secret', message: 'must not be empty' });
    assert.equal(formatIssues([issue]), `${file}:6:13 clients[0].secret: must not be empty`);
  });

  test('mobile_app.web_push: a bad key, a key of another pair, a bad subject and a missing field are each an issue at that field', () => {
    const a = webpush.generateVAPIDKeys();
    const b = webpush.generateVAPIDKeys();
    const section = (fields: Record<string, string>) => `mobile_app:\n  web_push:\n${Object.entries(fields).map(([k, v]) => `    ${k}: "${v}"\n`).join('')}`;
    const good = { vapid_public_key: a.publicKey, vapid_private_key: a.privateKey, subject: 'mailto:helpdesk@example.com' };
    const ok = load(minimal('', section(good))).result;
    assert.ok(ok.ok, ok.ok ? '' : formatIssues(ok.issues));
    assert.equal(ok.config.mobile_app.web_push?.vapid_public_key, a.publicKey);

    const cases: [Record<string, string>, string, RegExp][] = [
      [{ ...good, vapid_public_key: 'not-a-key' }, 'mobile_app.web_push.vapid_public_key', /P-256 public key .* radius-mfa web-push keys/],
      [{ ...good, vapid_private_key: a.privateKey.slice(2) }, 'mobile_app.web_push.vapid_private_key', /P-256 private key .* radius-mfa web-push keys/],
      [{ ...good, vapid_public_key: b.publicKey }, 'mobile_app.web_push.vapid_public_key', /is not the public half of vapid_private_key/],
      [{ ...good, subject: 'helpdesk@example.com' }, 'mobile_app.web_push.subject', /mailto: address or an https: URL/],
      [{ vapid_public_key: a.publicKey, vapid_private_key: a.privateKey }, 'mobile_app.web_push.subject', /./],
    ];
    for (const [fields, path, message] of cases) {
      const issue = onlyIssue(load(minimal('', section(fields))).result);
      assert.equal(issue.path, path, JSON.stringify(issue));
      assert.match(issue.message, message);
      assert.ok(!issue.message.includes(a.privateKey.slice(2)), 'the private key is never quoted');
    }
  });

  test('a bad CIDR, also inside a list of addresses', () => {
    const issue = onlyIssue(load(minimal().replace('10.0.0.1', '10.0.0.0/33')).result);
    assert.equal(issue.path, 'clients[0].address');
    assert.equal(issue.line, 5);
    assert.match(issue.message, /IPv4\/IPv6 address or CIDR/);
    const inList = onlyIssue(load(minimal().replace('10.0.0.1', '[10.0.0.1, "fd00::/129"]')).result);
    assert.equal(inList.path, 'clients[0].address[1]');
    assert.equal(inList.column, 25);
  });

  test('a bad duration, saying which forms are allowed', () => {
    const issue = onlyIssue(load(minimal('', 'mfa:\n  lockout:\n    duration: 15 minutes\n')).result);
    assert.equal(issue.path, 'mfa.lockout.duration');
    assert.equal(issue.line, 9);
    assert.equal(issue.column, 15);
    assert.match(issue.message, /^invalid duration "15 minutes": use a number of seconds or "500ms", "30s"/);
  });

  test('a bad listen address says HOST:PORT, not "Invalid input"', () => {
    const single = onlyIssue(load(minimal().replace('"0.0.0.0:1812"', '"x"')).result);
    assert.equal(single.path, 'listen.auth');
    assert.equal(single.line, 2);
    assert.equal(single.column, 9);
    assert.match(single.message, /^invalid address "x": use "HOST:PORT"/);
    const inList = onlyIssue(load(minimal().replace('"0.0.0.0:1812"', '["0.0.0.0:1812", "::1:1812"]')).result);
    assert.equal(inList.path, 'listen.auth[1]');
    assert.match(inList.message, /use "HOST:PORT", e\.g\. "0\.0\.0\.0:1812" or "\[::\]:1812"/);
    const wrongType = onlyIssue(load(minimal().replace('"0.0.0.0:1812"', '1812')).result);
    assert.equal(wrongType.message, 'must be a string or a list, not a number');
  });

  test('numbers out of range say the range', () => {
    const issue = onlyIssue(load(minimal('', 'mfa: { totp: { window: 11 } }\n')).result);
    assert.equal(issue.path, 'mfa.totp.window');
    assert.equal(issue.message, 'must be an integer from 0 to 10; got 11');
    const digits = onlyIssue(load(minimal('', 'mfa: { totp: { digits: 7 } }\n')).result);
    assert.equal(digits.message, 'must be one of: 6, 8; got 7');
    // Reserved at start (the reply ring): a typo of a few zeros is a config error, not a RangeError at start-up.
    const dedupe = onlyIssue(load(minimal('', 'dedupe: { max_entries: 100000000 }\n')).result);
    assert.equal(dedupe.message, 'must be an integer from 100 to 4000000; got 100000000');
  });

  test('a missing required key points at its parent', () => {
    const issue = onlyIssue(load(minimal().replace(`    secret: ${GOOD_SECRET}\n`, '')).result);
    assert.equal(issue.path, 'clients[0].secret');
    assert.equal(issue.line, 4);
    assert.equal(issue.message, 'missing; expected a string');
    const noType = onlyIssue(load(minimal('', 'first_factor: {}\n')).result);
    assert.match(noType.message, /^missing; one of: local, none\b/);
  });

  test('every problem is reported in one pass, in file order', () => {
    const yaml = minimal('    bogus: 1\n', 'mfa: { default_method: sms, reject_delay: soon }\nlog: { level: loud }\n').replace('10.0.0.1', '300.1.1.1');
    const issues = issuesOf(load(yaml).result);
    assert.deepEqual(
      issues.map((i) => i.path),
      ['clients[0].address', 'clients[0].bogus', 'mfa.default_method', 'mfa.reject_delay', 'log.level'],
    );
  });

  test('a YAML syntax error reports its line and column', () => {
    const { result, file } = load('listen:\n  auth: "0.0.0.0:1812"\n   clients: []\n');
    const issue = issuesOf(result)[0]!;
    assert.equal(issue.file, file);
    assert.equal(issue.line, 3);
    assert.ok(issue.column >= 1);
    assert.ok(issue.message.length > 0);
  });

  test('a YAML syntax error does not quote the line it is on', () => {
    const issues = issuesOf(load(minimal().replace(GOOD_SECRET, `"${GOOD_SECRET}`)).result);
    assert.doesNotMatch(formatIssues(issues), new RegExp(GOOD_SECRET));
  });

  test('an empty file says what it needs', () => {
    const issue = onlyIssue(load('').result);
    assert.match(issue.message, /listen and clients/);
  });

  test('a missing file is one issue at line 0 naming the path and the OS error', () => {
    const path = join(dir, 'does-not-exist.yaml');
    const issue = onlyIssue(loadConfig(path, {}));
    assert.equal(issue.line, 0);
    assert.equal(issue.file, path);
    assert.match(issue.message, /ENOENT/);
    assert.equal(formatIssues([issue]).startsWith(`${path}: cannot read the config file`), true);
  });

  test('an unknown reply attribute points at the attribute name', () => {
    const issue = onlyIssue(load(minimal('', 'groups:\n  staff:\n    reply: { Filter-Id: staff, No-Such-Attr: x }\n')).result);
    assert.equal(issue.path, 'groups.staff.reply.No-Such-Attr');
    assert.equal(issue.line, 9);
    assert.equal(issue.column, 46);
    assert.match(issue.message, /unknown attribute "No-Such-Attr"/);
  });

  test('two clients with the same name are an error at the second name', () => {
    const yaml = minimal(`  - name: vpn\n    address: 10.0.0.2\n    secret: ${GOOD_SECRET}\n`);
    const issue = onlyIssue(load(yaml).result);
    assert.equal(issue.path, 'clients[1].name');
    assert.equal(issue.line, 7);
    assert.match(issue.message, /duplicate client name "vpn", already used by clients\[0\]/);
  });
});

describe('${ENV_VAR} substitution', () => {
  test('replaces a whole value, part of a string, and falls back to :- defaults', () => {
    const yaml = minimal()
      .replace(GOOD_SECRET, '"${VPN_SECRET}"')
      .replace('name: vpn', 'name: "vpn-${SITE}"')
      .concat('store: { path: "${DATA_DIR:-/var/lib/radius-mfa}/db.sqlite", key_file: "${KEY_FILE:-./k}" }\n');
    const { result } = load(yaml, { VPN_SECRET: GOOD_SECRET, SITE: 'berlin', KEY_FILE: '' });
    assert.ok(result.ok, result.ok ? '' : formatIssues(result.issues));
    assert.equal(result.config.clients[0]!.secret, GOOD_SECRET);
    assert.equal(result.config.clients[0]!.name, 'vpn-berlin');
    assert.equal(result.config.store.path, '/var/lib/radius-mfa/db.sqlite');
    assert.equal(result.config.store.key_file, './k', 'an empty variable takes the :- default, as in the shell');
  });

  test('"$${" is a literal "${"', () => {
    const { result } = load(minimal().replace(GOOD_SECRET, () => '"$${NOT_A_VAR}-0123456789abcdef"'));
    assert.ok(result.ok);
    assert.equal(result.config.clients[0]!.secret, '${NOT_A_VAR}-0123456789abcdef');
  });

  test('an unset variable without default is an issue at its node naming the variable', () => {
    const { result, file } = load(minimal().replace(GOOD_SECRET, '"${VPN_SECRET}"'), { OTHER: 'x' });
    const issue = onlyIssue(result);
    assert.deepEqual(
      { file: issue.file, line: issue.line, column: issue.column, path: issue.path },
      { file, line: 6, column: 13, path: 'clients[0].secret' },
    );
    assert.match(issue.message, /environment variable VPN_SECRET is not set/);
  });

  test('a malformed reference is an issue', () => {
    const issue = onlyIssue(load(minimal().replace(GOOD_SECRET, '"${1BAD}0123456789abcdef"')).result);
    assert.equal(issue.path, 'clients[0].secret');
    assert.match(issue.message, /invalid variable reference/);
  });

  test('substituted values never appear in messages or warnings', () => {
    const value = 'Sup3r-Secret-From-Env';
    const bad = load(`listen: { auth: "\${LISTEN}" }\nclients:\n  - { name: vpn, address: "\${ADDR}", secret: "\${S}" }\nlog: { level: "\${LEVEL}" }\n`, {
      LISTEN: value,
      ADDR: `${value}-addr`,
      S: value,
      LEVEL: `${value}-level`,
    });
    const text = formatIssues(issuesOf(bad.result));
    assert.equal(issuesOf(bad.result).length, 3, text);
    assert.doesNotMatch(text, /Sup3r/);
    assert.match(text, /listen\.auth: invalid address \(value from \$\{LISTEN\}\)/);

    const short = 'sh0rt!';
    const warned = load(minimal('    require_message_authenticator: false\n').replace(GOOD_SECRET, '"${S}"'), { S: short });
    assert.ok(warned.result.ok);
    assert.equal(warned.result.warnings.length, 2);
    assert.doesNotMatch(warned.result.warnings.join('\n'), new RegExp(short));
  });
});

describe('loadConfig warnings', () => {
  test('warns about require_message_authenticator: false, naming the client and BlastRADIUS', () => {
    const { result, file } = load(minimal('    require_message_authenticator: false\n'));
    assert.ok(result.ok);
    assert.equal(result.config.clients[0]!.require_message_authenticator, false);
    assert.equal(result.warnings.length, 1);
    assert.match(result.warnings[0]!, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:7:36 clients\\[0\\]\\.require_message_authenticator: client "vpn" `));
    assert.match(result.warnings[0]!, /BlastRADIUS \(CVE-2024-3596\)/);
  });

  test('warns when mfa.push.timeout does not fit the NAS timeout budget, and not when it does', () => {
    const short = load(minimal('    nas_timeout: 10s\n    nas_retries: 2\n', 'mfa:\n  push:\n    timeout: 60s\n'));
    assert.ok(short.result.ok);
    assert.equal(short.result.warnings.length, 1);
    assert.match(short.result.warnings[0]!, /:7:18 clients\[0\]\.nas_timeout: client "vpn" gives up after 29\.0 s .*mfa\.push\.timeout 60 s.*press Enter/);
    const fits = load(minimal('    nas_timeout: 30s\n    nas_retries: 2\n', 'mfa:\n  push:\n    timeout: 60s\n'));
    assert.ok(fits.result.ok);
    assert.deepEqual(fits.result.warnings, []);
  });

  test("warns a node on Redis started with the one-node young-generation cap, naming the unit's line to remove", () => {
    const onRedis = load(minimal('', 'state:\n  type: redis\n  url: redis://127.0.0.1:6379\n'));
    const oneNode = load(minimal());
    assert.ok(onRedis.result.ok && oneNode.result.ok);
    const [warning, ...more] = configWarnings(onRedis.result.config, ['--max-semi-space-size=4']);
    assert.deepEqual(more, []);
    assert.deepEqual(warning?.path, ['state', 'type']);
    assert.match(warning!.message, /--max-semi-space-size=4.*4-12 %.*remove Environment=NODE_OPTIONS=--max-semi-space-size=4 from the unit \(docs\/ha\.md\)/);
    assert.deepEqual(configWarnings(onRedis.result.config, []), [], 'V8 default: nothing to say');
    assert.deepEqual(configWarnings(onRedis.result.config, ['--max-semi-space-size', '16']), [], 'a larger young generation is fine');
    assert.deepEqual(configWarnings(oneNode.result.config, ['--max-semi-space-size=4']), [], 'one node: the intended setting');
    // As node reads them: NODE_OPTIONS first, then the command line, and the last of a flag wins.
    assert.equal(semiSpaceCapMiB(['--max-semi-space-size=4', '--expose-gc', '--max_semi_space_size=16']), 16);
    assert.equal(semiSpaceCapMiB(['--max-old-space-size=4096']), undefined);
  });

  test('warns about a shared secret shorter than 16 characters without printing it', () => {
    const { result } = load(minimal().replace(GOOD_SECRET, 'hunter2hunter2'));
    assert.ok(result.ok);
    assert.equal(result.warnings.length, 1);
    assert.match(result.warnings[0]!, /clients\[0\]\.secret: client "vpn" has a shared secret shorter than 16 characters/);
    assert.doesNotMatch(result.warnings[0]!, /hunter2/);
  });
});

describe('rules across keys are checked at load, with line:column', () => {
  test('http.listen off loopback without http.tls or http.insecure is refused at the listen key', () => {
    const { result, file } = load(minimal('', 'http:\n  listen: "0.0.0.0:8443"\n'));
    const issue = onlyIssue(result);
    assert.equal(issue.path, 'http.listen');
    assert.equal(issue.file, file);
    assert.deepEqual([issue.line, issue.column], [8, 11]);
    assert.match(issue.message, /0\.0\.0\.0 is not a loopback address.*set http\.tls \{cert, key\}.*http\.insecure: true/);
  });

  test('http.listen on loopback, or with http.insecure: true, loads', () => {
    for (const http of ['http:\n  listen: "127.0.0.1:8443"\n', 'http:\n  listen: "0.0.0.0:8443"\n  insecure: true\n']) {
      const { result } = load(minimal('', http));
      assert.ok(result.ok, result.ok ? '' : formatIssues(result.issues));
    }
  });

  test('store.encryption_key that is not 64 hex characters is refused at the key, with how to make one', () => {
    const { result } = load(minimal('', 'store:\n  path: ":memory:"\n  encryption_key: "abc123"\n'));
    const issue = onlyIssue(result);
    assert.equal(issue.path, 'store.encryption_key');
    assert.equal(issue.line, 9);
    assert.match(issue.message, /64 hex characters.*openssl rand -hex 32/);
  });

  test('an unknown key lists the allowed ones from the schema, for a union option too', () => {
    const { result } = load(minimal('', 'first_factor:\n  type: ldap\n  url: "ldaps://dc1.example.com"\n  colour: blue\n'));
    const issue = issuesOf(result).find((i) => i.path === 'first_factor.colour');
    assert.ok(issue, formatIssues(issuesOf(result)));
    assert.match(issue.message, /^unknown key "colour"; allowed: type, url, .*start_tls/);
  });
});

describe('first_factor ldap: no passwords in clear', () => {
  const ldap = (lines: string) => minimal('', `first_factor:\n  type: ldap\n  bind_dn_template: "uid={user},ou=people,dc=example,dc=com"\n${lines}`);

  test('ldap:// without StartTLS is refused at load, naming first_factor.allow_insecure and the secure fixes', () => {
    for (const [lines, path] of [
      ['  url: "ldap://dc1.example.com"\n', 'first_factor.url'],
      ['  urls: ["ldaps://dc1.example.com", "ldap://dc2.example.com:389"]\n', 'first_factor.urls'],
    ] as const) {
      const issue = onlyIssue(load(ldap(lines)).result);
      assert.equal(issue.path, path, lines);
      assert.match(issue.message, /ldap:\/\/dc\d\.example\.com(:389)? without StartTLS would send passwords in clear/);
      assert.match(issue.message, /use ldaps:\/\/, or set first_factor\.start_tls: true, or .*first_factor\.allow_insecure: true/);
      assert.ok(!issue.message.includes('ldaps://dc1'), 'only the plain URL is named');
    }
  });

  test('ldaps://, ldap:// with start_tls, and ldap:// with allow_insecure: true load', () => {
    for (const lines of ['  url: "ldaps://dc1.example.com"\n', '  url: "ldap://dc1.example.com"\n  start_tls: true\n', '  url: "ldap://127.0.0.1"\n  allow_insecure: true\n']) {
      const { result } = load(ldap(lines));
      assert.ok(result.ok, result.ok ? '' : formatIssues(result.issues));
    }
    const { result } = load(ldap('  url: "ldaps://dc1.example.com"\n'));
    assert.equal(result.ok && result.config.first_factor.type === 'ldap' && result.config.first_factor.allow_insecure, false, 'allow_insecure defaults to false');
  });

  test('a first factor allowed to use ldap:// in clear says so in a warn line at start, and a TLS one does not', () => {
    const build = (lines: string) => {
      const { result } = load(ldap(lines));
      assert.ok(result.ok && result.config.first_factor.type === 'ldap');
      const logs = new LogCapture();
      ldapFirstFactor(result.config.first_factor, createLogger('info', logs));
      return logs.records;
    };
    const [line, ...rest] = build('  url: ["ldap://127.0.0.1:389", "ldaps://dc1.example.com"]\n  allow_insecure: true\n');
    assert.deepEqual(rest, []);
    assert.equal(line?.level, 'warn');
    assert.deepEqual(line?.ldap, ['ldap://127.0.0.1:389']);
    assert.match(String(line?.msg), /first_factor\.allow_insecure: true.*in clear; use ldaps:\/\/ or start_tls: true/);
    assert.deepEqual(build('  url: "ldap://dc1.example.com"\n  start_tls: true\n'), []);
    assert.deepEqual(build('  url: "ldaps://dc1.example.com"\n'), []);
  });
});

describe('formatIssues', () => {
  test('prints one file:line:column path: message line per issue', () => {
    const text = formatIssues([
      { file: 'config/config.yaml', line: 12, column: 5, path: 'clients[0].secret', message: 'must not be empty' },
      { file: 'config/config.yaml', line: 3, column: 1, path: '', message: 'Map keys must be unique' },
    ]);
    assert.equal(text, 'config/config.yaml:12:5 clients[0].secret: must not be empty\nconfig/config.yaml:3:1: Map keys must be unique');
  });
});

describe('config/config.schema.json', () => {
  test('matches a fresh generation from the zod schema (run `npm run schema` after changing schema.ts)', () => {
    assert.equal(readFileSync(JSON_SCHEMA, 'utf8'), generateConfigJsonSchema());
  });

  test('rejects unknown keys and knows the defaults, for editors', () => {
    const schema = JSON.parse(generateConfigJsonSchema());
    assert.equal(schema.additionalProperties, false);
    assert.deepEqual(schema.required, ['listen', 'clients']);
    assert.equal(schema.properties.mfa.properties.default_method.default, 'totp');
  });
});

describe('watchConfig', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  test('calls back once after a burst of writes and again when a new file is renamed over it', async () => {
    const watchDir = mkdtempSync(join(dir, 'watch-'));
    const file = join(watchDir, 'config.yaml');
    writeFileSync(file, 'a: 1\n');
    let calls = 0;
    const stop = watchConfig(file, () => calls++);
    try {
      await sleep(50);
      writeFileSync(join(watchDir, 'other.yaml'), 'x');
      await sleep(400);
      assert.equal(calls, 0, 'another file in the directory is not a change');
      for (let i = 0; i < 5; i++) writeFileSync(file, `a: ${i}\n`);
      await sleep(500);
      assert.equal(calls, 1);
      // How editors save: write a temporary file, rename it over the original.
      writeFileSync(join(watchDir, '.config.yaml.tmp'), 'a: 9\n');
      renameSync(join(watchDir, '.config.yaml.tmp'), file);
      await sleep(500);
      assert.equal(calls, 2);
    } finally {
      stop();
    }
    writeFileSync(file, 'a: 10\n');
    await sleep(400);
    assert.equal(calls, 2, 'no calls after stop');
  });
});

describe('RADIUS over TLS and non-PAP settings', () => {
  const tlsOnly = (clients: string, top = '') => `listen:
  radsec: "0.0.0.0:2083"
radsec: { cert: /etc/radsec/cert.pem, key: /etc/radsec/key.pem, ca: /etc/radsec/ca.pem }
clients:
${clients}${top}`;

  test('listen.auth may be left out with listen.radsec; a TLS client needs no address or secret ("radsec")', () => {
    const { result } = load(tlsOnly('  - { name: fw1, tls: { subject: "CN=fw1.example.com" } }\n  - { name: fw2, address: 192.0.2.0/24, tls: { fingerprint: "sha256:' + 'ab:'.repeat(31) + 'ab" } }\n'));
    assert.ok(result.ok, result.ok ? '' : formatIssues(result.issues));
    assert.equal(result.config.listen.auth, undefined);
    assert.equal(result.config.clients[0]!.secret, 'radsec');
    assert.deepEqual(result.config.clients[1]!.tls, { fingerprint: 'AB:'.repeat(31) + 'AB' });
    assert.equal(result.config.radsec!.handshake_timeout, 10_000);
  });

  test('without listen.auth or listen.radsec, without radsec settings, and a UDP client without address: each named', () => {
    assert.match(onlyIssue(load(`listen: {}\nclients:\n  - { name: a, address: 10.0.0.1, secret: ${GOOD_SECRET} }\n`).result).message, /required unless listen\.radsec/);
    assert.equal(onlyIssue(load(`listen: { radsec: "0.0.0.0:2083" }\nclients:\n  - { name: a, tls: { subject: "CN=a" } }\n`).result).path, 'radsec');
    assert.equal(onlyIssue(load(minimal().replace('    address: 10.0.0.1\n', '')).result).path, 'clients[0].address');
    assert.match(onlyIssue(load(tlsOnly('  - { name: fw1, tls: { subject: "fw1.example.com" } }\n')).result).message, /CN=/);
    assert.match(onlyIssue(load(tlsOnly('  - { name: fw1, tls: { fingerprint: "md5:AB" } }\n')).result).message, /sha256/);
  });

  test('with an upstream RADIUS first factor, methods that need a typed code are warned about (mfa.non_pap)', () => {
    const ff = `first_factor: { type: radius, servers: [{ address: "10.0.0.5", secret: ${GOOD_SECRET} }] }\n`;
    const { result } = load(minimal('', `${ff}mfa: { default_method: push, non_pap: reject }\ngroups: { contractors: { method: totp } }\nusers: { bob: { method: challenge } }\n`));
    assert.ok(result.ok);
    assert.equal(result.warnings.length, 2, result.warnings.join('\n'));
    assert.match(result.warnings[0]!, /groups\.contractors\.method: .*are refused \(mfa\.non_pap: reject\)/);
    assert.match(result.warnings[1]!, /users\.bob\.method: .*MS-CHAP and EAP/);
    const local = load(minimal('', 'groups: { contractors: { method: totp } }\n')).result;
    assert.ok(local.ok);
    assert.deepEqual(local.warnings, []);
  });
});
