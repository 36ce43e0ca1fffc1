import type { MediaType } from '../domain/asset.js';
import { imagePipeline } from './image/index.js';
import type { PipelineDefinition } from './step.js';
import { audioPipeline, videoPipeline } from './video/index.js';

/** Which steps process which media type. */
export const PIPELINES: Record<MediaType, PipelineDefinition> = {
  image: imagePipeline,
  video: videoPipeline,
  audio: audioPipeline,
};
