import { createHash } from 'node:crypto';
import type { JobState, JobType } from 'bullmq';
import { JOB_STATUSES, type JobStatus } from './job-queue.js';

// How the port's ids, kinds and statuses map onto BullMQ's: pure, so the rules are tested alone.

/** The state names counted by `counts()`, and what the port calls them. */
export const COUNTED: ReadonlyArray<[JobType, JobStatus]> = [
  ['waiting', 'waiting'],
  ['prioritized', 'waiting'],
  ['waiting-children', 'waiting'],
  ['delayed', 'delayed'],
  ['active', 'active'],
  ['completed', 'completed'],
  ['failed', 'dead'],
];

/** BullMQ refuses ':' in queue names (it separates the parts of its Redis keys). */
export function checkKind(kind: string): void {
  if (typeof kind !== 'string' || kind.length === 0) throw new TypeError('kind must be a non-empty string');
  if (kind.includes(':'))
    throw new TypeError(`kind must not contain ":" (BullMQ queue names), got "${kind}"`);
}

/**
 * The port's job id is `<kind>/<BullMQ job id>`, so `getJob` knows which queue to ask. BullMQ job
 * ids are ours: `job_<ulid>` (newId) or `key_<base64url sha-256>` for a deduplication key; neither
 * holds '/' (so a kind may), ':' (refused by BullMQ in custom ids) or is an integer (also refused).
 */
export function portId(kind: string, bullId: string): string {
  return `${kind}/${bullId}`;
}

export function parsePortId(id: string): { kind: string; bullId: string } | undefined {
  if (typeof id !== 'string') return undefined;
  const slash = id.lastIndexOf('/');
  if (slash <= 0 || slash === id.length - 1) return undefined;
  const kind = id.slice(0, slash);
  if (kind.includes(':')) return undefined;
  return { kind, bullId: id.slice(slash + 1) };
}

/** The job id that makes a deduplication key unique per kind: BullMQ keeps one job per id. */
export function keyedJobId(key: string): string {
  return `key_${createHash('sha256').update(key).digest('base64url')}`;
}

export function statusOf(state: JobState | 'unknown'): JobStatus | undefined {
  switch (state) {
    case 'waiting':
    case 'prioritized':
    case 'waiting-children':
      return 'waiting';
    case 'delayed':
      return 'delayed';
    case 'active':
      return 'active';
    case 'completed':
      return 'completed';
    case 'failed':
      return 'dead';
    default:
      return undefined;
  }
}

export function emptyCounts(): Record<JobStatus, number> {
  return Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
}
