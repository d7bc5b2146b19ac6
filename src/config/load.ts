// config.yaml -> validated, frozen Config. Every problem is reported with file:line:column and the
// field path; nothing here prints a secret or the value of an environment variable.
// The parts: env-substitution.ts (${VAR}), yaml-position.ts (line:column), issue-wording.ts (zod
// issues in words), rules.ts (rules across keys), warnings.ts (loads, but say so).
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import { redactSubstitutions, substituteEnv } from './env-substitution.js';
import { describeIssue, flattenIssue, valueAt } from './issue-wording.js';
import { crossFieldIssues } from './rules.js';
import { configSchema, type Config } from './schema.js';
import { configWarnings } from './warnings.js';
import { formatIssue, issueMaker, keyNode, locate, sortIssues, type ConfigIssue, type Segment } from './yaml-position.js';

export type { ConfigIssue } from './yaml-position.js';
export type LoadResult = { ok: true; config: Config; warnings: string[] } | { ok: false; issues: ConfigIssue[] };

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
  const { atOffset, atNode } = issueMaker(path, lineCounter);
  const at = (p: Segment[], message: string) => atNode(locate(doc, p).node, p, message);

  // The yaml library's messages never quote the source (prettyErrors off), so a secret on a broken line stays out.
  const syntax = doc.errors.map((e) => atOffset(e.pos[0], firstLine(e.message)));
  if (syntax.length > 0) return { ok: false, issues: sortIssues(syntax) };
  const warnings = doc.warnings.map((w) => formatIssue(atOffset(w.pos[0], firstLine(w.message))));

  const substituted = substituteEnv(doc, env);
  const found = substituted.problems.map(({ node, path: p, message }) => atNode(node, p, message));

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
        if (key === undefined) found.push(atNode(loc.node, p, message));
        else found.push(atNode(keyNode(loc.node, key) ?? loc.node, [...p, key], message));
      }
    }
  }
  for (const dup of duplicateClientNames(data)) found.push(at(dup.path, dup.message));
  if (parsed.success) for (const rule of crossFieldIssues(parsed.data)) found.push(at(rule.path, rule.message));

  const redact = (text: string) => redactSubstitutions(text, substituted.redactions);
  if (found.length > 0 || !parsed.success) {
    return { ok: false, issues: sortIssues(found.map((issue) => ({ ...issue, message: redact(issue.message) }))) };
  }
  for (const w of configWarnings(parsed.data)) warnings.push(formatIssue(at(w.path, w.message)));
  return { ok: true, config: deepFreeze(parsed.data), warnings: warnings.map(redact) };
}

/** One line per issue: `config/config.yaml:12:5 clients[0].secret: must not be empty`. */
export function formatIssues(issues: ConfigIssue[]): string {
  return issues.map(formatIssue).join('\n');
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.trim();
}

/** A check zod cannot express on one field; made on the raw data, so it is reported beside schema problems. */
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

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
