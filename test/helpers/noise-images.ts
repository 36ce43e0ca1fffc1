import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';

export interface GeneratedImage {
  name: string;
  bytes: Buffer;
  width: number;
  height: number;
}

/** A tint per index, spread around the colour wheel so that neighbouring images differ. */
function tint(index: number): [number, number, number] {
  const hue = (index * 137.508) % 360; // golden angle
  const c = 200;
  const x = c * (1 - Math.abs(((hue / 60) % 2) - 1));
  const [r, g, b] =
    hue < 60
      ? [c, x, 0]
      : hue < 120
        ? [x, c, 0]
        : hue < 180
          ? [0, c, x]
          : hue < 240
            ? [0, x, c]
            : hue < 300
              ? [x, 0, c]
              : [c, 0, x];
  return [Math.round(r), Math.round(g), Math.round(b)];
}

/**
 * A baseline JPEG of coloured noise (random bytes, so every call differs): noise defeats the
 * encoder, which keeps the files a realistic size and the pipeline busy for a measurable time.
 */
export async function noiseJpeg(index: number, width: number, height: number, quality = 85): Promise<Buffer> {
  const raw = randomBytes(width * height * 3);
  const [r, g, b] = tint(index);
  const base = [r, g, b];
  for (let i = 0; i < raw.length; i++) {
    // 3/4 of the range is the tint, 1/4 is noise: clearly coloured, never flat.
    raw[i] = Math.min(255, Math.round(((base[i % 3] ?? 0) * 3) / 4) + (raw[i]! >> 2));
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality, progressive: false })
    .toBuffer();
}

/** `count` distinct noise JPEGs named img-000.jpg ..., generated `concurrency` at a time. */
export async function noiseJpegs(
  count: number,
  width: number,
  height: number,
  options: { quality?: number; concurrency?: number; prefix?: string } = {},
): Promise<GeneratedImage[]> {
  const out: GeneratedImage[] = new Array(count);
  let next = 0;
  const lane = async () => {
    for (;;) {
      const index = next++;
      if (index >= count) return;
      const bytes = await noiseJpeg(index, width, height, options.quality);
      out[index] = {
        name: `${options.prefix ?? 'img'}-${String(index).padStart(3, '0')}.jpg`,
        bytes,
        width,
        height,
      };
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 2 }, lane));
  return out;
}

/** Writes the images into `dir` (created if needed); returns their paths. */
export async function writeImages(dir: string, images: readonly GeneratedImage[]): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  return Promise.all(
    images.map(async (image) => {
      const path = join(dir, image.name);
      await writeFile(path, image.bytes);
      return path;
    }),
  );
}
