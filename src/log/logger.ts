import { pino, type DestinationStream, type Logger } from 'pino';

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

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      // Bound on every line: no log call may use `service` (or another bound key) again (test/log-keys.test.ts).
      base: { service: 'radius-mfa' },
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ sync: false }),
  );
}
