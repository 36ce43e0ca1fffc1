import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hammingDistance, isPerceptualHash } from '../../src/domain/phash.js';
import { probeImage } from '../../src/media/image.js';
import { analyseImage } from '../../src/media/image-analysis.js';
import { tempDir } from '../helpers/tmp.js';

const WIDTH = 640;
const HEIGHT = 480;
const PHOTOS = 24;
/** A re-encoded or resized copy must stay this close to its original... */
const MAX_VARIANT_DISTANCE = 6;
/** ...and two different photos must be further apart than this. */
const MIN_CROSS_DISTANCE = 10;

/** A small deterministic pseudo-random generator (mulberry32), so that a seed gives the same image. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rgb = [number, number, number];

/**
 * A synthetic "photo": a two-colour gradient sky at a random angle, soft coloured blobs (light and
 * shadow), a few hard-edged rectangles and ellipses (objects) and a little grain. Smooth,
 * structured content like a real photo, not white noise; the same seed always gives the same pixels.
 */
function makePhoto(seed: number): Buffer {
  const next = random(seed * 7919 + 17);
  const colour = (): Rgb => [next() * 255, next() * 255, next() * 255];
  const angle = next() * Math.PI * 2;
  const [dx, dy] = [Math.cos(angle), Math.sin(angle)];
  const from = colour();
  const to = colour();
  const blobs = Array.from({ length: 4 + Math.floor(next() * 5) }, () => ({
    cx: next() * WIDTH,
    cy: next() * HEIGHT,
    r2: (40 + next() * 160) ** 2,
    colour: colour(),
    strength: 0.5 + next() * 0.5,
  }));
  const shapes = Array.from({ length: 2 + Math.floor(next() * 4) }, () => ({
    ellipse: next() < 0.5,
    cx: next() * WIDTH,
    cy: next() * HEIGHT,
    rx: 30 + next() * 150,
    ry: 30 + next() * 120,
    colour: colour(),
  }));

  const raw = Buffer.alloc(WIDTH * HEIGHT * 3);
  const pixel: Rgb = [0, 0, 0];
  for (let y = 0; y < HEIGHT; y++) {
    for (let x = 0; x < WIDTH; x++) {
      const t = Math.min(1, Math.max(0, 0.5 + ((x - WIDTH / 2) * dx + (y - HEIGHT / 2) * dy) / WIDTH));
      for (let c = 0; c < 3; c++) pixel[c] = from[c]! + (to[c]! - from[c]!) * t;
      for (const blob of blobs) {
        const w = blob.strength * Math.exp(-((x - blob.cx) ** 2 + (y - blob.cy) ** 2) / blob.r2);
        for (let c = 0; c < 3; c++) pixel[c] = pixel[c]! * (1 - w) + blob.colour[c]! * w;
      }
      for (const shape of shapes) {
        const u = (x - shape.cx) / shape.rx;
        const v = (y - shape.cy) / shape.ry;
        const inside = shape.ellipse ? u * u + v * v <= 1 : Math.abs(u) <= 1 && Math.abs(v) <= 1;
        if (inside) for (let c = 0; c < 3; c++) pixel[c] = shape.colour[c]!;
      }
      const grain = (next() - 0.5) * 12;
      const offset = (y * WIDTH + x) * 3;
      for (let c = 0; c < 3; c++) raw[offset + c] = Math.max(0, Math.min(255, Math.round(pixel[c]! + grain)));
    }
  }
  return raw;
}

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
      const jpeg = await sharp(makePhoto(seed), { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
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
