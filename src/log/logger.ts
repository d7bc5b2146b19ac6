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
      base: { service: 'radius-mfa' },
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ sync: false }),
  );
}
