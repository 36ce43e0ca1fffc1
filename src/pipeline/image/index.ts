import type { PipelineDefinition } from '../step.js';
import { placeholderStep } from './placeholder.js';
import { probeStep } from './probe.js';
import { thumbnailStep } from './thumbnail.js';

function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** The image pipeline reads like its spec: probe -> placeholder -> thumbnail (then publish). */
export const imagePipeline: PipelineDefinition = {
  kind: 'image',
  steps: [probeStep, placeholderStep, thumbnailStep],
  facts(outputs) {
    const probe = outputs.probe ?? {};
    const placeholder = outputs.placeholder ?? {};
    return {
      width: num(probe.width),
      height: num(probe.height),
      format: typeof probe.format === 'string' ? probe.format : null,
      blurhash: typeof placeholder.blurhash === 'string' ? placeholder.blurhash : null,
      extra: { hasAlpha: probe.hasAlpha === true, pages: num(probe.pages) ?? 1 },
    };
  },
};
