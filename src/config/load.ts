// config.yaml -> validated, frozen Config. Every problem is reported with file:line:column and the
// field path; nothing here prints a secret or the value of an environment variable.
import { readFileSync } from 'node:fs';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { crossFieldIssues } from './rules.js';
import { configSchema, holdBudgetMs, type Config } from './schema.js';

export type ConfigIssue = { file: string; line: number; column: number; path: string; message: string };
export type LoadResult = { ok: true; config: Config; warnings: string[] } | { ok: false; issues: ConfigIssue[] };

type Segment = string | number;
type ZodIssue = z.core.$ZodIssue;

/** Shorter shared secrets get a warning (RFC 2865 §3 asks for at least 16 octets, BlastRADIUS for random ones). */
const MIN_SECRET_LENGTH = 16;

/** Reads, substitutes ${ENV_VAR}s, validates and deep-freezes the config at `path`; lists every problem found. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  let source: string;
  try {
    source = readFileSync(path, 'utf8');
  } catch (err) {
    return { ok: false, issues: [{ file: path, line: 0, column: 0, path: '', message: `cannot read the config file: ${(err as Error).message}` }] };
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(source, { lineCounter, prettyErrors: false });
  const at = (offset: number | undefined) => {
    const { line, col } = lineCounter.linePos(offset ?? 0);
    return { line, column: col };
  };
  const issueAt = (node: YamlNode | null | undefined, fieldPath: Segment[], message: string): ConfigIssue => ({
    file: path,
    ...at(node?.range?.[0]),
    path: formatPath(fieldPath),
    message,
  });

  // The yaml library's messages never quote the source (prettyErrors off), so a secret on a broken line stays out.
  const syntax = doc.errors.map((e) => ({ file: path, ...at(e.pos[0]), path: '', message: firstLine(e.message) }));
  if (syntax.length > 0) return { ok: false, issues: sortIssues(syntax) };
  const warnings = doc.warnings.map((w) => formatIssue({ file: path, ...at(w.pos[0]), path: '', message: firstLine(w.message) }));

  const substituted = substituteEnv(doc, env);
  const found = substituted.problems.map(({ node, path: p, message }) => issueAt(node, p, message));

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, issues: [{ file: path, line: 1, column: 1, path: '', message: (err as Error).message }] };
  }

  const parsed = configSchema.safeParse(data);
  if (!parsed.success) {
    for (const flat of parsed.error.issues.flatMap((i) => flattenIssue(i, []))) {
      for (const { path: p, message, key } of describeIssue(flat, data)) {
        const loc = locate(doc, p);
        // A bad reference was already reported at this node; its empty stand-in would only add noise.
        if (loc.complete && loc.node && substituted.broken.has(loc.node)) continue;
        if (key === undefined) found.push(issueAt(loc.node, p, message));
        else found.push(issueAt(keyNode(loc.node, key) ?? loc.node, [...p, key], message));
      }
    }
  }
  for (const dup of duplicateClientNames(data)) found.push(issueAt(locate(doc, dup.path).node, dup.path, dup.message));
  if (parsed.success) for (const rule of crossFieldIssues(parsed.data)) found.push(issueAt(locate(doc, rule.path).node, rule.path, rule.message));

  const redact = (text: string) => substituted.redactions.reduce((t, [value, label]) => redactValue(t, value, label), text);
  if (found.length > 0 || !parsed.success) {
    return { ok: false, issues: sortIssues(found.map((issue) => ({ ...issue, message: redact(issue.message) }))) };
  }

  const config = parsed.data;
  const warn = (p: Segment[], message: string) => warnings.push(formatIssue(issueAt(locate(doc, p).node, p, message)));
  config.clients.forEach((client, i) => {
    const name = JSON.stringify(client.name);
    if (!client.require_message_authenticator) {
      warn(
        ['clients', i, 'require_message_authenticator'],
        `client ${name} accepts Access-Requests without Message-Authenticator, which leaves it open to BlastRADIUS (CVE-2024-3596); set it to true once the appliance sends Message-Authenticator`,
      );
    }
    if (client.secret.length < MIN_SECRET_LENGTH) {
      warn(
        ['clients', i, 'secret'],
        `client ${name} has a shared secret shorter than ${MIN_SECRET_LENGTH} characters; use a long random one, e.g. from: openssl rand -base64 24`,
      );
    }
    const budget = holdBudgetMs(client.nas_timeout, client.nas_retries);
    if (config.mfa.push.timeout > budget) {
      warn(
        ['clients', i, 'nas_timeout'],
        `client ${name} gives up after ${(budget / 1000).toFixed(1)} s (nas_timeout x ${client.nas_retries + 1} tries, less 1 s), shorter than mfa.push.timeout ${config.mfa.push.timeout / 1000} s: push users of this client get the "approve on your phone, then press Enter" challenge instead of a held request; raise the appliance's RADIUS timeout to hold pushes`,
      );
    }
  });
  nonPapWarnings(config, warn);
  if (config.store.type === 'postgres' && config.state.type === 'memory') {
    warn(
      ['state', 'type'],
      'store.type is postgres (a store other nodes may share) but state.type is memory: each node keeps its own replay marks, lockout counts and challenges, so a code used at one node can be replayed at another and failures spread over nodes never lock; use state.type redis when more than one node serves (docs/ha.md)',
    );
  }
  return { ok: true, config: deepFreeze(config), warnings: warnings.map(redact) };
}

/** One line per issue: `config/config.yaml:12:5 clients[0].secret: must not be empty`. */
export function formatIssues(issues: ConfigIssue[]): string {
  return issues.map(formatIssue).join('\n');
}

function formatIssue(i: ConfigIssue): string {
  const where = i.line > 0 ? `${i.file}:${i.line}:${i.column}` : i.file;
  return i.path ? `${where} ${i.path}: ${i.message}` : `${where}: ${i.message}`;
}

function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues.sort((a, b) => a.line - b.line || a.column - b.column);
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.trim();
}

function formatPath(path: Segment[]): string {
  return path
    .map((s, i) => (typeof s === 'number' ? `[${s}]` : /^[A-Za-z_][\w-]*$/.test(s) ? (i === 0 ? s : `.${s}`) : `[${JSON.stringify(s)}]`))
    .join('');
}

// ---- ${ENV_VAR} substitution --------------------------------------------------------------------

type Substitution = {
  problems: { node: YamlNode; path: Segment[]; message: string }[];
  /** Scalars with an unset variable or a malformed reference: already reported. */
  broken: Set<YamlNode>;
  /** [substituted value, what to print instead]. */
  redactions: [string, string][];
};

const REFERENCE = /\$(\$?)\{([^}]*)(\}?)/g;
const NAME_AND_DEFAULT = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/;

/** Replaces ${NAME} and ${NAME:-default} in string values (not keys); "$${" stands for a literal "${". */
function substituteEnv(doc: Document, env: NodeJS.ProcessEnv): Substitution {
  const out: Substitution = { problems: [], broken: new Set(), redactions: [] };
  visit(doc, {
    Scalar(key, node, ancestors) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('${')) return;
      const path = yamlPath(ancestors, node);
      const names: string[] = [];
      const value = node.value.replace(REFERENCE, (whole: string, escaped: string, inner: string, close: string) => {
        if (escaped) return whole.slice(1);
        const m = close ? NAME_AND_DEFAULT.exec(inner) : null;
        if (!m) {
          out.problems.push({ node, path, message: 'invalid variable reference: use ${NAME} or ${NAME:-default}, or "$${" for a literal "${"' });
          out.broken.add(node);
          return '';
        }
        const [, name, fallback] = m as unknown as [string, string, string | undefined];
        names.push(name);
        const set = env[name];
        // As in the shell, ":-" also replaces a variable that is set but empty.
        if (fallback !== undefined) return set ? set : fallback;
        if (set !== undefined) return set;
        out.problems.push({ node, path, message: `environment variable ${name} is not set; set it, or give a default: \${${name}:-value}` });
        out.broken.add(node);
        return '';
      });
      if (names.length > 0 && value !== '') out.redactions.push([value, `(value from ${names.map((n) => `\${${n}}`).join(', ')})`]);
      node.value = value;
    },
  });
  return out;
}

function yamlPath(ancestors: readonly unknown[], node: YamlNode): Segment[] {
  const path: Segment[] = [];
  const chain = [...ancestors, node];
  for (let i = 0; i < chain.length - 1; i++) {
    const parent = chain[i];
    const child = chain[i + 1];
    // A map's child in the chain is the Pair holding the node.
    if (isSeq(parent)) path.push(parent.items.indexOf(child as never));
    else if (isMap(parent)) path.push(keyString((child as { key: unknown }).key));
  }
  return path;
}

function redactValue(text: string, value: string, label: string): string {
  let out = text.split(JSON.stringify(value)).join(label);
  // Short values would also match ordinary words; quoted ones were caught above.
  if (value.length >= 6) out = out.split(value).join(label);
  return out;
}

// ---- YAML node lookup ---------------------------------------------------------------------------

function keyString(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

/** The node at `path`, or the deepest ancestor that exists (complete = false). */
function locate(doc: Document, path: Segment[]): { node: YamlNode | null; complete: boolean } {
  let node = doc.contents as YamlNode | null;
  for (const seg of path) {
    if (isAlias(node)) node = node.resolve(doc) ?? null;
    if (isMap(node)) {
      const pair = node.items.find((p) => keyString(p.key) === String(seg));
      if (!pair) return { node, complete: false };
      node = (pair.value ?? pair.key) as YamlNode | null;
    } else if (isSeq(node) && typeof seg === 'number' && node.items[seg] !== undefined) {
      node = node.items[seg] as YamlNode;
    } else {
      return { node, complete: false };
    }
  }
  return { node, complete: true };
}

function keyNode(map: YamlNode | null, key: string): YamlNode | null {
  if (!isMap(map)) return null;
  const pair = map.items.find((p) => keyString(p.key) === key);
  return (pair?.key as YamlNode | undefined) ?? null;
}

// ---- zod issues -> messages that say what is allowed --------------------------------------------

type FlatIssue = { path: Segment[]; issue: ZodIssue; union?: ZodIssue[][] };

/** Unions ("one address or a list", durations) fail as "Invalid input"; keep the branch that says why. */
function flattenIssue(issue: ZodIssue, prefix: Segment[]): FlatIssue[] {
  const path = [...prefix, ...(issue.path as Segment[])];
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return [{ path, issue }];
  const outright = (branch: ZodIssue[]) => branch.every((i) => i.path.length === 0 && (i.code === 'invalid_type' || i.code === 'invalid_value'));
  const useful = issue.errors.find((branch) => !outright(branch));
  if (useful) return useful.flatMap((i) => flattenIssue(i, path));
  return [{ path, issue, union: issue.errors }];
}

function describeIssue(flat: FlatIssue, data: unknown): { path: Segment[]; message: string; key?: string }[] {
  const { path, issue } = flat;
  const value = valueAt(data, path);
  if (issue.code === 'unrecognized_keys') {
    const allowed = Object.keys(objectShapeAt(path, data) ?? {}).join(', ');
    return issue.keys.map((key) => ({ path, key, message: `unknown key ${JSON.stringify(key)}; allowed: ${allowed}` }));
  }
  return [{ path, message: messageFor(flat, value, data) }];
}

function messageFor({ path, issue, union }: FlatIssue, value: unknown, data: unknown): string {
  if (union) {
    const branches = union.flat();
    const values = branches.flatMap((i) => (i.code === 'invalid_value' ? i.values : []));
    if (values.length === branches.length) return oneOf(values, value);
    return expectation(branches.map((i) => (i.code === 'invalid_type' ? i.expected : 'value')).join('|'), value);
  }
  switch (issue.code) {
    case 'invalid_union': {
      // A discriminated union (first_factor.type) whose discriminator matched no option.
      const options = (issue as { options?: unknown[] }).options ?? [];
      return value === undefined ? `missing; one of: ${options.join(', ')}` : oneOf(options, value);
    }
    case 'invalid_type':
      if (path.length === 0) return 'the file holds no settings; expected a mapping with at least listen and clients';
      if (issue.expected === 'int') return `${numberRule(path, data)}; got ${String(value)}`;
      return expectation(issue.expected, value);
    case 'invalid_value':
      return oneOf(issue.values, value);
    case 'too_small':
    case 'too_big': {
      if (!/^Too (small|big)/.test(issue.message)) return issue.message;
      const limit = Number(issue.code === 'too_small' ? issue.minimum : issue.maximum);
      const least = issue.code === 'too_small' ? 'at least' : 'at most';
      if (issue.origin === 'number') return `${numberRule(path, data)}; got ${String(value)}`;
      if (issue.origin === 'string') return limit === 1 && least === 'at least' ? 'must not be empty' : `must be ${least} ${limit} character${limit === 1 ? '' : 's'} long`;
      if (issue.origin === 'array') return `must have ${least} ${limit} item${limit === 1 ? '' : 's'}`;
      return issue.message;
    }
    default:
      return issue.message;
  }
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a mapping (key: value)',
  array: 'a list',
  record: 'a mapping (key: value)',
};

function expectation(expected: string, value: unknown): string {
  const names = [...new Set(expected.split('|').map((e) => TYPE_NAMES[e] ?? e))];
  const want = names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names.at(-1)}` : names[0];
  return value === undefined ? `missing; expected ${want}` : `must be ${want}, not ${describeValue(value)}`;
}

function describeValue(value: unknown): string {
  if (value === null) return 'empty (null)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'boolean') return String(value);
  return typeof value === 'string' ? 'a string' : `a ${typeof value}`;
}

function oneOf(values: readonly unknown[], value: unknown): string {
  const list = values.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(', ');
  const want = values.length === 1 ? `must be ${list}` : `must be one of: ${list}`;
  const shown = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? `; got ${JSON.stringify(value)}` : '';
  return value === undefined ? `missing; ${want.replace(/^must be /, '')}` : `${want}${shown}`;
}

function numberRule(path: Segment[], data: unknown): string {
  const leaf = schemaAt(path, data) as { minValue?: number | null; maxValue?: number | null; isInt?: boolean } | undefined;
  const kind = leaf?.isInt ? 'an integer' : 'a number';
  const min = leaf?.minValue ?? -Infinity;
  const max = leaf?.maxValue ?? Infinity;
  const hasMin = Number.isFinite(min) && min > Number.MIN_SAFE_INTEGER;
  const hasMax = Number.isFinite(max) && max < Number.MAX_SAFE_INTEGER;
  if (hasMin && hasMax) return `must be ${kind} from ${min} to ${max}`;
  if (hasMin) return `must be ${kind} of ${min} or more`;
  if (hasMax) return `must be ${kind} of ${max} or less`;
  return `must be ${kind}`;
}

function valueAt(data: unknown, path: Segment[]): unknown {
  let v = data;
  for (const seg of path) v = v !== null && typeof v === 'object' ? (v as Record<Segment, unknown>)[seg] : undefined;
  return v;
}

// ---- schema lookup, for "allowed:" lists and number ranges --------------------------------------

type SchemaDef = {
  type: string;
  innerType?: Schema;
  in?: Schema;
  getter?: () => Schema;
  shape?: Record<string, Schema>;
  element?: Schema;
  valueType?: Schema;
  options?: Schema[];
  discriminator?: string;
  values?: unknown[];
};
type Schema = { _zod: { def: SchemaDef } };

const WRAPPERS = new Set(['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch', 'nonoptional', 'success']);

function unwrap(schema: Schema): Schema {
  let s = schema;
  for (;;) {
    const def = s._zod.def;
    if (WRAPPERS.has(def.type) && def.innerType) s = def.innerType;
    else if (def.type === 'pipe' && def.in) s = def.in;
    else if (def.type === 'lazy' && def.getter) s = def.getter();
    else return s;
  }
}

/** Picks the union option the data is shaped like (or names, for a discriminated union). */
function pickOption(schema: Schema, data: unknown): Schema {
  let s = unwrap(schema);
  while (s._zod.def.type === 'union') {
    const { options = [], discriminator } = s._zod.def;
    const opts = options.map(unwrap);
    const next = discriminator
      ? opts.find((o) => {
          const d = o._zod.def.shape?.[discriminator];
          return d !== undefined && (unwrap(d)._zod.def.values ?? []).includes((data as Record<string, unknown> | null)?.[discriminator]);
        })
      : opts.find((o) => {
          const t = o._zod.def.type;
          if (Array.isArray(data)) return t === 'array';
          if (data !== null && typeof data === 'object') return t === 'object' || t === 'record';
          return t !== 'array' && t !== 'object' && t !== 'record';
        });
    if (!next) return s;
    s = next;
  }
  return s;
}

function schemaAt(path: Segment[], data: unknown): Schema | undefined {
  let s: Schema | undefined = configSchema as unknown as Schema;
  let d = data;
  for (const seg of path) {
    const def: SchemaDef = pickOption(s, d)._zod.def;
    s = def.type === 'object' ? def.shape?.[String(seg)] : def.type === 'array' ? def.element : def.type === 'record' ? def.valueType : undefined;
    if (!s) return undefined;
    d = valueAt(d, [seg]);
  }
  return pickOption(s, d);
}

function objectShapeAt(path: Segment[], data: unknown): Record<string, Schema> | undefined {
  return schemaAt(path, data)?._zod.def.shape;
}

// ---- checks zod cannot express ------------------------------------------------------------------

function duplicateClientNames(data: unknown): { path: Segment[]; message: string }[] {
  const clients = valueAt(data, ['clients']);
  if (!Array.isArray(clients)) return [];
  const first = new Map<string, number>();
  const out: { path: Segment[]; message: string }[] = [];
  clients.forEach((c, i) => {
    const name = valueAt(c, ['name']);
    if (typeof name !== 'string' || name === '') return;
    const seen = first.get(name);
    if (seen === undefined) first.set(name, i);
    else out.push({ path: ['clients', i, 'name'], message: `duplicate client name ${JSON.stringify(name)}, already used by clients[${seen}]; names must be unique (logs and metrics use them)` });
  });
  return out;
}

/**
 * MS-CHAP and EAP (relayed to a RADIUS upstream) carry no typed code: a method that needs one falls back
 * to mfa.non_pap. Said once per place that sets such a method.
 */
function nonPapWarnings(config: Config, warn: (p: Segment[], message: string) => void): void {
  if (config.first_factor.type !== 'radius') return;
  const fallback = config.mfa.non_pap === 'push' ? 'get a push instead (mfa.non_pap: push)' : 'are refused (mfa.non_pap: reject)';
  const needsCode = (m: string | undefined) => m === 'totp' || m === 'challenge';
  if (needsCode(config.mfa.default_method)) warn(['mfa', 'default_method'], `default_method ${config.mfa.default_method} needs a typed code: MS-CHAP and EAP sign-ins of users without another method ${fallback}`);
  for (const [name, g] of Object.entries(config.groups)) {
    if (needsCode(g.method)) warn(['groups', name, 'method'], `group ${JSON.stringify(name)} has method ${g.method}, which needs a typed code: its members' MS-CHAP and EAP sign-ins ${fallback}`);
  }
  for (const [name, u] of Object.entries(config.users)) {
    if (needsCode(u.method)) warn(['users', name, 'method'], `user ${JSON.stringify(name)} has method ${u.method}, which needs a typed code: MS-CHAP and EAP sign-ins ${fallback}`);
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
