// JSON schemas shared by route validation and the OpenAPI document at /docs.

export const problemSchema = {
  $id: 'Problem',
  type: 'object',
  description: 'RFC 9457 problem details with a stable machine-readable `code`.',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    code: { type: 'string', examples: ['UPLOAD_TOO_LARGE', 'MEDIA_UNSUPPORTED', 'ASSET_NOT_FOUND'] },
    instance: { type: 'string' },
  },
  required: ['type', 'title', 'status', 'detail', 'code'],
} as const;

const nullableString = { type: ['string', 'null'] } as const;
const nullableNumber = { type: ['number', 'null'] } as const;

export const assetSchema = {
  $id: 'Asset',
  type: 'object',
  additionalProperties: true,
  properties: {
    id: { type: 'string', examples: ['ast_01JD3Q6Z8X5M4V7C2B9N0P1R2S'] },
    projectId: { type: 'string' },
    filename: { type: 'string' },
    type: { type: 'string', enum: ['image', 'video', 'audio'] },
    mimeType: { type: 'string' },
    size: { type: 'integer' },
    sha256: { type: 'string' },
    status: { type: 'string', enum: ['processing', 'ready', 'failed'] },
    error: { ...nullableString, description: 'Why processing failed, in words a person can act on.' },
    width: { ...nullableNumber, description: 'As displayed (after EXIF orientation).' },
    height: nullableNumber,
    format: nullableString,
    blurhash: nullableString,
    perceptualHash: {
      ...nullableString,
      description: '64-bit DCT perceptual hash (16 hex digits) of an image; see /similar.',
    },
    durationSec: nullableNumber,
    versionNumber: { type: 'integer' },
    uploadedAt: { type: 'string', format: 'date-time' },
    processedAt: { ...nullableString, format: 'date-time' },
    hasAlpha: { type: ['boolean', 'null'], description: 'Images only.' },
    animated: { type: ['boolean', 'null'], description: 'An animated GIF/WebP (images only).' },
    frames: { ...nullableNumber, description: 'Animation frames; 1 for still images.' },
    colorSpace: {
      ...nullableString,
      description: 'Of the original: srgb, p3, adobe-rgb, prophoto, rec2020, rgb, cmyk, grey, lab.',
    },
    exif: {
      type: ['object', 'null'],
      additionalProperties: true,
      description:
        'Curated EXIF: make, model, lens, exposureTime, exposureTimeText, fNumber, iso, focalLength, focalLength35mm, takenAt; gps only when the project has exposeGps.',
    },
    dominantColor: { ...nullableString, examples: ['#3a6b8c'] },
    thumbhash: { ...nullableString, description: 'ThumbHash, base64.' },
    lqip: { ...nullableString, description: 'A tiny blurred preview as a data: URL (under 1 kB).' },
    variants: {
      type: 'array',
      description: 'Eager variants (ASSETPIPE_IMAGE_PRESETS) with their API URL and a ready-made /img URL.',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string', examples: ['thumb.webp'] },
          preset: { type: 'string' },
          format: { type: 'string' },
          contentType: nullableString,
          width: nullableNumber,
          height: nullableNumber,
          size: nullableNumber,
          url: { type: 'string' },
          src: { ...nullableString, description: 'Signed /img URL (no API key needed).' },
        },
      },
    },
    srcset: { ...nullableString, description: 'For <img srcset>: the variants of one format by width.' },
    hls: {
      ...nullableString,
      description:
        'Video/audio: URL of the HLS master playlist (signed per-version prefix, no API key needed; expires at the end of the next UTC day for private projects).',
      examples: ['/stream/ast_01JD3Q6Z8X5M4V7C2B9N0P1R2S/1/1a2b3c4d.x.SIG/master.m3u8'],
    },
    dash: { ...nullableString, description: 'Video/audio: URL of the DASH MPD over the same CMAF segments.' },
    poster: {
      type: ['object', 'null'],
      description:
        'Video: a representative frame (not black or blank) as JPEG and WebP; its BlurHash is `blurhash`.',
      properties: { jpeg: nullableString, webp: nullableString },
    },
    storyboard: {
      type: ['object', 'null'],
      description:
        'Video: WebVTT whose cues point into the sprite sheets with #xywh= (for scrubbing previews).',
      properties: { vtt: nullableString, sheets: { type: 'array', items: nullableString } },
    },
    download: {
      ...nullableString,
      description: 'Video: progressive MP4 (faststart) of the largest rung up to 720p.',
    },
    ladder: {
      type: ['object', 'null'],
      additionalProperties: true,
      description:
        'Video/audio: the ABR ladder chosen for the current version, with measured BANDWIDTH per rung and the reasons for every choice.',
      properties: {
        kind: { type: 'string', enum: ['video-and-audio', 'video-only', 'audio-only'] },
        bitrateMode: { ...nullableString, enum: ['automated', 'fixed', null] },
        complexityBpp: nullableNumber,
        segmentDurationSec: { type: 'number' },
        rungs: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              id: { type: 'string', examples: ['h264-720p'] },
              codec: { type: 'string', enum: ['h264', 'hevc', 'av1'] },
              width: { type: 'integer' },
              height: { type: 'integer' },
              frameRate: { type: 'number' },
              crf: { type: 'number' },
              maxrateBps: { type: 'integer' },
              bandwidth: nullableNumber,
              averageBandwidth: nullableNumber,
              codecs: nullableString,
            },
          },
        },
        audio: {
          type: ['object', 'null'],
          properties: {
            codec: { type: 'string' },
            channels: { type: 'integer' },
            bitrateBps: { type: 'integer' },
            downmixFromChannels: nullableNumber,
          },
        },
        reasons: { type: 'array', items: { type: 'string' } },
      },
    },
    metadata: { type: 'object', additionalProperties: true },
    mediaId: {
      ...nullableString,
      description: "The client's stable id; later uploads with it become new versions",
    },
    tags: { type: 'array', items: { type: 'string' } },
    duplicateOf: { ...nullableString, description: 'The asset whose bytes this one repeats, if any' },
    deletedAt: { ...nullableString, format: 'date-time' },
    renditions: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          contentType: { type: 'string' },
          size: { type: 'integer' },
          width: nullableNumber,
          height: nullableNumber,
          url: { type: 'string' },
        },
      },
    },
    links: {
      type: 'object',
      additionalProperties: true,
      properties: {
        self: { type: 'string' },
        original: { type: 'string' },
        runs: { type: 'string' },
        versions: { type: 'string' },
      },
    },
  },
} as const;

export const runSchema = {
  $id: 'Run',
  type: 'object',
  properties: {
    id: { type: 'string' },
    assetId: { type: 'string' },
    version: { type: 'integer' },
    kind: { type: 'string' },
    status: { type: 'string', enum: ['queued', 'running', 'succeeded', 'failed'] },
    error: nullableString,
    attempts: { type: 'integer' },
    progress: {
      type: 'integer',
      minimum: 0,
      maximum: 100,
      description: 'Per cent done; a video reports its encode from ffmpeg -progress.',
    },
    createdAt: { type: 'string' },
    startedAt: nullableString,
    finishedAt: nullableString,
    durationMs: nullableNumber,
    steps: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          attempt: { type: 'integer' },
          status: { type: 'string', enum: ['running', 'succeeded', 'failed', 'skipped', 'abandoned'] },
          startedAt: { type: 'string' },
          finishedAt: nullableString,
          durationMs: nullableNumber,
          error: nullableString,
          output: { type: ['object', 'null'], additionalProperties: true },
        },
      },
    },
  },
} as const;

export const problemResponses = {
  400: { $ref: 'Problem#' },
  404: { $ref: 'Problem#' },
} as const;
