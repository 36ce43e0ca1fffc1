import { encode } from 'blurhash';
import { decodeSmallRgba } from '../../media/image.js';
import type { StepDefinition } from '../step.js';

/** BlurHash components: 4x3 suits landscape and portrait alike and stays ~28 characters. */
export const BLURHASH_COMPONENTS = { x: 4, y: 3 } as const;

// BlurHash cost grows with pixels x components; 32 px is plenty for a 4x3 hash (~2 ms).
const PLACEHOLDER_SIDE = 32;

/** BlurHash from one decode of a small, upright downscale (this is also the full-decode check). */
export const placeholderStep: StepDefinition = {
  name: 'placeholder',
  async run(ctx) {
    const pixels = await decodeSmallRgba(await ctx.sourcePath(), PLACEHOLDER_SIDE, ctx.limits);
    const blurhash = encode(
      pixels.data,
      pixels.width,
      pixels.height,
      BLURHASH_COMPONENTS.x,
      BLURHASH_COMPONENTS.y,
    );
    return { blurhash };
  },
};
