import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { ImgConfig } from '../config.js';
import type { AssetVersion } from '../domain/asset.js';
import { type ImagePreset, variantName } from '../domain/image-presets.js';
import { type SignatureVerdict, type SigningKey, verifySignedUrl } from '../domain/signing.js';
import type { OutputFormat, TransformLimits, TransformOptions } from '../domain/transform-options.js';
import { AppError } from '../errors.js';
import type { BlobResponse } from '../http/send-blob.js';
import { BoundedQueue, QueueFullError } from '../lib/bounded-queue.js';
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
import { ImageCache, transformCacheKey } from './image-cache.js';
import {
  checkAllowLists,
  chooseFormat,
  type ImgUrl,
  needsSourceFacts,
  parseImgUrl,
  transformOptionsOf,
} from './image-request.js';
import { findImageVersion, type ImageCatalog, withLocalFile } from './image-source.js';

/** Results are content-addressed by (asset, version, options): they never change. */
export const IMMUTABLE = 'public, max-age=31536000, immutable';
/** How long a client refused by a full transform queue should wait. */
const RETRY_AFTER_SEC = 2;
/** Probes of originals (immutable keys) kept in memory, so negotiation on a hit needs no decode. */
const PROBE_MEMO_SIZE = 1000;

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
  private readonly flights = new SingleFlight<{ info: BlobInfo; transformed: boolean }>();
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
    const { catalog, img, presets } = this.options;
    const url = parseImgUrl(request.path, request.rawQuery);
    // Syntax and output limits first: a malformed request is a 400 whoever signed it.
    const { options, preset } = transformOptionsOf(url, presets, this.outputLimits);
    this.checkSignature(url, request);
    const { asset, version } = await findImageVersion(catalog, url.target, url.version);
    if (!url.signed) {
      const project = await catalog.getProject(asset.projectId);
      if (project?.visibility === 'private') {
        throw new AppError(
          'SIGNATURE_INVALID',
          `Images of private project ${project.id} are only served on signed URLs. ${SIGNATURE_PROBLEMS.missing}`,
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
    const cached = await this.cache.head(key);
    if (cached) {
      this.options.metrics.countImgRequest('hit');
      return { blob: this.blobResponse(key, cached, format), vary, outcome: 'hit' };
    }
    const flight = this.flights.run(key, () => this.produce(key, version, options, format));
    let result: { info: BlobInfo; transformed: boolean };
    try {
      result = await flight.result;
    } catch (err) {
      if (err instanceof TransformQueueFullError) this.options.metrics.countImgRequest('rejected');
      throw err;
    }
    const outcome = flight.shared ? 'merged' : result.transformed ? 'miss' : 'hit';
    this.options.metrics.countImgRequest(outcome);
    return { blob: this.blobResponse(key, result.info, format), vary, outcome };
  }

  /** Deletes the asset's cached transforms (all versions). The purge of an asset should call it. */
  forgetAsset(assetId: string): Promise<number> {
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
  ): Promise<{ info: BlobInfo; transformed: boolean }> {
    // A flight that finished between our cache check and this one may have stored it already.
    const stored = await this.cache.head(key);
    if (stored) return { info: stored, transformed: false };
    try {
      return await this.queue.run(async () => ({
        info: await this.transform(key, version, options, format),
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
  ): Promise<BlobInfo> {
    const { blobs, limits, img, metrics, scratchDir, logger } = this.options;
    const output = await withLocalFile(blobs, version.originalKey, scratchDir, async (path) => {
      const probe = await this.probe(version.originalKey, path);
      const plan = planTransform(options, probe, format);
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
    return this.cache.put(key, output.data, output.contentType);
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
    const renditions = await this.options.catalog.listRenditions(version.assetId, version.version);
    const rendition = renditions.find((r) => r.name === name);
    const info = rendition ? await this.options.blobs.head(rendition.key) : undefined;
    return rendition && info ? this.blobResponse(rendition.key, info, format) : undefined;
  }

  private blobResponse(key: string, info: BlobInfo, format: OutputFormat): BlobResponse {
    return {
      info,
      open: (range) => this.options.blobs.get(key, range),
      contentType: CONTENT_TYPES[format],
      cacheControl: IMMUTABLE,
    };
  }
}
