import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Container } from '../../container.js';
import { StreamDelivery } from '../../services/stream-delivery.js';
import { sendBlob } from '../send-blob.js';

const problem = { $ref: 'Problem#' } as const;
const binary = { type: 'string', format: 'binary' } as const;
const URL_PATTERN = '/stream/:assetId/:version/:token/*';

/**
 * Players fetch segments from the page's origin with XHR/fetch (hls.js, dash.js, Shaka), so every
 * answer, problems included (the player should see the 403, not a CORS failure), allows any origin
 * and lets the script read the headers it needs for byte ranges.
 */
function allowAnyOrigin(reply: FastifyReply): void {
  reply.header('access-control-allow-origin', '*');
  reply.header('access-control-expose-headers', 'Content-Length, Content-Range, Accept-Ranges, ETag');
}

/**
 * Stream delivery: `GET|HEAD /stream/{assetId}/{version}/{token}/{path}`. Public (no API key): the
 * token in the path is the authorisation, and players resolve every playlist URI relative to it.
 */
export async function streamRoutes(app: FastifyInstance, options: { container: Container }): Promise<void> {
  const { catalog, blobs, signingKeys } = options.container;
  const delivery = new StreamDelivery({ catalog, blobs, signingKeys });

  const params = {
    type: 'object',
    properties: {
      assetId: { type: 'string', description: 'The asset id' },
      version: { type: 'string', description: 'The version number the token was made for' },
      token: { type: 'string', description: 'Stream token: `<kid>.<exp or x>.<signature>`' },
      '*': {
        type: 'string',
        description:
          'Path inside the package: `master.m3u8`, `manifest.mpd`, `<rung>/index.m3u8`, `<rung>/seg-00000.m4s`, `poster.jpg`, `storyboard.vtt`…',
      },
    },
    required: ['assetId', 'version', 'token', '*'],
  } as const;

  app.route({
    method: ['GET', 'HEAD'],
    url: URL_PATTERN,
    schema: {
      summary: 'A file of a video or audio stream package (HLS, DASH, poster, storyboard)',
      description:
        'The URLs come from the asset record (`stream` links); one token opens every file of one version. Range, ETag/If-None-Match and HEAD are supported; any origin may read it (CORS). Playlists, the MPD and the VTT are cached for 60 s, everything else is immutable; for private projects `private` and never past the token’s expiry. 403 `STREAM_TOKEN_INVALID` says why a token was refused.',
      tags: ['delivery'],
      security: [],
      params,
      response: {
        200: { description: 'The file', content: { '*/*': { schema: binary } } },
        206: { description: 'The requested byte range', content: { '*/*': { schema: binary } } },
        304: { description: 'Not modified (If-None-Match)', type: 'null' },
        400: problem,
        403: problem,
        404: problem,
        416: problem,
      },
    },
    onRequest: async (_request, reply) => allowAnyOrigin(reply),
    handler: async (request, reply) => {
      const mark = request.url.indexOf('?');
      const blob = await delivery.deliver(mark < 0 ? request.url : request.url.slice(0, mark));
      return sendBlob(request, reply, blob);
    },
  });

  // A Range header outside the CORS-safelisted form (several ranges, a suffix range in older
  // browsers) makes the browser ask first.
  app.route({
    method: 'OPTIONS',
    url: URL_PATTERN,
    schema: {
      summary: 'CORS preflight for stream files',
      tags: ['delivery'],
      security: [],
      params,
      response: { 204: { description: 'Any origin may GET or HEAD with Range', type: 'null' } },
    },
    handler: async (_request, reply) => {
      allowAnyOrigin(reply);
      reply.header('access-control-allow-methods', 'GET, HEAD, OPTIONS');
      reply.header('access-control-allow-headers', 'Range, If-None-Match, If-Modified-Since');
      reply.header('access-control-max-age', '86400');
      return reply.code(204).send();
    },
  });
}
