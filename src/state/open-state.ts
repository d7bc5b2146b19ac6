// One door to the configured ephemeral state, for the server. ioredis is loaded only when the config names Redis.
import type { Config } from '../config/schema.js';
import { MemoryState } from './memory.js';
import type { EphemeralState } from './state.js';

export interface OpenStateOptions {
  now: () => number;
  /** The store key: Redis holds unconfirmed TOTP secrets and challenges sealed with it. */
  sealKey: Buffer;
  warn?: (message: string) => void;
}

/** Memory (this process) or Redis (shared by every node), as state.type says. */
export async function openState(config: Config['state'], options: OpenStateOptions): Promise<EphemeralState> {
  if (config.type === 'redis') {
    const { openRedisState } = await import('./redis.js');
    return openRedisState(config, { now: options.now, prefix: config.prefix, sealKey: options.sealKey, warn: options.warn });
  }
  return new MemoryState(options.now);
}
