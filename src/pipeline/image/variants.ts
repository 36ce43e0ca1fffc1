import { planVariants, renderVariants } from '../../media/image-variants.js';
import type { StepDefinition } from '../step.js';
import { imageSource } from './probe-output.js';

/**
 * Every configured preset in each of its formats (`thumb.webp`, `preview.avif`...), never enlarged,
 * stored as renditions. Animated sources keep their animation in WebP variants only; AVIF, JPEG
 * and PNG variants show the first frame (see `keepsAnimation`).
 */
export const variantsStep: StepDefinition = {
  name: 'variants',
  async run(ctx) {
    const rendered = await renderVariants({
      path: await ctx.sourcePath(),
      probe: imageSource(ctx.outputs.probe),
      limits: ctx.limits,
      variants: planVariants(ctx.settings.imagePresets),
    });
    const variants = [];
    for (const variant of rendered) {
      const stored = await ctx.writeOutput({
        name: variant.name,
        body: variant.data,
        contentType: variant.contentType,
        width: variant.width,
        height: variant.height,
      });
      variants.push({
        name: variant.name,
        preset: variant.preset,
        format: variant.format,
        width: variant.width,
        height: variant.height,
        size: stored.size,
        contentType: variant.contentType,
      });
    }
    return { variants };
  },
};
