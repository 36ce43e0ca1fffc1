import { createHmac, timingSafeEqual } from 'node:crypto';
import type { SigningKey } from './signing.js';

// Streams are delivered under one prefix per asset version: `/stream/<assetId>/<version>/<token>/`.
// The token is a path segment, not a query parameter, because an HLS player resolves every URI in
// a playlist (media playlists, init segments, segments) relative to the playlist's URL and drops its
// query: with the signature in the path, one signed master URL signs every file the player fetches.
// The token signs the asset id, the version and the expiry, so it opens exactly one version's files.
//
// Shape: `<kid>.<exp>.<sig>`: kid as `SigningKey.id`, exp unix seconds or `x` for none, sig the
// base64url HMAC-SHA256 of `stream\n<assetId>\n<version>\n<exp>` by that key.

export type StreamTokenVerdict =
  | { ok: true; expiresAt: number | null }
  | { ok: false; reason: 'malformed' | 'unknown-key' | 'mismatch' | 'expired' };

const TOKEN_SHAPE = /^([A-Za-z0-9_-]{1,64})\.(x|0|[1-9][0-9]{0,14})\.([A-Za-z0-9_-]{43})$/;

function mac(secret: string, assetId: string, version: number, exp: string): Buffer {
  return createHmac('sha256', secret).update(`stream\n${assetId}\n${version}\n${exp}`).digest();
}

/** The token of one version's stream prefix, signed by the first key; no expiry when `expiresAt` is absent. */
export function signStreamToken(
  assetId: string,
  version: number,
  options: { keys: readonly SigningKey[]; expiresAt?: number | undefined },
): string {
  const [key] = options.keys;
  if (!key) throw new Error('signing a stream token needs at least one signing key');
  const { expiresAt } = options;
  if (expiresAt !== undefined && !(Number.isSafeInteger(expiresAt) && expiresAt >= 0)) {
    throw new Error(`expiresAt must be whole unix seconds; got ${String(expiresAt)}`);
  }
  const exp = expiresAt === undefined ? 'x' : String(expiresAt);
  return `${key.id}.${exp}.${mac(key.secret, assetId, version, exp).toString('base64url')}`;
}

/** Whether `token` opens (assetId, version) at `now` (unix seconds). Never throws for any token. */
export function verifyStreamToken(
  token: string,
  assetId: string,
  version: number,
  options: { keys: readonly SigningKey[]; now: number },
): StreamTokenVerdict {
  const match = TOKEN_SHAPE.exec(token);
  if (!match) return { ok: false, reason: 'malformed' };
  const [, kid, exp, sig] = match as unknown as [string, string, string, string];
  const given = Buffer.from(sig, 'base64url');
  if (given.length !== 32 || given.toString('base64url') !== sig) return { ok: false, reason: 'malformed' };
  const key = options.keys.find((candidate) => candidate.id === kid);
  if (!key) return { ok: false, reason: 'unknown-key' };
  const expected = mac(key.secret, assetId, version, exp);
  if (!timingSafeEqual(expected, given)) return { ok: false, reason: 'mismatch' };
  if (exp === 'x') return { ok: true, expiresAt: null };
  const expiresAt = Number(exp);
  if (options.now >= expiresAt) return { ok: false, reason: 'expired' };
  return { ok: true, expiresAt };
}
