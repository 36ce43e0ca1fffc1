import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Catalog } from '../catalog/catalog.js';
import type { Principal } from '../domain/api-key.js';
import { sanitizeFilename } from '../domain/filename.js';
import { newId } from '../domain/ids.js';
import { type SigningKey, signUrl, verifySignedUrl } from '../domain/signing.js';
import type { UploadSession } from '../domain/upload.js';
import { AppError } from '../errors.js';
import { asOutage, isOutage } from '../lib/outage.js';
import type { BlobStore, UploadedPart } from '../storage/blob-store.js';
import { originalKey } from '../storage/keys.js';
import { type AssetService, parseChecksum, type RegisterResult, validateMediaId } from './asset-service.js';
import type { ProjectService } from './project-service.js';

export const MAX_PARTS = 10_000;

/** A tus upload whose last byte has arrived, as the tus route hands it over. */
export interface FinishedTusUpload {
  /** The tus upload id (also our upload-session id). */
  uploadId: string;
  /** Opens the complete bytes (the tus store's data file, or its S3 object). */
  open: () => Promise<Readable>;
  size: number;
  /** Decoded `Upload-Metadata`: filename, projectId, mediaId, contentType, checksum (`sha256:<hex>`). */
  metadata: Record<string, string | null | undefined>;
  principal: Principal;
}

export interface NewTusUpload {
  uploadId: string;
  /** `Upload-Length`, or undefined with `Upload-Defer-Length`. */
  size: number | undefined;
  metadata: Record<string, string | null | undefined>;
  principal: Principal;
}

export interface StartUploadInput {
  filename?: string | undefined;
  contentType?: string | undefined;
  projectId?: string | undefined;
  mediaId?: string | undefined;
  size?: number | undefined;
  checksum?: string | undefined;
}

export interface UploadServiceOptions {
  catalog: Catalog;
  blobs: BlobStore;
  assets: AssetService;
  projects: ProjectService;
  logger: Logger;
  signingKeys: readonly SigningKey[];
  presignExpirySec: number;
  uploadExpirySec: number;
  now?: () => Date;
}

function partNumberOk(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= MAX_PARTS;
}

/**
 * Uploads that arrive in pieces: S3-style multipart (parts PUT to signed URLs) and tus. Each is an
 * upload session in the catalog, so that completion turns it into an asset exactly once, whichever
 * API node the requests land on.
 */
/** How long a session is given back in the background while the catalog is away. */
const REOPEN_PATIENCE_MS = 10 * 60_000;
/** A completion claimed longer ago than this died with its process (see `claim`). */
const CLAIM_STALE_MS = 60 * 60_000;

export class UploadService {
  /** Sessions this process is still giving back (see `reopen`). */
  private readonly reopening = new Set<string>();

  constructor(private readonly options: UploadServiceOptions) {}

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  private async session(
    principal: Principal | null,
    id: string,
    protocol: UploadSession['protocol'],
  ): Promise<UploadSession> {
    const upload = /^upl_[0-9A-Z]{26}$/.test(id) ? await this.options.catalog.getUpload(id) : undefined;
    if (
      !upload ||
      upload.protocol !== protocol ||
      (principal?.projectId != null && principal.projectId !== upload.projectId)
    ) {
      throw new AppError('UPLOAD_NOT_FOUND', `No ${protocol} upload ${JSON.stringify(id)}.`);
    }
    return upload;
  }

  // --- S3-style multipart -------------------------------------------------------------------

  async startMultipart(principal: Principal, input: StartUploadInput): Promise<UploadSession> {
    const project = await this.options.projects.writable(principal, input.projectId);
    if (input.size !== undefined && (!Number.isSafeInteger(input.size) || input.size < 0)) {
      throw new AppError('VALIDATION_FAILED', 'size must be a whole number of bytes.');
    }
    await this.options.projects.checkIncoming(project, input.size);
    parseChecksum(input.checksum);
    const id = newId('upl');
    const key = originalKey(id);
    const storeUploadId = await this.options.blobs.createMultipart(key, { contentType: input.contentType });
    const now = this.now();
    const session: UploadSession = {
      id,
      protocol: 'multipart',
      projectId: project.id,
      mediaId: validateMediaId(input.mediaId),
      filename: sanitizeFilename(input.filename),
      declaredType: input.contentType?.slice(0, 200) ?? null,
      size: input.size ?? null,
      key,
      storeUploadId,
      checksum: input.checksum ?? null,
      state: 'open',
      assetId: null,
      createdBy: principal.keyId,
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + this.options.uploadExpirySec * 1000).toISOString(),
    };
    await this.options.catalog.createUpload(session);
    return session;
  }

  /** URLs the client PUTs parts to: the store's own presigned URLs, or HMAC-signed URLs to us. */
  async signParts(principal: Principal, uploadId: string, partNumbers: readonly number[], baseUrl: string) {
    const upload = await this.openMultipart(principal, uploadId);
    if (partNumbers.length === 0 || partNumbers.length > MAX_PARTS) {
      throw new AppError('VALIDATION_FAILED', `Ask for 1 to ${MAX_PARTS} part numbers.`);
    }
    const expiresAt = Math.floor(this.now().getTime() / 1000) + this.options.presignExpirySec;
    const urls: Record<number, string> = {};
    for (const n of partNumbers) {
      if (!partNumberOk(n))
        throw new AppError('VALIDATION_FAILED', `Part numbers run from 1 to ${MAX_PARTS}; got ${n}.`);
      urls[n] = this.options.blobs.presignPart
        ? await this.options.blobs.presignPart(
            upload.key,
            upload.storeUploadId!,
            n,
            this.options.presignExpirySec,
          )
        : baseUrl +
          signUrl(`/v1/uploads/parts/${upload.id}/${n}`, { keys: this.options.signingKeys, expiresAt });
    }
    return { upload, urls, expiresAt: new Date(expiresAt * 1000).toISOString() };
  }

  /** Verifies a signed part URL (path + query as received); throws 403 with the reason. */
  verifyPartUrl(pathAndQuery: string): void {
    const verdict = verifySignedUrl(pathAndQuery, {
      keys: this.options.signingKeys,
      now: Math.floor(this.now().getTime() / 1000),
    });
    if (!verdict.ok) {
      const why =
        verdict.reason === 'expired'
          ? 'has expired; ask for a new one'
          : 'is not valid (tampered or not signed by this server)';
      throw new AppError('SIGNATURE_INVALID', `This part URL ${why}.`);
    }
  }

  async putPart(
    uploadId: string,
    partNumber: number,
    body: Readable,
    options: { declaredBytes?: number | undefined } = {},
  ): Promise<UploadedPart> {
    if (!partNumberOk(partNumber)) {
      throw new AppError('VALIDATION_FAILED', `Part numbers run from 1 to ${MAX_PARTS}; got ${partNumber}.`);
    }
    const upload = await this.openMultipart(null, uploadId);
    const project = await this.options.projects.get(upload.projectId);
    // The whole upload, not just this part, must fit the limit (and the declared size, when given):
    // otherwise a client could fill the disk with parts long before completing.
    const limit = Math.min(
      this.options.projects.maxUploadBytes(project),
      upload.size ?? Number.POSITIVE_INFINITY,
    );
    const others = (await this.options.blobs.listParts(upload.key, upload.storeUploadId!))
      .filter((p) => p.partNumber !== partNumber)
      .reduce((sum, p) => sum + p.size, 0);
    if (others + (options.declaredBytes ?? 1) > limit) throw this.options.projects.tooLarge(project);
    return this.options.projects.explainTooLarge(
      project,
      this.options.blobs.putPart(upload.key, upload.storeUploadId!, partNumber, body, {
        maxBytes: Math.max(1, limit - others),
      }),
    );
  }

  async listParts(principal: Principal, uploadId: string): Promise<UploadedPart[]> {
    const upload = await this.openMultipart(principal, uploadId);
    return this.options.blobs.listParts(upload.key, upload.storeUploadId!);
  }

  /**
   * Joins the parts and registers the asset. Exactly one of concurrent calls does the work; a
   * repeat after success answers with the same asset.
   */
  async completeMultipart(
    principal: Principal,
    uploadId: string,
    parts: ReadonlyArray<{ partNumber: number; etag: string }> | undefined,
  ): Promise<
    | RegisterResult
    | { asset: Awaited<ReturnType<AssetService['visible']>>; outcome: 'completed-before'; duplicateOf: null }
  > {
    const upload = await this.session(principal, uploadId, 'multipart');
    if (upload.state === 'completed' && upload.assetId) {
      return {
        asset: await this.options.assets.visible(principal, upload.assetId),
        outcome: 'completed-before',
        duplicateOf: null,
      };
    }
    if (upload.state === 'aborted') throw new AppError('UPLOAD_NOT_FOUND', `Upload ${uploadId} was aborted.`);
    if (upload.expiresAt < this.now().toISOString()) {
      throw new AppError('UPLOAD_NOT_FOUND', `Upload ${uploadId} has expired; start a new one.`);
    }
    if (!(await this.options.catalog.claimUploadCompletion(uploadId, this.claim())))
      this.refuseClaim(uploadId);
    return this.completeClaimed(upload, async () => {
      // A retry after a failure that came after the join finds the object already joined.
      if (!(await this.options.blobs.head(upload.key))) {
        try {
          const listed = parts ?? (await this.options.blobs.listParts(upload.key, upload.storeUploadId!));
          if (listed.length === 0) throw new AppError('VALIDATION_FAILED', 'No parts were uploaded.');
          for (const part of listed) {
            if (!partNumberOk(part.partNumber)) {
              throw new AppError(
                'VALIDATION_FAILED',
                `Part numbers run from 1 to ${MAX_PARTS}; got ${part.partNumber}.`,
              );
            }
          }
          await this.options.blobs.completeMultipart(upload.key, upload.storeUploadId!, listed);
        } catch (err) {
          // A wrong part list joined nothing: the client may fix it and complete again.
          throw err instanceof AppError ? Object.assign(err, { keepSession: true }) : err;
        }
      }
      return this.options.assets.inspectStored(upload.key);
    });
  }

  /**
   * Turns a claimed session into an asset. Failure before the asset exists: a client error (bad
   * bytes, a limit) ends the session and removes its bytes; anything else reopens it for a retry.
   * Once the asset exists, nothing here may delete its bytes.
   */
  private async completeClaimed(
    upload: UploadSession,
    obtain: () => Promise<Awaited<ReturnType<AssetService['inspectStored']>>>,
  ): Promise<RegisterResult> {
    let result: RegisterResult;
    try {
      result = await this.registerSession(upload, await obtain());
    } catch (err) {
      const permanent =
        err instanceof AppError && err.status < 500 && !(err as { keepSession?: boolean }).keepSession;
      if (permanent) {
        await this.options.catalog.abortUpload(upload.id);
        if (upload.key) await this.options.assets.discard(upload);
      } else {
        await this.reopen(upload.id);
      }
      throw err;
    }
    await this.options.catalog.finishUpload(upload.id, result.asset.id).catch((err: unknown) => {
      // The asset exists and owns the bytes; a lost bookkeeping write only costs idempotence.
      this.options.logger.warn(
        { err, uploadId: upload.id, assetId: result.asset.id },
        'could not mark the upload completed',
      );
    });
    return result;
  }

  /**
   * Gives a claimed session back for a retry. When the catalog is away (the very outage that failed
   * the completion), the session would stay `completing` and every retry would be refused, so the
   * reopen is retried in the background until the catalog answers again (up to 10 minutes).
   */
  private async reopen(uploadId: string): Promise<void> {
    try {
      await this.options.catalog.reopenUpload(uploadId);
    } catch (err) {
      if (!isOutage(err)) throw err;
      this.reopening.add(uploadId);
      void (async () => {
        const until = Date.now() + REOPEN_PATIENCE_MS;
        for (let wait = 500; Date.now() < until; wait = Math.min(wait * 2, 5000)) {
          await sleep(wait, undefined, { ref: false });
          try {
            await this.options.catalog.reopenUpload(uploadId);
            break;
          } catch (retryErr) {
            if (!isOutage(retryErr)) {
              this.options.logger.error(
                { err: retryErr, uploadId },
                'could not reopen an upload for a retry',
              );
              break;
            }
          }
        }
        this.reopening.delete(uploadId);
      })();
    }
  }

  /**
   * A completion's claim, timed: one older than `CLAIM_STALE_MS` belongs to a process that died
   * mid-completion (an API node killed), and a retry may take it over. The window is far longer
   * than a completion takes (joining parts and hashing the object), so a live one is never taken.
   */
  private claim(): { at: string; staleBefore: string } {
    const now = this.now().getTime();
    return { at: new Date(now).toISOString(), staleBefore: new Date(now - CLAIM_STALE_MS).toISOString() };
  }

  /** A claim refused because this process is still giving the session back: retry shortly (503). */
  private refuseClaim(uploadId: string): never {
    if (this.reopening.has(uploadId)) {
      throw asOutage(
        new AppError(
          'UNAVAILABLE',
          `Upload ${uploadId} is waiting for the catalog to come back; retry shortly.`,
        ),
      );
    }
    throw new AppError('UPLOAD_CONFLICT', `Upload ${uploadId} is being completed by another request.`);
  }

  async abortMultipart(principal: Principal, uploadId: string): Promise<void> {
    const upload = await this.session(principal, uploadId, 'multipart');
    if (upload.state === 'completed')
      throw new AppError('UPLOAD_CONFLICT', `Upload ${uploadId} is already complete.`);
    await this.options.catalog.abortUpload(uploadId);
    await this.options.blobs.abortMultipart(upload.key, upload.storeUploadId!);
  }

  private async openMultipart(principal: Principal | null, uploadId: string): Promise<UploadSession> {
    const upload = await this.session(principal, uploadId, 'multipart');
    if (upload.state !== 'open') {
      throw new AppError('UPLOAD_NOT_FOUND', `Upload ${uploadId} is ${upload.state}; start a new one.`);
    }
    if (upload.expiresAt < this.now().toISOString()) {
      throw new AppError('UPLOAD_NOT_FOUND', `Upload ${uploadId} has expired; start a new one.`);
    }
    return upload;
  }

  private async registerSession(
    upload: UploadSession,
    received: Awaited<ReturnType<AssetService['inspectStored']>>,
  ): Promise<RegisterResult> {
    const project = await this.options.projects.get(upload.projectId);
    return this.options.assets.register(
      received,
      { project, filename: upload.filename, mediaId: upload.mediaId, checksum: upload.checksum },
      { keepOnOutage: true },
    );
  }

  // --- tus ------------------------------------------------------------------------------------

  /** Validates a new tus upload before its bytes arrive and records it. */
  async startTus(input: NewTusUpload): Promise<void> {
    const meta = input.metadata;
    const project = await this.options.projects.writable(input.principal, meta.projectId ?? undefined);
    await this.options.projects.checkIncoming(project, input.size);
    parseChecksum(meta.checksum);
    const now = this.now();
    await this.options.catalog.createUpload({
      id: input.uploadId,
      protocol: 'tus',
      projectId: project.id,
      mediaId: validateMediaId(meta.mediaId),
      filename: sanitizeFilename(meta.filename ?? meta.name),
      declaredType: (meta.contentType ?? meta.filetype)?.slice(0, 200) ?? null,
      size: input.size ?? null,
      key: '',
      storeUploadId: null,
      checksum: meta.checksum ?? null,
      state: 'open',
      assetId: null,
      createdBy: input.principal.keyId,
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + this.options.uploadExpirySec * 1000).toISOString(),
    });
  }

  /** The last byte arrived: stream the file into the blob store and register it, exactly once. */
  async finishTus(input: FinishedTusUpload): Promise<{ id: string; status: string }> {
    const upload = await this.session(input.principal, input.uploadId, 'tus');
    if (upload.state === 'completed' && upload.assetId) {
      const asset = await this.options.catalog.getAsset(upload.assetId);
      return { id: upload.assetId, status: asset?.status ?? 'processing' };
    }
    if (!(await this.options.catalog.claimUploadCompletion(upload.id, this.claim())))
      this.refuseClaim(upload.id);
    const project = await this.options.projects.get(upload.projectId);
    const result = await this.completeClaimed(upload, async () =>
      this.options.projects.explainTooLarge(
        project,
        this.options.assets.receive(await input.open(), {
          maxBytes: this.options.projects.maxUploadBytes(project),
        }),
      ),
    );
    return { id: result.asset.id, status: result.asset.status };
  }

  /** A tus upload this caller may touch: its project must be the key's (others look absent). */
  async authorizeTus(uploadId: string, principal: Principal): Promise<void> {
    await this.session(principal, uploadId, 'tus');
  }

  async terminateTus(uploadId: string): Promise<void> {
    const upload = await this.options.catalog.getUpload(uploadId);
    // A completion in progress owns the session: it must not be marked aborted under it.
    if (upload && upload.state === 'open') await this.options.catalog.abortUpload(uploadId);
  }

  /** Aborts multipart uploads past their expiry (tus cleans its own files). */
  async expireStale(limit = 100): Promise<number> {
    const stale = await this.options.catalog.listExpiredUploads(
      this.now().toISOString(),
      limit,
      this.claim().staleBefore,
    );
    for (const upload of stale) {
      await this.options.catalog.abortUpload(upload.id);
      if (upload.protocol === 'multipart' && upload.storeUploadId) {
        await this.options.blobs.abortMultipart(upload.key, upload.storeUploadId).catch(() => {});
      }
    }
    return stale.length;
  }
}

/** A fresh id for callers that need one before the session exists (tus names its uploads). */
export function newTusUploadId(): string {
  return newId('upl');
}
