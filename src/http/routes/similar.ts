import type { FastifyInstance } from 'fastify';
import { MAX_SIMILAR_DISTANCE, MAX_SIMILAR_LIMIT } from '../../catalog/catalog.js';
import type { Container } from '../../container.js';
import type { Asset } from '../../domain/asset.js';
import { AppError } from '../../errors.js';
import { principalOf } from '../auth.js';
import { assetResource } from '../resources.js';

const problem = { $ref: 'Problem#' } as const;

/** @default 10 (a re-encoded or resized copy stays within 6; different photos are further than 10) */
export const DEFAULT_MAX_DISTANCE = 10;
/** @default 20 */
export const DEFAULT_SIMILAR_LIMIT = 20;

/**
 * Why `asset` cannot be searched from, or `undefined` when it can: only a processed image has a
 * perceptual hash. Not an image -> 422 (nothing will change that); not hashed yet -> 409 (it will be,
 * once processing ends or after a reprocess).
 */
export function similarityProblem(asset: Asset): AppError | undefined {
  const name = `Asset ${asset.id}`;
  if (asset.type !== 'image') {
    return new AppError(
      'NOT_AN_IMAGE',
      `${name} is ${asset.type === 'audio' ? 'an audio file' : 'a video'}; near-duplicate search compares images only.`,
    );
  }
  if (asset.perceptualHash !== null && asset.status === 'ready') return undefined;
  const why =
    asset.status === 'processing'
      ? 'is still being processed; retry when its status is "ready"'
      : asset.status === 'failed'
        ? `failed processing (${asset.error ?? 'no reason recorded'}); fix the file or reprocess it (POST /v1/assets/${asset.id}/reprocess)`
        : `was processed before perceptual hashes existed; reprocess it (POST /v1/assets/${asset.id}/reprocess)`;
  return new AppError('HASH_UNAVAILABLE', `${name} has no perceptual hash yet: it ${why}.`);
}

export async function similarRoutes(app: FastifyInstance, options: { container: Container }): Promise<void> {
  const { assets, catalog } = options.container;

  app.get<{ Params: { id: string }; Querystring: { maxDistance: number; limit: number } }>(
    '/v1/assets/:id/similar',
    {
      schema: {
        summary: 'Near-duplicate images of this one in its project, nearest first',
        description: `Images of the same project whose 64-bit perceptual hash (DCT pHash) differs from this image's in at most \`maxDistance\` bits, nearest first (equal distances by id). Re-encoded, resized or format-converted copies of a photo are typically within 6; different photos are usually more than 10 apart. Deleted and not yet processed assets are left out. \`maxDistance\` is capped at ${MAX_SIMILAR_DISTANCE}: the index answers that in a few index look-ups per band even for millions of images, and beyond it unrelated pictures start to match. 409 while the asset has no perceptual hash yet, 422 for a video or audio asset.`,
        tags: ['assets'],
        params: {
          type: 'object',
          properties: { id: { type: 'string', maxLength: 64 } },
          required: ['id'],
        },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            maxDistance: {
              type: 'integer',
              minimum: 0,
              maximum: MAX_SIMILAR_DISTANCE,
              default: DEFAULT_MAX_DISTANCE,
              description: `Largest Hamming distance (bits of 64) to list, 0-${MAX_SIMILAR_DISTANCE}`,
            },
            limit: {
              type: 'integer',
              minimum: 1,
              maximum: MAX_SIMILAR_LIMIT,
              default: DEFAULT_SIMILAR_LIMIT,
              description: `Most images to list, 1-${MAX_SIMILAR_LIMIT}`,
            },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              items: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    distance: { type: 'integer', minimum: 0, maximum: 64 },
                    asset: { $ref: 'Asset#' },
                  },
                },
              },
            },
          },
          400: problem,
          404: problem,
          409: problem,
          422: problem,
        },
      },
    },
    async (request) => {
      // The same visibility as GET /v1/assets/{id}: unknown, deleted or another project's -> 404.
      const asset = await assets.visible(principalOf(request), request.params.id);
      const unavailable = similarityProblem(asset);
      if (unavailable) throw unavailable;
      const { maxDistance, limit } = request.query;
      const found = await catalog.findSimilar(asset.id, { maxDistance, limit });
      // Purged between the two reads.
      if (found === undefined) {
        throw new AppError('ASSET_NOT_FOUND', `No asset with id ${JSON.stringify(asset.id)}.`);
      }
      return { items: found.map((s) => ({ distance: s.distance, asset: assetResource(s.asset) })) };
    },
  );
}
