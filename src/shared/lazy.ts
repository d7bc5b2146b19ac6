/**
 * A value made on first use. For what is costly to make and may never be needed: an lru-cache
 * preallocates arrays for its `max` entries (~0.4 ms per 1,000), and the server's bounded caches add
 * up to hundreds of milliseconds of start-up before the first packet could be answered.
 */
export function lazy<T>(make: () => T): () => T {
  let value: T | undefined;
  return () => (value ??= make());
}
