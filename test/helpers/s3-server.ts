/**
 * An S3 server for tests: s3rver 3.7.1 in-process on 127.0.0.1 (random port), one bucket with a CORS
 * rule for browser part uploads, files in a temp dir removed on close. Credentials S3RVER/S3RVER
 * (s3rver checks the access key id of a SigV4 request, not its signature).
 *
 * s3rver 3.7.1 lacks or gets wrong some S3 behaviour the S3 blob store relies on. Added here, on
 * s3rver's own files (`<bucket>/._S3rver_uploads/<uploadId>/{key,metadata,<n>,<n>.md5}` for
 * uploads, `<dir>/<name>._S3rver_object` plus `.md5` and `._S3rver_metadata.json` for objects):
 *
 * - ListParts (`GET /b/key?uploadId=`) and AbortMultipartUpload (`DELETE /b/key?uploadId=`, 204):
 *   missing in s3rver (its router answers MethodNotAllowed).
 * - ListMultipartUploads (`GET /b?uploads`): missing in s3rver (it answers a ListObjects). Here with
 *   `prefix`, `key-marker`, `upload-id-marker` and `max-uploads`, uploads in (key, upload id) order,
 *   `Initiated` being when the upload folder's `key` file was written.
 * - CompleteMultipartUpload (`POST /b/key?uploadId=`): s3rver joins whatever part numbers it is
 *   given without checking them. Here, as in S3: InvalidPartOrder unless ascending, InvalidPart
 *   unless each part exists with the listed ETag, EntityTooSmall for a part under 5 MiB but the
 *   last; and the upload is claimed (renamed) first, so of two concurrent completes one gets
 *   NoSuchUpload.
 * - UploadPart (`PUT /b/key?uploadId=&partNumber=`): s3rver creates the upload folder for any id,
 *   so a part sent to an unknown, finished or aborted upload is stored. Here it is NoSuchUpload,
 *   as is any upload operation whose key is not the upload's key.
 * - ListObjectsV2 without a delimiter: s3rver walks folders in name order, so `a.txt` is listed
 *   after `a/b` (S3 lists in UTF-8 byte order), and its continuation tokens use DES, which the
 *   OpenSSL 3 of Node 20 refuses (every truncated listing is a 500).
 * - PutObject and GetObject: s3rver overwrites an object's file in place and reads size, ETag and
 *   content type from three files, so a concurrent reader sees torn bytes and mixed metadata;
 *   and `Range: bytes=0-0` returned the whole object (its `end || Infinity`), a range of an empty
 *   object a 206 of nothing. Here a put is written aside and renamed into place, with its metadata,
 *   under a per-object lock that reads also take.
 *
 * The operations answered here go through s3rver's own bucket check and authentication first.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, sep } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface S3TestServer {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  bucket: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** The storage URL of the bucket: `s3://<bucket>?endpoint=…&region=us-east-1&forcePathStyle=true`. */
  url: string;
  /** Every object key in the bucket, in key order (read from disk, not through S3). */
  listKeys(): Promise<string[]>;
  /** Multipart uploads in progress (read from disk, not through S3). */
  listUploads(): Promise<Array<{ key: string; uploadId: string }>>;
  /** Every request received so far, as `METHOD /path?query`. */
  requests(): string[];
  close(): Promise<void>;
}

const BUCKET = 'assetpipe-test';
const REGION = 'us-east-1';
const OBJECT_SUFFIX = '._S3rver_object';
const UPLOADS = '._S3rver_uploads';
const MIN_PART_SIZE = 5 * 1024 * 1024;
const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const CORS = `<CORSConfiguration>
  <CORSRule>
    <AllowedOrigin>*</AllowedOrigin>
    <AllowedMethod>PUT</AllowedMethod>
    <AllowedMethod>GET</AllowedMethod>
    <AllowedMethod>HEAD</AllowedMethod>
    <AllowedHeader>*</AllowedHeader>
    <ExposeHeader>ETag</ExposeHeader>
    <MaxAgeSeconds>3000</MaxAgeSeconds>
  </CORSRule>
</CORSConfiguration>`;

// s3rver is CommonJS without type declarations: the little of it used here, typed by hand.
type Metadata = Record<string, string | number>;
interface StoredObject {
  bucket: string;
  key: string;
  content: Readable | Buffer | null;
  metadata: Metadata;
  range?: { start: number; end: number };
}
interface FilesystemStore {
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  getBucketPath(bucket: string): string;
  getBucket(bucket: string): Promise<unknown>;
  getMetadata(bucket: string, key: string): Promise<Metadata>;
  putMetadata(bucket: string, key: string, metadata: Metadata, md5: string): Promise<void>;
  putObject(object: StoredObject): Promise<{ size: number; md5: string }>;
  getObject(
    bucket: string,
    key: string,
    options?: { start?: number; end?: number },
  ): Promise<StoredObject | null>;
  putObjectMultipart(
    bucket: string,
    uploadId: string,
    parts: Array<{ number: number; etag: string }>,
  ): Promise<{ size: number; md5: string }>;
}
interface Context {
  method: string;
  url: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  req: IncomingMessage;
  status: number;
  body: unknown;
  params?: Record<string, string>;
}
type Next = () => Promise<void>;
type Middleware = (ctx: Context, next: Next) => Promise<void> | void;
interface S3rverApp {
  middleware: Middleware[];
  store: FilesystemStore;
  httpServer?: { closeAllConnections(): void };
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}

const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as new (options: Record<string, unknown>) => S3rverApp;
const S3Error = require('s3rver/lib/models/error') as new (
  code: string,
  message: string,
  detail?: Record<string, unknown>,
) => Error;
const S3Object = require('s3rver/lib/models/object') as new (
  bucket: string,
  key: string,
  content: Readable | null,
  metadata: Metadata,
) => StoredObject;
const authentication = require('s3rver/lib/middleware/authentication') as () => Middleware;

export async function startS3Server(): Promise<S3TestServer> {
  const dir = await mkdtemp(join(tmpdir(), 'assetpipe-s3rver-'));
  const spoolDir = join(dir, 'spool');
  await mkdir(spoolDir);
  const server = new S3rver({
    port: 0,
    address: '127.0.0.1',
    silent: true,
    directory: join(dir, 'data'),
    configureBuckets: [{ name: BUCKET, configs: [CORS] }],
  });
  const { store } = server;
  const received: string[] = [];
  server.middleware.unshift((ctx, next) => {
    received.push(`${ctx.method} ${ctx.url}`);
    return next();
  });
  atomicObjects(store, spoolDir);
  // Before s3rver's router (the last middleware), after its XML encoder, error handler and vhost.
  server.middleware.splice(server.middleware.length - 1, 0, missingOperations(store));

  let address: AddressInfo;
  try {
    address = await server.run();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const endpoint = `http://127.0.0.1:${address.port}`;
  return {
    endpoint,
    bucket: BUCKET,
    region: REGION,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    url: `s3://${BUCKET}?endpoint=${encodeURIComponent(endpoint)}&region=${REGION}&forcePathStyle=true`,
    listKeys: () => objectKeys(store.getBucketPath(BUCKET), ''),
    listUploads: () => uploadsOf(store, BUCKET),
    requests: () => [...received],
    async close() {
      // Keep-alive connections would hold `close` open until they time out.
      server.httpServer?.closeAllConnections();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The operations s3rver lacks, or answers unlike S3: see the header comment. */
function missingOperations(store: FilesystemStore): Middleware {
  const authenticate = authentication();
  return async (ctx, next) => {
    const [, rawBucket = '', ...rest] = ctx.path.split('/');
    const bucket = decodeURIComponent(rawBucket);
    const key = decodeURIComponent(rest.join('/'));
    const { method, query } = ctx;
    let handler: (() => Promise<void>) | undefined;
    if (key !== '' && 'uploadId' in query) {
      const uploadId = String(query.uploadId);
      if (method === 'GET') handler = () => listParts(ctx, store, bucket, key, uploadId);
      if (method === 'DELETE') handler = () => abortUpload(ctx, store, bucket, key, uploadId);
      if (method === 'POST') handler = () => completeUpload(ctx, store, bucket, key, uploadId);
      if (method === 'PUT') {
        handler = async () => {
          await uploadDirOf(store, bucket, key, uploadId);
          await next(); // s3rver's UploadPart
        };
      }
    } else if (
      key === '' &&
      bucket !== '' &&
      method === 'GET' &&
      query['list-type'] === '2' &&
      !query.delimiter
    ) {
      handler = () => listObjectsV2(ctx, store, bucket);
    } else if (key === '' && bucket !== '' && method === 'GET' && 'uploads' in query && !query.delimiter) {
      handler = () => listMultipartUploads(ctx, store, bucket);
    }
    if (!handler) return next();

    if (!(await store.getBucket(bucket))) {
      throw new S3Error('NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket });
    }
    ctx.params = { bucket, key };
    await authenticate(ctx, handler);
  };
}

/** The folder of a multipart upload of `key`, or NoSuchUpload (unknown, finished, or another key's). */
async function uploadDirOf(
  store: FilesystemStore,
  bucket: string,
  key: string,
  uploadId: string,
): Promise<string> {
  // s3rver's ids are 32 hex digits; anything else (a path, above all) names no upload.
  if (!/^[0-9a-f]{32}$/.test(uploadId)) throw noSuchUpload(uploadId);
  const dir = join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId);
  const owner = await readFile(join(dir, 'key'), 'utf8').catch(() => undefined);
  if (owner !== key) throw noSuchUpload(uploadId);
  return dir;
}

/** Renames an upload folder away (the claim of a complete or an abort); NoSuchUpload if another won. */
async function claim(dir: string, suffix: string, uploadId: string): Promise<string> {
  const claimed = `${dir}.${suffix}-${randomBytes(8).toString('hex')}`;
  try {
    await rename(dir, claimed);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') throw noSuchUpload(uploadId);
    throw err;
  }
  return claimed;
}

function noSuchUpload(uploadId: string): Error {
  return new S3Error(
    'NoSuchUpload',
    'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
    { UploadId: uploadId },
  );
}

/** The uploaded parts of an upload folder (a part counts once its `.md5` is written), by number. */
async function partsIn(
  dir: string,
): Promise<Array<{ number: number; md5: string; size: number; mtime: Date }>> {
  const names = await readdir(dir).catch((err: { code?: unknown }) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!names) throw noSuchUpload(basename(dir));
  const parts = [];
  for (const name of names) {
    if (!/^[1-9]\d*$/.test(name)) continue;
    const md5 = await readFile(join(dir, `${name}.md5`), 'utf8').catch(() => undefined);
    const info = await stat(join(dir, name)).catch(() => undefined);
    if (md5 && info) parts.push({ number: Number(name), md5, size: info.size, mtime: info.mtime });
  }
  return parts.sort((a, b) => a.number - b.number);
}

async function listParts(
  ctx: Context,
  store: FilesystemStore,
  bucket: string,
  key: string,
  uploadId: string,
) {
  const dir = await uploadDirOf(store, bucket, key, uploadId);
  const maxParts = Math.min(Number(ctx.query['max-parts'] ?? 1000) || 1000, 1000);
  const marker = Number(ctx.query['part-number-marker'] ?? 0) || 0;
  const after = (await partsIn(dir)).filter((part) => part.number > marker);
  const page = after.slice(0, maxParts);
  const truncated = after.length > page.length;
  ctx.body = {
    ListPartsResult: {
      '@': { xmlns: XMLNS },
      Bucket: bucket,
      Key: key,
      UploadId: uploadId,
      PartNumberMarker: marker,
      NextPartNumberMarker: truncated ? page[page.length - 1]?.number : undefined,
      MaxParts: maxParts,
      IsTruncated: truncated,
      Part: page.map((part) => ({
        PartNumber: part.number,
        LastModified: part.mtime.toISOString(),
        ETag: JSON.stringify(part.md5),
        Size: part.size,
      })),
    },
  };
}

async function abortUpload(
  ctx: Context,
  store: FilesystemStore,
  bucket: string,
  key: string,
  uploadId: string,
) {
  const doomed = await claim(await uploadDirOf(store, bucket, key, uploadId), 'aborting', uploadId);
  await rm(doomed, { recursive: true, force: true });
  ctx.status = 204;
}

async function completeUpload(
  ctx: Context,
  store: FilesystemStore,
  bucket: string,
  key: string,
  uploadId: string,
) {
  const dir = await uploadDirOf(store, bucket, key, uploadId);
  const listed = parseCompleteBody(await readBody(ctx.req));
  if (listed.length === 0) {
    throw new S3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate.');
  }
  try {
    await checkPartList(dir, listed, uploadId);
  } catch (err) {
    await uploadDirOf(store, bucket, key, uploadId); // completed or aborted meanwhile: NoSuchUpload wins
    throw err;
  }
  // The claim: after this rename, a concurrent complete, part or abort finds no upload.
  const claimed = await claim(dir, 'completing', uploadId);
  let md5: string;
  try {
    await checkPartList(claimed, listed, uploadId); // a part may have been re-sent meanwhile
    ({ md5 } = await store.putObjectMultipart(bucket, basename(claimed), listed));
  } catch (err) {
    await rename(claimed, dir).catch(() => undefined);
    throw err;
  }
  ctx.body = {
    CompleteMultipartUploadResult: {
      '@': { xmlns: XMLNS },
      Location: `/${bucket}/${key}`,
      Bucket: bucket,
      Key: key,
      ETag: JSON.stringify(md5),
    },
  };
}

/** As S3: InvalidPartOrder, then InvalidPart (missing, or another ETag), then EntityTooSmall. */
async function checkPartList(dir: string, listed: Array<{ number: number; etag: string }>, uploadId: string) {
  if (listed.some((part, i) => i > 0 && part.number <= (listed[i - 1]?.number ?? 0))) {
    throw new S3Error('InvalidPartOrder', 'The list of parts was not in ascending order.');
  }
  const held = new Map((await partsIn(dir)).map((part) => [part.number, part]));
  for (const part of listed) {
    const found = held.get(part.number);
    if (!found || found.md5 !== part.etag) {
      throw new S3Error(
        'InvalidPart',
        "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
        { UploadId: uploadId, PartNumber: part.number, ETag: part.etag },
      );
    }
  }
  const small = listed.slice(0, -1).find((part) => (held.get(part.number)?.size ?? 0) < MIN_PART_SIZE);
  if (small) {
    throw new S3Error(
      'EntityTooSmall',
      'Your proposed upload is smaller than the minimum allowed object size.',
      {
        PartNumber: small.number,
        MinSizeAllowed: MIN_PART_SIZE,
      },
    );
  }
}

/** `<Part><PartNumber>n</PartNumber><ETag>e</ETag></Part>…`, ETags without quotes (S3 ignores them). */
function parseCompleteBody(xml: string): Array<{ number: number; etag: string }> {
  const parts = [];
  for (const [, inner = ''] of xml.matchAll(/<Part>([\s\S]*?)<\/Part>/g)) {
    const number = /<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(inner)?.[1];
    const etag = /<ETag>([\s\S]*?)<\/ETag>/.exec(inner)?.[1];
    if (number === undefined || etag === undefined) continue;
    parts.push({ number: Number(number), etag: decodeXml(etag).replaceAll('"', '') });
  }
  return parts;
}

async function listObjectsV2(ctx: Context, store: FilesystemStore, bucket: string) {
  const prefix = String(ctx.query.prefix ?? '');
  const maxKeys = Math.min(Number(ctx.query['max-keys'] ?? 1000), 1000);
  const token = ctx.query['continuation-token'];
  const startAfter =
    token === undefined
      ? String(ctx.query['start-after'] ?? '')
      : Buffer.from(String(token), 'base64url').toString('utf8');
  const after = (await objectKeys(store.getBucketPath(bucket), prefix)).filter(
    (key) => Buffer.compare(Buffer.from(key), Buffer.from(startAfter)) > 0,
  );
  const page = after.slice(0, maxKeys);
  const truncated = after.length > page.length;
  const contents = [];
  for (const key of page) {
    const metadata = await store.getMetadata(bucket, key).catch(() => undefined);
    if (!metadata) continue; // deleted meanwhile
    contents.push({
      Key: key,
      LastModified: new Date(String(metadata['last-modified'])).toISOString(),
      ETag: metadata.etag,
      Size: metadata['content-length'],
      StorageClass: 'STANDARD',
    });
  }
  ctx.body = {
    ListBucketResult: {
      '@': { xmlns: XMLNS },
      Name: bucket,
      Prefix: prefix,
      KeyCount: contents.length,
      MaxKeys: maxKeys,
      IsTruncated: truncated,
      ContinuationToken: token,
      NextContinuationToken: truncated
        ? Buffer.from(page[page.length - 1] ?? '', 'utf8').toString('base64url')
        : undefined,
      StartAfter: token === undefined && startAfter !== '' ? startAfter : undefined,
      Contents: contents,
    },
  };
}

async function listMultipartUploads(ctx: Context, store: FilesystemStore, bucket: string) {
  const prefix = String(ctx.query.prefix ?? '');
  const maxUploads = Math.min(Number(ctx.query['max-uploads'] ?? 1000) || 1000, 1000);
  const keyMarker = String(ctx.query['key-marker'] ?? '');
  const uploadIdMarker = String(ctx.query['upload-id-marker'] ?? '');
  const root = store.getResourcePath(bucket, undefined, 'uploads');
  const byKey = (a: { key: string; uploadId: string }, b: { key: string; uploadId: string }) =>
    Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)) || (a.uploadId < b.uploadId ? -1 : 1);
  const after = (await uploadsOf(store, bucket))
    .filter((upload) => upload.key.startsWith(prefix))
    .filter((upload) => {
      if (keyMarker === '') return true;
      const order = Buffer.compare(Buffer.from(upload.key), Buffer.from(keyMarker));
      return order > 0 || (order === 0 && uploadIdMarker !== '' && upload.uploadId > uploadIdMarker);
    })
    .sort(byKey);
  const page = after.slice(0, maxUploads);
  const truncated = after.length > page.length;
  const last = page[page.length - 1];
  const uploads = [];
  for (const upload of page) {
    const initiated = await stat(join(root, upload.uploadId, 'key')).catch(() => undefined);
    if (!initiated) continue; // completed or aborted meanwhile
    uploads.push({
      Key: upload.key,
      UploadId: upload.uploadId,
      Initiator: { ID: 'S3RVER', DisplayName: 'S3rver' },
      Owner: { ID: 'S3RVER', DisplayName: 'S3rver' },
      StorageClass: 'STANDARD',
      Initiated: initiated.mtime.toISOString(),
    });
  }
  ctx.body = {
    ListMultipartUploadsResult: {
      '@': { xmlns: XMLNS },
      Bucket: bucket,
      KeyMarker: keyMarker,
      UploadIdMarker: uploadIdMarker,
      NextKeyMarker: truncated ? last?.key : undefined,
      NextUploadIdMarker: truncated ? last?.uploadId : undefined,
      Prefix: prefix,
      MaxUploads: maxUploads,
      IsTruncated: truncated,
      Upload: uploads,
    },
  };
}

/** Object keys below `bucketPath` starting with `prefix`, in UTF-8 byte order (as S3 lists). */
async function objectKeys(bucketPath: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  const visit = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name.startsWith(UPLOADS)) continue;
        const below = `${relative(bucketPath, path).split(sep).join('/')}/`;
        // Only folders that can hold a key with the prefix.
        if (below.startsWith(prefix) || prefix.startsWith(below)) await visit(path);
      } else if (entry.name.endsWith(OBJECT_SUFFIX)) {
        const key = relative(bucketPath, path).split(sep).join('/').slice(0, -OBJECT_SUFFIX.length);
        if (key.startsWith(prefix)) keys.push(key);
      }
    }
  };
  await visit(bucketPath);
  return keys.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

async function uploadsOf(
  store: FilesystemStore,
  bucket: string,
): Promise<Array<{ key: string; uploadId: string }>> {
  const root = store.getResourcePath(bucket, undefined, 'uploads');
  const uploads = [];
  for (const uploadId of await readdir(root).catch(() => [])) {
    const key = await readFile(join(root, uploadId, 'key'), 'utf8').catch(() => undefined);
    if (key !== undefined) uploads.push({ key, uploadId });
  }
  return uploads;
}

/** PutObject written aside and renamed into place; GetObject with S3's ranges; both under one lock. */
function atomicObjects(store: FilesystemStore, spoolDir: string): void {
  const getMetadata = store.getMetadata.bind(store);
  const lock = keyedLock();

  store.putObject = async (object) => {
    const target = store.getResourcePath(object.bucket, object.key, 'object');
    const temp = join(spoolDir, randomUUID());
    const hash = createHash('md5');
    let size = 0;
    const content = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
    if (!content) throw new Error('putObject without content');
    const count = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        size += chunk.length;
        callback(null, chunk);
      },
    });
    try {
      await pipeline(content, count, createWriteStream(temp));
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    const md5 = hash.digest('hex');
    await lock(target, async () => {
      await mkdir(dirname(target), { recursive: true });
      await rename(temp, target);
      await store.putMetadata(object.bucket, object.key, object.metadata, md5);
    });
    return { size, md5 };
  };

  store.getObject = async (bucket, key, options) => {
    const path = store.getResourcePath(bucket, key, 'object');
    return lock(path, async () => {
      let metadata: Metadata;
      try {
        metadata = await getMetadata(bucket, key);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return null;
        throw err;
      }
      // s3rver's controller sets `start` for any `Range: bytes=…` request.
      if (options?.start === undefined) return new S3Object(bucket, key, await opened(path), metadata);
      const size = Number(metadata['content-length']);
      const range = {
        start: options.start,
        end: Math.min(options.end ?? Number.POSITIVE_INFINITY, size - 1),
      };
      // No content and a range: the controller answers 416 InvalidRange.
      const content = range.start <= range.end ? await opened(path, range) : null;
      const object = new S3Object(bucket, key, content, metadata);
      object.range = range;
      return object;
    });
  };
}

/** A read stream whose file is open (so a later rename over the path does not change what it reads). */
function opened(path: string, range?: { start: number; end: number }): Promise<ReadStream> {
  return new Promise((resolve, reject) => {
    const stream = createReadStream(path, range);
    stream.once('error', reject).once('open', () => resolve(stream));
  });
}

/** Runs `fn` for one name at a time, in arrival order. */
function keyedLock(): <T>(name: string, fn: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<void>>();
  return async (name, fn) => {
    const previous = tails.get(name) ?? Promise.resolve();
    let release = (): void => undefined;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    tails.set(name, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (tails.get(name) === tail) tails.delete(name);
    }
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function decodeXml(text: string): string {
  const entities: Record<string, string> = { quot: '"', amp: '&', lt: '<', gt: '>', apos: "'" };
  return text.replace(/&(quot|amp|lt|gt|apos);/g, (_m, name: string) => entities[name] ?? '');
}

/**
 * Gives the AWS SDK's default credential chain this server's keys, as `AWS_*` variables do in
 * production (the container's S3 clients read them). Returns what puts the environment back.
 */
export function useS3Credentials(s3: S3TestServer): () => void {
  const names = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'] as const;
  const saved = names.map((name) => process.env[name]);
  process.env.AWS_ACCESS_KEY_ID = s3.credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = s3.credentials.secretAccessKey;
  return () => {
    names.forEach((name, i) => {
      const value = saved[i];
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    });
  };
}
