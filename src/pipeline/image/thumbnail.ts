import { renderWebpThumbnail } from '../../media/image.js';
import type { StepDefinition } from '../step.js';

export const THUMBNAIL = { name: 'thumbnail', maxSide: 320, quality: 75 } as const;

/** A 320 px WebP preview, stored as the `thumbnail` rendition. */
export const thumbnailStep: StepDefinition = {
  name: 'thumbnail',
  async run(ctx) {
    const image = await renderWebpThumbnail(
      await ctx.sourcePath(),
      { maxSide: THUMBNAIL.maxSide, quality: THUMBNAIL.quality },
      ctx.limits,
    );
    const stored = await ctx.writeOutput({
      name: THUMBNAIL.name,
      body: image.data,
      contentType: image.contentType,
      width: image.width,
      height: image.height,
    });
    return { key: stored.key, size: stored.size, width: image.width, height: image.height };
  },
};
