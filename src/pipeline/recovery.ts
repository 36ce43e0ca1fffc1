import type { Logger } from 'pino';
import type { Catalog } from '../catalog/catalog.js';
import type { JobQueue } from '../queue/job-queue.js';
import { runJobKey } from './jobs.js';

/**
 * Makes sure every unfinished run has a live job. Closes two gaps a crash can open: a run written
 * to the catalog whose job was never enqueued (the process died in between), and a run whose job
 * was dead-lettered without the run being marked failed (its worker died on the last attempt).
 * Safe to run from any number of processes at once: enqueueing is deduplicated by the run's key.
 */
export async function recoverUnfinishedRuns(deps: {
  catalog: Catalog;
  queue: JobQueue;
  logger: Logger;
  now?: () => Date;
}): Promise<{ requeued: number; failed: number }> {
  const now = deps.now ?? (() => new Date());
  let requeued = 0;
  let failed = 0;
  for (const run of await deps.catalog.listUnfinishedRuns(1000)) {
    const { id, created } = await deps.queue.enqueue(
      'pipeline.run',
      { runId: run.id },
      { key: runJobKey(run.id) },
    );
    if (created) {
      requeued++;
      deps.logger.warn({ runId: run.id, assetId: run.assetId }, 'queued a run whose job had been lost');
      continue;
    }
    const job = await deps.queue.getJob(id);
    if (job?.status === 'dead') {
      failed++;
      await deps.catalog.failRun(
        run.id,
        `Processing stopped after ${job.attempt} attempts: ${job.lastError ?? 'unknown error'}`,
        now().toISOString(),
      );
    }
  }
  return { requeued, failed };
}
