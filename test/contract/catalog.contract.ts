import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import type { Catalog, NewAsset } from '../../src/catalog/catalog.js';
import type { Asset, MediaType } from '../../src/domain/asset.js';
import { newId } from '../../src/domain/ids.js';

export interface CatalogUnderTest {
  catalog: Catalog;
  cleanup: () => Promise<void>;
  /**
   * Adds version `version` of an asset with a queued run, as a later "replace the file" feature will,
   * making it the asset's current version (status `processing`). The port has no operation for that
   * yet, so adapters provide it with raw SQL; tests that need it are skipped without it.
   */
  addVersionWithRun?: (assetId: string, version: number, runId: string, at: string) => Promise<void>;
}

const BASE_TIME = Date.UTC(2024, 0, 15, 12, 0, 0);

/** A fixed, caller-controlled clock: the catalog must store exactly what it is given. */
function at(seconds: number): string {
  return new Date(BASE_TIME + seconds * 1000).toISOString();
}

let counter = 0;

function makeAsset(overrides: Partial<NewAsset> = {}): NewAsset {
  counter++;
  const id = overrides.id ?? newId('ast');
  return {
    id,
    projectId: 'prj_default',
    filename: `photo-${counter}.jpg`,
    type: 'image',
    mimeType: 'image/jpeg',
    size: 1000 + counter,
    sha256: createHash('sha256').update(String(counter)).digest('hex'),
    originalKey: `originals/${id}/1`,
    uploadedAt: at(counter),
    ...overrides,
  };
}

const MIME: Record<MediaType, string> = { image: 'image/png', video: 'video/mp4', audio: 'audio/mpeg' };

/**
 * Proves the `Catalog` port contract (src/catalog/catalog.ts) for one adapter. `makeCatalog` returns a
 * fresh, empty, not yet migrated catalog for every test.
 */
export function catalogContract(name: string, makeCatalog: () => Promise<CatalogUnderTest>): void {
  describe(`Catalog contract: ${name}`, () => {
    let subject: CatalogUnderTest;
    let catalog: Catalog;

    beforeEach(async () => {
      subject = await makeCatalog();
      catalog = subject.catalog;
      await catalog.migrate();
    });

    afterEach(async () => {
      await subject.cleanup();
    });

    async function create(overrides: Partial<NewAsset> = {}): Promise<{ assetId: string; runId: string }> {
      const asset = makeAsset(overrides);
      const runId = newId('run');
      await catalog.createAssetWithRun(asset, runId);
      return { assetId: asset.id, runId };
    }

    function requireAddVersion(ctx: TestContext): NonNullable<CatalogUnderTest['addVersionWithRun']> {
      const addVersion = subject.addVersionWithRun;
      if (addVersion === undefined) {
        ctx.skip('adapter does not provide addVersionWithRun');
        throw new Error('unreachable');
      }
      return addVersion;
    }

    it('ping succeeds on a migrated catalog', async () => {
      await expect(catalog.ping()).resolves.toBeUndefined();
    });

    it('createAssetWithRun writes the asset (processing, version 1), its version row and a queued run', async () => {
      const input = makeAsset({ size: 5_000_000_000, type: 'video', mimeType: 'video/mp4' });
      const runId = newId('run');
      const { asset, run } = await catalog.createAssetWithRun(input, runId);

      const expectedAsset: Asset = {
        id: input.id,
        projectId: input.projectId,
        filename: input.filename,
        type: 'video',
        mimeType: 'video/mp4',
        size: 5_000_000_000,
        sha256: input.sha256,
        status: 'processing',
        error: null,
        width: null,
        height: null,
        format: null,
        blurhash: null,
        durationSec: null,
        versionNumber: 1,
        uploadedAt: input.uploadedAt,
        processedAt: null,
        extra: {},
      };
      expect(asset).toEqual(expectedAsset);
      expect(await catalog.getAsset(input.id)).toEqual(expectedAsset);

      const expectedRun = {
        id: runId,
        assetId: input.id,
        version: 1,
        kind: 'video',
        status: 'queued',
        error: null,
        attempts: 0,
        createdAt: input.uploadedAt,
        startedAt: null,
        finishedAt: null,
      };
      expect(run).toEqual(expectedRun);
      expect(await catalog.getRun(runId)).toEqual(expectedRun);

      expect(await catalog.getVersion(input.id, 1)).toEqual({
        assetId: input.id,
        version: 1,
        originalKey: input.originalKey,
        filename: input.filename,
        mimeType: 'video/mp4',
        size: 5_000_000_000,
        sha256: input.sha256,
        createdAt: input.uploadedAt,
      });
      expect(await catalog.getVersion(input.id, 2)).toBeUndefined();
    });

    it('createAssetWithRun is atomic: a failing run insert leaves no asset behind', async () => {
      const first = await create();
      const second = makeAsset();
      // Reusing a run id makes the last insert of the transaction fail.
      await expect(catalog.createAssetWithRun(second, first.runId)).rejects.toThrow();
      expect(await catalog.getAsset(second.id)).toBeUndefined();
      expect(await catalog.getVersion(second.id, 1)).toBeUndefined();
      expect((await catalog.getRun(first.runId))?.assetId).toBe(first.assetId);
      expect(await catalog.countAssetsByStatus()).toEqual({ processing: 1, ready: 0, failed: 0 });
    });

    it('lookups of unknown ids return undefined or empty lists', async () => {
      const unknownAsset = newId('ast');
      const unknownRun = newId('run');
      expect(await catalog.getAsset(unknownAsset)).toBeUndefined();
      expect(await catalog.getRun(unknownRun)).toBeUndefined();
      expect(await catalog.getVersion(unknownAsset, 1)).toBeUndefined();
      expect(await catalog.listRunsWithSteps(unknownAsset)).toEqual([]);
      expect(await catalog.listSteps(unknownRun)).toEqual([]);
      expect(await catalog.listRenditions(unknownAsset, 1)).toEqual([]);
      expect(await catalog.listAssets({ limit: 10 })).toEqual({ items: [], nextBeforeId: null });
    });

    it('listAssets filters by projectId, type and status, newest first', async () => {
      const a1 = await create({ projectId: 'prj_a', type: 'image' });
      const a2 = await create({ projectId: 'prj_a', type: 'video', mimeType: MIME.video });
      const a3 = await create({ projectId: 'prj_a', type: 'audio', mimeType: MIME.audio });
      const b1 = await create({ projectId: 'prj_b', type: 'image' });
      const b2 = await create({ projectId: 'prj_b', type: 'video', mimeType: MIME.video });
      await catalog.publishRun(a1.runId, { width: 1, height: 1 }, at(100));
      await catalog.failRun(b2.runId, 'broken', at(101));

      const ids = async (filter: Parameters<Catalog['listAssets']>[0]) =>
        (await catalog.listAssets(filter)).items.map((a) => a.id);

      expect(await ids({ limit: 100 })).toEqual([b2, b1, a3, a2, a1].map((x) => x.assetId));
      expect(await ids({ limit: 100, projectId: 'prj_a' })).toEqual([a3, a2, a1].map((x) => x.assetId));
      expect(await ids({ limit: 100, projectId: 'prj_b' })).toEqual([b2, b1].map((x) => x.assetId));
      expect(await ids({ limit: 100, projectId: 'prj_none' })).toEqual([]);
      expect(await ids({ limit: 100, type: 'video' })).toEqual([b2, a2].map((x) => x.assetId));
      expect(await ids({ limit: 100, type: 'image', projectId: 'prj_b' })).toEqual([b1.assetId]);
      expect(await ids({ limit: 100, status: 'ready' })).toEqual([a1.assetId]);
      expect(await ids({ limit: 100, status: 'failed' })).toEqual([b2.assetId]);
      expect(await ids({ limit: 100, status: 'processing' })).toEqual([b1, a3, a2].map((x) => x.assetId));
      expect(await ids({ limit: 100, status: 'processing', projectId: 'prj_a', type: 'audio' })).toEqual([
        a3.assetId,
      ]);
      expect(await ids({ limit: 100, beforeId: a3.assetId })).toEqual([a2, a1].map((x) => x.assetId));
    });

    it('listAssets pages through 25 assets with limit 10 as 10, 10, 5 without duplicates or gaps', async () => {
      const created: string[] = [];
      for (let i = 0; i < 25; i++) created.push((await create({ projectId: 'prj_page' })).assetId);
      await create({ projectId: 'prj_other' });
      const expected = [...created].reverse();

      const sizes: number[] = [];
      const seen: string[] = [];
      let beforeId: string | undefined;
      for (let page = 0; page < 10; page++) {
        const result = await catalog.listAssets({ projectId: 'prj_page', limit: 10, beforeId });
        sizes.push(result.items.length);
        seen.push(...result.items.map((a) => a.id));
        if (result.nextBeforeId === null) break;
        expect(result.nextBeforeId).toBe(result.items.at(-1)?.id);
        beforeId = result.nextBeforeId;
      }
      expect(sizes).toEqual([10, 10, 5]);
      expect(seen).toEqual(expected);
      expect(new Set(seen).size).toBe(25);
    });

    it('listAssets returns nextBeforeId null when the last page is exactly full', async () => {
      const created: string[] = [];
      for (let i = 0; i < 20; i++) created.push((await create()).assetId);
      const first = await catalog.listAssets({ limit: 10 });
      expect(first.items).toHaveLength(10);
      expect(first.nextBeforeId).toBe(created[10]);
      const second = await catalog.listAssets({ limit: 10, beforeId: first.nextBeforeId ?? undefined });
      expect(second.items.map((a) => a.id)).toEqual(created.slice(0, 10).reverse());
      expect(second.nextBeforeId).toBeNull();
      const single = await catalog.listAssets({ limit: 1 });
      expect(single.items.map((a) => a.id)).toEqual([created[19]]);
      expect(single.nextBeforeId).toBe(created[19]);
    });

    it('startRun moves the run to running, counts attempts and keeps the first startedAt', async () => {
      const { runId } = await create();
      const first = await catalog.startRun(runId, at(200));
      expect(first).toMatchObject({ id: runId, status: 'running', attempts: 1, startedAt: at(200) });
      const second = await catalog.startRun(runId, at(300));
      expect(second).toMatchObject({ status: 'running', attempts: 2, startedAt: at(200), finishedAt: null });
      expect(await catalog.getRun(runId)).toEqual(second);
    });

    it('startRun of an unknown run rejects', async () => {
      await expect(catalog.startRun(newId('run'), at(1))).rejects.toThrow();
    });

    it('records steps: start, finish and list in start order with durations and JSON output', async () => {
      const { runId } = await create();
      const other = await create();
      const decode = newId('stp');
      const resize = newId('stp');
      const probe = newId('stp');
      const output = {
        width: 4032,
        ratio: 1.5,
        ok: true,
        none: null,
        tags: ['a', 'ü', '🎉'],
        nested: { deep: { list: [1, { x: 'y' }] } },
      };
      await catalog.startStep({ id: decode, runId, name: 'decode', attempt: 1, startedAt: at(10) });
      await catalog.startStep({ id: resize, runId, name: 'resize', attempt: 1, startedAt: at(12) });
      await catalog.startStep({
        id: probe,
        runId: other.runId,
        name: 'probe',
        attempt: 1,
        startedAt: at(11),
      });
      await catalog.finishStep(decode, {
        status: 'succeeded',
        finishedAt: new Date(BASE_TIME + 11_500).toISOString(),
        output,
      });
      await catalog.finishStep(resize, { status: 'failed', finishedAt: at(15), error: 'out of memory' });

      const steps = await catalog.listSteps(runId);
      expect(steps.map((s) => s.name)).toEqual(['decode', 'resize']);
      expect(steps[0]).toEqual({
        id: decode,
        runId,
        name: 'decode',
        attempt: 1,
        status: 'succeeded',
        startedAt: at(10),
        finishedAt: new Date(BASE_TIME + 11_500).toISOString(),
        durationMs: 1500,
        error: null,
        output,
      });
      expect(steps[1]).toMatchObject({
        id: resize,
        status: 'failed',
        durationMs: 3000,
        error: 'out of memory',
        output: null,
      });
      expect(await catalog.listSteps(other.runId)).toMatchObject([
        { id: probe, status: 'running', finishedAt: null, durationMs: null, output: null },
      ]);
    });

    it('lists steps in the order they started, not the order they were written', async () => {
      const { runId } = await create();
      const late = newId('stp');
      const early = newId('stp');
      await catalog.startStep({ id: late, runId, name: 'late', attempt: 2, startedAt: at(50) });
      await catalog.startStep({ id: early, runId, name: 'early', attempt: 1, startedAt: at(40) });
      expect((await catalog.listSteps(runId)).map((s) => [s.name, s.attempt])).toEqual([
        ['early', 1],
        ['late', 2],
      ]);
    });

    it('abandonRunningSteps marks only running steps of that run as abandoned', async () => {
      const { runId } = await create();
      const other = await create();
      const done = newId('stp');
      const failed = newId('stp');
      const runningA = newId('stp');
      const runningB = newId('stp');
      const otherRunning = newId('stp');
      await catalog.startStep({ id: done, runId, name: 'a', attempt: 1, startedAt: at(1) });
      await catalog.startStep({ id: failed, runId, name: 'b', attempt: 1, startedAt: at(2) });
      await catalog.startStep({ id: runningA, runId, name: 'c', attempt: 1, startedAt: at(3) });
      await catalog.startStep({ id: runningB, runId, name: 'd', attempt: 1, startedAt: at(4) });
      await catalog.startStep({
        id: otherRunning,
        runId: other.runId,
        name: 'e',
        attempt: 1,
        startedAt: at(5),
      });
      await catalog.finishStep(done, { status: 'succeeded', finishedAt: at(6), output: { ok: 1 } });
      await catalog.finishStep(failed, { status: 'failed', finishedAt: at(7), error: 'boom' });

      expect(await catalog.abandonRunningSteps(runId, at(60), 'worker died')).toBe(2);

      const byId = new Map((await catalog.listSteps(runId)).map((s) => [s.id, s]));
      expect(byId.get(done)).toMatchObject({
        status: 'succeeded',
        finishedAt: at(6),
        error: null,
        output: { ok: 1 },
      });
      expect(byId.get(failed)).toMatchObject({ status: 'failed', finishedAt: at(7), error: 'boom' });
      expect(byId.get(runningA)).toMatchObject({
        status: 'abandoned',
        finishedAt: at(60),
        error: 'worker died',
      });
      expect(byId.get(runningB)).toMatchObject({
        status: 'abandoned',
        finishedAt: at(60),
        error: 'worker died',
      });
      expect(await catalog.listSteps(other.runId)).toMatchObject([{ id: otherRunning, status: 'running' }]);

      expect(await catalog.abandonRunningSteps(runId, at(70), 'again')).toBe(0);
      expect((await catalog.listSteps(runId)).find((s) => s.id === runningA)?.finishedAt).toBe(at(60));
    });

    it('finishStep leaves an abandoned step abandoned (a stale worker cannot revive it)', async () => {
      const { runId } = await create();
      const stepId = newId('stp');
      await catalog.startStep({ id: stepId, runId, name: 'resize', attempt: 1, startedAt: at(1) });
      await catalog.abandonRunningSteps(runId, at(5), 'lease lost');
      await catalog.finishStep(stepId, { status: 'succeeded', finishedAt: at(9), output: { late: true } });
      expect(await catalog.listSteps(runId)).toMatchObject([
        { id: stepId, status: 'abandoned', finishedAt: at(5), error: 'lease lost', output: null },
      ]);
    });

    it('putRendition is idempotent per (asset, version, name): a second put replaces the row', async () => {
      const { assetId } = await create();
      await catalog.putRendition({
        assetId,
        version: 1,
        name: 'thumbnail',
        key: 'renditions/a/1/thumbnail-v1.webp',
        contentType: 'image/webp',
        size: 1234,
        width: 320,
        height: 240,
        createdAt: at(10),
      });
      await catalog.putRendition({
        assetId,
        version: 1,
        name: 'thumbnail',
        key: 'renditions/a/1/thumbnail-v2.avif',
        contentType: 'image/avif',
        size: 999,
        width: null,
        createdAt: at(20),
      });
      expect(await catalog.listRenditions(assetId, 1)).toEqual([
        {
          assetId,
          version: 1,
          name: 'thumbnail',
          key: 'renditions/a/1/thumbnail-v2.avif',
          contentType: 'image/avif',
          size: 999,
          width: null,
          height: null,
          createdAt: at(20),
        },
      ]);

      await catalog.putRendition({
        assetId,
        version: 1,
        name: 'preview',
        key: 'renditions/a/1/preview.webp',
        contentType: 'image/webp',
        size: 5_000_000_000,
        width: 1920,
        height: 1080,
        createdAt: at(30),
      });
      const names = (await catalog.listRenditions(assetId, 1)).map((r) => [r.name, r.size]);
      expect(names).toHaveLength(2);
      expect(names).toEqual(
        expect.arrayContaining([
          ['thumbnail', 999],
          ['preview', 5_000_000_000],
        ]),
      );
      expect(await catalog.listRenditions(assetId, 2)).toEqual([]);
    });

    it('publishRun makes the asset ready with its facts and processedAt, and succeeds the run', async () => {
      const { assetId, runId } = await create({ type: 'video', mimeType: MIME.video });
      await catalog.startRun(runId, at(100));
      await catalog.publishRun(
        runId,
        {
          width: 1920,
          height: 1080,
          format: 'h264',
          blurhash: 'LEHV6nWB2yk8pyo0adR*.7kCMdnj',
          durationSec: 12.345,
          extra: { fps: 29.97, codec: { name: 'avc1' } },
        },
        at(200),
      );
      expect(await catalog.getAsset(assetId)).toMatchObject({
        status: 'ready',
        error: null,
        width: 1920,
        height: 1080,
        format: 'h264',
        blurhash: 'LEHV6nWB2yk8pyo0adR*.7kCMdnj',
        durationSec: 12.345,
        versionNumber: 1,
        processedAt: at(200),
        extra: { fps: 29.97, codec: { name: 'avc1' } },
      });
      expect(await catalog.getRun(runId)).toMatchObject({
        status: 'succeeded',
        error: null,
        attempts: 1,
        startedAt: at(100),
        finishedAt: at(200),
      });
    });

    it('publishRun shallow-merges extra and keeps facts it is not given', async () => {
      const { assetId, runId } = await create();
      await catalog.publishRun(
        runId,
        { width: 10, height: 20, format: 'jpeg', extra: { a: 1, shared: 'old', obj: { x: 1 } } },
        at(10),
      );
      await catalog.publishRun(
        runId,
        { width: 11, format: null, extra: { b: 2, shared: 'new', obj: { y: 2 } } },
        at(20),
      );
      expect(await catalog.getAsset(assetId)).toMatchObject({
        status: 'ready',
        width: 11,
        height: 20,
        format: null,
        processedAt: at(20),
        extra: { a: 1, b: 2, shared: 'new', obj: { y: 2 } },
      });
      await catalog.publishRun(runId, {}, at(30));
      expect((await catalog.getAsset(assetId))?.extra).toEqual({ a: 1, b: 2, shared: 'new', obj: { y: 2 } });
    });

    it('failRun makes the asset failed with the reason and fails the run', async () => {
      const { assetId, runId } = await create();
      await catalog.startRun(runId, at(5));
      const reason = 'Unsupported codec “xyz” — cannot decode';
      await catalog.failRun(runId, reason, at(9));
      expect(await catalog.getAsset(assetId)).toMatchObject({
        status: 'failed',
        error: reason,
        processedAt: at(9),
      });
      expect(await catalog.getRun(runId)).toMatchObject({
        status: 'failed',
        error: reason,
        finishedAt: at(9),
      });
    });

    it('publishRun and failRun of an unknown run reject', async () => {
      await expect(catalog.publishRun(newId('run'), {}, at(1))).rejects.toThrow();
      await expect(catalog.failRun(newId('run'), 'x', at(1))).rejects.toThrow();
    });

    it('a late run of an older version finishes itself but never touches the asset', async (ctx) => {
      const addVersion = requireAddVersion(ctx);
      const { assetId, runId: v1Run } = await create();
      const v2Run = newId('run');
      await addVersion(assetId, 2, v2Run, at(50));
      await catalog.publishRun(v2Run, { width: 200, extra: { from: 'v2' } }, at(60));

      await catalog.publishRun(v1Run, { width: 100, extra: { from: 'v1' } }, at(70));
      expect(await catalog.getRun(v1Run)).toMatchObject({ status: 'succeeded', finishedAt: at(70) });
      expect(await catalog.getAsset(assetId)).toMatchObject({
        status: 'ready',
        width: 200,
        versionNumber: 2,
        processedAt: at(60),
        extra: { from: 'v2' },
      });

      await catalog.failRun(v1Run, 'too late', at(80));
      expect(await catalog.getRun(v1Run)).toMatchObject({ status: 'failed', error: 'too late' });
      expect(await catalog.getAsset(assetId)).toMatchObject({
        status: 'ready',
        error: null,
        processedAt: at(60),
      });
    });

    it('listRunsWithSteps returns the runs of an asset newest first, each with its steps', async (ctx) => {
      const addVersion = requireAddVersion(ctx);
      const { assetId, runId: first } = await create();
      const second = newId('run');
      await addVersion(assetId, 2, second, at(100_000));
      const other = await create();
      const s1 = newId('stp');
      const s2 = newId('stp');
      const s3 = newId('stp');
      await catalog.startStep({ id: s1, runId: first, name: 'decode', attempt: 1, startedAt: at(10) });
      await catalog.startStep({ id: s2, runId: first, name: 'resize', attempt: 1, startedAt: at(11) });
      await catalog.startStep({ id: s3, runId: second, name: 'decode', attempt: 1, startedAt: at(100_001) });
      await catalog.startStep({
        id: newId('stp'),
        runId: other.runId,
        name: 'x',
        attempt: 1,
        startedAt: at(12),
      });
      await catalog.finishStep(s1, { status: 'succeeded', finishedAt: at(11), output: { n: 1 } });

      const runs = await catalog.listRunsWithSteps(assetId);
      expect(runs.map((r) => [r.id, r.version])).toEqual([
        [second, 2],
        [first, 1],
      ]);
      expect(runs[0]?.steps.map((s) => s.id)).toEqual([s3]);
      expect(runs[1]?.steps.map((s) => s.id)).toEqual([s1, s2]);
      expect(runs[1]?.steps[0]).toMatchObject({ status: 'succeeded', output: { n: 1 }, durationMs: 1000 });
    });

    it('listRunsWithSteps returns a run without steps with an empty list', async () => {
      const { assetId, runId } = await create();
      expect(await catalog.listRunsWithSteps(assetId)).toEqual([
        { ...(await catalog.getRun(runId)), steps: [] },
      ]);
    });

    it('listUnfinishedRuns returns queued and running runs only, up to the limit', async () => {
      const queued = await create();
      const running = await create();
      const published = await create();
      const failed = await create();
      await catalog.startRun(running.runId, at(1));
      await catalog.startRun(published.runId, at(1));
      await catalog.publishRun(published.runId, {}, at(2));
      await catalog.failRun(failed.runId, 'nope', at(2));

      const unfinished = await catalog.listUnfinishedRuns(100);
      expect(unfinished.map((r) => r.id).sort()).toEqual([queued.runId, running.runId].sort());
      expect(unfinished.find((r) => r.id === running.runId)?.status).toBe('running');
      expect(unfinished.find((r) => r.id === queued.runId)?.status).toBe('queued');
      expect(await catalog.listUnfinishedRuns(1)).toHaveLength(1);
    });

    it('countAssetsByStatus counts every status, zero included', async () => {
      expect(await catalog.countAssetsByStatus()).toEqual({ processing: 0, ready: 0, failed: 0 });
      const a = await create();
      const b = await create();
      await create();
      await create();
      await catalog.publishRun(a.runId, {}, at(1));
      await catalog.failRun(b.runId, 'x', at(1));
      expect(await catalog.countAssetsByStatus()).toEqual({ processing: 2, ready: 1, failed: 1 });
    });

    it('migrate() again (also twice at once) is a no-op that keeps the data', async () => {
      const { assetId } = await create();
      await catalog.migrate();
      await Promise.all([catalog.migrate(), catalog.migrate()]);
      expect((await catalog.getAsset(assetId))?.id).toBe(assetId);
      expect((await catalog.listAssets({ limit: 10 })).items).toHaveLength(1);
    });

    it('unicode and awkward filenames round-trip exactly', async () => {
      const names = [
        '📷 Urlaub 🏖️ café.jpg',
        'صورة العائلة-שלום.png',
        'family 👨‍👩‍👧‍👦 e\u0301 combining.webp',
        `it's a "quoted" \`name\` \\ with; -- sql.gif`,
        '日本語のファイル名.mp4',
        'tab\tand\nnewline.txt',
        `${'ä'.repeat(996)}.jpg`,
      ];
      expect(names.at(-1)).toHaveLength(1000);
      const ids: string[] = [];
      for (const filename of names) ids.push((await create({ filename, projectId: 'prj_unicode' })).assetId);
      for (const [i, id] of ids.entries()) {
        expect((await catalog.getAsset(id))?.filename).toBe(names[i]);
        expect((await catalog.getVersion(id, 1))?.filename).toBe(names[i]);
      }
      const listed = await catalog.listAssets({ projectId: 'prj_unicode', limit: 100 });
      expect(listed.items.map((a) => a.filename)).toEqual([...names].reverse());
    });

    it('rejects a page size outside 1..1000', async () => {
      await expect(catalog.listAssets({ limit: 0 })).rejects.toThrow();
      await expect(catalog.listAssets({ limit: 1001 })).rejects.toThrow();
    });
  });
}
