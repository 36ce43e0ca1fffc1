import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Container } from '../../src/container.js';
import { startWorkers } from '../../src/workers.js';
import { testContainer, waitFor } from '../helpers/container.js';
import { makeJpeg } from '../helpers/images.js';

// The catalog (Kysely, async transactions) and the queue (better-sqlite3, synchronous statements)
// share one database file on two connections in the same process, and both take the process-wide
// write lock of that file (src/lib/sqlite-write-lock.ts). These tests drive them hard together and
// require every write to succeed; the lock's own failure mode (a 10 s stall, then SQLITE_BUSY) is
// shown deterministically with two catalogs in test/contract/sqlite-catalog.test.ts.
describe('catalog and queue on one SQLite file in one process', () => {
  let container: Container;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ container, cleanup } = await testContainer({
      ASSETPIPE_WORKERS: '4',
      ASSETPIPE_JOB_LEASE_MS: '1500',
    }));
  });
  afterEach(async () => cleanup());

  it('interleaves 40 uploads with 4 workers without a lock error', async () => {
    const workers = startWorkers(container);
    try {
      const jpegs = await Promise.all(
        Array.from({ length: 40 }, (_, i) => makeJpeg({ width: 96, height: 64, seed: i })),
      );
      const assets = await Promise.all(
        jpegs.map((jpeg, i) =>
          container.assets.ingest(Readable.from([jpeg]), { filename: `${i}.jpg`, projectId: 'default' }),
        ),
      );
      await waitFor(
        async () => {
          const counts = await container.catalog.countAssetsByStatus();
          return counts.ready + counts.failed === 40 && counts;
        },
        30_000,
        '40 assets to finish',
      );
      const counts = await container.catalog.countAssetsByStatus();
      expect(counts).toEqual({ processing: 0, ready: 40, failed: 0 });
      for (const asset of assets) {
        const runs = await container.catalog.listRunsWithSteps(asset.id);
        expect(runs).toHaveLength(1);
        expect(runs[0]!.attempts).toBe(1);
      }
      // A job is marked completed just after its handler published the asset: wait for that write.
      const jobs = await waitFor(
        async () => {
          const counts = (await container.queue.counts())['pipeline.run'];
          return counts && counts.completed + counts.dead === 40 && counts;
        },
        10_000,
        'the 40 jobs to be recorded as finished',
      );
      expect(jobs).toMatchObject({ completed: 40, dead: 0, active: 0 });
    } finally {
      await workers.stop();
    }
  });
});

describe('catalog transactions and queue writes interleaved on the microtask queue', () => {
  let container: Container;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ container, cleanup } = await testContainer());
  });
  afterEach(async () => cleanup());

  it('never lets a queue write wait inside an open catalog transaction', async () => {
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 100; i++) {
      const id = `ast_01ARZ3NDEKTSV4RRFFQ69G${String(i).padStart(4, '0')}`.replace(/[ILOU]/g, '0');
      writes.push(
        container.catalog.createAssetWithRun(
          {
            id,
            projectId: 'default',
            filename: `${i}.jpg`,
            type: 'image',
            mimeType: 'image/jpeg',
            size: 1,
            sha256: '0'.repeat(64),
            originalKey: `originals/${id}/v1/original`,
            uploadedAt: new Date().toISOString(),
          },
          `run_01ARZ3NDEKTSV4RRFFQ69G${String(i).padStart(4, '0')}`,
        ),
        // Yield a few microtasks first, so the enqueue lands between a transaction's statements.
        (async () => {
          for (let k = 0; k < i % 7; k++) await null;
          return container.queue.enqueue('interleave', { i });
        })(),
      );
    }
    const results = await Promise.allSettled(writes);
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect((await container.queue.counts()).interleave?.waiting).toBe(100);
    expect((await container.catalog.countAssetsByStatus()).processing).toBe(100);
  });
});
