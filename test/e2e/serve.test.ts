import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AssetRecord, getJson, getRuns, upload } from '../helpers/api.js';
import { ensureBuilt, PACKAGE_VERSION, ProcessGroup, type ServerHandle, waitFor } from '../helpers/cli.js';
import { noiseJpeg } from '../helpers/noise-images.js';
import { tempDir } from '../helpers/tmp.js';

describe('assetpipe serve (real process)', () => {
  const shared = new ProcessGroup(); // the server every test below talks to
  const perTest = new ProcessGroup(); // anything a single test starts
  let server: ServerHandle;
  let parent: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => {
    await ensureBuilt();
    parent = await tempDir('assetpipe-e2e-serve-');
    server = await shared.serve(join(parent.dir, 'data'), { cwd: parent.dir, args: ['--workers', '2'] });
  }, 300_000);

  afterEach(async () => {
    await perTest.killAll();
  });

  afterAll(async () => {
    await shared.killAll();
    await perTest.killAll();
    await parent?.cleanup();
  });

  it('serves the web page, /healthz, /readyz and /metrics', async () => {
    const page = await fetch(`${server.baseUrl}/`, { signal: AbortSignal.timeout(15_000) });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toContain('assetpipe');

    const health = await getJson<{ status: string }>(`${server.baseUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(health.body.status).toBe('ok');

    const ready = await getJson<{ status: string }>(`${server.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe('ready');

    const metrics = await fetch(`${server.baseUrl}/metrics`, { signal: AbortSignal.timeout(15_000) });
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^# (HELP|TYPE) /m);
  });

  it('takes a multipart upload (201) and processes it to ready with every step recorded', async () => {
    const bytes = await noiseJpeg(3, 320, 240);
    const res = await upload(server.baseUrl, bytes, 'photo.jpg', { type: 'image/jpeg' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const created = res.body as AssetRecord;
    expect(created.id).toMatch(/^ast_[0-9A-Z]{26}$/);
    expect(created).toMatchObject({
      filename: 'photo.jpg',
      type: 'image',
      mimeType: 'image/jpeg',
      size: bytes.length,
    });

    const ready = await waitFor(
      async () => {
        const { body } = await getJson<AssetRecord>(`${server.baseUrl}/v1/assets/${created.id}`);
        if (body.status === 'failed') throw new Error(`asset failed: ${body.error}`);
        return body.status === 'ready' ? body : undefined;
      },
      30_000,
      `asset ${created.id} to become ready`,
    );
    expect(ready.width).toBe(320);
    expect(ready.height).toBe(240);
    expect(ready.blurhash).toMatch(/^[0-9A-Za-z#$%*+,\-.:;=?@[\]^_{|}~]{20,}$/);
    // The default presets: thumb=320:webp;preview=1280:webp+avif (never enlarged).
    expect(ready.renditions.map((r) => r.name).sort()).toEqual([
      'preview.avif',
      'preview.webp',
      'thumb.webp',
    ]);

    const runs = await getRuns(server.baseUrl, created.id);
    expect(runs).toHaveLength(1);
    const [run] = runs;
    expect(run!.status).toBe('succeeded');
    expect(run!.steps.map((s) => s.name)).toEqual(['probe', 'placeholders', 'variants', 'publish']);
    for (const step of run!.steps) {
      expect(step.status, step.name).toBe('succeeded');
      expect(typeof step.durationMs, step.name).toBe('number');
      expect(Number.isFinite(step.durationMs), step.name).toBe(true);
      expect(step.durationMs!, step.name).toBeGreaterThanOrEqual(0);
    }
  });

  it('publishes an OpenAPI document at /docs/json with the asset paths', async () => {
    const { status, body } = await getJson<{
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
    }>(`${server.baseUrl}/docs/json`);
    expect(status).toBe(200);
    expect(body.openapi).toMatch(/^3\./);
    const paths = Object.keys(body.paths);
    for (const path of [
      '/v1/assets',
      '/v1/assets/{id}',
      '/v1/assets/{id}/runs',
      '/v1/assets/{id}/original',
    ]) {
      expect(paths, path).toContain(path);
    }
    expect(Object.keys(body.paths['/v1/assets'] ?? {})).toEqual(expect.arrayContaining(['get', 'post']));
  });

  it('exits with code 0 on SIGTERM', async () => {
    const own = await tempDir('assetpipe-e2e-sigterm-');
    try {
      const s = await perTest.serve(join(own.dir, 'data'), { cwd: own.dir });
      s.child.signal('SIGTERM');
      const exit = await s.child.waitForExit(30_000);
      expect(exit, s.child.dump()).toEqual({ code: 0, signal: null });
    } finally {
      await perTest.killAll();
      await own.cleanup();
    }
  });

  it('prints the package.json version for --version', async () => {
    const res = await perTest.run(['--version']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout.trim()).toBe(PACKAGE_VERSION);
  });

  it('documents its flags in serve --help', async () => {
    const res = await perTest.run(['serve', '--help']);
    expect(res.code, res.stderr).toBe(0);
    for (const flag of ['--port', '--host', '--data', '--workers', '--no-workers']) {
      expect(res.stdout, flag).toContain(flag);
    }
  });

  it('refuses an invalid ASSETPIPE_PORT with a message naming the variable', async () => {
    const own = await tempDir('assetpipe-e2e-badport-');
    try {
      const res = await perTest.run(['serve', '--data', join(own.dir, 'data')], {
        cwd: own.dir,
        env: { ASSETPIPE_PORT: 'abc' },
        timeoutMs: 30_000,
      });
      expect(res.code, res.stderr).not.toBe(0);
      expect(res.code, res.stderr).not.toBeNull();
      expect(res.stderr).toContain('ASSETPIPE_PORT');
      expect(res.stderr).toContain('abc');
    } finally {
      await own.cleanup();
    }
  });

  it('exits non-zero, naming the port, when the port is already in use', async () => {
    const own = await tempDir('assetpipe-e2e-portinuse-');
    try {
      const res = await perTest.run(
        ['serve', '--port', String(server.port), '--host', '127.0.0.1', '--data', join(own.dir, 'data')],
        { cwd: own.dir, timeoutMs: 30_000 },
      );
      expect(res.code, res.stderr).not.toBe(0);
      expect(res.code, res.stderr).not.toBeNull();
      expect(res.stderr).toContain(String(server.port));
      expect(res.stderr).toMatch(/in use/i);
      // The first server is unaffected.
      expect((await fetch(`${server.baseUrl}/healthz`, { signal: AbortSignal.timeout(15_000) })).status).toBe(
        200,
      );
    } finally {
      await own.cleanup();
    }
  });
});
