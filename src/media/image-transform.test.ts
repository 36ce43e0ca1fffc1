import { describe, expect, it } from 'vitest';
import { outputSize, parseTransformQuery } from '../domain/transform-options.js';
import { planTransform } from './image-transform.js';

const PHOTO = { width: 400, height: 300, pages: 1, hasAlpha: false, format: 'jpeg' };
const plan = (query: string, format: 'webp' | 'jpeg' | 'png' | 'avif' = 'webp', source = PHOTO) =>
  planTransform(parseTransformQuery(new URLSearchParams(query)), source, format);

describe('planTransform', () => {
  it.each([
    ['w=200', { width: 200, height: 150, fit: 'fill' }],
    ['w=200&h=200', { width: 200, height: 200, fit: 'cover' }],
    ['w=200&h=200&fit=contain', { width: 200, height: 200, fit: 'contain' }],
    ['w=100&h=300&fit=fill', { width: 100, height: 300, fit: 'fill' }],
    ['w=100&h=100&fit=outside', { width: 133, height: 100, fit: 'fill' }],
    ['w=100&dpr=2', { width: 200, height: 150, fit: 'fill' }],
  ])('%s resizes to %o', (query, resize) => {
    const result = plan(query);
    expect(result.resize).toMatchObject(resize);
    expect(result.output).toEqual(outputSize(parseTransformQuery(new URLSearchParams(query)), PHOTO));
  });

  it.each(['', 'w=800&h=800&fit=inside', 'w=400', 'fit=inside&w=1000'])(
    '%j leaves the size alone (never enlarges inside)',
    (q) => {
      const result = plan(q);
      expect(result.resize).toBeNull();
      expect(result.output).toEqual({ width: 400, height: 300 });
    },
  );

  it('cuts a focus-point window from the covering size, clamped to the image', () => {
    const right = plan('w=100&h=100&pos=fp:1,0.5');
    expect(right.resize).toMatchObject({ width: 133, height: 100, fit: 'fill' });
    expect(right.extract).toEqual({ left: 33, top: 0, width: 100, height: 100 });
    const centre = plan('w=100&h=100&pos=fp:0.5,0.5');
    expect(centre.extract).toEqual({ left: 17, top: 0, width: 100, height: 100 });
    const topLeft = plan('w=200&h=100&pos=fp:0,0');
    expect(topLeft.resize).toMatchObject({ width: 200, height: 150 });
    expect(topLeft.extract).toEqual({ left: 0, top: 0, width: 200, height: 100 });
  });

  it('passes gravity and smart-crop strategies to cover, not to contain', () => {
    expect(plan('w=100&h=100&pos=ne').resize?.position).toBe('northeast');
    expect(plan('w=100&h=100&pos=attention').resize?.position).toBe('attention');
    expect(plan('w=100&h=100&fit=contain&pos=entropy').resize?.position).toBe('centre');
  });

  it('flattens alpha for JPEG (white, or bg) and letterboxes with bg, transparent, or white for JPEG', () => {
    const alpha = { ...PHOTO, hasAlpha: true, format: 'png' };
    expect(plan('w=100', 'jpeg', alpha).flatten).toEqual({ r: 255, g: 255, b: 255 });
    expect(plan('w=100', 'png', alpha).flatten).toBeNull();
    expect(plan('w=100&bg=102030', 'png', alpha).flatten).toEqual({ r: 16, g: 32, b: 48 });
    expect(plan('w=100&h=100&fit=contain', 'png').resize?.background).toEqual({ r: 0, g: 0, b: 0, alpha: 0 });
    expect(plan('w=100&h=100&fit=contain', 'jpeg').resize?.background).toEqual({
      r: 255,
      g: 255,
      b: 255,
      alpha: 1,
    });
    expect(plan('w=100&h=100&fit=contain&bg=ff000080', 'webp').resize?.background).toEqual({
      r: 255,
      g: 0,
      b: 0,
      alpha: 128 / 255,
    });
    expect(plan('w=100&h=100&fit=contain&bg=ff000080', 'jpeg').resize?.background?.alpha).toBe(1);
  });

  it('keeps animation only for WebP output of a multi-frame source with anim=1', () => {
    const gif = { ...PHOTO, pages: 3, format: 'gif' };
    expect(plan('w=100&anim=1', 'webp', gif).animated).toBe(true);
    expect(plan('w=100&anim=1', 'png', gif).animated).toBe(false);
    expect(plan('w=100', 'webp', gif).animated).toBe(false);
    expect(plan('w=100&anim=1', 'webp').animated).toBe(false);
  });

  it.each([
    // One side given: the other follows the aspect ratio, here 100 times longer.
    ['w=8192&fit=outside', { width: 100, height: 10_000 }],
    ['w=1000&fit=cover', { width: 100, height: 10_000 }],
    ['h=1000&fit=fill', { width: 10_000, height: 100 }],
    ['w=100&h=100&fit=outside', { width: 10_000, height: 100 }],
    // No w or h: the source's own size.
    ['f=png', { width: 10_000, height: 100 }],
  ])('refuses %s on a %o source whose output would pass the maximum side', (query, source) => {
    expect(() => plan(query, 'png', { ...PHOTO, ...source })).toThrow(
      expect.objectContaining({
        code: 'TRANSFORM_INVALID',
        message: expect.stringMatching(/over the output limit/),
      }),
    );
  });

  it('bounds the output by the given limits, and a kept animation by one maximal still', () => {
    const limits = { maxWidth: 1000, maxHeight: 1000 };
    const banner = { ...PHOTO, width: 100, height: 10_000 };
    expect(
      planTransform(parseTransformQuery(new URLSearchParams('h=1000')), banner, 'png', limits).output,
    ).toEqual({
      width: 10,
      height: 1000,
    });
    expect(() =>
      planTransform(parseTransformQuery(new URLSearchParams('w=20&fit=cover')), banner, 'png', limits),
    ).toThrow(/2000 pixels/);
    const gif = { ...PHOTO, width: 10, height: 10, pages: 200, format: 'gif' };
    const query = parseTransformQuery(new URLSearchParams('w=100&h=100&fit=fill&anim=1'));
    expect(() => planTransform(query, gif, 'webp', limits)).toThrow(/x 200 frames/);
    expect(planTransform(query, gif, 'png', limits).animated).toBe(false);
  });

  it('carries blur and quality to the steps', () => {
    expect(plan('blur=2.5&q=40', 'avif')).toMatchObject({
      blur: 2.5,
      encode: { format: 'avif', quality: 40 },
    });
  });
});
