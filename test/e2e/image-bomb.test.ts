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
import { makeCorruptHeaderJpeg, makeJpeg, makePngBomb } from '../helpers/images.js';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

describe('image uploads the server refuses or fails (HTTP in process)', () => {
  let app: FastifyInstance;
  let container: Container;
  let dataDir: string;
  let cleanup: () => Promise<void>;
  let stopWorkers: () => Promise<void>;

  function inject(options: string | InjectOptions): Promise<LightMyRequestResponse> {
    const opts: InjectOptions = typeof options === 'string' ? { url: options } : options;
    return app.inject({ ...opts, headers: { ...AUTH, ...(opts.headers ?? {}) } });
  }

  function upload(data: Buffer, name: string, contentType: string) {
    const form = multipart({ file: { name, data, contentType } });
    return inject({ method: 'POST', url: '/v1/assets', ...form });
  }

  async function storedFiles(): Promise<string[]> {
    return (await filesUnder(join(dataDir, 'blobs'))).sort();
  }

  beforeAll(async () => {
    ({ container, dataDir, cleanup } = await testContainer({ ASSETPIPE_WORKERS: '1' }));
    app = await buildApp(container);
    ({ stop: stopWorkers } = startWorkers(container));
  });
  afterAll(async () => {
    await stopWorkers();
    await app.close();
    await cleanup();
  });

  it('answers a decompression bomb (a tiny PNG declaring 30000 x 30000) with 422 IMAGE_TOO_LARGE, storing nothing', async () => {
    const bomb = makePngBomb(30000);
    expect(bomb.length).toBeLessThan(64 * 1024);
    const before = await storedFiles();

    const res = await upload(bomb, 'bomb.png', 'image/png');
    expect(res.statusCode).toBe(422);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    const problem = res.json<{ code: string; status: number; detail: string }>();
    expect(problem).toMatchObject({ status: 422, code: 'IMAGE_TOO_LARGE' });
    expect(problem.detail).toMatch(/30000 x 30000 pixels .*over this server's limit of 50 MP/);

    // Nothing stored, nothing catalogued, nothing queued.
    expect(await storedFiles()).toEqual(before);
    const listed = (await inject('/v1/assets')).json<{ items: unknown[] }>();
    expect(listed.items).toEqual([]);

    // The server still answers, and still takes a normal picture.
    expect((await inject('/healthz')).json()).toEqual({ status: 'ok' });
    const ok = await upload(await makeJpeg({ width: 64, height: 48 }), 'fine.jpg', 'image/jpeg');
    expect(ok.statusCode).toBe(201);
  });

  it('accepts a JPEG whose header is damaged, then ends its run failed with a reason', async () => {
    const res = await upload(await makeCorruptHeaderJpeg(), 'damaged.jpg', 'image/jpeg');
    // The sniffed bytes say JPEG and its header cannot be read from the prefix: the pipeline decides.
    expect(res.statusCode).toBe(201);
    const id = res.json<{ id: string }>().id;
    const asset = await waitFor(
      async () => {
        const body = (await inject(`/v1/assets/${id}`)).json<{ status: string; error: string | null }>();
        return body.status !== 'processing' && body;
      },
      20_000,
      `asset ${id} to finish`,
    );
    expect(asset.status).toBe('failed');
    expect(asset.error).toMatch(/header is damaged/);
  });
});
