import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { Container } from '../../src/container.js';
import { startWorkers } from '../../src/workers.js';
import { AUTH } from '../helpers/auth.js';
import { testContainer, waitFor } from '../helpers/container.js';
import { multipart } from '../helpers/form.js';
import { makeJpeg } from '../helpers/images.js';
import { silentWav } from '../helpers/wav.js';

describe('catalog operations, projects and API keys over HTTP', () => {
  let app: FastifyInstance;
  let container: Container;
  let cleanup: () => Promise<void>;
  let stopWorkers: () => Promise<void>;

  function inject(
    options: string | InjectOptions,
    key: string | null = null,
  ): Promise<LightMyRequestResponse> {
    const opts: InjectOptions = typeof options === 'string' ? { url: options } : options;
    const auth = key === null ? AUTH : key === '' ? {} : { authorization: `Bearer ${key}` };
    return app.inject({ ...opts, headers: { ...auth, ...(opts.headers ?? {}) } });
  }

  function upload(
    data: Buffer,
    fields: Record<string, string> = {},
    key: string | null = null,
    name = 'photo.jpg',
  ) {
    return inject({ method: 'POST', url: '/v1/assets', ...multipart({ fields, file: { name, data } }) }, key);
  }

  async function ready(id: string, key: string | null = null) {
    return waitFor(
      async () => {
        const asset = (await inject(`/v1/assets/${id}`, key)).json();
        return asset.status !== 'processing' && asset;
      },
      20_000,
      `asset ${id} to finish`,
    );
  }

  async function createKey(scopes: string[], projectId?: string): Promise<{ id: string; key: string }> {
    const res = await inject({
      method: 'POST',
      url: '/v1/keys',
      payload: { name: `t-${scopes.join('-')}`, scopes, projectId },
    });
    expect(res.statusCode).toBe(201);
    return res.json();
  }

  async function createProject(body: Record<string, unknown>) {
    const res = await inject({ method: 'POST', url: '/v1/projects', payload: body });
    expect(res.statusCode, res.body).toBe(201);
    return res.json();
  }

  beforeAll(async () => {
    ({ container, cleanup } = await testContainer({ ASSETPIPE_WORKERS: '2', ASSETPIPE_RATE_LIMIT: '0' }));
    app = await buildApp(container);
    ({ stop: stopWorkers } = startWorkers(container));
  });
  afterAll(async () => {
    await stopWorkers();
    await app.close();
    await cleanup();
  });

  describe('auth', () => {
    it('needs a key: none -> 401, garbage -> 401, wrong scheme -> 401', async () => {
      for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: 'Basic dXNlcjpwYXNz' }]) {
        const res = await app.inject({ url: '/v1/assets', headers });
        expect(res.statusCode).toBe(401);
        expect(res.json().code).toBe('UNAUTHORIZED');
      }
      expect((await app.inject('/healthz')).statusCode).toBe(200);
    });

    it('cannot be walked past with percent-encoded paths', async () => {
      for (const url of ['/%761/keys', '/v%31/keys', '/%76%31/projects', '/v1/%6beys', '/%761/assets']) {
        const read = await app.inject({ url });
        expect(read.statusCode, url).toBe(401);
        const write = await app.inject({
          method: 'POST',
          url,
          payload: { name: 'x', scopes: ['admin'], id: 'x' },
        });
        expect(write.statusCode, url).toBe(401);
      }
    });

    it('an admin key bound to a project cannot manage keys or create projects', async () => {
      await createProject({ id: 'bound-admin' });
      const { key } = await createKey(['admin'], 'bound-admin');
      expect((await inject('/v1/keys', key)).statusCode).toBe(403);
      const mint = await inject(
        { method: 'POST', url: '/v1/keys', payload: { name: 'escalate', scopes: ['admin'] } },
        key,
      );
      expect(mint.statusCode).toBe(403);
      expect(
        (await inject({ method: 'POST', url: '/v1/projects', payload: { id: 'elsewhere' } }, key)).statusCode,
      ).toBe(403);
      expect((await inject('/v1/projects/bound-admin', key)).statusCode).toBe(200);
    });

    it('a read key can list but not upload (403)', async () => {
      const { key } = await createKey(['read']);
      expect((await inject('/v1/assets', key)).statusCode).toBe(200);
      const res = await upload(await makeJpeg({ seed: 31 }), {}, key);
      expect(res.statusCode).toBe(403);
      expect(res.json().code).toBe('FORBIDDEN');
      expect(
        (await inject({ method: 'POST', url: '/v1/keys', payload: { name: 'x', scopes: ['read'] } }, key))
          .statusCode,
      ).toBe(403);
    });

    it('a key bound to project A gets 404 for project B and cannot upload to it', async () => {
      await createProject({ id: 'alpha' });
      await createProject({ id: 'beta' });
      const b = await upload(await makeJpeg({ seed: 32 }), { projectId: 'beta' });
      expect(b.statusCode).toBe(201);
      const { key } = await createKey(['read', 'write'], 'alpha');
      const idB = b.json().id;
      for (const url of [
        `/v1/assets/${idB}`,
        `/v1/assets/${idB}/runs`,
        `/v1/assets/${idB}/original`,
        '/v1/projects/beta',
      ]) {
        expect((await inject(url, key)).statusCode, url).toBe(404);
      }
      expect((await inject('/v1/assets?projectId=beta', key)).json().items).toEqual([]);
      expect((await upload(await makeJpeg({ seed: 33 }), { projectId: 'beta' }, key)).statusCode).toBe(403);
      const own = await upload(await makeJpeg({ seed: 34 }), {}, key);
      expect(own.statusCode).toBe(201);
      expect(own.json().projectId).toBe('alpha');
      expect((await inject('/v1/projects', key)).json().items.map((p: { id: string }) => p.id)).toEqual([
        'alpha',
      ]);
    });

    it('a revoked key gets 401', async () => {
      const { id, key } = await createKey(['read']);
      expect((await inject('/v1/assets', key)).statusCode).toBe(200);
      expect((await inject({ method: 'DELETE', url: `/v1/keys/${id}` })).statusCode).toBe(204);
      expect((await inject('/v1/assets', key)).statusCode).toBe(401);
      const listed = (await inject('/v1/keys')).json().items.find((k: { id: string }) => k.id === id);
      expect(listed.revokedAt).not.toBeNull();
      expect(JSON.stringify((await inject('/v1/keys')).json())).not.toContain(key);
    });
  });

  describe('versions', () => {
    it('a second upload with the same mediaId becomes version 2; version 1 stays retrievable and can be current again', async () => {
      const v1 = await makeJpeg({ seed: 40, width: 200, height: 100 });
      const v2 = await makeJpeg({ seed: 41, width: 120, height: 160 });
      const first = await upload(v1, { mediaId: 'shoot-1/cover' });
      expect(first.statusCode).toBe(201);
      const id = first.json().id;
      await ready(id);
      const second = await upload(v2, { mediaId: 'shoot-1/cover' });
      expect(second.statusCode).toBe(201);
      expect(second.json()).toMatchObject({ id, versionNumber: 2, status: 'processing' });
      const current = await ready(id);
      expect(current).toMatchObject({ versionNumber: 2, width: 120, height: 160 });

      const versions = (await inject(`/v1/assets/${id}/versions`)).json();
      expect(versions.currentVersion).toBe(2);
      expect(
        versions.items.map((v: { version: number; status: string; width: number }) => [
          v.version,
          v.status,
          v.width,
        ]),
      ).toEqual([
        [1, 'ready', 200],
        [2, 'ready', 120],
      ]);
      const old = await inject(`/v1/assets/${id}/versions/1/original`);
      expect(old.rawPayload.equals(v1)).toBe(true);

      const back = await inject({ method: 'POST', url: `/v1/assets/${id}/versions/1/current` });
      expect(back.statusCode).toBe(200);
      expect(back.json()).toMatchObject({ versionNumber: 1, width: 200, height: 100, status: 'ready' });
      expect((await inject(`/v1/assets/${id}/original`)).rawPayload.equals(v1)).toBe(true);

      const byMedia = (await inject('/v1/assets?mediaId=shoot-1/cover')).json();
      expect(byMedia.items.map((a: { id: string }) => a.id)).toEqual([id]);
    });

    it('repeating the same bytes under the same mediaId is not a new version', async () => {
      const bytes = await makeJpeg({ seed: 42 });
      const a = await upload(bytes, { mediaId: 'retry-me' });
      const b = await upload(bytes, { mediaId: 'retry-me' });
      expect(a.statusCode).toBe(201);
      expect(b.statusCode).toBe(200);
      expect(b.json()).toMatchObject({ id: a.json().id, versionNumber: 1 });
    });
  });

  describe('integrity and duplicates', () => {
    it('verifies a declared checksum: mismatch -> 460, nothing kept', async () => {
      const bytes = await makeJpeg({ seed: 50 });
      const bad = await upload(bytes, { checksum: `sha256:${'0'.repeat(64)}` });
      expect(bad.statusCode).toBe(460);
      expect(bad.json().code).toBe('CHECKSUM_MISMATCH');
      const { createHash } = await import('node:crypto');
      const good = await upload(bytes, {
        checksum: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
      });
      expect(good.statusCode).toBe(201);
      expect(good.json().sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    });

    it('reports exact duplicates per the project policy: link (default), reject, keep', async () => {
      const bytes = await makeJpeg({ seed: 51 });
      const first = (await upload(bytes)).json();
      const linked = await upload(bytes, {}, null, 'again.jpg');
      expect(linked.statusCode).toBe(200);
      expect(linked.json()).toMatchObject({ id: first.id, duplicateOf: first.id });

      await createProject({ id: 'strict', duplicatePolicy: 'reject' });
      expect((await upload(bytes, { projectId: 'strict' })).statusCode).toBe(201);
      const rejected = await upload(bytes, { projectId: 'strict' });
      expect(rejected.statusCode).toBe(409);
      expect(rejected.json().code).toBe('DUPLICATE_ASSET');

      await createProject({ id: 'lenient', duplicatePolicy: 'keep' });
      const k1 = (await upload(bytes, { projectId: 'lenient' })).json();
      const k2 = await upload(bytes, { projectId: 'lenient' });
      expect(k2.statusCode).toBe(201);
      expect(k2.json().id).not.toBe(k1.id);
      expect(k2.json().duplicateOf).toBe(k1.id);
    });
  });

  describe('projects and limits', () => {
    it('creates, lists and refuses a taken id', async () => {
      const created = await createProject({ id: 'agency', name: 'Agency', visibility: 'private' });
      expect(created).toMatchObject({
        id: 'agency',
        name: 'Agency',
        visibility: 'private',
        duplicatePolicy: 'link',
      });
      const again = await inject({ method: 'POST', url: '/v1/projects', payload: { id: 'agency' } });
      expect(again.statusCode).toBe(409);
      expect(again.json().code).toBe('PROJECT_EXISTS');
      expect((await inject('/v1/projects')).json().items.map((p: { id: string }) => p.id)).toContain(
        'agency',
      );
      const bad = await inject({ method: 'POST', url: '/v1/projects', payload: { id: '../x' } });
      expect(bad.statusCode).toBe(400);
    });

    it('refuses uploads over the project limits, naming the limit', async () => {
      await createProject({ id: 'small', limits: { maxUploadBytes: 2000, allowedTypes: ['video'] } });
      const big = await upload(await makeJpeg({ seed: 60, width: 400, height: 400 }), { projectId: 'small' });
      expect(big.statusCode).toBe(413);
      expect(big.json().code).toBe('UPLOAD_TOO_LARGE');
      expect(big.json().detail).toContain('maxUploadBytes');

      await inject({
        method: 'PATCH',
        url: '/v1/projects/small',
        payload: { limits: { maxUploadBytes: null } },
      });
      const wrongType = await upload(await makeJpeg({ seed: 61 }), { projectId: 'small' });
      expect(wrongType.statusCode).toBe(422);
      expect(wrongType.json().code).toBe('TYPE_NOT_ALLOWED');
      expect(wrongType.json().detail).toContain('allowedTypes');

      const photo = await makeJpeg({ seed: 62 });
      await createProject({ id: 'quota', limits: { maxTotalBytes: photo.length + 100 } });
      expect((await upload(photo, { projectId: 'quota' })).statusCode).toBe(201);
      const over = await upload(await makeJpeg({ seed: 63 }), { projectId: 'quota' });
      expect(over.statusCode).toBe(413);
      expect(over.json().code).toBe('QUOTA_EXCEEDED');
      expect(over.json().detail).toContain('maxTotalBytes');
      expect((await inject('/v1/projects/quota')).json().usage).toEqual({ assets: 1, bytes: photo.length });
    });

    it('fails a recording longer than the project allows, naming the limit', async () => {
      await createProject({ id: 'short', limits: { maxVideoDurationSec: 1 } });
      const wav = silentWav(2);
      const res = await upload(wav, { projectId: 'short' }, null, 'voice.wav');
      expect(res.statusCode).toBe(201);
      const done = await ready(res.json().id);
      expect(done.status).toBe('failed');
      expect(done.error).toContain('maxVideoDurationSec');
    });

    it('an unknown project is a 404 problem', async () => {
      const res = await upload(await makeJpeg({ seed: 64 }), { projectId: 'nowhere' });
      expect(res.statusCode).toBe(404);
      expect(res.json().code).toBe('PROJECT_NOT_FOUND');
    });
  });

  describe('tags, search, reprocess, delete', () => {
    it('tags and searches filename, tags and metadata; hostile queries never fail', async () => {
      await createProject({ id: 'search' });
      const a = (
        await upload(await makeJpeg({ seed: 70 }), { projectId: 'search' }, null, 'sunset-beach.jpg')
      ).json();
      const b = (
        await upload(await makeJpeg({ seed: 71 }), { projectId: 'search' }, null, 'office.jpg')
      ).json();
      const patched = await inject({
        method: 'PATCH',
        url: `/v1/assets/${b.id}`,
        payload: { tags: ['Holiday', 'team'] },
      });
      expect(patched.statusCode).toBe(200);
      expect(patched.json().tags).toEqual(['Holiday', 'team']);
      const ids = async (q: string) =>
        (await inject(`/v1/assets?projectId=search&q=${encodeURIComponent(q)}`))
          .json()
          .items.map((x: { id: string }) => x.id);
      expect(await ids('sunset')).toEqual([a.id]);
      expect(await ids('sun')).toEqual([a.id]);
      expect(await ids('holiday')).toEqual([b.id]);
      expect(await ids('holiday sunset')).toEqual([]);
      for (const q of ['"', "' OR 1=1 --", 'a* NOT b', 'x:y', '(((', 'NEAR(a b)', '-', '\\']) {
        const res = await inject(`/v1/assets?q=${encodeURIComponent(q)}`);
        expect(res.statusCode, q).toBe(200);
      }
      const badTags = await inject({
        method: 'PATCH',
        url: `/v1/assets/${a.id}`,
        payload: { tags: ['ok', ''] },
      });
      expect(badTags.statusCode).toBe(400);
    });

    it('reprocess adds a run; delete hides, restore brings back, purge removes every blob', async () => {
      const created = (await upload(await makeJpeg({ seed: 80 }))).json();
      await ready(created.id);
      const again = await inject({ method: 'POST', url: `/v1/assets/${created.id}/reprocess` });
      expect(again.statusCode).toBe(202);
      await waitFor(
        async () =>
          (await inject(`/v1/assets/${created.id}/runs`))
            .json()
            .items.every((r: { status: string }) => r.status === 'succeeded') && true,
        20_000,
        'the reprocess run',
      );
      expect((await inject(`/v1/assets/${created.id}/runs`)).json().items).toHaveLength(2);

      const del = await inject({ method: 'DELETE', url: `/v1/assets/${created.id}` });
      expect(del.statusCode).toBe(200);
      expect(del.json().purgeAfter).toEqual(expect.any(String));
      expect((await inject(`/v1/assets/${created.id}`)).statusCode).toBe(404);
      const deleted = (await inject('/v1/assets?deleted=true')).json().items.map((a: { id: string }) => a.id);
      expect(deleted).toContain(created.id);
      expect((await inject({ method: 'POST', url: `/v1/assets/${created.id}/restore` })).statusCode).toBe(
        200,
      );
      expect((await inject(`/v1/assets/${created.id}`)).json().status).toBe('ready');

      const keysBefore: string[] = [];
      for await (const b of container.blobs.list('')) keysBefore.push(b.key);
      const version = await container.catalog.getVersion(created.id, 1);
      expect(keysBefore).toContain(version!.originalKey);
      expect(
        (await inject({ method: 'DELETE', url: `/v1/assets/${created.id}?purge=true` })).statusCode,
      ).toBe(200);
      const keysAfter: string[] = [];
      for await (const b of container.blobs.list('')) keysAfter.push(b.key);
      expect(keysAfter).not.toContain(version!.originalKey);
      expect(keysAfter.filter((k) => k.includes(created.id))).toEqual([]);
      expect(await container.catalog.getAsset(created.id)).toBeUndefined();
    });

    it('processes an SVG but never serves it back as active content', async () => {
      const svg = Buffer.from(
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="32"><script>alert(1)</script><rect width="64" height="32" fill="red"/></svg>',
      );
      const res = await upload(svg, {}, null, 'logo.svg');
      expect(res.statusCode).toBe(201);
      expect(res.json().mimeType).toBe('image/svg+xml');
      const done = await ready(res.json().id);
      expect(done).toMatchObject({ status: 'ready', width: 64, height: 32 });
      const original = await inject(`/v1/assets/${done.id}/original`);
      expect(original.headers['content-type']).toBe('application/octet-stream');
      expect(original.headers['content-disposition']).toMatch(/^attachment/);
      expect(original.headers['x-content-type-options']).toBe('nosniff');
    });

    it('filenames with path tricks or 10 kB are stored safely', async () => {
      const tricky = await upload(await makeJpeg({ seed: 90 }), {}, null, '../../etc/passwd');
      expect(tricky.statusCode).toBe(201);
      expect(tricky.json().filename).toBe('passwd');
      const long = await upload(await makeJpeg({ seed: 91 }), {}, null, `${'x'.repeat(10_000)}.jpg`);
      expect(long.statusCode).toBe(201);
      expect(long.json().filename.length).toBeLessThanOrEqual(255);
    });
  });
});

describe('rate limit per key', () => {
  it('answers 429 with a problem body past the budget, per key', async () => {
    const { container, cleanup } = await testContainer({ ASSETPIPE_RATE_LIMIT: '5' });
    const app = await buildApp(container);
    try {
      const codes: number[] = [];
      for (let i = 0; i < 7; i++)
        codes.push((await app.inject({ url: '/v1/assets', headers: AUTH })).statusCode);
      expect(codes.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
      const limited = await app.inject({ url: '/v1/assets', headers: AUTH });
      expect(limited.statusCode).toBe(429);
      expect(limited.json().code).toBe('RATE_LIMITED');
      expect((await app.inject('/healthz')).statusCode).toBe(200);
    } finally {
      await app.close();
      await cleanup();
    }
  });
});
