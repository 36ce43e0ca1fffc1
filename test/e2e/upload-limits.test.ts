import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type AssetRecord,
  expectProblem,
  filesUnder,
  getJson,
  listAllAssets,
  upload,
} from '../helpers/api.js';
import { AUTH } from '../helpers/auth.js';
import { ensureBuilt, ProcessGroup, type ServerHandle } from '../helpers/cli.js';
import { noiseJpeg } from '../helpers/noise-images.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const ENV = { ASSETPIPE_MAX_UPLOAD_BYTES: '1MiB' };

/** A valid small JPEG followed by zero padding up to `size` bytes: sniffed as image/jpeg. */
function paddedJpeg(jpeg: Buffer, size: number): Buffer {
  const out = Buffer.alloc(size);
  jpeg.copy(out);
  return out;
}

async function fetchProblem(url: string): Promise<{ status: number; body: unknown; contentType: string }> {
  return getJson<unknown>(url);
}

describe('upload limits and request validation (ASSETPIPE_MAX_UPLOAD_BYTES=1MiB)', () => {
  const shared = new ProcessGroup();
  const perTest = new ProcessGroup();
  const dirs: Array<() => Promise<void>> = [];
  let jpeg: Buffer;
  let server: ServerHandle;

  /** A server of its own on a fresh data dir (inside a fresh parent, the child's cwd). */
  async function freshServer(group: ProcessGroup): Promise<ServerHandle & { parent: string; data: string }> {
    const parent = await tempDir('assetpipe-e2e-limits-');
    dirs.push(parent.cleanup);
    const data = join(parent.dir, 'data');
    const s = await group.serve(data, { cwd: parent.dir, env: ENV });
    return { ...s, parent: parent.dir, data };
  }

  beforeAll(async () => {
    await ensureBuilt();
    jpeg = await noiseJpeg(1, 320, 240);
    server = await freshServer(shared);
  }, 300_000);

  afterEach(async () => {
    await perTest.killAll();
  });

  afterAll(async () => {
    await perTest.killAll();
    await shared.killAll();
    for (const cleanup of dirs) await cleanup();
  });

  it('refuses uploads over the limit with 413 UPLOAD_TOO_LARGE, stores nothing and keeps serving', async () => {
    const s = await freshServer(perTest);
    // 2 MiB: refused from Content-Length; 1.5 MiB: within the multipart allowance, cut off while streaming.
    for (const size of [2 * MiB, 1.5 * MiB]) {
      const res = await upload(s.baseUrl, paddedJpeg(jpeg, size), 'big.jpg', { type: 'image/jpeg' });
      expectProblem(res, 413, 'UPLOAD_TOO_LARGE');
      expect((await getJson<{ status: string }>(`${s.baseUrl}/healthz`)).status, `after ${size} bytes`).toBe(
        200,
      );
    }
    expect(await listAllAssets(s.baseUrl)).toEqual([]);
    expect(await filesUnder(join(s.data, 'blobs', 'objects'))).toEqual([]);
    expect(await filesUnder(join(s.data, 'blobs', 'tmp'))).toEqual([]);

    // Just under the limit is fine.
    const ok = await upload(s.baseUrl, paddedJpeg(jpeg, MiB), 'exactly-1MiB.jpg', { type: 'image/jpeg' });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    expect((ok.body as AssetRecord).size).toBe(MiB);
  });

  it('keeps only the last path component of a filename such as ../../etc/passwd', async () => {
    const s = await freshServer(perTest);
    const passwdBefore = await stat('/etc/passwd').catch(() => undefined);
    const res = await upload(s.baseUrl, jpeg, '../../etc/passwd', { type: 'image/jpeg' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const asset = res.body as AssetRecord;
    expect(asset.filename).toBe('passwd');

    const original = await fetch(`${s.baseUrl}/v1/assets/${asset.id}/original`, {
      headers: AUTH,
      signal: AbortSignal.timeout(15_000),
    });
    expect(original.status).toBe(200);
    expect(Buffer.from(await original.arrayBuffer()).equals(jpeg)).toBe(true);

    // Nothing was written outside the data dir: its parent holds only `data`, and no file is named after the upload.
    expect(await filesUnder(s.parent).then((files) => files.filter((f) => !f.startsWith('data/')))).toEqual(
      [],
    );
    expect((await filesUnder(s.data)).filter((f) => f.includes('passwd'))).toEqual([]);
    await expect(stat(join(s.data, '..', '..', 'etc', 'passwd'))).rejects.toMatchObject({ code: 'ENOENT' });
    const passwdAfter = await stat('/etc/passwd').catch(() => undefined);
    expect(passwdAfter?.mtimeMs).toBe(passwdBefore?.mtimeMs);
  });

  it('refuses text content named photo.jpg with 415 MEDIA_UNSUPPORTED and stores nothing', async () => {
    const s = await freshServer(perTest);
    const text = Buffer.from('Just some text that claims to be a photo.\n'.repeat(100));
    const res = await upload(s.baseUrl, text, 'photo.jpg', { type: 'image/jpeg' });
    expectProblem(res, 415, 'MEDIA_UNSUPPORTED');
    expect(await listAllAssets(s.baseUrl)).toEqual([]);
    expect(await filesUnder(join(s.data, 'blobs', 'objects'))).toEqual([]);
    expect((await getJson<{ status: string }>(`${s.baseUrl}/healthz`)).status).toBe(200);
  });

  it('refuses an empty file with 400 FILE_EMPTY', async () => {
    const res = await upload(server.baseUrl, new Uint8Array(0), 'empty.jpg', { type: 'image/jpeg' });
    expectProblem(res, 400, 'FILE_EMPTY');
  });

  it('refuses a form without a `file` field with 400 FILE_FIELD_MISSING', async () => {
    const onlyFields = new FormData();
    onlyFields.append('projectId', 'default');
    const res = await fetch(`${server.baseUrl}/v1/assets`, {
      headers: AUTH,
      method: 'POST',
      body: onlyFields,
      signal: AbortSignal.timeout(15_000),
    });
    expectProblem(
      { status: res.status, body: await res.json(), contentType: res.headers.get('content-type') ?? '' },
      400,
      'FILE_FIELD_MISSING',
    );

    const wrongField = await upload(server.baseUrl, jpeg, 'photo.jpg', {
      field: 'upload',
      type: 'image/jpeg',
    });
    expectProblem(wrongField, 400, 'FILE_FIELD_MISSING');
  });

  it('answers invalid list queries and malformed paths with 400 problems', async () => {
    const cases: Array<[string, string]> = [
      ['/v1/assets?limit=abc', 'QUERY_INVALID'],
      ['/v1/assets?limit=0', 'QUERY_INVALID'],
      ['/v1/assets?cursor=!!!', 'CURSOR_INVALID'],
      ['/v1/assets?status=bogus', 'QUERY_INVALID'],
      ['/v1/assets/%E0%A4%A', 'URL_INVALID'],
    ];
    for (const [path, code] of cases) {
      const res = await fetchProblem(`${server.baseUrl}${path}`);
      expect(res.status, path).toBe(400);
      expectProblem(res, 400, code);
    }
  });

  it('answers an unknown asset id with 404 ASSET_NOT_FOUND', async () => {
    for (const path of [
      '/v1/assets/ast_01ARZ3NDEKTSV4RRFFQ69G5FAV',
      '/v1/assets/ast_01ARZ3NDEKTSV4RRFFQ69G5FAV/runs',
      '/v1/assets/ast_01ARZ3NDEKTSV4RRFFQ69G5FAV/original',
      '/v1/assets/no-such-asset',
    ]) {
      const res = await fetchProblem(`${server.baseUrl}${path}`);
      expect(res.status, path).toBe(404);
      expectProblem(res, 404, 'ASSET_NOT_FOUND');
    }
  });
});
