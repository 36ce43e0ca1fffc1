import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { looksLikeSvg, sniffMedia } from './sniff.js';

function wavHeader(): Buffer {
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36, 4);
  header.write('WAVE', 8);
  header.write('fmt ', 12);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(2, 22);
  header.writeUInt32LE(48000, 24);
  header.writeUInt32LE(192000, 28);
  header.writeUInt16LE(4, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  return header;
}

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
    expect(await sniffMedia(wavHeader())).toMatchObject({ type: 'audio', mime: 'audio/wav' });
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
