import sharp from 'sharp';

// libvips caches operations for reuse across images; a media server sees each image once, so the
// cache only holds memory. Concurrency is bounded by our own worker count instead. Every module of
// src/media that calls sharp imports it from here, so the setting is applied before the first call.
sharp.cache(false);

export { sharp };
