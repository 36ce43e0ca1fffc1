import type BetterSqlite3 from 'better-sqlite3';

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Switches the connection to WAL, retrying while another process holds the lock. The switch needs
 * an exclusive lock, and when several processes open a new database file at once SQLite can answer
 * SQLITE_BUSY without calling the busy handler (seen as "database is locked" from the pragma even
 * with busy_timeout set), so the wait is ours. Synchronous like the rest of better-sqlite3; returns
 * the journal mode in force.
 */
export function enableWal(db: BetterSqlite3.Database, timeoutMs: number): unknown {
  const deadline = Date.now() + timeoutMs;
  for (let delayMs = 5; ; delayMs = Math.min(delayMs * 2, 100)) {
    try {
      return db.pragma('journal_mode = WAL', { simple: true });
    } catch (err) {
      const busy = (err as { code?: unknown }).code === 'SQLITE_BUSY';
      if (!busy || Date.now() >= deadline) throw err;
      Atomics.wait(pause, 0, 0, delayMs);
    }
  }
}
