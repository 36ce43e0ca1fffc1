import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { AUTH } from './auth.js';
import { waitFor } from './cli.js';

// The API's records, as far as the e2e tests read them.

export interface AssetRecord {
  id: string;
  projectId: string;
  filename: string;
  type: string;
  mimeType: string;
  size: number;
  sha256: string;
  status: 'processing' | 'ready' | 'failed';
  error: string | null;
  width: number | null;
  height: number | null;
  format: string | null;
  blurhash: string | null;
  durationSec: number | null;
  renditions: Array<{
    name: string;
    contentType: string;
    size: number;
    width: number | null;
    height: number | null;
  }>;
}

export interface StepRecord {
  name: string;
  attempt: number;
  status: string;
  durationMs: number | null;
  error: string | null;
}

export interface RunRecord {
  id: string;
  assetId: string;
  status: string;
  attempts: number;
  error: string | null;
  steps: StepRecord[];
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  instance?: string;
}

export async function getJson<T>(url: string): Promise<{ status: number; body: T; contentType: string }> {
  const res = await fetch(url, { headers: AUTH, signal: AbortSignal.timeout(15_000) });
  const text = await res.text();
  let body: T;
  try {
    body = JSON.parse(text) as T;
  } catch {
    throw new Error(`GET ${url}: ${res.status} with a body that is not JSON: ${text.slice(0, 500)}`);
  }
  return { status: res.status, body, contentType: res.headers.get('content-type') ?? '' };
}

/** `curl -F file=@name` equivalent: multipart/form-data with the bytes in field `file`. */
export async function upload(
  baseUrl: string,
  bytes: Uint8Array,
  filename: string,
  options: { field?: string; type?: string } = {},
): Promise<{ status: number; body: unknown; contentType: string }> {
  const form = new FormData();
  form.append(
    options.field ?? 'file',
    new Blob([bytes], { type: options.type ?? 'application/octet-stream' }),
    filename,
  );
  const res = await fetch(`${baseUrl}/v1/assets`, {
    method: 'POST',
    headers: AUTH,
    body: form,
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // keep the text for the failure message
  }
  return { status: res.status, body, contentType: res.headers.get('content-type') ?? '' };
}

/** Uploads every buffer, at most `concurrency` at once; returns the created asset records in input order. */
export async function uploadAll(
  baseUrl: string,
  files: ReadonlyArray<{ name: string; bytes: Uint8Array }>,
  concurrency = 8,
): Promise<AssetRecord[]> {
  const out: AssetRecord[] = new Array(files.length);
  let next = 0;
  const lane = async () => {
    for (;;) {
      const index = next++;
      const file = files[index];
      if (file === undefined) return;
      const res = await upload(baseUrl, file.bytes, file.name, { type: 'image/jpeg' });
      if (res.status !== 201)
        throw new Error(`upload of ${file.name}: ${res.status} ${JSON.stringify(res.body)}`);
      out[index] = res.body as AssetRecord;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return out;
}

/** Every asset, following `nextCursor` (with a small page size, so that paging is exercised). */
export async function listAllAssets(baseUrl: string, query = '', pageSize = 7): Promise<AssetRecord[]> {
  const items: AssetRecord[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 10_000; page++) {
    const params = new URLSearchParams(query);
    params.set('limit', String(pageSize));
    if (cursor !== null) params.set('cursor', cursor);
    const res = await getJson<{ items: AssetRecord[]; nextCursor: string | null }>(
      `${baseUrl}/v1/assets?${params}`,
    );
    if (res.status !== 200)
      throw new Error(`GET /v1/assets?${params}: ${res.status} ${JSON.stringify(res.body)}`);
    items.push(...res.body.items);
    cursor = res.body.nextCursor;
    if (cursor === null) return items;
  }
  throw new Error('GET /v1/assets never stopped returning a nextCursor');
}

export async function countByStatus(baseUrl: string, status: string): Promise<number> {
  const res = await getJson<{ items: AssetRecord[]; nextCursor: string | null }>(
    `${baseUrl}/v1/assets?status=${status}&limit=1000`,
  );
  if (res.status !== 200) throw new Error(`GET /v1/assets?status=${status}: ${res.status}`);
  return res.body.items.length;
}

export async function getRuns(baseUrl: string, assetId: string): Promise<RunRecord[]> {
  const res = await getJson<{ items: RunRecord[] }>(`${baseUrl}/v1/assets/${assetId}/runs`);
  if (res.status !== 200)
    throw new Error(`GET /v1/assets/${assetId}/runs: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.items;
}

/** Waits until none of `ids` is `processing` any more; returns the final records. */
export async function waitUntilSettled(
  baseUrl: string,
  expected: number,
  timeoutMs: number,
  what = `${expected} assets to finish processing`,
): Promise<AssetRecord[]> {
  return waitFor(
    async () => {
      const all = await listAllAssets(baseUrl, '', 1000);
      if (all.length < expected) return undefined;
      return all.every((a) => a.status !== 'processing') ? all : undefined;
    },
    timeoutMs,
    what,
    250,
  );
}

/** Asserts an RFC 9457 problem response with our `code`. */
export function expectProblem(
  res: { status: number; body: unknown; contentType: string },
  status: number,
  code: string,
): ProblemBody {
  const context = JSON.stringify(res.body);
  expect(res.status, context).toBe(status);
  expect(res.contentType, context).toMatch(/^application\/problem\+json/);
  const body = res.body as ProblemBody;
  expect(typeof body, context).toBe('object');
  expect(body.code, context).toBe(code);
  expect(body.status, context).toBe(status);
  expect(typeof body.type === 'string' && body.type.length > 0, `type in ${context}`).toBe(true);
  expect(typeof body.title === 'string' && body.title.length > 0, `title in ${context}`).toBe(true);
  expect(typeof body.detail === 'string' && body.detail.length > 0, `detail in ${context}`).toBe(true);
  return body;
}

/** Every regular file below `dir` (relative paths, sorted); `[]` when `dir` does not exist. */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (path: string, rel: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(path, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const entry of entries) {
      const childRel = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) await walk(join(path, entry.name), childRel);
      else out.push(childRel);
    }
  };
  await walk(dir, '');
  return out.sort();
}
