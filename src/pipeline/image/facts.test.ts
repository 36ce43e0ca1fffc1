import { describe, expect, it } from 'vitest';
import { imageFacts } from './facts.js';

describe('imageFacts', () => {
  it('maps the probe, placeholders and variants outputs onto the asset record', () => {
    const facts = imageFacts({
      probe: {
        format: 'gif',
        width: 64,
        height: 48,
        pages: 3,
        animated: true,
        frames: 3,
        hasAlpha: true,
        colorSpace: 'srgb',
        bitsPerSample: 8,
        orientation: null,
        exif: { make: 'Canon' },
      },
      placeholders: {
        blurhash: 'LEHV6nWB2yk8pyo0adR*.7kCMdnj',
        thumbhash: '1QcSHQRnh493V4dIh4eXh1h4kJUI',
        lqip: 'data:image/webp;base64,AAAA',
        dominantColor: '#102030',
        perceptualHash: '0123456789abcdef',
      },
      variants: {
        variants: [
          {
            name: 'thumb.webp',
            preset: 'thumb',
            format: 'webp',
            width: 64,
            height: 48,
            size: 900,
            contentType: 'image/webp',
          },
        ],
      },
    });
    expect(facts).toEqual({
      width: 64,
      height: 48,
      format: 'gif',
      blurhash: 'LEHV6nWB2yk8pyo0adR*.7kCMdnj',
      perceptualHash: '0123456789abcdef',
      extra: {
        hasAlpha: true,
        animated: true,
        frames: 3,
        pages: 3,
        colorSpace: 'srgb',
        bitsPerSample: 8,
        exif: { make: 'Canon' },
        dominantColor: '#102030',
        thumbhash: '1QcSHQRnh493V4dIh4eXh1h4kJUI',
        lqip: 'data:image/webp;base64,AAAA',
        variants: [
          {
            name: 'thumb.webp',
            preset: 'thumb',
            format: 'webp',
            width: 64,
            height: 48,
            size: 900,
            contentType: 'image/webp',
          },
        ],
      },
    });
  });

  it('is tolerant of missing steps and mistyped fields', () => {
    const facts = imageFacts({
      probe: { format: 7, width: '64', pages: 2, space: 'b-w', exif: ['not', 'an', 'object'] },
      variants: { variants: [{ name: 'thumb.webp', width: 'wide' }, { nameless: true }, 'junk'] },
    });
    expect(facts).toEqual({
      width: null,
      height: null,
      format: null,
      blurhash: null,
      perceptualHash: null,
      extra: {
        hasAlpha: false,
        animated: false,
        frames: 2,
        pages: 2,
        colorSpace: 'b-w',
        bitsPerSample: null,
        exif: null,
        dominantColor: null,
        thumbhash: null,
        lqip: null,
        variants: [
          {
            name: 'thumb.webp',
            preset: 'thumb',
            format: '',
            width: null,
            height: null,
            size: null,
            contentType: 'application/octet-stream',
          },
        ],
      },
    });
    expect(imageFacts({}).extra).toMatchObject({ pages: 1, frames: 1, variants: [] });
  });
});
