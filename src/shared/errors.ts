// The one catalog of errors a user causes and fixes: a stable code, what it means, what to change, and the
// exit status (CLI, start-up) or HTTP status (Mobile App API). The CLI and `serve` map every thrown error
// through describeError(); the API's error handler maps ApiError codes through API_ERRORS. Anything not
// in here is a bug, and only a bug prints a stack trace.

/** Exit status 1: fix the config, the data or the host; 2: fix the command line. */
export type ExitStatus = 1 | 2;

export const START_ERRORS = {
  /** The config file has problems; the message lists them with file:line:column. */
  CONFIG_INVALID: { exit: 1, fix: 'fix the config file above (radius-mfa check-config lists every problem)' },
  /** A rule across keys (config/rules.ts) broken by a config built in code. */
  CONFIG_RULE: { exit: 1, fix: 'change the setting named above' },
  ADDRESS_IN_USE: { exit: 1, fix: 'stop the program that holds it (ss -lunp or ss -ltnp names it), or set another port in the config' },
  ADDRESS_DENIED: { exit: 1, fix: 'ports below 1024 need root or CAP_NET_BIND_SERVICE (the systemd unit in deploy/ grants it), or set a port of 1024 or more' },
  ADDRESS_NOT_AVAILABLE: { exit: 1, fix: 'use an address of this host (ip addr lists them), or 0.0.0.0 / :: for all' },
  SERVICE_ACCOUNT_INVALID: {
    exit: 1,
    fix: 'set mobile_app.firebase.service_account_file to the JSON key file from the Firebase console (Project settings > Service accounts > Generate new private key)',
  },
  FILE_UNREADABLE: { exit: 1, fix: 'check the path in the config and that the user the server runs as may read it' },
  /** Store and key errors: their messages already say what to do. */
  USER_EXISTS: { exit: 1, fix: 'radius-mfa user show NAME shows it' },
  USER_NOT_FOUND: { exit: 1, fix: 'radius-mfa user list shows the users' },
  KEY_MISMATCH: { exit: 1, fix: '' },
  BAD_KEY: { exit: 1, fix: '' },
  KEY_FILE_MODE: { exit: 1, fix: '' },
  KEY_FILE_INVALID: { exit: 1, fix: '' },
  KEY_FILE_MISSING: { exit: 1, fix: '' },
  KEY_FILE_IO: { exit: 1, fix: '' },
  STORE_SCHEMA: { exit: 1, fix: '' },
  /** A failed system call (open, bind, ...): the system's message names the file or address. */
  SYSTEM: { exit: 1, fix: '' },
  /** An admin command refused the data or the config (the message says why). */
  DATA: { exit: 1, fix: '' },
  /** An admin command was called wrongly. */
  USAGE: { exit: 2, fix: '' },
} as const satisfies Record<string, { exit: ExitStatus; fix: string }>;

export type StartErrorCode = keyof typeof START_ERRORS;

/** The Mobile App API's codes and HTTP statuses: a published contract; clients branch on `error.code`. */
export const API_ERRORS = {
  UNAUTHORIZED: { status: 401, message: 'Missing or unknown device token: activate the app again.' },
  VALIDATION: { status: 400, message: 'The request body is not valid.' },
  INVALID_PUBLIC_KEY: { status: 400, message: 'public_key must be an ECDSA P-256 key, base64 SPKI DER (WebCrypto exportKey("spki")).' },
  INVALID_PUSH_TOKEN: { status: 400, message: 'push_token must be an FCM registration token, or "webpush:" followed by the PushSubscription JSON ({endpoint: https URL of a push service in mobile_app.web_push.push_services, keys: {p256dh, auth}}).' },
  ACTIVATION_INVALID: { status: 400, message: 'Unknown, used or expired activation code: ask for a new one.' },
  PIN_REQUIRED: { status: 400, message: 'A PIN is required: send pin (4 to 12 digits): the account\'s current PIN, or a new one if it has none.' },
  PIN_NOT_SET: { status: 403, message: 'A PIN is required but none is set for this account: set one in the portal or activate the app again.' },
  WRONG_PIN: { status: 403, message: 'Wrong PIN.' },
  BAD_SIGNATURE: { status: 403, message: 'The signature does not verify with this device\'s key over "{id}.{decision}".' },
  NOT_YOUR_REQUEST: { status: 403, message: 'This request belongs to another account.' },
  REQUEST_NOT_FOUND: { status: 404, message: 'No such pending request.' },
  REQUEST_EXPIRED: { status: 410, message: 'The request expired before it was answered.' },
  ALREADY_ANSWERED: { status: 409, message: 'The request was already answered.' },
  NO_ENROLLMENT: { status: 404, message: 'No TOTP secret of this device waits for confirmation: activate the app again with codes turned on.' },
  BAD_CODE: { status: 400, message: 'That is not a current code of the secret this activation handed out: check the phone\'s clock and send the code it shows now.' },
  RATE_LIMITED: { status: 429, message: 'Too many attempts: wait a few minutes.' },
  UNAVAILABLE: { status: 503, message: 'The service cannot answer right now (its shared state or database is down): try again in a minute.' },
} as const;

/** An expected failure at start-up or in a command: printed as one message with its fix, never a stack. */
export class UserError extends Error {
  readonly exitCode: ExitStatus;
  constructor(
    readonly code: StartErrorCode,
    message: string,
    exitCode?: ExitStatus,
  ) {
    super(message);
    this.name = 'UserError';
    this.exitCode = exitCode ?? START_ERRORS[code].exit;
  }
}

/** Domain errors that carry a catalog code (StoreError, KeyError) and the schema-version error, by name: shared/ imports nothing above it. */
const CODED_BY_NAME = new Set(['StoreError', 'KeyError']);

/** What to print and the exit status for an error a user can fix; undefined = a bug (print the stack). */
export function describeError(err: unknown): { code: StartErrorCode; message: string; exitCode: ExitStatus } | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = codeOf(err);
  if (!code) return undefined;
  const fix: string = START_ERRORS[code].fix;
  const exitCode = err instanceof UserError ? err.exitCode : START_ERRORS[code].exit;
  // FILE:LINE:COLUMN reports stay as they are, for editors to jump to: the fix goes on a line of its own.
  const report = code === 'CONFIG_INVALID' || err.message.includes('\n');
  const message = !fix || err.message.includes(fix) ? err.message : report ? `${err.message}\n${fix}` : `${err.message.replace(/\.$/, '')}: ${fix}`;
  return { code, message, exitCode };
}

function codeOf(err: Error): StartErrorCode | undefined {
  if (err instanceof UserError) return err.code;
  const named = (err as { code?: unknown }).code;
  if (CODED_BY_NAME.has(err.name) && typeof named === 'string' && named in START_ERRORS) return named as StartErrorCode;
  if (err.name === 'MigrationError') return 'STORE_SCHEMA';
  // EACCES on a file, ENOSPC, ...: the system message names the path.
  if (typeof (err as NodeJS.ErrnoException).syscall === 'string') return 'SYSTEM';
  return undefined;
}

/** A bind that failed (EADDRINUSE, EACCES, EADDRNOTAVAIL), as a catalog error naming the config key and address. */
export function bindError(err: unknown, key: string, address: { host: string; port: number }): Error {
  const text = err instanceof Error ? `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}` : String(err);
  const where = `${key} ${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
  if (/EADDRINUSE/.test(text)) return new UserError('ADDRESS_IN_USE', `${where} is already in use by another program`);
  if (/EACCES|EPERM/.test(text)) return new UserError('ADDRESS_DENIED', `${where}: permission denied`);
  if (/EADDRNOTAVAIL/.test(text)) return new UserError('ADDRESS_NOT_AVAILABLE', `${where} is not an address of this host`);
  return err instanceof Error ? err : new Error(text);
}
