import { pino, type DestinationStream, type Level, type Logger } from 'pino';
import { LineSink } from './line-sink.js';

/** Paths that could carry a secret: censored wherever they appear, as a second line of defence. */
export const REDACT_PATHS = [
  'password',
  'secret',
  'token',
  'key',
  '*.password',
  '*.secret',
  '*.token',
  '*.key',
  'req.headers.authorization',
];

/** Bound on every line: no log call may use `service` (or another bound key) again (test/log-keys.test.ts). */
const BASE = { service: 'radius-mfa' };

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: BASE,
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    // Batched synchronous writes at the end of each macrotask (line-sink.ts), not pino's thread-pool writes.
    destination ?? LineSink.stdout(),
  );
}

let isoMs = -1;
let isoText = '';

/**
 * Writes a line built as text, with no object (the audit line, once per request: adapter's auditLine):
 * `fields` is `"key":value,...` already JSON, none of them a REDACT_PATHS key. The line reads exactly as
 * `logger[level](fields as an object, msg)` would: the same head (level, time, service), key order and
 * stream, and a child logger's bindings. Returns false when the level is off.
 */
export function writeLine(logger: Logger, level: Level, fields: string, msg: string): boolean {
  if (!logger.isLevelEnabled(level)) return false;
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    isoText = new Date(now).toISOString();
  }
  const own = logger as unknown as Record<symbol, DestinationStream | string>;
  const stream = own[pino.symbols.streamSym] as DestinationStream;
  // The bindings pino keeps as text (",\"service\":\"radius-mfa\"" and a child's): as pino writes them.
  const bindings = own[pino.symbols.chindingsSym] as string;
  stream.write(`{"level":"${level}","time":"${isoText}"${bindings},${fields},"msg":${JSON.stringify(msg)}}\n`);
  return true;
}
