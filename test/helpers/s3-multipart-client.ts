import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { wavHeader } from './wav.js';

// A client for assetpipe's S3-style multipart uploads over real HTTP: the calls `@uppy/aws-s3`
// makes against a Companion-compatible `endpoint`, and plain PUTs of part bytes to signed URLs.

/** 16-bit stereo PCM at 48 kHz: bytes of samples per second. */
export { WAV_BYTE_RATE } from './wav.js';

/**
 * A valid WAV file of exactly `totalBytes`: a canonical 44-byte PCM header, then random samples.
 * Random bytes make every call's content (and sha256) unique, so no two tests' uploads are duplicates.
 */
export function makeWav(totalBytes: number): Buffer {
  const dataBytes = totalBytes - 44;
  if (dataBytes < 4 || dataBytes % 4 !== 0) throw new Error('a WAV needs 44 + 4n bytes, n >= 1');
  return Buffer.concat([wavHeader(dataBytes), randomBytes(dataBytes)]);
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** `bytes` cut into `partSize` pieces (the last one shorter), numbered from 1. */
export function splitParts(bytes: Buffer, partSize: number): Array<{ partNumber: number; data: Buffer }> {
  const parts: Array<{ partNumber: number; data: Buffer }> = [];
  for (let offset = 0, n = 1; offset < bytes.length; offset += partSize, n++) {
    parts.push({ partNumber: n, data: bytes.subarray(offset, Math.min(offset + partSize, bytes.length)) });
  }
  return parts;
}

export interface PutResult {
  status: number;
  /** The `ETag` response header, as a browser reads it. */
  etag: string | undefined;
  body: unknown;
}

/**
 * PUTs `body` to an absolute `url` with node:http, no API key, no Content-Type (a browser sends a
 * `Blob.slice()` without one), as `@uppy/aws-s3` sends part bytes.
 *
 * With `abortAfterBytes`, only that many bytes are written (and flushed to the socket); then the
 * request is aborted midway, as a dropped connection would, and the promise rejects.
 */
export function putBytes(
  url: string,
  body: Uint8Array,
  options: { abortAfterBytes?: number; headers?: Record<string, string> } = {},
): Promise<PutResult> {
  const controller = new AbortController();
  return new Promise<PutResult>((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'PUT',
        headers: { 'content-length': String(body.byteLength), ...options.headers },
        signal: controller.signal,
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          const etag = res.headers.etag;
          resolve({
            status: res.statusCode ?? 0,
            etag: typeof etag === 'string' ? etag : undefined,
            body: parsed,
          });
        });
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`PUT ${url} timed out`)));
    const cut = options.abortAfterBytes;
    if (cut === undefined) {
      req.end(body);
      return;
    }
    req.write(body.subarray(0, cut), () => {
      // Give the server a moment to start reading the partial body before the connection drops.
      setTimeout(() => controller.abort(), 100);
    });
  });
}

export interface JsonResponse<T = unknown> {
  status: number;
  contentType: string;
  body: T;
}

/** fetch + JSON (or problem+json) body; `undefined` body when there is none. */
export async function fetchJson<T = unknown>(
  url: string,
  init: { method?: string; headers?: Record<string, string>; json?: unknown } = {},
): Promise<JsonResponse<T>> {
  const headers: Record<string, string> = { ...init.headers };
  let body: string | undefined;
  if (init.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(init.json);
  }
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    headers,
    body,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    throw new Error(`${init.method ?? 'GET'} ${url}: ${res.status} with a body that is not JSON: ${text}`);
  }
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: parsed as T };
}

export interface CompanionPart {
  PartNumber: number;
  Size: number;
  ETag: string;
}

/**
 * The requests `@uppy/aws-s3` makes to a Companion-compatible server at `endpoint` (here
 * `<server>/v1/uploads`), with `companionHeaders` (the API key) on every one of them. Part bytes
 * are PUT with {@link putBytes}, without those headers.
 */
export class CompanionClient {
  constructor(
    private readonly endpoint: string,
    private readonly headers: Record<string, string>,
  ) {}

  private url(path: string, key: string): string {
    return `${this.endpoint}${path}${path.includes('?') ? '&' : '?'}key=${encodeURIComponent(key)}`;
  }

  createMultipartUpload(file: { name: string; type: string; meta?: Record<string, unknown> }) {
    return fetchJson<{ uploadId: string; key: string }>(`${this.endpoint}/s3/multipart`, {
      method: 'POST',
      headers: this.headers,
      json: {
        filename: file.name,
        type: file.type,
        metadata: { name: file.name, type: file.type, ...file.meta },
      },
    });
  }

  /** Uppy 3's `prepareUploadParts`. */
  signParts(uploadId: string, key: string, partNumbers: readonly number[]) {
    return fetchJson<{ presignedUrls: Record<string, string> }>(
      this.url(
        `/s3/multipart/${encodeURIComponent(uploadId)}/batch?partNumbers=${partNumbers.join(',')}`,
        key,
      ),
      { headers: this.headers },
    );
  }

  /** Uppy 4's `signPart`. */
  signPart(uploadId: string, key: string, partNumber: number | string) {
    return fetchJson<{ url: string; expires?: number }>(
      this.url(`/s3/multipart/${encodeURIComponent(uploadId)}/${partNumber}`, key),
      { headers: this.headers },
    );
  }

  listParts(uploadId: string, key: string) {
    return fetchJson<CompanionPart[]>(this.url(`/s3/multipart/${encodeURIComponent(uploadId)}`, key), {
      headers: this.headers,
    });
  }

  completeMultipartUpload(
    uploadId: string,
    key: string,
    parts: ReadonlyArray<{ PartNumber: number; ETag: string }>,
  ) {
    return fetchJson<{ location: string; id: string } & Record<string, unknown>>(
      this.url(`/s3/multipart/${encodeURIComponent(uploadId)}/complete`, key),
      { method: 'POST', headers: this.headers, json: { parts } },
    );
  }

  abortMultipartUpload(uploadId: string, key: string) {
    return fetchJson(this.url(`/s3/multipart/${encodeURIComponent(uploadId)}`, key), {
      method: 'DELETE',
      headers: this.headers,
    });
  }
}

/** Runs `tasks` with at most `limit` in flight, like Uppy's `limit` option; results in task order. */
export async function inParallel<T>(limit: number, tasks: ReadonlyArray<() => Promise<T>>): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const index = next++;
      results[index] = await tasks[index]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}
