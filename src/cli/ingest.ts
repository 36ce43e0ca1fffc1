import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import type { Container } from '../container.js';
import type { Asset } from '../domain/asset.js';
import { errorMessage, isAppError } from '../errors.js';
import { assetResource } from '../http/resources.js';
import { validateProjectId } from '../services/asset-service.js';
import { startWorkers } from '../workers.js';
import { expandPaths } from './files.js';
import { ProgressBar } from './progress.js';

export interface IngestOptions {
  paths: string[];
  project?: string | undefined;
  wait: boolean;
  json: boolean;
  /** Process in this process while waiting (otherwise another `serve`/`worker` must). */
  runWorkers: boolean;
  pollMs?: number;
}

interface Line {
  file: string;
  asset?: Asset;
  status: 'processing' | 'ready' | 'failed';
  error?: string;
  code?: string;
}

/**
 * Pushes local files through the same upload path and pipeline as the HTTP API. Returns the exit
 * code: 0 only if every file ended `ready` (or, without waiting, was accepted).
 */
export async function runIngest(container: Container, options: IngestOptions): Promise<number> {
  const projectId = validateProjectId(options.project);
  const files = await expandPaths(options.paths);
  if (files.length === 0) {
    process.stderr.write('assetpipe ingest: no files found\n');
    return 1;
  }
  const workers =
    options.wait && options.runWorkers && container.config.workers > 0 ? startWorkers(container) : undefined;
  const bar = new ProgressBar(process.stderr, files.length, options.wait ? 'processing' : 'uploading');
  const lines: Line[] = [];
  let finished = 0;
  let failed = 0;

  const print = (line: Line) => {
    bar.clear();
    if (options.json) {
      const record = line.asset
        ? { file: line.file, ...assetResource(line.asset) }
        : { file: line.file, status: line.status, error: line.error, code: line.code };
      process.stdout.write(`${JSON.stringify(record)}\n`);
    } else {
      const mark = line.status === 'ready' ? 'ok  ' : line.status === 'failed' ? 'FAIL' : '... ';
      const detail =
        line.status === 'failed'
          ? line.error
          : line.asset?.width
            ? `${line.asset.id} ${line.asset.width}x${line.asset.height}`
            : line.asset?.id;
      process.stdout.write(`${mark} ${line.file}  ${detail ?? ''}\n`);
    }
  };
  const settle = (line: Line) => {
    finished++;
    if (line.status === 'failed') failed++;
    print(line);
    bar.update(finished, failed ? `${failed} failed` : '', true);
  };

  try {
    for (const file of files) {
      try {
        const asset = await container.assets.ingest(createReadStream(file), {
          filename: basename(file),
          projectId,
        });
        const line: Line = { file, asset, status: 'processing' };
        lines.push(line);
        if (!options.wait) settle(line);
      } catch (err) {
        const line: Line = {
          file,
          status: 'failed',
          error: errorMessage(err),
          ...(isAppError(err) ? { code: err.code } : {}),
        };
        lines.push(line);
        settle(line);
      }
      bar.update(finished, failed ? `${failed} failed` : '');
    }

    if (options.wait) {
      const pending = new Set(lines.filter((l) => l.status === 'processing'));
      while (pending.size > 0) {
        for (const line of pending) {
          const asset = line.asset ? await container.catalog.getAsset(line.asset.id) : undefined;
          if (!asset) continue;
          if (asset.status === 'processing') continue;
          pending.delete(line);
          settle({
            file: line.file,
            asset,
            status: asset.status,
            ...(asset.error ? { error: asset.error } : {}),
          });
        }
        if (pending.size > 0) await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 250));
      }
    }
  } finally {
    bar.done();
    await workers?.stop();
  }
  if (!options.json) {
    process.stderr.write(
      options.wait
        ? `${files.length - failed} of ${files.length} ready${failed ? `, ${failed} failed` : ''}\n`
        : `${files.length - failed} of ${files.length} accepted${failed ? `, ${failed} refused` : ''}\n`,
    );
  }
  return failed === 0 ? 0 : 1;
}
