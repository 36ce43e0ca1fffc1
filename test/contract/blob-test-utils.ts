import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';

// Small helpers every BlobStore test file needs: read what a store gives back, and what it threw.

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** What `fn` threw or rejected with (sync or async), or `undefined` when it succeeded. */
export async function errorOf(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

/** The `code` of what `fn` threw, or `'no error'`. */
export async function codeOf(fn: () => unknown): Promise<unknown> {
  const err = await errorOf(fn);
  return err === undefined ? 'no error' : (err as { code?: unknown }).code;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
