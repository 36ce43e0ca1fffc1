import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { Config } from '../../src/config.js';
import { type SigningKey, signUrl } from '../../src/domain/signing.js';
import { loadSigningKeys } from '../../src/services/signing-keys.js';
import { AUTH } from '../helpers/auth.js';
import { testContainer } from '../helpers/container.js';
import { multipart } from '../helpers/form.js';

// /img regressions: the output size a source's aspect ratio implies, and caching of expiring URLs.

describe('/img output limits and expiring URLs', () => {
  let app: FastifyInstance;
  let config: Config;
  let keys: SigningKey[];
  let cleanup: () => Promise<void>;
  let banner: string;

  beforeAll(async () => {
    const made = await testContainer({
      ASSETPIPE_WORKERS: '0',
      ASSETPIPE_SIGNING_SECRET: 'review-signing-secret-0123456789abcdefghij',
      ASSETPIPE_IMG_MAX_SIDE: '1000',
    });
    config = made.config;
    app = await buildApp(made.container);
    cleanup = async () => {
      await app.close();
      await made.cleanup();
    };
    keys = await loadSigningKeys(config);
    // A 20 x 2000 banner: 40 kP, far under the input limit.
    const data = await sharp({ create: { width: 20, height: 2000, channels: 3, background: '#336699' } })
      .png()
      .toBuffer();
    const form = multipart({ fields: {}, file: { name: 'banner.png', data, contentType: 'image/png' } });
    const res = await app.inject({
      method: 'POST',
      url: '/v1/assets',
      ...form,
      headers: { ...AUTH, ...form.headers },
    });
    expect(res.statusCode, res.body).toBe(201);
    banner = res.json<{ id: string }>().id;
  });
  afterAll(async () => cleanup());

  it.each([
    'w=1000&fit=cover&f=png',
    'w=1000&fit=outside&f=png',
    'w=100&h=100&fit=outside&f=png',
    'f=png&dpr=1',
  ])('%s, whose other side follows a 1:100 aspect ratio past the maximum side, is a 400', async (query) => {
    const res = await app.inject(signUrl(`/img/${banner}?${query}`, { keys }));
    expect(res.statusCode, res.body.slice(0, 300)).toBe(400);
    expect(res.json<{ code: string; detail: string }>()).toMatchObject({
      code: 'TRANSFORM_INVALID',
      detail: expect.stringMatching(/over the output limit of 1000 x 1000/),
    });
  });

  it('still serves what fits (w=5 gives 5 x 500)', async () => {
    const res = await app.inject(signUrl(`/img/${banner}?w=5&f=png`, { keys }));
    expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
    expect(await sharp(res.rawPayload).metadata()).toMatchObject({ width: 5, height: 500 });
  });

  it('lets no cache keep the answer to an expiring URL past its exp', async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const res = await app.inject(signUrl(`/img/${banner}?w=10&f=webp`, { keys, expiresAt: exp }));
    expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
    const maxAge = Number(/max-age=(\d+)/.exec(String(res.headers['cache-control']))?.[1]);
    expect(maxAge).toBeGreaterThan(590);
    expect(maxAge).toBeLessThanOrEqual(600);
    // A URL without exp keeps the year.
    const forever = await app.inject(signUrl(`/img/${banner}?w=10&f=webp`, { keys }));
    expect(forever.headers['cache-control']).toBe('public, max-age=31536000, immutable');
  });
});
