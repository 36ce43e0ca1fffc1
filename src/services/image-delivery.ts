import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { ImgConfig } from '../config.js';
import type { Asset, AssetVersion } from '../domain/asset.js';
import { type ImagePreset, variantName } from '../domain/image-presets.js';
import { type SignatureVerdict, type SigningKey, verifySignedUrl } from '../domain/signing.js';
import type { OutputFormat, TransformLimits, TransformOptions } from '../domain/transform-options.js';
import { AppError } from '../errors.js';
import type { BlobResponse } from '../http/send-blob.js';
import { BoundedQueue, QueueFullError } from '../lib/bounded-queue.js';
import { MemoryCache } from '../lib/memory-cache.js';
import { SingleFlight } from '../lib/single-flight.js';
import { type ImageLimits, type ImageProbe, probeImage } from '../media/image.js';
import {
  CONTENT_TYPES,
  planTransform,
  TransformTimeoutError,
  transformImage,
} from '../media/image-transform.js';
import type { Metrics } from '../metrics.js';
import type { BlobInfo, BlobStore } from '../storage/blob-store.js';
import { imageCachePrefix } from '../storage/keys.js';
import { ImageCache, transformCacheKey } from './image-cache.js';
import {
  cacheControlFor,
  checkAllowLists,
  chooseFormat,
  type ImgUrl,
  needsSourceFacts,
  parseImgUrl,
  transformOptionsOf,
} from './image-request.js';
import { findImageVersion, type ImageCatalog, withLocalFile } from './image-source.js';

interface Located {
  asset: Asset;
  version: AssetVersion;
  visibility: string | undefined;
}

interface Stored {
  info: BlobInfo;
  /** The bytes, when small enough to be kept in memory. */
  bytes?: Buffer | undefined;
}

/** Results are content-addressed by (asset, version, options): they never change. */
export const IMMUTABLE = 'public, max-age=31536000, immutable';
/** How long a client refused by a full transform queue should wait. */
const RETRY_AFTER_SEC = 2;
/** Probes of originals (immutable keys) kept in memory, so negotiation on a hit needs no decode. */
const PROBE_MEMO_SIZE = 1000;
/**
 * Hot results kept in memory, so a popular image is answered without touching the disk: the
 * difference between ~900 and many thousands of requests per second per process. Small results
 * only (thumbnails and page-sized images); larger ones stream from the blob store.
 */
const HOT_BYTES = 64 * 1024 * 1024;
const HOT_ITEM_BYTES = 512 * 1024;
/**
 * Which version an /img URL shows (and its project's visibility) is remembered this long. The cost:
 * a deleted asset, or a new current version for URLs without `v`, is noticed by this process up to
 * this much later (CDNs in front keep what they hold for a year anyway: URLs carry `v`).
 */
const LOOKUP_TTL_MS = 5000;

export interface ImageDeliveryOptions {
  catalog: ImageCatalog;
  blobs: BlobStore;
  metrics: Metrics;
  logger: Logger;
  /** First signs (not used here), all verify. */
  signingKeys: readonly SigningKey[];
  img: ImgConfig;
  presets: readonly ImagePreset[];
  limits: ImageLimits;
  /** Where originals are copied when the store has no local files. */
  scratchDir: string;
  /** Unix seconds. @default the clock */
  now?: () => number;
}

export interface ImageRequest {
  /** The request path as received (still percent-encoded): the signature covers it verbatim. */
  path: string;
  /** The raw query string, without `?`. */
  rawQuery: string;
  accept?: string | undefined;
}

export interface DeliveredImage {
  blob: BlobResponse;
  /** The answer depended on Accept: send `Vary: Accept` (on 304 too). */
  vary: boolean;
  outcome: 'hit' | 'miss' | 'merged';
}

/** The transform queue is full: 503 with `Retry-After`. */
export class TransformQueueFullError extends AppError {
  readonly retryAfterSec = RETRY_AFTER_SEC;
  constructor(cause: QueueFullError) {
    super(
      'UNAVAILABLE',
      `This server is busy with other image transforms (${cause.running} running, ${cause.waiting} waiting); retry in ${RETRY_AFTER_SEC} s.`,
      { cause },
    );
  }
}

const SIGNATURE_PROBLEMS: Record<Exclude<SignatureVerdict, { ok: true }>['reason'], string> = {
  missing:
    'This image URL needs a signature (sig): get a signed URL from POST /v1/img/sign or `assetpipe sign-url`.',
  malformed:
    'The signature parameters (sig, kid, exp) are malformed or repeated; use the URL exactly as it was signed.',
  'unknown-key': 'The URL was signed with a key this server does not accept (kid); sign it again.',
  mismatch:
    'The signature does not match this URL: it was changed after signing, or signed by another server.',
  expired: 'The signed URL has expired (exp); get a new one.',
};

/**
 * `GET /img/...`: checks the URL (options, signature, allow-lists), finds the image, and answers
 * from the eager rendition (presets), the transform cache, or a new transform.
 *
 * A new transform runs once per cache key in this process (single flight: identical concurrent
 * requests wait for the first one and do not take queue slots), inside a bounded queue (at most
 * `concurrency` running and `queueSize` waiting; beyond that 503 with Retry-After), and is stored
 * in the blob store before anyone is answered, so every request streams the same stored bytes.
 * Several API nodes share the blob cache: after the first result is stored every node reads it;
 * until then each node may transform once (the atomic put makes that harmless).
 */
export class ImageDelivery {
  readonly cache: ImageCache;
  private readonly flights = new SingleFlight<Stored & { transformed: boolean }>();
  private readonly hot = new MemoryCache<Stored & { bytes: Buffer }>({
    maxEntries: 100_000,
    maxWeight: HOT_BYTES,
    weigh: (stored) => stored.bytes.length,
  });
  private readonly pendingPuts = new Set<Promise<void>>();
  private readonly lookups = new MemoryCache<Promise<Located>>({ maxEntries: 10_000, ttlMs: LOOKUP_TTL_MS });
  private readonly queue: BoundedQueue;
  private readonly probes = new Map<string, ImageProbe>();
  private readonly now: () => number;
  private readonly outputLimits: TransformLimits;

  constructor(private readonly options: ImageDeliveryOptions) {
    this.cache = new ImageCache(options.blobs);
    this.now = options.now ?? (() => Math.floor(Date.now() / 1000));
    const side = options.img.maxOutputSide;
    this.outputLimits = { maxWidth: side, maxHeight: side };
    this.queue = new BoundedQueue({
      concurrency: options.img.concurrency,
      maxWaiting: options.img.queueSize,
      onChange: (state) => options.metrics.setImgQueue(state),
    });
  }

  /** Transforms running and waiting in this process. */
  get load(): { running: number; waiting: number } {
    return { running: this.queue.running, waiting: this.queue.waiting };
  }

  async deliver(request: ImageRequest): Promise<DeliveredImage> {
    const delivered = await this.answer(request);
    // A URL with `exp` must not be served from a browser's or CDN's cache after it expires.
    const cacheControl = cacheControlFor(request.rawQuery, this.now());
    if (cacheControl === delivered.blob.cacheControl) return delivered;
    return { ...delivered, blob: { ...delivered.blob, cacheControl } };
  }

  private async answer(request: ImageRequest): Promise<DeliveredImage> {
    const { img, presets } = this.options;
    const url = parseImgUrl(request.path, request.rawQuery);
    // Syntax and output limits first: a malformed request is a 400 whoever signed it.
    const { options, preset } = transformOptionsOf(url, presets, this.outputLimits);
    this.checkSignature(url, request);
    const { asset, version, visibility } = await this.locate(url);
    if (!url.signed) {
      if (visibility === 'private') {
        throw new AppError(
          'SIGNATURE_INVALID',
          `Images of private project ${asset.projectId} are only served on signed URLs. ${SIGNATURE_PROBLEMS.missing}`,
        );
      }
      checkAllowLists(url, {
        ...this.outputLimits,
        allowedWidths: img.allowedWidths,
        allowedQualities: img.allowedQualities,
      });
    }

    const source = needsSourceFacts(options)
      ? await this.sourceFacts(version)
      : { hasAlpha: false, format: '' };
    const { format, vary } = chooseFormat(options, preset, request.accept, source);

    if (preset?.formats.includes(format)) {
      const rendition = await this.rendition(version, variantName(preset.name, format), format);
      if (rendition) {
        this.options.metrics.countImgRequest('hit');
        return { blob: rendition, vary, outcome: 'hit' };
      }
      // Not made yet (still processing, or a preset added later): transformed and cached below.
    }

    const key = transformCacheKey(asset.id, version.version, options, format);
    const cached = this.hot.get(key) ?? (await this.readStored(key));
    if (cached) {
      this.options.metrics.countImgRequest('hit');
      return { blob: this.blobResponse(key, cached, format), vary, outcome: 'hit' };
    }
    const flight = this.flights.run(key, () => this.produce(key, version, options, format));
    let result: Stored & { transformed: boolean };
    try {
      result = await flight.result;
    } catch (err) {
      if (err instanceof TransformQueueFullError) this.options.metrics.countImgRequest('rejected');
      throw err;
    }
    const outcome = flight.shared ? 'merged' : result.transformed ? 'miss' : 'hit';
    this.options.metrics.countImgRequest(outcome);
    return { blob: this.blobResponse(key, result, format), vary, outcome };
  }

  /** Forgets every remembered lookup (a project's visibility changed). */
  forgetAllLookups(): void {
    this.lookups.deletePrefix('');
  }

  /** Forgets what this process remembers about where an asset's URLs lead (it changed). */
  forgetLookups(assetId: string): void {
    this.lookups.deletePrefix(`a:${assetId}@`);
    this.lookups.deletePrefix('o:'); // keyed by original key: rare, so drop them all
    this.hot.deletePrefix(imageCachePrefix(assetId));
    this.hot.deletePrefix(`rendition:${assetId}/`);
  }

  /** The asset and version a URL shows, and its project's visibility (remembered briefly). */
  private locate(url: ImgUrl): Promise<Located> {
    const id = url.target.kind === 'asset' ? `a:${url.target.assetId}` : `o:${url.target.key}`;
    const memoKey = `${id}@${url.version ?? ''}`;
    const known = this.lookups.get(memoKey);
    if (known) return known;
    const { catalog } = this.options;
    const lookup = (async () => {
      const found = await findImageVersion(catalog, url.target, url.version);
      const project = await catalog.getProject(found.asset.projectId);
      return { ...found, visibility: project?.visibility };
    })();
    this.lookups.set(memoKey, lookup);
    // Failures (404s, a database hiccup) are not remembered.
    lookup.catch(() => this.lookups.delete(memoKey));
    return lookup;
  }

  /** A stored object's metadata, with its bytes kept in memory when it is small. */
  private async readStored(key: string): Promise<Stored | undefined> {
    const info = await this.cache.head(key);
    if (!info || info.size > HOT_ITEM_BYTES) return info ? { info } : undefined;
    const chunks: Buffer[] = [];
    for await (const chunk of await this.options.blobs.get(key)) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    if (bytes.length !== info.size) return { info }; // replaced while reading: stream it instead
    this.hot.set(key, { info, bytes });
    return { info, bytes };
  }

  /** Deletes the asset's cached transforms (all versions). The purge of an asset should call it. */
  async forgetAsset(assetId: string): Promise<number> {
    await this.flush();
    this.hot.deletePrefix(imageCachePrefix(assetId));
    return this.cache.forgetAsset(assetId);
  }

  private checkSignature(url: ImgUrl, request: ImageRequest): void {
    const signatureNeeded = this.options.img.signature === 'required';
    if (!url.signed && !signatureNeeded) return;
    const target = request.rawQuery === '' ? request.path : `${request.path}?${request.rawQuery}`;
    const verdict = verifySignedUrl(target, { keys: this.options.signingKeys, now: this.now() });
    if (!verdict.ok) throw new AppError('SIGNATURE_INVALID', SIGNATURE_PROBLEMS[verdict.reason]);
  }

  /** The leader's work for one cache key: queue slot, transform, store. */
  private async produce(
    key: string,
    version: AssetVersion,
    options: TransformOptions,
    format: OutputFormat,
  ): Promise<Stored & { transformed: boolean }> {
    // A flight that finished between our cache check and this one may have made it already (its
    // result is hot at once, and in the store once its background write is done).
    const stored = this.hot.get(key) ?? (await this.readStored(key));
    if (stored) return { ...stored, transformed: false };
    try {
      return await this.queue.run(async () => ({
        ...(await this.transform(key, version, options, format)),
        transformed: true,
      }));
    } catch (err) {
      if (err instanceof QueueFullError) throw new TransformQueueFullError(err);
      throw err;
    }
  }

  private async transform(
    key: string,
    version: AssetVersion,
    options: TransformOptions,
    format: OutputFormat,
  ): Promise<Stored> {
    const { blobs, limits, img, metrics, scratchDir, logger } = this.options;
    const output = await withLocalFile(blobs, version.originalKey, scratchDir, async (path) => {
      const probe = await this.probe(version.originalKey, path);
      const plan = planTransform(options, probe, format, this.outputLimits);
      const started = performance.now();
      try {
        const result = await transformImage({ path, probe, plan, limits, timeoutMs: img.timeoutMs });
        metrics.observeImgTransform(format, 'ok', (performance.now() - started) / 1000);
        return result;
      } catch (err) {
        const timedOut = err instanceof TransformTimeoutError;
        metrics.observeImgTransform(
          format,
          timedOut ? 'timeout' : 'failed',
          (performance.now() - started) / 1000,
        );
        if (timedOut) logger.warn({ key, assetId: version.assetId }, 'image transform timed out');
        throw err;
      }
    });
    if (output.data.length > HOT_ITEM_BYTES) {
      return { info: await this.cache.put(key, output.data, output.contentType) };
    }
    // A small result is answered (and kept hot) at once while it is stored in the background: the
    // store's fsyncs then cost no transform slot and no client any time. Until then its ETag is the
    // quoted sha256 of the bytes, which is what the filesystem store reports too.
    const info: BlobInfo = {
      key,
      size: output.data.length,
      etag: `"${createHash('sha256').update(output.data).digest('hex')}"`,
      contentType: output.contentType,
      lastModified: new Date(),
    };
    this.hot.set(key, { info, bytes: output.data });
    const put = this.cache
      .put(key, output.data, output.contentType)
      .then(
        (stored) => {
          // From now on, answer with what the store says (S3: its MD5 ETag), as every other node
          // reading the result does: a revalidation then matches whichever node it reaches.
          if (this.hot.get(key)?.bytes === output.data)
            this.hot.set(key, {
              info: { ...info, ...stored, contentType: info.contentType },
              bytes: output.data,
            });
        },
        (err: unknown) => logger.warn({ err, key }, 'storing an image transform in the cache failed'),
      )
      .finally(() => this.pendingPuts.delete(put));
    this.pendingPuts.add(put);
    return { info, bytes: output.data };
  }

  /** Waits until every result answered so far is in the blob store (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.pendingPuts.size > 0) await Promise.all([...this.pendingPuts]);
  }

  /** Header facts of an original; its key never changes content, so the probe is remembered. */
  private async probe(originalKey: string, path: string): Promise<ImageProbe> {
    const known = this.probes.get(originalKey);
    if (known) return known;
    const probe = await probeImage(path, this.options.limits);
    if (this.probes.size >= PROBE_MEMO_SIZE) {
      const oldest = this.probes.keys().next().value;
      if (oldest !== undefined) this.probes.delete(oldest);
    }
    this.probes.set(originalKey, probe);
    return probe;
  }

  /** Format and alpha for negotiation: from the processed version's facts, else from the header. */
  private async sourceFacts(version: AssetVersion): Promise<{ hasAlpha: boolean; format: string }> {
    const hasAlpha = version.extra.hasAlpha;
    if (version.status === 'ready' && version.format && typeof hasAlpha === 'boolean') {
      return { hasAlpha, format: version.format };
    }
    const { blobs, scratchDir } = this.options;
    return withLocalFile(blobs, version.originalKey, scratchDir, (path) =>
      this.probe(version.originalKey, path),
    );
  }

  private async rendition(
    version: AssetVersion,
    name: string,
    format: OutputFormat,
  ): Promise<BlobResponse | undefined> {
    const hotKey = `rendition:${version.assetId}/v${version.version}/${name}`;
    const hot = this.hot.get(hotKey);
    if (hot) return this.blobResponse(hotKey, hot, format);
    const renditions = await this.options.catalog.listRenditions(version.assetId, version.version);
    const rendition = renditions.find((r) => r.name === name);
    const stored = rendition ? await this.readStored(rendition.key) : undefined;
    if (!rendition || !stored) return undefined;
    if (stored.bytes) this.hot.set(hotKey, { info: stored.info, bytes: stored.bytes });
    return this.blobResponse(rendition.key, stored, format);
  }

  private blobResponse(key: string, stored: Stored, format: OutputFormat): BlobResponse {
    const { info, bytes } = stored;
    return {
      info,
      bytes,
      open: (range) => this.options.blobs.get(key, range),
      contentType: CONTENT_TYPES[format],
      cacheControl: IMMUTABLE,
    };
  }
}
