import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { Catalog } from './catalog/catalog.js';
import { openPostgresCatalog } from './catalog/postgres-catalog.js';
import { openSqliteCatalog } from './catalog/sqlite-catalog.js';
import { type Config, pathFromUrl } from './config.js';
import type { SigningKey } from './domain/signing.js';
import { Metrics } from './metrics.js';
import { JOB_KINDS } from './pipeline/jobs.js';
import { PIPELINES } from './pipeline/pipelines.js';
import { PipelineRunner } from './pipeline/runner.js';
import { createProcessScratch } from './pipeline/scratch.js';
import type { JobQueue } from './queue/job-queue.js';
import { SqliteJobQueue } from './queue/sqlite-queue.js';
import { AssetService } from './services/asset-service.js';
import { AuthService } from './services/auth-service.js';
import { ImageDelivery } from './services/image-delivery.js';
import { ImageUrls } from './services/image-urls.js';
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
  /** `/img`: on-demand transforms, their cache, queue and single flight. */
  images: ImageDelivery;
  /** Signed `/img` URLs (asset records, the signing API and CLI). */
  imageUrls: ImageUrls;
  /** Keys of every URL assetpipe signs (the first signs, all verify). */
  signingKeys: SigningKey[];
  close(): Promise<void>;
}

async function openCatalog(config: Config): Promise<Catalog> {
  const { database } = config;
  const catalog =
    database.kind === 'sqlite'
      ? await mkdir(dirname(database.file), { recursive: true }).then(() => openSqliteCatalog(database.file))
      : await openPostgresCatalog(database.url, {
          schema: database.schema,
          maxConnections: database.poolSize,
        });
  // Several processes may start at once: both migrators take the migration lock (SQLite: the
  // file's write lock; PostgreSQL: a row lock), so the second finds the work done.
  await catalog.migrate();
  return catalog;
}

// The scaled-out adapters load only when configured: the embedded mode never pays for the AWS SDK,
// BullMQ or ioredis (in memory, nor in start-up time).
async function openBlobStore(config: Config): Promise<BlobStore> {
  if (!config.storage.startsWith('s3://')) return new FsBlobStore({ root: pathFromUrl(config.storage) });
  const { s3BlobStoreFromUrl } = await import('./storage/s3-blob-store.js');
  return s3BlobStoreFromUrl(config.storage);
}

async function openQueue(config: Config, logger: Logger): Promise<JobQueue> {
  const { database } = config;
  const common = { leaseMs: config.jobLeaseMs, maxAttempts: config.jobAttempts, logger };
  if (database.kind === 'sqlite') return new SqliteJobQueue({ file: database.file, ...common });
  const { BullmqJobQueue } = await import('./queue/bullmq-queue.js');
  return new BullmqJobQueue({
    kinds: JOB_KINDS,
    backend: config.redisUrl
      ? { kind: 'redis', url: config.redisUrl, prefix: database.queueSchema }
      : { kind: 'postgres', url: database.url, schema: database.queueSchema },
    ...common,
  });
}

export async function createContainer(config: Config, logger: Logger): Promise<Container> {
  await mkdir(config.dataDir, { recursive: true });
  const catalog = await openCatalog(config);
  const blobs = await openBlobStore(config);
  const queue = await openQueue(config, logger.child({ component: 'queue' }));
  const metrics = new Metrics({ queue });
  const runner = new PipelineRunner({
    catalog,
    blobs,
    queue,
    logger: logger.child({ component: 'pipeline' }),
    metrics,
    pipelines: PIPELINES,
    limits: { maxInputPixels: config.maxInputPixels },
    settings: {
      imagePresets: config.imagePresets,
      blurhashComponents: config.blurhashComponents,
      video: config.video,
    },
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
    imageLimits: { maxInputPixels: config.maxInputPixels },
  });
  const auth = new AuthService({ catalog, adminKey: config.adminKey });
  const signingKeys = await loadSigningKeys(config);
  const uploads = new UploadService({
    catalog,
    blobs,
    assets,
    projects,
    logger,
    signingKeys,
    presignExpirySec: config.presignExpirySec,
    uploadExpirySec: config.uploadExpirySec,
  });

  const images = new ImageDelivery({
    catalog,
    blobs,
    metrics,
    logger: logger.child({ component: 'img' }),
    signingKeys,
    img: config.img,
    presets: config.imagePresets,
    limits: { maxInputPixels: config.maxInputPixels },
    scratchDir: runner.scratchRoot,
  });
  projects.onChange(() => images.forgetAllLookups());
  assets.onChange(async (assetId) => {
    images.forgetLookups(assetId);
    // Results still being stored land before a purge lists what to delete.
    await images.flush();
  });
  const imageUrls = new ImageUrls({
    catalog,
    signingKeys,
    presets: config.imagePresets,
    maxOutputSide: config.img.maxOutputSide,
    publicUrl: config.publicUrl,
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
    images,
    imageUrls,
    signingKeys,
    close() {
      closed ??= (async () => {
        await queue.close();
        await images.flush(); // transform results still being written to the blob store
        await rm(runner.scratchRoot, { recursive: true, force: true }).catch(() => {});
        await blobs.close();
        await catalog.close();
      })();
      return closed;
    },
  };
}
