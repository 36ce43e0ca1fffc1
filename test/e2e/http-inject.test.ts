import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { Container } from '../../src/container.js';
import { startWorkers } from '../../src/workers.js';
import { AUTH } from '../helpers/auth.js';
import { testContainer, waitFor } from '../helpers/container.js';
import { multipart } from '../helpers/form.js';
import { makeJpeg } from '../helpers/images.js';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

describe('HTTP API in process', () => {
  let app: FastifyInstance;
  let container: Container;
  let dataDir: string;
  let cleanup: () => Promise<void>;
  let stopWorkers: () => Promise<void>;
  let jpeg: Buffer;

  /** `app.inject` with the admin key, unless the test sets its own authorization. */
  function inject(options: string | InjectOptions): Promise<LightMyRequestResponse> {
    const opts: InjectOptions = typeof options === 'string' ? { url: options } : options;
    return app.inject({ ...opts, headers: { ...AUTH, ...(opts.headers ?? {}) } });
  }

  beforeAll(async () => {
    ({ container, dataDir, cleanup } = await testContainer({
      ASSETPIPE_MAX_UPLOAD_BYTES: '256KiB',
      ASSETPIPE_WORKERS: '2',
    }));
    app = await buildApp(container);
    ({ stop: stopWorkers } = startWorkers(container));
    jpeg = await makeJpeg({ width: 300, height: 200 });
    for (const id of ['paging', 'ranges']) await container.projects.create({ id });
  });
  afterAll(async () => {
    await stopWorkers();
    await app.close();
    await cleanup();
  });

  async function upload(data: Buffer, name = 'photo.jpg', fields: Record<string, string> = {}) {
    const form = multipart({ fields, file: { name, data, contentType: 'image/jpeg' } });
    return inject({ method: 'POST', url: '/v1/assets', ...form });
  }

  async function uploadReady(data: Buffer, fields: Record<string, string> = {}) {
    const res = await upload(data, 'photo.jpg', fields);
    expect(res.statusCode).toBe(201);
    const id = res.json<{ id: string }>().id;
    return waitFor(
      async () => {
        const asset = (await inject(`/v1/assets/${id}`)).json<{ status: string; id: string }>();
        return asset.status !== 'processing' && asset;
      },
      20_000,
      `asset ${id} to finish`,
    );
  }

  it('uploads, processes and describes an image', async () => {
    const res = await upload(jpeg);
    expect(res.statusCode).toBe(201);
    const created = res.json();
    expect(res.headers.location).toBe(`/v1/assets/${created.id}`);
    expect(created).toMatchObject({
      status: 'processing',
      type: 'image',
      mimeType: 'image/jpeg',
      size: jpeg.length,
      versionNumber: 1,
    });

    const ready = await uploadReady(await makeJpeg({ width: 300, height: 200, seed: 2 }));
    const asset = (await inject(`/v1/assets/${ready.id}`)).json();
    expect(asset).toMatchObject({ status: 'ready', width: 300, height: 200, format: 'jpeg' });
    expect(asset.blurhash).toHaveLength(28);
    // The default presets (thumb=320:webp;preview=1280:webp+avif); a 300x200 image is never enlarged.
    expect(asset.renditions).toHaveLength(3);
    expect(asset.renditions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'thumb.webp', contentType: 'image/webp', width: 300, height: 200 }),
        expect.objectContaining({ name: 'preview.webp', contentType: 'image/webp', width: 300, height: 200 }),
        expect.objectContaining({ name: 'preview.avif', contentType: 'image/avif', width: 300, height: 200 }),
      ]),
    );
    for (const rendition of asset.renditions as { name: string; url: string; contentType: string }[]) {
      const res = await inject(rendition.url);
      expect(res.statusCode, rendition.name).toBe(200);
      expect(res.headers['content-type'], rendition.name).toBe(rendition.contentType);
    }
  });

  it('puts image facts, variants with signed /img URLs and a srcset on the record', async () => {
    await container.projects.create({ id: 'hidden', visibility: 'private' });
    const ready = await uploadReady(await makeJpeg({ width: 640, height: 480, seed: 7 }));
    const asset = (await inject(`/v1/assets/${ready.id}`)).json();
    expect(asset).toMatchObject({
      hasAlpha: false,
      animated: false,
      frames: 1,
      colorSpace: 'srgb',
      exif: null,
    });
    expect(asset.dominantColor).toMatch(/^#[0-9a-f]{6}$/);
    expect(asset.perceptualHash).toMatch(/^[0-9a-f]{16}$/);
    expect(typeof asset.thumbhash).toBe('string');
    expect(asset.lqip).toMatch(/^data:image\/webp;base64,/);

    const variants = asset.variants as { name: string; width: number; src: string; contentType: string }[];
    expect(variants.map((v) => v.name).sort()).toEqual(['preview.avif', 'preview.webp', 'thumb.webp']);
    for (const variant of variants) {
      expect(variant.src, variant.name).toContain(`/img/${asset.id}?`);
      expect(variant.src, variant.name).not.toContain('exp=');
      // The /img URL needs no API key: the signature is the authorisation.
      const res = await app.inject(variant.src);
      expect(res.statusCode, variant.name).toBe(200);
      expect(res.headers['content-type'], variant.name).toBe(variant.contentType);
    }
    const thumb = variants.find((v) => v.name === 'thumb.webp');
    const preview = variants.find((v) => v.name === 'preview.webp');
    expect(asset.srcset).toBe(`${thumb?.src} 320w, ${preview?.src} 640w`);
    const listed = (await inject('/v1/assets?limit=100'))
      .json()
      .items.find((a: { id: string }) => a.id === ready.id);
    expect(listed.srcset).toBe(asset.srcset);

    // A private project's URLs expire (at the end of the next UTC day).
    const hidden = await uploadReady(await makeJpeg({ width: 64, height: 64, seed: 8 }), {
      projectId: 'hidden',
    });
    const record = (await inject(`/v1/assets/${hidden.id}`)).json();
    const src = new URL(record.variants[0].src, 'http://x');
    const exp = Number(src.searchParams.get('exp'));
    expect(exp % 86400).toBe(0);
    expect(exp - Date.now() / 1000).toBeGreaterThan(86400);
    expect(exp - Date.now() / 1000).toBeLessThanOrEqual(2 * 86400);
    expect((await app.inject(record.variants[0].src)).statusCode).toBe(200);
  });

  it('serves the original with ETag, 304, Range and HEAD', async () => {
    const { id } = await uploadReady(jpeg, { projectId: 'ranges' });
    const full = await inject(`/v1/assets/${id}/original`);
    expect(full.statusCode).toBe(200);
    expect(full.rawPayload.equals(jpeg)).toBe(true);
    const etag = full.headers.etag as string;
    expect(etag).toMatch(/^"/);

    const notModified = await inject({
      url: `/v1/assets/${id}/original`,
      headers: { 'if-none-match': etag },
    });
    expect(notModified.statusCode).toBe(304);
    expect(notModified.rawPayload.length).toBe(0);

    const partial = await inject({ url: `/v1/assets/${id}/original`, headers: { range: 'bytes=10-19' } });
    expect(partial.statusCode).toBe(206);
    expect(partial.headers['content-range']).toBe(`bytes 10-19/${jpeg.length}`);
    expect(partial.rawPayload.equals(jpeg.subarray(10, 20))).toBe(true);

    const tooFar = await inject({
      url: `/v1/assets/${id}/original`,
      headers: { range: `bytes=${jpeg.length}-` },
    });
    expect(tooFar.statusCode).toBe(416);
    expect(tooFar.json().code).toBe('RANGE_NOT_SATISFIABLE');
    expect(tooFar.headers['content-range']).toBe(`bytes */${jpeg.length}`);

    const head = await inject({ method: 'HEAD', url: `/v1/assets/${id}/original` });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe(String(jpeg.length));
    expect(head.rawPayload.length).toBe(0);
  });

  it('pages through a project with cursors, newest first, without gaps', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const res = await upload(await makeJpeg({ seed: i + 10, width: 64, height: 48 }), `p${i}.jpg`, {
        projectId: 'paging',
      });
      ids.push(res.json().id);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `&cursor=${cursor}` : '';
      const page = (await inject(`/v1/assets?projectId=paging&limit=3${query}`)).json();
      seen.push(...page.items.map((a: { id: string }) => a.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());

    const images = (await inject('/v1/assets?projectId=paging&type=video')).json();
    expect(images.items).toEqual([]);
  });

  it('refuses what it cannot process without storing a byte', async () => {
    // Workers of earlier tests must be done writing, so that blobs/tmp only shows this test's leftovers.
    await waitFor(
      async () => (await container.catalog.countAssetsByStatus()).processing === 0,
      20_000,
      'earlier uploads to finish',
    );
    const originals = async () => {
      const keys: string[] = [];
      for await (const info of container.blobs.list('originals/')) keys.push(info.key);
      return keys;
    };
    const before = await originals();
    const cases = [
      [await upload(Buffer.from('just some text, not a picture'), 'photo.jpg'), 415, 'MEDIA_UNSUPPORTED'],
      [await upload(Buffer.alloc(0), 'empty.jpg'), 400, 'FILE_EMPTY'],
      [await upload(Buffer.concat([jpeg, Buffer.alloc(300 * 1024)]), 'big.jpg'), 413, 'UPLOAD_TOO_LARGE'],
      [await upload(jpeg, 'photo.jpg', { projectId: '../etc' }), 400, 'PROJECT_INVALID'],
      [
        await inject({ method: 'POST', url: '/v1/assets', ...multipart({ fields: { projectId: 'x' } }) }),
        400,
        'FILE_FIELD_MISSING',
      ],
      [
        await inject({ method: 'POST', url: '/v1/assets', payload: { file: 'x' } }),
        415,
        'CONTENT_TYPE_UNSUPPORTED',
      ],
    ] as const;
    for (const [res, status, code] of cases) {
      expect(res.statusCode, code).toBe(status);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json()).toMatchObject({
        status,
        code,
        title: expect.any(String),
        detail: expect.any(String),
        type: expect.any(String),
      });
    }
    expect(await originals()).toEqual(before);
    // and no temporary file of a refused upload is left behind
    expect((await filesUnder(join(dataDir, 'blobs'))).filter((f) => f.includes('/blobs/tmp/'))).toEqual([]);
  });

  it.each([
    ['/v1/assets?limit=abc', 400, 'QUERY_INVALID'],
    ['/v1/assets?limit=0', 400, 'QUERY_INVALID'],
    ['/v1/assets?limit=1&limit=2', 400, 'QUERY_INVALID'],
    ['/v1/assets?status=bogus', 400, 'QUERY_INVALID'],
    ['/v1/assets?cursor=%%%', 400, 'CURSOR_INVALID'],
    ['/v1/assets?cursor=abc', 400, 'CURSOR_INVALID'],
    ['/v1/assets/%E0%A4%A', 400, 'URL_INVALID'],
    ['/v1/assets/ast_01ARZ3NDEKTSV4RRFFQ69G5FAV', 404, 'ASSET_NOT_FOUND'],
    ['/v1/assets/nope/runs', 404, 'ASSET_NOT_FOUND'],
    ['/v1/assets/nope/original', 404, 'ASSET_NOT_FOUND'],
    ['/no/such/route', 404, 'ROUTE_NOT_FOUND'],
  ])('GET %s -> %d %s', async (url, status, code) => {
    const res = await inject(url);
    expect(res.statusCode).toBe(status);
    expect(res.json()).toMatchObject({ status, code });
  });

  it('serves OpenAPI at /docs and the UI page at /', async () => {
    const doc = (await inject('/docs/json')).json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v1/assets',
        '/v1/assets/{id}',
        '/v1/assets/{id}/runs',
        '/v1/assets/{id}/original',
        '/healthz',
      ]),
    );
    expect((await inject('/docs')).statusCode).toBeLessThan(400);
    const page = await inject('/');
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.body).toContain('assetpipe');
    // The page may show signed /img thumbnails and data: LQIPs, nothing from elsewhere.
    expect(page.headers['content-security-policy']).toBe(
      "default-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:",
    );
    const script = await inject('/app.js');
    expect(script.headers['content-type']).toMatch(/javascript/);
    // It parses (a syntax error would leave the page dead without any test noticing).
    expect(() => new Function(script.body)).not.toThrow();
    expect(script.body).toContain('a.srcset');
  });

  it('exposes request, queue and step metrics', async () => {
    await uploadReady(await makeJpeg({ seed: 3 }));
    const body = (await inject('/metrics')).body;
    expect(body).toMatch(
      /assetpipe_http_requests_total\{method="POST",route="\/v1\/assets",status="201"\} \d+/,
    );
    expect(body).toMatch(/assetpipe_queue_jobs\{kind="pipeline.run",status="completed"\} [1-9]/);
    expect(body).toMatch(
      /assetpipe_pipeline_step_duration_seconds_count\{kind="image",step="variants",status="succeeded"\} [1-9]/,
    );
  });

  it('answers health and readiness', async () => {
    expect((await inject('/healthz')).json()).toEqual({ status: 'ok' });
    expect((await inject('/readyz')).json()).toEqual({ status: 'ready' });
  });
});
