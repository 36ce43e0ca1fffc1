import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { Config } from '../../src/config.js';
import type { Container } from '../../src/container.js';
import { newId } from '../../src/domain/ids.js';
import { type SigningKey, signUrl } from '../../src/domain/signing.js';
import { outputSize, parseTransformQuery } from '../../src/domain/transform-options.js';
import { loadSigningKeys } from '../../src/services/signing-keys.js';
import { originalKey } from '../../src/storage/keys.js';
import { AUTH } from '../helpers/auth.js';
import { testContainer } from '../helpers/container.js';
import { multipart } from '../helpers/form.js';
import { makeAnimation, makeJpeg, makeMultiPageTiff, makePngBomb } from '../helpers/images.js';
import { silentWav } from '../helpers/wav.js';

// /img end to end, in process (inject) except where concurrency matters (a listening server).
// No pipeline workers run: /img works from the original, whatever the asset's processing state.

const NEW_SECRET = 'new-signing-secret-0123456789abcdefghij';
const OLD_SECRET = 'old-signing-secret-0123456789abcdefghij';

interface Harness {
  app: FastifyInstance;
  container: Container;
  config: Config;
  cleanup: () => Promise<void>;
}

async function harness(env: Record<string, string> = {}): Promise<Harness> {
  const { container, config, cleanup } = await testContainer({
    ASSETPIPE_WORKERS: '0',
    ASSETPIPE_SIGNING_SECRET: `${NEW_SECRET},${OLD_SECRET}`,
    ASSETPIPE_IMAGE_PRESETS: 'thumb=64:webp+avif;card=100:jpeg',
    ...env,
  });
  const app = await buildApp(container);
  return {
    app,
    container,
    config,
    cleanup: async () => {
      await app.close();
      await cleanup();
    },
  };
}

async function uploadAsset(
  h: Harness,
  data: Buffer,
  options: { name?: string; projectId?: string; type?: string } = {},
): Promise<{ id: string; versionNumber: number }> {
  const form = multipart({
    fields: options.projectId ? { projectId: options.projectId } : {},
    file: { name: options.name ?? 'photo.jpg', data, contentType: options.type ?? 'image/jpeg' },
  });
  const res = await h.app.inject({
    method: 'POST',
    url: '/v1/assets',
    ...form,
    headers: { ...AUTH, ...form.headers },
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
}

/** Prometheus counter value for a metric line carrying every given label (0 when absent). */
async function metricValue(h: Harness, name: string, labels: Record<string, string>): Promise<number> {
  const text = (await h.app.inject('/metrics')).body;
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (wanted.every((label) => line.includes(label))) total += Number(line.split(' ').at(-1));
  }
  return total;
}

const transformsDone = (h: Harness, format: string) =>
  metricValue(h, 'assetpipe_img_transforms_total', { format, result: 'ok' });

async function pixels(body: Buffer) {
  return sharp(body).metadata();
}

function problemOf(res: LightMyRequestResponse) {
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  return res.json<{ code: string; status: number; detail: string }>();
}

describe('/img with signatures required (the default)', () => {
  let h: Harness;
  let keys: SigningKey[];
  let photo: { id: string; versionNumber: number };
  const SOURCE = { width: 400, height: 300 };

  const signed = (path: string, expiresAt?: number) => signUrl(path, { keys, expiresAt });
  const get = (url: string, options: Omit<InjectOptions, 'url'> = {}) => h.app.inject({ url, ...options });

  beforeAll(async () => {
    h = await harness();
    keys = await loadSigningKeys(h.config);
    photo = await uploadAsset(h, await makeJpeg({ ...SOURCE, seed: 11 }));
  });
  afterAll(async () => h.cleanup());

  it.each([
    ['w=200', 'jpeg'],
    ['w=200&h=200&f=webp', 'webp'],
    ['w=200&h=100&fit=contain&f=png&bg=ff0000', 'png'],
    ['w=100&h=300&fit=fill&f=jpeg', 'jpeg'],
    ['w=800&h=800&fit=inside&f=webp', 'webp'],
    ['w=100&h=100&fit=outside&f=avif', 'avif'],
    ['h=90&f=png', 'png'],
    ['w=120&h=120&pos=fp:0.9,0.1&f=webp', 'webp'],
    ['w=120&h=60&pos=attention&f=jpeg', 'jpeg'],
    ['w=120&h=60&pos=entropy&f=jpeg', 'jpeg'],
    ['w=120&h=60&pos=northwest&f=jpeg', 'jpeg'],
    ['w=100&dpr=2.5&f=webp', 'webp'],
    ['w=150&blur=2&q=50&f=jpeg', 'jpeg'],
  ])('%s gives the size outputSize computes, as %s', async (query, format) => {
    const res = await get(signed(`/img/${photo.id}?${query}`));
    expect(res.statusCode, res.body).toBe(200);
    const meta = await pixels(res.rawPayload);
    const expected = outputSize(parseTransformQuery(new URLSearchParams(query)), SOURCE);
    expect({ width: meta.width, height: meta.height }).toEqual(expected);
    expect(meta.format === 'heif' ? 'avif' : meta.format).toBe(format);
    expect(res.headers['content-type']).toBe(`image/${format}`);
    expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers.etag).toMatch(/^"[0-9a-f]{64}"$/);
    expect(res.headers.vary).toBeUndefined();
    expect(meta.exif).toBeUndefined();
  });

  it('crops cover around a focus point and letterboxes contain with bg', async () => {
    // Left half black, right half white: a focus on the right shows white only.
    const halves = await sharp({ create: { width: 400, height: 100, channels: 3, background: '#000000' } })
      .composite([
        {
          input: { create: { width: 200, height: 100, channels: 3, background: '#ffffff' } },
          left: 200,
          top: 0,
        },
      ])
      .png()
      .toBuffer();
    const asset = await uploadAsset(h, halves, { name: 'halves.png', type: 'image/png' });
    const right = await get(signed(`/img/${asset.id}?w=100&h=100&pos=fp:1,0.5&f=png`));
    const left = await get(signed(`/img/${asset.id}?w=100&h=100&pos=fp:0,0.5&f=png`));
    const mean = async (body: Buffer) => (await sharp(body).stats()).channels[0]?.mean ?? -1;
    expect(await mean(right.rawPayload)).toBeGreaterThan(250);
    expect(await mean(left.rawPayload)).toBeLessThan(5);

    const boxed = await get(signed(`/img/${asset.id}?w=100&h=100&fit=contain&bg=00ff00&f=png`));
    const { data, info } = await sharp(boxed.rawPayload)
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([100, 100]);
    expect([...data.subarray(0, 3)]).toEqual([0, 255, 0]); // top-left corner is letterbox
  });

  it('keeps an animation for anim=1 WebP output, first frame otherwise', async () => {
    const gif = await uploadAsset(h, await makeAnimation('gif', { width: 40, height: 30 }), {
      name: 'a.gif',
      type: 'image/gif',
    });
    const animated = await get(signed(`/img/${gif.id}?w=20&f=webp&anim=1`));
    expect(animated.statusCode, animated.body).toBe(200);
    const meta = await sharp(animated.rawPayload, { pages: -1 }).metadata();
    expect(meta.pages).toBe(3);
    expect([meta.width, meta.pageHeight]).toEqual([20, 15]);
    const still = await get(signed(`/img/${gif.id}?w=20&f=png&anim=1`));
    expect((await sharp(still.rawPayload, { pages: -1 }).metadata()).pages ?? 1).toBe(1);
  });

  it('serves an SVG only as a raster, and the first page of a multi-page TIFF', async () => {
    const svg = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="80" height="40"><rect width="40" height="40" fill="#ff0000"/><rect x="40" width="40" height="40" fill="#0000ff"/><script>alert(1)</script></svg>',
    );
    const vector = await uploadAsset(h, svg, { name: 'logo.svg', type: 'image/svg+xml' });
    for (const query of ['', '?w=40', '?f=auto']) {
      const res = await get(signed(`/img/${vector.id}${query}`), {
        headers: { accept: 'image/svg+xml,*/*' },
      });
      expect(res.statusCode, `${query} ${res.body}`).toBe(200);
      expect(res.headers['content-type'], query).toMatch(/^image\/(png|jpeg|webp|avif)$/);
      expect(res.rawPayload.includes('<svg'), query).toBe(false);
    }
    const raster = await sharp((await get(signed(`/img/${vector.id}?f=png`))).rawPayload)
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([raster.info.width, raster.info.height]).toEqual([80, 40]);
    const at = (x: number) => [...raster.data.subarray((20 * 80 + x) * raster.info.channels).subarray(0, 3)];
    expect(at(10)).toEqual([255, 0, 0]);
    expect(at(70)).toEqual([0, 0, 255]);

    const tiff = await uploadAsset(h, await makeMultiPageTiff({ colours: ['#00ff00', '#ff0000'] }), {
      name: 'pages.tiff',
      type: 'image/tiff',
    });
    const page = await get(signed(`/img/${tiff.id}?f=png`));
    expect(page.statusCode, page.body).toBe(200);
    const { data, info } = await sharp(page.rawPayload).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([40, 30]);
    // Green (page 1), not red (page 2); a unit of rounding from the colour conversion is fine.
    expect([data[0]! < 5, data[1]! > 250, data[2]! < 5]).toEqual([true, true, true]);
  });

  it('negotiates f=auto from Accept and sends Vary: Accept, also on 304', async () => {
    const url = signed(`/img/${photo.id}?w=64&f=auto`);
    const cases: Array<[string, string]> = [
      ['image/avif,image/webp,*/*', 'image/avif'],
      ['image/webp,*/*;q=0.8', 'image/webp'],
      ['image/avif;q=0,image/webp', 'image/webp'],
      ['*/*', 'image/jpeg'],
    ];
    for (const [accept, type] of cases) {
      const res = await get(url, { headers: { accept } });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers['content-type'], accept).toBe(type);
      expect(res.headers.vary).toBe('Accept');
      const again = await get(url, { headers: { accept, 'if-none-match': String(res.headers.etag) } });
      expect(again.statusCode).toBe(304);
      expect(again.headers.vary).toBe('Accept');
      expect(again.rawPayload.length).toBe(0);
    }
  });

  it('answers a repeat from the cache: same bytes and ETag, no second transform; 304 on If-None-Match', async () => {
    const url = signed(`/img/${photo.id}?w=48&q=70&f=webp`);
    const before = await transformsDone(h, 'webp');
    const hitsBefore = await metricValue(h, 'assetpipe_img_requests_total', { outcome: 'hit' });
    const first = await get(url);
    expect(first.statusCode).toBe(200);
    expect(await transformsDone(h, 'webp')).toBe(before + 1);
    const second = await get(url);
    expect(second.statusCode).toBe(200);
    expect(second.rawPayload.equals(first.rawPayload)).toBe(true);
    expect(second.headers.etag).toBe(first.headers.etag);
    expect(await transformsDone(h, 'webp')).toBe(before + 1);
    expect(await metricValue(h, 'assetpipe_img_requests_total', { outcome: 'hit' })).toBe(hitsBefore + 1);
    const notModified = await get(url, { headers: { 'if-none-match': String(first.headers.etag) } });
    expect(notModified.statusCode).toBe(304);
    // The explicit format the auto answer negotiated shares the cached object (stored in the
    // background once answered; flush waits for that) and its ETag is the stored object's.
    await h.container.images.flush();
    const cached = await h.container.blobs.head(
      (await firstKeyUnder(h, `cache/img/${photo.id}/v1/`)) ?? 'missing',
    );
    expect(cached).toBeDefined();
  });

  it('refuses a missing, tampered or expired signature with 403 saying which; an old key still verifies', async () => {
    const path = `/img/${photo.id}?w=64&f=webp`;
    const missing = problemOf(await get(path));
    expect(missing).toMatchObject({ status: 403, code: 'SIGNATURE_INVALID' });
    expect(missing.detail).toMatch(/needs a signature/);

    const good = signed(path);
    const tampered = problemOf(await get(good.replace('w=64', 'w=65')));
    expect(tampered).toMatchObject({ status: 403, code: 'SIGNATURE_INVALID' });
    expect(tampered.detail).toMatch(/changed after signing/);
    const flipped = good.replace(/sig=(.)/, (_, c: string) => `sig=${c === 'A' ? 'B' : 'A'}`);
    expect((await get(flipped)).statusCode).toBe(403);
    // A tampered URL that would also be invalid still never gets a 200.
    expect((await get(good.replace('w=64', 'w=100000'))).statusCode).toBe(400);

    const expired = problemOf(await get(signed(path, Math.floor(Date.now() / 1000) - 10)));
    expect(expired).toMatchObject({ status: 403, code: 'SIGNATURE_INVALID' });
    expect(expired.detail).toMatch(/expired/);
    expect((await get(signed(path, Math.floor(Date.now() / 1000) + 600))).statusCode).toBe(200);

    const oldKey = (await loadSigningKeys({ signingSecret: OLD_SECRET, dataDir: h.config.dataDir }))[0];
    if (!oldKey) throw new Error('no old key');
    expect((await get(signUrl(path, { keys: [oldKey] }))).statusCode).toBe(200);
    const stranger = { id: oldKey.id, secret: 'not-the-secret-0123456789abcdefghijkl' };
    expect((await get(signUrl(path, { keys: [stranger] }))).statusCode).toBe(403);
  });

  it.each(['w=100000', 'q=0', 'f=bmp', 'dpr=9', 'w=10&w=20', 'zoom=2', 'v=abc'])(
    '%s is a 400 TRANSFORM_INVALID problem, signed or not',
    async (query) => {
      for (const url of [`/img/${photo.id}?${query}`, signed(`/img/${photo.id}?${query}`)]) {
        const res = await get(url);
        expect(res.statusCode, url).toBe(400);
        expect(problemOf(res).code).toBe('TRANSFORM_INVALID');
      }
    },
  );

  it('404s for unknown, deleted and non-image assets and unknown versions', async () => {
    const unknown = await get(signed('/img/ast_00000000000000000000000000?w=64'));
    expect(unknown.statusCode).toBe(404);
    expect(problemOf(unknown).code).toBe('ASSET_NOT_FOUND');

    const audio = await uploadAsset(h, silentWav(0.2), { name: 'a.wav', type: 'audio/wav' });
    const notImage = await get(signed(`/img/${audio.id}?w=64`));
    expect(notImage.statusCode).toBe(404);
    expect(problemOf(notImage).detail).toMatch(/not an image/);

    expect((await get(signed(`/img/${photo.id}?w=64&v=9`))).statusCode).toBe(404);

    const doomed = await uploadAsset(h, await makeJpeg({ seed: 99 }));
    expect((await get(signed(`/img/${doomed.id}?w=64&f=webp`))).statusCode).toBe(200);
    const del = await h.app.inject({ method: 'DELETE', url: `/v1/assets/${doomed.id}`, headers: AUTH });
    expect(del.statusCode).toBeLessThan(300);
    expect((await get(signed(`/img/${doomed.id}?w=64&f=webp`))).statusCode).toBe(404);
  });

  it('refuses a decompression bomb with 422 IMAGE_TOO_LARGE', async () => {
    // The upload path refuses bombs itself, so it goes into the store and catalog directly.
    const key = originalKey(newId('upl'));
    const bomb = makePngBomb(30000);
    await h.container.blobs.put(key, bomb, { contentType: 'image/png' });
    const assetId = newId('ast');
    const now = new Date().toISOString();
    await h.container.catalog.createAssetWithRun(
      {
        id: assetId,
        projectId: 'default',
        filename: 'bomb.png',
        type: 'image',
        mimeType: 'image/png',
        size: bomb.length,
        sha256: 'b'.repeat(64),
        originalKey: key,
        uploadedAt: now,
      },
      newId('run'),
    );
    for (const query of ['w=64&f=webp', 'w=64', 'w=64&f=auto']) {
      const res = await get(signed(`/img/${assetId}?${query}`));
      expect(res.statusCode, res.body).toBe(422);
      expect(problemOf(res).code).toBe('IMAGE_TOO_LARGE');
    }
    expect((await get('/healthz')).statusCode).toBe(200);
  });

  it('serves an eager rendition for a preset, or makes it when it is missing', async () => {
    const asset = await uploadAsset(h, await makeJpeg({ width: 300, height: 200, seed: 5 }));
    // Rendition thumb.webp as the pipeline would record it.
    const thumb = await sharp(await makeJpeg({ width: 64, height: 43, seed: 6 }))
      .webp()
      .toBuffer();
    const key = `derived/${asset.id}/v1/variants/thumb.webp`;
    await h.container.blobs.put(key, thumb, { contentType: 'image/webp' });
    await h.container.catalog.putRendition({
      assetId: asset.id,
      version: 1,
      name: 'thumb.webp',
      key,
      contentType: 'image/webp',
      size: thumb.length,
      width: 64,
      height: 43,
      createdAt: new Date().toISOString(),
    });
    const served = await get(signed(`/img/${asset.id}?preset=thumb&f=auto`), {
      headers: { accept: 'image/webp' },
    });
    expect(served.statusCode, served.body).toBe(200);
    expect(served.rawPayload.equals(thumb)).toBe(true);
    expect(served.headers.vary).toBe('Accept');

    // thumb.avif was not made: transformed at the preset's size and cached.
    const made = await get(signed(`/img/${asset.id}?preset=thumb&f=avif`));
    expect(made.statusCode, made.body).toBe(200);
    expect(made.headers['content-type']).toBe('image/avif');
    const meta = await pixels(made.rawPayload);
    expect([meta.width, meta.height]).toEqual([64, 43]);
    // A client without WebP/AVIF gets a JPEG at the preset size.
    const legacy = await get(signed(`/img/${asset.id}?preset=thumb&f=auto`), {
      headers: { accept: 'image/jpeg' },
    });
    expect(legacy.headers['content-type']).toBe('image/jpeg');
    expect((await pixels(legacy.rawPayload)).width).toBe(64);
    // Without f: the preset's first format.
    const card = await get(signed(`/img/${asset.id}?preset=card`));
    expect(card.headers['content-type']).toBe('image/jpeg');
    expect((await pixels(card.rawPayload)).width).toBe(100);

    for (const query of ['preset=thumb&w=10', 'preset=nope', 'preset=thumb&f=png']) {
      const res = await get(signed(`/img/${asset.id}?${query}`));
      expect(res.statusCode, query).toBe(400);
      expect(problemOf(res).code).toBe('TRANSFORM_INVALID');
    }
  });

  it('serves /img/originals/{upload id} and version v; a new version gets new bytes', async () => {
    const first = await makeJpeg({ width: 200, height: 100, seed: 21 });
    const v1 = await uploadWithMediaId(h, first, 'hero2');
    const v2 = await uploadWithMediaId(h, await makeJpeg({ width: 100, height: 200, seed: 22 }), 'hero2');
    expect(v2.id).toBe(v1.id);
    expect(v2.versionNumber).toBe(2);
    const current = await get(signed(`/img/${v1.id}?w=50&f=png`));
    const old = await get(signed(`/img/${v1.id}?w=50&f=png&v=1`));
    expect([(await pixels(current.rawPayload)).height, (await pixels(old.rawPayload)).height]).toEqual([
      100, 25,
    ]);

    const versions = (await h.app.inject({ url: `/v1/assets/${v1.id}/versions`, headers: AUTH })).json<{
      items: Array<{ version: number }>;
    }>();
    expect(versions.items.length).toBe(2);
    const version1 = await h.container.catalog.getVersion(v1.id, 1);
    if (!version1) throw new Error('no version 1');
    const byKey = await get(signed(`/img/${version1.originalKey}?w=50&f=png`));
    expect(byKey.statusCode, byKey.body).toBe(200);
    expect((await pixels(byKey.rawPayload)).height).toBe(25);
    const encoded = await get(signed(`/img/${version1.originalKey.replace('/', '%2F')}?w=50&f=png`));
    expect(encoded.statusCode, encoded.body).toBe(200);
    expect((await get(signed(`/img/originals/upl_nope?w=50`))).statusCode).toBe(404);
  });

  it("signs URLs through the API for the caller key's project only", async () => {
    await h.container.projects.create({ id: 'alpha' });
    await h.container.projects.create({ id: 'beta' });
    const a = await uploadAsset(h, await makeJpeg({ seed: 31 }), { projectId: 'alpha' });
    const b = await uploadAsset(h, await makeJpeg({ seed: 32 }), { projectId: 'beta' });
    const created = await h.app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers: AUTH,
      payload: { name: 'alpha-reader', scopes: ['read'], projectId: 'alpha' },
    });
    expect(created.statusCode, created.body).toBe(201);
    const alphaKey = { authorization: `Bearer ${created.json<{ key: string }>().key}` };
    const sign = (path: string, extra: Record<string, unknown> = {}) =>
      h.app.inject({ method: 'POST', url: '/v1/img/sign', headers: alphaKey, payload: { path, ...extra } });

    const ok = await sign(`/img/${a.id}?w=64&f=webp`, { expiresIn: 3600 });
    expect(ok.statusCode, ok.body).toBe(200);
    const { url, expiresAt } = ok.json<{ url: string; expiresAt: string }>();
    expect(new URL(url).searchParams.get('v')).toBe('1');
    expect(new URL(url).searchParams.get('exp')).not.toBeNull();
    expect(Date.parse(expiresAt)).toBeGreaterThan(Date.now());
    const served = await get(url.replace(/^https?:\/\/[^/]+/, ''));
    expect(served.statusCode, served.body).toBe(200);
    expect(served.headers['content-type']).toBe('image/webp');

    expect((await sign(`/img/${b.id}?w=64`)).statusCode).toBe(404);
    // Without expiresIn a public project's URL does not expire; a private project's lasts a day.
    const forever = await sign(`/img/${a.id}?w=64&f=webp`);
    expect(forever.json<{ expiresAt: string | null }>().expiresAt).toBeNull();
    await h.container.catalog.updateProject('alpha', { visibility: 'private' }, new Date().toISOString());
    const daily = await sign(`/img/${a.id}?w=64&f=webp`);
    const dayLeft = Date.parse(daily.json<{ expiresAt: string }>().expiresAt) - Date.now();
    expect(dayLeft).toBeGreaterThan(86_000_000);
    expect(dayLeft).toBeLessThanOrEqual(86_400_000);
    await h.container.catalog.updateProject('alpha', { visibility: 'public' }, new Date().toISOString());
    const bad = await sign(`/img/${a.id}?w=100000`);
    expect(bad.statusCode).toBe(400);
    expect(problemOf(bad).code).toBe('TRANSFORM_INVALID');
    expect((await sign('/v1/assets')).statusCode).toBe(400);
    const anonymous = await h.app.inject({
      method: 'POST',
      url: '/v1/img/sign',
      payload: { path: `/img/${a.id}` },
    });
    expect(anonymous.statusCode).toBe(401);

    // The URL service the asset resource will use: signed, with v, accepted by /img.
    const ready = h.container.imageUrls.imageUrl({ id: a.id, versionNumber: 1 }, { w: 64, f: 'png' });
    expect(ready).toMatch(new RegExp(`^/img/${a.id}\\?`));
    expect((await get(ready)).statusCode).toBe(200);
  });

  it("forgets an asset's cached transforms, and a purge removes them", async () => {
    const asset = await uploadAsset(h, await makeJpeg({ seed: 41 }));
    await get(signed(`/img/${asset.id}?w=32&f=webp`));
    await get(signed(`/img/${asset.id}?w=16&f=webp`));
    expect(await h.container.images.forgetAsset(asset.id)).toBe(2);
    expect(await firstKeyUnder(h, `cache/img/${asset.id}/`)).toBeUndefined();
    expect(await h.container.images.forgetAsset(asset.id)).toBe(0);

    await get(signed(`/img/${asset.id}?w=24&f=webp`));
    await h.container.images.flush();
    expect(await firstKeyUnder(h, `cache/img/${asset.id}/`)).toBeDefined();
    const purged = await h.app.inject({
      method: 'DELETE',
      url: `/v1/assets/${asset.id}?purge=true`,
      headers: AUTH,
    });
    expect(purged.statusCode, purged.body).toBeLessThan(300);
    expect(await firstKeyUnder(h, `cache/img/${asset.id}/`)).toBeUndefined();
  });

  it('documents the routes in OpenAPI', async () => {
    const doc = (await get('/docs/json')).json<{ paths: Record<string, Record<string, unknown>> }>();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/img/{assetId}', '/v1/img/sign']));
    const op = doc.paths['/img/{assetId}']?.get as { parameters: Array<{ name: string }> };
    expect(op.parameters.map((p) => p.name)).toEqual(
      expect.arrayContaining(['w', 'f', 'sig', 'preset', 'v']),
    );
  });
});

async function uploadWithMediaId(h: Harness, data: Buffer, mediaId: string) {
  const form = multipart({
    fields: { mediaId },
    file: { name: 'hero.jpg', data, contentType: 'image/jpeg' },
  });
  const res = await h.app.inject({
    method: 'POST',
    url: '/v1/assets',
    ...form,
    headers: { ...AUTH, ...form.headers },
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ id: string; versionNumber: number }>();
}

async function firstKeyUnder(h: Harness, prefix: string): Promise<string | undefined> {
  for await (const info of h.container.blobs.list(prefix)) return info.key;
  return undefined;
}

describe('/img with signatures off', () => {
  let h: Harness;
  let keys: SigningKey[];

  beforeAll(async () => {
    h = await harness({
      ASSETPIPE_IMG_SIGNATURE: 'off',
      ASSETPIPE_IMG_WIDTHS: '64,128',
      ASSETPIPE_IMG_QUALITIES: '50,80',
    });
    keys = await loadSigningKeys(h.config);
  });
  afterAll(async () => h.cleanup());

  it('serves allow-listed widths and qualities unsigned, others only signed; private projects need a signature', async () => {
    const photo = await uploadAsset(h, await makeJpeg({ width: 300, height: 200, seed: 51 }));
    expect((await h.app.inject(`/img/${photo.id}?w=64&q=80&f=webp`)).statusCode).toBe(200);
    for (const query of ['w=65', 'w=64&q=81']) {
      const res = await h.app.inject(`/img/${photo.id}?${query}`);
      expect(res.statusCode, query).toBe(400);
      expect(problemOf(res).code).toBe('TRANSFORM_INVALID');
      expect(problemOf(res).detail).toMatch(/one of/);
      const withSig = await h.app.inject(signUrl(`/img/${photo.id}?${query}`, { keys }));
      expect(withSig.statusCode, query).toBe(200);
    }
    // A signature that is present is still checked.
    const tampered = signUrl(`/img/${photo.id}?w=64`, { keys }).replace('w=64', 'w=128');
    expect((await h.app.inject(tampered)).statusCode).toBe(403);

    await h.container.projects.create({ id: 'secret', visibility: 'private' });
    const hidden = await uploadAsset(h, await makeJpeg({ seed: 52 }), { projectId: 'secret' });
    const refused = await h.app.inject(`/img/${hidden.id}?w=64`);
    expect(refused.statusCode).toBe(403);
    expect(problemOf(refused).code).toBe('SIGNATURE_INVALID');
    expect((await h.app.inject(signUrl(`/img/${hidden.id}?w=64`, { keys }))).statusCode).toBe(200);

    // Making a project private through the API takes effect at once, remembered lookups included.
    expect((await h.app.inject(`/img/${photo.id}?w=64&q=80&f=webp`)).statusCode).toBe(200);
    const patched = await h.app.inject({
      method: 'PATCH',
      url: '/v1/projects/default',
      headers: AUTH,
      payload: { visibility: 'private' },
    });
    expect(patched.statusCode, patched.body).toBe(200);
    expect((await h.app.inject(`/img/${photo.id}?w=64&q=80&f=webp`)).statusCode).toBe(403);
  });
});

describe('/img under load (a listening server)', () => {
  let h: Harness;
  let base: string;
  let keys: SigningKey[];

  beforeAll(async () => {
    h = await harness({
      ASSETPIPE_IMG_CONCURRENCY: '1',
      ASSETPIPE_IMG_QUEUE: '0',
      ASSETPIPE_IMG_TIMEOUT_MS: '1000',
    });
    keys = await loadSigningKeys(h.config);
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const address = h.app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    base = `http://127.0.0.1:${address.port}`;
  });
  afterAll(async () => h.cleanup());

  it('merges 200 concurrent requests for one uncached variant into one transform', async () => {
    const photo = await uploadAsset(h, await makeJpeg({ width: 1200, height: 900, seed: 61 }));
    const url = `${base}${signUrl(`/img/${photo.id}?w=400&f=webp`, { keys })}`;
    const before = await transformsDone(h, 'webp');
    const responses = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const res = await fetch(url, { signal: AbortSignal.timeout(60_000) });
        return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
      }),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(200).fill(200));
    const first = responses[0]?.body ?? Buffer.alloc(0);
    expect(responses.every((r) => r.body.equals(first))).toBe(true);
    expect((await pixels(first)).width).toBe(400);
    expect(await transformsDone(h, 'webp')).toBe(before + 1);
    const outcomes = await Promise.all(
      ['hit', 'miss', 'merged'].map((outcome) => metricValue(h, 'assetpipe_img_requests_total', { outcome })),
    );
    expect(outcomes.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(200);
  });

  it('refuses with 503 and Retry-After when the queue is full, and stops a transform at the timeout', async () => {
    const big = await uploadAsset(
      h,
      await sharp({ create: { width: 3000, height: 3000, channels: 3, background: '#336699' } })
        .jpeg()
        .toBuffer(),
    );
    // A heavy blur holds the only slot (it runs into the 1 s timeout).
    const slow = fetch(`${base}${signUrl(`/img/${big.id}?blur=100&f=webp`, { keys })}`);
    const deadline = Date.now() + 20_000;
    while (h.container.images.load.running === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(h.container.images.load.running).toBe(1);
    const refused = await fetch(`${base}${signUrl(`/img/${big.id}?w=64&f=webp`, { keys })}`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(((await refused.json()) as { code: string }).code).toBe('UNAVAILABLE');
    expect(await metricValue(h, 'assetpipe_img_requests_total', { outcome: 'rejected' })).toBeGreaterThan(0);

    const timedOut = await slow;
    expect(timedOut.status).toBe(503);
    expect(((await timedOut.json()) as { detail: string }).detail).toMatch(/took longer than 1 s/);
    expect(await metricValue(h, 'assetpipe_img_transforms_total', { result: 'timeout' })).toBe(1);
    // The server keeps serving, and the slot is free again.
    const after = await fetch(`${base}${signUrl(`/img/${big.id}?w=64&f=webp`, { keys })}`);
    expect(after.status).toBe(200);
  });
});
