import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';

/** Runs `fn` while holding the lock; calls run one after another in the order they asked. */
export type WriteLock = <T>(fn: () => Promise<T>) => Promise<T>;

const locks = new Map<string, WriteLock>();

/**
 * The lock every writer of this process to the SQLite database `file` should hold while it writes
 * (the catalog does). better-sqlite3 waits for a busy database synchronously, blocking the event
 * loop; if the lock is held by another connection of the same process, that connection can never
 * commit and the waiter fails with SQLITE_BUSY after busy_timeout. Serialising in-process writers
 * here leaves busy_timeout to deal with other processes only. Other modules that open their own
 * connection to the same file and hold a transaction across an `await` should use it too.
 */
export function sqliteWriteLock(file: string): WriteLock {
  const key = canonicalPath(file);
  let lock = locks.get(key);
  if (lock === undefined) {
    lock = createMutex();
    locks.set(key, lock);
  }
  return lock;
}

function canonicalPath(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return resolve(file);
  }
}

function createMutex(): WriteLock {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const result = tail.then(fn);
    tail = result.catch(() => undefined);
    return result;
  };
}
