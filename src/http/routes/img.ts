import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Container } from '../../container.js';
import { TransformQueueFullError } from '../../services/image-delivery.js';
import { sendBlob } from '../send-blob.js';

const problem = { $ref: 'Problem#' } as const;

/**
 * The query, for the documentation only: the service reads the raw query itself (a repeated or
 * unknown parameter is a TRANSFORM_INVALID problem, and the signature covers the raw form), so no
 * property has a type that the validator could coerce or refuse first.
 */
export const imgQuerystring = {
  type: 'object',
  properties: {
    w: { description: 'Width in CSS pixels (multiplied by dpr); unsigned URLs: one of ASSETPIPE_IMG_WIDTHS' },
    h: { description: 'Height in CSS pixels (multiplied by dpr)' },
    fit: { description: 'cover (default with w and h), contain, fill, inside (default otherwise), outside' },
    pos: {
      description:
        'Crop position for cover/contain: center, north … northwest (or c, n, ne …), attention, entropy, or a focus point fp:x,y (0..1)',
    },
    q: { description: 'Quality 1-100; unsigned URLs: one of ASSETPIPE_IMG_QUALITIES' },
    f: {
      description:
        'webp, avif, jpeg, png, or auto (from Accept, with Vary: Accept); default: the source format',
    },
    dpr: { description: 'Device pixel ratio 1-4' },
    blur: { description: 'Gaussian blur sigma 0.3-1000' },
    bg: { description: 'Background hex colour (rgb, rrggbb, rrggbbaa) for transparency and contain' },
    anim: { description: '1 keeps the animation of an animated GIF/WebP (WebP output only)' },
    v: { description: 'Version number; default the current version (generated URLs always carry it)' },
    preset: { description: 'An eager preset (e.g. thumb); only f may accompany it' },
    sig: { description: 'Signature (HMAC-SHA256, base64url)' },
    kid: { description: 'Id of the signing key' },
    exp: { description: 'Expiry, unix seconds' },
  },
} as const;

const responses = {
  200: { description: 'The image', content: { 'image/*': { schema: { type: 'string', format: 'binary' } } } },
  400: problem,
  403: problem,
  404: problem,
  416: problem,
  422: problem,
  503: problem,
} as const;

/**
 * On-demand image transforms: `GET /img/{assetId}?w=…` and `GET /img/originals/{uploadId}?…`.
 * Public (no API key): a valid signature is the authorisation where one is needed.
 */
export async function imgRoutes(app: FastifyInstance, options: { container: Container }): Promise<void> {
  const { images } = options.container;

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const mark = request.url.indexOf('?');
    try {
      const delivered = await images.deliver({
        path: mark < 0 ? request.url : request.url.slice(0, mark),
        rawQuery: mark < 0 ? '' : request.url.slice(mark + 1),
        accept: request.headers.accept,
      });
      if (delivered.vary) reply.header('vary', 'Accept');
      return await sendBlob(request, reply, delivered.blob);
    } catch (err) {
      if (err instanceof TransformQueueFullError) reply.header('retry-after', String(err.retryAfterSec));
      throw err;
    }
  };

  const description =
    'Resized, cropped and re-encoded on first request, then served from the cache with `Cache-Control: public, max-age=31536000, immutable`, a strong ETag and 304s. Signed URLs come from `POST /v1/img/sign` or `assetpipe sign-url`; whether unsigned URLs are served is ASSETPIPE_IMG_SIGNATURE (private projects always need a signature). 503 with Retry-After when the transform queue is full.';
  app.route({
    method: ['GET', 'HEAD'],
    url: '/img/:assetId',
    schema: {
      summary: 'Transform an image asset on demand',
      description,
      tags: ['images'],
      security: [],
      params: {
        type: 'object',
        properties: { assetId: { type: 'string', maxLength: 200 } },
        required: ['assetId'],
      },
      querystring: imgQuerystring,
      response: responses,
    },
    handler,
  });
  app.route({
    method: ['GET', 'HEAD'],
    url: '/img/originals/:uploadId',
    schema: {
      summary: "Transform an image by its original's storage key (the original design's form)",
      description,
      tags: ['images'],
      security: [],
      params: {
        type: 'object',
        properties: { uploadId: { type: 'string', maxLength: 200 } },
        required: ['uploadId'],
      },
      querystring: imgQuerystring,
      response: responses,
    },
    handler,
  });
}
