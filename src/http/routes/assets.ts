import type { FastifyInstance } from 'fastify';
import type { Container } from '../../container.js';
import type { AssetStatus, MediaType } from '../../domain/asset.js';
import { decodeCursor, encodeCursor } from '../../domain/cursor.js';
import type { Project } from '../../domain/project.js';
import { AppError } from '../../errors.js';
import type { ReceivedUpload } from '../../services/asset-service.js';
import { validateProjectId } from '../../services/project-service.js';
import { principalOf } from '../auth.js';
import { imageLinker } from '../image-links.js';
import { assetResource, runResource, versionResource } from '../resources.js';
import { sendBlob } from '../send-blob.js';
import { streamLinkDeps, streamLinker } from '../stream-links.js';

const problem = { $ref: 'Problem#' } as const;
const idParams = {
  type: 'object',
  properties: { id: { type: 'string', maxLength: 64 } },
  required: ['id'],
} as const;

// Multipart bodies carry some framing around the file; allow for it before refusing by Content-Length.
const MULTIPART_OVERHEAD_BYTES = 1024 * 1024;

export async function assetRoutes(app: FastifyInstance, options: { container: Container }): Promise<void> {
  const { assets, projects, config } = options.container;

  app.post<{ Querystring: { projectId?: string; mediaId?: string } }>(
    '/v1/assets',
    {
      schema: {
        summary: 'Upload a file',
        description:
          'multipart/form-data with a `file` field and optional `projectId`, `mediaId` (a second upload with the same media id becomes a new version) and `checksum` (`sha256:<hex>`) fields, sent before the file (or as query parameters; `checksum` also as the `X-Checksum-Sha256` header). The type is decided from the bytes; processing starts at once. 201 for a new asset or version; 200 with `duplicateOf` when the project already has these bytes and its duplicate policy is `link`.',
        tags: ['assets'],
        consumes: ['multipart/form-data'],
        querystring: {
          type: 'object',
          properties: {
            projectId: { type: 'string', maxLength: 64 },
            mediaId: { type: 'string', maxLength: 128 },
          },
        },
        response: {
          200: { $ref: 'Asset#' },
          201: { $ref: 'Asset#' },
          429: problem,
          460: problem,
          400: problem,
          401: problem,
          403: problem,
          409: problem,
          413: problem,
          415: problem,
          422: problem,
        },
      },
    },
    async (request, reply) => {
      const declared = Number(request.headers['content-length']);
      if (Number.isFinite(declared) && declared > config.maxUploadBytes + MULTIPART_OVERHEAD_BYTES) {
        throw new AppError(
          'UPLOAD_TOO_LARGE',
          `The upload is ${declared} bytes; this server accepts at most ${config.maxUploadBytes} (ASSETPIPE_MAX_UPLOAD_BYTES).`,
        );
      }
      if (!request.isMultipart()) {
        throw new AppError(
          'CONTENT_TYPE_UNSUPPORTED',
          'Send the file as multipart/form-data in a field named "file".',
        );
      }
      const principal = principalOf(request);
      const fields: Record<string, string> = {};
      let received: ReceivedUpload | undefined;
      let filename: string | undefined;
      let project: Project | undefined;
      try {
        for await (const part of request.parts()) {
          if (part.type === 'file') {
            if (part.fieldname !== 'file' || received) {
              part.file.resume(); // not ours: skip its bytes
              continue;
            }
            filename = part.filename;
            // Fields sent before the file choose the project: check its limits before storing a byte.
            project = await projects.writable(principal, fields.projectId ?? request.query.projectId);
            if (Number.isFinite(declared)) {
              // Content-Length includes the form's framing, so only refuse what must be too big.
              const fileAtLeast = Math.max(0, declared - MULTIPART_OVERHEAD_BYTES);
              if (fileAtLeast > 0) await projects.checkIncoming(project, fileAtLeast);
            }
            received = await projects.explainTooLarge(
              project,
              assets.receive(part.file, { maxBytes: projects.maxUploadBytes(project) }),
            );
          } else if (typeof part.value === 'string') {
            fields[part.fieldname] = part.value;
          }
        }
        if (!received) {
          throw new AppError(
            'FILE_FIELD_MISSING',
            'No file in the request: send it in a multipart field named "file".',
          );
        }
        // The project chosen when the file began (fields after the file cannot move it elsewhere).
        if (!project) throw new AppError('FILE_FIELD_MISSING', 'No file in the request.');
        const upload = received;
        received = undefined; // from here register removes the bytes itself when it refuses them
        const checksumHeader = request.headers['x-checksum-sha256'];
        const result = await assets.register(upload, {
          project,
          filename,
          mediaId: fields.mediaId ?? request.query.mediaId,
          checksum: fields.checksum ?? (typeof checksumHeader === 'string' ? checksumHeader : undefined),
        });
        return reply
          .code(result.outcome === 'duplicate' ? 200 : 201)
          .header('location', `/v1/assets/${result.asset.id}`)
          .send({
            ...assetResource(result.asset),
            duplicateOf: result.duplicateOf ?? result.asset.duplicateOf,
          });
      } catch (err) {
        if (received) await assets.discard(received);
        throw err;
      }
    },
  );

  app.get<{
    Querystring: {
      projectId?: string;
      type?: MediaType;
      status?: AssetStatus;
      mediaId?: string;
      q?: string;
      deleted?: boolean;
      limit: number;
      cursor?: string;
    };
  }>(
    '/v1/assets',
    {
      schema: {
        summary: 'List assets, newest first',
        tags: ['assets'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            projectId: { type: 'string', maxLength: 64 },
            type: { type: 'string', enum: ['image', 'video', 'audio'] },
            status: { type: 'string', enum: ['processing', 'ready', 'failed'] },
            mediaId: { type: 'string', maxLength: 128 },
            q: {
              type: 'string',
              maxLength: 500,
              description: 'Words to find in filename, tags and metadata (prefix match, all words)',
            },
            deleted: { type: 'boolean', description: 'List deleted assets that can still be restored' },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
            cursor: { type: 'string', maxLength: 200 },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              items: { type: 'array', items: { $ref: 'Asset#' } },
              nextCursor: { type: ['string', 'null'] },
            },
          },
          400: problem,
        },
      },
    },
    async (request) => {
      const { projectId, type, status, mediaId, q, deleted, limit, cursor } = request.query;
      const links = imageLinker(options.container);
      const streams = streamLinker(streamLinkDeps(options.container));
      const page = await assets.list(principalOf(request), {
        projectId: projectId === undefined ? undefined : validateProjectId(projectId),
        type,
        status,
        mediaId,
        q: q?.trim() === '' ? undefined : q,
        deleted,
        limit,
        beforeId: cursor === undefined ? undefined : decodeCursor(cursor),
      });
      return {
        items: await Promise.all(
          page.items.map(async (asset) => assetResource(asset, [], await links(asset), await streams(asset))),
        ),
        nextCursor: page.nextBeforeId ? encodeCursor(page.nextBeforeId) : null,
      };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/assets/:id',
    {
      schema: {
        summary: 'Get an asset',
        tags: ['assets'],
        params: idParams,
        response: { 200: { $ref: 'Asset#' }, 404: problem },
      },
    },
    async (request) => {
      const { asset, renditions } = await assets.get(principalOf(request), request.params.id);
      return assetResource(
        asset,
        renditions,
        await imageLinker(options.container)(asset),
        await streamLinker(streamLinkDeps(options.container))(asset),
      );
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/assets/:id/runs',
    {
      schema: {
        summary: 'Processing history: runs with their steps',
        tags: ['assets'],
        params: idParams,
        response: {
          200: { type: 'object', properties: { items: { type: 'array', items: { $ref: 'Run#' } } } },
          404: problem,
        },
      },
    },
    async (request) => ({
      items: (await assets.runs(principalOf(request), request.params.id)).map(runResource),
    }),
  );

  app.route<{ Params: { id: string } }>({
    method: ['GET', 'HEAD'],
    url: '/v1/assets/:id/original',
    schema: {
      summary: 'Download the original bytes (Range, ETag and If-None-Match supported)',
      tags: ['assets'],
      params: idParams,
      response: { 404: problem, 416: problem },
    },
    handler: async (request, reply) => {
      const original = await assets.original(principalOf(request), request.params.id);
      return sendBlob(request, reply, {
        info: original.info,
        open: original.open,
        contentType: original.asset.mimeType,
        // The current version can change (a new upload of the same media), so no immutable caching here.
        cacheControl: 'private, max-age=0, must-revalidate',
        downloadName: original.asset.filename,
      });
    },
  });

  app.route<{ Params: { id: string; name: string } }>({
    method: ['GET', 'HEAD'],
    url: '/v1/assets/:id/renditions/:name',
    schema: {
      summary: 'Download a rendition made by the pipeline (e.g. `thumb.webp`)',
      tags: ['assets'],
      params: {
        type: 'object',
        properties: { id: { type: 'string', maxLength: 64 }, name: { type: 'string', maxLength: 64 } },
        required: ['id', 'name'],
      },
      response: { 404: problem, 416: problem },
    },
    handler: async (request, reply) => {
      const found = await assets.rendition(principalOf(request), request.params.id, request.params.name);
      return sendBlob(request, reply, {
        info: found.info,
        open: found.open,
        contentType: found.rendition.contentType,
        cacheControl: 'private, max-age=60',
      });
    },
  });

  app.get<{ Params: { id: string } }>(
    '/v1/assets/:id/versions',
    {
      schema: {
        summary: 'Every version of the asset, oldest first, with its processing outcome',
        tags: ['assets'],
        params: idParams,
      },
    },
    async (request) => {
      const { asset, versions } = await assets.versions(principalOf(request), request.params.id);
      return { currentVersion: asset.versionNumber, items: versions.map((v) => versionResource(v)) };
    },
  );

  app.post<{ Params: { id: string; version: number } }>(
    '/v1/assets/:id/versions/:version/current',
    {
      schema: {
        summary: 'Make an earlier version current again',
        tags: ['assets'],
        params: {
          type: 'object',
          properties: { id: { type: 'string', maxLength: 64 }, version: { type: 'integer', minimum: 1 } },
          required: ['id', 'version'],
        },
      },
    },
    async (request) =>
      assetResource(
        await assets.setCurrentVersion(principalOf(request), request.params.id, request.params.version),
      ),
  );

  app.route<{ Params: { id: string; version: number } }>({
    method: ['GET', 'HEAD'],
    url: '/v1/assets/:id/versions/:version/original',
    schema: {
      summary: 'The original bytes of any version',
      tags: ['assets'],
      params: {
        type: 'object',
        properties: { id: { type: 'string', maxLength: 64 }, version: { type: 'integer', minimum: 1 } },
        required: ['id', 'version'],
      },
    },
    handler: async (request, reply) => {
      const original = await assets.original(principalOf(request), request.params.id, request.params.version);
      return sendBlob(request, reply, {
        info: original.info,
        open: original.open,
        contentType: original.version.mimeType,
        cacheControl: 'private, max-age=31536000, immutable',
        downloadName: original.version.filename,
      });
    },
  });

  app.patch<{ Params: { id: string }; Body: { tags?: string[]; filename?: string } }>(
    '/v1/assets/:id',
    {
      schema: {
        summary: 'Change tags or the display filename',
        tags: ['assets'],
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            tags: { type: 'array', maxItems: 50, items: { type: 'string', maxLength: 64 } },
            filename: { type: 'string', maxLength: 10_000 },
          },
        },
        response: { 200: { $ref: 'Asset#' }, 400: problem, 404: problem },
      },
    },
    async (request) =>
      assetResource(await assets.update(principalOf(request), request.params.id, request.body ?? {})),
  );

  app.delete<{ Params: { id: string }; Querystring: { purge?: boolean } }>(
    '/v1/assets/:id',
    {
      schema: {
        summary: 'Delete: hidden at once, restorable during the grace period, then purged with all its bytes',
        tags: ['assets'],
        params: idParams,
        querystring: {
          type: 'object',
          properties: { purge: { type: 'boolean', description: 'Remove everything now (admin)' } },
        },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      if (request.query.purge && !principal.scopes.includes('admin')) {
        throw new AppError('FORBIDDEN', 'Purging without a grace period needs the "admin" scope.');
      }
      const result = await assets.delete(principal, request.params.id, {
        purgeNow: request.query.purge === true,
      });
      return { id: request.params.id, deleted: true, purgeAfter: result.purgeAfter };
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/assets/:id/restore',
    { schema: { summary: 'Undo a delete during its grace period', tags: ['assets'], params: idParams } },
    async (request) => assetResource(await assets.restore(principalOf(request), request.params.id)),
  );

  app.post<{ Params: { id: string } }>(
    '/v1/assets/:id/reprocess',
    {
      schema: {
        summary: 'Run the pipeline again on the current version',
        tags: ['assets'],
        params: idParams,
      },
    },
    async (request, reply) =>
      reply.code(202).send(assetResource(await assets.reprocess(principalOf(request), request.params.id))),
  );
}
