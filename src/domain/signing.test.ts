import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MAX_SIGNED_URL_LENGTH, type SigningKey, signUrl, verifySignedUrl } from './signing.js';

const OLD: SigningKey = { id: 'k2024', secret: 'old-secret-0123456789abcdef0123456789' };
const NEW: SigningKey = { id: 'k2025', secret: 'new-secret-fedcba9876543210fedcba9876' };
const OTHER: SigningKey = { id: 'k2025', secret: 'someone-elses-secret-with-the-same-id' };
const NOW = 1_750_000_000;
const EXP = NOW + 600;
const PART = '/v1/uploads/parts/upl_01J9Z3NDEKTSV4RRFFQ69G5FAV/3';

/** Signs with `NEW`, valid until `EXP` unless told otherwise (`null`: no exp at all). */
const sign = (url: string, expiresAt: number | null = EXP, keys: readonly SigningKey[] = [NEW]) =>
  signUrl(url, { keys, expiresAt: expiresAt ?? undefined });
const verify = (url: string, now = NOW, keys: readonly SigningKey[] = [NEW]) =>
  verifySignedUrl(url, { keys, now });

/** `url` with its query pieces (raw, as `name=value` strings) passed through `edit`. */
function editQuery(url: string, edit: (pieces: string[]) => string[]): string {
  const mark = url.indexOf('?');
  return `${url.slice(0, mark)}?${edit(url.slice(mark + 1).split('&')).join('&')}`;
}
const rawValue = (url: string, name: string): string =>
  new URLSearchParams(url.slice(url.indexOf('?') + 1)).get(name) ?? '';
const setPiece = (name: string, value: string) => (pieces: string[]) =>
  pieces.map((piece) => (piece.startsWith(`${name}=`) ? `${name}=${value}` : piece));

describe('signUrl', () => {
  it('normalises the query, adds exp and kid, and signs path and query with HMAC-SHA256 (base64url)', () => {
    const signed = sign('/p?b=2&a=%2f&a=1&sig=stale&kid=stale', 1_800_000_000);
    const query = 'a=%2F&a=1&b=2&exp=1800000000&kid=k2025';
    const sig = createHmac('sha256', NEW.secret).update(`/p?${query}`).digest('base64url');

    expect(signed).toBe(`/p?${query}&sig=${sig}`);
  });

  it.each([
    ['a bare path', '/v1/thing', '/v1/thing?kid=k2025'],
    ['a path with an empty query', '/v1/thing?', '/v1/thing?kid=k2025'],
    ['spaces, written + or %20', '/p?q=a+b&r=c%20d', '/p?kid=k2025&q=a%20b&r=c%20d'],
    ['a piece without =', '/p?flag&x=', '/p?flag=&kid=k2025&x='],
    ['= inside a value', '/p?x=a=b', '/p?kid=k2025&x=a%3Db'],
    ['unicode, raw or encoded', '/p?n=✓&m=%E2%9C%93', '/p?kid=k2025&m=%E2%9C%93&n=%E2%9C%93'],
    ['empty pieces', '/p?&a=1&&b=2&', '/p?a=1&b=2&kid=k2025'],
  ])('normalises %s', (_label, input, expectedWithoutSig) => {
    const signed = sign(input, null);

    expect(signed.slice(0, signed.lastIndexOf('&sig='))).toBe(expectedWithoutSig);
    expect(signed).toMatch(/&sig=[A-Za-z0-9_-]{43}$/);
  });

  it('is deterministic, and re-signing a signed URL gives the same URL', () => {
    const once = sign(`${PART}?size=5`);

    expect(sign(`${PART}?size=5`)).toBe(once);
    expect(sign(once)).toBe(once);
  });

  it('replaces an exp already in the URL when expiresAt is given, and keeps it otherwise', () => {
    expect(sign('/p?exp=1', 42)).toContain('exp=42&');
    expect(sign('/p?exp=1', 42)).not.toContain('exp=1&');
    expect(sign('/p?exp=1', null)).toContain('exp=1&');
  });

  it('signs with the first key', () => {
    const signed = sign(PART, EXP, [NEW, OLD]);

    expect(rawValue(signed, 'kid')).toBe('k2025');
    expect(verify(signed, NOW, [NEW])).toEqual({ ok: true });
    expect(verify(signed, NOW, [OLD])).toEqual({ ok: false, reason: 'unknown-key' });
  });

  it.each([
    ['no keys', () => signUrl(PART, { keys: [] }), 'CONFIG_INVALID'],
    ['a key without a secret', () => signUrl(PART, { keys: [{ id: 'k', secret: '' }] }), 'CONFIG_INVALID'],
    ['a key without an id', () => signUrl(PART, { keys: [{ id: '', secret: 's' }] }), 'CONFIG_INVALID'],
    ['a relative path', () => sign('v1/x'), 'URL_INVALID'],
    ['a full URL', () => sign('https://example.com/v1/x'), 'URL_INVALID'],
    ['a fragment', () => sign('/p?a=1#frag'), 'URL_INVALID'],
    ['bad percent-encoding', () => sign('/p?a=%zz'), 'URL_INVALID'],
    ['two exp and no expiresAt', () => sign('/p?exp=1&exp=2', null), 'URL_INVALID'],
    ['a lone surrogate', () => sign('/p?a=\uD800'), 'URL_INVALID'],
    ['a negative expiresAt', () => sign(PART, -1), 'URL_INVALID'],
    ['a fractional expiresAt', () => sign(PART, 1.5), 'URL_INVALID'],
    ['a NaN expiresAt', () => sign(PART, Number.NaN), 'URL_INVALID'],
    ['a URL too long to verify', () => sign(`/${'a'.repeat(MAX_SIGNED_URL_LENGTH)}`), 'URL_INVALID'],
  ])('refuses %s', (_label, call, code) => {
    expect(call).toThrow(expect.objectContaining({ code }));
  });
});

describe('verifySignedUrl', () => {
  it.each([
    PART,
    `${PART}?size=5242880`,
    '/p?z=1&a=2&a=1&m=',
    '/p?name=%E2%9C%93%20ok&path=a/b%2Fc',
    '/p?q=a+b&flag',
    '/',
  ])('round-trips %s', (url) => {
    expect(verify(sign(url))).toEqual({ ok: true });
    expect(verify(sign(url, null), 10 ** 12)).toEqual({ ok: true });
  });

  it.each([
    ['reversed', (pieces: string[]) => [...pieces].reverse()],
    ['sig first', (pieces: string[]) => [pieces.at(-1)!, ...pieces.slice(0, -1)]],
    ['shuffled', (pieces: string[]) => [2, 0, 4, 1, 3].map((i) => pieces[i]!)],
    ['with empty pieces', (pieces: string[]) => ['', ...pieces.flatMap((p) => [p, ''])]],
  ])('does not care about parameter order: %s', (_label, edit) => {
    const signed = sign(`${PART}?b=2&a=1`);
    expect(signed.split('?')[1]?.split('&')).toHaveLength(5);

    expect(verify(editQuery(signed, edit))).toEqual({ ok: true });
  });

  it.each([
    ['%2F for /', 'a%2Fb'],
    ['lower-case %2f', 'a%2fb'],
    ['an encoded letter', '%61/b'],
    ['everything encoded', '%61%2F%62'],
  ])('accepts a percent-encoding variant of a value: %s', (_label, variant) => {
    const signed = sign('/p?path=a/b');
    expect(signed).toContain('path=a%2Fb');

    expect(verify(editQuery(signed, setPiece('path', variant)))).toEqual({ ok: true });
  });

  it('accepts an encoded parameter name, and + or %20 for a space', () => {
    const signed = sign('/p?my+name=two+words');

    expect(verify(editQuery(signed, setPiece('my%20name', 'two+words')))).toEqual({ ok: true });
    expect(verify(signed.replace('my%20name=two%20words', 'my+name=two%20words'))).toEqual({ ok: true });
    expect(verify(signed.replace('my%20name=two%20words', 'm%79+name=two+words'))).toEqual({ ok: true });
  });

  it.each([
    ['another path', (url: string) => url.replace('/3?', '/4?')],
    ['a path in other case', (url: string) => url.replace('/v1/uploads', '/V1/uploads')],
    ['a trailing slash', (url: string) => url.replace('/3?', '/3/?')],
    ['an encoded path', (url: string) => url.replace('/parts/', '/parts%2F')],
    ['a changed value', (url: string) => editQuery(url, setPiece('size', '6'))],
    [
      'a value with a literal + instead of a space',
      (url: string) => editQuery(url, setPiece('who', 'a%2Bb')),
    ],
    ['an added parameter', (url: string) => `${url}&admin=1`],
    ['an added empty parameter', (url: string) => `${url}&admin`],
    ['a repeated parameter', (url: string) => `${url}&size=5`],
    ['a removed parameter', (url: string) => editQuery(url, (p) => p.filter((x) => !x.startsWith('size=')))],
    ['a removed exp', (url: string) => editQuery(url, (p) => p.filter((x) => !x.startsWith('exp=')))],
    ['a later exp', (url: string) => editQuery(url, setPiece('exp', String(EXP + 3600)))],
    ['an earlier exp', (url: string) => editQuery(url, setPiece('exp', String(EXP - 1)))],
    ['a padded exp', (url: string) => editQuery(url, setPiece('exp', `0${EXP}`))],
    ['a non-numeric exp', (url: string) => editQuery(url, setPiece('exp', 'never'))],
    ['a changed sig', (url: string) => editQuery(url, setPiece('sig', flipFirst(rawValue(url, 'sig'))))],
    ['a sig from another URL', (url: string) => editQuery(url, setPiece('sig', rawValue(sign(PART), 'sig')))],
  ])('rejects %s as a mismatch', (_label, tamper) => {
    const signed = sign(`${PART}?size=5&who=a+b`);
    const tampered = tamper(signed);
    expect(tampered).not.toBe(signed);

    expect(verify(tampered)).toEqual({ ok: false, reason: 'mismatch' });
  });

  it('rejects a kid swapped to another configured key, or a same-named key with another secret', () => {
    const signedByOld = sign(PART, EXP, [OLD]);

    expect(verify(editQuery(signedByOld, setPiece('kid', NEW.id)), NOW, [NEW, OLD])).toEqual({
      ok: false,
      reason: 'mismatch',
    });
    expect(verify(sign(PART), NOW, [OTHER])).toEqual({ ok: false, reason: 'mismatch' });
  });

  it('says missing when there is no sig', () => {
    const signed = sign(PART);

    expect(verify(editQuery(signed, (p) => p.filter((x) => !x.startsWith('sig='))))).toEqual({
      ok: false,
      reason: 'missing',
    });
    expect(verify(PART)).toEqual({ ok: false, reason: 'missing' });
    expect(verify(`${PART}?exp=${EXP}&kid=k2025`)).toEqual({ ok: false, reason: 'missing' });
  });

  it('says unknown-key for a kid no configured key has', () => {
    expect(verify(sign(PART, EXP, [OLD]), NOW, [NEW])).toEqual({ ok: false, reason: 'unknown-key' });
    expect(verify(editQuery(sign(PART), setPiece('kid', 'k1999')))).toEqual({
      ok: false,
      reason: 'unknown-key',
    });
    expect(verify(sign(PART), NOW, [])).toEqual({ ok: false, reason: 'unknown-key' });
  });

  it('verifies with any listed key: URLs signed before a rotation keep working while the old key is listed', () => {
    const beforeRotation = sign(PART, EXP, [OLD]);
    const afterRotation = sign(PART, EXP, [NEW, OLD]);

    expect(rawValue(afterRotation, 'kid')).toBe(NEW.id);
    expect(verify(beforeRotation, NOW, [NEW, OLD])).toEqual({ ok: true });
    expect(verify(afterRotation, NOW, [NEW, OLD])).toEqual({ ok: true });
    expect(verify(afterRotation, NOW, [OLD, NEW])).toEqual({ ok: true });
    expect(verify(beforeRotation, NOW, [NEW])).toEqual({ ok: false, reason: 'unknown-key' });
  });

  it.each([
    [EXP - 600, { ok: true }],
    [EXP - 1, { ok: true }],
    [EXP - 0.5, { ok: true }],
    [EXP, { ok: false, reason: 'expired' }],
    [EXP + 1, { ok: false, reason: 'expired' }],
    [EXP + 10 ** 9, { ok: false, reason: 'expired' }],
  ])('at now=%s, a URL valid until exp answers %j', (now, verdict) => {
    expect(verify(sign(PART), now)).toEqual(verdict);
  });

  it('calls an expired URL expired only when its signature is otherwise valid', () => {
    const signed = sign(`${PART}?size=5`, EXP);
    const extended = editQuery(signed, setPiece('exp', String(EXP + 3600)));
    const resized = editQuery(signed, setPiece('size', '1'));
    expect(resized).not.toBe(signed);

    expect(verify(signed, EXP + 10)).toEqual({ ok: false, reason: 'expired' });
    expect(verify(extended, EXP + 10)).toEqual({ ok: false, reason: 'mismatch' });
    expect(verify(resized, EXP + 10)).toEqual({
      ok: false,
      reason: 'mismatch',
    });
    expect(verify(sign(PART, EXP, [OLD]), EXP + 10)).toEqual({ ok: false, reason: 'unknown-key' });
  });

  it('calls a validly signed exp that is not unix seconds malformed', () => {
    expect(verify(sign('/p?exp=soon', null))).toEqual({ ok: false, reason: 'malformed' });
    expect(verify(sign('/p?exp=-5', null))).toEqual({ ok: false, reason: 'malformed' });
  });

  const signed = sign(`${PART}?size=5`);
  const sig = rawValue(signed, 'sig');
  it.each([
    ['bad percent-encoding in a value', `${signed}&x=%zz`],
    ['a truncated escape', `${signed}&x=%E2%9C%9`],
    ['a lone %', `${signed}&x=%`],
    ['bytes that are not UTF-8', `${signed}&x=%C0%AF`],
    ['bad percent-encoding in a name', `${signed}&%zz=1`],
    ['a lone surrogate', `${signed}&x=\uD800`],
    ['an empty sig', editQuery(signed, setPiece('sig', ''))],
    ['a short sig', editQuery(signed, setPiece('sig', sig.slice(0, 20)))],
    ['a long sig', editQuery(signed, setPiece('sig', `${sig}A`))],
    ['a padded sig', editQuery(signed, setPiece('sig', `${sig}=`))],
    ['a sig in plain base64', editQuery(signed, setPiece('sig', `${sig.slice(0, 41)}+/`))],
    ['a sig with other characters', editQuery(signed, setPiece('sig', `${sig.slice(0, 42)}!`))],
    ['a non-canonical sig (same bytes, other last character)', editQuery(signed, setPiece('sig', twin(sig)))],
    ['two sigs', `${signed}&sig=${sig}`],
    ['two kids', `${signed}&kid=k2025`],
    ['two exps', `${signed}&exp=${EXP}`],
    ['no kid', editQuery(signed, (p) => p.filter((x) => !x.startsWith('kid=')))],
    ['a fragment', `${signed}#top`],
    ['a relative path', signed.slice(1)],
    ['a full URL', `https://example.com${signed}`],
    ['an empty string', ''],
    ['a huge path', `/${'a'.repeat(1_000_000)}?${signed.split('?')[1]}`],
    ['a huge value', `${signed}&x=${'%41'.repeat(100_000)}`],
    ['a string just over the limit', `${signed}&x=${'a'.repeat(MAX_SIGNED_URL_LENGTH)}`],
    ['not a string', undefined as unknown as string],
  ])('calls %s malformed without throwing', (_label, url) => {
    expect(verify(url)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('never throws and never accepts garbage', () => {
    const alphabet = [
      '/',
      '?',
      '&',
      '=',
      '%',
      '+',
      '#',
      'a',
      'Z',
      '0',
      '9',
      '-',
      '_',
      's',
      'i',
      'g',
      'k',
      'd',
    ];
    let state = 0x2545f491;
    const next = (): number => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return state >>> 0;
    };
    for (let i = 0; i < 2000; i++) {
      let url = i % 2 === 0 ? '/p?sig=' : '/';
      const length = next() % 80;
      for (let j = 0; j < length; j++) url += alphabet[next() % alphabet.length];
      const verdict = verify(url);
      expect(verdict.ok).toBe(false);
    }
  });

  it('refuses a non-finite now, and keys without a secret, as programming errors', () => {
    expect(() => verify(sign(PART), Number.NaN)).toThrow(TypeError);
    expect(() => verifySignedUrl(sign(PART), { keys: [{ id: 'k2025', secret: '' }], now: NOW })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
  });
});

/** `sig` with its first character changed (still valid base64url, different bytes). */
function flipFirst(sig: string): string {
  return (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
}

/** Another spelling of the same 32 bytes: the last character's 2 spare bits flipped. */
function twin(sig: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(sig.at(-1)!);
  return sig.slice(0, -1) + alphabet[last ^ 1];
}
