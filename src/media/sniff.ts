import { fileTypeFromBuffer } from 'file-type';
import type { MediaType } from '../domain/asset.js';

export interface SniffedType {
  mime: string;
  /** Usual file extension, without the dot. */
  ext: string;
  type: MediaType;
}

/** Bytes read from the start of an upload to decide its type. */
export const SNIFF_BYTES = 64 * 1024;

// The formats the pipeline can decode (sharp/libvips for images, ffmpeg for the rest). Anything
// else is refused with 415 before a byte is stored.
const SUPPORTED: Record<string, MediaType> = {
  'image/jpeg': 'image',
  'image/png': 'image',
  'image/webp': 'image',
  'image/gif': 'image',
  'image/avif': 'image',
  'image/heic': 'image',
  'image/heif': 'image',
  'image/tiff': 'image',
  'image/svg+xml': 'image',
  'video/mp4': 'video',
  'video/quicktime': 'video',
  'video/webm': 'video',
  'video/x-matroska': 'video',
  'video/x-msvideo': 'video',
  'video/mpeg': 'video',
  'video/mp2t': 'video',
  'video/x-m4v': 'video',
  'video/3gpp': 'video',
  'video/ogg': 'video',
  'video/x-flv': 'video',
  'audio/mpeg': 'audio',
  'audio/wav': 'audio',
  'audio/x-wav': 'audio',
  'audio/flac': 'audio',
  'audio/x-flac': 'audio',
  'audio/ogg': 'audio',
  'audio/opus': 'audio',
  'audio/aac': 'audio',
  'audio/x-m4a': 'audio',
  'audio/mp4': 'audio',
};

/**
 * SVG is text, so magic numbers cannot find it: accept a document whose first element is `<svg`
 * (after an optional BOM, XML declaration, comments and doctype).
 */
export function looksLikeSvg(head: Uint8Array): boolean {
  const text = Buffer.from(head.subarray(0, 4096))
    .toString('utf8')
    .replace(/^\uFEFF/, '');
  const stripped = text
    .replace(/^\s*<\?xml[^>]*\?>/i, '')
    .replace(/^(\s*<!--[\s\S]*?-->)*/, '')
    .replace(/^\s*<!DOCTYPE[^>]*>/i, '')
    .replace(/^(\s*<!--[\s\S]*?-->)*/, '');
  return /^\s*<svg[\s>]/i.test(stripped);
}

/** The media type of an upload, decided from its first bytes only; `undefined` = not processable. */
export async function sniffMedia(head: Uint8Array): Promise<SniffedType | undefined> {
  if (head.length === 0) return undefined;
  const detected = await fileTypeFromBuffer(head);
  // file-type calls any document with an XML declaration "application/xml".
  if ((!detected || detected.mime.endsWith('/xml')) && looksLikeSvg(head)) {
    return { mime: 'image/svg+xml', ext: 'svg', type: 'image' };
  }
  if (detected) {
    const type = SUPPORTED[detected.mime];
    return type ? { mime: detected.mime, ext: detected.ext, type } : undefined;
  }
  return undefined;
}

/** What the refused bytes looked like, for the 415 message. */
export async function describeUnsupported(head: Uint8Array): Promise<string> {
  const detected = head.length > 0 ? await fileTypeFromBuffer(head) : undefined;
  if (detected) return `The content is ${detected.mime}, which is not supported`;
  return 'The content is not a recognised image, video or audio format';
}
