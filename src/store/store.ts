import type { Awaitable } from '../shared/awaitable.js';
import type { Method } from '../config/schema.js';
import type { TotpEnrollment } from '../mfa/enrollment.js';

/** all: no sign-in at all; unfamiliar: refused only from sources the user has not signed in from (flow/lockout.ts). */
export type LockScope = 'all' | 'unfamiliar';

export interface UserRecord {
  username: string;
  /** The user's own method; null = take it from groups / mfa.default_method. */
  method: Method | null;
  /** argon2id PHC string; null = no local password (first_factor none or a directory). */
  passwordHash: string | null;
  totp: TotpEnrollment | null;
  /** Epoch ms until which the user is locked out; null = not locked. */
  lockedUntil: number | null;
  lockReason: string | null;
  /** all: no sign-in at all (fraud, an admin); unfamiliar: only from sources the user never signed in from (failures). */
  lockScope: LockScope | null;
  /** argon2id hash of the push-approval PIN; null = none set. */
  pinHash: string | null;
  createdAt: number;
}

/** A phone (companion app or any app speaking the Mobile App API) activated for a user. */
export interface DeviceRecord {
  id: string;
  username: string;
  name: string;
  /** ECDSA P-256 public key, SPKI DER: answers are signed with its private half. */
  publicKey: Buffer;
  /** FCM registration token; null = the device polls. */
  pushToken: string | null;
  /** FCM said the token is no longer registered: the app must send a new one. */
  pushTokenStale: boolean;
  createdAt: number;
  lastSeenAt: number | null;
}

export interface NewDevice {
  id: string;
  username: string;
  name: string;
  publicKey: Buffer;
  /** SHA-256 of the bearer token: the token itself is never stored. */
  tokenHash: Buffer;
  pushToken: string | null;
}

export interface DeviceStore {
  /** Stores a one-time activation code (by hash) for a user. */
  addActivation(username: string, codeHash: Buffer, expiresAt: number, withTotp: boolean): Promise<void>;
  /** Uses up an activation code: returns its user once, only before it expires. */
  consumeActivation(codeHash: Buffer, now: number): Promise<{ username: string; withTotp: boolean } | undefined>;
  add(device: NewDevice): Promise<void>;
  byTokenHash(tokenHash: Buffer): Promise<DeviceRecord | undefined>;
  list(username?: string): Promise<DeviceRecord[]>;
  remove(id: string): Promise<boolean>;
  setPushToken(id: string, pushToken: string | null): Promise<void>;
  markPushTokenStale(id: string): Promise<void>;
  /** Records that the device was seen; may be written later (SQLite batches these), but reads see it at once. */
  touch(id: string, now: number): Promise<void>;
}

export interface NewUser {
  username: string;
  method?: Method | null;
  passwordHash?: string | null;
  totp?: TotpEnrollment | null;
}

/** Decrypted user records a store keeps in memory by default (SQLite and PostgreSQL alike). */
export const USER_CACHE_SIZE = 50_000;

/** Thrown by the store for caller mistakes that an admin must fix (code is stable; tests assert on it). */
export class StoreError extends Error {
  constructor(
    readonly code: 'USER_EXISTS' | 'USER_NOT_FOUND' | 'KEY_MISMATCH',
    message: string,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}

/** Durable state: users, their enrollment and lockouts. SQLite (sqlite.ts) or PostgreSQL (postgres.ts); test/store-contract.test.ts holds both to it. */
export interface Store {
  /** SQLite, and PostgreSQL from its cache, answer at once (shared/awaitable.ts); a PostgreSQL read with a promise. */
  getUser(username: string): Awaitable<UserRecord | undefined>;
  listUsers(): Promise<UserRecord[]>;
  /** Every username, sorted; no TOTP secret is decrypted (serve's start-up check reads only names). */
  listUsernames(): Promise<string[]>;
  addUser(user: NewUser): Promise<void>;
  /** All or nothing: on any error nothing is written. */
  addUsers(users: NewUser[]): Promise<void>;
  removeUser(username: string): Promise<boolean>;
  setMethod(username: string, method: Method | null): Promise<void>;
  setPasswordHash(username: string, hash: string | null): Promise<void>;
  setTotp(username: string, totp: TotpEnrollment | null): Promise<void>;
  /** Locks the user (creating the row of a directory user); scope defaults to all. */
  lockUser(username: string, until: number, reason: string, scope?: LockScope): Promise<void>;
  /** Returns true if the user was locked. */
  unlockUser(username: string): Promise<boolean>;
  setPinHash(username: string, hash: string | null): Promise<void>;
  /** Sets the PIN only while the user has none, in one step; false when one is set (or no such user). */
  setPinHashIfUnset(username: string, hash: string): Promise<boolean>;
  readonly devices: DeviceStore;
  /** Reads the store once; throws (or rejects) when it cannot (for /readyz). */
  ping?(): void | Promise<void>;
  /** SQLite closes at once; PostgreSQL's pool ends asynchronously. */
  close(): void | Promise<void>;
}
