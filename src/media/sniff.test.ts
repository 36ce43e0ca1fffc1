import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { wavHeader } from '../../test/helpers/wav.js';
import { looksLikeSvg, sniffMedia } from './sniff.js';

describe('sniffMedia', () => {
  it.each(['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif'] as const)(
    'detects %s from the bytes',
    async (format) => {
      const bytes = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#808080' } })
        .toFormat(format)
        .toBuffer();
      const sniffed = await sniffMedia(bytes);
      expect(sniffed?.type).toBe('image');
      expect(sniffed?.mime).toBe(format === 'tiff' ? 'image/tiff' : `image/${format}`);
    },
  );

  it('detects WAV as audio', async () => {
    expect(await sniffMedia(wavHeader(0))).toMatchObject({ type: 'audio', mime: 'audio/wav' });
  });

  it('detects SVG documents, with or without an XML declaration', async () => {
    expect(
      await sniffMedia(
        Buffer.from('<?xml version="1.0"?>\n<!-- c -->\n<svg xmlns="http://www.w3.org/2000/svg"/>'),
      ),
    ).toMatchObject({
      mime: 'image/svg+xml',
      type: 'image',
    });
    expect(looksLikeSvg(Buffer.from('<svg width="1" height="1"></svg>'))).toBe(true);
    expect(looksLikeSvg(Buffer.from('<html><svg></svg></html>'))).toBe(false);
  });

  it.each([
    ['text', Buffer.from('hello, I am not a picture')],
    ['empty', Buffer.alloc(0)],
    ['zip', Buffer.from('504b030414000000080000000000', 'hex')],
    ['pdf', Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n', 'latin1')],
  ])('refuses %s', async (_name, bytes) => {
    expect(await sniffMedia(bytes)).toBeUndefined();
  });
});
