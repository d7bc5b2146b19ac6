// The private Redis lives with the bench, which needs it too (bench/ha-totp.ts).
export { startRedis, type RedisInstance } from '../../bench/redis.js';
