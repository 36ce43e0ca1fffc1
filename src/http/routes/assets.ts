import type { FastifyInstance } from 'fastify';
import type { Container } from '../../container.js';
import type { AssetStatus, MediaType } from '../../domain/asset.js';
import { decodeCursor, encodeCursor } from '../../domain/cursor.js';
import { AppError } from '../../errors.js';
import { type ReceivedUpload, validateProjectId } from '../../services/asset-service.js';
import { assetResource, runResource } from '../resources.js';
import { sendBlob } from '../send-blob.js';

const problem = { $ref: 'Problem#' } as const;
const idParams = {
  type: 'object',
  properties: { id: { type: 'string', maxLength: 64 } },
  required: ['id'],
} as const;

// Multipart bodies carry some framing around the file; allow for it before refusing by Content-Length.
const MULTIPART_OVERHEAD_BYTES = 1024 * 1024;

export async function assetRoutes(app: FastifyInstance, options: { container: Container }): Promise<void> {
  const { assets, config } = options.container;

  app.post<{ Querystring: { projectId?: string } }>(
    '/v1/assets',
    {
      schema: {
        summary: 'Upload a file',
        description:
          'multipart/form-data with a `file` field and optional `projectId` field (or `?projectId=`). The type is decided from the bytes; processing starts at once.',
        tags: ['assets'],
        consumes: ['multipart/form-data'],
        querystring: {
          type: 'object',
          properties: { projectId: { type: 'string', maxLength: 64 } },
        },
        response: { 201: { $ref: 'Asset#' }, 400: problem, 413: problem, 415: problem },
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
      const fields: Record<string, string> = {};
      let received: ReceivedUpload | undefined;
      let filename: string | undefined;
      try {
        for await (const part of request.parts()) {
          if (part.type === 'file') {
            if (part.fieldname !== 'file' || received) {
              part.file.resume(); // not ours: skip its bytes
              continue;
            }
            filename = part.filename;
            received = await assets.receive(part.file);
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
        const projectId = validateProjectId(fields.projectId ?? request.query.projectId);
        const asset = await assets.register(received, { filename, projectId });
        return reply.code(201).header('location', `/v1/assets/${asset.id}`).send(assetResource(asset));
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
      const { projectId, type, status, limit, cursor } = request.query;
      const page = await assets.list({
        projectId: projectId === undefined ? undefined : validateProjectId(projectId),
        type,
        status,
        limit,
        beforeId: cursor === undefined ? undefined : decodeCursor(cursor),
      });
      return {
        items: page.items.map((asset) => assetResource(asset)),
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
      const { asset, renditions } = await assets.get(request.params.id);
      return assetResource(asset, renditions);
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
    async (request) => ({ items: (await assets.runs(request.params.id)).map(runResource) }),
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
      const original = await assets.original(request.params.id);
      return sendBlob(request, reply, {
        info: original.info,
        open: original.open,
        contentType:
          original.asset.mimeType === 'image/svg+xml' ? 'application/octet-stream' : original.asset.mimeType,
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
      summary: 'Download a rendition made by the pipeline (e.g. `thumbnail`)',
      tags: ['assets'],
      params: {
        type: 'object',
        properties: { id: { type: 'string', maxLength: 64 }, name: { type: 'string', maxLength: 64 } },
        required: ['id', 'name'],
      },
      response: { 404: problem, 416: problem },
    },
    handler: async (request, reply) => {
      const found = await assets.rendition(request.params.id, request.params.name);
      return sendBlob(request, reply, {
        info: found.info,
        open: found.open,
        contentType: found.rendition.contentType,
        cacheControl: 'private, max-age=60',
      });
    },
  });
}
