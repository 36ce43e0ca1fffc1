import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import {
  checkImagePrefix,
  type ImageProbe,
  probeImage,
  readHeaderFromPrefix,
} from '../../src/media/image.js';
import { probeStep } from '../../src/pipeline/image/probe.js';
import type { StepContext } from '../../src/pipeline/step.js';
import {
  IMAGE_FIXTURES,
  makeAnimation,
  makeCorruptHeaderJpeg,
  makeGreyAlphaPng,
  makeJpeg,
  makeJpegWithExif,
  makeMultiPageTiff,
  makeP3Jpeg,
  makePngBomb,
} from '../helpers/images.js';
import { tempDir } from '../helpers/tmp.js';

const LIMITS = { maxInputPixels: 50_000_000 };
// Different frames: the GIF encoder merges identical consecutive ones.
const TEN_COLOURS = Array.from({ length: 10 }, (_, i) => `#${(i * 25).toString(16).padStart(2, '0')}4080`);

let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterAll(async () => cleanup());

async function file(name: string, bytes: Buffer): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

async function refusal(promise: Promise<unknown>): Promise<AppError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

const still: Omit<ImageProbe, 'format' | 'width' | 'height' | 'colorSpace'> = {
  pages: 1,
  animated: false,
  frames: 1,
  hasAlpha: false,
  bitsPerSample: 8,
  orientation: null,
  exif: null,
};

describe('probeImage', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])(
    'Landscape_%i: displayed size after orientation, the tag itself',
    async (n) => {
      const probe = await probeImage(join(IMAGE_FIXTURES, `Landscape_${n}.jpg`), LIMITS);
      expect(probe).toMatchObject({ format: 'jpeg', width: 600, height: 450, orientation: n, pages: 1 });
    },
  );

  it.each<[string, Partial<ImageProbe>]>([
    ['cmyk-no-profile.jpg', { ...still, format: 'jpeg', width: 500, height: 333, colorSpace: 'cmyk' }],
    [
      'flag-16bit.png',
      { ...still, format: 'png', width: 900, height: 600, colorSpace: 'srgb', bitsPerSample: 16 },
    ],
    [
      'flag-alpha.png',
      { ...still, format: 'png', width: 900, height: 600, colorSpace: 'srgb', hasAlpha: true },
    ],
    // An embedded "Generic RGB Profile" (Apple): RGB in a profile we do not name.
    ['Landscape_2.jpg', { format: 'jpeg', colorSpace: 'rgb' }],
  ])('%s', async (name, expected) => {
    expect(await probeImage(join(IMAGE_FIXTURES, name), LIMITS)).toMatchObject(expected);
  });

  it('grey + alpha, Display P3', async () => {
    expect(await probeImage(await file('ga.png', await makeGreyAlphaPng()), LIMITS)).toEqual({
      ...still,
      format: 'png',
      width: 32,
      height: 24,
      colorSpace: 'grey',
      hasAlpha: true,
    });
    const p3 = await probeImage(await file('p3.jpg', await makeP3Jpeg({ r: 10, g: 200, b: 30 })), LIMITS);
    expect(p3).toMatchObject({ colorSpace: 'p3', bitsPerSample: 8 });
  });

  it.each(['gif', 'webp'] as const)(
    'an animated %s: one frame is the size, all frames are counted',
    async (format) => {
      const path = await file(`a.${format}`, await makeAnimation(format, { width: 40, height: 30 }));
      expect(await probeImage(path, LIMITS)).toMatchObject({
        format,
        width: 40,
        height: 30,
        pages: 3,
        animated: true,
        frames: 3,
      });
    },
  );

  it('a one-frame GIF is not animated', async () => {
    const gif = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#123456' } })
      .gif()
      .toBuffer();
    expect(await probeImage(await file('one.gif', gif), LIMITS)).toMatchObject({
      pages: 1,
      animated: false,
      frames: 1,
    });
  });

  it('a multi-page TIFF has pages but is not an animation', async () => {
    const path = await file('p.tiff', await makeMultiPageTiff());
    expect(await probeImage(path, LIMITS)).toMatchObject({
      format: 'tiff',
      width: 40,
      height: 30,
      pages: 3,
      animated: false,
      frames: 1,
    });
  });

  it('curates EXIF: camera facts, no private fields, GPS only when allowed', async () => {
    const path = await file('exif.jpg', await makeJpegWithExif());
    const hidden = await probeImage(path, LIMITS);
    expect(hidden.exif).toEqual({
      make: 'Canon',
      model: 'Canon EOS R5',
      lens: 'RF50mm F1.8 STM',
      exposureTime: 0.004,
      exposureTimeText: '1/250',
      fNumber: 2.8,
      iso: 400,
      focalLength: 50,
      focalLength35mm: 50,
      takenAt: '2024-05-06T07:08:09+02:00',
    });
    expect(JSON.stringify(hidden)).not.toMatch(/Jane|BODY-12345|LENS-67890/);
    const shown = await probeImage(path, LIMITS, { exposeGps: true });
    expect(shown.exif?.gps).toEqual({ latitude: 48.858233, longitude: 2.294467, altitude: 35 });
  });

  describe('pixel limit (header only, before any decode)', () => {
    it('refuses the 30000 x 30000 PNG bomb, naming the sizes and the limit', async () => {
      const path = await file('bomb.png', makePngBomb());
      const err = await refusal(probeImage(path, LIMITS));
      expect(err.code).toBe('IMAGE_TOO_LARGE');
      expect(err.status).toBe(422);
      expect(err.message).toMatch(
        /^The image is 30000 x 30000 pixels \(900 MP\), over this server's limit of 50 MP \(ASSETPIPE_MAX_INPUT_PIXELS\)/,
      );
    });

    it('sums the frames of an animation', async () => {
      // 10 frames of 100 x 100 = 100 000 pixels: over 50 000 although each frame is 10 000.
      const path = await file(
        'ten.gif',
        await makeAnimation('gif', { width: 100, height: 100, colours: TEN_COLOURS }),
      );
      const err = await refusal(probeImage(path, { maxInputPixels: 50_000 }));
      expect(err.code).toBe('IMAGE_TOO_LARGE');
      expect(err.message).toContain('100 x 100 pixels x 10 frames');
      await expect(probeImage(path, { maxInputPixels: 100_000 })).resolves.toMatchObject({ frames: 10 });
    });

    it('counts only the first page of a multi-page TIFF (the only one decoded)', async () => {
      const path = await file(
        'ten.tiff',
        await makeMultiPageTiff({ width: 100, height: 100, colours: TEN_COLOURS }),
      );
      await expect(probeImage(path, { maxInputPixels: 10_000 })).resolves.toMatchObject({
        pages: 10,
        frames: 1,
      });
      expect((await refusal(probeImage(path, { maxInputPixels: 9_999 }))).code).toBe('IMAGE_TOO_LARGE');
    });
  });

  it('refuses a JPEG whose header is damaged with MEDIA_INVALID', async () => {
    const err = await refusal(probeImage(await file('bad.jpg', await makeCorruptHeaderJpeg()), LIMITS));
    expect(err.code).toBe('MEDIA_INVALID');
    expect(err.message).toMatch(/header is damaged.*Upload the original file again/);
  });
});

describe('upload-time header check (first bytes only)', () => {
  it('reads the bomb from its first bytes and refuses it', async () => {
    const head = makePngBomb().subarray(0, 64 * 1024);
    expect(await readHeaderFromPrefix(head)).toMatchObject({ format: 'png', width: 30000, height: 30000 });
    const err = await refusal(checkImagePrefix(head, LIMITS));
    expect(err.code).toBe('IMAGE_TOO_LARGE');
  });

  it('reads a JPEG header from a prefix of a larger file and lets it through', async () => {
    const jpeg = await makeJpeg({ width: 1200, height: 900, quality: 95 });
    expect(jpeg.length).toBeGreaterThan(64 * 1024);
    const head = jpeg.subarray(0, 64 * 1024);
    expect(await readHeaderFromPrefix(head)).toMatchObject({ format: 'jpeg', width: 1200, height: 900 });
    await expect(checkImagePrefix(head, LIMITS)).resolves.toBeUndefined();
    expect((await refusal(checkImagePrefix(head, { maxInputPixels: 1_000_000 }))).code).toBe(
      'IMAGE_TOO_LARGE',
    );
  });

  it('lets an unreadable prefix through for the pipeline to decide', async () => {
    const garbage = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.alloc(100, 0x37)]);
    expect(await readHeaderFromPrefix(garbage)).toBeUndefined();
    await expect(checkImagePrefix(garbage, { maxInputPixels: 1 })).resolves.toBeUndefined();
  });
});

describe('probe step', () => {
  function context(path: string, exposeGps: boolean): StepContext {
    // Only what the probe step reads; the rest would be a test double of the runner.
    return {
      sourcePath: async () => path,
      limits: { ...LIMITS, maxDurationSec: null, projectId: 'default' },
      settings: { exposeGps, imagePresets: [], blurhashComponents: { x: 4, y: 3 } },
      logger: pino({ level: 'silent' }),
    } as unknown as StepContext;
  }

  it('returns the probe as JSON, with GPS following the project setting', async () => {
    const path = await file('step.jpg', await makeJpegWithExif({ width: 80, height: 60 }));
    const hidden = await probeStep.run(context(path, false));
    expect(Object.keys(hidden).sort()).toEqual(
      [
        'animated',
        'bitsPerSample',
        'colorSpace',
        'exif',
        'format',
        'frames',
        'hasAlpha',
        'height',
        'orientation',
        'pages',
        'width',
      ].sort(),
    );
    expect(JSON.parse(JSON.stringify(hidden))).toEqual(hidden);
    expect(hidden).toMatchObject({ format: 'jpeg', width: 80, height: 60, exif: { make: 'Canon' } });
    expect((hidden.exif as { gps?: unknown }).gps).toBeUndefined();
    const shown = await probeStep.run(context(path, true));
    expect((shown.exif as { gps?: unknown }).gps).toMatchObject({ latitude: 48.858233 });
  });

  it('the exif JSON of a derived image is empty: nothing to curate', async () => {
    const path = await file(
      'plain.png',
      await sharp({ create: { width: 8, height: 8, channels: 3, background: '#fff' } })
        .png()
        .toBuffer(),
    );
    expect((await probeStep.run(context(path, true))).exif).toBeNull();
  });
});
