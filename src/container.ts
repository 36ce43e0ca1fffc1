import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { Catalog } from './catalog/catalog.js';
import { openSqliteCatalog } from './catalog/sqlite-catalog.js';
import { type Config, pathFromUrl } from './config.js';
import { Metrics } from './metrics.js';
import { PIPELINES } from './pipeline/pipelines.js';
import { PipelineRunner } from './pipeline/runner.js';
import { createProcessScratch } from './pipeline/scratch.js';
import type { JobQueue } from './queue/job-queue.js';
import { SqliteJobQueue } from './queue/sqlite-queue.js';
import { AssetService } from './services/asset-service.js';
import { AuthService } from './services/auth-service.js';
import { ProjectService } from './services/project-service.js';
import { loadSigningKeys } from './services/signing-keys.js';
import { UploadService } from './services/upload-service.js';
import type { BlobStore } from './storage/blob-store.js';
import { FsBlobStore } from './storage/fs-blob-store.js';

/** Everything a process needs, wired once. The only place that picks adapters from config. */
export interface Container {
  config: Config;
  logger: Logger;
  catalog: Catalog;
  blobs: BlobStore;
  queue: JobQueue;
  metrics: Metrics;
  runner: PipelineRunner;
  assets: AssetService;
  auth: AuthService;
  projects: ProjectService;
  uploads: UploadService;
  close(): Promise<void>;
}

export async function createContainer(config: Config, logger: Logger): Promise<Container> {
  await mkdir(config.dataDir, { recursive: true });
  const dbFile = pathFromUrl(config.databaseUrl);
  await mkdir(dirname(dbFile), { recursive: true });

  const catalog = await openSqliteCatalog(dbFile);
  await catalog.migrate();
  const blobs = new FsBlobStore({ root: pathFromUrl(config.storage) });
  const queue = new SqliteJobQueue({
    file: dbFile,
    leaseMs: config.jobLeaseMs,
    maxAttempts: config.jobAttempts,
    logger: logger.child({ component: 'queue' }),
  });
  const metrics = new Metrics({ queue });
  const runner = new PipelineRunner({
    catalog,
    blobs,
    logger: logger.child({ component: 'pipeline' }),
    metrics,
    pipelines: PIPELINES,
    limits: { maxInputPixels: config.maxInputPixels },
    stepTimeoutMs: config.stepTimeoutMs,
    scratchRoot: await createProcessScratch(join(config.dataDir, 'scratch'), logger),
  });
  const projects = new ProjectService({ catalog, maxUploadBytes: config.maxUploadBytes });
  const assets = new AssetService({
    catalog,
    blobs,
    queue,
    projects,
    logger,
    maxUploadBytes: config.maxUploadBytes,
    deleteGraceSec: config.deleteGraceSec,
  });
  const auth = new AuthService({ catalog, adminKey: config.adminKey });
  const uploads = new UploadService({
    catalog,
    blobs,
    assets,
    projects,
    logger,
    signingKeys: await loadSigningKeys(config),
    presignExpirySec: config.presignExpirySec,
    uploadExpirySec: config.uploadExpirySec,
  });

  let closed: Promise<void> | undefined;
  return {
    config,
    logger,
    catalog,
    blobs,
    queue,
    metrics,
    runner,
    assets,
    auth,
    projects,
    uploads,
    close() {
      closed ??= (async () => {
        await queue.close();
        await rm(runner.scratchRoot, { recursive: true, force: true }).catch(() => {});
        await blobs.close();
        await catalog.close();
      })();
      return closed;
    },
  };
}
