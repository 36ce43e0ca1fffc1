import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { imageErrorToAppError, openImage, probeImage } from '../../src/media/image.js';
import {
  IMAGE_FIXTURES,
  makeAnimation,
  makeCorruptHeaderJpeg,
  makeGreyAlphaPng,
  makeJpegWithExif,
  makeMultiPageTiff,
  makeP3Jpeg,
} from '../helpers/images.js';
import { tempDir } from '../helpers/tmp.js';

const LIMITS = { maxInputPixels: 50_000_000 };

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

/** openImage as the pipeline calls it: probe first, then the normalised pipeline. */
async function open(path: string, options: { animated?: boolean } = {}): Promise<Sharp> {
  return openImage(path, await probeImage(path, LIMITS), LIMITS, options);
}

interface Raw {
  data: Buffer;
  width: number;
  height: number;
  channels: number;
}

async function raw(image: Sharp): Promise<Raw> {
  const { data, info } = await image.raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

/** Mean of each channel over a rectangle of a raw image. */
function meanOf(img: Raw, rect: { left: number; top: number; width: number; height: number }): number[] {
  const sums = new Array<number>(img.channels).fill(0);
  for (let y = rect.top; y < rect.top + rect.height; y++) {
    for (let x = rect.left; x < rect.left + rect.width; x++) {
      for (let c = 0; c < img.channels; c++) sums[c]! += img.data[(y * img.width + x) * img.channels + c]!;
    }
  }
  return sums.map((s) => s / (rect.width * rect.height));
}

function meanAbsDiff(a: Buffer, b: Buffer): number {
  expect(a.length).toBe(b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}

/** 60 x 45 RGB of a normalised image: small enough that JPEG noise averages out. */
async function thumbnailPixels(image: Sharp): Promise<Buffer> {
  return image.resize(60, 45, { fit: 'fill' }).removeAlpha().raw().toBuffer();
}

describe('openImage: EXIF orientation', () => {
  const landscape = (n: number) => join(IMAGE_FIXTURES, `Landscape_${n}.jpg`);

  it.each([1, 2, 3, 4, 5, 6, 7, 8])(
    'Landscape_%i comes out upright and equal to orientation 1',
    async (n) => {
      const upright = await raw(await open(landscape(n)));
      expect(upright.width).toBeGreaterThan(upright.height);
      expect([upright.width, upright.height]).toEqual([600, 450]);

      const reference = await thumbnailPixels(await open(landscape(1)));
      const diff = meanAbsDiff(await thumbnailPixels(await open(landscape(n))), reference);
      expect(diff).toBeLessThan(8);
    },
  );

  it('the comparison tells a wrongly turned picture apart (the check above can fail)', async () => {
    const reference = await thumbnailPixels(await open(landscape(1)));
    const upsideDown = await thumbnailPixels((await open(landscape(1))).rotate(180));
    const mirrored = await thumbnailPixels((await open(landscape(1))).flop());
    expect(meanAbsDiff(upsideDown, reference)).toBeGreaterThan(20);
    expect(meanAbsDiff(mirrored, reference)).toBeGreaterThan(20);
    // Without autoOrient, orientation 3 (stored upside down) is far from the reference.
    const stored = await sharp(landscape(3)).resize(60, 45, { fit: 'fill' }).removeAlpha().raw().toBuffer();
    expect(meanAbsDiff(stored, reference)).toBeGreaterThan(20);
  });
});

describe('openImage: colour', () => {
  it('turns a CMYK JPEG without a profile into 3-channel sRGB with the colours of the scene', async () => {
    // The photo: a park, green lawn on the left, a child in red in a pushchair, a light grey pavement.
    const img = await raw(await open(join(IMAGE_FIXTURES, 'cmyk-no-profile.jpg')));
    expect([img.width, img.height, img.channels]).toEqual([500, 333, 3]);

    const [lr, lg, lb] = meanOf(img, { left: 0, top: 240, width: 140, height: 50 }) as [
      number,
      number,
      number,
    ];
    // Lawn: green above red and well above blue (inverted or raw CMYK numbers would be magenta).
    expect(lg).toBeGreaterThan(lr + 5);
    expect(lg).toBeGreaterThan(lb + 30);

    const [cr, cg, cb] = meanOf(img, { left: 312, top: 195, width: 30, height: 25 }) as [
      number,
      number,
      number,
    ];
    // The child's red coat.
    expect(cr).toBeGreaterThan(cg + 35);
    expect(cr).toBeGreaterThan(cb + 35);

    const [pr, pg, pb] = meanOf(img, { left: 420, top: 290, width: 70, height: 40 }) as [
      number,
      number,
      number,
    ];
    // Pavement: light and nearly neutral.
    expect(Math.min(pr, pg, pb)).toBeGreaterThan(130);
    expect(Math.max(pr, pg, pb) - Math.min(pr, pg, pb)).toBeLessThan(20);
  });

  it('converts an embedded Display P3 profile to sRGB numbers', async () => {
    const srgb = { r: 200, g: 100, b: 50 };
    const path = await file('p3.jpg', await makeP3Jpeg(srgb));
    const img = await raw(await open(path));
    const [r, g, b] = meanOf(img, { left: 4, top: 4, width: 24, height: 24 }) as [number, number, number];
    expect(Math.abs(r - srgb.r)).toBeLessThan(4);
    expect(Math.abs(g - srgb.g)).toBeLessThan(4);
    expect(Math.abs(b - srgb.b)).toBeLessThan(4);
    // The stored numbers really are different (so ignoring the profile would have failed above).
    const ignored = await raw(sharp(path, { ignoreIcc: true }));
    const [ir] = meanOf(ignored, { left: 4, top: 4, width: 24, height: 24 }) as [number];
    expect(Math.abs(ir - srgb.r)).toBeGreaterThan(8);
  });

  it('reduces a 16-bit PNG to 8-bit sRGB without losing the picture', async () => {
    const path = join(IMAGE_FIXTURES, 'flag-16bit.png');
    expect((await sharp(path).metadata()).depth).toBe('ushort');
    const { info, data } = await (await open(path)).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([900, 600, 3]);
    // One byte per sample: 8 bits (a 16-bit buffer would be twice as long).
    expect(data.length).toBe(900 * 600 * 3);
    const img = { data, width: info.width, height: info.height, channels: info.channels };
    // The Dutch flag: red, white and blue bands.
    const [rr, rg, rb] = meanOf(img, { left: 0, top: 10, width: 900, height: 170 }) as [
      number,
      number,
      number,
    ];
    expect(rr).toBeGreaterThan(150);
    expect(Math.max(rg, rb)).toBeLessThan(70);
    expect(Math.min(...meanOf(img, { left: 0, top: 220, width: 900, height: 160 }))).toBeGreaterThan(245);
    const [br, bg, bb] = meanOf(img, { left: 0, top: 420, width: 900, height: 170 }) as [
      number,
      number,
      number,
    ];
    expect(bb).toBeGreaterThan(br + 60);
    expect(bb).toBeGreaterThan(bg + 40);
  });

  it('keeps the alpha of a transparent PNG', async () => {
    const img = await raw(await open(join(IMAGE_FIXTURES, 'flag-alpha.png')));
    expect(img.channels).toBe(4);
    const [r, g, b, a] = meanOf(img, { left: 0, top: 10, width: 900, height: 170 }) as number[];
    expect(a).toBeGreaterThan(100);
    expect(a).toBeLessThan(160);
    expect(r).toBeGreaterThan(g! + 80);
    expect(r).toBeGreaterThan(b! + 80);
  });

  it('expands a grey + alpha PNG to sRGB + alpha with the same grey level and alpha', async () => {
    const path = await file('grey-alpha.png', await makeGreyAlphaPng({ grey: 100, alpha: 128 }));
    const meta = await sharp(path).metadata();
    expect([meta.channels, meta.space]).toEqual([2, 'b-w']);
    const img = await raw(await open(path));
    expect(img.channels).toBe(4);
    const [r, g, b, a] = meanOf(img, { left: 0, top: 0, width: img.width, height: img.height }) as number[];
    for (const channel of [r, g, b]) expect(Math.abs(channel! - 100)).toBeLessThanOrEqual(1);
    expect(a).toBe(128);
  });
});

describe('openImage: frames and pages', () => {
  const colours = ['#ff0000', '#00ff00', '#0000ff'];
  const expected = [
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
  ];

  function frameColour(img: Raw, pageHeight: number, page: number): number[] {
    return meanOf(img, { left: 0, top: page * pageHeight, width: img.width, height: pageHeight })
      .slice(0, 3)
      .map(Math.round);
  }

  it.each(['gif', 'webp'] as const)(
    'keeps every frame and the delays of an animated %s when asked, the first frame otherwise',
    async (format) => {
      const path = await file(
        `anim.${format}`,
        await makeAnimation(format, { colours, delay: [100, 200, 300] }),
      );

      const encoded = await (await open(path, { animated: true }))[format]().toBuffer();
      const meta = await sharp(encoded).metadata();
      expect(meta.pages).toBe(3);
      expect(meta.delay).toEqual([100, 200, 300]);
      const strip = await raw(sharp(encoded, { animated: true }));
      expect([strip.width, strip.height]).toEqual([40, 90]);
      for (const page of [0, 1, 2]) {
        const colour = frameColour(strip, 30, page);
        for (const [c, value] of colour.entries())
          expect(Math.abs(value - expected[page]![c]!)).toBeLessThan(8);
      }

      const first = await raw(await open(path));
      expect([first.width, first.height]).toEqual([40, 30]);
      const colour = frameColour(first, 30, 0);
      for (const [c, value] of colour.entries()) expect(Math.abs(value - expected[0]![c]!)).toBeLessThan(8);
      const still = await sharp(await (await open(path))[format]().toBuffer()).metadata();
      expect(still.pages ?? 1).toBe(1);
    },
  );

  it('gives the first page of a multi-page TIFF, even when animation is asked', async () => {
    const path = await file(
      'pages.tiff',
      await makeMultiPageTiff({ colours: ['#00ff00', '#ff0000', '#0000ff'] }),
    );
    expect((await sharp(path).metadata()).pages).toBe(3);
    for (const animated of [false, true]) {
      const img = await raw(await open(path, { animated }));
      expect([img.width, img.height]).toEqual([40, 30]);
      const [r, g, b] = meanOf(img, { left: 0, top: 0, width: 40, height: 30 }) as number[];
      expect(g).toBeGreaterThan(250);
      expect(Math.max(r!, b!)).toBeLessThan(5);
    }
  });
});

describe('openImage: HEIF/AVIF', () => {
  it('decodes an AVIF upright in sRGB', async () => {
    const avif = await sharp({ create: { width: 48, height: 32, channels: 3, background: '#3060c0' } })
      .withMetadata({ orientation: 6 })
      .avif({ quality: 90 })
      .toBuffer();
    const path = await file('photo.avif', avif);
    const probe = await probeImage(path, LIMITS);
    // HEIF stores the rotation as a container transform (irot) that libheif applies while reading:
    // the header already gives the displayed size and there is no EXIF orientation left to apply.
    expect(probe).toMatchObject({ format: 'heif', width: 32, height: 48, pages: 1, animated: false });
    const img = await raw(await openImage(path, probe, LIMITS));
    expect([img.width, img.height, img.channels]).toEqual([32, 48, 3]);
    const [r, g, b] = meanOf(img, { left: 4, top: 4, width: 24, height: 40 }) as number[];
    expect(Math.abs(r! - 0x30)).toBeLessThan(8);
    expect(Math.abs(g! - 0x60)).toBeLessThan(8);
    expect(Math.abs(b! - 0xc0)).toBeLessThan(8);
  });
});

describe('openImage: SVG', () => {
  it('rasterises an SVG', async () => {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="80" height="40">
      <rect width="40" height="40" fill="#ff0000"/><rect x="40" width="40" height="40" fill="#0000ff"/></svg>`;
    const path = await file('simple.svg', Buffer.from(svg));
    const probe = await probeImage(path, LIMITS);
    expect(probe).toMatchObject({ format: 'svg', width: 80, height: 40 });
    const img = await raw(await openImage(path, probe, LIMITS));
    expect([img.width, img.height]).toEqual([80, 40]);
    const [lr, , lb] = meanOf(img, { left: 5, top: 5, width: 30, height: 30 }) as number[];
    const [rr, , rb] = meanOf(img, { left: 45, top: 5, width: 30, height: 30 }) as number[];
    expect([Math.round(lr!), Math.round(lb!)]).toEqual([255, 0]);
    expect([Math.round(rr!), Math.round(rb!)]).toEqual([0, 255]);
  });

  describe('with references to files and URLs', () => {
    let server: Server;
    let requests = 0;
    let port: number;
    let redPng: Buffer;

    beforeAll(async () => {
      redPng = await sharp({ create: { width: 20, height: 20, channels: 3, background: '#ff0000' } })
        .png()
        .toBuffer();
      server = createServer((_req, res) => {
        requests++;
        res.writeHead(200, { 'content-type': 'image/png' }).end(redPng);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(async () => new Promise<void>((resolve) => server.close(() => resolve())));

    it('refuses them before librsvg sees the document; handed over as bytes they would render without them', async () => {
      // A red PNG next to the SVG and at an absolute path: if librsvg loaded either, red would show.
      const redPath = await file('red.png', redPng);
      const svg = `<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="100" height="20">
  <rect width="100" height="20" fill="#0000ff"/>
  <image x="0" y="0" width="20" height="20" href="file://${redPath}"/>
  <image x="20" y="0" width="20" height="20" xlink:href="red.png"/>
  <image x="40" y="0" width="20" height="20" href="http://127.0.0.1:${port}/red.png"/>
  <image x="60" y="0" width="20" height="20" href="file:///etc/passwd"/>
  <image x="80" y="0" width="20" height="20" href="${redPath}"/>
</svg>`;
      const path = await file('refs.svg', Buffer.from(svg));
      // The guard: embedded or linked images are refused (librsvg would decode them without any
      // pixel limit), with a reason a person can act on.
      for (const attempt of [() => probeImage(path, LIMITS), () => open(path)]) {
        const err = await attempt().catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'MEDIA_INVALID' });
        expect((err as AppError).message).toMatch(/embeds or includes other content \(<image>\)/);
      }
      // The sandbox underneath: the same bytes given straight to librsvg, without a file name,
      // resolve none of the references.
      const img = await raw(sharp(Buffer.from(svg)));
      expect([img.width, img.height]).toEqual([100, 20]);
      for (let left = 0; left < 100; left += 20) {
        const [r, , b] = meanOf(img, { left, top: 0, width: 20, height: 20 }) as number[];
        expect({ left, r: Math.round(r!), b: Math.round(b!) }).toEqual({ left, r: 0, b: 255 });
      }
      expect(requests).toBe(0);
    });

    it('the same SVG read from its path would load the neighbouring file (the sandbox is what prevents it)', async () => {
      // Guard for the test above: librsvg does resolve a relative reference when it knows the file's
      // location, so an all-blue result there is the sandbox's doing, not a broken reference.
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20">
        <rect width="20" height="20" fill="#0000ff"/><image width="20" height="20" href="red.png"/></svg>`;
      const path = await file('relative.svg', Buffer.from(svg));
      await file('red.png', redPng);
      const img = await raw(sharp(path));
      const [r] = meanOf(img, { left: 0, top: 0, width: 20, height: 20 }) as number[];
      expect(r).toBeGreaterThan(200);
    });
  });
});

describe('openImage: damage and metadata', () => {
  it('ends a JPEG with a corrupt header in MEDIA_INVALID with a readable reason', async () => {
    const path = await file('corrupt-header.jpg', await makeCorruptHeaderJpeg());
    const err = await probeImage(path, LIMITS).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ code: 'MEDIA_INVALID', status: 422 });
    expect((err as AppError).message).toMatch(/header is damaged/);
    // Decoding it directly (a caller that skipped the probe) maps to the same code.
    const decodeErr = await openImage(path, { format: 'jpeg', pages: 1 }, LIMITS)
      .then((image) => image.raw().toBuffer())
      .catch((e: unknown) => imageErrorToAppError(e));
    expect(decodeErr).toMatchObject({ code: 'MEDIA_INVALID' });
  });

  it.each(['jpeg', 'webp', 'png'] as const)(
    'writes no EXIF, GPS, XMP or ICC into derived %s output',
    async (format) => {
      const path = await file('exif.jpg', await makeJpegWithExif());
      const source = await sharp(path).metadata();
      expect(source.exif?.includes('Canon')).toBe(true);
      const derived = await sharp(await (await open(path)).resize(32)[format]().toBuffer()).metadata();
      expect(derived.exif).toBeUndefined();
      expect(derived.xmp).toBeUndefined();
      expect(derived.icc).toBeUndefined();
    },
  );
});
