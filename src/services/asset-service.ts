import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Catalog } from '../catalog/catalog.js';
import type { Principal } from '../domain/api-key.js';
import type {
  Asset,
  AssetStatus,
  AssetVersion,
  MediaType,
  Rendition,
  RunWithSteps,
} from '../domain/asset.js';
import { sanitizeFilename } from '../domain/filename.js';
import { newId } from '../domain/ids.js';
import type { Project } from '../domain/project.js';
import { AppError, isAppError } from '../errors.js';
import { HashingStream } from '../lib/hash-stream.js';
import { isOutage } from '../lib/outage.js';
import { peekStream } from '../lib/peek-stream.js';
import { checkImagePrefix, type ImageLimits } from '../media/image.js';
import { describeUnsupported, SNIFF_BYTES, type SniffedType, sniffMedia } from '../media/sniff.js';
import { runJobKey } from '../pipeline/jobs.js';
import type { JobQueue } from '../queue/job-queue.js';
import type { BlobInfo, BlobStore, ByteRange } from '../storage/blob-store.js';
import { derivedPrefix, imageCachePrefix, originalKey } from '../storage/keys.js';
import type { ProjectService } from './project-service.js';

export { validateProjectId } from './project-service.js';

const MEDIA_ID = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;
const MAX_TAGS = 50;
const MAX_TAG_CHARS = 64;

/** An upload whose bytes are stored but which is not in the catalog yet. */
export interface ReceivedUpload {
  key: string;
  size: number;
  sha256: string;
  media: SniffedType;
}

export interface RegisterMeta {
  project: Project;
  filename?: string | undefined;
  mediaId?: string | undefined | null;
  /** A checksum the client declared: `sha256:<hex>`, `sha256=<base64>` or bare hex. */
  checksum?: string | undefined | null;
}

export interface RegisterResult {
  asset: Asset;
  /** `created`: a new asset; `version`: a new version of the asset with this media id; `duplicate`: nothing new (policy `link`). */
  outcome: 'created' | 'version' | 'duplicate';
  /** The asset whose bytes this upload repeats, if any. */
  duplicateOf: string | null;
}

export interface AssetDetails {
  asset: Asset;
  renditions: Rendition[];
}

export interface AssetServiceOptions {
  catalog: Catalog;
  blobs: BlobStore;
  queue: JobQueue;
  projects: ProjectService;
  logger: Logger;
  maxUploadBytes: number;
  deleteGraceSec: number;
  /** Images whose header declares more pixels are refused at upload, before anything is stored. */
  imageLimits: ImageLimits;
  now?: () => Date;
}

export function validateMediaId(value: string | undefined | null): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (!MEDIA_ID.test(value)) {
    throw new AppError(
      'VALIDATION_FAILED',
      'mediaId must be 1-128 letters, digits, ".", "_", ":", "/" or "-".',
    );
  }
  return value;
}

/** Parses the forms of a declared sha256 clients send; undefined when none was given. */
export function parseChecksum(value: string | undefined | null): string | undefined {
  if (value === undefined || value === null || value.trim() === '') return undefined;
  const text = value.trim();
  const hex = /^(?:sha256:)?([0-9a-fA-F]{64})$/.exec(text);
  if (hex) return hex[1]!.toLowerCase();
  const b64 = /^sha-?256[=:]:?([A-Za-z0-9+/=_-]{43,44}):?$/i.exec(text);
  if (b64) {
    const bytes = Buffer.from(
      b64[1]!,
      b64[1]!.includes('-') || b64[1]!.includes('_') ? 'base64url' : 'base64',
    );
    if (bytes.length === 32) return bytes.toString('hex');
  }
  throw new AppError(
    'VALIDATION_FAILED',
    'A checksum must be "sha256:<64 hex digits>" or "sha-256=<base64>".',
  );
}

export function normaliseTags(tags: unknown): string[] {
  if (!Array.isArray(tags)) throw new AppError('VALIDATION_FAILED', 'tags must be an array of strings.');
  const out: string[] = [];
  for (const tag of tags) {
    if (typeof tag !== 'string') throw new AppError('VALIDATION_FAILED', 'tags must be an array of strings.');
    const clean = tag.normalize('NFC').trim();
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
    if (clean === '' || clean.length > MAX_TAG_CHARS || /[\u0000-\u001f\u007f]/.test(clean)) {
      throw new AppError('VALIDATION_FAILED', `Each tag must be 1-${MAX_TAG_CHARS} printable characters.`);
    }
    if (!out.includes(clean)) out.push(clean);
  }
  if (out.length > MAX_TAGS)
    throw new AppError('VALIDATION_FAILED', `An asset has at most ${MAX_TAGS} tags.`);
  return out;
}

/** Uploads, versions, lookups and the original bytes: everything the HTTP routes and the CLI share. */
export class AssetService {
  private readonly now: () => Date;
  private readonly changeListeners: ((assetId: string) => void | Promise<void>)[] = [];

  constructor(private readonly options: AssetServiceOptions) {
    this.now = options.now ?? (() => new Date());
  }

  private iso(): string {
    return this.now().toISOString();
  }

  /**
   * Calls `listener` after an asset was deleted, restored, purged or given another current version
   * through this process, so in-process caches (the /img lookups) can forget it at once.
   */
  onChange(listener: (assetId: string) => void | Promise<void>): void {
    this.changeListeners.push(listener);
  }

  private async changed(assetId: string): Promise<void> {
    await Promise.all(this.changeListeners.map((listener) => listener(assetId)));
  }

  /**
   * Streams an upload into the blob store. The type is decided from the first bytes; an empty or
   * unprocessable body is refused before anything is written, an oversized one is cut off and
   * nothing is kept. The caller then calls `register` (or `discard`).
   */
  async receive(body: Readable, options: { maxBytes?: number | undefined } = {}): Promise<ReceivedUpload> {
    const { head, stream } = await peekStream(body, SNIFF_BYTES);
    if (head.length === 0) {
      stream.destroy();
      throw new AppError('FILE_EMPTY', 'The uploaded file is empty.');
    }
    const media = await sniffMedia(head);
    if (!media) {
      stream.destroy();
      body.resume(); // drain what is left so the client can read our answer
      throw await this.unsupported(head);
    }
    try {
      await this.checkHeader(media, head);
    } catch (err) {
      stream.destroy();
      body.resume();
      throw err;
    }
    const key = originalKey(newId('upl'));
    const hasher = new HashingStream();
    stream.on('error', (err) => hasher.destroy(err));
    const stored = await this.options.blobs.put(key, stream.pipe(hasher), {
      contentType: media.mime,
      maxBytes: options.maxBytes ?? this.options.maxUploadBytes,
    });
    return { key, size: stored.size, sha256: hasher.digest(), media };
  }

  /** Sniffs and hashes bytes that arrived in the blob store another way (multipart). */
  async inspectStored(key: string): Promise<ReceivedUpload> {
    const info = await this.options.blobs.head(key);
    if (!info || info.size === 0) throw new AppError('FILE_EMPTY', 'The uploaded file is empty.');
    const head = await readAll(await this.options.blobs.get(key, { start: 0, end: SNIFF_BYTES - 1 }));
    const media = await sniffMedia(head);
    if (!media) throw await this.unsupported(head);
    await this.checkHeader(media, head);
    const hash = createHash('sha256');
    for await (const chunk of await this.options.blobs.get(key)) hash.update(chunk as Buffer);
    return { key, size: info.size, sha256: hash.digest('hex'), media };
  }

  /**
   * Refuses a decompression bomb (a few bytes declaring 30000 x 30000 pixels) from the header in the
   * upload's first bytes, so it is never stored nor queued. When the header is not in those bytes,
   * the pipeline's probe reads the whole file's header and decides.
   */
  private async checkHeader(media: SniffedType, head: Buffer): Promise<void> {
    if (media.type === 'image') await checkImagePrefix(head, this.options.imageLimits);
  }

  private async unsupported(head: Buffer): Promise<AppError> {
    return new AppError(
      'MEDIA_UNSUPPORTED',
      `${await describeUnsupported(head)}. assetpipe processes JPEG, PNG, WebP, GIF, AVIF, HEIC, TIFF and SVG images, and common video and audio formats.`,
    );
  }

  /**
   * Turns stored bytes into an asset or a new version, and starts its pipeline run. Checks the
   * declared checksum, the project's allowed types and quota, and its duplicate policy; on refusal
   * the stored bytes are removed. `keepOnOutage`: an upload session's bytes (a completed multipart
   * upload) are what the client's retry completes, so an outage of the catalog must not delete them.
   */
  async register(
    upload: ReceivedUpload,
    meta: RegisterMeta,
    options: { keepOnOutage?: boolean } = {},
  ): Promise<RegisterResult> {
    try {
      return await this.registerOrThrow(upload, meta);
    } catch (err) {
      if (!(options.keepOnOutage && isOutage(err))) await this.discard(upload);
      throw err;
    }
  }

  private async registerOrThrow(upload: ReceivedUpload, meta: RegisterMeta): Promise<RegisterResult> {
    const { catalog, projects } = this.options;
    const { project } = meta;
    const mediaId = validateMediaId(meta.mediaId);
    const declared = parseChecksum(meta.checksum);
    if (declared !== undefined && declared !== upload.sha256) {
      throw new AppError(
        'CHECKSUM_MISMATCH',
        `The file's sha256 is ${upload.sha256}, not the declared ${declared}: it was damaged on the way; upload it again.`,
      );
    }
    projects.checkType(project, upload.media.type);
    await projects.checkIncoming(project, upload.size);

    const filename = sanitizeFilename(meta.filename, `upload.${upload.media.ext}`);
    const existing = mediaId ? await catalog.findAssetByMediaId(project.id, mediaId) : undefined;
    if (existing && existing.sha256 === upload.sha256 && existing.deletedAt === null) {
      // The same bytes again under the same media id: a client retry, not a new version.
      await this.discard(upload);
      return { asset: existing, outcome: 'duplicate', duplicateOf: existing.id };
    }

    let duplicateOf: string | null = null;
    if (!existing) {
      const twin = (await catalog.findAssetsBySha256(project.id, upload.sha256))[0];
      if (twin) {
        duplicateOf = twin.id;
        if (project.duplicatePolicy === 'reject') {
          throw new AppError(
            'DUPLICATE_ASSET',
            `This file is already in project "${project.id}" as asset ${twin.id} (duplicate policy: reject).`,
          );
        }
        if (project.duplicatePolicy === 'link') {
          await this.discard(upload);
          return { asset: twin, outcome: 'duplicate', duplicateOf: twin.id };
        }
      }
    }

    const runId = newId('run');
    let asset: Asset;
    let outcome: RegisterResult['outcome'];
    if (existing) {
      ({ asset } = await catalog.createVersionWithRun(
        {
          assetId: existing.id,
          filename,
          type: upload.media.type,
          mimeType: upload.media.mime,
          size: upload.size,
          sha256: upload.sha256,
          originalKey: upload.key,
          createdAt: this.iso(),
        },
        runId,
      ));
      outcome = 'version';
      await this.changed(existing.id);
    } else {
      ({ asset } = await catalog.createAssetWithRun(
        {
          id: newId('ast'),
          projectId: project.id,
          filename,
          type: upload.media.type,
          mimeType: upload.media.mime,
          size: upload.size,
          sha256: upload.sha256,
          originalKey: upload.key,
          uploadedAt: this.iso(),
          mediaId,
          duplicateOf,
        },
        runId,
      ));
      outcome = 'created';
    }
    await this.enqueueRun(runId);
    this.options.logger.info(
      { assetId: asset.id, runId, type: asset.type, size: asset.size, version: asset.versionNumber },
      outcome === 'version' ? 'new version uploaded' : 'asset uploaded',
    );
    return { asset, outcome, duplicateOf };
  }

  /**
   * Never throws: once the run is in the catalog the upload has succeeded (its bytes are
   * referenced), and a run whose job could not be queued is queued by the recovery sweep.
   */
  private async enqueueRun(runId: string): Promise<void> {
    try {
      await this.options.queue.enqueue('pipeline.run', { runId }, { key: runJobKey(runId) });
    } catch (err) {
      this.options.logger.warn({ err, runId }, 'could not queue the run now; the recovery sweep will');
    }
  }

  async discard(upload: { key: string }): Promise<void> {
    await this.options.blobs.delete(upload.key).catch((err: unknown) => {
      this.options.logger.warn({ err, key: upload.key }, 'could not remove the bytes of a refused upload');
    });
  }

  /** Upload from a stream in one go (the CLI's and tests' path). */
  async ingest(
    body: Readable,
    meta: { filename?: string | undefined; projectId: string; mediaId?: string | undefined },
  ): Promise<Asset> {
    const project = await this.options.catalog.getProject(meta.projectId);
    if (!project) throw new AppError('PROJECT_NOT_FOUND', `No project ${JSON.stringify(meta.projectId)}.`);
    const upload = await this.receive(body, { maxBytes: this.options.projects.maxUploadBytes(project) });
    return (await this.register(upload, { project, filename: meta.filename, mediaId: meta.mediaId })).asset;
  }

  /** An asset the caller may see (deleted ones only with `includeDeleted`). */
  async visible(
    principal: Principal | null,
    id: string,
    options: { includeDeleted?: boolean } = {},
  ): Promise<Asset> {
    const asset = await this.options.catalog.getAsset(id);
    if (
      !asset ||
      (principal?.projectId != null && asset.projectId !== principal.projectId) ||
      (asset.deletedAt !== null && !options.includeDeleted)
    ) {
      throw new AppError('ASSET_NOT_FOUND', `No asset with id ${JSON.stringify(id)}.`);
    }
    return asset;
  }

  async get(principal: Principal | null, id: string): Promise<AssetDetails> {
    const asset = await this.visible(principal, id);
    const renditions = await this.options.catalog.listRenditions(id, asset.versionNumber);
    return { asset, renditions: asset.status === 'ready' ? renditions : [] };
  }

  async list(
    principal: Principal | null,
    filter: {
      projectId?: string | undefined;
      type?: MediaType | undefined;
      status?: AssetStatus | undefined;
      mediaId?: string | undefined;
      q?: string | undefined;
      deleted?: boolean | undefined;
      limit: number;
      beforeId?: string | undefined;
    },
  ) {
    let projectId = filter.projectId;
    if (principal?.projectId != null) {
      if (projectId !== undefined && projectId !== principal.projectId)
        return { items: [], nextBeforeId: null };
      projectId = principal.projectId;
    }
    return this.options.catalog.listAssets({ ...filter, projectId });
  }

  async runs(principal: Principal | null, id: string): Promise<RunWithSteps[]> {
    await this.visible(principal, id, { includeDeleted: true });
    return this.options.catalog.listRunsWithSteps(id);
  }

  async versions(
    principal: Principal | null,
    id: string,
  ): Promise<{ asset: Asset; versions: AssetVersion[] }> {
    const asset = await this.visible(principal, id);
    return { asset, versions: await this.options.catalog.listVersions(id) };
  }

  /** Makes an earlier version current again (its outputs were kept). */
  async setCurrentVersion(principal: Principal | null, id: string, version: number): Promise<Asset> {
    await this.visible(principal, id);
    const asset = await this.options.catalog.setCurrentVersion(id, version, this.iso());
    await this.changed(id);
    return asset;
  }

  /** Runs the pipeline again on the current version. */
  async reprocess(principal: Principal | null, id: string): Promise<Asset> {
    await this.visible(principal, id);
    const runId = newId('run');
    await this.options.catalog.createRun(id, runId, this.iso());
    await this.enqueueRun(runId);
    return this.visible(principal, id);
  }

  async update(
    principal: Principal | null,
    id: string,
    patch: { tags?: unknown; filename?: unknown },
  ): Promise<Asset> {
    await this.visible(principal, id);
    const tags = patch.tags === undefined ? undefined : normaliseTags(patch.tags);
    let filename: string | undefined;
    if (patch.filename !== undefined) {
      if (typeof patch.filename !== 'string')
        throw new AppError('VALIDATION_FAILED', 'filename must be a string.');
      filename = sanitizeFilename(patch.filename);
    }
    const updated = await this.options.catalog.updateAsset(id, { tags, filename }, this.iso());
    if (!updated) throw new AppError('ASSET_NOT_FOUND', `No asset with id ${JSON.stringify(id)}.`);
    return updated;
  }

  /**
   * Deletes an asset: hidden at once, restorable for the grace period, then purged with every blob
   * of every version. `purgeNow` skips the grace period.
   */
  async delete(
    principal: Principal | null,
    id: string,
    options: { purgeNow?: boolean } = {},
  ): Promise<{ purgeAfter: string | null }> {
    const asset = await this.visible(principal, id, { includeDeleted: options.purgeNow === true });
    if (options.purgeNow) {
      await this.purge(asset.id);
      return { purgeAfter: null };
    }
    await this.options.catalog.softDeleteAsset(id, this.iso());
    await this.changed(id);
    return { purgeAfter: new Date(this.now().getTime() + this.options.deleteGraceSec * 1000).toISOString() };
  }

  async restore(principal: Principal | null, id: string): Promise<Asset> {
    const asset = await this.visible(principal, id, { includeDeleted: true });
    if (asset.deletedAt === null) return asset;
    if (asset.mediaId && (await this.options.catalog.findAssetByMediaId(asset.projectId, asset.mediaId))) {
      throw new AppError(
        'UPLOAD_CONFLICT',
        `Another asset now uses media id ${JSON.stringify(asset.mediaId)}; it cannot be restored.`,
      );
    }
    await this.options.catalog.restoreAsset(id, this.iso());
    await this.changed(id);
    return this.visible(principal, id);
  }

  /**
   * Removes the rows first (so nothing points at missing bytes), then every blob: originals and
   * renditions the catalog knows, anything else derived, and the cached /img transforms.
   */
  async purge(id: string): Promise<void> {
    const { keys } = await this.options.catalog.purgeAsset(id);
    await this.changed(id);
    for (const key of keys) await this.options.blobs.delete(key);
    for (const prefix of [derivedPrefix(id), imageCachePrefix(id)]) {
      const found: string[] = [];
      for await (const info of this.options.blobs.list(prefix)) found.push(info.key);
      for (const key of found) await this.options.blobs.delete(key);
    }
    this.options.logger.info({ assetId: id, blobs: keys.length }, 'asset purged');
  }

  /** Purges assets whose grace period is over; returns how many. */
  async purgeExpired(limit = 100): Promise<number> {
    const cutoff = new Date(this.now().getTime() - this.options.deleteGraceSec * 1000).toISOString();
    const due = await this.options.catalog.listAssetsDeletedBefore(cutoff, limit);
    for (const asset of due) {
      try {
        await this.purge(asset.id);
      } catch (err) {
        if (!isAppError(err)) this.options.logger.error({ err, assetId: asset.id }, 'purge failed');
      }
    }
    return due.length;
  }

  /** The stored original of the current version: its blob metadata, and a reader for a range. */
  async original(principal: Principal | null, id: string, version?: number) {
    const asset = await this.visible(principal, id);
    const v = await this.options.catalog.getVersion(id, version ?? asset.versionNumber);
    const info = v ? await this.options.blobs.head(v.originalKey) : undefined;
    if (!v || !info) {
      throw new AppError(
        version === undefined ? 'BLOB_NOT_FOUND' : 'NOT_FOUND',
        `Asset ${id} has no such original.`,
      );
    }
    return {
      asset,
      version: v,
      info,
      open: (range?: ByteRange) => this.options.blobs.get(v.originalKey, range),
    };
  }

  /** A rendition of the current (or a given) version by name (e.g. `thumb.webp`). */
  async rendition(principal: Principal | null, id: string, name: string, version?: number) {
    const asset = await this.visible(principal, id);
    const renditions = await this.options.catalog.listRenditions(id, version ?? asset.versionNumber);
    const rendition = renditions.find((r) => r.name === name);
    const info: BlobInfo | undefined = rendition ? await this.options.blobs.head(rendition.key) : undefined;
    if (!rendition || !info) {
      throw new AppError(
        'NOT_FOUND',
        `Asset ${id} has no rendition ${JSON.stringify(name)}${asset.status === 'processing' ? ' yet' : ''}.`,
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

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
