import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hammingDistance, isPerceptualHash } from '../../src/domain/phash.js';
import { probeImage } from '../../src/media/image.js';
import { analyseImage } from '../../src/media/image-analysis.js';
import { syntheticPhoto } from '../helpers/photos.js';
import { tempDir } from '../helpers/tmp.js';

const WIDTH = 640;
const HEIGHT = 480;
const PHOTOS = 24;
/** A re-encoded or resized copy must stay this close to its original... */
const MAX_VARIANT_DISTANCE = 6;
/** ...and two different photos must be further apart than this. */
const MIN_CROSS_DISTANCE = 10;

const LIMITS = { maxInputPixels: 50_000_000 };

describe("perceptual hash robustness (real sharp encodes, through the pipeline's analysis path)", () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let files = 0;
  beforeAll(async () => {
    tmp = await tempDir('assetpipe-phash-');
  });
  afterAll(async () => tmp?.cleanup());

  /** Hash an encoded image exactly as the pipeline does: probe, then the one analysis decode. */
  async function hashImage(encoded: Buffer): Promise<string> {
    const path = join(tmp.dir, `image-${files++}`);
    await writeFile(path, encoded);
    const probe = await probeImage(path, LIMITS);
    const analysis = await analyseImage({ path, probe, limits: LIMITS, blurhashComponents: { x: 4, y: 3 } });
    return analysis.perceptualHash;
  }

  it('matches re-encoded and resized copies and separates different photos', async () => {
    const originals: string[] = [];
    let maxVariant = 0;
    let worstVariant = '';
    const failures: string[] = [];

    for (let seed = 1; seed <= PHOTOS; seed++) {
      const jpeg = await sharp(syntheticPhoto(seed, WIDTH, HEIGHT), {
        raw: { width: WIDTH, height: HEIGHT, channels: 3 },
      })
        .jpeg({ quality: 90 })
        .toBuffer();
      const variants: Record<string, Buffer> = Object.fromEntries(
        await Promise.all([
          sharp(jpeg)
            .jpeg({ quality: 30 })
            .toBuffer()
            .then((b) => ['jpeg-q30', b] as const),
          sharp(jpeg)
            .resize(WIDTH / 2, HEIGHT / 2)
            .jpeg({ quality: 90 })
            .toBuffer()
            .then((b) => ['resize-50%', b] as const),
          sharp(jpeg)
            .webp({ quality: 75 })
            .toBuffer()
            .then((b) => ['webp-q75', b] as const),
        ]),
      );
      const [original, ...hashes] = await Promise.all([jpeg, ...Object.values(variants)].map(hashImage));
      expect(isPerceptualHash(original!)).toBe(true);
      originals.push(original!);
      Object.keys(variants).forEach((name, i) => {
        const distance = hammingDistance(original!, hashes[i]!);
        if (distance > maxVariant) {
          maxVariant = distance;
          worstVariant = `photo ${seed} ${name}`;
        }
        if (distance > MAX_VARIANT_DISTANCE) failures.push(`photo ${seed} ${name}: ${distance}`);
      });
    }

    let minCross = 64;
    let closestPair = '';
    for (let i = 0; i < originals.length; i++) {
      for (let j = i + 1; j < originals.length; j++) {
        const distance = hammingDistance(originals[i]!, originals[j]!);
        if (distance < minCross) {
          minCross = distance;
          closestPair = `photos ${i + 1} and ${j + 1}`;
        }
        if (distance <= MIN_CROSS_DISTANCE) failures.push(`photos ${i + 1} and ${j + 1}: ${distance}`);
      }
    }

    console.info(
      `phash robustness: ${PHOTOS} photos x 3 variants; max variant distance ${maxVariant} (${worstVariant}), ` +
        `min cross distance ${minCross} (${closestPair})`,
    );
    expect(failures).toEqual([]);
    expect(maxVariant).toBeLessThanOrEqual(MAX_VARIANT_DISTANCE);
    expect(minCross).toBeGreaterThan(MIN_CROSS_DISTANCE);
  });
});
