// The image side of src/media: the only code that touches sharp/libvips. Everything reads from a
// local file path (the pipeline fetches the original from the blob store into its scratch directory
// once) except the upload-time header check, which reads the first bytes of the upload.
//
//   image-probe.ts   header read: format, displayed size, frames, colour space, EXIF; pixel limit
//   image-open.ts    openImage: the one normalising decode every step and /img builds on
//   image-header.ts  pure rules over a header (pixel budget, display size, colour-space word)
//   image-icc.ts     ICC profile description (pure)
//   image-errors.ts  libvips errors -> AppError with a reason a person can act on
//   image-analysis.ts placeholders and hashes from one small decode
//   image-variants.ts eager variants (presets) from one decode
//   image-transform.ts on-demand /img transforms

export { imageErrorToAppError } from './image-errors.js';
export {
  bitsPerSample,
  colorSpaceName,
  decodedFrames,
  decodedPixels,
  displaySize,
  type ImageHeader,
  isAnimated,
  pixelLimitError,
} from './image-header.js';
export { type OpenImageOptions, openImage } from './image-open.js';
export {
  checkImagePrefix,
  type ImageLimits,
  type ImageProbe,
  MAX_SVG_BYTES,
  type ProbeImageOptions,
  probeImage,
  readHeaderFromPrefix,
} from './image-probe.js';
