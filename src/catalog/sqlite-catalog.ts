import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { enableWal } from '../lib/sqlite-wal.js';
import { sqliteWriteLock } from '../lib/sqlite-write-lock.js';
import { KyselyCatalog } from './kysely-catalog.js';
import { sqliteMigrations } from './migrations/sqlite.js';
import type { Database } from './schema.js';

/** How long a connection waits for another process's write lock before SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 10_000;

/**
 * Opens (creating if needed) the SQLite catalog at `file`. Call `migrate()` before use.
 *
 * Several processes may open the same file: WAL lets readers run alongside the single writer, every
 * multi-statement write is a `BEGIN IMMEDIATE` transaction, and `busy_timeout` makes a writer wait for
 * the lock instead of failing.
 */
export async function openSqliteCatalog(file: string): Promise<KyselyCatalog> {
  const database = new BetterSqlite3(file, { timeout: BUSY_TIMEOUT_MS });
  try {
    // busy_timeout first, so that switching to WAL waits for a concurrent opener instead of failing.
    database.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    const mode = enableWal(database, BUSY_TIMEOUT_MS);
    if (file !== ':memory:' && mode !== 'wal')
      throw new Error(`could not enable WAL on ${file} (got ${String(mode)})`);
    database.pragma('synchronous = NORMAL');
    database.pragma('foreign_keys = ON');
  } catch (err) {
    database.close();
    throw err;
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  const writeLock = file === ':memory:' || file === '' ? undefined : sqliteWriteLock(file);
  return new KyselyCatalog(db, 'sqlite', sqliteMigrations, { writeLock });
}
