import { AppError } from '../errors.js';

const MAX_KEY_BYTES = 1024;
// C0 controls, DEL and C1 controls: never valid in a key (they break logs, shells and S3 listings).
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/** Why a key is invalid, or `undefined` when it is fine. Pure, so every adapter agrees. */
export function keyProblem(key: string): string | undefined {
  if (typeof key !== 'string' || key.length === 0) return 'the key is empty';
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) return `the key is longer than ${MAX_KEY_BYTES} bytes`;
  if (CONTROL_CHARS.test(key)) return 'the key contains a control character';
  if (key.startsWith('/') || /^[A-Za-z]:/.test(key)) return 'the key is an absolute path';
  if (key.includes('\\')) return 'the key contains a backslash';
  for (const segment of key.split('/')) {
    if (segment === '') return 'the key has an empty path segment';
    if (segment === '.' || segment === '..') return 'the key has a "." or ".." path segment';
  }
  return undefined;
}

export function assertValidKey(key: string): void {
  const problem = keyProblem(key);
  if (problem) throw new AppError('KEY_INVALID', `Invalid blob key ${JSON.stringify(key)}: ${problem}.`);
}

/** A prefix for `list`: like a key, but may be empty or end with `/`. */
export function assertValidPrefix(prefix: string): void {
  if (prefix === '') return;
  assertValidKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
}

// Object keys are derived from ids only (never from user-supplied names), so a filename such as
// "../../etc/passwd" can never reach the store's namespace.

/**
 * Where the bytes of one upload live. Named after the upload, not the asset version: the version
 * number is only known when the upload is registered (several uploads of one media id may race),
 * and a multipart upload must know its key when it starts.
 */
export function originalKey(uploadId: string): string {
  return `originals/${uploadId}`;
}

/** Where a pipeline step writes its outputs: a retry overwrites, never duplicates. */
export function stepOutputKey(assetId: string, version: number, step: string, name: string): string {
  return `derived/${assetId}/v${version}/${step}/${name}`;
}

/** Everything the pipeline made for an asset (originals are found through its versions). */
export function derivedPrefix(assetId: string): string {
  return `derived/${assetId}/`;
}

/**
 * Where an on-demand transform's result is cached: one folder per asset and version, one object per
 * output, named by the sha256 of the canonical options (which include the output format, so an
 * `f=auto` answer and the explicit format it negotiated share one object). A new version has its
 * own folder, and deleting an asset's cache is one prefix.
 */
export function imageCacheKey(
  assetId: string,
  version: number,
  optionsDigest: string,
  extension: string,
): string {
  return `${imageCachePrefix(assetId)}v${version}/${optionsDigest}.${extension}`;
}

/** Every cached transform of an asset, all versions. */
export function imageCachePrefix(assetId: string): string {
  return `cache/img/${assetId}/`;
}
