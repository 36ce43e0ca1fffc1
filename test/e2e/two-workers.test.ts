import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { getRuns, uploadAll, waitUntilSettled } from '../helpers/api.js';
import { type CliProcess, ensureBuilt, ProcessGroup } from '../helpers/cli.js';
import { type GeneratedImage, noiseJpegs } from '../helpers/noise-images.js';
import { tempDir } from '../helpers/tmp.js';

const COUNT = 40;

function runsStartedBy(worker: CliProcess): string[] {
  return worker
    .logs()
    .filter((line) => line.msg === 'run started')
    .map((line) => {
      expect(line.pid, 'a run started line carries the worker pid').toBe(worker.pid);
      expect(typeof line.runId).toBe('string');
      return line.runId as string;
    });
}

describe('serve --no-workers with two worker processes on one data dir', () => {
  const procs = new ProcessGroup();
  let parent: { dir: string; cleanup: () => Promise<void> };
  let images: GeneratedImage[];

  beforeAll(async () => {
    await ensureBuilt();
    parent = await tempDir('assetpipe-e2e-workers-');
    images = await noiseJpegs(COUNT, 800, 600);
  }, 300_000);

  afterEach(async () => {
    await procs.killAll();
  });

  afterAll(async () => {
    await procs.killAll();
    await parent?.cleanup();
  });

  it('runs every job exactly once, spread over both workers', async () => {
    const data = join(parent.dir, 'data');
    const server = await procs.serve(data, { cwd: parent.dir, args: ['--no-workers'] });
    expect(server.child.stderr).toContain('workers: 0');
    const workers = [
      await procs.worker(data, { cwd: parent.dir, args: ['--workers', '2'] }),
      await procs.worker(data, { cwd: parent.dir, args: ['--workers', '2'] }),
    ];

    const created = await uploadAll(server.baseUrl, images, 8);
    const settled = await waitUntilSettled(server.baseUrl, COUNT, 120_000);
    expect(settled.filter((a) => a.status !== 'ready').map((a) => `${a.id}: ${a.status} ${a.error}`)).toEqual(
      [],
    );
    expect(new Set(settled.map((a) => a.id))).toEqual(new Set(created.map((a) => a.id)));

    const runIds: string[] = [];
    for (const asset of created) {
      const runs = await getRuns(server.baseUrl, asset.id);
      expect(runs, asset.id).toHaveLength(1);
      expect(runs[0]!.status).toBe('succeeded');
      runIds.push(runs[0]!.id);
    }
    expect(new Set(runIds).size).toBe(COUNT);

    // Stop the workers cleanly so that every log line is flushed before reading.
    for (const worker of workers) worker.signal('SIGTERM');
    for (const worker of workers) {
      expect(await worker.waitForExit(30_000), worker.dump()).toEqual({ code: 0, signal: null });
    }
    // The API process itself never ran a job.
    expect(server.child.logs().filter((l) => l.msg === 'run started')).toEqual([]);

    const [a, b] = workers.map(runsStartedBy) as [string[], string[]];
    console.info(`two-workers: worker 1 started ${a.length} runs, worker 2 started ${b.length}`);
    const seen = new Map<string, number>();
    for (const runId of [...a, ...b]) seen.set(runId, (seen.get(runId) ?? 0) + 1);
    const twice = [...seen].filter(([, n]) => n > 1).map(([runId, n]) => `${runId} x${n}`);
    expect(twice, 'runs started more than once').toEqual([]);
    expect(a.length, `worker 1 started ${a.length} runs, worker 2 ${b.length}`).toBeGreaterThan(0);
    expect(b.length, `worker 1 started ${a.length} runs, worker 2 ${b.length}`).toBeGreaterThan(0);
    expect(a.length + b.length).toBe(COUNT);
    expect(new Set(seen.keys())).toEqual(new Set(runIds));
  }, 240_000);
});
