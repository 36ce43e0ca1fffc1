import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { Container } from '../../src/container.js';
import { newId } from '../../src/domain/ids.js';
import { AppError } from '../../src/errors.js';
import { principalOf } from '../../src/http/auth.js';
import {
  ASSET_ID_HEADER,
  TUS_PATH,
  type TusControls,
  type TusHooks,
  type TusRouteOptions,
} from '../../src/http/routes/tus.js';
import { asOutage } from '../../src/lib/outage.js';
import { s3ClientConfig } from '../../src/storage/s3-location.js';
import { TEST_ADMIN_KEY } from '../helpers/auth.js';
import { testContainer } from '../helpers/container.js';
import { type S3TestServer, startS3Server, useS3Credentials } from '../helpers/s3-server.js';
import { wavHeader } from '../helpers/wav.js';

// tus uploads with `s3://` storage: @tus/s3-store keeps them in the blob bucket, at its root, as
// `upl_<id>` (the multipart upload, then the complete object), `upl_<id>.info` and `upl_<id>.part`.
// The app runs in-process on s3rver (test/helpers/s3-server.ts), like an API node of a fleet.

const AUTH = { Authorization: `Bearer ${TEST_ADMIN_KEY}` };
const TUS = { 'Tus-Resumable': '1.0.0', ...AUTH };

function wav(size: number): Buffer {
  return Buffer.concat([wavHeader(size - 44), randomBytes(size - 44)]);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function metadata(fields: Record<string, string>): string {
  return Object.entries(fields)
    .map(([key, value]) => `${key} ${Buffer.from(value, 'utf8').toString('base64')}`)
    .join(',');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('tus uploads on S3 storage', () => {
  let s3: S3TestServer;
  let client: S3Client;
  let container: Container;
  let cleanup: () => Promise<void>;
  let restoreEnv: (() => void) | undefined;
  const apps: FastifyInstance[] = [];

  // The production hooks, except that `outage` in the metadata makes the finish hook fail as if the
  // catalog were away (a 503 the client retries: the upload must stay).
  const hooks: TusHooks = {
    start: (upload) => container.uploads.startTus(upload),
    async finish(upload) {
      if (upload.metadata.outage) {
        throw asOutage(new AppError('UNAVAILABLE', 'The catalog cannot be reached right now.'));
      }
      return container.uploads.finishTus(upload);
    },
    terminate: (uploadId) => container.uploads.terminateTus(uploadId),
    authorize: (uploadId, principal) => container.uploads.authorizeTus(uploadId, principal),
    principalOf,
  };

  /** One API node on the shared container (catalog) and bucket, with its own tus datastore. */
  async function node(
    options: { expirationMs?: number; leases?: TusRouteOptions['leases'] } = {},
  ): Promise<{ base: string; controls: TusControls }> {
    let controls: TusControls | undefined;
    const app = await buildApp(container, {
      tus: {
        hooks,
        cleanupIntervalMs: 3_600_000,
        ...options,
        onControls: (c) => {
          controls = c;
        },
      },
    });
    apps.push(app);
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    if (!address || typeof address === 'string') throw new Error('no TCP address');
    return { base: `http://127.0.0.1:${address.port}`, controls: controls! };
  }

  beforeAll(async () => {
    s3 = await startS3Server();
    restoreEnv = useS3Credentials(s3);
    ({ container, cleanup } = await testContainer({
      ASSETPIPE_STORAGE: s3.url,
      ASSETPIPE_RATE_LIMIT: '0',
    }));
    client = new S3Client(
      s3ClientConfig({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true }, s3.credentials),
    );
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    client?.destroy();
    await cleanup?.();
    await s3?.close();
    restoreEnv?.();
  });

  /** The bucket's objects of one tus upload. */
  const objectsOf = async (uploadId: string) =>
    (await s3.listKeys()).filter((key) => key === uploadId || key.startsWith(`${uploadId}.`));
  const multipartOf = async (key: string) => (await s3.listUploads()).filter((u) => u.key === key);
  const idOf = (location: string) => location.split('/').pop()!;

  async function create(base: string, headers: Record<string, string>, fields: Record<string, string>) {
    const res = await fetch(`${base}${TUS_PATH}`, {
      method: 'POST',
      headers: {
        ...TUS,
        ...headers,
        'Upload-Metadata': metadata({ projectId: 'default', ...fields }),
      },
    });
    expect(res.status, await res.clone().text()).toBe(201);
    return new URL(res.headers.get('location')!, base).pathname;
  }

  function patch(
    base: string,
    path: string,
    offset: number,
    body: Buffer,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    return fetch(`${base}${path}`, {
      method: 'PATCH',
      headers: {
        ...TUS,
        'Upload-Offset': String(offset),
        'Content-Type': 'application/offset+octet-stream',
        ...headers,
      },
      body,
    });
  }

  const head = (base: string, path: string) => fetch(`${base}${path}`, { method: 'HEAD', headers: TUS });

  it('frees a completed upload the finish hook refuses for good, and keeps one refused by an outage', async () => {
    const { base } = await node();

    // Text that claims to be an image.
    const text = Buffer.from('just some text, not a PNG\n'.repeat(100));
    const fake = await create(
      base,
      { 'Upload-Length': String(text.length) },
      { filename: 'photo.png', contentType: 'image/png' },
    );
    expect(await objectsOf(idOf(fake))).toContain(`${idOf(fake)}.info`);
    const unsupported = await patch(base, fake, 0, text);
    expect(unsupported.status).toBe(415);
    expect(await unsupported.json()).toMatchObject({ code: 'MEDIA_UNSUPPORTED' });
    expect(await objectsOf(idOf(fake))).toEqual([]);
    expect(await multipartOf(idOf(fake))).toEqual([]);
    expect((await head(base, fake)).status).toBe(404);

    // A file whose bytes are not those of the declared checksum.
    const data = wav(48 * 1024);
    const mismatch = await create(
      base,
      { 'Upload-Length': String(data.length) },
      { filename: 'bad-sum.wav', checksum: `sha256:${'0'.repeat(64)}` },
    );
    const refused = await patch(base, mismatch, 0, data);
    expect(refused.status).toBe(460);
    expect(await objectsOf(idOf(mismatch))).toEqual([]);

    // An outage is not a refusal: the client retries, so the complete upload stays.
    const retried = await create(
      base,
      { 'Upload-Length': String(data.length) },
      { filename: 'outage.wav', outage: '1' },
    );
    expect((await patch(base, retried, 0, data)).status).toBe(503);
    expect(await objectsOf(idOf(retried))).toEqual([idOf(retried), `${idOf(retried)}.info`]);
    expect((await head(base, retried)).headers.get('upload-offset')).toBe(String(data.length));
  });

  it('sweeps only expired tus uploads (in progress, or complete and never released), nothing else in the bucket', async () => {
    const expirationMs = 2000;
    const { base, controls } = await node({ expirationMs });
    const data = wav(4 * 1024);

    // In progress: a multipart upload, `.info`, and a short chunk kept as `.part`.
    const inProgress = await create(base, { 'Upload-Length': String(data.length) }, { filename: 'slow.wav' });
    expect((await patch(base, inProgress, 0, data.subarray(0, 1000))).status).toBe(204);
    expect(await objectsOf(idOf(inProgress))).toEqual([
      `${idOf(inProgress)}.info`,
      `${idOf(inProgress)}.part`,
    ]);
    expect(await multipartOf(idOf(inProgress))).toHaveLength(1);
    // Complete, but the finish hook failed with an outage, and the client never came back.
    const unreleased = await create(
      base,
      { 'Upload-Length': String(data.length) },
      { filename: 'gone.wav', outage: '1' },
    );
    expect((await patch(base, unreleased, 0, data)).status).toBe(503);
    expect(await objectsOf(idOf(unreleased))).toHaveLength(2);

    // What others keep in the same bucket, as old as the expired uploads.
    const foreignKey = 'other-app/video.bin';
    const foreign = await client.send(
      new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: foreignKey }),
    );
    await client.send(
      new UploadPartCommand({
        Bucket: s3.bucket,
        Key: foreignKey,
        UploadId: foreign.UploadId,
        PartNumber: 1,
        Body: Buffer.from('a part'),
      }),
    );
    await client.send(
      new PutObjectCommand({
        Bucket: s3.bucket,
        Key: 'upl_notes.txt',
        Body: Buffer.from('not a tus upload'),
      }),
    );
    // assetpipe's own S3-style multipart session, in the blob store.
    const ownKey = `originals/${newId('upl')}`;
    const own = await container.blobs.createMultipart(ownKey);

    await sleep(expirationMs + 1200);
    // Fresh: created just now, not expired.
    const fresh = await create(base, { 'Upload-Length': String(data.length) }, { filename: 'fresh.wav' });
    expect((await head(base, inProgress)).status).toBe(410);

    // Every tus upload in the bucket but the fresh one is expired (earlier tests left some too).
    const tusUploads = new Set(
      (await s3.listKeys())
        .filter((key) => /^upl_[0-9A-Z]{26}(\.|$)/.test(key))
        .map((key) => key.slice(0, 30)),
    );
    expect(tusUploads).toContain(idOf(inProgress));
    expect(tusUploads).toContain(idOf(unreleased));
    expect(await controls.cleanUpExpired()).toBe(tusUploads.size - 1);

    expect(await objectsOf(idOf(inProgress))).toEqual([]);
    expect(await multipartOf(idOf(inProgress))).toEqual([]);
    expect(await objectsOf(idOf(unreleased))).toEqual([]);
    expect((await head(base, inProgress)).status).toBe(404);
    expect((await head(base, unreleased)).status).toBe(404);

    expect(await objectsOf(idOf(fresh))).toEqual([`${idOf(fresh)}.info`]);
    expect(await multipartOf(idOf(fresh))).toHaveLength(1);
    expect((await head(base, fresh)).status).toBe(200);
    expect(await multipartOf(foreignKey)).toEqual([{ key: foreignKey, uploadId: foreign.UploadId }]);
    expect(await multipartOf(ownKey)).toEqual([{ key: ownKey, uploadId: own }]);
    expect(await s3.listKeys()).toContain('upl_notes.txt');

    await client.send(
      new AbortMultipartUploadCommand({ Bucket: s3.bucket, Key: foreignKey, UploadId: foreign.UploadId }),
    );
    await container.blobs.abortMultipart(ownKey, own);
  });

  it('a request on another node waits for the upload lock and asks the PATCH holding it to end', async () => {
    const leases = { leaseMs: 3_000, pollMs: 100 };
    const [a, b] = [await node({ leases }), await node({ leases })];
    const data = wav(8 * 1024);
    const path = await create(a.base, { 'Upload-Length': String(data.length) }, { filename: 'locked.wav' });

    // A client's PATCH to node A sends 3000 bytes, then stalls: its connection is dying, and the
    // client, having given up on it, asks node B where the upload stands.
    const events: string[] = [];
    const stalled = httpRequest(`${a.base}${path}`, {
      method: 'PATCH',
      headers: { ...TUS, 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' },
    });
    const answerA = new Promise<IncomingMessage>((resolve, reject) => {
      stalled.once('response', (res) => {
        events.push('A answered');
        res.resume();
        resolve(res);
      });
      stalled.once('error', reject);
    });
    answerA.catch(() => {});
    try {
      stalled.write(data.subarray(0, 3000));
      await sleep(500);
      const where = await head(b.base, path);
      events.push('B answered');
      // B waited until A's request let go of the upload, and saw what A wrote.
      const resA = await Promise.race([
        answerA,
        sleep(10_000).then(() => {
          throw new Error('node A never ended its PATCH');
        }),
      ]);
      expect(events).toEqual(['A answered', 'B answered']);
      expect(resA.statusCode).toBe(204);
      expect(resA.headers['upload-offset']).toBe('3000');
      expect(where.status).toBe(200);
      expect(where.headers.get('upload-offset')).toBe('3000');
    } finally {
      stalled.destroy();
    }

    // The client resumes on node B from there; the asset has exactly the file's bytes.
    const rest = await patch(b.base, path, 3000, data.subarray(3000));
    expect(rest.status, await rest.clone().text()).toBe(200);
    const { assetId } = (await rest.json()) as { assetId: string };
    const asset = await fetch(`${b.base}/v1/assets/${assetId}`, { headers: AUTH });
    expect(await asset.json()).toMatchObject({ sha256: sha256(data), size: data.length });
  });

  it('finishes a deferred-length upload whose length was declared through another node', async () => {
    const [a, b] = [await node(), await node()];
    const data = wav(6 * 1024);

    const path = await create(a.base, { 'Upload-Defer-Length': '1' }, { filename: 'deferred.wav' });
    // Node B reads the upload while its length is still unknown.
    const before = await head(b.base, path);
    expect(before.status).toBe(200);
    expect(before.headers.get('upload-defer-length')).toBe('1');

    // Node A is told the length, with the first bytes.
    const first = await patch(a.base, path, 0, data.subarray(0, 1000), {
      'Upload-Length': String(data.length),
    });
    expect(first.status).toBe(204);
    expect(first.headers.get('upload-offset')).toBe('1000');

    // Node B takes the rest: it must know the length now, complete the upload and make the asset.
    const last = await patch(b.base, path, 1000, data.subarray(1000));
    expect(last.status, await last.clone().text()).toBe(200);
    const { assetId } = (await last.json()) as { assetId: string };
    expect(last.headers.get(ASSET_ID_HEADER.toLowerCase())).toBe(assetId);
    const asset = await fetch(`${a.base}/v1/assets/${assetId}`, { headers: AUTH });
    expect(await asset.json()).toMatchObject({ sha256: sha256(data), size: data.length });
    expect(await objectsOf(idOf(path))).toEqual([]);
    expect(await multipartOf(idOf(path))).toEqual([]);
  });
});
