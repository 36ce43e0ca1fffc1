import { CompiledQuery, Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { GuardedPgClient } from '../lib/guarded-pg-client.js';
import { KyselyCatalog } from './kysely-catalog.js';
import { postgresMigrations } from './migrations/postgres.js';
import type { Database } from './schema.js';

export interface PostgresCatalogOptions {
  /**
   * Keep every table in this schema (created if missing): `search_path` is set on each new
   * connection. Lets several catalogs (e.g. test runs) share one database.
   */
  schema?: string | undefined;
  /** Pool size; default 10. */
  maxConnections?: number | undefined;
  /** How long to wait for a connection before a query fails. @default 5000 */
  connectTimeoutMs?: number | undefined;
}

/**
 * Opens the PostgreSQL catalog at `url` (`postgres://user@host:port/db`). Fails if the server cannot
 * be reached. Call `migrate()` before use.
 */
export async function openPostgresCatalog(
  url: string,
  options: PostgresCatalogOptions = {},
): Promise<KyselyCatalog> {
  const { schema } = options;
  const pool = createCatalogPool(url, options);
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({
      pool,
      onCreateConnection:
        schema === undefined
          ? undefined
          : async (connection) => {
              await connection.executeQuery(CompiledQuery.raw(`set search_path to ${quoteIdent(schema)}`));
            },
    }),
  });
  try {
    if (schema !== undefined) await createSchemaIfMissing(db, schema);
    else await sql`select 1`.execute(db);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return new KyselyCatalog(db, 'postgres', postgresMigrations);
}

/**
 * The catalog's connection pool. Exported for the test that terminates a checked-out session.
 */
export function createCatalogPool(url: string, options: PostgresCatalogOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.maxConnections ?? 10,
    // While the server is down or restarting, a request waits at most this long for a connection and
    // then fails (503 on the API) instead of hanging; the next request tries again.
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    keepAlive: true,
    // A client checked out for a transaction has no pool listener: see GuardedPgClient.
    Client: GuardedPgClient,
  });
  // An idle client whose connection drops (server restart, network) emits `error` on the pool; without
  // a listener that would crash the process. The pool discards the client and the next query reconnects.
  pool.on('error', () => {});
  return pool;
}

async function createSchemaIfMissing(db: Kysely<Database>, schema: string): Promise<void> {
  try {
    await sql`create schema if not exists ${sql.id(schema)}`.execute(db);
  } catch (err) {
    // Two processes creating it at once: `if not exists` can still fail on the catalog's unique index.
    const { rows } = await sql<{ found: number }>`
      select 1 as found from information_schema.schemata where schema_name = ${schema}
    `.execute(db);
    if (rows.length === 0) throw err;
  }
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
