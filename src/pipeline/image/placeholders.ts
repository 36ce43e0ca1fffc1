import { analyseImage } from '../../media/image-analysis.js';
import type { StepDefinition } from '../step.js';
import { imageSource } from './probe-output.js';

/**
 * BlurHash, ThumbHash, LQIP, dominant colour and perceptual hash from one decode of a small
 * downscale of the normalised first frame. That decode also reads every byte of the original, so a
 * damaged file fails here with a reason, before any variant is stored.
 */
export const placeholdersStep: StepDefinition = {
  name: 'placeholders',
  async run(ctx) {
    const analysis = await analyseImage({
      path: await ctx.sourcePath(),
      probe: imageSource(ctx.outputs.probe),
      limits: ctx.limits,
      blurhashComponents: ctx.settings.blurhashComponents,
    });
    return { ...analysis };
  },
};
