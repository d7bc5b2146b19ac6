import argon2 from 'argon2';
import { DEFAULT_HASH_PARAMS, type HashParams } from '../config/schema.js';

/** Hashes with argon2id. Runs on the libuv threadpool, off the event loop. */
export function hashPassword(password: string, params: HashParams = DEFAULT_HASH_PARAMS): Promise<string> {
  return argon2.hash(password, { type: argon2.argon2id, memoryCost: params.memory, timeCost: params.time, parallelism: params.parallelism });
}

/** True when a stored hash was made with other parameters (or another argon2 variant): re-hash it at the next good login. */
export function needsRehash(hash: string, params: HashParams): boolean {
  if (!hash.startsWith('$argon2id$')) return true;
  try {
    return argon2.needsRehash(hash, { memoryCost: params.memory, timeCost: params.time, parallelism: params.parallelism });
  } catch {
    return false;
  }
}

/** True only for a matching password; a malformed or unsupported hash gives false, never a throw (the caller logs). */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  if (checkPasswordHash(hash) !== undefined) return false;
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}

// PHC string format: $argon2id$v=19$m=65536,t=3,p=4$<salt b64>$<hash b64>. Parameters come in
// any order (the argon2 package writes m,p,t); v= is absent in pre-1.3 hashes.
const PHC = /^\$(argon2id|argon2i|argon2d)\$(?:v=(\d+)\$)?([a-z]=\d+(?:,[a-z]=\d+)*)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

// Upper bounds so that an imported hash cannot make every login allocate gigabytes or spin for seconds.
const MAX_MEMORY_KIB = 1 << 20;
const MAX_TIME = 32;
const MAX_PARALLELISM = 64;

/** Checks an argon2 PHC string for import; returns the problem, or undefined when it is usable. */
export function checkPasswordHash(hash: string): string | undefined {
  const m = PHC.exec(hash);
  if (!m) return 'not an argon2 PHC string (expected $argon2id$v=19$m=...,t=...,p=...$salt$hash)';
  const [, type, version, paramText, salt, digest] = m;
  if (type === 'argon2d') return 'argon2d is not accepted for passwords; use argon2id or argon2i';
  if (version !== undefined && version !== '19' && version !== '16') return `unknown argon2 version v=${version}`;
  const params = new Map<string, number>();
  for (const kv of paramText!.split(',')) {
    const [k, v] = kv.split('=') as [string, string];
    if (params.has(k) || !'mtp'.includes(k)) return `unexpected parameter ${k}= (expected m, t and p once each)`;
    params.set(k, Number(v));
  }
  const memory = params.get('m');
  const t = params.get('t');
  const p = params.get('p');
  if (memory === undefined || t === undefined || p === undefined) return 'm, t and p parameters are all required';
  if (p < 1 || p > MAX_PARALLELISM) return `p=${p} out of range 1..${MAX_PARALLELISM}`;
  if (t < 1 || t > MAX_TIME) return `t=${t} out of range 1..${MAX_TIME}`;
  if (memory < 8 * p || memory > MAX_MEMORY_KIB) return `m=${memory} out of range ${8 * p}..${MAX_MEMORY_KIB} KiB`;
  // Unpadded base64: 8+ byte salt = 11+ chars, 4+ byte digest = 6+ chars; length % 4 == 1 is impossible.
  if (salt!.length < 11 || salt!.length % 4 === 1) return 'salt is too short or not valid base64';
  if (digest!.length < 6 || digest!.length % 4 === 1) return 'hash is too short or not valid base64';
  return undefined;
}
