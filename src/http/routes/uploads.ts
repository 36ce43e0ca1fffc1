import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Container } from '../../container.js';
import { AppError } from '../../errors.js';
import type { RegisterResult } from '../../services/asset-service.js';
import { MAX_PARTS } from '../../services/upload-service.js';
import type { UploadedPart } from '../../storage/blob-store.js';
import { parseS3Location } from '../../storage/s3-location.js';
import { principalOf } from '../auth.js';
import { assetResource } from '../resources.js';

const problem = { $ref: 'Problem#' } as const;

/** Where the client reached us, for absolute part URLs (ASSETPIPE_PUBLIC_URL wins). */
export function baseUrlOf(request: FastifyRequest, publicUrl: string | undefined): string {
  if (publicUrl) return publicUrl;
  const host = request.headers.host ?? 'localhost';
  return `${request.protocol}://${host}`;
}

const startBody = {
  type: 'object',
  properties: {
    filename: { type: 'string', maxLength: 10_000 },
    contentType: { type: 'string', maxLength: 200 },
    type: { type: 'string', maxLength: 200, description: 'Uppy/Companion name of contentType' },
    projectId: { type: 'string', maxLength: 64 },
    mediaId: { type: 'string', maxLength: 128 },
    size: { type: 'integer', minimum: 0 },
    checksum: { type: 'string', maxLength: 100 },
    parts: { type: 'integer', minimum: 1, maximum: MAX_PARTS },
    metadata: { type: 'object', additionalProperties: true },
  },
} as const;

interface StartBody {
  filename?: string;
  contentType?: string;
  type?: string;
  projectId?: string;
  mediaId?: string;
  size?: number;
  checksum?: string;
  parts?: number;
  metadata?: Record<string, unknown>;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** Companion clients (Uppy) send our fields inside `metadata`. */
function startInput(body: StartBody) {
  const meta = body.metadata ?? {};
  return {
    filename: body.filename ?? str(meta.filename) ?? str(meta.name),
    contentType: body.contentType ?? body.type ?? str(meta.contentType) ?? str(meta.type),
    projectId: body.projectId ?? str(meta.projectId),
    mediaId: body.mediaId ?? str(meta.mediaId),
    size: body.size,
    checksum: body.checksum ?? str(meta.checksum),
  };
}

const partsBody = {
  type: 'object',
  properties: {
    parts: {
      type: 'array',
      maxItems: MAX_PARTS,
      items: {
        type: 'object',
        properties: {
          partNumber: { type: 'integer' },
          PartNumber: { type: 'integer' },
          etag: { type: 'string', maxLength: 200 },
          ETag: { type: 'string', maxLength: 200 },
        },
      },
    },
  },
} as const;

type PartsBody = {
  parts?: Array<{ partNumber?: number; PartNumber?: number; etag?: string; ETag?: string }>;
};

function partsFrom(body: PartsBody | undefined) {
  if (!body?.parts) return undefined;
  return body.parts.map((p) => {
    const partNumber = p.partNumber ?? p.PartNumber;
    const etag = p.etag ?? p.ETag;
    if (partNumber === undefined || etag === undefined) {
      throw new AppError('VALIDATION_FAILED', 'Each part needs a partNumber and an etag.');
    }
    return { partNumber, etag };
  });
}

/**
 * Complete's body is optional (no body: every received part), but a POST without one reaches the
 * schema as `undefined`, which `type: object` refuses: treat it as `{}`.
 */
async function noBodyIsEmpty(request: FastifyRequest): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}

function completed(
  result: RegisterResult | { asset: RegisterResult['asset']; outcome: string; duplicateOf: null },
) {
  return { ...assetResource(result.asset), duplicateOf: result.duplicateOf, outcome: result.outcome };
}

/**
 * S3-style multipart uploads, three ways in:
 * - native: `/v1/uploads/multipart` (init, sign, parts, complete, abort);
 * - Uppy's `@uppy/aws-s3` with `endpoint: <server>/v1/uploads` (the Companion protocol);
 * - the original design's single call `POST /uploads/presign` (also under `/v1`).
 * Part URLs are the store's own presigned URLs, or HMAC-signed URLs to `PUT /v1/uploads/parts/...`.
 */
export async function uploadRoutes(app: FastifyInstance, options: { container: Container }): Promise<void> {
  const { uploads, config } = options.container;

  const start = async (request: FastifyRequest<{ Body: StartBody }>) =>
    uploads.startMultipart(principalOf(request), startInput(request.body ?? {}));

  // --- native -------------------------------------------------------------------------------
  app.post<{ Body: StartBody }>(
    '/v1/uploads/multipart',
    {
      schema: {
        summary: 'Start a multipart upload',
        tags: ['uploads'],
        body: startBody,
        response: { 400: problem, 413: problem },
      },
    },
    async (request, reply) => {
      const upload = await start(request);
      return reply.code(201).send({ uploadId: upload.id, key: upload.key, expiresAt: upload.expiresAt });
    },
  );

  app.post<{ Params: { id: string }; Body: { partNumbers: number[] } }>(
    '/v1/uploads/multipart/:id/sign',
    {
      schema: {
        summary: 'Signed URLs to PUT parts to',
        tags: ['uploads'],
        body: {
          type: 'object',
          required: ['partNumbers'],
          properties: {
            partNumbers: { type: 'array', items: { type: 'integer' }, minItems: 1, maxItems: MAX_PARTS },
          },
        },
      },
    },
    async (request) => {
      const signed = await uploads.signParts(
        principalOf(request),
        request.params.id,
        request.body.partNumbers,
        baseUrlOf(request, config.publicUrl),
      );
      return { urls: signed.urls, expiresAt: signed.expiresAt };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/uploads/multipart/:id/parts',
    { schema: { summary: 'Parts received so far', tags: ['uploads'] } },
    async (request) => ({ parts: await uploads.listParts(principalOf(request), request.params.id) }),
  );

  app.post<{ Params: { id: string }; Body: PartsBody }>(
    '/v1/uploads/multipart/:id/complete',
    {
      schema: {
        summary: 'Join the parts into an asset (all received parts when `parts` is omitted)',
        tags: ['uploads'],
        body: partsBody,
      },
      preValidation: noBodyIsEmpty,
    },
    async (request, reply) => {
      const result = await uploads.completeMultipart(
        principalOf(request),
        request.params.id,
        partsFrom(request.body),
      );
      return reply
        .code(result.outcome === 'created' || result.outcome === 'version' ? 201 : 200)
        .send(completed(result));
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/uploads/multipart/:id',
    { schema: { summary: 'Abort: remove the parts', tags: ['uploads'] } },
    async (request, reply) => {
      await uploads.abortMultipart(principalOf(request), request.params.id);
      return reply.code(204).send();
    },
  );

  // --- the original design's one call ---------------------------------------------------------
  for (const url of ['/v1/uploads/presign', '/uploads/presign']) {
    app.post<{ Body: StartBody }>(
      url,
      {
        schema: {
          summary: 'Start a multipart upload and presign N parts in one call',
          tags: ['uploads'],
          body: { ...startBody, required: ['parts'] },
        },
      },
      async (request, reply) => {
        const upload = await start(request);
        const numbers = Array.from({ length: request.body.parts ?? 1 }, (_, i) => i + 1);
        const signed = await uploads.signParts(
          principalOf(request),
          upload.id,
          numbers,
          baseUrlOf(request, config.publicUrl),
        );
        return reply.code(201).send({
          bucket: bucketName(config.storage),
          key: upload.key,
          uploadId: upload.id,
          presignedUrls: numbers.map((n) => signed.urls[n]),
          expiresAt: signed.expiresAt,
          completeUrl: `/v1/uploads/multipart/${upload.id}/complete`,
        });
      },
    );
  }

  // --- Uppy @uppy/aws-s3 (Companion protocol; `key` query parameters are ignored: the id is enough) ----
  app.post<{ Body: StartBody }>(
    '/v1/uploads/s3/multipart',
    { schema: { hide: true, body: startBody } },
    async (request) => {
      const upload = await start(request);
      return { uploadId: upload.id, key: upload.key };
    },
  );
  app.get<{ Params: { id: string }; Querystring: { partNumbers?: string } }>(
    '/v1/uploads/s3/multipart/:id/batch',
    // A GET, but signing part URLs hands out the right to write bytes: `write`, as the native POST.
    { schema: { hide: true }, config: { scope: 'write' } },
    async (request) => {
      const numbers = (request.query.partNumbers ?? '').split(',').filter(Boolean).map(Number);
      const signed = await uploads.signParts(
        principalOf(request),
        request.params.id,
        numbers,
        baseUrlOf(request, config.publicUrl),
      );
      return { presignedUrls: signed.urls };
    },
  );
  app.get<{ Params: { id: string; partNumber: string } }>(
    '/v1/uploads/s3/multipart/:id/:partNumber',
    { schema: { hide: true }, config: { scope: 'write' } },
    async (request) => {
      const n = Number(request.params.partNumber);
      const signed = await uploads.signParts(
        principalOf(request),
        request.params.id,
        [n],
        baseUrlOf(request, config.publicUrl),
      );
      return { url: signed.urls[n], expires: config.presignExpirySec };
    },
  );
  app.get<{ Params: { id: string } }>(
    '/v1/uploads/s3/multipart/:id',
    { schema: { hide: true } },
    async (request) =>
      (await uploads.listParts(principalOf(request), request.params.id)).map((p: UploadedPart) => ({
        PartNumber: p.partNumber,
        Size: p.size,
        ETag: p.etag,
      })),
  );
  app.post<{ Params: { id: string }; Body: PartsBody }>(
    '/v1/uploads/s3/multipart/:id/complete',
    { schema: { hide: true, body: partsBody }, preValidation: noBodyIsEmpty },
    async (request) => {
      const result = await uploads.completeMultipart(
        principalOf(request),
        request.params.id,
        partsFrom(request.body),
      );
      return { location: `/v1/assets/${result.asset.id}`, ...completed(result) };
    },
  );
  app.delete<{ Params: { id: string } }>(
    '/v1/uploads/s3/multipart/:id',
    { schema: { hide: true } },
    async (request) => {
      await uploads.abortMultipart(principalOf(request), request.params.id);
      return {};
    },
  );

  // --- the part PUT target of signed URLs (the signature is the credential) --------------------
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    scope.put<{ Params: { id: string; partNumber: string } }>(
      '/v1/uploads/parts/:id/:partNumber',
      {
        config: { auth: false },
        bodyLimit: Number.MAX_SAFE_INTEGER,
        schema: {
          summary: 'Upload one part (URL from sign/presign; no API key needed)',
          tags: ['uploads'],
          response: { 403: problem },
        },
      },
      async (request, reply) => {
        uploads.verifyPartUrl(request.url);
        const partNumber = Number(request.params.partNumber);
        const declared = Number(request.headers['content-length']);
        // The store destroys a body it refuses; it gets a copy, so the socket survives to carry our answer.
        const body = new PassThrough();
        request.raw.pipe(body);
        let part: UploadedPart;
        try {
          part = await uploads.putPart(request.params.id, partNumber, body, {
            declaredBytes: Number.isFinite(declared) ? declared : undefined,
          });
        } catch (err) {
          // Let the client finish sending (and discard it) so that it reads the problem, then close.
          request.raw.unpipe(body);
          request.raw.resume();
          reply.header('connection', 'close');
          throw err;
        }
        return reply
          .header('etag', part.etag)
          .header('access-control-expose-headers', 'ETag')
          .send({ partNumber, etag: part.etag, size: part.size });
      },
    );
  });
}

/** The `bucket` the seeds' presign answer names: the S3 bucket, or the blob folder's name on disk. */
function bucketName(storage: string): string {
  if (storage.startsWith('s3://')) return parseS3Location(storage).bucket;
  return (
    storage
      .replace(/^file:\/\//, '')
      .split('/')
      .filter(Boolean)
      .pop() ?? 'blobs'
  );
}
