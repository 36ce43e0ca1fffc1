import { describe, expect, it } from 'vitest';
import type { ImagePreset } from '../domain/image-presets.js';
import {
  cacheControlFor,
  checkAllowLists,
  chooseFormat,
  parseImgUrl,
  presetOptions,
} from './image-request.js';

const PRESETS: ImagePreset[] = [
  { name: 'thumb', maxSide: 320, formats: ['webp'], quality: null },
  { name: 'preview', maxSide: 1280, formats: ['avif', 'webp'], quality: 70 },
];
const JPEG = { hasAlpha: false, format: 'jpeg' };

describe('parseImgUrl', () => {
  it('reads the asset or original key, v and preset, leaving the rest for the transform parser', () => {
    const url = parseImgUrl('/img/ast_1', 'w=10&v=3&sig=x&preset=thumb');
    expect(url).toMatchObject({
      target: { kind: 'asset', assetId: 'ast_1' },
      version: 3,
      preset: 'thumb',
      signed: true,
    });
    expect([...url.params.keys()]).toEqual(['w', 'sig']);
    expect(parseImgUrl('/img/originals/upl_1', '').target).toEqual({
      kind: 'original',
      key: 'originals/upl_1',
    });
    expect(parseImgUrl('/img/originals%2Fupl_1', 'w=1').target).toEqual({
      kind: 'original',
      key: 'originals/upl_1',
    });
  });

  it.each([
    ['/img/ast_1', 'v=0', 'TRANSFORM_INVALID'],
    ['/img/ast_1', 'v=1&v=2', 'TRANSFORM_INVALID'],
    ['/img/ast_1', 'preset=', 'TRANSFORM_INVALID'],
    ['/img/originals/upl_1', 'v=1', 'TRANSFORM_INVALID'],
    ['/img/a/b/c', '', 'ASSET_NOT_FOUND'],
    ['/img/%E0%A4%A', '', 'ASSET_NOT_FOUND'],
    ['/img/..%2F..%2Fetc', '', 'ASSET_NOT_FOUND'],
  ])('%s?%s -> %s', (path, query, code) => {
    expect(() => parseImgUrl(path, query)).toThrow(expect.objectContaining({ code }));
  });
});

describe('presetOptions', () => {
  it('is the preset box, inside, its quality and first format; f may pick another of its formats', () => {
    const { options } = presetOptions(PRESETS, 'preview', new URLSearchParams(''));
    expect(options).toMatchObject({ width: 1280, height: 1280, fit: 'inside', quality: 70, format: 'avif' });
    expect(presetOptions(PRESETS, 'preview', new URLSearchParams('f=webp')).options.format).toBe('webp');
    expect(presetOptions(PRESETS, 'preview', new URLSearchParams('f=auto&sig=s&kid=k')).options.format).toBe(
      'auto',
    );
  });

  it.each([
    ['nope', ''],
    ['thumb', 'w=10'],
    ['thumb', 'f=png'],
    ['thumb', 'f=gif'],
  ])('refuses preset=%s with %j', (name, query) => {
    expect(() => presetOptions(PRESETS, name, new URLSearchParams(query))).toThrow(
      expect.objectContaining({ code: 'TRANSFORM_INVALID' }),
    );
  });
});

describe('chooseFormat', () => {
  const thumb = PRESETS[0] ?? null;
  it.each([
    ['image/avif,image/webp', 'webp'],
    ['image/webp', 'webp'],
    ['image/avif', 'avif'], // acceptable to the client: made at the preset's size
    ['image/webp;q=0', 'jpeg'],
    ['*/*', 'jpeg'],
  ])('preset thumb (webp only) with f=auto and Accept %j -> %s', (accept, format) => {
    expect(chooseFormat({ format: 'auto' }, thumb, accept, JPEG)).toEqual({ format, vary: true });
  });

  it('is negotiateFormat without a preset or with an explicit format', () => {
    expect(chooseFormat({ format: 'auto' }, null, 'image/avif', JPEG)).toEqual({
      format: 'avif',
      vary: true,
    });
    expect(chooseFormat({ format: null }, null, undefined, { hasAlpha: true, format: 'svg' })).toEqual({
      format: 'png',
      vary: false,
    });
    expect(chooseFormat({ format: 'webp' }, thumb, 'image/avif', JPEG)).toEqual({
      format: 'webp',
      vary: false,
    });
  });
});

describe('cacheControlFor', () => {
  const NOW = 1_700_000_000;
  it.each([
    ['w=100&f=webp', 'public, max-age=31536000, immutable'],
    ['', 'public, max-age=31536000, immutable'],
    // A signed URL with exp: no cache may keep the answer past exp.
    [`w=100&exp=${NOW + 3600}&kid=k&sig=s`, 'public, max-age=3600, immutable'],
    [`exp=${NOW + 2 * 31_536_000}`, 'public, max-age=31536000, immutable'],
    [`exp=${NOW - 5}`, 'public, max-age=0, immutable'],
  ])('%j -> %s', (query, expected) => {
    expect(cacheControlFor(query, NOW)).toBe(expected);
  });
});

describe('checkAllowLists (unsigned URLs)', () => {
  const limits = { maxWidth: 4096, maxHeight: 4096, allowedWidths: [320, 640], allowedQualities: [80] };
  const check = (query: string) => () => checkAllowLists(parseImgUrl('/img/ast_1', query), limits);

  it.each(['w=320', 'w=640&h=320&q=80', 'w=320&dpr=2&f=webp&fit=cover&pos=attention', 'preset=thumb'])(
    'accepts %s',
    (query) => {
      expect(check(query)).not.toThrow();
    },
  );

  it.each([
    ['w=321', /w="321"/],
    ['h=100', /h="100"/],
    ['q=81', /q="81"/],
    ['w=320&blur=5', /blur is only accepted on signed URLs/],
    ['w=320&bg=ff0000', /bg is only accepted on signed URLs/],
    ['w=320&pos=fp:0.5,0.5', /pos with a focus point is only accepted/],
    ['w=320&dpr=1.5', /dpr other than 1, 2, 3 or 4/],
  ])('refuses %s', (query, message) => {
    expect(check(query)).toThrow(message);
  });
});
