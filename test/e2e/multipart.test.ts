import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { Container } from '../../src/container.js';
import { startWorkers } from '../../src/workers.js';
import { AUTH } from '../helpers/auth.js';
import { testContainer, waitFor } from '../helpers/container.js';
import {
  CompanionClient,
  fetchJson,
  inParallel,
  type JsonResponse,
  makeWav,
  putBytes,
  sha256,
  splitParts,
  WAV_BYTE_RATE,
} from '../helpers/s3-multipart-client.js';

// S3-style multipart uploads against a real listening server: part URLs are absolute URLs that the
// client PUTs to, so everything here goes over real HTTP (fetch and node:http), not inject().

const KiB = 1024;
const MiB = 1024 * KiB;

interface Asset {
  id: string;
  projectId: string;
  filename: string;
  type: string;
  mimeType: string;
  size: number;
  sha256: string;
  status: 'processing' | 'ready' | 'failed';
  error: string | null;
  durationSec: number | null;
  mediaId: string | null;
}

interface Problem {
  status: number;
  code: string;
  detail: string;
}

interface Server {
  app: FastifyInstance;
  container: Container;
  baseUrl: string;
  dataDir: string;
  stop: () => Promise<void>;
}

async function startServer(env: Record<string, string>): Promise<Server> {
  const { container, dataDir, cleanup } = await testContainer({
    ASSETPIPE_WORKERS: '2',
    ASSETPIPE_RATE_LIMIT: '0',
    ...env,
  });
  const app = await buildApp(container);
  const workers = startWorkers(container);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return {
    app,
    container,
    baseUrl: `http://127.0.0.1:${port}`,
    dataDir,
    stop: async () => {
      await workers.stop();
      await app.close();
      await cleanup();
    },
  };
}

/** A problem body (RFC 9457 + `code`) with this status and code; never a 500 in disguise. */
function expectProblem(res: JsonResponse<unknown>, status: number, code: string): Problem {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.contentType).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, code });
  return res.body as Problem;
}

/** The same for a part PUT's response. */
function expectPutProblem(res: { status: number; body: unknown }, status: number, code: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body).toMatchObject({ status, code });
}

describe('S3-style multipart uploads over HTTP', () => {
  let server: Server;
  let baseUrl: string;
  let companion: CompanionClient;

  const api = <T = unknown>(
    path: string,
    init: { method?: string; json?: unknown; key?: string | null } = {},
  ): Promise<JsonResponse<T>> => {
    const auth: Record<string, string> =
      init.key === undefined ? AUTH : init.key === null ? {} : { authorization: `Bearer ${init.key}` };
    return fetchJson<T>(`${baseUrl}${path}`, { method: init.method, json: init.json, headers: auth });
  };

  const multipartDir = () => join(server.dataDir, 'blobs', 'multipart');

  async function multipartEntries(): Promise<string[]> {
    try {
      return (await readdir(multipartDir())).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  /**
   * Every file under the blob root whose bytes hash to `hex`. Other work of the server (the
   * pipeline's outputs of earlier tests) writes temporary files and renames them meanwhile: a file
   * gone between the listing and its read was not one of ours at rest.
   */
  async function blobFilesWithSha(hex: string, size: number): Promise<string[]> {
    const found: string[] = [];
    const root = join(server.dataDir, 'blobs');
    for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const path = join(entry.parentPath, entry.name);
      try {
        if ((await stat(path)).size !== size) continue;
        if (sha256(await readFile(path)) === hex) found.push(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return found;
  }

  async function ready(id: string): Promise<Asset> {
    return waitFor(
      async () => {
        const res = await api<Asset>(`/v1/assets/${id}`);
        expect(res.status).toBe(200);
        return res.body.status !== 'processing' && res.body;
      },
      30_000,
      `asset ${id} to finish processing`,
    );
  }

  async function assetIds(projectId = 'default'): Promise<string[]> {
    const res = await api<{ items: Asset[]; nextCursor: string | null }>(
      `/v1/assets?projectId=${projectId}&limit=1000`,
    );
    expect(res.status).toBe(200);
    expect(res.body.nextCursor).toBeNull();
    return res.body.items.map((a) => a.id);
  }

  async function createKey(scopes: string[], projectId?: string): Promise<string> {
    const res = await api<{ key: string }>('/v1/keys', {
      method: 'POST',
      json: { name: `multipart-${scopes.join('-')}`, scopes, projectId },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.key;
  }

  /** Native API: start an upload. */
  async function start(body: Record<string, unknown> = { filename: 'clip.wav', contentType: 'audio/wav' }) {
    const res = await api<{ uploadId: string; key: string }>('/v1/uploads/multipart', {
      method: 'POST',
      json: body,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.uploadId).toMatch(/^upl_[0-9A-Z]{26}$/);
    return res.body.uploadId;
  }

  /** Native API: signed part URLs. */
  async function sign(uploadId: string, partNumbers: number[]): Promise<Record<string, string>> {
    const res = await api<{ urls: Record<string, string> }>(`/v1/uploads/multipart/${uploadId}/sign`, {
      method: 'POST',
      json: { partNumbers },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.urls;
  }

  /** PUTs `data` to a signed URL and returns the part's etag. */
  async function put(url: string | undefined, data: Buffer): Promise<string> {
    expect(url).toBeDefined();
    const res = await putBytes(url!, data);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.etag).toBeTruthy();
    return res.etag!;
  }

  function complete(uploadId: string, parts?: Array<{ partNumber: number; etag: string }>) {
    return api<Asset & { outcome: string }>(`/v1/uploads/multipart/${uploadId}/complete`, {
      method: 'POST',
      json: parts === undefined ? undefined : { parts },
    });
  }

  /** A small WAV uploaded as `parts` parts (not completed). */
  async function uploadParts(bytes: Buffer, partCount: number, body?: Record<string, unknown>) {
    const uploadId = await start(body);
    const pieces = splitParts(bytes, Math.ceil(bytes.length / partCount));
    const urls = await sign(
      uploadId,
      pieces.map((p) => p.partNumber),
    );
    const parts = await Promise.all(
      pieces.map(async (p) => ({ partNumber: p.partNumber, etag: await put(urls[p.partNumber], p.data) })),
    );
    return { uploadId, parts, urls };
  }

  beforeAll(async () => {
    server = await startServer({});
    baseUrl = server.baseUrl;
    companion = new CompanionClient(`${baseUrl}/v1/uploads`, AUTH);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('an @uppy/aws-s3 client (Companion protocol) uploads a 50 MiB WAV in 6 MiB parts, 4 at a time, surviving a dropped and a corrupted part', async () => {
    const file = makeWav(50 * MiB);
    const parts = splitParts(file, 6 * MiB);
    expect(parts).toHaveLength(9);
    const DROPPED = 3; // first PUT aborted midway, then retried with a freshly signed URL
    const CORRUPTED = 6; // first PUT carries wrong bytes, then the right ones replace them

    const created = await companion.createMultipartUpload({
      name: 'field-recording.wav',
      type: 'audio/wav',
      meta: { mediaId: 'uppy-50mib' },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const { uploadId, key } = created.body;
    expect(uploadId).toMatch(/^upl_/);
    expect(typeof key).toBe('string');

    // Uppy 3 presigns the first `limit` parts in one batch; Uppy 4 signs each part on its own.
    const batch = await companion.signParts(uploadId, key, [1, 2, 3, 4]);
    expect(batch.status, JSON.stringify(batch.body)).toBe(200);
    expect(Object.keys(batch.body.presignedUrls).sort()).toEqual(['1', '2', '3', '4']);
    const signed = new Map(Object.entries(batch.body.presignedUrls).map(([n, url]) => [Number(n), url]));

    const signOne = async (n: number) => {
      const res = await companion.signPart(uploadId, key, n);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.url;
    };
    let corruptEtag: string | undefined;
    const uploaded = await inParallel(
      4,
      parts.map((part) => async () => {
        let url = signed.get(part.partNumber) ?? (await signOne(part.partNumber));
        expect(url.startsWith(`${baseUrl}/v1/uploads/parts/${uploadId}/${part.partNumber}?`)).toBe(true);
        if (part.partNumber === DROPPED) {
          await expect(putBytes(url, part.data, { abortAfterBytes: 2 * MiB })).rejects.toThrow();
          url = await signOne(part.partNumber); // Uppy re-signs before retrying a part
        }
        if (part.partNumber === CORRUPTED) {
          const wrong = await putBytes(url, randomBytes(part.data.length));
          expect(wrong.status).toBe(200);
          corruptEtag = wrong.etag;
          expect(corruptEtag).toBeTruthy();
        }
        const res = await putBytes(url, part.data);
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        expect(res.etag).toBeTruthy();
        return { PartNumber: part.partNumber, ETag: res.etag! };
      }),
    );
    expect(uploaded[CORRUPTED - 1]!.ETag).not.toBe(corruptEtag);

    // What Uppy asks for when it resumes: every part, with the size and etag of its last PUT.
    const listed = await companion.listParts(uploadId, key);
    expect(listed.status, JSON.stringify(listed.body)).toBe(200);
    expect(listed.body).toEqual(
      parts.map((p, i) => ({ PartNumber: p.partNumber, Size: p.data.length, ETag: uploaded[i]!.ETag })),
    );

    const done = await companion.completeMultipartUpload(uploadId, key, uploaded);
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(done.body.location).toMatch(/^\/v1\/assets\/[^/]+$/);
    expect(done.body.location).toBe(`/v1/assets/${done.body.id}`);

    const asset = await api<Asset>(done.body.location);
    expect(asset.status).toBe(200);
    expect(asset.body).toMatchObject({
      size: file.length,
      sha256: sha256(file),
      filename: 'field-recording.wav',
      mediaId: 'uppy-50mib',
      type: 'audio',
    });
    const finished = await ready(asset.body.id);
    expect(finished.status, finished.error ?? '').toBe('ready');
    expect(finished.durationSec).toBeCloseTo((file.length - 44) / WAV_BYTE_RATE, 0);

    const original = await fetch(`${baseUrl}/v1/assets/${asset.body.id}/original`, { headers: AUTH });
    expect(original.status).toBe(200);
    expect(sha256(Buffer.from(await original.arrayBuffer()))).toBe(sha256(file));
  });

  it('abort (DELETE) removes the parts: listing them gives 404 UPLOAD_NOT_FOUND and nothing is left under blobs/multipart', async () => {
    const before = await multipartEntries();
    const created = await companion.createMultipartUpload({ name: 'dropped.wav', type: 'audio/wav' });
    expect(created.status).toBe(200);
    const { uploadId, key } = created.body;
    const parts = splitParts(makeWav(2 * MiB), MiB);
    const urls = (await companion.signParts(uploadId, key, [1, 2])).body.presignedUrls;
    for (const p of parts) await put(urls[p.partNumber], p.data);

    // The parts are on disk, in a folder of their own.
    const added = (await multipartEntries()).filter((name) => !before.includes(name));
    expect(added).toHaveLength(1);
    const partFiles = (await readdir(join(multipartDir(), added[0]!))).filter((n) => /^\d+$/.test(n));
    expect(partFiles.sort()).toEqual(['1', '2']);
    expect((await companion.listParts(uploadId, key)).body).toHaveLength(2);

    const aborted = await companion.abortMultipartUpload(uploadId, key);
    expect(aborted.status, JSON.stringify(aborted.body)).toBe(200);

    expectProblem(await companion.listParts(uploadId, key), 404, 'UPLOAD_NOT_FOUND');
    expectProblem(await api(`/v1/uploads/multipart/${uploadId}/parts`), 404, 'UPLOAD_NOT_FOUND');
    expect(await multipartEntries()).toEqual(before);

    // The old part URLs and a late complete find no upload, and resurrect nothing.
    expectPutProblem(await putBytes(urls[1]!, parts[0]!.data), 404, 'UPLOAD_NOT_FOUND');
    expectProblem(
      await companion.completeMultipartUpload(uploadId, key, [{ PartNumber: 1, ETag: '"x"' }]),
      404,
      'UPLOAD_NOT_FOUND',
    );
    expectProblem(await companion.signPart(uploadId, key, 1), 404, 'UPLOAD_NOT_FOUND');
    expect(await multipartEntries()).toEqual(before);
    expect(await blobFilesWithSha(sha256(parts[0]!.data), parts[0]!.data.length)).toEqual([]);
  });

  it("the seeds' flow: POST /uploads/presign for 3 parts, PUT them, complete without a parts list -> ready and found by mediaId", async () => {
    const file = makeWav(5 * MiB + 5 * MiB + 100 * KiB);
    const res = await api<{ bucket: string; key: string; uploadId: string; presignedUrls: string[] }>(
      '/uploads/presign',
      {
        method: 'POST',
        json: {
          filename: 'seed.wav',
          contentType: 'audio/wav',
          projectId: 'default',
          mediaId: 'seed-1',
          parts: 3,
        },
      },
    );
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const { bucket, key, uploadId, presignedUrls } = res.body;
    expect(bucket).toEqual(expect.any(String));
    expect(bucket.length).toBeGreaterThan(0);
    expect(key).toEqual(expect.any(String));
    expect(uploadId).toMatch(/^upl_/);
    expect(presignedUrls).toHaveLength(3);
    expect(new Set(presignedUrls).size).toBe(3);
    presignedUrls.forEach((url, i) => {
      expect(url.startsWith(`${baseUrl}/v1/uploads/parts/${uploadId}/${i + 1}?`)).toBe(true);
    });

    const pieces = [file.subarray(0, 5 * MiB), file.subarray(5 * MiB, 10 * MiB), file.subarray(10 * MiB)];
    await Promise.all(pieces.map((data, i) => put(presignedUrls[i], data)));

    const done = await complete(uploadId);
    expect(done.status, JSON.stringify(done.body)).toBe(201);
    expect(done.body).toMatchObject({
      size: file.length,
      sha256: sha256(file),
      mediaId: 'seed-1',
      filename: 'seed.wav',
    });
    const finished = await ready(done.body.id);
    expect(finished.status, finished.error ?? '').toBe('ready');

    const found = await api<{ items: Asset[] }>('/v1/assets?mediaId=seed-1');
    expect(found.status).toBe(200);
    expect(found.body.items.map((a) => a.id)).toEqual([done.body.id]);

    // The same call under /v1 answers alike.
    const v1 = await api<{ uploadId: string; presignedUrls: string[] }>('/v1/uploads/presign', {
      method: 'POST',
      json: { filename: 'seed2.wav', contentType: 'audio/wav', parts: 2 },
    });
    expect(v1.status, JSON.stringify(v1.body)).toBe(201);
    expect(v1.body.presignedUrls).toHaveLength(2);
    expect((await api(`/v1/uploads/multipart/${v1.body.uploadId}`, { method: 'DELETE' })).status).toBe(204);
  });

  describe('bad input gets a problem body, never a 500', () => {
    it('refuses parts once the upload as a whole would pass its declared size, before completion', async () => {
      const uploadId = await start({ filename: 'clip.wav', contentType: 'audio/wav', size: 6 * MiB });
      const urls = await sign(uploadId, [1, 2, 3]);
      await put(urls[1], makeWav(5 * MiB));
      // 5 MiB stored + 2 MiB more > the 6 MiB declared: refused while streaming, nothing kept.
      expectPutProblem(await putBytes(urls[2]!, randomBytes(2 * MiB)), 413, 'UPLOAD_TOO_LARGE');
      const parts = await api<{ parts: Array<{ partNumber: number }> }>(
        `/v1/uploads/multipart/${uploadId}/parts`,
      );
      expect(parts.body.parts.map((p) => p.partNumber)).toEqual([1]);
      // Without a Content-Length (chunked), the limit cuts the stream: still a 413 the client can read.
      const chunked = await fetch(urls[3]!, {
        method: 'PUT',
        body: Readable.toWeb(Readable.from([randomBytes(MiB), randomBytes(MiB)])) as ReadableStream,
        duplex: 'half',
      } as RequestInit);
      expect(chunked.status).toBe(413);
      expect(((await chunked.json()) as { code: string }).code).toBe('UPLOAD_TOO_LARGE');
      // Re-sending part 1 itself is still fine: it replaces, it does not add.
      await put(urls[1], makeWav(5 * MiB));
    });

    it('a tampered part URL (part number, exp, kid, one sig character, no sig) -> 403 SIGNATURE_INVALID; the genuine one works', async () => {
      const uploadId = await start();
      const urls = await sign(uploadId, [1]);
      const genuine = urls[1]!;
      const data = makeWav(64 * KiB);

      const edit = (change: (u: URL) => void) => {
        const u = new URL(genuine);
        change(u);
        return u.href;
      };
      const sig = new URL(genuine).searchParams.get('sig')!;
      const flipped = sig.slice(0, 10) + (sig[10] === 'A' ? 'B' : 'A') + sig.slice(11);
      const tampered = {
        'part number': edit((u) => {
          u.pathname = u.pathname.replace(/\/1$/, '/2');
        }),
        exp: edit((u) => u.searchParams.set('exp', String(Number(u.searchParams.get('exp')) + 3600))),
        kid: edit((u) => u.searchParams.set('kid', 'someone-else')),
        'sig character': edit((u) => u.searchParams.set('sig', flipped)),
        'no sig': edit((u) => u.searchParams.delete('sig')),
      };
      for (const [what, url] of Object.entries(tampered)) {
        expect(url, what).not.toBe(genuine);
        const res = await putBytes(url, data);
        expect(res.status, `${what}: ${JSON.stringify(res.body)}`).toBe(403);
        expect(res.body, what).toMatchObject({ code: 'SIGNATURE_INVALID' });
      }
      const listedBefore = await api<{ parts: unknown[] }>(`/v1/uploads/multipart/${uploadId}/parts`);
      expect(listedBefore.body.parts).toEqual([]);

      const etag = await put(genuine, data);
      const listed = await api<{ parts: unknown[] }>(`/v1/uploads/multipart/${uploadId}/parts`);
      expect(listed.body.parts).toEqual([{ partNumber: 1, etag, size: data.length }]);
      expect((await api(`/v1/uploads/multipart/${uploadId}`, { method: 'DELETE' })).status).toBe(204);
    });

    it('signing part number 0, 10001 or a non-number -> 400 VALIDATION_FAILED, on every signing endpoint', async () => {
      const created = await companion.createMultipartUpload({ name: 'n.wav', type: 'audio/wav' });
      const { uploadId, key } = created.body;
      for (const n of [0, 10_001, -1, 'abc', '1.5']) {
        expectProblem(await companion.signPart(uploadId, key, n), 400, 'VALIDATION_FAILED');
      }
      for (const numbers of [[0], [10_001], [1, 0], [1, 10_001]]) {
        expectProblem(await companion.signParts(uploadId, key, numbers), 400, 'VALIDATION_FAILED');
      }
      expectProblem(await companion.signParts(uploadId, key, []), 400, 'VALIDATION_FAILED');
      for (const partNumbers of [[0], [10_001], [2, 10_001]]) {
        expectProblem(
          await api(`/v1/uploads/multipart/${uploadId}/sign`, { method: 'POST', json: { partNumbers } }),
          400,
          'VALIDATION_FAILED',
        );
      }
      expectProblem(
        await api('/v1/uploads/presign', { method: 'POST', json: { filename: 'x.wav', parts: 10_001 } }),
        400,
        'VALIDATION_FAILED',
      );
      // The edges themselves are fine.
      const ok = await companion.signParts(uploadId, key, [1, 10_000]);
      expect(ok.status, JSON.stringify(ok.body)).toBe(200);
      expect(Object.keys(ok.body.presignedUrls).sort()).toEqual(['1', '10000']);
      expect((await companion.abortMultipartUpload(uploadId, key)).status).toBe(200);
    });

    it('complete listing a part never uploaded (or a wrong etag) -> 400, and the upload can still be completed correctly', async () => {
      const file = makeWav(768 * KiB);
      const pieces = splitParts(file, 256 * KiB);
      const uploadId = await start({ filename: 'gappy.wav', contentType: 'audio/wav' });
      const urls = await sign(uploadId, [1, 2, 3]);
      const e1 = await put(urls[1], pieces[0]!.data);
      const e3 = await put(urls[3], pieces[2]!.data);
      const before = await assetIds();

      const made = `"${'0'.repeat(64)}"`;
      for (const parts of [
        [
          { partNumber: 1, etag: e1 },
          { partNumber: 2, etag: made },
          { partNumber: 3, etag: e3 },
        ],
        [
          { partNumber: 1, etag: e1 },
          { partNumber: 3, etag: e3 },
          { partNumber: 7, etag: e3 },
        ],
        [
          { partNumber: 1, etag: e3 },
          { partNumber: 3, etag: e3 },
        ],
        [
          { partNumber: 3, etag: e3 },
          { partNumber: 1, etag: e1 },
        ],
        [{ partNumber: 0, etag: e1 }],
        [],
      ]) {
        expectProblem(await complete(uploadId, parts), 400, 'VALIDATION_FAILED');
      }
      expectProblem(
        await api(`/v1/uploads/multipart/${uploadId}/complete`, {
          method: 'POST',
          json: { parts: [{ partNumber: 1 }] },
        }),
        400,
        'VALIDATION_FAILED',
      );
      expect(await assetIds()).toEqual(before);

      // Still open, parts intact: upload the missing one and complete for real.
      const listed = await api<{ parts: Array<{ partNumber: number }> }>(
        `/v1/uploads/multipart/${uploadId}/parts`,
      );
      expect(listed.body.parts.map((p) => p.partNumber)).toEqual([1, 3]);
      const e2 = await put(urls[2], pieces[1]!.data);
      const done = await complete(uploadId, [
        { partNumber: 1, etag: e1 },
        { partNumber: 2, etag: e2 },
        { partNumber: 3, etag: e3 },
      ]);
      expect(done.status, JSON.stringify(done.body)).toBe(201);
      expect(done.body).toMatchObject({ size: file.length, sha256: sha256(file), outcome: 'created' });
      expect((await ready(done.body.id)).status).toBe('ready');
    });

    it('concurrent completes of one upload make exactly one asset with one run; the others get 409 UPLOAD_CONFLICT or the same asset', async () => {
      const file = makeWav(8 * MiB);
      const { uploadId, parts } = await uploadParts(file, 2, {
        filename: 'race.wav',
        contentType: 'audio/wav',
      });
      const before = await assetIds();

      const results = await Promise.all([
        complete(uploadId, parts),
        complete(uploadId),
        companion.completeMultipartUpload(
          uploadId,
          'ignored',
          parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })),
        ),
      ]);
      const winners = results.filter((r) => r.status === 200 || r.status === 201);
      expect(winners.length).toBeGreaterThanOrEqual(1);
      const ids = new Set(winners.map((r) => (r.body as Asset).id));
      expect(ids.size).toBe(1);
      const [id] = [...ids] as [string];
      for (const r of results) {
        if (r.status === 200 || r.status === 201) continue;
        expectProblem(r, 409, 'UPLOAD_CONFLICT');
      }
      expect(results.filter((r) => r.status === 201).length).toBeLessThanOrEqual(1);

      const after = await assetIds();
      expect(after.filter((a) => !before.includes(a))).toEqual([id]);
      expect(after).toHaveLength(before.length + 1);
      const asset = await ready(id);
      expect(asset).toMatchObject({ sha256: sha256(file), size: file.length, status: 'ready' });
      const runs = await api<{ items: unknown[] }>(`/v1/assets/${id}/runs`);
      expect(runs.status).toBe(200);
      expect(runs.body.items).toHaveLength(1);
    });

    it('completing again after success -> 200 with the same asset (native and Companion); abort after success -> 409', async () => {
      const file = makeWav(512 * KiB);
      const { uploadId, parts } = await uploadParts(file, 2);
      const first = await complete(uploadId, parts);
      expect(first.status, JSON.stringify(first.body)).toBe(201);
      const id = first.body.id;
      const count = (await assetIds()).length;

      const again = await complete(uploadId, parts);
      expect(again.status, JSON.stringify(again.body)).toBe(200);
      expect(again.body).toMatchObject({ id, outcome: 'completed-before' });
      const bare = await complete(uploadId);
      expect(bare.status).toBe(200);
      expect(bare.body.id).toBe(id);
      const viaCompanion = await companion.completeMultipartUpload(uploadId, 'k', [
        { PartNumber: 1, ETag: parts[0]!.etag },
      ]);
      expect(viaCompanion.status).toBe(200);
      expect(viaCompanion.body).toMatchObject({ id, location: `/v1/assets/${id}` });

      expectProblem(
        await api(`/v1/uploads/multipart/${uploadId}`, { method: 'DELETE' }),
        409,
        'UPLOAD_CONFLICT',
      );
      expectProblem(await api(`/v1/uploads/multipart/${uploadId}/parts`), 404, 'UPLOAD_NOT_FOUND');
      expect(await assetIds()).toHaveLength(count);
      const runs = await api<{ items: unknown[] }>(`/v1/assets/${id}/runs`);
      expect(runs.body.items).toHaveLength(1);
    });

    it('no API key on the Companion calls -> 401 UNAUTHORIZED (the upload is untouched)', async () => {
      const anonymous = new CompanionClient(`${baseUrl}/v1/uploads`, {});
      expectProblem(
        await anonymous.createMultipartUpload({ name: 'a.wav', type: 'audio/wav' }),
        401,
        'UNAUTHORIZED',
      );
      const garbage = new CompanionClient(`${baseUrl}/v1/uploads`, { authorization: 'Bearer nope' });
      expectProblem(
        await garbage.createMultipartUpload({ name: 'a.wav', type: 'audio/wav' }),
        401,
        'UNAUTHORIZED',
      );
      expectProblem(
        await api('/uploads/presign', { method: 'POST', json: { parts: 1 }, key: null }),
        401,
        'UNAUTHORIZED',
      );

      const { uploadId, key } = (await companion.createMultipartUpload({ name: 'a.wav', type: 'audio/wav' }))
        .body;
      expectProblem(await anonymous.signParts(uploadId, key, [1]), 401, 'UNAUTHORIZED');
      expectProblem(await anonymous.signPart(uploadId, key, 1), 401, 'UNAUTHORIZED');
      expectProblem(await anonymous.listParts(uploadId, key), 401, 'UNAUTHORIZED');
      expectProblem(
        await anonymous.completeMultipartUpload(uploadId, key, [{ PartNumber: 1, ETag: '"x"' }]),
        401,
        'UNAUTHORIZED',
      );
      expectProblem(await anonymous.abortMultipartUpload(uploadId, key), 401, 'UNAUTHORIZED');
      const listed = await companion.listParts(uploadId, key);
      expect(listed.status).toBe(200);
      expect(listed.body).toEqual([]);
      expect((await companion.abortMultipartUpload(uploadId, key)).status).toBe(200);
    });

    it('a read key cannot create an upload, sign its parts, complete or abort it -> 403 FORBIDDEN', async () => {
      const readKey = await createKey(['read']);
      const reader = new CompanionClient(`${baseUrl}/v1/uploads`, { authorization: `Bearer ${readKey}` });
      expectProblem(
        await reader.createMultipartUpload({ name: 'r.wav', type: 'audio/wav' }),
        403,
        'FORBIDDEN',
      );
      expectProblem(
        await api('/v1/uploads/multipart', { method: 'POST', json: { filename: 'r.wav' }, key: readKey }),
        403,
        'FORBIDDEN',
      );
      expectProblem(
        await api('/uploads/presign', { method: 'POST', json: { parts: 1 }, key: readKey }),
        403,
        'FORBIDDEN',
      );

      // Signing part URLs hands out the right to write bytes: not for a read key, even over GET.
      const { uploadId, key } = (await companion.createMultipartUpload({ name: 'r.wav', type: 'audio/wav' }))
        .body;
      expectProblem(await reader.signParts(uploadId, key, [1]), 403, 'FORBIDDEN');
      expectProblem(await reader.signPart(uploadId, key, 1), 403, 'FORBIDDEN');
      expectProblem(
        await api(`/v1/uploads/multipart/${uploadId}/sign`, {
          method: 'POST',
          json: { partNumbers: [1] },
          key: readKey,
        }),
        403,
        'FORBIDDEN',
      );
      expectProblem(
        await reader.completeMultipartUpload(uploadId, key, [{ PartNumber: 1, ETag: '"x"' }]),
        403,
        'FORBIDDEN',
      );
      expectProblem(await reader.abortMultipartUpload(uploadId, key), 403, 'FORBIDDEN');
      expect((await companion.listParts(uploadId, key)).status).toBe(200);
      expect((await companion.abortMultipartUpload(uploadId, key)).status).toBe(200);
    });

    it('a key bound to another project cannot see or touch this upload -> 404 UPLOAD_NOT_FOUND', async () => {
      const project = await api('/v1/projects', { method: 'POST', json: { id: 'elsewhere' } });
      expect(project.status, JSON.stringify(project.body)).toBe(201);
      const otherKey = await createKey(['read', 'write'], 'elsewhere');
      const other = new CompanionClient(`${baseUrl}/v1/uploads`, { authorization: `Bearer ${otherKey}` });

      const file = makeWav(256 * KiB);
      const { uploadId, parts } = await uploadParts(file, 1, { filename: 'mine.wav', projectId: 'default' });
      const key = 'ignored';
      expectProblem(await other.listParts(uploadId, key), 404, 'UPLOAD_NOT_FOUND');
      expectProblem(await other.signParts(uploadId, key, [2]), 404, 'UPLOAD_NOT_FOUND');
      expectProblem(await other.signPart(uploadId, key, 2), 404, 'UPLOAD_NOT_FOUND');
      expectProblem(
        await other.completeMultipartUpload(uploadId, key, [{ PartNumber: 1, ETag: parts[0]!.etag }]),
        404,
        'UPLOAD_NOT_FOUND',
      );
      expectProblem(await other.abortMultipartUpload(uploadId, key), 404, 'UPLOAD_NOT_FOUND');
      for (const [method, path, json] of [
        ['GET', `/v1/uploads/multipart/${uploadId}/parts`, undefined],
        ['POST', `/v1/uploads/multipart/${uploadId}/sign`, { partNumbers: [2] }],
        ['POST', `/v1/uploads/multipart/${uploadId}/complete`, {}],
        ['DELETE', `/v1/uploads/multipart/${uploadId}`, undefined],
      ] as const) {
        expectProblem(await api(path, { method, json, key: otherKey }), 404, 'UPLOAD_NOT_FOUND');
      }

      // Untouched: its owner completes it.
      const listed = await api<{ parts: unknown[] }>(`/v1/uploads/multipart/${uploadId}/parts`);
      expect(listed.body.parts).toHaveLength(1);
      const done = await complete(uploadId, parts);
      expect(done.status, JSON.stringify(done.body)).toBe(201);
      expect(done.body).toMatchObject({ projectId: 'default', sha256: sha256(file) });
      // ...and the other project's key cannot see the result either.
      expectProblem(await api(`/v1/assets/${done.body.id}`, { key: otherKey }), 404, 'ASSET_NOT_FOUND');
    });

    it('a filename of ../../etc/passwd is stored as "passwd"', async () => {
      const created = await companion.createMultipartUpload({ name: '../../etc/passwd', type: 'audio/wav' });
      expect(created.status).toBe(200);
      const { uploadId, key } = created.body;
      const file = makeWav(128 * KiB);
      const url = (await companion.signPart(uploadId, key, 1)).body.url;
      const etag = await put(url, file);
      const done = await companion.completeMultipartUpload(uploadId, key, [{ PartNumber: 1, ETag: etag }]);
      expect(done.status, JSON.stringify(done.body)).toBe(200);
      const asset = await api<Asset>(done.body.location);
      expect(asset.body.filename).toBe('passwd');
      expect(asset.body.sha256).toBe(sha256(file));
    });

    it('a 10 kB filename is refused with 400 or stored in at most 255 characters', async () => {
      const long = `${'a'.repeat(10 * 1024 - 4)}.wav`;
      const file = makeWav(128 * KiB);

      // As Uppy sends it: in `filename` and in `metadata.name`.
      const created = await companion.createMultipartUpload({ name: long, type: 'audio/wav' });
      if (created.status !== 200) {
        expectProblem(created, 400, 'VALIDATION_FAILED');
      } else {
        const { uploadId, key } = created.body;
        const etag = await put((await companion.signPart(uploadId, key, 1)).body.url, file);
        const done = await companion.completeMultipartUpload(uploadId, key, [{ PartNumber: 1, ETag: etag }]);
        expect(done.status, JSON.stringify(done.body)).toBe(200);
        const stored = (await api<Asset>(done.body.location)).body.filename;
        expect(stored.length).toBeGreaterThan(0);
        expect(stored.length).toBeLessThanOrEqual(255);
      }

      // Only in `metadata` (no schema limit there): cut down to at most 255 characters.
      const uploadId = await start({ metadata: { filename: long, type: 'audio/wav' } });
      const etag = await put((await sign(uploadId, [1]))[1], makeWav(128 * KiB));
      const done = await complete(uploadId, [{ partNumber: 1, etag }]);
      expect(done.status, JSON.stringify(done.body)).toBe(201);
      expect(done.body.filename.length).toBeGreaterThan(0);
      expect(done.body.filename.length).toBeLessThanOrEqual(255);
      expect(done.body.filename.endsWith('.wav')).toBe(true);
      expect((await api<Asset>(`/v1/assets/${done.body.id}`)).body.filename).toBe(done.body.filename);
    });

    it('an unsupported file (text) completed -> 415 MEDIA_UNSUPPORTED, its bytes are removed and no asset is made', async () => {
      const text = Buffer.from(
        Array.from({ length: 8 * 1024 }, (_, i) => `note ${i}: just some text, not media at all\n`).join(''),
      );
      const before = await assetIds();
      const entries = await multipartEntries();
      const uploadId = await start({ filename: 'notes.wav', contentType: 'audio/wav' });
      const pieces = splitParts(text, Math.ceil(text.length / 2));
      const urls = await sign(uploadId, [1, 2]);
      const parts = [];
      for (const p of pieces)
        parts.push({ partNumber: p.partNumber, etag: await put(urls[p.partNumber], p.data) });
      expect(await blobFilesWithSha(sha256(pieces[0]!.data), pieces[0]!.data.length)).toHaveLength(1);

      expectProblem(await complete(uploadId, parts), 415, 'MEDIA_UNSUPPORTED');

      expect(await assetIds()).toEqual(before);
      expect(await blobFilesWithSha(sha256(text), text.length)).toEqual([]);
      expect(await blobFilesWithSha(sha256(pieces[0]!.data), pieces[0]!.data.length)).toEqual([]);
      expect(await multipartEntries()).toEqual(entries);
      // The upload is over: a retry of the complete finds nothing to complete.
      expectProblem(await complete(uploadId, parts), 404, 'UPLOAD_NOT_FOUND');
      expectProblem(await api(`/v1/uploads/multipart/${uploadId}/parts`), 404, 'UPLOAD_NOT_FOUND');
    });
  });
});

describe('multipart part URLs expire', () => {
  let server: Server;

  beforeAll(async () => {
    server = await startServer({ ASSETPIPE_PRESIGN_EXPIRY_SEC: '1' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('a part URL PUT after its expiry -> 403 SIGNATURE_INVALID (expired), and nothing is stored', async () => {
    const auth = { headers: AUTH };
    const started = await fetchJson<{ uploadId: string }>(`${server.baseUrl}/v1/uploads/multipart`, {
      method: 'POST',
      json: { filename: 'late.wav', contentType: 'audio/wav' },
      ...auth,
    });
    expect(started.status).toBe(201);
    const { uploadId } = started.body;
    const signed = await fetchJson<{ urls: Record<string, string>; expiresAt: string }>(
      `${server.baseUrl}/v1/uploads/multipart/${uploadId}/sign`,
      { method: 'POST', json: { partNumbers: [1] }, ...auth },
    );
    expect(signed.status).toBe(200);
    const url = signed.body.urls[1]!;
    const exp = Number(new URL(url).searchParams.get('exp'));
    expect(new Date(signed.body.expiresAt).getTime()).toBe(exp * 1000);

    // Valid while now < exp (unix seconds): wait until just past it, at most ~2 s.
    const wait = exp * 1000 - Date.now() + 100;
    expect(wait).toBeLessThanOrEqual(2_100);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)));

    const res = await putBytes(url, makeWav(64 * KiB));
    expectPutProblem(res, 403, 'SIGNATURE_INVALID');
    expect((res.body as Problem).detail).toMatch(/expired/);

    const listed = await fetchJson<{ parts: unknown[] }>(
      `${server.baseUrl}/v1/uploads/multipart/${uploadId}/parts`,
      auth,
    );
    expect(listed.status).toBe(200);
    expect(listed.body.parts).toEqual([]);
  });
});
