import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/tmp.js';
import { enableWal } from './sqlite-wal.js';

describe('enableWal', () => {
  let cleanup: (() => Promise<void>) | undefined;
  afterEach(async () => cleanup?.());

  /** Another thread holds an exclusive lock on `file` for `holdMs`, then lets go. */
  async function holdExclusiveLock(file: string, holdMs: number): Promise<Worker> {
    const worker = new Worker(
      `const Database = require('better-sqlite3');
       const { parentPort, workerData } = require('node:worker_threads');
       const db = new Database(workerData.file);
       db.exec('BEGIN EXCLUSIVE');
       parentPort.postMessage('locked');
       setTimeout(() => { db.exec('COMMIT'); db.close(); parentPort.postMessage('released'); }, workerData.holdMs);`,
      { eval: true, workerData: { file, holdMs } },
    );
    await new Promise((resolve) => worker.once('message', resolve));
    return worker;
  }

  it('waits for a lock held by another connection instead of failing, and gives up after its timeout', async () => {
    const tmp = await tempDir('assetpipe-wal-');
    cleanup = tmp.cleanup;
    const file = join(tmp.dir, 'db.sqlite');
    new Database(file).exec('CREATE TABLE t (x)');

    // busy_timeout 0: only enableWal's own waiting can get past the lock.
    const db = new Database(file, { timeout: 0 });
    try {
      const impatient = await holdExclusiveLock(file, 60_000);
      expect(() => enableWal(db, 100)).toThrow(/locked|busy/i);
      await impatient.terminate();

      await holdExclusiveLock(file, 300);
      expect(enableWal(db, 10_000)).toBe('wal');
    } finally {
      db.close();
    }
  });
});
