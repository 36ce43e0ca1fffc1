import type { Catalog, ProjectPatch } from '../catalog/catalog.js';
import type { Principal } from '../domain/api-key.js';
import type { MediaType } from '../domain/asset.js';
import {
  DEFAULT_PROJECT_ID,
  type DuplicatePolicy,
  type Project,
  type ProjectLimits,
  type Visibility,
} from '../domain/project.js';
import { AppError } from '../errors.js';

const PROJECT_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function validateProjectId(value: string | undefined | null): string {
  if (value === undefined || value === null || value === '') return DEFAULT_PROJECT_ID;
  if (!PROJECT_ID.test(value)) {
    throw new AppError(
      'PROJECT_INVALID',
      'projectId must be 1-64 letters, digits, "-" or "_", starting with a letter or digit.',
    );
  }
  return value;
}

function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

export interface NewProjectInput {
  id: string;
  name?: string | undefined;
  visibility?: Visibility | undefined;
  duplicatePolicy?: DuplicatePolicy | undefined;
  limits?: Partial<ProjectLimits> | undefined;
  /** Keep EXIF GPS coordinates on the project's asset records. @default false */
  exposeGps?: boolean | undefined;
}

/**
 * `exposeGps` is a privacy switch: anything but a real boolean (a `"false"` string from a form or a
 * CLI flag would be truthy) is refused rather than guessed.
 */
function checkExposeGps(value: unknown): void {
  if (value === undefined || typeof value === 'boolean') return;
  throw new AppError(
    'VALIDATION_FAILED',
    `exposeGps must be true or false (JSON boolean), got ${JSON.stringify(value)}.`,
  );
}

/** Projects, what a key may see of them, and their limits. */
export class ProjectService {
  private readonly changeListeners: ((projectId: string) => void)[] = [];

  constructor(private readonly options: { catalog: Catalog; maxUploadBytes: number; now?: () => Date }) {}

  /** Calls `listener` after a project's settings changed through this process (cache invalidation). */
  onChange(listener: (projectId: string) => void): void {
    this.changeListeners.push(listener);
  }

  private iso(): string {
    return (this.options.now?.() ?? new Date()).toISOString();
  }

  /** A project by id, whoever asks (internal use: the caller's rights were checked before). */
  async get(id: string): Promise<Project> {
    const project = await this.options.catalog.getProject(id);
    if (!project) throw new AppError('PROJECT_NOT_FOUND', `No project ${JSON.stringify(id)}.`);
    return project;
  }

  /** A project the caller may read; others' projects look like they do not exist. */
  async readable(principal: Principal, id: string): Promise<Project> {
    const project = await this.options.catalog.getProject(id);
    if (!project || (principal.projectId !== null && principal.projectId !== id)) {
      throw new AppError('PROJECT_NOT_FOUND', `No project ${JSON.stringify(id)}.`);
    }
    return project;
  }

  /** The project an upload goes to, checked against the caller's binding. */
  async writable(principal: Principal, requested: string | undefined | null): Promise<Project> {
    const id = requested ? validateProjectId(requested) : (principal.projectId ?? DEFAULT_PROJECT_ID);
    if (principal.projectId !== null && principal.projectId !== id) {
      throw new AppError('FORBIDDEN', `This API key is bound to project "${principal.projectId}".`);
    }
    const project = await this.options.catalog.getProject(id);
    if (!project)
      throw new AppError(
        'PROJECT_NOT_FOUND',
        `No project ${JSON.stringify(id)}; create it first (POST /v1/projects).`,
      );
    return project;
  }

  /** The largest upload this project accepts (its own limit or the server's). */
  maxUploadBytes(project: Project): number {
    const own = project.limits.maxUploadBytes;
    return own === null ? this.options.maxUploadBytes : Math.min(own, this.options.maxUploadBytes);
  }

  /** The 413 for an upload over the project's (or the server's) size limit, naming that limit. */
  tooLarge(project: Project, size?: number): AppError {
    const max = this.maxUploadBytes(project);
    const which =
      project.limits.maxUploadBytes !== null && project.limits.maxUploadBytes <= this.options.maxUploadBytes
        ? `project "${project.id}" limit maxUploadBytes`
        : 'server limit ASSETPIPE_MAX_UPLOAD_BYTES';
    const what =
      size === undefined ? 'The upload is larger than' : `The upload is ${formatBytes(size)}, more than`;
    return new AppError('UPLOAD_TOO_LARGE', `${what} the ${which} (${formatBytes(max)}).`);
  }

  /** Refuses an upload of `size` bytes before a byte is stored, when its size is known. */
  async checkIncoming(project: Project, size: number | undefined): Promise<void> {
    if (size === undefined) return;
    if (size > this.maxUploadBytes(project)) throw this.tooLarge(project, size);
    await this.checkQuota(project, size);
  }

  /** Re-labels the blob store's byte-limit error with the limit that applied. */
  explainTooLarge<T>(project: Project, work: Promise<T>): Promise<T> {
    return work.catch((err: unknown) => {
      throw err instanceof AppError && err.code === 'UPLOAD_TOO_LARGE' ? this.tooLarge(project) : err;
    });
  }

  async checkQuota(project: Project, addBytes: number): Promise<void> {
    const quota = project.limits.maxTotalBytes;
    if (quota === null) return;
    const usage = await this.options.catalog.projectUsage(project.id);
    if (usage.bytes + addBytes > quota) {
      throw new AppError(
        'QUOTA_EXCEEDED',
        `Project "${project.id}" would exceed its storage quota maxTotalBytes (${formatBytes(quota)}): it holds ${formatBytes(usage.bytes)} and this upload is ${formatBytes(addBytes)}.`,
      );
    }
  }

  checkType(project: Project, type: MediaType): void {
    const allowed = project.limits.allowedTypes;
    if (allowed !== null && !allowed.includes(type)) {
      throw new AppError(
        'TYPE_NOT_ALLOWED',
        `Project "${project.id}" accepts only ${allowed.join(', ')} (limit allowedTypes); this file is ${type === 'image' ? 'an' : 'a'} ${type}.`,
      );
    }
  }

  async list(principal: Principal): Promise<Project[]> {
    const all = await this.options.catalog.listProjects();
    return principal.projectId === null ? all : all.filter((p) => p.id === principal.projectId);
  }

  async create(input: NewProjectInput): Promise<Project> {
    const id = validateProjectId(input.id);
    checkExposeGps(input.exposeGps);
    const now = this.iso();
    return this.options.catalog.createProject({
      id,
      name: input.name?.trim() || id,
      visibility: input.visibility ?? 'public',
      duplicatePolicy: input.duplicatePolicy ?? 'link',
      limits: {
        maxUploadBytes: input.limits?.maxUploadBytes ?? null,
        maxTotalBytes: input.limits?.maxTotalBytes ?? null,
        maxVideoDurationSec: input.limits?.maxVideoDurationSec ?? null,
        allowedTypes: input.limits?.allowedTypes ?? null,
      },
      exposeGps: input.exposeGps ?? false,
      createdAt: now,
      updatedAt: now,
    });
  }

  async update(principal: Principal, id: string, patch: ProjectPatch): Promise<Project> {
    checkExposeGps(patch.exposeGps);
    await this.readable(principal, id);
    const updated = await this.options.catalog.updateProject(id, patch, this.iso());
    for (const listener of this.changeListeners) listener(id);
    if (!updated) throw new AppError('PROJECT_NOT_FOUND', `No project ${JSON.stringify(id)}.`);
    return updated;
  }

  async usage(principal: Principal, id: string) {
    await this.readable(principal, id);
    return this.options.catalog.projectUsage(id);
  }
}
