import type { FastifyInstance } from 'fastify';
import type { Container } from '../../container.js';
import { checkStreamPackage } from '../../services/stream-check.js';
import { principalOf } from '../auth.js';

const problem = { $ref: 'Problem#' } as const;

export const streamCheckSchema = {
  type: 'object',
  properties: {
    ok: { type: 'boolean', description: 'True when there are no findings' },
    checkedAt: { type: 'string', format: 'date-time' },
    playlists: { type: 'integer', description: 'Playlists read: the master and every media playlist' },
    segments: { type: 'integer', description: 'Media segments the media playlists list' },
    findings: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          code: { type: 'string', description: 'Stable code, e.g. SEGMENT_MISSING, FILE_SIZE_MISMATCH' },
          message: { type: 'string' },
          path: { type: 'string', description: 'The package path of the file concerned' },
        },
        required: ['code', 'message'],
      },
    },
  },
  required: ['ok', 'checkedAt', 'playlists', 'segments', 'findings'],
} as const;

export async function checkRoutes(app: FastifyInstance, options: { container: Container }): Promise<void> {
  const { assets, catalog, blobs, runner } = options.container;

  app.post<{ Params: { id: string } }>(
    '/v1/assets/:id/check',
    {
      // Reads and reports only: a read key may ask.
      config: { scope: 'read' },
      schema: {
        summary: 'Re-validate the stored stream package of a ready video or audio',
        description:
          'Every file of the current version’s package is looked up in the blob store (present, non-empty, of the recorded size), the master and media playlists are parsed from storage and validated as before publishing (durations, bandwidths, CODECS from ffprobe of each rendition). 200 with `ok: false` and findings when something is wrong; 409 `STREAM_UNAVAILABLE` for an asset that is not a ready video or audio.',
        tags: ['assets'],
        params: {
          type: 'object',
          properties: { id: { type: 'string', maxLength: 64 } },
          required: ['id'],
        },
        response: { 200: streamCheckSchema, 401: problem, 403: problem, 404: problem, 409: problem },
      },
    },
    async (request) => {
      const asset = await assets.visible(principalOf(request), request.params.id);
      return checkStreamPackage({ catalog, blobs, scratchDir: runner.scratchRoot }, asset);
    },
  );
}
