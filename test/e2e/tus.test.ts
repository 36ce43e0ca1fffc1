import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type HttpRequest, type HttpResponse, Upload } from 'tus-js-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { Container } from '../../src/container.js';
import type { Principal } from '../../src/domain/api-key.js';
import { AppError } from '../../src/errors.js';
import { principalOf } from '../../src/http/auth.js';
import { ASSET_ID_HEADER, TUS_PATH, type TusControls, type TusHooks } from '../../src/http/routes/tus.js';
import type { FinishedTusUpload, NewTusUpload } from '../../src/services/upload-service.js';
import { testContainer, waitFor } from '../helpers/container.js';
import { tempDir } from '../helpers/tmp.js';
import { wavHeader, writeWavFile } from '../helpers/wav.js';

const MiB = 1024 * 1024;
const ADMIN_KEY = 'tus-test-admin-key-0123456789abcdef';
const AUTH = { Authorization: `Bearer ${ADMIN_KEY}` };
const MAX_UPLOAD = 256 * MiB;
const PRINCIPAL: Principal = { keyId: 'admin', scopes: ['admin'], projectId: null };

function wav(size: number): Buffer {
  return Buffer.concat([wavHeader(size - 44), randomBytes(size - 44)]);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** tus-js-client's Node build takes an fs.ReadStream (and then reads slices straight from its path). */
function fileInput(path: string, range?: { start: number; end: number }): Upload['file'] {
  return createReadStream(path, range) as unknown as Upload['file'];
}

interface Finished {
  response: HttpResponse;
  assetId: string;
}

/** Runs one tus-js-client upload to its end: its last response, or its error. */
function runUpload(
  file: Upload['file'],
  options: ConstructorParameters<typeof Upload>[1],
): { upload: Upload; done: Promise<Finished> } {
  let upload!: Upload;
  const done = new Promise<Finished>((resolve, reject) => {
    upload = new Upload(file, {
      retryDelays: null,
      ...options,
      headers: { ...AUTH, ...options.headers },
      onSuccess: ({ lastResponse }) => {
        const body = JSON.parse(lastResponse.getBody()) as { assetId: string };
        resolve({ response: lastResponse, assetId: body.assetId });
      },
      onError: reject,
    });
    upload.start();
  });
  return { upload, done };
}

describe('tus uploads (/v1/uploads/tus)', () => {
  let container: Container;
  let app: FastifyInstance;
  let cleanup: () => Promise<void>;
  let dataDir: string;
  let base: string;
  let endpoint: string;
  let scratch: { dir: string; cleanup: () => Promise<void> };

  // The production hooks (catalog-backed upload sessions in UploadService), wrapped only to record
  // what the route asked of them and, for one test, to hold a completion open.
  const started: NewTusUpload[] = [];
  const terminated: string[] = [];
  const finishCalls = new Map<string, number>();
  let finishGate: Promise<void> | undefined;
  let finishEntered: (() => void) | undefined;

  const hooks: TusHooks = {
    async start(upload) {
      started.push(upload);
      if (upload.metadata.projectId === 'forbidden') {
        throw new AppError('FORBIDDEN', 'This key may not upload into project "forbidden".');
      }
      await container.uploads.startTus(upload);
    },
    async finish(upload: FinishedTusUpload) {
      finishCalls.set(upload.uploadId, (finishCalls.get(upload.uploadId) ?? 0) + 1);
      if (upload.metadata.slow) {
        finishEntered?.();
        await finishGate;
      }
      return container.uploads.finishTus(upload);
    },
    async terminate(uploadId) {
      terminated.push(uploadId);
      await container.uploads.terminateTus(uploadId);
    },
    authorize: (uploadId, principal) => container.uploads.authorizeTus(uploadId, principal),
    principalOf,
  };

  beforeAll(async () => {
    ({ container, dataDir, cleanup } = await testContainer({
      ASSETPIPE_ADMIN_KEY: ADMIN_KEY,
      ASSETPIPE_MAX_UPLOAD_BYTES: String(MAX_UPLOAD),
      ASSETPIPE_RATE_LIMIT: '0',
    }));
    scratch = await tempDir('assetpipe-tus-src-');
    app = await buildApp(container, { tus: { hooks } });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    if (!address || typeof address === 'string') throw new Error('no TCP address');
    base = `http://127.0.0.1:${address.port}`;
    endpoint = `${base}${TUS_PATH}`;
  });

  afterAll(async () => {
    await app?.close();
    await cleanup?.();
    await scratch?.cleanup();
  });

  async function tus(
    method: string,
    url: string,
    headers: Record<string, string> = {},
    body?: Buffer,
  ): Promise<Response> {
    return fetch(url.startsWith('http') ? url : `${base}${url}`, {
      method,
      headers: { 'Tus-Resumable': '1.0.0', ...AUTH, ...headers },
      ...(body ? { body } : {}),
    });
  }

  function metadata(fields: Record<string, string>): string {
    return Object.entries(fields)
      .map(([key, value]) => `${key} ${Buffer.from(value, 'utf8').toString('base64')}`)
      .join(',');
  }

  async function create(size: number, fields: Record<string, string> = {}): Promise<string> {
    const res = await tus('POST', TUS_PATH, {
      'Upload-Length': String(size),
      'Upload-Metadata': metadata({ filename: 'clip.wav', projectId: 'default', ...fields }),
    });
    expect(res.status).toBe(201);
    const location = res.headers.get('location');
    expect(location).toMatch(new RegExp(`^${TUS_PATH}/upl_[0-9A-Z]{26}$`));
    return location!;
  }

  async function patch(url: string, offset: number, body: Buffer, headers: Record<string, string> = {}) {
    return tus(
      'PATCH',
      url,
      { 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream', ...headers },
      body,
    );
  }

  async function assetJson(
    id: string,
  ): Promise<{ id: string; sha256: string; size: number; filename: string }> {
    const res = await fetch(`${base}/v1/assets/${id}`, { headers: AUTH });
    expect(res.status).toBe(200);
    return (await res.json()) as { id: string; sha256: string; size: number; filename: string };
  }

  async function assetsNamed(filename: string): Promise<string[]> {
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
      const res = await fetch(`${base}/v1/assets?projectId=default&limit=1000${query}`, { headers: AUTH });
      expect(res.status).toBe(200);
      const page = (await res.json()) as {
        items: { id: string; filename: string }[];
        nextCursor: string | null;
      };
      ids.push(...page.items.filter((a) => a.filename === filename).map((a) => a.id));
      cursor = page.nextCursor;
    } while (cursor);
    return ids;
  }

  const uploadIdOf = (url: string) => url.split('/').pop()!;

  it('resumes a 200 MB upload after its connection is cut, from the server offset, intact', async () => {
    const size = 200 * 1000 * 1000;
    const file = join(scratch.dir, 'big.wav');
    const expected = await writeWavFile(file, size);
    try {
      const chunkSize = 8 * MiB;
      const meta = { filename: 'big.wav', projectId: 'default', contentType: 'audio/wav' };

      // 1. Send until about half has gone out (in the middle of a chunk), then cut every connection
      // from the server side.
      const cutAt = 12.5 * chunkSize;
      let cut = false;
      const first = runUpload(fileInput(file), {
        endpoint,
        chunkSize,
        metadata: meta,
        onProgress: (sent) => {
          if (!cut && sent > cutAt) {
            cut = true;
            app.server.closeAllConnections();
          }
        },
      });
      await expect(first.done).rejects.toThrow();
      expect(cut).toBe(true);
      const uploadUrl = first.upload.url;
      expect(uploadUrl).toMatch(new RegExp(`^${endpoint}/upl_`));

      const head = await tus('HEAD', uploadUrl!);
      expect(head.status).toBe(200);
      expect(head.headers.get('upload-length')).toBe(String(size));
      const offset = Number(head.headers.get('upload-offset'));
      expect(offset).toBeGreaterThan(0);
      expect(offset).toBeLessThan(size);

      // 2. Resume with the stored URL: HEAD, then PATCHes from the server's offset. Count what reaches
      // the server's sockets from now on.
      const sockets: Socket[] = [];
      const onConnection = (socket: Socket) => sockets.push(socket);
      app.server.on('connection', onConnection);
      const requests: { method: string; url: string; offset: string | undefined }[] = [];
      let firstProgress: number | undefined;
      const second = runUpload(fileInput(file), {
        uploadUrl,
        chunkSize,
        metadata: meta,
        onBeforeRequest: (req: HttpRequest) => {
          requests.push({
            method: req.getMethod(),
            url: req.getURL(),
            offset: req.getHeader('Upload-Offset'),
          });
        },
        onProgress: (sent) => {
          firstProgress ??= sent;
        },
      });
      const { response, assetId } = await second.done;
      app.server.off('connection', onConnection);

      expect(requests[0]).toMatchObject({ method: 'HEAD', url: uploadUrl });
      expect(requests.filter((r) => r.method === 'POST')).toEqual([]);
      const patches = requests.filter((r) => r.method === 'PATCH');
      expect(patches[0]?.offset).toBe(String(offset));
      expect(patches.every((r) => r.url === uploadUrl && Number(r.offset) >= offset)).toBe(true);
      expect(firstProgress).toBeGreaterThanOrEqual(offset);
      const received = sockets.reduce((sum, socket) => sum + socket.bytesRead, 0);
      expect(received).toBeGreaterThanOrEqual(size - offset);
      expect(received).toBeLessThan(size - offset + 256 * 1024); // the rest, plus headers: not the whole file again

      expect(response.getStatus()).toBe(200);
      expect(response.getHeader(ASSET_ID_HEADER)).toBe(assetId);
      const asset = await assetJson(assetId);
      expect(asset).toMatchObject({ size, sha256: expected, filename: 'big.wav' });
      expect(finishCalls.get(uploadIdOf(uploadUrl!))).toBe(1);
    } finally {
      await rm(file, { force: true });
    }
  }, 90_000);

  it('takes 50 concurrent 20 MiB uploads intact with bounded memory', async () => {
    const count = 50;
    const size = 20 * MiB;
    const stride = 64 * 1024;
    // One shared source: upload i is the window [i*stride, i*stride + size), each starting with a WAV header.
    const sourceBytes = Buffer.from(randomBytes(size + (count - 1) * stride));
    for (let i = 0; i < count; i++) wavHeader(size - 44).copy(sourceBytes, i * stride);
    const expected = Array.from({ length: count }, (_, i) =>
      sha256(sourceBytes.subarray(i * stride, i * stride + size)),
    );
    const file = join(scratch.dir, 'shared.bin');
    await writeFile(file, sourceBytes);

    try {
      const before = process.memoryUsage().rss;
      let peak = before;
      const sampler = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage().rss);
      }, 20);
      let results: Finished[];
      try {
        results = await Promise.all(
          expected.map(
            (_, i) =>
              runUpload(fileInput(file, { start: i * stride, end: i * stride + size - 1 }), {
                endpoint,
                chunkSize: 5 * MiB,
                metadata: { filename: `many-${i}.wav`, projectId: 'default', contentType: 'audio/wav' },
              }).done,
          ),
        );
      } finally {
        clearInterval(sampler);
      }
      peak = Math.max(peak, process.memoryUsage().rss);

      const ids = results.map((r) => r.assetId);
      expect(new Set(ids).size).toBe(count);
      for (const [i, id] of ids.entries()) {
        const asset = await assetJson(id);
        expect(asset.size).toBe(size);
        expect(asset.sha256).toBe(expected[i]);
        expect(asset.filename).toBe(`many-${i}.wav`);
      }
      // 1 GiB went through this process (client and server); the growth must not scale with it.
      expect(peak - before).toBeLessThan(300 * 1000 * 1000);
    } finally {
      await rm(file, { force: true });
    }
  }, 90_000);

  describe('protocol', () => {
    it('announces its version, extensions (no checksum) and limit; OPTIONS needs no key', async () => {
      const res = await fetch(endpoint, { method: 'OPTIONS' });
      expect(res.status).toBe(204);
      expect(res.headers.get('tus-version')).toBe('1.0.0');
      const extensions = res.headers.get('tus-extension')?.split(',') ?? [];
      expect(extensions).toEqual(
        expect.arrayContaining(['creation', 'creation-with-upload', 'termination', 'expiration']),
      );
      // @tus/file-store does not implement the checksum extension.
      expect(extensions).not.toContain('checksum');
      expect(res.headers.get('tus-max-size')).toBe(String(MAX_UPLOAD));
    });

    it('creates an upload with a relative Location, even behind a proxy, after the start hook', async () => {
      const before = started.length;
      const res = await tus('POST', TUS_PATH, {
        'Upload-Length': '1000',
        'Upload-Metadata': metadata({ filename: 'a.wav', projectId: 'default', contentType: 'audio/wav' }),
        'X-Forwarded-Host': 'media.example.com',
        'X-Forwarded-Proto': 'https',
      });
      expect(res.status).toBe(201);
      expect(res.headers.get('tus-resumable')).toBe('1.0.0');
      const location = res.headers.get('location')!;
      expect(location).toMatch(new RegExp(`^${TUS_PATH}/upl_[0-9A-Z]{26}$`));
      expect(Date.parse(res.headers.get('upload-expires') ?? '')).toBeGreaterThan(Date.now());
      expect(started.slice(before)).toEqual([
        {
          uploadId: uploadIdOf(location),
          size: 1000,
          metadata: { filename: 'a.wav', projectId: 'default', contentType: 'audio/wav' },
          principal: PRINCIPAL,
        },
      ]);
      const head = await tus('HEAD', location);
      expect(head.status).toBe(200);
      expect(head.headers.get('upload-offset')).toBe('0');
    });

    it('answers 412 without Tus-Resumable, 401 without a key', async () => {
      const location = await create(1000);
      const noVersion = await fetch(`${base}${location}`, { method: 'HEAD', headers: AUTH });
      expect(noVersion.status).toBe(412);
      const noVersionPost = await fetch(endpoint, {
        method: 'POST',
        headers: { ...AUTH, 'Upload-Length': '10' },
      });
      expect(noVersionPost.status).toBe(412);

      const noKey = await fetch(endpoint, {
        method: 'POST',
        headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': '10' },
      });
      expect(noKey.status).toBe(401);
      expect(((await noKey.json()) as { code: string }).code).toBe('UNAUTHORIZED');
    });

    it('refuses an Upload-Length over the limit with 413 before anything is created', async () => {
      const before = started.length;
      const files = await readdir(join(dataDir, 'uploads', 'tus'));
      const res = await tus('POST', TUS_PATH, {
        'Upload-Length': String(MAX_UPLOAD + 1),
        'Upload-Metadata': metadata({ filename: 'huge.wav', projectId: 'default' }),
      });
      expect(res.status).toBe(413);
      expect(started.length).toBe(before);
      expect(await readdir(join(dataDir, 'uploads', 'tus'))).toEqual(files);
    });

    it("maps the start hook's AppError to its status with a problem body", async () => {
      const files = await readdir(join(dataDir, 'uploads', 'tus'));
      const res = await tus('POST', TUS_PATH, {
        'Upload-Length': '1000',
        'Upload-Metadata': metadata({ filename: 'a.wav', projectId: 'forbidden' }),
      });
      expect(res.status).toBe(403);
      expect(res.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
      expect(await res.json()).toMatchObject({ status: 403, code: 'FORBIDDEN', instance: TUS_PATH });
      expect(await readdir(join(dataDir, 'uploads', 'tus'))).toEqual(files);
    });

    it('answers a PATCH at the wrong offset with 409 and keeps the upload as it was', async () => {
      const data = wav(64 * 1024);
      const location = await create(data.length);
      expect((await patch(location, 0, data.subarray(0, 1000))).status).toBe(204);
      const wrong = await patch(location, 0, data.subarray(0, 1000));
      expect(wrong.status).toBe(409);
      const ahead = await patch(location, 5000, data.subarray(5000, 6000));
      expect(ahead.status).toBe(409);
      const head = await tus('HEAD', location);
      expect(head.headers.get('upload-offset')).toBe('1000');
    });

    it('answers 404 for unknown uploads and for paths that are not upload ids', async () => {
      const unknown = `${TUS_PATH}/upl_01JAAAAAAAAAAAAAAAAAAAAAAA`;
      expect((await tus('HEAD', unknown)).status).toBe(404);
      expect((await patch(unknown, 0, Buffer.from('x'))).status).toBe(404);
      expect((await tus('DELETE', unknown)).status).toBe(404);
      const traversal = await tus('HEAD', `${TUS_PATH}/..%2F..%2Fassetpipe.db`);
      expect(traversal.status).toBe(404);
      const nested = await patch(`${TUS_PATH}/x/upl_01JAAAAAAAAAAAAAAAAAAAAAAA`, 0, Buffer.from('x'));
      expect(nested.status).toBe(404);
      // GET is not routed to tus (it would serve the raw bytes of finished uploads).
      expect((await tus('GET', unknown)).status).toBe(404);
    });

    it('terminates an upload with DELETE: the hook hears of it, the bytes are gone', async () => {
      const data = wav(32 * 1024);
      const location = await create(data.length);
      expect((await patch(location, 0, data.subarray(0, 10_000))).status).toBe(204);
      const res = await tus('DELETE', location);
      expect(res.status).toBe(204);
      expect(terminated).toContain(uploadIdOf(location));
      expect([404, 410]).toContain((await tus('HEAD', location)).status);
      expect([404, 410]).toContain((await patch(location, 10_000, data.subarray(10_000))).status);
      const files = await readdir(join(dataDir, 'uploads', 'tus'));
      expect(files.filter((f) => f.startsWith(uploadIdOf(location)))).toEqual([]);
    });

    it("maps the finish hook's AppError (checksum mismatch: 460) to a problem response", async () => {
      const data = wav(48 * 1024);
      const bad = await create(data.length, {
        checksum: `sha256:${'0'.repeat(64)}`,
        filename: 'bad-sum.wav',
      });
      const res = await patch(bad, 0, data);
      expect(res.status).toBe(460);
      expect(res.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
      expect(await res.json()).toMatchObject({ status: 460, code: 'CHECKSUM_MISMATCH' });
      expect(await assetsNamed('bad-sum.wav')).toEqual([]);

      const good = await create(data.length, {
        checksum: `sha256:${sha256(data)}`,
        filename: 'good-sum.wav',
      });
      const ok = await patch(good, 0, data);
      expect(ok.status).toBe(200);
      const { assetId } = (await ok.json()) as { assetId: string };
      expect((await assetJson(assetId)).sha256).toBe(sha256(data));
    });

    it('stores hostile or huge filenames safely (never a 500)', async () => {
      const data = wav(16 * 1024);
      for (const filename of ['../../etc/passwd', `${'x'.repeat(10_000)}.wav`]) {
        const res = await tus(
          'POST',
          TUS_PATH,
          {
            'Upload-Length': String(data.length),
            'Upload-Metadata': metadata({ filename, projectId: 'default' }),
            'Content-Type': 'application/offset+octet-stream',
          },
          data,
        );
        expect(res.status).toBeLessThan(500);
        if (res.status === 400) continue;
        expect(res.status).toBe(201);
        const asset = await assetJson(((await res.json()) as { assetId: string }).assetId);
        expect(asset.filename).not.toContain('/');
        expect(asset.filename.length).toBeLessThanOrEqual(255);
        expect(asset.sha256).toBe(sha256(data));
      }
      // The tus store names files by upload id only: nothing escaped it.
      expect((await readdir(dataDir)).filter((f) => f === 'etc' || f === 'passwd')).toEqual([]);
    });

    it('completes with creation-with-upload: 201, Location and the asset in one request', async () => {
      const data = wav(40 * 1024);
      const res = await tus(
        'POST',
        TUS_PATH,
        {
          'Upload-Length': String(data.length),
          'Upload-Metadata': metadata({ filename: 'one-shot.wav', projectId: 'default' }),
          'Content-Type': 'application/offset+octet-stream',
        },
        data,
      );
      expect(res.status).toBe(201);
      expect(res.headers.get('location')).toMatch(new RegExp(`^${TUS_PATH}/upl_`));
      expect(res.headers.get('upload-offset')).toBe(String(data.length));
      const body = (await res.json()) as { assetId: string; status: string };
      expect(res.headers.get(ASSET_ID_HEADER.toLowerCase())).toBe(body.assetId);
      expect(body.status).toBe('processing');
      expect((await assetJson(body.assetId)).sha256).toBe(sha256(data));
    });

    it('answers a repeated final PATCH with the same asset and creates it once, even concurrently', async () => {
      const data = wav(200 * 1024);
      const filename = `repeat-${randomBytes(4).toString('hex')}.wav`;
      const location = await create(data.length, { filename, slow: '1' });
      const uploadId = uploadIdOf(location);

      // Hold the finish hook open so that repeats arrive while the first completion is running.
      let release!: () => void;
      finishGate = new Promise((resolve) => {
        release = resolve;
      });
      const entered = new Promise<void>((resolve) => {
        finishEntered = resolve;
      });
      const last = patch(location, 0, data);
      await Promise.race([
        entered,
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error('the finish hook was not called')), 10_000),
        ),
      ]);
      const repeats = Array.from({ length: 3 }, () => patch(location, data.length, Buffer.alloc(0)));
      await new Promise((resolve) => setTimeout(resolve, 200));
      release();

      const answers = await Promise.all([last, ...repeats]);
      const ids = new Set<string>();
      for (const res of answers) {
        expect(res.status).toBe(200);
        expect(res.headers.get('upload-offset')).toBe(String(data.length));
        const body = (await res.json()) as { assetId: string };
        expect(res.headers.get(ASSET_ID_HEADER.toLowerCase())).toBe(body.assetId);
        ids.add(body.assetId);
      }
      expect(ids.size).toBe(1);
      const [assetId] = [...ids];

      // Later: a repeated empty final PATCH, an exact repeat of the last chunk (409 per tus, still
      // naming the asset), and a HEAD all name the same asset.
      const again = await patch(location, data.length, Buffer.alloc(0));
      expect(again.status).toBe(200);
      expect(((await again.json()) as { assetId: string }).assetId).toBe(assetId);
      const exact = await patch(location, 0, data);
      expect(exact.status).toBe(409);
      expect(exact.headers.get(ASSET_ID_HEADER.toLowerCase())).toBe(assetId);
      const head = await tus('HEAD', location);
      expect(head.headers.get('upload-offset')).toBe(String(data.length));
      expect(head.headers.get(ASSET_ID_HEADER.toLowerCase())).toBe(assetId);

      expect(finishCalls.get(uploadId)).toBe(1);
      expect(await assetsNamed(filename)).toEqual([assetId]);
      finishGate = undefined;
    });
  });
});

describe('tus expiration', () => {
  it('answers 410 for an expired upload and removes it, directly and on the interval', async () => {
    const { container, dataDir, cleanup } = await testContainer({
      ASSETPIPE_ADMIN_KEY: ADMIN_KEY,
      ASSETPIPE_PUBLIC_URL: 'https://media.example.com/',
    });
    const hooks: TusHooks = {
      start: async () => {},
      finish: async () => {
        throw new AppError('INTERNAL', 'not used');
      },
      terminate: async () => {},
      principalOf: () => PRINCIPAL,
    };
    const tusDir = join(dataDir, 'uploads', 'tus');
    const listen = async (expirationMs: number, cleanupIntervalMs: number) => {
      let controls: TusControls | undefined;
      const app = await buildApp(container, {
        tus: {
          hooks,
          expirationMs,
          cleanupIntervalMs,
          onControls: (c) => {
            controls = c;
          },
        },
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const address = app.server.address();
      if (!address || typeof address === 'string') throw new Error('no TCP address');
      return { app, controls: controls!, base: `http://127.0.0.1:${address.port}` };
    };
    const headers = { 'Tus-Resumable': '1.0.0', ...AUTH };
    const start = async (base: string) => {
      const res = await fetch(`${base}${TUS_PATH}`, {
        method: 'POST',
        headers: { ...headers, 'Upload-Length': '1000' },
      });
      expect(res.status).toBe(201);
      // ASSETPIPE_PUBLIC_URL makes the Location absolute.
      const location = res.headers.get('location')!;
      expect(location).toMatch(/^https:\/\/media\.example\.com\/v1\/uploads\/tus\/upl_/);
      const path = new URL(location).pathname;
      const written = await fetch(`${base}${path}`, {
        method: 'PATCH',
        headers: { ...headers, 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' },
        body: Buffer.alloc(100),
      });
      expect(written.status).toBe(204);
      return path;
    };
    const filesOf = async (path: string) =>
      (await readdir(tusDir)).filter((f) => f.startsWith(path.split('/').pop()!));

    try {
      // Directly: a sweep finds the expired upload.
      const a = await listen(1000, 3_600_000);
      try {
        const path = await start(a.base);
        expect(await filesOf(path)).toHaveLength(2); // data + info
        await new Promise((resolve) => setTimeout(resolve, 1100));
        expect((await fetch(`${a.base}${path}`, { method: 'HEAD', headers })).status).toBe(410);
        expect(await a.controls.cleanUpExpired()).toBeGreaterThanOrEqual(1);
        expect(await filesOf(path)).toEqual([]);
        expect((await fetch(`${a.base}${path}`, { method: 'HEAD', headers })).status).toBe(404);
      } finally {
        await a.app.close();
      }

      // On the (unref'd) interval, with nobody calling it.
      const b = await listen(500, 100);
      try {
        const path = await start(b.base);
        await waitFor(async () => (await filesOf(path)).length === 0, 10_000, 'the expiry sweep');
        expect((await fetch(`${b.base}${path}`, { method: 'HEAD', headers })).status).toBe(404);
        await stat(tusDir); // the store directory itself stays
      } finally {
        await b.app.close();
      }
    } finally {
      await cleanup();
    }
  }, 30_000);

  it('removes the copy of an upload that became an asset once it expires; the asset stays', async () => {
    const { container, dataDir, cleanup } = await testContainer({ ASSETPIPE_ADMIN_KEY: ADMIN_KEY });
    let controls: TusControls | undefined;
    const app = await buildApp(container, {
      tus: { expirationMs: 1000, cleanupIntervalMs: 3_600_000, onControls: (c) => (controls = c) },
    });
    try {
      await app.listen({ port: 0, host: '127.0.0.1' });
      const address = app.server.address();
      if (!address || typeof address === 'string') throw new Error('no TCP address');
      const base = `http://127.0.0.1:${address.port}`;
      const data = wav(64 * 1024);
      const headers = { 'Tus-Resumable': '1.0.0', ...AUTH };
      const meta = (v: string) => Buffer.from(v).toString('base64');
      const created = await fetch(`${base}${TUS_PATH}`, {
        method: 'POST',
        headers: {
          ...headers,
          'Upload-Length': String(data.length),
          'Upload-Metadata': `filename ${meta('kept.wav')},projectId ${meta('default')}`,
        },
      });
      expect(created.status).toBe(201);
      const path = created.headers.get('location')!;
      const done = await fetch(`${base}${path}`, {
        method: 'PATCH',
        headers: { ...headers, 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' },
        body: data,
      });
      expect(done.status).toBe(200);
      const { assetId } = (await done.json()) as { assetId: string };
      const tusDir = join(dataDir, 'uploads', 'tus');
      const id = path.split('/').pop()!;
      const filesOf = async () => (await readdir(tusDir)).filter((f) => f.startsWith(id));
      expect(await filesOf()).toHaveLength(2); // kept a while: a repeated HEAD still finds it

      await new Promise((resolve) => setTimeout(resolve, 1100));
      expect(await controls!.cleanUpExpired()).toBeGreaterThanOrEqual(1);
      expect(await filesOf()).toEqual([]);
      const asset = await fetch(`${base}/v1/assets/${assetId}/original`, { headers: AUTH });
      expect(sha256(Buffer.from(await asset.arrayBuffer()))).toBe(sha256(data));
    } finally {
      await app.close();
      await cleanup();
    }
  });
});
