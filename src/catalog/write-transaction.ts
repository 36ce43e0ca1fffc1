import { type Kysely, sql } from 'kysely';
import type { WriteLock } from '../lib/sqlite-write-lock.js';
import type { Database } from './schema.js';

export type CatalogDialect = 'sqlite' | 'postgres';

/** What the query modules work on: the Kysely handle, its dialect and the process's write lock. */
export interface CatalogDb {
  readonly db: Kysely<Database>;
  readonly dialect: CatalogDialect;
  /** See `KyselyCatalogOptions.writeLock`. */
  readonly writeLock: WriteLock;
}

/** The write lock of a catalog that shares its database with no other catalog of this process. */
export const passThrough: WriteLock = (fn) => fn();

/**
 * Runs `fn` in one write transaction. SQLite: `BEGIN IMMEDIATE` takes the database write lock up
 * front (waiting up to busy_timeout), so a transaction that reads before it writes cannot fail with
 * SQLITE_BUSY when another process committed in between, as a deferred `BEGIN` would. PostgreSQL: a
 * normal transaction; rows read-then-updated are locked with `forUpdate` (see `lockRows`).
 *
 * `fn` must only use the `trx` it is given, and must not call back into the catalog.
 */
export function writeTransaction<T>(
  { db, dialect, writeLock }: CatalogDb,
  fn: (trx: Kysely<Database>) => Promise<T>,
): Promise<T> {
  if (dialect === 'postgres') return db.transaction().execute(fn);
  return writeLock(() =>
    db.connection().execute(async (conn) => {
      await sql`begin immediate`.execute(conn);
      let result: T;
      try {
        result = await fn(conn);
        await sql`commit`.execute(conn);
      } catch (err) {
        await rollbackQuietly(conn);
        throw err;
      }
      return result;
    }),
  );
}

/** A single-statement write (autocommit), serialised with this process's other writers. */
export function write<T>({ db, writeLock }: CatalogDb, fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
  return writeLock(() => fn(db));
}

/**
 * Locks the rows `qb` selects (`FOR UPDATE`) on PostgreSQL. SQLite has no row locks and needs none:
 * `BEGIN IMMEDIATE` already holds the database write lock.
 */
export function lockRows<QB extends { forUpdate(): QB }>(dialect: CatalogDialect, qb: QB): QB {
  return dialect === 'postgres' ? qb.forUpdate() : qb;
}

async function rollbackQuietly(conn: Kysely<Database>): Promise<void> {
  try {
    await sql`rollback`.execute(conn);
  } catch {
    // SQLite may already have rolled back (e.g. after SQLITE_FULL); the original error matters.
  }
}
