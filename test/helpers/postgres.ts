// The private PostgreSQL lives with the bench, which needs it too (bench/ha-totp.ts).
export { startPostgres, type PostgresInstance } from '../../bench/postgres.js';
