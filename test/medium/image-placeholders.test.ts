import { randomBytes } from 'node:crypto';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decode as decodeBlurhash } from 'blurhash';
import sharp from 'sharp';
import { thumbHashToRGBA } from 'thumbhash';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseImagePresets } from '../../src/domain/image-presets.js';
import { hammingDistance, isPerceptualHash } from '../../src/domain/phash.js';
import { probeImage } from '../../src/media/image.js';
import {
  ANALYSIS_SIDE,
  analyseImage,
  analysePixels,
  encodeLqip,
  type ImageAnalysis,
  MAX_LQIP_BYTES,
} from '../../src/media/image-analysis.js';
import { planVariants, renderVariants } from '../../src/media/image-variants.js';
import { makeJpeg } from '../helpers/images.js';
import { noiseJpeg } from '../helpers/noise-images.js';
import { tempDir } from '../helpers/tmp.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/images/', import.meta.url));
const LIMITS = { maxInputPixels: 50_000_000 };
const COMPONENTS = { x: 4, y: 3 };

/**
 * Largest accepted difference, per channel on the 0-255 scale, between a placeholder's decoded mean
 * colour and the source's. Each format is compared in the space it averages in: BlurHash's DC term
 * is the linear-light mean (compared in linear light, converted back to sRGB units), ThumbHash's is
 * the alpha-weighted mean of the gamma-encoded values. What remains is quantisation (ThumbHash
 * stores the mean luminance in 6 bits: +-2) and the analysis downscale, which libvips does on
 * gamma-encoded values and so shifts a high-contrast photo's linear mean (up to ~10 measured, on
 * cmyk-no-profile.jpg). A real mistake — swapped channels, a missing colour conversion, black
 * instead of white behind transparency — moves the mean by 30 or more.
 */
const MEAN_TOLERANCE = 12;

type Rgb = [number, number, number];

function srgbToLinear(v: number): number {
  const x = v / 255;
  return x <= 0.04045 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
}

function linearToSrgb(l: number): number {
  return 255 * (l <= 0.0031308 ? 12.92 * l : 1.055 * l ** (1 / 2.4) - 0.055);
}

/** Mean colour in linear light of RGBA pixels composited over white (what BlurHash encodes). */
function linearMeanOverWhite(rgba: ArrayLike<number>): Rgb {
  const sums = [0, 0, 0];
  for (let i = 0; i < rgba.length; i += 4) {
    const a = (rgba[i + 3] ?? 255) / 255;
    for (let c = 0; c < 3; c++) sums[c]! += srgbToLinear((rgba[i + c] ?? 0) * a + 255 * (1 - a));
  }
  const n = rgba.length / 4;
  return sums.map((s) => linearToSrgb(s / n)) as Rgb;
}

/** Alpha-weighted mean of the gamma-encoded values (what ThumbHash encodes). */
function alphaWeightedMean(rgba: ArrayLike<number>): Rgb {
  const sums = [0, 0, 0];
  let weight = 0;
  for (let i = 0; i < rgba.length; i += 4) {
    const a = (rgba[i + 3] ?? 255) / 255;
    for (let c = 0; c < 3; c++) sums[c]! += (rgba[i + c] ?? 0) * a;
    weight += a;
  }
  return sums.map((s) => s / weight) as Rgb;
}

function maxChannelDifference(a: Rgb, b: Rgb): number {
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
}

/** The source's own pixels at full size, upright, sRGB, 8-bit RGBA (plain sharp, not our code). */
async function sourceRgba(path: string): Promise<Buffer> {
  return sharp(path).autoOrient().toColourspace('srgb').ensureAlpha().raw({ depth: 'uchar' }).toBuffer();
}

describe('image analysis: placeholders, dominant colour and perceptual hash (real sharp)', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  const sources: { name: string; path: string }[] = [];

  async function add(name: string, bytes: Buffer | Promise<Buffer>): Promise<string> {
    const path = join(tmp.dir, name);
    await writeFile(path, await bytes);
    sources.push({ name, path });
    return path;
  }

  async function analyse(path: string, blurhashComponents = COMPONENTS): Promise<ImageAnalysis> {
    const probe = await probeImage(path, LIMITS);
    return analyseImage({ path, probe, limits: LIMITS, blurhashComponents });
  }

  beforeAll(async () => {
    tmp = await tempDir('assetpipe-placeholders-');
    await add(
      'solid.png',
      sharp({ create: { width: 300, height: 200, channels: 3, background: '#3366cc' } })
        .png()
        .toBuffer(),
    );
    const gradient = Buffer.alloc(400 * 300 * 3);
    for (let y = 0; y < 300; y++) {
      for (let x = 0; x < 400; x++) {
        const o = (y * 400 + x) * 3;
        gradient[o] = Math.round((x / 399) * 255);
        gradient[o + 1] = Math.round((y / 299) * 255);
        gradient[o + 2] = 40;
      }
    }
    await add(
      'gradient.png',
      sharp(gradient, { raw: { width: 400, height: 300, channels: 3 } })
        .png()
        .toBuffer(),
    );
    for (const index of [0, 1, 2]) await add(`noise-${index}.jpg`, noiseJpeg(index, 480, 320));
    for (const fixture of [
      'Landscape_1.jpg',
      'Landscape_6.jpg',
      'cmyk-no-profile.jpg',
      'flag-16bit.png',
      'flag-alpha.png',
    ]) {
      const path = join(tmp.dir, fixture);
      await copyFile(join(FIXTURES, fixture), path);
      sources.push({ name: fixture, path });
    }
  });
  afterAll(async () => tmp?.cleanup());

  it('BlurHash and ThumbHash decode to the mean colour of the source', async () => {
    const failures: string[] = [];
    let worst = 0;
    for (const { name, path } of sources) {
      const analysis = await analyse(path);
      const source = await sourceRgba(path);
      const blur = decodeBlurhash(analysis.blurhash, 32, 32);
      const thumb = thumbHashToRGBA(Buffer.from(analysis.thumbhash, 'base64'));
      const blurError = maxChannelDifference(linearMeanOverWhite(blur), linearMeanOverWhite(source));
      const thumbError = maxChannelDifference(alphaWeightedMean(thumb.rgba), alphaWeightedMean(source));
      worst = Math.max(worst, blurError, thumbError);
      if (blurError > MEAN_TOLERANCE) failures.push(`${name} blurhash: ${blurError.toFixed(1)}`);
      if (thumbError > MEAN_TOLERANCE) failures.push(`${name} thumbhash: ${thumbError.toFixed(1)}`);
    }
    console.info(
      `placeholders: worst mean-colour difference ${worst.toFixed(1)}/255 over ${sources.length} images`,
    );
    expect(sources.length).toBeGreaterThanOrEqual(10);
    expect(failures).toEqual([]);
  });

  it('the mean-colour check catches a placeholder of the wrong image', async () => {
    // Guards the test above: the tolerance is tight enough to tell the solid blue from its neighbours.
    const solid = await analyse(sources.find((s) => s.name === 'solid.png')!.path);
    const flag = await sourceRgba(sources.find((s) => s.name === 'flag-alpha.png')!.path);
    const blur = decodeBlurhash(solid.blurhash, 32, 32);
    expect(maxChannelDifference(linearMeanOverWhite(blur), linearMeanOverWhite(flag))).toBeGreaterThan(
      MEAN_TOLERANCE,
    );
  });

  it('uses the configured BlurHash components', async () => {
    const path = sources[0]!.path;
    // 1 character for the size, 1 for the AC scale, 4 for DC, then 2 per AC component.
    expect((await analyse(path, { x: 4, y: 3 })).blurhash).toHaveLength(6 + 2 * (4 * 3 - 1));
    expect((await analyse(path, { x: 3, y: 3 })).blurhash).toHaveLength(6 + 2 * (3 * 3 - 1));
    expect((await analyse(path, { x: 9, y: 9 })).blurhash).toHaveLength(6 + 2 * (9 * 9 - 1));
  });

  it('makes an LQIP data URL under 1 kB with the source aspect ratio', async () => {
    for (const { name, path } of sources) {
      const { lqip } = await analyse(path);
      const { width, height } = await probeImage(path, LIMITS);
      expect(lqip, name).toMatch(/^data:image\/webp;base64,[A-Za-z0-9+/]+=*$/);
      expect(lqip.length, name).toBeLessThan(MAX_LQIP_BYTES);
      const meta = await sharp(Buffer.from(lqip.split(',')[1]!, 'base64')).metadata();
      expect(meta.format, name).toBe('webp');
      expect(Math.max(meta.width, meta.height), name).toBeLessThanOrEqual(24);
      // Within the rounding of a 24 px side.
      expect(Math.abs(meta.width - (meta.height * width) / height), name).toBeLessThanOrEqual(1);
    }
  });

  it('keeps the LQIP under 1 kB even for incompressible pixels', async () => {
    // Random RGBA noise is the worst case for a codec.
    const side = ANALYSIS_SIDE;
    const data = new Uint8ClampedArray(randomBytes(side * side * 4));
    const analysis = await analysePixels(
      { data, width: side, height: side },
      { blurhashComponents: COMPONENTS },
    );
    expect(analysis.lqip.length).toBeLessThan(MAX_LQIP_BYTES);
    expect((await sharp(Buffer.from(analysis.lqip.split(',')[1]!, 'base64')).metadata()).hasAlpha).toBe(true);
  });

  it('falls back to a smaller LQIP when an attempt does not fit', async () => {
    const side = ANALYSIS_SIDE;
    const pixels = { data: new Uint8ClampedArray(randomBytes(side * side * 4)), width: side, height: side };
    // A 100 px near-lossless WebP of noise is tens of kB: the second attempt must be taken.
    const lqip = await encodeLqip(pixels, [
      { side: 100, quality: 100 },
      { side: 10, quality: 30 },
    ]);
    expect(lqip.length).toBeLessThan(MAX_LQIP_BYTES);
    expect((await sharp(Buffer.from(lqip.split(',')[1]!, 'base64')).metadata()).width).toBe(10);
    await expect(encodeLqip(pixels, [{ side: 100, quality: 100 }])).rejects.toThrow(
      /does not fit in 1024 bytes/,
    );
  });

  it('finds the dominant colour, ignoring transparent pixels', async () => {
    expect((await analyse(sources.find((s) => s.name === 'solid.png')!.path)).dominantColor).toBe('#3366cc');
    // Three quarters transparent black, one quarter opaque orange: orange dominates.
    const path = join(tmp.dir, 'mostly-transparent.png');
    await writeFile(
      path,
      await sharp({
        create: { width: 200, height: 200, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } },
      })
        .composite([
          {
            input: { create: { width: 100, height: 100, channels: 4, background: '#ff8000' } },
            left: 0,
            top: 0,
          },
        ])
        .png()
        .toBuffer(),
    );
    const analysis = await analyse(path);
    expect(analysis.dominantColor).toBe('#ff8000');
    expect(analysis.lqip.length).toBeLessThan(MAX_LQIP_BYTES);
  });

  it('hashes all eight EXIF orientations of the same photo alike (upright before hashing)', async () => {
    const hashes: string[] = [];
    for (let n = 1; n <= 8; n++)
      hashes.push((await analyse(join(FIXTURES, `Landscape_${n}.jpg`))).perceptualHash);
    for (const hash of hashes) {
      expect(isPerceptualHash(hash)).toBe(true);
      expect(hammingDistance(hash, hashes[0]!)).toBeLessThanOrEqual(2);
    }
    // ...while a different picture is far away.
    const other = await analyse(join(FIXTURES, 'cmyk-no-profile.jpg'));
    expect(hammingDistance(other.perceptualHash, hashes[0]!)).toBeGreaterThan(10);
  });

  it('fails a damaged file with a reason', async () => {
    const jpeg = await makeJpeg({ width: 320, height: 240 });
    const path = join(tmp.dir, 'truncated.jpg');
    await writeFile(path, jpeg.subarray(0, Math.floor(jpeg.length * 0.6)));
    await expect(
      analyseImage({
        path,
        probe: { format: 'jpeg', pages: 1 },
        limits: LIMITS,
        blurhashComponents: COMPONENTS,
      }),
    ).rejects.toMatchObject({ code: 'MEDIA_INVALID' });
  });
});

describe('eager variants (real sharp)', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    tmp = await tempDir('assetpipe-variants-');
  });
  afterAll(async () => tmp?.cleanup());

  async function render(name: string, bytes: Buffer, presets: string) {
    const path = join(tmp.dir, name);
    await writeFile(path, bytes);
    const probe = await probeImage(path, LIMITS);
    const variants = await renderVariants({
      path,
      probe,
      limits: LIMITS,
      variants: planVariants(parseImagePresets(presets)),
    });
    return Promise.all(
      variants.map(async (v) => ({ ...v, meta: await sharp(v.data, { pages: -1 }).metadata() })),
    );
  }

  it('renders every preset in every format at its size', async () => {
    // A real photo scaled to 1600x1200 (noise would make the AVIF encoder needlessly slow).
    const photo = await sharp(join(FIXTURES, 'Landscape_1.jpg')).resize(1600, 1200).jpeg().toBuffer();
    const out = await render('big.jpg', photo, 'thumb=320:webp;preview=1280:webp+avif;print=480:jpeg+png@80');
    expect(out.map((v) => [v.name, v.preset, v.format, v.contentType, v.width, v.height])).toEqual([
      ['thumb.webp', 'thumb', 'webp', 'image/webp', 320, 240],
      ['preview.webp', 'preview', 'webp', 'image/webp', 1280, 960],
      ['preview.avif', 'preview', 'avif', 'image/avif', 1280, 960],
      ['print.jpeg', 'print', 'jpeg', 'image/jpeg', 480, 360],
      ['print.png', 'print', 'png', 'image/png', 480, 360],
    ]);
    // The bytes say the same as the description.
    expect(out.map((v) => [v.meta.format, v.meta.width, v.meta.height])).toEqual([
      ['webp', 320, 240],
      ['webp', 1280, 960],
      ['heif', 1280, 960],
      ['jpeg', 480, 360],
      ['png', 480, 360],
    ]);
    expect(out[2]!.meta.compression).toBe('av1');
    expect(out[4]!.meta.isPalette).toBe(true); // @80: palette-quantised PNG
  });

  it('never enlarges a small image', async () => {
    const out = await render(
      'small.jpg',
      await makeJpeg({ width: 200, height: 150 }),
      'thumb=320:webp;preview=1280:avif',
    );
    expect(out.map((v) => [v.name, v.width, v.height, v.meta.width, v.meta.height])).toEqual([
      ['thumb.webp', 200, 150, 200, 150],
      ['preview.avif', 200, 150, 200, 150],
    ]);
  });

  it('renders upright and strips EXIF', async () => {
    // Stored 400x200 with orientation 6: displayed 200x400.
    const out = await render(
      'rotated.jpg',
      await makeJpeg({ width: 400, height: 200, orientation: 6 }),
      'a=100:webp+jpeg',
    );
    for (const v of out) {
      expect([v.width, v.height, v.meta.width, v.meta.height], v.name).toEqual([50, 100, 50, 100]);
      expect(v.meta.exif, v.name).toBeUndefined();
      expect(v.meta.orientation, v.name).toBeUndefined();
    }
  });

  it('keeps transparency where the format can, and puts JPEG on white', async () => {
    // Left half fully transparent, right half opaque blue.
    const png = await sharp({
      create: { width: 200, height: 100, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } },
    })
      .composite([
        {
          input: { create: { width: 100, height: 100, channels: 4, background: '#0000ff' } },
          left: 100,
          top: 0,
        },
      ])
      .png()
      .toBuffer();
    const out = await render('half-transparent.png', png, 'a=100:webp+png+jpeg');
    const byFormat = Object.fromEntries(out.map((v) => [v.format, v]));
    expect(byFormat.webp!.meta.hasAlpha).toBe(true);
    expect(byFormat.png!.meta.hasAlpha).toBe(true);
    expect(byFormat.jpeg!.meta.hasAlpha).toBe(false);
    const { data, info } = await sharp(byFormat.jpeg!.data).raw().toBuffer({ resolveWithObject: true });
    const pixel = (x: number, y: number) =>
      Array.from(data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3));
    expect(Math.min(...pixel(10, 25))).toBeGreaterThan(240); // white, not libvips's black
    expect(pixel(90, 25)[2]).toBeGreaterThan(200); // still blue
  });

  it('keeps an animated GIF animated in WebP variants, first frame in AVIF', async () => {
    const frames = 4;
    const [width, frameHeight] = [240, 160];
    const strip = Buffer.alloc(width * frameHeight * frames * 3);
    for (let f = 0; f < frames; f++) {
      for (let i = 0; i < width * frameHeight; i++) {
        const o = (f * width * frameHeight + i) * 3;
        strip[o] = f * 60;
        strip[o + 1] = 255 - f * 60;
        strip[o + 2] = (i % width) % 255;
      }
    }
    const gif = await sharp(strip, {
      raw: { width, height: frameHeight * frames, channels: 3, pageHeight: frameHeight },
    })
      .gif({ delay: 100, loop: 0 })
      .toBuffer();
    expect((await sharp(gif).metadata()).pages).toBe(frames);

    const out = await render('animated.gif', gif, 'thumb=120:webp+avif');
    const [webp, avif] = out;
    expect([webp!.name, webp!.width, webp!.height, webp!.pages]).toEqual(['thumb.webp', 120, 80, frames]);
    expect(webp!.meta).toMatchObject({ format: 'webp', pages: frames, pageHeight: 80, width: 120 });
    expect(webp!.meta.delay).toEqual(Array(frames).fill(100));
    expect([avif!.name, avif!.width, avif!.height, avif!.pages]).toEqual(['thumb.avif', 120, 80, 1]);
    expect(avif!.meta).toMatchObject({ format: 'heif', width: 120, height: 80 });
    expect(avif!.meta.pages ?? 1).toBe(1);
  });
});
