import type { MediaType } from './asset.js';

/** What happens when an upload's bytes equal an asset already in the project. */
export type DuplicatePolicy = 'reject' | 'keep' | 'link';
export const DUPLICATE_POLICIES: readonly DuplicatePolicy[] = ['reject', 'keep', 'link'];

export type Visibility = 'public' | 'private';

/** Per-project limits; `null` means "no project limit" (the server-wide limits still apply). */
export interface ProjectLimits {
  maxUploadBytes: number | null;
  maxTotalBytes: number | null;
  maxVideoDurationSec: number | null;
  allowedTypes: MediaType[] | null;
}

export interface Project {
  /** Chosen by the client: 1-64 letters, digits, `-`, `_`. */
  id: string;
  name: string;
  visibility: Visibility;
  duplicatePolicy: DuplicatePolicy;
  limits: ProjectLimits;
  /** GPS coordinates from EXIF are kept on the asset record only when true. @default false */
  exposeGps: boolean;
  createdAt: string;
  updatedAt: string;
}

export const DEFAULT_PROJECT_ID = 'default';
