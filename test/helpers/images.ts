import { deflateSync } from 'node:zlib';
import sharp from 'sharp';

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

/** A baseline JPEG of coloured noise; `orientation` sets the EXIF orientation tag (1-8). */
export async function makeJpeg(
  options: { width?: number; height?: number; seed?: number; orientation?: number; quality?: number } = {},
): Promise<Buffer> {
  const { width = 128, height = 96, seed = 1, orientation, quality = 85 } = options;
  const next = random(seed);
  const tint = [next() * 255, next() * 255, next() * 255];
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) {
    raw[i] = Math.min(255, Math.round(((tint[i % 3] ?? 0) * 3) / 4 + next() * 64));
  }
  let image = sharp(raw, { raw: { width, height, channels: 3 } });
  if (orientation !== undefined) image = image.withMetadata({ orientation });
  return image.jpeg({ quality }).toBuffer();
}

/** A valid JPEG cut to `fraction` of its bytes (the end of the scan data is missing). */
export async function makeTruncatedJpeg(
  options: { width?: number; height?: number; seed?: number; fraction?: number } = {},
): Promise<Buffer> {
  const full = await makeJpeg({
    width: options.width ?? 320,
    height: options.height ?? 240,
    seed: options.seed ?? 7,
  });
  return full.subarray(0, Math.floor(full.length * (options.fraction ?? 0.6)));
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = (CRC_TABLE[(c ^ byte) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/**
 * A tiny PNG whose header declares `side` x `side` pixels (a decompression bomb as far as the header
 * goes); the pixel data is a short stub, so only a header check can refuse it cheaply.
 */
export function makePngBomb(side = 30000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  ihdr[10] = 0; // deflate
  ihdr[11] = 0; // adaptive filtering
  ihdr[12] = 0; // no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.alloc(side + 1))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Where the committed real-world images live (see test/fixtures/images/README.md). */
export const IMAGE_FIXTURES = new URL('../fixtures/images/', import.meta.url).pathname;

/** Solid-colour frames joined into an animated GIF or WebP, with one delay (ms) per frame. */
export async function makeAnimation(
  format: 'gif' | 'webp',
  options: { colours?: string[]; width?: number; height?: number; delay?: number[] } = {},
): Promise<Buffer> {
  const { colours = ['#ff0000', '#00ff00', '#0000ff'], width = 40, height = 30 } = options;
  const delay = options.delay ?? colours.map((_, i) => 100 * (i + 1));
  const frames = await Promise.all(
    colours.map((background) =>
      sharp({ create: { width, height, channels: 3, background } })
        .png()
        .toBuffer(),
    ),
  );
  const joined = sharp(frames, { join: { animated: true } });
  return format === 'gif'
    ? joined.gif({ delay, loop: 0 }).toBuffer()
    : joined.webp({ delay, loop: 0, lossless: true }).toBuffer();
}

/** A multi-page TIFF, one solid colour per page. */
export async function makeMultiPageTiff(
  options: { colours?: string[]; width?: number; height?: number } = {},
): Promise<Buffer> {
  const { colours = ['#ff0000', '#00ff00', '#0000ff'], width = 40, height = 30 } = options;
  const pages = await Promise.all(
    colours.map((background) =>
      sharp({ create: { width, height, channels: 3, background } })
        .png()
        .toBuffer(),
    ),
  );
  // join.animated stacks the inputs as pages; the TIFF writer stores each page as its own directory.
  return sharp(pages, { join: { animated: true } })
    .tiff()
    .toBuffer();
}

/** A grey + alpha PNG (colour type 4) with one grey level and one alpha value everywhere. */
export async function makeGreyAlphaPng(
  options: { width?: number; height?: number; grey?: number; alpha?: number } = {},
): Promise<Buffer> {
  const { width = 32, height = 24, grey = 100, alpha = 128 } = options;
  const raw = Buffer.alloc(width * height * 2);
  for (let i = 0; i < raw.length; i += 2) {
    raw[i] = grey;
    raw[i + 1] = alpha;
  }
  // Without the b-w interpretation sharp would write the two bands as an RGBA PNG (colour type 6).
  return sharp(raw, { raw: { width, height, channels: 2 } })
    .toColourspace('b-w')
    .png()
    .toBuffer();
}

/**
 * A JPEG with camera EXIF, including private fields (serial numbers, owner, artist) and a GPS
 * position (48.858233 N, 2.294467 E, 35 m), all written by sharp's `withExif`.
 */
export async function makeJpegWithExif(options: { width?: number; height?: number } = {}): Promise<Buffer> {
  const { width = 64, height = 48 } = options;
  return sharp({ create: { width, height, channels: 3, background: '#806040' } })
    .withExif({
      IFD0: { Make: 'Canon', Model: 'Canon EOS R5', Artist: 'Jane Doe', Copyright: 'Jane Doe 2024' },
      IFD2: {
        ExposureTime: '1/250',
        FNumber: '28/10',
        ISOSpeedRatings: '400',
        FocalLength: '50/1',
        FocalLengthIn35mmFilm: '50',
        DateTimeOriginal: '2024:05:06 07:08:09',
        OffsetTimeOriginal: '+02:00',
        LensModel: 'RF50mm F1.8 STM',
        BodySerialNumber: 'BODY-12345',
        LensSerialNumber: 'LENS-67890',
        CameraOwnerName: 'Jane Doe',
      },
      IFD3: {
        GPSLatitudeRef: 'N',
        GPSLatitude: '48/1 51/1 2964/100',
        GPSLongitudeRef: 'E',
        GPSLongitude: '2/1 17/1 4008/100',
        GPSAltitudeRef: '0',
        GPSAltitude: '35/1',
      },
    })
    .jpeg()
    .toBuffer();
}

/** A JPEG whose frame header (SOF) declares 0 x 0 pixels: libjpeg refuses its header. */
export async function makeCorruptHeaderJpeg(): Promise<Buffer> {
  const jpeg = Buffer.from(await makeJpeg({ width: 64, height: 48 }));
  // SOF0 (baseline) marker: FF C0, length (2), precision (1), height (2), width (2).
  const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
  if (sof < 0) throw new Error('no SOF0 marker in the generated JPEG');
  jpeg.writeUInt16BE(0, sof + 5);
  jpeg.writeUInt16BE(0, sof + 7);
  return jpeg;
}

/**
 * A JPEG of one sRGB colour converted into Display P3 numbers and tagged with sharp's built-in P3
 * profile: read without the profile its pixels are wrong, read with it they are `srgb` again.
 */
export async function makeP3Jpeg(srgb: { r: number; g: number; b: number }): Promise<Buffer> {
  return sharp({ create: { width: 32, height: 32, channels: 3, background: srgb } })
    .withIccProfile('p3')
    .jpeg({ quality: 95, chromaSubsampling: '4:4:4' })
    .toBuffer();
}
