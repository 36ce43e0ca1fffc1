import type { PipelineDefinition } from '../step.js';
import { imageFacts } from './facts.js';
import { placeholdersStep } from './placeholders.js';
import { probeStep } from './probe.js';
import { variantsStep } from './variants.js';

/** The image pipeline reads like its spec: probe -> placeholders -> variants (then publish). */
export const imagePipeline: PipelineDefinition = {
  kind: 'image',
  steps: [probeStep, placeholdersStep, variantsStep],
  facts: imageFacts,
};
