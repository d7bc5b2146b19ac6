// The private PostgreSQL is scripts/engines/postgres.ts (the bench starts it too); what only tests need is here.
import pg from 'pg';

export { startPostgres, type PostgresInstance } from '../../scripts/engines/postgres.js';

/** One statement on a connection of its own, as psql would run it by hand (not through any store). */
export async function sql<T extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const c = new pg.Client(url);
  await c.connect();
  try {
    return (await c.query<T>(text, values)).rows;
  } finally {
    await c.end();
  }
}
