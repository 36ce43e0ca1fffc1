import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { AssetFilter, Catalog } from '../catalog/catalog.js';
import type { Asset, AssetStatus, MediaType, Rendition, RunWithSteps } from '../domain/asset.js';
import { sanitizeFilename } from '../domain/filename.js';
import { newId } from '../domain/ids.js';
import { AppError } from '../errors.js';
import { HashingStream } from '../lib/hash-stream.js';
import { peekStream } from '../lib/peek-stream.js';
import { describeUnsupported, SNIFF_BYTES, type SniffedType, sniffMedia } from '../media/sniff.js';
import { runJobKey } from '../pipeline/jobs.js';
import type { JobQueue } from '../queue/job-queue.js';
import type { BlobInfo, BlobStore, ByteRange } from '../storage/blob-store.js';
import { originalKey } from '../storage/keys.js';

export const DEFAULT_PROJECT = 'default';
const PROJECT_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function validateProjectId(value: string | undefined): string {
  if (value === undefined || value === '') return DEFAULT_PROJECT;
  if (!PROJECT_ID.test(value)) {
    throw new AppError(
      'VALIDATION_FAILED',
      'projectId must be 1-64 letters, digits, "-" or "_", starting with a letter or digit.',
    );
  }
  return value;
}

/** An upload whose bytes are stored but which is not in the catalog yet. */
export interface ReceivedUpload {
  assetId: string;
  key: string;
  size: number;
  sha256: string;
  media: SniffedType;
}

export interface AssetDetails {
  asset: Asset;
  renditions: Rendition[];
}

export interface AssetServiceOptions {
  catalog: Catalog;
  blobs: BlobStore;
  queue: JobQueue;
  logger: Logger;
  maxUploadBytes: number;
  now?: () => Date;
}

/** Uploads, lookups and the original bytes: everything the HTTP routes and the CLI share. */
export class AssetService {
  private readonly now: () => Date;

  constructor(private readonly options: AssetServiceOptions) {
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Streams an upload into the blob store. The type is decided from the first bytes; an empty or
   * unprocessable body is refused before anything is written, an oversized one is cut off and
   * nothing is kept. The caller then calls `register` (or `discard`).
   */
  async receive(body: Readable): Promise<ReceivedUpload> {
    const { head, stream } = await peekStream(body, SNIFF_BYTES);
    if (head.length === 0) {
      stream.destroy();
      throw new AppError('FILE_EMPTY', 'The uploaded file is empty.');
    }
    const media = await sniffMedia(head);
    if (!media) {
      stream.destroy();
      body.resume(); // drain what is left so the client can read our answer
      throw new AppError(
        'MEDIA_UNSUPPORTED',
        `${await describeUnsupported(head)}. assetpipe processes JPEG, PNG, WebP, GIF, AVIF, HEIC, TIFF and SVG images, and common video and audio formats.`,
      );
    }
    const assetId = newId('ast');
    const key = originalKey(newId('upl'));
    const hasher = new HashingStream();
    stream.on('error', (err) => hasher.destroy(err));
    const stored = await this.options.blobs.put(key, stream.pipe(hasher), {
      contentType: media.mime,
      maxBytes: this.options.maxUploadBytes,
    });
    return { assetId, key, size: stored.size, sha256: hasher.digest(), media };
  }

  /** Creates the catalog record and starts its pipeline run. */
  async register(
    upload: ReceivedUpload,
    meta: { filename?: string | undefined; projectId: string },
  ): Promise<Asset> {
    const runId = newId('run');
    let asset: Asset;
    try {
      ({ asset } = await this.options.catalog.createAssetWithRun(
        {
          id: upload.assetId,
          projectId: meta.projectId,
          filename: sanitizeFilename(meta.filename, `upload.${upload.media.ext}`),
          type: upload.media.type,
          mimeType: upload.media.mime,
          size: upload.size,
          sha256: upload.sha256,
          originalKey: upload.key,
          uploadedAt: this.now().toISOString(),
        },
        runId,
      ));
    } catch (err) {
      await this.discard(upload);
      throw err;
    }
    // If the process dies right here, the recovery sweep finds the queued run and enqueues it.
    await this.options.queue.enqueue('pipeline.run', { runId }, { key: runJobKey(runId) });
    this.options.logger.info(
      { assetId: asset.id, runId, type: asset.type, size: asset.size },
      'asset uploaded',
    );
    return asset;
  }

  async discard(upload: ReceivedUpload): Promise<void> {
    await this.options.blobs.delete(upload.key).catch((err: unknown) => {
      this.options.logger.warn({ err, key: upload.key }, 'could not remove the bytes of a refused upload');
    });
  }

  async ingest(body: Readable, meta: { filename?: string | undefined; projectId: string }): Promise<Asset> {
    return this.register(await this.receive(body), meta);
  }

  async get(id: string): Promise<AssetDetails> {
    const asset = await this.options.catalog.getAsset(id);
    if (!asset) throw new AppError('ASSET_NOT_FOUND', `No asset with id ${JSON.stringify(id)}.`);
    const renditions =
      asset.status === 'ready' ? await this.options.catalog.listRenditions(id, asset.versionNumber) : [];
    return { asset, renditions };
  }

  async list(filter: {
    projectId?: string | undefined;
    type?: MediaType | undefined;
    status?: AssetStatus | undefined;
    limit: number;
    beforeId?: string | undefined;
  }) {
    const query: AssetFilter = { ...filter };
    return this.options.catalog.listAssets(query);
  }

  async runs(id: string): Promise<RunWithSteps[]> {
    const asset = await this.options.catalog.getAsset(id);
    if (!asset) throw new AppError('ASSET_NOT_FOUND', `No asset with id ${JSON.stringify(id)}.`);
    return this.options.catalog.listRunsWithSteps(id);
  }

  /** The stored original of the current version: its blob metadata, and a reader for a range. */
  async original(
    id: string,
  ): Promise<{ asset: Asset; info: BlobInfo; open: (range?: ByteRange) => Promise<Readable> }> {
    const asset = await this.options.catalog.getAsset(id);
    if (!asset) throw new AppError('ASSET_NOT_FOUND', `No asset with id ${JSON.stringify(id)}.`);
    const version = await this.options.catalog.getVersion(id, asset.versionNumber);
    const info = version ? await this.options.blobs.head(version.originalKey) : undefined;
    if (!version || !info)
      throw new AppError('BLOB_NOT_FOUND', 'The original of this asset is not in storage.');
    return { asset, info, open: (range) => this.options.blobs.get(version.originalKey, range) };
  }

  /** A rendition of the current version by name (e.g. `thumbnail`). */
  async rendition(id: string, name: string) {
    const { asset, renditions } = await this.get(id);
    const rendition = renditions.find((r) => r.name === name);
    const info = rendition ? await this.options.blobs.head(rendition.key) : undefined;
    if (!rendition || !info) {
      throw new AppError(
        'NOT_FOUND',
        `Asset ${id} has no rendition ${JSON.stringify(name)}${asset.status !== 'ready' ? ' yet' : ''}.`,
      );
    }
    return {
      asset,
      rendition,
      info,
      open: (range?: ByteRange) => this.options.blobs.get(rendition.key, range),
    };
  }
}
