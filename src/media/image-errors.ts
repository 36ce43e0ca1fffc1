import { AppError } from '../errors.js';

/** Turns a libvips/sharp error into a reason a person understands (the raw text stays in `cause`). */
export function imageErrorToAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const raw = err instanceof Error ? err.message : String(err);
  if (/pixel limit/i.test(raw)) {
    return new AppError(
      'IMAGE_TOO_LARGE',
      'The image has more pixels than this server accepts (ASSETPIPE_MAX_INPUT_PIXELS); upload a smaller image.',
      { cause: err },
    );
  }
  if (/corrupt header|unsupported image format|not a known|datastream contains no image/i.test(raw)) {
    return new AppError(
      'MEDIA_INVALID',
      `The image's header is damaged, so its size and format cannot be read (${firstLine(raw)}). Upload the original file again, or re-save it with an image editor.`,
      { cause: err },
    );
  }
  if (/premature end|truncated|unexpected end|not enough data|end of (jpeg|file)|EOF/i.test(raw)) {
    return new AppError(
      'MEDIA_INVALID',
      'The image file is truncated or incomplete; upload the complete file again.',
      { cause: err },
    );
  }
  // libvips' warning text is global: with several decodes at once the error sometimes carries only
  // sharp's generic line. A warning during decode is almost always the data ending or breaking off.
  if (/warning treated as error/i.test(raw)) {
    return new AppError(
      'MEDIA_INVALID',
      'The image file is truncated or damaged: decoding stopped at a broken part. Upload the complete file again.',
      { cause: err },
    );
  }
  if (/bad seek|corrupt|invalid|vipsjpeg|vipspng|libspng|gifload|webp|heif|tiff|svg|rsvg/i.test(raw)) {
    return new AppError(
      'MEDIA_INVALID',
      `The image data is damaged and cannot be decoded (${firstLine(raw)}).`,
      { cause: err },
    );
  }
  return new AppError('MEDIA_INVALID', `The image cannot be decoded (${firstLine(raw)}).`, { cause: err });
}

function firstLine(text: string): string {
  const line = text.split('\n').find((l) => l.trim() !== '') ?? text;
  return line.trim().slice(0, 200);
}
