import { randomBytes } from 'node:crypto';
import { readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** What a completed upload became, kept next to the tus store so every later answer names the same asset. */
export interface Completion {
  assetId: string;
  /** The asset's status when the upload completed (GET /v1/assets/{id} has the current one). */
  status: string;
  completedAt: string;
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

/**
 * Completion records: `<dataDir>/uploads/tus-completed/<uploadId>.json`, written after the finish
 * hook returned, read before it is called again. Plus single-flight within the process, because
 * @tus/server calls `onUploadFinish` outside its upload lock: two requests that both find the upload
 * complete (the last PATCH and a repeated empty one) would otherwise call the hook concurrently.
 */
export class Completions {
  private readonly inflight = new Map<string, Promise<Completion>>();

  constructor(
    readonly directory: string,
    private readonly onWriteError: (err: unknown, uploadId: string) => void,
  ) {}

  private file(uploadId: string): string {
    return join(this.directory, `${uploadId}.json`);
  }

  async read(uploadId: string): Promise<Completion | undefined> {
    try {
      return JSON.parse(await readFile(this.file(uploadId), 'utf8')) as Completion;
    } catch (err) {
      if (isMissing(err) || err instanceof SyntaxError) return undefined;
      throw err;
    }
  }

  private async write(uploadId: string, completion: Completion): Promise<void> {
    const tmp = `${this.file(uploadId)}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(tmp, JSON.stringify(completion));
    await rename(tmp, this.file(uploadId));
  }

  /** The upload's asset: recorded, being created by another request, or created now by `finish`. */
  complete(uploadId: string, finish: () => Promise<{ id: string; status: string }>): Promise<Completion> {
    const running = this.inflight.get(uploadId);
    if (running) return running;
    const promise = (async () => {
      const recorded = await this.read(uploadId);
      if (recorded) return recorded;
      const asset = await finish();
      const completion = { assetId: asset.id, status: asset.status, completedAt: new Date().toISOString() };
      // The asset exists either way; without the record a repeat asks the (idempotent) hook again.
      await this.write(uploadId, completion).catch((err: unknown) => this.onWriteError(err, uploadId));
      return completion;
    })().finally(() => {
      if (this.inflight.get(uploadId) === promise) this.inflight.delete(uploadId);
    });
    this.inflight.set(uploadId, promise);
    return promise;
  }

  /** Removes records whose upload is gone (expired or terminated), and stale temp files. */
  async sweep(uploadExists: (uploadId: string) => Promise<boolean>, olderThanMs: number): Promise<void> {
    const names = await readdir(this.directory).catch((err: unknown) => {
      if (isMissing(err)) return [] as string[];
      throw err;
    });
    for (const name of names) {
      const path = join(this.directory, name);
      if (name.endsWith('.tmp')) {
        const info = await stat(path).catch(() => undefined);
        if (info && Date.now() - info.mtimeMs > olderThanMs) await rm(path, { force: true });
        continue;
      }
      const uploadId = name.endsWith('.json') ? name.slice(0, -'.json'.length) : undefined;
      if (uploadId && !this.inflight.has(uploadId) && !(await uploadExists(uploadId))) {
        await rm(path, { force: true });
      }
    }
  }
}
