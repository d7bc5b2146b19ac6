// zod issues -> messages that say what is allowed. Ranges and allowed keys come from the schema's JSON
// Schema (zod's public z.toJSONSchema), not from zod's internals.
import { z } from 'zod';
import { configSchema } from './schema.js';
import type { Segment } from './yaml-position.js';

type ZodIssue = z.core.$ZodIssue;
export type FlatIssue = { path: Segment[]; issue: ZodIssue; union?: ZodIssue[][] };

/** Unions ("one address or a list", durations) fail as "Invalid input"; keep the branch that says why. */
export function flattenIssue(issue: ZodIssue, prefix: Segment[]): FlatIssue[] {
  const path = [...prefix, ...(issue.path as Segment[])];
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return [{ path, issue }];
  const outright = (branch: ZodIssue[]) => branch.every((i) => i.path.length === 0 && (i.code === 'invalid_type' || i.code === 'invalid_value'));
  const useful = issue.errors.find((branch) => !outright(branch));
  if (useful) return useful.flatMap((i) => flattenIssue(i, path));
  return [{ path, issue, union: issue.errors }];
}

/** One message per problem; an unknown key is reported at the key (`key`), everything else at the value. */
export function describeIssue(flat: FlatIssue, data: unknown): { path: Segment[]; message: string; key?: string }[] {
  const { path, issue } = flat;
  const value = valueAt(data, path);
  if (issue.code === 'unrecognized_keys') {
    const allowed = Object.keys(schemaAt(path, data)?.properties ?? {}).join(', ');
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
  const leaf = schemaAt(path, data);
  const kind = leaf?.type === 'integer' ? 'an integer' : 'a number';
  const min = leaf?.minimum ?? -Infinity;
  const max = leaf?.maximum ?? Infinity;
  const hasMin = Number.isFinite(min) && min > Number.MIN_SAFE_INTEGER;
  const hasMax = Number.isFinite(max) && max < Number.MAX_SAFE_INTEGER;
  if (hasMin && hasMax) return `must be ${kind} from ${min} to ${max}`;
  if (hasMin) return `must be ${kind} of ${min} or more`;
  if (hasMax) return `must be ${kind} of ${max} or less`;
  return `must be ${kind}`;
}

export function valueAt(data: unknown, path: Segment[]): unknown {
  let v = data;
  for (const seg of path) v = v !== null && typeof v === 'object' ? (v as Record<Segment, unknown>)[seg] : undefined;
  return v;
}

// ---- the schema at a path, for "allowed:" lists and number ranges --------------------------------

type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  additionalProperties?: boolean | JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  const?: unknown;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
};

let inputSchema: JsonSchema | undefined;

/** What the file may say (input types: before defaults and transforms), generated once. */
function configJsonSchema(): JsonSchema {
  inputSchema ??= z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return inputSchema;
}

function types(s: JsonSchema): string[] {
  return s.type === undefined ? [] : Array.isArray(s.type) ? s.type : [s.type];
}

/** Picks the union option the data is shaped like: by a constant-valued key (first_factor.type), else by kind. */
function pickOption(schema: JsonSchema, data: unknown): JsonSchema {
  let s = schema;
  for (;;) {
    const options = s.oneOf ?? s.anyOf;
    if (!options) return s;
    const record = data !== null && typeof data === 'object' && !Array.isArray(data) ? (data as Record<string, unknown>) : undefined;
    const byConst = record
      ? options.find((o) => Object.entries(o.properties ?? {}).some(([k, p]) => p.const !== undefined && p.const === record[k]))
      : undefined;
    const byKind = options.find((o) => {
      const t = types(o);
      if (Array.isArray(data)) return t.includes('array');
      if (record) return t.includes('object');
      return t.length > 0 && !t.includes('array') && !t.includes('object');
    });
    const next = byConst ?? byKind;
    if (!next) return s;
    s = next;
  }
}

function schemaAt(path: Segment[], data: unknown): JsonSchema | undefined {
  let s: JsonSchema | undefined = configJsonSchema();
  let d = data;
  for (const seg of path) {
    const here: JsonSchema = pickOption(s, d);
    const t = types(here);
    if (t.includes('array')) s = here.items;
    else if (here.properties?.[String(seg)]) s = here.properties[String(seg)];
    else s = typeof here.additionalProperties === 'object' ? here.additionalProperties : undefined;
    if (!s) return undefined;
    d = valueAt(d, [seg]);
  }
  return pickOption(s, d);
}
