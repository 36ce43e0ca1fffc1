import type { FastifyInstance } from 'fastify';
import type { Container } from '../../container.js';
import { MAX_EXPIRES_IN_SEC } from '../../services/image-urls.js';
import { principalOf } from '../auth.js';
import { baseUrlOf } from './uploads.js';

const problem = { $ref: 'Problem#' } as const;

/** `POST /v1/img/sign`: a signed `/img` URL for an asset the caller's key may see. */
export async function imgSignRoutes(app: FastifyInstance, options: { container: Container }): Promise<void> {
  const { imageUrls, config } = options.container;
  app.post<{ Body: { path: string; expiresIn?: number } }>(
    '/v1/img/sign',
    {
      // Signing gives read access to an image the key can already read.
      config: { scope: 'read' },
      schema: {
        summary: 'Sign an /img URL',
        description:
          'Checks the transform query and that the asset belongs to a project this key may see, adds `v` (the current version) when missing, and signs it; `expiresIn` (seconds) adds `exp`.',
        tags: ['images'],
        body: {
          type: 'object',
          required: ['path'],
          additionalProperties: false,
          properties: {
            path: {
              type: 'string',
              minLength: 1,
              maxLength: 4096,
              description: 'e.g. /img/ast_…?w=400&f=webp',
            },
            expiresIn: { type: 'integer', minimum: 1, maximum: MAX_EXPIRES_IN_SEC },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: { url: { type: 'string' }, expiresAt: { type: ['string', 'null'] } },
            required: ['url', 'expiresAt'],
          },
          400: problem,
          401: problem,
          403: problem,
          404: problem,
        },
      },
    },
    async (request) =>
      imageUrls.sign(principalOf(request), request.body.path, {
        expiresInSec: request.body.expiresIn,
        baseUrl: baseUrlOf(request, config.publicUrl),
      }),
  );
}
