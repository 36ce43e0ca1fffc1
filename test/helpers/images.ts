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
