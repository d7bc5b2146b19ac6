/**
 * A value made on first use. For what is costly to make and may never be needed: an lru-cache
 * preallocates arrays for its `max` entries (~0.4 ms per 1,000), and the server's bounded caches add
 * up to hundreds of milliseconds of start-up before the first packet could be answered.
 */
export function lazy<T>(make: () => T): (() => T) & { /** The value if it was made (clearing what was never made would make it). */ peek(): T | undefined } {
  let value: T | undefined;
  return Object.assign(() => (value ??= make()), { peek: () => value });
}
