import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The shared test server (on this machine and in CI: 127.0.0.1:5432, trust auth, database `test`). */
export const TEST_DATABASE_URL =
  process.env.ASSETPIPE_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Whether PostgreSQL at `url` answers, and why not. */
export async function probePostgres(url: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message || err.name : String(err) };
  } finally {
    await client.end().catch(() => {});
  }
}

/** A schema name no other test run uses. */
export function uniqueSchema(prefix = 'assetpipe_test'): string {
  return `${prefix}_${process.pid}_${randomBytes(5).toString('hex')}`;
}

/** Drops every schema given (and what is in them). */
export async function dropSchemas(url: string, ...schemas: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const schema of schemas) await client.query(`drop schema if exists "${schema}" cascade`);
  } finally {
    await client.end();
  }
}
