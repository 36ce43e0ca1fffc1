import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { SigningKey } from './signing.js';
import { type StreamTokenVerdict, signStreamToken, verifyStreamToken } from './stream-token.js';

const NEW: SigningKey = { id: 'a1b2c3d4', secret: 'new-secret-0123456789abcdef0123456789' };
const OLD: SigningKey = { id: 'e5f6a7b8', secret: 'old-secret-fedcba9876543210fedcba9876' };
// The same id as NEW with another secret: a token must not verify by its kid alone.
const IMPOSTOR: SigningKey = { id: NEW.id, secret: 'someone-elses-secret-with-the-same-id' };
const ASSET = 'ast_01J9Z3NDEKTSV4RRFFQ69G5FAV';
const NOW = 1_750_000_000;
const EXP = NOW + 600;

const sign = (
  options: { assetId?: string; version?: number; expiresAt?: number; keys?: SigningKey[] } = {},
) =>
  signStreamToken(options.assetId ?? ASSET, options.version ?? 3, {
    keys: options.keys ?? [NEW],
    expiresAt: options.expiresAt,
  });
const verify = (
  token: string,
  options: { assetId?: string; version?: number; now?: number; keys?: SigningKey[] } = {},
): StreamTokenVerdict =>
  verifyStreamToken(token, options.assetId ?? ASSET, options.version ?? 3, {
    keys: options.keys ?? [NEW],
    now: options.now ?? NOW,
  });

/** The token's three dot-separated parts, with one of them replaced. */
function withPart(token: string, index: 0 | 1 | 2, value: string): string {
  const parts = token.split('.');
  parts[index] = value;
  return parts.join('.');
}

/** The signature with its first character changed: still canonical base64url, another MAC. */
function flipFirstSigChar(token: string): string {
  const sig = token.split('.')[2]!;
  return withPart(token, 2, `${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`);
}

describe('signStreamToken', () => {
  it('writes <kid>.<exp>.<base64url HMAC-SHA256 of "stream\\n<asset>\\n<version>\\n<exp>">', () => {
    const mac = (exp: string) =>
      createHmac('sha256', NEW.secret).update(`stream\n${ASSET}\n3\n${exp}`).digest('base64url');

    expect(sign({ expiresAt: EXP })).toBe(`${NEW.id}.${EXP}.${mac(String(EXP))}`);
    expect(sign()).toBe(`${NEW.id}.x.${mac('x')}`);
  });

  it('signs with the first key of a rotation list', () => {
    expect(sign({ keys: [OLD, NEW] }).startsWith(`${OLD.id}.`)).toBe(true);
  });

  it.each([
    ['a negative expiry', -1],
    ['a fractional expiry', NOW + 0.5],
    ['NaN', Number.NaN],
    ['an unsafe integer', 2 ** 53],
  ])('refuses %s', (_label, expiresAt) => {
    expect(() => sign({ expiresAt })).toThrow(/expiresAt must be whole unix seconds/);
  });

  it('refuses to sign without a key', () => {
    expect(() => sign({ keys: [] })).toThrow(/at least one signing key/);
  });
});

describe('verifyStreamToken', () => {
  it.each<[string, () => string, Parameters<typeof verify>[1], StreamTokenVerdict]>([
    ['a token without expiry', () => sign(), {}, { ok: true, expiresAt: null }],
    ['a token with an expiry', () => sign({ expiresAt: EXP }), {}, { ok: true, expiresAt: EXP }],
    [
      'a token of a rotated-out key still in the list',
      () => sign({ keys: [OLD], expiresAt: EXP }),
      { keys: [NEW, OLD] },
      { ok: true, expiresAt: EXP },
    ],
    [
      'version 1 of another asset',
      () => sign({ assetId: 'ast_other', version: 1 }),
      { assetId: 'ast_other', version: 1 },
      { ok: true, expiresAt: null },
    ],
  ])('accepts %s', (_label, token, options, verdict) => {
    expect(verify(token(), options)).toEqual(verdict);
  });

  it.each([
    ['one second before the expiry', EXP - 1, { ok: true, expiresAt: EXP }],
    ['at the expiry', EXP, { ok: false, reason: 'expired' }],
    ['one second after the expiry', EXP + 1, { ok: false, reason: 'expired' }],
  ])('is valid until, not at, its expiry: %s', (_label, now, verdict) => {
    expect(verify(sign({ expiresAt: EXP }), { now })).toEqual(verdict);
  });

  it('treats exp 0 as long expired and a token without exp as never expiring', () => {
    expect(verify(sign({ expiresAt: 0 }), { now: 0 })).toEqual({ ok: false, reason: 'expired' });
    expect(verify(sign(), { now: 99_999_999_999 })).toEqual({ ok: true, expiresAt: null });
  });

  it.each<[string, (token: string) => string, Parameters<typeof verify>[1]]>([
    ['another version', (t) => t, { version: 4 }],
    ['version 0 of the same asset', (t) => t, { version: 0 }],
    ['another asset', (t) => t, { assetId: 'ast_01J9Z3NDEKTSV4RRFFQ69G5FAW' }],
    ['a later exp written in', (t) => withPart(t, 1, String(EXP + 86_400)), {}],
    ['no exp written in', (t) => withPart(t, 1, 'x'), {}],
    ['a changed signature', flipFirstSigChar, {}],
    ['a signature made with another secret under the same kid', (t) => t, { keys: [IMPOSTOR] }],
  ])('finds a mismatch for %s', (_label, tamper, options) => {
    expect(verify(tamper(sign({ expiresAt: EXP })), options)).toEqual({ ok: false, reason: 'mismatch' });
  });

  it('checks the signature before the expiry, so a forged exp reads as a mismatch, not expired', () => {
    const forged = withPart(sign({ expiresAt: EXP }), 1, String(NOW - 1));

    expect(verify(forged)).toEqual({ ok: false, reason: 'mismatch' });
  });

  it.each([
    ['a kid no key has', (t: string) => withPart(t, 0, 'ffffffff'), [NEW]],
    ['a key that was removed from the list', (t: string) => t, [OLD]],
  ])('reports an unknown key for %s', (_label, tamper, keys) => {
    expect(verify(tamper(sign({ expiresAt: EXP })), { keys })).toEqual({ ok: false, reason: 'unknown-key' });
  });

  const good = sign({ expiresAt: EXP });
  const sig = good.split('.')[2]!;
  it.each([
    ['the empty string', ''],
    ['two parts', `${NEW.id}.${sig}`],
    ['four parts', `${good}.x`],
    ['an empty kid', withPart(good, 0, '')],
    ['a kid of 65 characters', withPart(good, 0, 'k'.repeat(65))],
    ['a kid with a slash', withPart(good, 0, 'a/b')],
    ['an empty exp', withPart(good, 1, '')],
    ['an exp with a leading zero', withPart(good, 1, `0${EXP}`)],
    ['a negative exp', withPart(good, 1, '-1')],
    ['an exp of 16 digits', withPart(good, 1, '1'.repeat(16))],
    ['an exp in hex', withPart(good, 1, '0x10')],
    ['a signature one character short', withPart(good, 2, sig.slice(1))],
    ['a signature one character long', withPart(good, 2, `${sig}A`)],
    ['a signature in standard base64', withPart(good, 2, `+/${sig.slice(2)}`)],
    ['a padded signature', withPart(good, 2, `${sig.slice(0, 42)}=`)],
    // The 43rd character carries 2 padding bits that must be zero, so a canonical one is never "B"
    // (which decodes to the same 32 bytes as "A"): a second spelling of one signature.
    ['a non-canonical last signature character', withPart(good, 2, `${sig.slice(0, 42)}B`)],
    ['trailing whitespace', `${good} `],
    ['a trailing newline', `${good}\n`],
    ['a percent-encoded dot', good.replace('.', '%2E')],
  ])('calls %s malformed', (_label, token) => {
    expect(verify(token)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('never throws, whatever the token', () => {
    for (const token of ['.', '..', '...', '\u0000', '💥.x.💥', 'a'.repeat(10_000), `${good}\u0000`]) {
      expect(verify(token).ok, JSON.stringify(token)).toBe(false);
    }
  });
});
