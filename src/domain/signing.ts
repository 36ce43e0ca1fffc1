import { createHmac, timingSafeEqual } from 'node:crypto';
import { AppError } from '../errors.js';

// Signed URLs: assetpipe hands out URLs to itself (e.g. one per multipart part) that anyone holding
// them may use until they expire. The signature covers the path and the *normalised* query, so
// parameter order and percent-encoding variants of one value do not matter, while any added,
// removed or changed parameter does.
//
// Normalisation: split the query on `&`, each piece on its first `=` (a piece without `=` has the
// value ''), decode `+` as a space and %XX as UTF-8 (as URLSearchParams and Node's querystring do),
// drop `sig`, sort the pairs by encoded name then encoded value, and re-encode each name and value
// with encodeURIComponent. The path is signed exactly as given (no decoding: `%2F` in a path is not
// `/` to a router). `sig` = base64url(HMAC-SHA256(secret, `${path}?${normalisedQuery}`)), where the
// normalised query includes `kid` (and `exp`, when there is one), so neither can be swapped.

export interface SigningKey {
  /** Goes into every URL as `kid`; not secret. */
  id: string;
  /** The HMAC key. Its strength is the configuration's business (at least 32 characters there). */
  secret: string;
}

export type SignatureVerdict =
  | { ok: true }
  | { ok: false; reason: 'missing' | 'malformed' | 'unknown-key' | 'mismatch' | 'expired' };

/** Longer URLs are refused outright (most servers stop at 8 or 16 KiB anyway). */
export const MAX_SIGNED_URL_LENGTH = 16 * 1024;

const SIG = 'sig';
const KID = 'kid';
const EXP = 'exp';
/** base64url of the 32 bytes of an HMAC-SHA256, unpadded. */
const SIG_SHAPE = /^[A-Za-z0-9_-]{43}$/;
/** Unix seconds, canonical (no sign, no leading zeros). */
const EXP_SHAPE = /^(?:0|[1-9][0-9]{0,14})$/;

type Param = readonly [name: string, value: string];

/**
 * `pathAndQuery` with its query normalised and signed by the first key: any `sig` and `kid` it had
 * are replaced, `exp` (unix seconds) is set when `expiresAt` is given, `kid` names the key.
 * Throws `URL_INVALID` for input that could not be verified later, `CONFIG_INVALID` without keys.
 */
export function signUrl(
  pathAndQuery: string,
  options: { keys: readonly SigningKey[]; expiresAt?: number | undefined },
): string {
  const [key] = checkKeys(options.keys);
  if (!key) throw new AppError('CONFIG_INVALID', 'Signing a URL needs at least one signing key.');
  const { expiresAt } = options;
  if (expiresAt !== undefined && !(Number.isSafeInteger(expiresAt) && expiresAt >= 0)) {
    throw new AppError('URL_INVALID', `expiresAt must be whole unix seconds; got ${String(expiresAt)}.`);
  }
  const parsed = parse(pathAndQuery);
  if (!parsed) {
    throw new AppError(
      'URL_INVALID',
      'Only a path (starting with "/") with a well-formed query, and no fragment, can be signed.',
    );
  }
  const params: Param[] = parsed.params.filter(
    ([name]) => name !== SIG && name !== KID && (expiresAt === undefined || name !== EXP),
  );
  if (expiresAt !== undefined) params.push([EXP, String(expiresAt)]);
  else if (params.filter(([name]) => name === EXP).length > 1) {
    throw new AppError('URL_INVALID', 'A URL to sign can carry at most one exp parameter.');
  }
  params.push([KID, key.id]);
  const query = normalise(params);
  if (query === undefined) throw new AppError('URL_INVALID', 'The URL cannot be encoded (lone surrogate).');
  const signed = `${parsed.path}?${query}&${SIG}=${hmac(key.secret, parsed.path, query).toString('base64url')}`;
  if (signed.length > MAX_SIGNED_URL_LENGTH) {
    throw new AppError('URL_INVALID', `A signed URL may be at most ${MAX_SIGNED_URL_LENGTH} characters.`);
  }
  return signed;
}

/**
 * Whether `pathAndQuery` (as received: path and raw query) carries a valid signature by one of
 * `keys` (found by `kid`, so rotated-out keys keep verifying while they are listed) and has not
 * expired at `now` (unix seconds; a URL is valid while `now < exp`). Never throws for any URL input.
 * Reasons, checked in this order: `missing` (no `sig`), `malformed` (unparseable, duplicated
 * `sig`/`kid`/`exp`, no `kid`, a `sig` that is not canonical base64url of 32 bytes), `unknown-key`,
 * `mismatch`, then `malformed` again for a validly signed `exp` that is not unix seconds, `expired`.
 * A tampered `exp` is a `mismatch`, never `expired`.
 */
export function verifySignedUrl(
  pathAndQuery: string,
  options: { keys: readonly SigningKey[]; now: number },
): SignatureVerdict {
  const keys = checkKeys(options.keys);
  const { now } = options;
  if (typeof now !== 'number' || !Number.isFinite(now)) {
    throw new TypeError(`now must be unix seconds; got ${String(now)}.`);
  }
  const parsed = parse(pathAndQuery);
  if (!parsed) return fail('malformed');
  const valuesOf = (wanted: string) => parsed.params.filter(([name]) => name === wanted).map(([, v]) => v);
  const sigs = valuesOf(SIG);
  if (sigs.length === 0) return fail('missing');
  const kids = valuesOf(KID);
  const exps = valuesOf(EXP);
  const [sig] = sigs;
  const [kid] = kids;
  if (sigs.length > 1 || kids.length !== 1 || exps.length > 1 || sig === undefined || kid === undefined) {
    return fail('malformed');
  }
  if (!SIG_SHAPE.test(sig)) return fail('malformed');
  const given = Buffer.from(sig, 'base64url');
  // 43 characters carry 258 bits: only the canonical spelling of the 32 bytes is accepted, or a
  // signature could be altered in its last character and still verify.
  if (given.length !== 32 || given.toString('base64url') !== sig) return fail('malformed');

  const key = keys.find((candidate) => candidate.id === kid);
  if (!key) return fail('unknown-key');
  const query = normalise(parsed.params.filter(([name]) => name !== SIG));
  if (query === undefined) return fail('malformed');
  const expected = hmac(key.secret, parsed.path, query);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return fail('mismatch');

  const [exp] = exps;
  if (exp !== undefined) {
    if (!EXP_SHAPE.test(exp)) return fail('malformed');
    if (now >= Number(exp)) return fail('expired');
  }
  return { ok: true };
}

function fail(reason: 'missing' | 'malformed' | 'unknown-key' | 'mismatch' | 'expired'): SignatureVerdict {
  return { ok: false, reason };
}

function hmac(secret: string, path: string, query: string): Buffer {
  return createHmac('sha256', secret).update(`${path}?${query}`, 'utf8').digest();
}

/** The keys, if every one has an id and a secret; a configuration error otherwise. */
function checkKeys(keys: readonly SigningKey[]): readonly SigningKey[] {
  if (!Array.isArray(keys)) throw new AppError('CONFIG_INVALID', 'The signing keys must be a list.');
  for (const key of keys) {
    if (typeof key?.id !== 'string' || key.id === '' || typeof key.secret !== 'string' || key.secret === '') {
      throw new AppError('CONFIG_INVALID', 'Every signing key needs a non-empty id and secret.');
    }
  }
  return keys;
}

/** Path and decoded parameters, or `undefined` when the input is not a well-formed path and query. */
function parse(pathAndQuery: string): { path: string; params: Param[] } | undefined {
  if (typeof pathAndQuery !== 'string' || pathAndQuery.length > MAX_SIGNED_URL_LENGTH) return undefined;
  if (!pathAndQuery.startsWith('/') || pathAndQuery.includes('#')) return undefined;
  const mark = pathAndQuery.indexOf('?');
  const path = mark < 0 ? pathAndQuery : pathAndQuery.slice(0, mark);
  const query = mark < 0 ? '' : pathAndQuery.slice(mark + 1);
  const params: Param[] = [];
  for (const piece of query.split('&')) {
    if (piece === '') continue; // `a=1&&b=2`, a trailing `&`: no parameter
    const eq = piece.indexOf('=');
    const name = decode(eq < 0 ? piece : piece.slice(0, eq));
    const value = decode(eq < 0 ? '' : piece.slice(eq + 1));
    if (name === undefined || value === undefined) return undefined;
    params.push([name, value]);
  }
  return { path, params };
}

function decode(component: string): string | undefined {
  try {
    return decodeURIComponent(component.replaceAll('+', ' '));
  } catch {
    return undefined; // bad %XX, or bytes that are not UTF-8
  }
}

/** Sorted and re-encoded, or `undefined` when a name or value cannot be encoded (lone surrogate). */
function normalise(params: readonly Param[]): string | undefined {
  let encoded: Array<[string, string]>;
  try {
    encoded = params.map(([name, value]) => [encodeURIComponent(name), encodeURIComponent(value)]);
  } catch {
    return undefined;
  }
  // Encoded pairs are ASCII, so `<` is a total, locale-free order.
  encoded.sort(([an, av], [bn, bv]) => (an < bn ? -1 : an > bn ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return encoded.map(([name, value]) => `${name}=${value}`).join('&');
}
