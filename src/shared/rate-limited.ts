import type { Logger } from 'pino';

/**
 * Logs a kind of event at most once per interval, with how many were suppressed meanwhile, so a flood
 * of junk datagrams cannot flood the log. Reasons come from a fixed set, so the map stays small.
 */
export function rateLimitedWarn(logger: Logger, intervalMs: number, now: () => number) {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (reason: string, fields: Record<string, unknown>, msg: string): void => {
    const t = now();
    const seen = last.get(reason);
    if (seen && t - seen.at < intervalMs) {
      seen.suppressed++;
      return;
    }
    logger.warn({ ...fields, reason, suppressed: seen?.suppressed ?? 0 }, msg);
    last.set(reason, { at: t, suppressed: 0 });
  };
}
