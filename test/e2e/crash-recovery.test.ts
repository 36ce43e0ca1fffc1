import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type AssetRecord,
  countByStatus,
  filesUnder,
  getJson,
  getRuns,
  listAllAssets,
  uploadAll,
  waitUntilSettled,
} from '../helpers/api.js';
import { ensureBuilt, ProcessGroup, waitFor } from '../helpers/cli.js';
import { type GeneratedImage, noiseJpegs } from '../helpers/noise-images.js';
import { tempDir } from '../helpers/tmp.js';

const COUNT = 50;
const STEPS = ['probe', 'placeholders', 'variants', 'publish'];
// Two cheap variants: AVIF (in the default presets) on 50 noise photos would take minutes on two
// cores, and this test is about resuming runs, not about encoders.
const PRESETS = 'thumb=320:webp;preview=640:jpeg';
const VARIANTS = ['thumb.webp', 'preview.jpeg'];

describe('crash recovery: kill -9 in the middle of processing, then restart on the same data', () => {
  const procs = new ProcessGroup();
  let parent: { dir: string; cleanup: () => Promise<void> };
  let images: GeneratedImage[];

  beforeAll(async () => {
    await ensureBuilt();
    parent = await tempDir('assetpipe-e2e-crash-');
    // Large noise JPEGs, so that one worker needs several seconds for all of them.
    images = await noiseJpegs(COUNT, 1600, 1200, { quality: 85 });
  }, 300_000);

  afterEach(async () => {
    await procs.killAll();
  });

  afterAll(async () => {
    await procs.killAll();
    await parent?.cleanup();
  });

  it('finishes every asset exactly once after a SIGKILL and a restart', async () => {
    const data = join(parent.dir, 'data');
    const env = { ASSETPIPE_JOB_LEASE_MS: '2000', ASSETPIPE_IMAGE_PRESETS: PRESETS };
    const first = await procs.serve(data, { cwd: parent.dir, env, args: ['--workers', '1'] });

    const created = await uploadAll(first.baseUrl, images, 10);
    const ids = new Set(created.map((a) => a.id));
    expect(ids.size).toBe(COUNT);

    // Kill as soon as something is ready, while most of the work is still to do.
    const readyAtKill = await waitFor(
      async () => {
        const ready = await countByStatus(first.baseUrl, 'ready');
        return ready >= 1 ? ready : undefined;
      },
      60_000,
      'the first asset to become ready',
      50,
    );
    if (readyAtKill >= COUNT) {
      throw new Error(
        `all ${COUNT} assets were ready before the kill: the test would prove nothing; make the images larger`,
      );
    }
    first.child.signal('SIGKILL');
    expect(await first.child.waitForExit(10_000)).toEqual({ code: null, signal: 'SIGKILL' });

    const second = await procs.serve(data, {
      cwd: parent.dir,
      env,
      args: ['--workers', '1'],
      port: first.port,
    });
    const settled = await waitUntilSettled(
      second.baseUrl,
      COUNT,
      150_000,
      `all ${COUNT} assets to settle after the restart`,
    );
    const notReady = settled
      .filter((a) => a.status !== 'ready')
      .map((a) => `${a.id}: ${a.status} ${a.error}`);
    expect(notReady).toEqual([]);

    // The catalog, paginated.
    const listed = await listAllAssets(second.baseUrl, '', 7);
    expect(listed).toHaveLength(COUNT);
    expect(new Set(listed.map((a) => a.id))).toEqual(ids);
    expect(listed.every((a) => a.status === 'ready')).toBe(true);

    // Runs and renditions of every asset.
    let resumedRuns = 0;
    for (const id of ids) {
      const runs = await getRuns(second.baseUrl, id);
      expect(runs, id).toHaveLength(1);
      const [run] = runs;
      expect(run!.status, id).toBe('succeeded');
      const succeeded = run!.steps.filter((s) => s.status === 'succeeded').map((s) => s.name);
      expect([...succeeded].sort(), `${id}: each step succeeded exactly once`).toEqual([...STEPS].sort());
      // A crash can only leave abandoned steps behind, never failed or still-running ones.
      const others = run!.steps.filter((s) => s.status !== 'succeeded');
      for (const step of others) expect(step.status, `${id} ${step.name}`).toBe('abandoned');
      if (run!.attempts > 1 || others.length > 0) resumedRuns++;

      const { status, body } = await getJson<AssetRecord>(`${second.baseUrl}/v1/assets/${id}`);
      expect(status).toBe(200);
      expect(body.renditions.map((r) => r.name).sort(), id).toEqual([...VARIANTS].sort());
    }

    // The restarted server did real work: proof that the kill landed before the end.
    second.child.signal('SIGTERM');
    expect(await second.child.waitForExit(30_000), second.child.dump()).toEqual({ code: 0, signal: null });
    const startedAfterRestart = second.child.logs().filter((l) => l.msg === 'run started');
    expect(
      startedAfterRestart.length,
      `runs started after the restart (${readyAtKill} were ready when the first server was killed)`,
    ).toBeGreaterThanOrEqual(1);
    console.info(
      `crash-recovery: ${readyAtKill}/${COUNT} ready at kill; ${startedAfterRestart.length} runs started after the restart; ${resumedRuns} runs were resumed mid-way`,
    );

    // On disk: one original and one file per variant per asset, nothing more, nothing outside the data dir.
    const blobs = join(data, 'blobs', 'objects');
    expect((await readdir(blobs)).sort()).toEqual(['derived', 'originals']);
    const originals = await filesUnder(join(blobs, 'originals'));
    expect(originals).toHaveLength(ids.size);
    const derived = await filesUnder(join(blobs, 'derived'));
    expect(derived).toEqual([...ids].flatMap((id) => VARIANTS.map((v) => `${id}/v1/variants/${v}`)).sort());
    expect(await readdir(parent.dir)).toEqual(['data']);
    // The killed process's scratch copy was swept by the restarted one, which has finished its own.
    expect(await filesUnder(join(data, 'scratch'))).toEqual([]);
  }, 240_000);
});
