import type { PipelineDefinition } from '../step.js';
import { encodeStep } from './encode.js';
import { videoFacts } from './facts.js';
import { planStep } from './plan.js';
import { posterStep } from './poster.js';
import { probeStep } from './probe.js';
import { storyboardStep } from './storyboard.js';

// probe -> plan (complexity probe + ladder) -> encode (one piece, or chunk jobs joined) + package
// + validate -> poster -> storyboard -> publish. Audio takes the same road: its plan is audio-only,
// and the poster and storyboard steps have nothing to do.
const steps = [probeStep, planStep, encodeStep, posterStep, storyboardStep];

export const videoPipeline: PipelineDefinition = { kind: 'video', steps, facts: videoFacts };
export const audioPipeline: PipelineDefinition = { kind: 'audio', steps, facts: videoFacts };
