// `user import FILE`: CSV rows -> users, validated all together before anything is written.
import { checkPasswordHash } from '../auth/password-hash.js';
import { METHODS, type Config, type Method } from '../config/schema.js';
import type { NewUser } from '../store/store.js';
import { canonicalUsername, NO_REALMS, type UsernameRules } from '../flow/username.js';
import { checkUsername } from './context.js';
import { parseCsv } from './csv.js';
import { parseBase32Secret } from '../mfa/totp-secret.js';

export const IMPORT_COLUMNS = ['username', 'method', 'totp_secret', 'password_hash'] as const;
type Column = (typeof IMPORT_COLUMNS)[number];

export interface ImportPlan {
  users: NewUser[];
  /** `FILE:LINE: field: problem`; when not empty nothing may be imported. */
  problems: string[];
  warnings: string[];
}

/**
 * Validates every row of a user CSV (header username,method,totp_secret,password_hash; any order,
 * only username required). `existing` are the usernames already in the store.
 */
export function planUserImport(file: string, text: string, totp: Config['mfa']['totp'], existing: ReadonlySet<string>, usernames: UsernameRules = NO_REALMS): ImportPlan {
  const plan: ImportPlan = { users: [], problems: [], warnings: [] };
  const problem = (line: number, field: string, message: string) => plan.problems.push(`${file}:${line}: ${field}: ${message}`);
  const parsed = parseCsv(text);
  if (!parsed.ok) {
    problem(parsed.line, 'csv', parsed.message);
    return plan;
  }
  const [header, ...rows] = parsed.records;
  if (!header) {
    problem(1, 'header', `the file is empty; the first line must be: ${IMPORT_COLUMNS.join(',')}`);
    return plan;
  }
  const columns = header.fields.map((f) => f.trim().toLowerCase());
  const index = new Map<Column, number>();
  columns.forEach((name, i) => {
    if (!(IMPORT_COLUMNS as readonly string[]).includes(name)) problem(header.line, 'header', `unknown column ${JSON.stringify(name)}; columns are ${IMPORT_COLUMNS.join(',')}`);
    else if (index.has(name as Column)) problem(header.line, 'header', `column ${name} appears twice`);
    else index.set(name as Column, i);
  });
  if (!index.has('username')) problem(header.line, 'header', `a username column is required; columns are ${IMPORT_COLUMNS.join(',')}`);
  if (plan.problems.length > 0) return plan;

  const seen = new Map<string, number>();
  for (const { line, fields } of rows) {
    if (fields.length !== columns.length) {
      const hint = fields.length > columns.length && index.has('password_hash') ? ' (argon2 hashes contain commas: put the hash in double quotes)' : '';
      problem(line, 'row', `expected ${columns.length} fields as in the header, got ${fields.length}${hint}`);
      continue;
    }
    const get = (c: Column) => {
      const i = index.get(c);
      return i === undefined ? '' : fields[i]!.trim();
    };
    const before = plan.problems.length;
    const typedName = get('username');
    const nameProblem = checkUsername(typedName);
    const username = (nameProblem ? undefined : canonicalUsername(typedName, usernames)) ?? typedName;
    if (nameProblem) problem(line, 'username', nameProblem);
    else if (existing.has(username)) problem(line, 'username', `user ${username} already exists (remove it first or leave it out of the file)`);
    else if (seen.has(username)) problem(line, 'username', `user ${username} is already on line ${seen.get(username)}`);
    else seen.set(username, line);

    const methodText = get('method');
    let method: Method | null = null;
    if (methodText !== '' && methodText !== 'default') {
      if ((METHODS as readonly string[]).includes(methodText)) method = methodText as Method;
      else problem(line, 'method', `${JSON.stringify(methodText)} is not a method; use one of ${METHODS.join(', ')}, or leave it empty for the default`);
    }

    const secretText = get('totp_secret');
    let secret: Buffer | undefined;
    if (secretText !== '') {
      const s = parseBase32Secret(secretText);
      if (!s.ok) problem(line, 'totp_secret', s.problem);
      else {
        secret = s.secret;
        if (s.warning) plan.warnings.push(`${file}:${line}: totp_secret: ${s.warning}`);
      }
    }

    const hash = get('password_hash');
    if (hash !== '') {
      const hashProblem = checkPasswordHash(hash);
      if (hashProblem) problem(line, 'password_hash', hashProblem);
    }

    if (plan.problems.length === before) {
      plan.users.push({
        username,
        method,
        passwordHash: hash === '' ? null : hash,
        totp: secret ? { secret, algorithm: totp.algorithm, digits: totp.digits, period: totp.period } : null,
      });
    }
  }
  if (rows.length === 0 && plan.problems.length === 0) problem(header.line, 'file', 'no users after the header line');
  return plan;
}
