import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isOutage } from '../../src/lib/outage.js';
import { S3BlobStore, type S3BlobStoreOptions, s3BlobStoreFromUrl } from '../../src/storage/s3-blob-store.js';
import { s3ClientConfig } from '../../src/storage/s3-location.js';
import { type S3TestServer, startS3Server } from '../helpers/s3-server.js';
import { blobStoreContract } from './blob-store.contract.js';
import { codeOf, collect, errorOf, readAll, sha256 } from './blob-test-utils.js';

const MIB = 1024 * 1024;

let server: S3TestServer;

beforeAll(async () => {
  server = await startS3Server();
});

afterAll(async () => {
  await server?.close();
});

blobStoreContract('S3BlobStore on s3rver', async () => ({
  // The storage URL path, as the container opens it; the contract namespaces its own keys.
  store: s3BlobStoreFromUrl(server.url, { credentials: server.credentials }),
  cleanup: async () => {},
}));

describe('S3BlobStore on s3rver', () => {
  const stores: S3BlobStore[] = [];
  const open = (options: Partial<S3BlobStoreOptions> = {}): S3BlobStore => {
    const store = new S3BlobStore({
      bucket: server.bucket,
      endpoint: server.endpoint,
      region: server.region,
      forcePathStyle: true,
      credentials: server.credentials,
      ...options,
    });
    stores.push(store);
    return store;
  };

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
  });

  it('keeps every object under the prefix and reports keys without it', async () => {
    const scoped = open({ prefix: 'tenant-a/media/' });
    const root = open();
    await root.put('tenant-a/outside', Buffer.from('not below the prefix'));

    const put = await scoped.put('x/y.txt', Readable.from([Buffer.from('streamed')]), {
      contentType: 'text/plain',
    });
    const id = await scoped.createMultipart('mp/z.bin');
    const part = await scoped.putPart('mp/z.bin', id, 1, Buffer.from('one part'));
    await scoped.completeMultipart('mp/z.bin', id, [part]);

    expect(put.key).toBe('x/y.txt');
    const keys = await server.listKeys();
    expect(keys).toContain('tenant-a/media/x/y.txt');
    expect(keys).toContain('tenant-a/media/mp/z.bin');
    expect(keys.filter((key) => key.startsWith('tenant-a/'))).toEqual([
      'tenant-a/media/mp/z.bin',
      'tenant-a/media/x/y.txt',
      'tenant-a/outside',
    ]);
    expect((await collect(scoped.list(''))).map((b) => b.key)).toEqual(['mp/z.bin', 'x/y.txt']);
    expect(await scoped.head('x/y.txt')).toMatchObject({ key: 'x/y.txt', size: 8, etag: put.etag });
    expect((await readAll(await root.get('tenant-a/media/x/y.txt'))).toString()).toBe('streamed');
    expect(await scoped.head('outside')).toBeUndefined();

    await scoped.delete('x/y.txt');
    await scoped.delete('mp/z.bin');
    await root.delete('tenant-a/outside');
    expect((await server.listKeys()).filter((key) => key.startsWith('tenant-a/'))).toEqual([]);
  });

  it('refuses a key that would pass 1024 bytes with the prefix, before any request', async () => {
    const scoped = open({ prefix: 'p/' });
    const before = server.requests().length;

    expect(await codeOf(() => scoped.put('k'.repeat(1023), Buffer.from('x')))).toBe('KEY_INVALID');
    expect(await codeOf(() => scoped.head('k'.repeat(1022)))).toBe('no error');
    expect(server.requests().length).toBe(before + 1);
  });

  it('accepts a plain fetch PUT of a part to a presigned URL, then lists and completes it', async () => {
    const store = open();
    const key = 'presigned/video.bin';
    const first = patterned(1, 5 * MIB);
    const second = Buffer.from('the short last part');
    const uploadId = await store.createMultipart(key, { contentType: 'video/mp4' });

    const url = await store.presignPart(key, uploadId, 1, 300);
    expect(url).toMatch(/X-Amz-Signature=/);
    // A browser cannot send checksum headers it knows nothing about: the URL must not ask for one.
    expect(url).not.toMatch(/checksum/i);
    const res = await fetch(url, { method: 'PUT', body: first });
    expect(res.status).toBe(200);
    const etag = res.headers.get('etag');
    expect(etag).toBeTruthy();

    const last = await store.putPart(key, uploadId, 2, second);
    expect(await store.listParts(key, uploadId)).toEqual([{ partNumber: 1, etag, size: first.length }, last]);
    const info = await store.completeMultipart(key, uploadId, [{ partNumber: 1, etag: etag ?? '' }, last]);

    expect(info).toMatchObject({ key, size: first.length + second.length, contentType: 'video/mp4' });
    expect(sha256(await readAll(await store.get(key)))).toBe(sha256(Buffer.concat([first, second])));
    await store.delete(key);
  });

  it('rejects a bad presign expiry', async () => {
    const store = open();
    expect(await codeOf(() => store.presignPart('k', 'id', 1, 0))).toBe('VALIDATION_FAILED');
    expect(await codeOf(() => store.presignPart('k', 'id', 1, 8 * 24 * 3600))).toBe('VALIDATION_FAILED');
    expect(await codeOf(() => store.presignPart('k', 'id', 0, 60))).toBe('VALIDATION_FAILED');
  });

  it('streams a body of several parts as one multipart upload, byte-identical', async () => {
    const store = open({ partSizeBytes: 5 * MIB });
    const key = 'big/eleven.bin';
    const bytes = patterned(7, 11 * MIB + 4321);
    const before = server.requests().length;

    const info = await store.put(key, Readable.from(chunked(bytes, 300 * 1024)), {
      contentType: 'video/mp4',
    });

    const sent = server.requests().slice(before);
    expect(sent.filter((r) => /^POST \S+\?uploads/.test(r))).toHaveLength(1);
    expect(sent.filter((r) => /^PUT \S+partNumber=/.test(r))).toHaveLength(3);
    expect(info).toMatchObject({ key, size: bytes.length, contentType: 'video/mp4' });
    expect(await store.head(key)).toMatchObject({
      size: bytes.length,
      etag: info.etag,
      contentType: 'video/mp4',
    });
    expect(sha256(await readAll(await store.get(key)))).toBe(sha256(bytes));
    expect(await server.listUploads()).toEqual([]);
    await store.delete(key);
  });

  it('past maxBytes, aborts the multipart upload: no object, no upload left', async () => {
    const store = open({ partSizeBytes: 5 * MIB });
    const key = 'big/too-large.bin';
    const body = Readable.from(chunked(patterned(3, 20 * MIB), 256 * 1024));
    const before = server.requests().length;

    expect(await codeOf(() => store.put(key, body, { maxBytes: 12 * MIB }))).toBe('UPLOAD_TOO_LARGE');

    expect(body.destroyed).toBe(true);
    const sent = server.requests().slice(before);
    // Parts went out before the limit was reached, so there was an upload to abort.
    expect(sent.filter((r) => /^POST \S+\?uploads/.test(r))).toHaveLength(1);
    expect(sent.filter((r) => /^DELETE \S+uploadId=/.test(r))).toHaveLength(1);
    expect(await store.head(key)).toBeUndefined();
    expect(await server.listKeys()).not.toContain(key);
    expect(await server.listUploads()).toEqual([]);
  });

  it('of two stores (two processes) completing one upload at once, exactly one succeeds', async () => {
    const [first, second] = [open(), open()];
    for (let round = 0; round < 5; round++) {
      const key = `race/${round}`;
      const uploadId = await first.createMultipart(key);
      const part = await first.putPart(key, uploadId, 1, Buffer.from(`round ${round}`));

      const outcomes = await Promise.allSettled([
        first.completeMultipart(key, uploadId, [part]),
        second.completeMultipart(key, uploadId, [part]),
      ]);
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      const lost = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason] : []));
      expect(lost).toEqual([expect.objectContaining({ code: 'UPLOAD_NOT_FOUND' })]);
      expect((await readAll(await second.get(key))).toString()).toBe(`round ${round}`);
      await first.delete(key);
    }
  });

  it('follows ListObjectsV2 pages, in key order', async () => {
    const store = open({ prefix: 'paged/', listPageSize: 2 });
    const keys = ['e', 'a/b', 'a.txt', 'c', 'a/a'];
    for (const key of keys) await store.put(key, Buffer.from(key));
    const before = server.requests().length;

    expect((await collect(store.list(''))).map((b) => b.key)).toEqual(['a.txt', 'a/a', 'a/b', 'c', 'e']);
    const listings = server
      .requests()
      .slice(before)
      .filter((r) => r.includes('list-type=2'));
    expect(listings).toHaveLength(3);
    expect(listings.filter((r) => r.includes('continuation-token='))).toHaveLength(2);
    for (const key of keys) await store.delete(key);
  });

  it('names the endpoint, the bucket and the cause when the server cannot be reached', async () => {
    const port = await closedPort();
    const store = open({ endpoint: `http://127.0.0.1:${port}` });

    for (const call of [
      () => store.put('k', Buffer.from('x')),
      () => store.get('k'),
      () => store.head('k'),
      () => collect(store.list('')),
      () => store.createMultipart('k'),
    ]) {
      const err = await errorOf(call);
      expect(err).toMatchObject({ code: 'UNAVAILABLE', status: 503 });
      expect((err as Error).message).toContain(`http://127.0.0.1:${port}`);
      expect((err as Error).message).toContain(`"${server.bucket}"`);
      expect((err as Error).message).toContain('ECONNREFUSED');
      expect(isOutage(err)).toBe(true);
    }
  });

  it('gives every client timeouts and 256 keep-alive sockets', () => {
    const config = s3ClientConfig({ endpoint: server.endpoint, region: server.region, forcePathStyle: true });
    const agent = { keepAlive: true, maxSockets: 256 };
    expect(config.requestHandler).toEqual({
      connectionTimeout: 3000,
      socketTimeout: 60_000,
      httpAgent: agent,
      httpsAgent: agent,
    });
    const tuned = s3ClientConfig({ region: 'us-east-1', forcePathStyle: false }, undefined, { idleMs: 500 });
    expect(tuned.requestHandler).toMatchObject({ connectionTimeout: 3000, socketTimeout: 500 });
  });

  it('fails within seconds, as an outage, against an endpoint that accepts connections and never answers', async () => {
    const silent = await silentServer();
    try {
      const store = open({ endpoint: silent.endpoint, timeouts: { idleMs: 500 } });
      for (const call of [
        () => store.head('k'),
        () => store.get('k'),
        () => store.put('k', Buffer.from('x')),
        () => collect(store.list('')),
      ]) {
        const startedAt = Date.now();
        const err = await errorOf(call);
        // Three attempts of 0.5 s each, and the SDK's backoff between them.
        expect(Date.now() - startedAt).toBeLessThan(10_000);
        expect(err).toMatchObject({ code: 'UNAVAILABLE', status: 503 });
        expect((err as Error).message).toContain('timed out');
        expect(isOutage(err)).toBe(true);
      }
      expect(silent.connections()).toBeGreaterThanOrEqual(4);
    } finally {
      await silent.close();
    }
  }, 60_000);

  it('reports a body that stalls mid-read as an outage', async () => {
    const stalling = await httpServer((_req, res) => {
      res.writeHead(200, { 'Content-Length': '1000', 'Content-Type': 'application/octet-stream' });
      res.write(Buffer.alloc(10)); // and nothing more
    });
    try {
      const store = open({ endpoint: stalling.endpoint, timeouts: { idleMs: 500 } });
      const body = await store.get('k');
      const err = await errorOf(() => readAll(body));
      expect(err).toMatchObject({ name: 'TimeoutError' });
      expect(isOutage(err)).toBe(true);
    } finally {
      await stalling.close();
    }
  });

  it('reports 503 SlowDown and 500 InternalError answers as outages', async () => {
    const answers = { status: 503, code: 'SlowDown' };
    const busy = await httpServer((req, res) => {
      req.resume();
      res.writeHead(answers.status, { 'Content-Type': 'application/xml' });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${answers.code}</Code><Message>busy</Message></Error>`,
      );
    });
    try {
      const store = open({ endpoint: busy.endpoint });
      for (const [status, code] of [
        [503, 'SlowDown'],
        [500, 'InternalError'],
      ] as const) {
        Object.assign(answers, { status, code });
        for (const call of [() => store.put('k', Buffer.from('x')), () => store.createMultipart('k')]) {
          const err = await errorOf(call);
          expect(err).toMatchObject({ code: 'UNAVAILABLE', status: 503 });
          expect((err as Error).message).toContain(code);
          expect(isOutage(err)).toBe(true);
        }
      }
    } finally {
      await busy.close();
    }
  }, 60_000);

  it('says which setting to fix when the bucket is missing or the access key is unknown', async () => {
    const missing = await errorOf(() => open({ bucket: 'no-such-bucket' }).put('k', Buffer.from('x')));
    expect(missing).toMatchObject({ code: 'CONFIG_INVALID' });
    expect((missing as Error).message).toMatch(
      /"no-such-bucket" at http:\/\/127\.0\.0\.1:\d+ failed with NoSuchBucket/,
    );
    expect((missing as Error).message).toMatch(/create it/);

    const stranger = open({ credentials: { accessKeyId: 'NOBODY', secretAccessKey: 'x' } });
    const denied = await errorOf(() => stranger.put('k', Buffer.from('x')));
    expect(denied).toMatchObject({ code: 'CONFIG_INVALID' });
    expect((denied as Error).message).toMatch(/InvalidAccessKeyId.*AWS_ACCESS_KEY_ID/);
  });

  it('refuses options it cannot work with', () => {
    const base = { bucket: 'media', region: 'us-east-1' };
    expect(() => new S3BlobStore({ ...base, bucket: 'Bad_Bucket' })).toThrow(/bucket name/);
    expect(() => new S3BlobStore({ ...base, prefix: 'no-slash' })).toThrow(/prefix/);
    expect(() => new S3BlobStore({ ...base, prefix: 'a//' })).toThrow(/prefix/);
    expect(() => new S3BlobStore({ ...base, partSizeBytes: MIB })).toThrow(/5 MiB/);
    expect(() => new S3BlobStore({ ...base, region: '' })).toThrow(/region/);
    expect(() => s3BlobStoreFromUrl('s3://media?bogus=1')).toThrow(/unknown parameter "bogus"/);
  });
});

// The S3 behaviour test/helpers/s3-server.ts adds to s3rver, checked with a plain S3 client.
describe('the s3rver test server answers like S3', () => {
  let client: S3Client;
  const Bucket = 'assetpipe-test';

  beforeAll(() => {
    client = new S3Client(
      s3ClientConfig(
        { endpoint: server.endpoint, region: server.region, forcePathStyle: true },
        server.credentials,
      ),
    );
  });

  afterAll(() => {
    client.destroy();
  });

  const start = async (Key: string): Promise<string> =>
    (await client.send(new CreateMultipartUploadCommand({ Bucket, Key }))).UploadId ?? '';
  const upload = async (Key: string, UploadId: string, PartNumber: number, Body: Buffer) => ({
    PartNumber,
    ETag: (await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body }))).ETag,
  });
  const complete = (
    Key: string,
    UploadId: string,
    Parts: Array<{ PartNumber: number; ETag?: string | undefined }>,
  ) => client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts } }));

  it('lists parts and aborts uploads; an unknown upload, or one of another key, is NoSuchUpload', async () => {
    const Key = 'raw/parts';
    const UploadId = await start(Key);
    const two = await upload(Key, UploadId, 2, Buffer.from('two'));
    const one = await upload(Key, UploadId, 1, Buffer.from('one!'));

    const listed = await client.send(new ListPartsCommand({ Bucket, Key, UploadId }));
    expect(listed.Parts?.map((p) => [p.PartNumber, p.ETag, p.Size])).toEqual([
      [1, one.ETag, 4],
      [2, two.ETag, 3],
    ]);
    expect(listed.Parts?.[0]?.LastModified).toBeInstanceOf(Date);
    for (const call of [
      () => client.send(new ListPartsCommand({ Bucket, Key: 'raw/other', UploadId })),
      () => upload('raw/other', UploadId, 1, Buffer.from('x')),
      () => upload(Key, 'f'.repeat(32), 1, Buffer.from('x')),
      () => client.send(new ListPartsCommand({ Bucket, Key, UploadId: '../../x' })),
    ]) {
      expect(await errorOf(call)).toMatchObject({ name: 'NoSuchUpload', $metadata: { httpStatusCode: 404 } });
    }

    const aborted = await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }));
    expect(aborted.$metadata.httpStatusCode).toBe(204);
    expect(await errorOf(() => upload(Key, UploadId, 3, Buffer.from('late')))).toMatchObject({
      name: 'NoSuchUpload',
    });
    expect(
      await errorOf(() => client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }))),
    ).toMatchObject({ name: 'NoSuchUpload' });
    expect(await server.listUploads()).toEqual([]);
  });

  it('lists multipart uploads in progress, by prefix and in pages', async () => {
    const ids = [await start('listed/b'), await start('listed/a'), await start('other/c')];
    try {
      const all = await client.send(new ListMultipartUploadsCommand({ Bucket, Prefix: 'listed/' }));
      expect(all.Uploads?.map((u) => u.Key)).toEqual(['listed/a', 'listed/b']);
      expect(all.Uploads?.[0]?.UploadId).toBe(ids[1]);
      expect(all.Uploads?.[0]?.Initiated).toBeInstanceOf(Date);

      const first = await client.send(new ListMultipartUploadsCommand({ Bucket, MaxUploads: 1 }));
      expect(first.IsTruncated).toBe(true);
      const rest = await client.send(
        new ListMultipartUploadsCommand({
          Bucket,
          KeyMarker: first.NextKeyMarker,
          UploadIdMarker: first.NextUploadIdMarker,
        }),
      );
      const keys = [...(first.Uploads ?? []), ...(rest.Uploads ?? [])].map((u) => u.Key);
      expect(keys.filter((key) => key?.startsWith('listed/') || key?.startsWith('other/'))).toEqual([
        'listed/a',
        'listed/b',
        'other/c',
      ]);
    } finally {
      const keys = ['listed/b', 'listed/a', 'other/c'];
      for (const [i, UploadId] of ids.entries()) {
        await client.send(new AbortMultipartUploadCommand({ Bucket, Key: keys[i], UploadId }));
      }
    }
  });

  it('completes only a list of uploaded parts, ascending, all but the last at least 5 MiB', async () => {
    const Key = 'raw/complete';
    const UploadId = await start(Key);
    const small = await upload(Key, UploadId, 1, Buffer.from('small'));
    const full = await upload(Key, UploadId, 2, Buffer.alloc(5 * MIB, 2));
    const tail = await upload(Key, UploadId, 3, Buffer.from('tail'));

    const cases: Array<[string, Array<{ PartNumber: number; ETag?: string | undefined }>]> = [
      ['InvalidPart', [full, { ...tail, PartNumber: 4 }]],
      ['InvalidPart', [{ ...full, ETag: small.ETag }, tail]],
      ['InvalidPartOrder', [tail, full]],
      ['EntityTooSmall', [small, full]],
    ];
    for (const [name, parts] of cases) {
      expect(await errorOf(() => complete(Key, UploadId, parts))).toMatchObject({
        name,
        $metadata: { httpStatusCode: 400 },
      });
    }
    const done = await complete(Key, UploadId, [full, { ...tail, ETag: tail.ETag?.replaceAll('"', '') }]);
    expect(done.ETag).toMatch(/^"[0-9a-f]{32}"$/);
    expect(await errorOf(() => complete(Key, UploadId, [full, tail]))).toMatchObject({
      name: 'NoSuchUpload',
    });
    const got = await client.send(new GetObjectCommand({ Bucket, Key }));
    expect(got.ContentLength).toBe(5 * MIB + 4);
    await got.Body?.transformToByteArray();
  });

  it('serves bytes=0-0 as one byte, and no range of an empty object', async () => {
    await client.send(new PutObjectCommand({ Bucket, Key: 'raw/ten', Body: Buffer.from('0123456789') }));
    await client.send(new PutObjectCommand({ Bucket, Key: 'raw/empty', Body: Buffer.alloc(0) }));

    const first = await client.send(new GetObjectCommand({ Bucket, Key: 'raw/ten', Range: 'bytes=0-0' }));
    expect(first.ContentRange).toBe('bytes 0-0/10');
    expect(await first.Body?.transformToString()).toBe('0');
    expect(
      await errorOf(() => client.send(new GetObjectCommand({ Bucket, Key: 'raw/empty', Range: 'bytes=0-' }))),
    ).toMatchObject({ name: 'InvalidRange', $metadata: { httpStatusCode: 416 } });
  });
});

/** Deterministic bytes, different for every `seed`. */
function patterned(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let x = Math.imul(seed + 1, 2654435761) >>> 0;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = (x >>> 16) & 0xff;
  }
  return out;
}

function* chunked(bytes: Buffer, size: number): Generator<Buffer> {
  for (let offset = 0; offset < bytes.length; offset += size) yield bytes.subarray(offset, offset + size);
}

/** A TCP server that accepts connections and never answers (a black hole past the handshake). */
async function silentServer(): Promise<{ endpoint: string; connections(): number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let count = 0;
  const silent: Server = createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.resume(); // read and ignore the request
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const address = silent.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    connections: () => count,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    },
  };
}

/** An HTTP server on 127.0.0.1 that answers every request with `handler`. */
async function httpServer(
  handler: Parameters<typeof createHttpServer>[1],
): Promise<{ endpoint: string; close(): Promise<void> }> {
  const http: HttpServer = createHttpServer(handler);
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const address = http.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    close: async () => {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
