import { describe, expect, it } from 'vitest';
import { AppError } from '../errors.js';
import {
  canonicalTransform,
  DEFAULT_TRANSFORM_LIMITS,
  negotiateFormat,
  outputSize,
  parseTransformQuery,
  type TransformLimits,
  type TransformOptions,
} from './transform-options.js';

const DEFAULTS: TransformOptions = {
  width: null,
  height: null,
  fit: 'inside',
  position: { kind: 'gravity', value: 'center' },
  quality: null,
  format: null,
  dpr: 1,
  blur: null,
  background: null,
  animated: false,
};

function parse(query: string, limits?: TransformLimits): TransformOptions {
  return parseTransformQuery(new URLSearchParams(query), limits);
}

function errorOf(run: () => unknown): AppError {
  try {
    run();
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error('expected an AppError, nothing was thrown');
}

describe('parseTransformQuery: valid values', () => {
  it.each<[string, Partial<TransformOptions>]>([
    ['', {}],
    ['w=1', { width: 1 }],
    ['w=1280', { width: 1280 }],
    ['w=8192', { width: 8192 }],
    ['h=720', { height: 720 }],
    ['w=100&h=50', { width: 100, height: 50, fit: 'cover' }],
    ['w=100&h=50&fit=contain', { width: 100, height: 50, fit: 'contain' }],
    ['w=100&fit=cover', { width: 100, fit: 'cover' }],
    ['fit=fill', { fit: 'fill' }],
    ['fit=inside&w=1&h=1', { width: 1, height: 1, fit: 'inside' }],
    ['fit=outside', { fit: 'outside' }],
    ['pos=n', { position: { kind: 'gravity', value: 'north' } }],
    ['pos=north', { position: { kind: 'gravity', value: 'north' } }],
    ['pos=ne', { position: { kind: 'gravity', value: 'northeast' } }],
    ['pos=e', { position: { kind: 'gravity', value: 'east' } }],
    ['pos=southeast', { position: { kind: 'gravity', value: 'southeast' } }],
    ['pos=s', { position: { kind: 'gravity', value: 'south' } }],
    ['pos=sw', { position: { kind: 'gravity', value: 'southwest' } }],
    ['pos=w', { position: { kind: 'gravity', value: 'west' } }],
    ['pos=nw', { position: { kind: 'gravity', value: 'northwest' } }],
    ['pos=c', { position: { kind: 'gravity', value: 'center' } }],
    ['pos=centre', { position: { kind: 'gravity', value: 'center' } }],
    ['pos=attention', { position: { kind: 'strategy', value: 'attention' } }],
    ['pos=entropy', { position: { kind: 'strategy', value: 'entropy' } }],
    ['pos=fp:0.5,0.25', { position: { kind: 'focus', x: 0.5, y: 0.25 } }],
    ['pos=focus:0,1', { position: { kind: 'focus', x: 0, y: 1 } }],
    ['pos=fp:1.0,0.1234', { position: { kind: 'focus', x: 1, y: 0.1234 } }],
    ['q=1', { quality: 1 }],
    ['q=100', { quality: 100 }],
    ['f=auto', { format: 'auto' }],
    ['f=webp', { format: 'webp' }],
    ['f=avif', { format: 'avif' }],
    ['f=jpeg', { format: 'jpeg' }],
    ['f=jpg', { format: 'jpeg' }],
    ['f=png', { format: 'png' }],
    ['dpr=1', { dpr: 1 }],
    ['dpr=1.5', { dpr: 1.5 }],
    ['dpr=2.25', { dpr: 2.25 }],
    ['dpr=4', { dpr: 4 }],
    ['w=2048&dpr=4', { width: 2048, dpr: 4 }],
    ['blur=0.3', { blur: 0.3 }],
    ['blur=5', { blur: 5 }],
    ['blur=100', { blur: 100 }],
    ['bg=fff', { background: 'ffffff' }],
    ['bg=FFF', { background: 'ffffff' }],
    ['bg=A1b2C3', { background: 'a1b2c3' }],
    ['bg=a1b2c380', { background: 'a1b2c380' }],
    ['bg=a1b2c3FF', { background: 'a1b2c3' }],
    ['anim=1', { animated: true }],
    ['anim=true', { animated: true }],
    ['anim=0', { animated: false }],
    ['anim=false', { animated: false }],
    ['w=10&sig=abc&exp=123&kid=k1', { width: 10 }],
  ])('%j', (query, expected) => {
    expect(parse(query)).toEqual({ ...DEFAULTS, ...expected });
  });

  it('accepts a record, with single-element arrays and undefined values', () => {
    expect(parseTransformQuery({ w: '100', q: ['80'], h: undefined, sig: ['a', 'b'] })).toEqual({
      ...DEFAULTS,
      width: 100,
      quality: 80,
    });
  });

  it('uses DEFAULT_TRANSFORM_LIMITS of 8192 x 8192 without allow-lists', () => {
    expect(DEFAULT_TRANSFORM_LIMITS).toEqual({ maxWidth: 8192, maxHeight: 8192 });
  });
});

describe('parseTransformQuery: invalid values', () => {
  it.each<[string, string, RegExp]>([
    ['w=100000', 'w', /w="100000".*1 to 8192/],
    ['w=0', 'w', /w="0"/],
    ['w=-1', 'w', /w="-1"/],
    ['w=1e3', 'w', /w="1e3"/],
    ['w=12abc', 'w', /w="12abc"/],
    ['w=1.5', 'w', /w="1.5"/],
    ['w=0100', 'w', /w="0100"/],
    ['w= 100', 'w', /w=" 100"/],
    ['w=', 'w', /w="".*non-empty/],
    ['h=8193', 'h', /h="8193".*1 to 8192/],
    ['h=abc', 'h', /h="abc"/],
    ['w=4097&dpr=2', 'w', /w="4097".*dpr \(2\).*8192/],
    ['h=3000&dpr=3', 'h', /h="3000".*dpr \(3\)/],
    ['fit=stretch', 'fit', /fit="stretch".*cover, contain, fill, inside, outside/],
    ['fit=Cover', 'fit', /fit="Cover"/],
    ['pos=top', 'pos', /pos="top".*attention/],
    ['pos=fp:1.5,0', 'pos', /pos="fp:1.5,0"/],
    ['pos=fp:0.5', 'pos', /pos="fp:0.5"/],
    ['pos=fp:-0.1,0', 'pos', /pos="fp:-0.1,0"/],
    ['pos=fp:0.12345,0', 'pos', /pos="fp:0.12345,0"/],
    ['q=0', 'q', /q="0".*1 to 100/],
    ['q=101', 'q', /q="101"/],
    ['q=80.5', 'q', /q="80.5"/],
    ['f=bmp', 'f', /f="bmp".*auto, webp, avif, jpeg, jpg, png/],
    ['f=toString', 'f', /f="toString"/],
    ['dpr=9', 'dpr', /dpr="9".*1 to 4/],
    ['dpr=0.5', 'dpr', /dpr="0.5"/],
    ['dpr=1.005', 'dpr', /dpr="1.005"/],
    ['dpr=x', 'dpr', /dpr="x"/],
    ['blur=0.2', 'blur', /blur="0.2".*0.3 to 100 /],
    ['blur=101', 'blur', /blur="101".*0.3 to 100 /],
    ['blur=1001', 'blur', /blur="1001"/],
    ['blur=-1', 'blur', /blur="-1"/],
    ['bg=#fff', 'bg', /bg="#fff".*hex/],
    ['bg=zzz', 'bg', /bg="zzz"/],
    ['bg=ffff', 'bg', /bg="ffff"/],
    ['anim=yes', 'anim', /anim="yes".*1, true, 0, false/],
    ['w=100&w=200', 'w', /w is given 2 times \("100", "200"\)/],
    ['q=80&q=80', 'q', /q is given 2 times/],
    ['width=100', 'width', /Unknown transform parameter "width".*w, h, fit/],
    ['W=100', 'W', /Unknown transform parameter "W"/],
  ])('%j is refused (naming %s)', (query, _name, message) => {
    const err = errorOf(() => parse(query));
    expect(err.code).toBe('TRANSFORM_INVALID');
    expect(err.status).toBe(400);
    expect(err.message).toMatch(message);
  });

  it('refuses a repeated parameter given as a record array', () => {
    expect(errorOf(() => parseTransformQuery({ w: ['1', '2'] })).message).toMatch(/w is given 2 times/);
  });

  it('cuts very long values short in the message', () => {
    const err = errorOf(() => parse(`f=${'x'.repeat(500)}`));
    expect(err.message.length).toBeLessThan(200);
  });
});

describe('parseTransformQuery: limits and allow-lists', () => {
  const limits: TransformLimits = {
    maxWidth: 2000,
    maxHeight: 1000,
    allowedWidths: [320, 640, 1280],
    allowedQualities: [60, 80],
  };

  it.each<[string, Partial<TransformOptions>]>([
    ['w=640&q=80', { width: 640, quality: 80 }],
    ['w=1280&h=640&dpr=1', { width: 1280, height: 640, fit: 'cover' }],
    ['h=320&dpr=2', { height: 320, dpr: 2 }],
  ])('%j is within the limits', (query, expected) => {
    expect(parse(query, limits)).toEqual({ ...DEFAULTS, ...expected });
  });

  it.each<[string, RegExp]>([
    ['w=500', /w="500".*one of 320, 640, 1280/],
    ['q=75', /q="75".*one of 60, 80/],
    ['h=1001', /h="1001".*1 to 1000/],
    ['h=500', /h="500".*one of 320, 640, 1280/],
    ['w=1280&dpr=2', /w="1280".*at most 2000/],
    ['w=2001', /w="2001".*1 to 2000/],
  ])('%j is refused', (query, message) => {
    const err = errorOf(() => parse(query, limits));
    expect(err.code).toBe('TRANSFORM_INVALID');
    expect(err.message).toMatch(message);
  });
});

describe('canonicalTransform', () => {
  it.each<[string, string]>([
    ['', ''],
    ['w=100', 'w=100'],
    ['w=100&fit=inside', 'w=100'],
    ['w=100&fit=cover', 'w=100&fit=cover'],
    ['w=100&h=50&fit=cover', 'w=100&h=50'],
    ['w=100&h=50&fit=inside', 'w=100&h=50&fit=inside'],
    ['pos=c', ''],
    ['pos=ne', 'pos=northeast'],
    ['pos=focus:0.50,1.0', 'pos=fp:0.5,1'],
    ['pos=attention', 'pos=attention'],
    ['f=jpg', 'f=jpeg'],
    ['dpr=1.50', 'dpr=1.5'],
    ['dpr=1.00', ''],
    ['blur=2.500', 'blur=2.5'],
    ['bg=ABC', 'bg=aabbcc'],
    ['bg=aabbccff', 'bg=aabbcc'],
    ['anim=0', ''],
    ['anim=true', 'anim=1'],
    [
      'anim=1&bg=000&blur=3&dpr=2&f=webp&q=70&pos=s&fit=contain&h=20&w=10',
      'w=10&h=20&fit=contain&pos=south&q=70&f=webp&dpr=2&blur=3&bg=000000&anim=1',
    ],
  ])('%j -> %j', (query, expected) => {
    expect(canonicalTransform(parse(query))).toBe(expected);
  });

  it.each<[string, string]>([
    ['w=100&q=80', 'q=80&w=100&dpr=1'],
    ['w=100&h=100', 'h=100&w=100&fit=cover&pos=center'],
    ['f=jpeg&bg=FFFFFF', 'bg=fff&f=jpg&anim=false'],
    ['pos=northwest&dpr=2', 'dpr=2.00&pos=nw&sig=x&kid=k'],
  ])('%j and %j give the same string', (a, b) => {
    expect(canonicalTransform(parse(a))).toBe(canonicalTransform(parse(b)));
  });

  it.each<[string, string]>([
    ['w=100', 'w=101'],
    ['w=100', 'h=100'],
    ['f=auto', ''],
    ['pos=fp:0.5,0.5', ''],
    ['w=100&h=100', 'w=100&h=100&fit=fill'],
  ])('%j and %j differ', (a, b) => {
    expect(canonicalTransform(parse(a))).not.toBe(canonicalTransform(parse(b)));
  });

  it.each([
    'w=10&h=20&fit=contain&pos=south&q=70&f=webp&dpr=2&blur=3&bg=000000&anim=1',
    'pos=fp:0.1234,0',
    'h=5&fit=outside&bg=12345678',
  ])('reads back to the same options: %j', (query) => {
    const options = parse(query);
    expect(parse(canonicalTransform(options))).toEqual(options);
  });
});

describe('negotiateFormat', () => {
  const CHROME = 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8';
  const SAFARI =
    'image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5';
  const OLD_CHROME = 'image/webp,image/apng,image/*,*/*;q=0.8';
  const opaque = { hasAlpha: false, format: 'jpeg' };
  const alpha = { hasAlpha: true, format: 'png' };

  it.each<[string | undefined, { hasAlpha: boolean; format: string }, string]>([
    [CHROME, opaque, 'avif'],
    [SAFARI, opaque, 'avif'],
    [OLD_CHROME, opaque, 'webp'],
    ['image/avif;q=0,image/webp', opaque, 'webp'],
    ['image/avif; q=0.0, image/webp', opaque, 'webp'],
    ['image/webp,image/avif;q=0,*/*', alpha, 'webp'],
    ['image/avif;q=0,image/webp;q=0,*/*', alpha, 'png'],
    ['image/avif;q=0.1', opaque, 'avif'],
    ['image/avif;q=0,image/avif,image/webp', opaque, 'webp'],
    ['IMAGE/AVIF', opaque, 'avif'],
    ['*/*', opaque, 'jpeg'],
    ['*/*', alpha, 'png'],
    ['image/*', opaque, 'jpeg'],
    [undefined, opaque, 'jpeg'],
    [undefined, alpha, 'png'],
    ['', opaque, 'jpeg'],
  ])('auto with Accept %j (%j) -> %s', (accept, source, format) => {
    expect(negotiateFormat('auto', accept, source)).toEqual({ format, vary: true });
  });

  it.each<[TransformOptions['format'], { hasAlpha: boolean; format: string }, string]>([
    ['webp', opaque, 'webp'],
    ['png', opaque, 'png'],
    ['jpeg', alpha, 'jpeg'],
    ['avif', opaque, 'avif'],
    [null, { hasAlpha: false, format: 'jpg' }, 'jpeg'],
    [null, { hasAlpha: true, format: 'webp' }, 'webp'],
    [null, { hasAlpha: false, format: 'avif' }, 'avif'],
    [null, { hasAlpha: true, format: 'png' }, 'png'],
    [null, { hasAlpha: true, format: 'gif' }, 'png'],
    [null, { hasAlpha: false, format: 'tiff' }, 'jpeg'],
    [null, { hasAlpha: false, format: 'heif' }, 'jpeg'],
  ])('%j from %j ignores Accept -> %s', (requested, source, format) => {
    expect(negotiateFormat(requested, CHROME, source)).toEqual({ format, vary: false });
  });
});

describe('outputSize', () => {
  const source = { width: 4000, height: 3000 };

  it.each<[string, { width: number; height: number }, { width: number; height: number }]>([
    ['', source, { width: 4000, height: 3000 }],
    ['dpr=2', source, { width: 4000, height: 3000 }],
    ['w=800', source, { width: 800, height: 600 }],
    ['w=800&dpr=2', source, { width: 1600, height: 1200 }],
    ['w=333', source, { width: 333, height: 250 }],
    ['h=300', source, { width: 400, height: 300 }],
    ['w=5000', source, { width: 4000, height: 3000 }],
    ['w=3000&dpr=1.5', source, { width: 4000, height: 3000 }],
    ['h=4000', source, { width: 4000, height: 3000 }],
    ['w=5000&fit=cover', source, { width: 5000, height: 3750 }],
    ['w=100&h=100', source, { width: 100, height: 100 }],
    ['w=100&h=100&dpr=1.5', source, { width: 150, height: 150 }],
    ['w=101&h=33&dpr=1.25', source, { width: 126, height: 41 }],
    ['w=100&h=100&fit=fill', source, { width: 100, height: 100 }],
    ['w=100&h=100&fit=contain', source, { width: 100, height: 100 }],
    ['w=5000&h=5000&fit=cover', source, { width: 5000, height: 5000 }],
    ['w=100&h=100&fit=inside', source, { width: 100, height: 75 }],
    ['w=1000&h=100&fit=inside', source, { width: 133, height: 100 }],
    ['w=5000&h=1500&fit=inside', source, { width: 2000, height: 1500 }],
    ['w=5000&h=5000&fit=inside', source, { width: 4000, height: 3000 }],
    ['w=100&h=100&fit=outside', source, { width: 133, height: 100 }],
    ['w=1000&h=100&fit=outside', source, { width: 1000, height: 750 }],
    ['w=8000&h=100&fit=outside', source, { width: 8000, height: 6000 }],
    ['w=1', { width: 4000, height: 1 }, { width: 1, height: 1 }],
  ])('%j of %j -> %j', (query, src, expected) => {
    expect(outputSize(parse(query), src)).toEqual(expected);
  });

  it('refuses an empty source size', () => {
    expect(() => outputSize(DEFAULTS, { width: 0, height: 10 })).toThrow(TypeError);
  });
});
