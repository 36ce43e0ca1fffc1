import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { Container } from '../../src/container.js';
import { startWorkers } from '../../src/workers.js';
import { AUTH } from '../helpers/auth.js';
import { testContainer, waitFor } from '../helpers/container.js';
import { multipart } from '../helpers/form.js';
import { syntheticPhoto } from '../helpers/photos.js';
import { silentWav } from '../helpers/wav.js';

const WIDTH = 480;
const HEIGHT = 360;

/** A photo-like JPEG (quality 90): the same seed gives the same picture. */
async function photo(seed: number): Promise<Buffer> {
  return sharp(syntheticPhoto(seed, WIDTH, HEIGHT), { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

interface SimilarItem {
  distance: number;
  asset: { id: string; projectId: string; perceptualHash: string | null };
}

describe('GET /v1/assets/{id}/similar through the real pipeline', () => {
  let app: FastifyInstance;
  let container: Container;
  let cleanup: () => Promise<void>;
  let stopWorkers: () => Promise<void>;
  /** Asset ids by name, all ready. */
  const ids: Record<string, string> = {};
  let otherProjectKey: string;

  function inject(options: string | InjectOptions, key?: string): Promise<LightMyRequestResponse> {
    const opts: InjectOptions = typeof options === 'string' ? { url: options } : options;
    const auth = key === undefined ? AUTH : { authorization: `Bearer ${key}` };
    return app.inject({ ...opts, headers: { ...auth, ...(opts.headers ?? {}) } });
  }

  async function uploadReady(data: Buffer, projectId: string, name: string): Promise<string> {
    const res = await inject({
      method: 'POST',
      url: '/v1/assets',
      ...multipart({ fields: { projectId }, file: { name, data } }),
    });
    expect(res.statusCode, res.body).toBe(201);
    const id = res.json<{ id: string }>().id;
    const done = await waitFor(
      async () => {
        const asset = (await inject(`/v1/assets/${id}`)).json<{ status: string; error: string | null }>();
        return asset.status !== 'processing' && asset;
      },
      30_000,
      `asset ${name} to finish`,
    );
    expect(done, `${name}: ${done.error}`).toMatchObject({ status: 'ready' });
    return id;
  }

  async function similar(id: string, query = '', key?: string): Promise<LightMyRequestResponse> {
    return inject(`/v1/assets/${id}/similar${query}`, key);
  }

  beforeAll(async () => {
    ({ container, cleanup } = await testContainer({ ASSETPIPE_WORKERS: '2', ASSETPIPE_RATE_LIMIT: '0' }));
    app = await buildApp(container);
    ({ stop: stopWorkers } = startWorkers(container));
    for (const id of ['dupes', 'elsewhere']) await container.projects.create({ id });
    const key = await inject({
      method: 'POST',
      url: '/v1/keys',
      payload: { name: 'elsewhere reader', scopes: ['read'], projectId: 'elsewhere' },
    });
    expect(key.statusCode, key.body).toBe(201);
    otherProjectKey = key.json<{ key: string }>().key;

    const original = await photo(1);
    const files: [string, Promise<Buffer>, string][] = [
      ['original', Promise.resolve(original), 'dupes'],
      ['q30', sharp(original).jpeg({ quality: 30 }).toBuffer(), 'dupes'],
      [
        'half',
        sharp(original)
          .resize(WIDTH / 2, HEIGHT / 2)
          .jpeg({ quality: 90 })
          .toBuffer(),
        'dupes',
      ],
      ['different1', photo(2), 'dupes'],
      ['different2', photo(3), 'dupes'],
      // The same picture in another project must never be listed.
      ['foreignCopy', sharp(original).jpeg({ quality: 80 }).toBuffer(), 'elsewhere'],
    ];
    for (const [name, bytes, projectId] of files) {
      ids[name] = await uploadReady(await bytes, projectId, `${name}.jpg`);
    }
  });

  afterAll(async () => {
    await stopWorkers();
    await app.close();
    await cleanup();
  });

  it('lists the re-encoded and resized copies within 6, nearest first, and no different photo within 10', async () => {
    const asset = (await inject(`/v1/assets/${ids.original}`)).json<{ perceptualHash: string | null }>();
    expect(asset.perceptualHash).toMatch(/^[0-9a-f]{16}$/);

    const res = await similar(ids.original ?? '', '?maxDistance=10');
    expect(res.statusCode, res.body).toBe(200);
    const items = res.json<{ items: SimilarItem[] }>().items;
    expect(items.map((i) => i.asset.id).sort()).toEqual([ids.q30, ids.half].sort());
    for (const item of items) {
      expect(item.distance).toBeLessThanOrEqual(6);
      expect(item.asset.projectId).toBe('dupes');
      expect(item.asset.perceptualHash).toMatch(/^[0-9a-f]{16}$/);
    }
    const distances = items.map((i) => i.distance);
    expect(distances).toEqual([...distances].sort((a, b) => a - b));

    // From a copy: the original and the other copy; from a different photo: nothing within 10.
    const fromCopy = (await similar(ids.q30 ?? '')).json<{ items: SimilarItem[] }>().items;
    expect(fromCopy.map((i) => i.asset.id).sort()).toEqual([ids.original, ids.half].sort());
    for (const name of ['different1', 'different2']) {
      const res = await similar(ids[name] ?? '', '?maxDistance=10');
      expect(res.statusCode).toBe(200);
      expect(res.json().items).toEqual([]);
    }
    // The copy in project "elsewhere" sees only its own project (where it has no twin).
    expect((await similar(ids.foreignCopy ?? '')).json().items).toEqual([]);
  });

  it('limit cuts the list; the default maxDistance is 10', async () => {
    const all = (await similar(ids.original ?? '')).json<{ items: SimilarItem[] }>().items;
    expect(all).toHaveLength(2);
    const one = (await similar(ids.original ?? '', '?limit=1')).json<{ items: SimilarItem[] }>().items;
    expect(one).toEqual([all[0]]);
  });

  it('a key bound to another project gets 404, like for GET /v1/assets/{id}', async () => {
    const res = await similar(ids.original ?? '', '?maxDistance=10', otherProjectKey);
    expect(res.statusCode).toBe(404);
    expect(res.json().code).toBe('ASSET_NOT_FOUND');
    expect((await inject(`/v1/assets/${ids.original}`, otherProjectKey)).statusCode).toBe(404);
    // Its own project's asset is fine.
    expect((await similar(ids.foreignCopy ?? '', '', otherProjectKey)).statusCode).toBe(200);
  });

  it('refuses bad query values with 400 QUERY_INVALID naming the limits', async () => {
    for (const query of [
      '?maxDistance=13',
      '?maxDistance=-1',
      '?maxDistance=abc',
      '?limit=0',
      '?limit=101',
    ]) {
      const res = await similar(ids.original ?? '', query);
      expect(res.statusCode, query).toBe(400);
      expect(res.json().code, query).toBe('QUERY_INVALID');
    }
    expect((await similar(ids.original ?? '', '?maxDistance=13')).json().detail).toContain('12');
    expect((await similar(ids.original ?? '', '?limit=101')).json().detail).toContain('100');
  });

  it('404 for unknown and deleted assets; a deleted copy is no longer listed', async () => {
    expect((await similar('ast_nonexistent')).statusCode).toBe(404);
    const extra = await uploadReady(
      await sharp(await photo(1))
        .webp({ quality: 75 })
        .toBuffer(),
      'dupes',
      'webp-copy.webp',
    );
    const withExtra = (await similar(ids.original ?? '')).json<{ items: SimilarItem[] }>().items;
    expect(withExtra.map((i) => i.asset.id)).toContain(extra);
    expect((await inject({ method: 'DELETE', url: `/v1/assets/${extra}` })).statusCode).toBe(200);
    const res = await similar(extra);
    expect(res.statusCode).toBe(404);
    expect(res.json().code).toBe('ASSET_NOT_FOUND');
    const after = (await similar(ids.original ?? '')).json<{ items: SimilarItem[] }>().items;
    expect(after.map((i) => i.asset.id).sort()).toEqual([ids.q30, ids.half].sort());
  });

  it('422 for an asset that is not an image', async () => {
    const audio = await uploadReady(silentWav(1), 'dupes', 'voice.wav');
    const res = await similar(audio);
    expect(res.statusCode).toBe(422);
    expect(res.json().detail).toContain('images only');
  });
});
