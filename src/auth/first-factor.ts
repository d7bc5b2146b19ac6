import type { UserRecord } from '../store/store.js';

/** The first factor's answer: wrong password and backend down are different things (never a boolean). */
export type FirstFactorResult =
  | { kind: 'accept'; groups?: readonly string[] }
  | { kind: 'reject'; reason: 'bad_password' | 'unknown_user' | 'no_password' }
  | { kind: 'unavailable'; reason: string };

/** Checks the password part of what the user typed. Backends: local, none; LDAP and upstream RADIUS next. */
export interface FirstFactor {
  readonly type: string;
  check(username: string, password: string, user: UserRecord | undefined): Promise<FirstFactorResult>;
  close?(): Promise<void>;
}
