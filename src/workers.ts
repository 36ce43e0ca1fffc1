import { setTimeout as sleep } from 'node:timers/promises';
import type { Container } from './container.js';
import { isOutage } from './lib/outage.js';
import type { JobKind, JobPayloads } from './pipeline/jobs.js';
import { recoverUnfinishedRuns } from './pipeline/recovery.js';
import { executeChunk } from './pipeline/video/chunk-job.js';
import type { JobHandler } from './queue/job-queue.js';

const RECOVERY_INTERVAL_MS = 60_000;
/** How long a job waits out an outage of the database or object store before its attempt fails. */
const OUTAGE_PATIENCE_MS = 10 * 60_000;

/**
 * Runs `work` again while it fails because a dependency is down (PostgreSQL restarting, the object
 * store unreachable), within the same queue attempt: an outage must not use up a job's attempts and
 * fail the asset. Runs and chunks resume where they stopped, so repeating is cheap. Gives up when
 * the job's signal fires (the lease was lost: the queue hands the job out again once it is back).
 */
async function outlastingOutages(
  work: () => Promise<unknown>,
  signal: AbortSignal,
  log: Container['logger'],
): Promise<void> {
  const startedAt = Date.now();
  for (let wait = 500; ; wait = Math.min(wait * 2, 5000)) {
    try {
      await work();
      return;
    } catch (err) {
      if (!isOutage(err) || signal.aborted || Date.now() - startedAt > OUTAGE_PATIENCE_MS) throw err;
      log.warn({ err: (err as Error).message, retryInMs: wait }, 'a dependency is unreachable; retrying');
      await sleep(wait, undefined, { signal }).catch(() => {});
    }
  }
}

/** Starts consuming every job kind with its handler, and the periodic recovery sweep. */
export function startWorkers(container: Container): { stop: () => Promise<void> } {
  const { queue, runner, config, logger } = container;

  // A job kind without a handler here is a compile error.
  const handlers: { [K in JobKind]: JobHandler<JobPayloads[K]> } = {
    'pipeline.run': async (job, ctx) => {
      await outlastingOutages(
        () =>
          runner.execute(job.payload.runId, {
            attempt: ctx.attempt,
            maxAttempts: job.maxAttempts,
            signal: ctx.signal,
            progress: ctx.progress,
          }),
        ctx.signal,
        logger.child({ runId: job.payload.runId }),
      );
    },
    'pipeline.chunk': async (job, ctx) => {
      await outlastingOutages(
        () =>
          executeChunk(
            {
              catalog: container.catalog,
              blobs: container.blobs,
              logger: logger.child({ component: 'pipeline' }),
              scratchRoot: runner.scratchRoot,
              video: config.video,
              stepTimeoutMs: config.stepTimeoutMs,
            },
            job.payload,
            {
              attempt: ctx.attempt,
              maxAttempts: job.maxAttempts,
              signal: ctx.signal,
              progress: ctx.progress,
            },
          ),
        ctx.signal,
        logger.child({ runId: job.payload.runId }),
      );
    },
  };
  queue.work('pipeline.run', handlers['pipeline.run'], { concurrency: config.workers });
  // Chunks of long videos have slots of their own: a run waiting for its chunks holds a run slot,
  // never a chunk slot, so chunks always progress (and every worker of a fleet shares one film).
  queue.work('pipeline.chunk', handlers['pipeline.chunk'], { concurrency: config.workers });

  const sweep = async () => {
    await recoverUnfinishedRuns(container).catch((err: unknown) =>
      logger.error({ err }, 'recovery sweep failed'),
    );
    // Housekeeping any worker may do: idempotent, so several processes doing it at once is fine.
    await container.assets
      .purgeExpired()
      .catch((err: unknown) => logger.error({ err }, 'purge sweep failed'));
    await container.uploads
      .expireStale()
      .catch((err: unknown) => logger.error({ err }, 'upload expiry sweep failed'));
  };
  void sweep();
  const timer = setInterval(sweep, RECOVERY_INTERVAL_MS);
  timer.unref();
  logger.info({ concurrency: config.workers }, 'workers started');

  return {
    async stop() {
      clearInterval(timer);
      await queue.stop({ graceMs: config.shutdownGraceMs });
    },
  };
}
