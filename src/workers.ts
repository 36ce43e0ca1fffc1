import type { Container } from './container.js';
import type { JobKind, JobPayloads } from './pipeline/jobs.js';
import { recoverUnfinishedRuns } from './pipeline/recovery.js';
import { executeChunk } from './pipeline/video/chunk-job.js';
import type { JobHandler } from './queue/job-queue.js';

const RECOVERY_INTERVAL_MS = 60_000;

/** Starts consuming every job kind with its handler, and the periodic recovery sweep. */
export function startWorkers(container: Container): { stop: () => Promise<void> } {
  const { queue, runner, config, logger } = container;

  // A job kind without a handler here is a compile error.
  const handlers: { [K in JobKind]: JobHandler<JobPayloads[K]> } = {
    'pipeline.run': async (job, ctx) => {
      await runner.execute(job.payload.runId, {
        attempt: ctx.attempt,
        maxAttempts: job.maxAttempts,
        signal: ctx.signal,
        progress: ctx.progress,
      });
    },
    'pipeline.chunk': async (job, ctx) => {
      await executeChunk(
        {
          catalog: container.catalog,
          blobs: container.blobs,
          logger: logger.child({ component: 'pipeline' }),
          scratchRoot: runner.scratchRoot,
          video: config.video,
          stepTimeoutMs: config.stepTimeoutMs,
        },
        job.payload,
        { attempt: ctx.attempt, maxAttempts: job.maxAttempts, signal: ctx.signal, progress: ctx.progress },
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
