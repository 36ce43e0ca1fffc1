import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Catalog, NewAsset, NewVersion } from '../../src/catalog/catalog.js';
import type { ApiKey } from '../../src/domain/api-key.js';
import type { Asset, AssetVersion, MediaType } from '../../src/domain/asset.js';
import { newId } from '../../src/domain/ids.js';
import type { Project } from '../../src/domain/project.js';
import type { UploadSession } from '../../src/domain/upload.js';

export interface CatalogUnderTest {
  catalog: Catalog;
  cleanup: () => Promise<void>;
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

function sha(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function makeVersion(assetId: string, overrides: Partial<NewVersion> = {}): NewVersion {
  counter++;
  return {
    assetId,
    filename: `replacement-${counter}.png`,
    type: 'image',
    mimeType: 'image/png',
    size: 2000 + counter,
    sha256: sha(`version-${counter}`),
    originalKey: `originals/${assetId}/${newId('job')}`,
    createdAt: at(counter),
    ...overrides,
  };
}

function makeProject(overrides: Partial<Project> = {}): Project {
  return {
    id: `prj-${newId('job').slice(-10).toLowerCase()}`,
    name: 'Marketing',
    visibility: 'private',
    duplicatePolicy: 'reject',
    limits: {
      maxUploadBytes: 5_000_000_000,
      maxTotalBytes: 9_000_000_000_000,
      maxVideoDurationSec: 12.5,
      allowedTypes: ['image', 'video'],
    },
    exposeGps: false,
    createdAt: at(1),
    updatedAt: at(1),
    ...overrides,
  };
}

function makeApiKey(overrides: Partial<ApiKey> = {}): ApiKey {
  const id = newId('key');
  return {
    id,
    name: 'ci deploy',
    prefix: id.slice(-12).toLowerCase(),
    secretHash: sha(id),
    scopes: ['read', 'write'],
    projectId: null,
    createdAt: at(1),
    lastUsedAt: null,
    revokedAt: null,
    ...overrides,
  };
}

function makeUpload(overrides: Partial<UploadSession> = {}): UploadSession {
  const id = newId('upl');
  return {
    id,
    protocol: 'tus',
    projectId: 'default',
    mediaId: null,
    filename: 'movie.mp4',
    declaredType: 'video/mp4',
    size: 5_000_000_000,
    key: `uploads/${id}`,
    storeUploadId: null,
    checksum: null,
    state: 'open',
    assetId: null,
    createdBy: null,
    createdAt: at(1),
    expiresAt: at(3600),
    ...overrides,
  };
}

/** `hash` (16 hex digits) with the given bit positions flipped, 0 being the most significant bit. */
function flipBits(hash: string, bits: readonly number[]): string {
  let value = BigInt(`0x${hash}`);
  for (const bit of bits) value ^= 1n << BigInt(63 - bit);
  return value.toString(16).padStart(16, '0');
}

/** The first `n` bits of each 16-bit band, so the flips spread over all four bands. */
function spreadBits(n: number): number[] {
  return Array.from({ length: n }, (_, i) => (i % 4) * 16 + Math.floor(i / 4));
}

/** Expects the promise to reject with an `AppError` of this code. */
async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  await expect(promise).rejects.toMatchObject({ name: 'AppError', code });
}

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

    /** Adds the next version of the asset with a queued run; returns the run id. */
    async function addVersion(assetId: string, overrides: Partial<NewVersion> = {}): Promise<string> {
      const runId = newId('run');
      await catalog.createVersionWithRun(makeVersion(assetId, overrides), runId);
      return runId;
    }

    async function ids(filter: Parameters<Catalog['listAssets']>[0]): Promise<string[]> {
      return (await catalog.listAssets(filter)).items.map((a) => a.id);
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
        perceptualHash: null,
        versionNumber: 1,
        uploadedAt: input.uploadedAt,
        processedAt: null,
        extra: {},
        mediaId: null,
        tags: [],
        duplicateOf: null,
        deletedAt: null,
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
        progress: 0,
        createdAt: input.uploadedAt,
        startedAt: null,
        finishedAt: null,
      };
      expect(run).toEqual(expectedRun);
      expect(await catalog.getRun(runId)).toEqual(expectedRun);

      const expectedVersion: AssetVersion = {
        assetId: input.id,
        version: 1,
        originalKey: input.originalKey,
        filename: input.filename,
        type: 'video',
        mimeType: 'video/mp4',
        size: 5_000_000_000,
        sha256: input.sha256,
        createdAt: input.uploadedAt,
        status: 'processing',
        error: null,
        width: null,
        height: null,
        format: null,
        blurhash: null,
        durationSec: null,
        perceptualHash: null,
        extra: {},
        processedAt: null,
      };
      expect(await catalog.getVersion(input.id, 1)).toEqual(expectedVersion);
      expect(await catalog.listVersions(input.id)).toEqual([expectedVersion]);
      expect(await catalog.getVersion(input.id, 2)).toBeUndefined();
    });

    it('createAssetWithRun stores media id, tags and duplicateOf', async () => {
      const original = await create({ projectId: 'prj_x' });
      const input = makeAsset({
        projectId: 'prj_x',
        mediaId: 'client/42 ünïcode',
        tags: ['b', 'a', 'Ünïcode tag'],
        duplicateOf: original.assetId,
      });
      const { asset } = await catalog.createAssetWithRun(input, newId('run'));
      const expected = {
        mediaId: 'client/42 ünïcode',
        tags: ['b', 'a', 'Ünïcode tag'],
        duplicateOf: original.assetId,
        deletedAt: null,
      };
      expect(asset).toMatchObject(expected);
      expect(await catalog.getAsset(input.id)).toEqual(asset);
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

    it('setRunProgress records per cent on an unfinished run; publishing sets 100, finished runs keep theirs', async () => {
      const { runId } = await create();
      expect((await catalog.getRun(runId))?.progress).toBe(0);
      await catalog.startRun(runId, at(200));
      await catalog.setRunProgress(runId, 41.6);
      expect((await catalog.getRun(runId))?.progress).toBe(42);
      await catalog.setRunProgress(runId, 140);
      expect((await catalog.getRun(runId))?.progress).toBe(100);
      await catalog.setRunProgress(runId, 10);
      await catalog.publishRun(runId, {}, at(300));
      expect((await catalog.getRun(runId))?.progress).toBe(100);
      await catalog.setRunProgress(runId, 5);
      expect((await catalog.getRun(runId))?.progress).toBe(100);

      const failing = await create();
      await catalog.startRun(failing.runId, at(200));
      await catalog.setRunProgress(failing.runId, 30);
      await catalog.failRun(failing.runId, 'broken', at(300));
      expect((await catalog.getRun(failing.runId))?.progress).toBe(30);
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

    it('publishRun makes the asset and its version ready with its facts and processedAt, and succeeds the run', async () => {
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
      expect(await catalog.getVersion(assetId, 1)).toMatchObject({
        status: 'ready',
        error: null,
        width: 1920,
        height: 1080,
        format: 'h264',
        blurhash: 'LEHV6nWB2yk8pyo0adR*.7kCMdnj',
        durationSec: 12.345,
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
      expect(await catalog.getVersion(assetId, 1)).toMatchObject({
        width: 11,
        height: 20,
        format: null,
        processedAt: at(30),
        extra: { a: 1, b: 2, shared: 'new', obj: { y: 2 } },
      });
    });

    it('failRun makes the asset and its version failed with the reason and fails the run', async () => {
      const { assetId, runId } = await create();
      await catalog.startRun(runId, at(5));
      const reason = 'Unsupported codec “xyz” — cannot decode';
      await catalog.failRun(runId, reason, at(9));
      expect(await catalog.getAsset(assetId)).toMatchObject({
        status: 'failed',
        error: reason,
        processedAt: at(9),
      });
      expect(await catalog.getVersion(assetId, 1)).toMatchObject({
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

    it('a late run of an older version finishes itself and its version but never touches the asset', async () => {
      const { assetId, runId: v1Run } = await create();
      const v2Run = await addVersion(assetId, { createdAt: at(50) });
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
      expect(await catalog.getVersion(assetId, 1)).toMatchObject({
        status: 'ready',
        width: 100,
        processedAt: at(70),
        extra: { from: 'v1' },
      });
      expect(await catalog.getVersion(assetId, 2)).toMatchObject({
        status: 'ready',
        width: 200,
        processedAt: at(60),
        extra: { from: 'v2' },
      });

      await catalog.failRun(v1Run, 'too late', at(80));
      expect(await catalog.getRun(v1Run)).toMatchObject({ status: 'failed', error: 'too late' });
      expect(await catalog.getVersion(assetId, 1)).toMatchObject({
        status: 'failed',
        error: 'too late',
        width: 100,
        processedAt: at(80),
      });
      expect(await catalog.getAsset(assetId)).toMatchObject({
        status: 'ready',
        error: null,
        processedAt: at(60),
      });
      expect(await catalog.getVersion(assetId, 2)).toMatchObject({ status: 'ready', error: null });
    });

    it('listRunsWithSteps returns the runs of an asset newest first, each with its steps', async () => {
      const { assetId, runId: first } = await create();
      const second = await addVersion(assetId, { createdAt: at(100_000) });
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
      const { assetId } = await create({ filename: 'kept-after-migrate.jpg', mediaId: 'm-1' });
      await catalog.createProject(makeProject({ id: 'kept' }));
      await catalog.migrate();
      await Promise.all([catalog.migrate(), catalog.migrate()]);
      expect((await catalog.getAsset(assetId))?.id).toBe(assetId);
      expect((await catalog.listAssets({ limit: 10 })).items).toHaveLength(1);
      expect(await ids({ limit: 10, q: 'kept after' })).toEqual([assetId]);
      expect((await catalog.listProjects()).map((p) => p.id)).toEqual(['default', 'kept']);
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
    it('lookups of unknown ids in the newer operations return undefined, false or empty', async () => {
      const unknown = newId('ast');
      expect(await catalog.listVersions(unknown)).toEqual([]);
      expect(await catalog.findAssetByMediaId('default', 'nope')).toBeUndefined();
      expect(await catalog.findAssetsBySha256('default', sha('nope'))).toEqual([]);
      expect(await catalog.updateAsset(unknown, { tags: ['x'] }, at(1))).toBeUndefined();
      expect(await catalog.softDeleteAsset(unknown, at(1))).toBe(false);
      expect(await catalog.restoreAsset(unknown, at(1))).toBe(false);
      expect(await catalog.listAssetsDeletedBefore(at(1_000_000), 10)).toEqual([]);
      expect(await catalog.purgeAsset(unknown)).toEqual({ keys: [] });
      expect(await catalog.getProject('nope')).toBeUndefined();
      expect(await catalog.updateProject('nope', { name: 'x' }, at(1))).toBeUndefined();
      expect(await catalog.getProject('nope')).toBeUndefined();
      expect(await catalog.projectUsage('nope')).toEqual({ assets: 0, bytes: 0 });
      expect(await catalog.getApiKeyByPrefix('nope')).toBeUndefined();
      expect(await catalog.listApiKeys()).toEqual([]);
      expect(await catalog.revokeApiKey(newId('key'), at(1))).toBe(false);
      await expect(catalog.touchApiKey(newId('key'), at(1))).resolves.toBeUndefined();
      expect(await catalog.getUpload(newId('upl'))).toBeUndefined();
      expect(await catalog.claimUploadCompletion(newId('upl'))).toBe(false);
      expect(await catalog.abortUpload(newId('upl'))).toBe(false);
      expect(await catalog.listExpiredUploads(at(1_000_000), 10)).toEqual([]);
    });

    describe('versions', () => {
      it('createVersionWithRun adds version 2 with a queued run; the asset mirrors it, v1 keeps its outcome', async () => {
        const other = await create({ projectId: 'prj_v' });
        const { assetId, runId: v1Run } = await create({ projectId: 'prj_v', filename: 'v1.jpg' });
        const v1Facts = {
          width: 640,
          height: 480,
          format: 'jpeg',
          blurhash: 'LKO2?U%2Tw=w]~RBVZRi};RPxuwH',
          extra: { make: 'Canon' },
        };
        await catalog.publishRun(v1Run, v1Facts, at(100));
        const before = await catalog.getAsset(assetId);
        const v1Before = await catalog.getVersion(assetId, 1);

        const input = makeVersion(assetId, {
          filename: 'v2 clip.mp4',
          type: 'video',
          mimeType: 'video/mp4',
          size: 6_000_000_000,
          sha256: sha('v2'),
          createdAt: at(200),
          duplicateOf: other.assetId,
        });
        const v2Run = newId('run');
        const { asset, run } = await catalog.createVersionWithRun(input, v2Run);

        const expectedAsset: Asset = {
          id: assetId,
          projectId: 'prj_v',
          filename: 'v2 clip.mp4',
          type: 'video',
          mimeType: 'video/mp4',
          size: 6_000_000_000,
          sha256: sha('v2'),
          status: 'processing',
          error: null,
          width: null,
          height: null,
          format: null,
          blurhash: null,
          durationSec: null,
          perceptualHash: null,
          versionNumber: 2,
          uploadedAt: before?.uploadedAt ?? '',
          processedAt: null,
          extra: {},
          mediaId: null,
          tags: [],
          duplicateOf: other.assetId,
          deletedAt: null,
        };
        expect(asset).toEqual(expectedAsset);
        expect(await catalog.getAsset(assetId)).toEqual(expectedAsset);
        const expectedRun = {
          id: v2Run,
          assetId,
          version: 2,
          kind: 'video',
          status: 'queued',
          error: null,
          attempts: 0,
          progress: 0,
          createdAt: at(200),
          startedAt: null,
          finishedAt: null,
        };
        expect(run).toEqual(expectedRun);
        expect(await catalog.getRun(v2Run)).toEqual(expectedRun);

        const expectedV2: AssetVersion = {
          assetId,
          version: 2,
          originalKey: input.originalKey,
          filename: 'v2 clip.mp4',
          type: 'video',
          mimeType: 'video/mp4',
          size: 6_000_000_000,
          sha256: sha('v2'),
          createdAt: at(200),
          status: 'processing',
          error: null,
          width: null,
          height: null,
          format: null,
          blurhash: null,
          durationSec: null,
          perceptualHash: null,
          extra: {},
          processedAt: null,
        };
        expect(await catalog.getVersion(assetId, 2)).toEqual(expectedV2);
        expect(v1Before).toMatchObject({ status: 'ready', width: 640, extra: { make: 'Canon' } });
        expect(await catalog.getVersion(assetId, 1)).toEqual(v1Before);
        expect(await catalog.listVersions(assetId)).toEqual([v1Before, expectedV2]);
        expect((await catalog.listUnfinishedRuns(100)).map((r) => r.id)).toEqual(
          expect.arrayContaining([v2Run]),
        );
        expect(await catalog.countAssetsByStatus()).toEqual({ processing: 2, ready: 0, failed: 0 });
      });

      it('numbers a new version after the highest one, even when an older version is current', async () => {
        const { assetId } = await create();
        await addVersion(assetId);
        await catalog.setCurrentVersion(assetId, 1, at(10));
        const { asset, run } = await catalog.createVersionWithRun(makeVersion(assetId), newId('run'));
        expect(asset.versionNumber).toBe(3);
        expect(run.version).toBe(3);
        expect((await catalog.listVersions(assetId)).map((v) => v.version)).toEqual([1, 2, 3]);
      });

      it('concurrent new versions of one asset get distinct numbers', async () => {
        const { assetId } = await create();
        const results = await Promise.all(
          [0, 1, 2, 3].map(() => catalog.createVersionWithRun(makeVersion(assetId), newId('run'))),
        );
        expect(results.map((r) => r.run.version).sort()).toEqual([2, 3, 4, 5]);
        expect((await catalog.listVersions(assetId)).map((v) => v.version)).toEqual([1, 2, 3, 4, 5]);
        expect((await catalog.getAsset(assetId))?.versionNumber).toBe(5);
      });

      it('createVersionWithRun rejects ASSET_NOT_FOUND for an unknown or deleted asset and writes nothing', async () => {
        const unknownRun = newId('run');
        await expectCode(
          catalog.createVersionWithRun(makeVersion(newId('ast')), unknownRun),
          'ASSET_NOT_FOUND',
        );
        expect(await catalog.getRun(unknownRun)).toBeUndefined();

        const { assetId } = await create();
        await catalog.softDeleteAsset(assetId, at(5));
        const deletedRun = newId('run');
        await expectCode(catalog.createVersionWithRun(makeVersion(assetId), deletedRun), 'ASSET_NOT_FOUND');
        expect(await catalog.getRun(deletedRun)).toBeUndefined();
        expect((await catalog.listVersions(assetId)).map((v) => v.version)).toEqual([1]);
        expect(await catalog.getAsset(assetId)).toMatchObject({ versionNumber: 1, deletedAt: at(5) });
      });

      it('createVersionWithRun is atomic: a failing run insert leaves the asset and its versions as they were', async () => {
        const { assetId, runId } = await create();
        await catalog.publishRun(runId, { width: 5, extra: { k: 'v' } }, at(10));
        const before = await catalog.getAsset(assetId);
        await expect(catalog.createVersionWithRun(makeVersion(assetId), runId)).rejects.toThrow();
        expect(await catalog.getAsset(assetId)).toEqual(before);
        expect((await catalog.listVersions(assetId)).map((v) => v.version)).toEqual([1]);
      });

      it('setCurrentVersion brings back the file fields, status, error and facts of that version', async () => {
        const dup = await create();
        const { assetId, runId: v1Run } = await create({ filename: 'first.jpg', mimeType: 'image/jpeg' });
        await catalog.publishRun(
          v1Run,
          { width: 10, height: 20, format: 'jpeg', blurhash: 'B', durationSec: null, extra: { n: 1 } },
          at(10),
        );
        const v1Asset = await catalog.getAsset(assetId);
        const v2Input = makeVersion(assetId, {
          filename: 'second.mp4',
          type: 'video',
          mimeType: 'video/mp4',
          duplicateOf: dup.assetId,
        });
        const v2Run = newId('run');
        await catalog.createVersionWithRun(v2Input, v2Run);
        await catalog.failRun(v2Run, 'cannot decode', at(30));

        const restored = await catalog.setCurrentVersion(assetId, 1, at(40));
        expect(restored).toEqual(v1Asset);
        expect(await catalog.getAsset(assetId)).toEqual(v1Asset);

        const back = await catalog.setCurrentVersion(assetId, 2, at(50));
        expect(back).toMatchObject({
          versionNumber: 2,
          filename: 'second.mp4',
          type: 'video',
          mimeType: 'video/mp4',
          size: v2Input.size,
          sha256: v2Input.sha256,
          duplicateOf: dup.assetId,
          status: 'failed',
          error: 'cannot decode',
          width: null,
          extra: {},
          processedAt: at(30),
        });

        // While v1 is current again, v1's reprocessing updates the asset, v2's late runs do not.
        await catalog.setCurrentVersion(assetId, 1, at(60));
        await catalog.publishRun(v2Run, { width: 999 }, at(70));
        expect(await catalog.getAsset(assetId)).toMatchObject({
          versionNumber: 1,
          width: 10,
          status: 'ready',
        });
        expect(await catalog.getVersion(assetId, 2)).toMatchObject({ status: 'ready', width: 999 });
      });

      it('setCurrentVersion rejects NOT_FOUND for an unknown version and leaves the asset alone', async () => {
        const { assetId } = await create();
        const before = await catalog.getAsset(assetId);
        await expectCode(catalog.setCurrentVersion(assetId, 2, at(1)), 'NOT_FOUND');
        await expectCode(catalog.setCurrentVersion(assetId, 0, at(1)), 'NOT_FOUND');
        expect(await catalog.getAsset(assetId)).toEqual(before);
        await expect(catalog.setCurrentVersion(newId('ast'), 1, at(1))).rejects.toMatchObject({
          status: 404,
        });
      });

      it('createRun queues a reprocess of the current version: asset and version processing, facts kept', async () => {
        const { assetId, runId } = await create({ type: 'audio', mimeType: MIME.audio });
        await catalog.publishRun(runId, { durationSec: 3.5, extra: { artist: 'x' } }, at(100_010));
        const rerun = newId('run');
        const run = await catalog.createRun(assetId, rerun, at(100_020));
        const expectedRun = {
          id: rerun,
          assetId,
          version: 1,
          kind: 'audio',
          status: 'queued',
          error: null,
          attempts: 0,
          progress: 0,
          createdAt: at(100_020),
          startedAt: null,
          finishedAt: null,
        };
        expect(run).toEqual(expectedRun);
        expect(await catalog.getRun(rerun)).toEqual(expectedRun);
        expect(await catalog.getAsset(assetId)).toMatchObject({
          status: 'processing',
          error: null,
          durationSec: 3.5,
          extra: { artist: 'x' },
        });
        expect(await catalog.getVersion(assetId, 1)).toMatchObject({
          status: 'processing',
          durationSec: 3.5,
        });
        expect((await catalog.listUnfinishedRuns(100)).map((r) => r.id)).toEqual([rerun]);

        await catalog.failRun(rerun, 'still broken', at(100_030));
        const again = newId('run');
        await catalog.createRun(assetId, again, at(100_040));
        expect(await catalog.getAsset(assetId)).toMatchObject({ status: 'processing', error: null });
        expect(await catalog.getVersion(assetId, 1)).toMatchObject({ status: 'processing', error: null });
        await catalog.publishRun(again, { durationSec: 4 }, at(100_050));
        expect(await catalog.getAsset(assetId)).toMatchObject({ status: 'ready', durationSec: 4 });
        expect((await catalog.listRunsWithSteps(assetId)).map((r) => r.id)).toEqual([again, rerun, runId]);
      });

      it('createRun runs the current version, and rejects ASSET_NOT_FOUND for unknown or deleted assets', async () => {
        const { assetId } = await create();
        await addVersion(assetId);
        await catalog.setCurrentVersion(assetId, 1, at(5));
        expect((await catalog.createRun(assetId, newId('run'), at(6))).version).toBe(1);
        expect(await catalog.getVersion(assetId, 2)).toMatchObject({ status: 'processing' });

        const unknownRun = newId('run');
        await expectCode(catalog.createRun(newId('ast'), unknownRun, at(7)), 'ASSET_NOT_FOUND');
        await catalog.softDeleteAsset(assetId, at(8));
        await expectCode(catalog.createRun(assetId, unknownRun, at(9)), 'ASSET_NOT_FOUND');
        expect(await catalog.getRun(unknownRun)).toBeUndefined();
      });
    });

    describe('media ids and duplicates', () => {
      it('findAssetByMediaId finds the live asset of the project; after a soft delete a new asset may take the id', async () => {
        const a = await create({ projectId: 'prj_a', mediaId: 'shared' });
        const b = await create({ projectId: 'prj_b', mediaId: 'shared' });
        expect((await catalog.findAssetByMediaId('prj_a', 'shared'))?.id).toBe(a.assetId);
        expect((await catalog.findAssetByMediaId('prj_b', 'shared'))?.id).toBe(b.assetId);
        expect(await catalog.findAssetByMediaId('prj_a', 'other')).toBeUndefined();
        expect(await catalog.findAssetByMediaId('prj_c', 'shared')).toBeUndefined();

        // Taken in the project: a second live asset is refused and nothing is written.
        const clash = makeAsset({ projectId: 'prj_a', mediaId: 'shared' });
        const clashRun = newId('run');
        await expectCode(catalog.createAssetWithRun(clash, clashRun), 'UPLOAD_CONFLICT');
        expect(await catalog.getAsset(clash.id)).toBeUndefined();
        expect(await catalog.getRun(clashRun)).toBeUndefined();

        expect(await catalog.softDeleteAsset(a.assetId, at(50))).toBe(true);
        expect(await catalog.findAssetByMediaId('prj_a', 'shared')).toBeUndefined();
        const c = await create({ projectId: 'prj_a', mediaId: 'shared' });
        expect((await catalog.findAssetByMediaId('prj_a', 'shared'))?.id).toBe(c.assetId);
        expect((await catalog.getAsset(a.assetId))?.mediaId).toBe('shared');

        // The old asset cannot come back while the new one holds the media id.
        await expectCode(catalog.restoreAsset(a.assetId, at(60)), 'UPLOAD_CONFLICT');
        expect((await catalog.getAsset(a.assetId))?.deletedAt).toBe(at(50));

        expect(await ids({ limit: 10, mediaId: 'shared' })).toEqual([c.assetId, b.assetId]);
        expect(await ids({ limit: 10, mediaId: 'shared', projectId: 'prj_a' })).toEqual([c.assetId]);
        expect(await ids({ limit: 10, mediaId: 'shared', deleted: true })).toEqual([a.assetId]);
        expect(await ids({ limit: 10, mediaId: 'nope' })).toEqual([]);
      });

      it('two concurrent creations with one media id: exactly one wins', async () => {
        const inputs = [0, 1, 2, 3].map(() => makeAsset({ projectId: 'prj_race', mediaId: 'race' }));
        const outcomes = await Promise.allSettled(
          inputs.map((input) => catalog.createAssetWithRun(input, newId('run'))),
        );
        expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
        for (const o of outcomes) {
          if (o.status === 'rejected') expect(o.reason).toMatchObject({ code: 'UPLOAD_CONFLICT' });
        }
        expect((await catalog.listAssets({ limit: 10, projectId: 'prj_race' })).items).toHaveLength(1);
      });

      it('findAssetsBySha256 returns the live assets of the project with these current bytes, oldest first', async () => {
        const bytes = sha('same bytes');
        const first = await create({ projectId: 'prj_d', sha256: bytes });
        const deleted = await create({ projectId: 'prj_d', sha256: bytes });
        const second = await create({ projectId: 'prj_d', sha256: bytes });
        await create({ projectId: 'prj_e', sha256: bytes });
        await create({ projectId: 'prj_d', sha256: sha('other bytes') });
        await catalog.softDeleteAsset(deleted.assetId, at(1));
        const found = async (hash: string) =>
          (await catalog.findAssetsBySha256('prj_d', hash)).map((asset) => asset.id);
        expect(await found(bytes)).toEqual([first.assetId, second.assetId]);

        // Only the current version counts.
        await addVersion(first.assetId, { sha256: sha('new bytes') });
        expect(await found(bytes)).toEqual([second.assetId]);
        expect(await found(sha('new bytes'))).toEqual([first.assetId]);
        await catalog.setCurrentVersion(first.assetId, 1, at(9));
        expect(await found(bytes)).toEqual([first.assetId, second.assetId]);
      });
    });

    describe('updates and search', () => {
      it('updateAsset sets tags and filename; unknown, deleted and empty patches change nothing', async () => {
        const { assetId } = await create({ filename: 'original.jpg' });
        const updated = await catalog.updateAsset(
          assetId,
          { tags: ['Sunset', 'beach-2024', 'ünï'], filename: 'renamed.jpg' },
          at(10),
        );
        expect(updated).toMatchObject({ tags: ['Sunset', 'beach-2024', 'ünï'], filename: 'renamed.jpg' });
        expect(await catalog.getAsset(assetId)).toEqual(updated);
        expect((await catalog.getVersion(assetId, 1))?.filename).toBe('original.jpg');

        const tagsOnly = await catalog.updateAsset(assetId, { tags: [] }, at(11));
        expect(tagsOnly).toMatchObject({ tags: [], filename: 'renamed.jpg' });
        expect(await catalog.updateAsset(assetId, {}, at(12))).toEqual(tagsOnly);

        await catalog.softDeleteAsset(assetId, at(13));
        expect(await catalog.updateAsset(assetId, { tags: ['x'] }, at(14))).toBeUndefined();
        expect((await catalog.getAsset(assetId))?.tags).toEqual([]);
      });

      it('searches tags: every word must match as a prefix, case- and accent-insensitively', async () => {
        const { assetId } = await create({ filename: 'a.jpg' });
        const other = await create({ filename: 'b.jpg', tags: ['sun'] });
        await catalog.updateAsset(assetId, { tags: ['Sunset', 'beach-2024', 'Ünïcödé'] }, at(10));
        expect(await ids({ limit: 10, q: 'sunset' })).toEqual([assetId]);
        expect(await ids({ limit: 10, q: 'SUN' })).toEqual([other.assetId, assetId]);
        expect(await ids({ limit: 10, q: 'suns 2024' })).toEqual([assetId]);
        expect(await ids({ limit: 10, q: 'beach sunrise' })).toEqual([]);
        expect(await ids({ limit: 10, q: 'unicode' })).toEqual([assetId]);
        expect(await ids({ limit: 10, q: 'ÜNÏ' })).toEqual([assetId]);
        await catalog.updateAsset(assetId, { tags: ['winter'] }, at(20));
        expect(await ids({ limit: 10, q: 'sunset' })).toEqual([]);
        expect(await ids({ limit: 10, q: 'wint' })).toEqual([assetId]);
        expect(await ids({ limit: 10, q: '  ' })).toEqual([other.assetId, assetId]);
      });

      it('searches filenames by word prefix', async () => {
        const paris = await create({ filename: 'Café-Paris_2024.JPG' });
        const cafeteria = await create({ filename: 'cafeteria.png' });
        const tokyo = await create({ filename: 'Tokyo night.mp4', type: 'video', mimeType: MIME.video });
        const japanese = await create({ filename: '日本語のファイル名.jpg' });
        expect(await ids({ limit: 10, q: 'caf' })).toEqual([cafeteria, paris].map((a) => a.assetId));
        expect(await ids({ limit: 10, q: 'café' })).toEqual([cafeteria, paris].map((a) => a.assetId));
        expect(await ids({ limit: 10, q: 'paris caf' })).toEqual([paris.assetId]);
        expect(await ids({ limit: 10, q: '2024' })).toEqual([paris.assetId]);
        expect(await ids({ limit: 10, q: 'jpg' })).toEqual([japanese, paris].map((a) => a.assetId));
        expect(await ids({ limit: 10, q: 'night tok' })).toEqual([tokyo.assetId]);
        expect(await ids({ limit: 10, q: '日本' })).toEqual([japanese.assetId]);
        expect(await ids({ limit: 10, q: 'aris' })).toEqual([]);
        expect(await ids({ limit: 10, q: 'caf', type: 'video' })).toEqual([]);
        await catalog.updateAsset(paris.assetId, { filename: 'Lyon.jpg' }, at(5));
        expect(await ids({ limit: 10, q: 'paris' })).toEqual([]);
        expect(await ids({ limit: 10, q: 'lyon' })).toEqual([paris.assetId]);
      });

      it('searches metadata values published by a run, following the current version', async () => {
        const { assetId, runId } = await create({ filename: 'IMG_0001.jpg' });
        await create({ filename: 'IMG_0002.jpg' });
        await catalog.publishRun(
          runId,
          { extra: { make: 'Canon', model: 'EOS R5', lens: { name: 'RF 24-70mm' }, keywords: ['Alps'] } },
          at(10),
        );
        expect(await ids({ limit: 10, q: 'canon' })).toEqual([assetId]);
        expect(await ids({ limit: 10, q: 'eos r5' })).toEqual([assetId]);
        expect(await ids({ limit: 10, q: 'rf 24 70mm' })).toEqual([assetId]);
        expect(await ids({ limit: 10, q: 'alps img' })).toEqual([assetId]);
        expect(await ids({ limit: 10, q: 'canon nikon' })).toEqual([]);

        // A new version clears the facts; a late run of v1 does not bring them back to the asset.
        await addVersion(assetId, { filename: 'IMG_0001-edit.jpg' });
        expect(await ids({ limit: 10, q: 'canon' })).toEqual([]);
        expect(await ids({ limit: 10, q: 'edit' })).toEqual([assetId]);
        await catalog.publishRun(runId, { extra: { make: 'Nikon' } }, at(20));
        expect(await ids({ limit: 10, q: 'nikon' })).toEqual([]);

        // Going back to v1 brings back its metadata (now Nikon) and its filename.
        await catalog.setCurrentVersion(assetId, 1, at(30));
        expect(await ids({ limit: 10, q: 'nikon' })).toEqual([assetId]);
        expect(await ids({ limit: 10, q: 'edit' })).toEqual([]);
      });

      it('hostile search input never throws and never acts as syntax', async () => {
        const photo = await create({ filename: 'photo beach.jpg' });
        const other = await create({ filename: 'orchid.jpg', tags: ['near'] });
        const hostile = [
          '"',
          "'",
          '""',
          '*',
          '**',
          'OR',
          'AND',
          'NOT',
          'NEAR',
          'photo OR',
          '-photo',
          'photo:',
          'filename:photo',
          'words:photo',
          '{words}: photo',
          '(photo',
          'photo)',
          'NEAR(photo beach)',
          '"photo',
          "photo'",
          'photo*',
          '^photo',
          '+photo',
          'photo & beach',
          'photo | orchid',
          '!photo',
          'photo:*',
          "'; drop table assets; --",
          'x" OR 1=1 --',
          '\\',
          '%',
          '_',
          '\u0000',
          '😀',
          '\u0301',
          'x'.repeat(5000),
          'a '.repeat(500),
          'p'.repeat(70),
        ];
        for (const q of hostile) {
          const page = await catalog.listAssets({ limit: 10, q });
          const found = page.items.map((a) => a.id);
          expect(
            found.every((id) => id === photo.assetId || id === other.assetId),
            q,
          ).toBe(true);
        }
        const only = async (q: string) => ids({ limit: 10, q });
        expect(await only('-photo')).toEqual([photo.assetId]);
        expect(await only('photo:')).toEqual([photo.assetId]);
        expect(await only('"photo')).toEqual([photo.assetId]);
        expect(await only('(photo')).toEqual([photo.assetId]);
        expect(await only('NEAR(photo beach)')).toEqual([]);
        expect(await only('near')).toEqual([other.assetId]);
        expect(await only('photo OR orchid')).toEqual([]);
        expect(await only('photo | orchid')).toEqual([]);
        expect(await only('photo & beach')).toEqual([photo.assetId]);
        expect(await only("'; drop table assets; --")).toEqual([]);
        expect(await catalog.getAsset(photo.assetId)).toBeDefined();
        expect(await ids({ limit: 10 })).toEqual([other.assetId, photo.assetId]);
      });

      it('search combines with projectId, status and cursor pagination', async () => {
        const expected: string[] = [];
        for (let i = 0; i < 12; i++) {
          expected.push((await create({ projectId: 'prj_s', filename: `sunset-${i}.jpg` })).assetId);
          await create({ projectId: 'prj_s', filename: `beach-${i}.jpg` });
          if (i % 4 === 0) await create({ projectId: 'prj_other', filename: `sunset-other-${i}.jpg` });
        }
        expected.reverse();
        const sizes: number[] = [];
        const seen: string[] = [];
        let beforeId: string | undefined;
        for (let page = 0; page < 10; page++) {
          const result = await catalog.listAssets({ projectId: 'prj_s', q: 'sunset', limit: 5, beforeId });
          sizes.push(result.items.length);
          seen.push(...result.items.map((a) => a.id));
          if (result.nextBeforeId === null) break;
          beforeId = result.nextBeforeId;
        }
        expect(sizes).toEqual([5, 5, 2]);
        expect(seen).toEqual(expected);

        const target = await catalog.listAssets({ projectId: 'prj_s', q: 'sunset 7', limit: 10 });
        expect(target.items.map((a) => a.filename)).toEqual(['sunset-7.jpg']);
        const runOf = async (assetId: string) => (await catalog.listRunsWithSteps(assetId))[0]?.id ?? '';
        await catalog.publishRun(await runOf(expected[0] ?? ''), {}, at(1));
        await catalog.publishRun(await runOf(expected[5] ?? ''), {}, at(1));
        expect(await ids({ limit: 10, q: 'sunset', status: 'ready', projectId: 'prj_s' })).toEqual([
          expected[0],
          expected[5],
        ]);
        expect(await ids({ limit: 100, q: 'sunset' })).toHaveLength(15);
      });
    });

    describe('soft delete, restore and purge', () => {
      it('soft delete hides an asset from listings; deleted: true lists only deleted ones; restore brings it back', async () => {
        const a = await create();
        const b = await create();
        expect(await catalog.softDeleteAsset(a.assetId, at(50))).toBe(true);
        expect(await catalog.softDeleteAsset(a.assetId, at(51))).toBe(false);

        expect(await ids({ limit: 10 })).toEqual([b.assetId]);
        const deleted = await catalog.listAssets({ limit: 10, deleted: true });
        expect(deleted.items.map((x) => [x.id, x.deletedAt])).toEqual([[a.assetId, at(50)]]);
        expect((await catalog.getAsset(a.assetId))?.deletedAt).toBe(at(50));
        expect(await catalog.countAssetsByStatus()).toEqual({ processing: 1, ready: 0, failed: 0 });

        expect(await catalog.restoreAsset(a.assetId, at(60))).toBe(true);
        expect(await catalog.restoreAsset(a.assetId, at(61))).toBe(false);
        expect(await ids({ limit: 10 })).toEqual([b.assetId, a.assetId]);
        expect(await ids({ limit: 10, deleted: true })).toEqual([]);
        expect((await catalog.getAsset(a.assetId))?.deletedAt).toBeNull();
        expect(await catalog.countAssetsByStatus()).toEqual({ processing: 2, ready: 0, failed: 0 });
      });

      it('listAssetsDeletedBefore returns assets deleted strictly before the time, oldest deletion first', async () => {
        const late = await create();
        const early = await create();
        const middle = await create();
        await create();
        await catalog.softDeleteAsset(late.assetId, at(30));
        await catalog.softDeleteAsset(early.assetId, at(10));
        await catalog.softDeleteAsset(middle.assetId, at(20));
        const deletedBefore = async (time: string, limit: number) =>
          (await catalog.listAssetsDeletedBefore(time, limit)).map((a) => a.id);
        expect(await deletedBefore(at(25), 10)).toEqual([early.assetId, middle.assetId]);
        expect(await deletedBefore(at(31), 2)).toEqual([early.assetId, middle.assetId]);
        expect(await deletedBefore(at(31), 10)).toEqual([early.assetId, middle.assetId, late.assetId]);
        expect(await deletedBefore(at(10), 10)).toEqual([]);
        await catalog.restoreAsset(middle.assetId, at(40));
        expect(await deletedBefore(at(31), 10)).toEqual([early.assetId, late.assetId]);
      });

      it('purgeAsset removes every row of the asset and returns all its blob keys', async () => {
        const keep = await create({ filename: 'keep me.jpg' });
        const { assetId, runId } = await create({ filename: 'purge me.jpg', mediaId: 'gone' });
        const keepStep = newId('stp');
        await catalog.startStep({ id: keepStep, runId: keep.runId, name: 'x', attempt: 1, startedAt: at(1) });
        await catalog.putRendition({
          assetId: keep.assetId,
          version: 1,
          name: 'thumbnail',
          key: `renditions/${keep.assetId}/1/thumbnail`,
          contentType: 'image/webp',
          size: 1,
          createdAt: at(1),
        });
        await catalog.startStep({ id: newId('stp'), runId, name: 'decode', attempt: 1, startedAt: at(2) });
        const v2 = makeVersion(assetId);
        const v2Run = newId('run');
        await catalog.createVersionWithRun(v2, v2Run);
        await catalog.startStep({
          id: newId('stp'),
          runId: v2Run,
          name: 'decode',
          attempt: 1,
          startedAt: at(3),
        });
        const renditionKeys: string[] = [];
        for (const [version, name] of [
          [1, 'thumbnail'],
          [1, 'preview'],
          [2, 'thumbnail'],
        ] as const) {
          const key = `renditions/${assetId}/${version}/${name}`;
          renditionKeys.push(key);
          await catalog.putRendition({
            assetId,
            version,
            name,
            key,
            contentType: 'image/webp',
            size: 10,
            createdAt: at(4),
          });
        }
        await catalog.publishRun(v2Run, { extra: { make: 'Purgeable' } }, at(5));
        await catalog.softDeleteAsset(assetId, at(6));
        const v1Key = (await catalog.getVersion(assetId, 1))?.originalKey ?? '';

        const { keys } = await catalog.purgeAsset(assetId);
        expect([...keys].sort()).toEqual([v1Key, v2.originalKey, ...renditionKeys].sort());

        expect(await catalog.getAsset(assetId)).toBeUndefined();
        expect(await catalog.listVersions(assetId)).toEqual([]);
        expect(await catalog.getVersion(assetId, 1)).toBeUndefined();
        expect(await catalog.getRun(runId)).toBeUndefined();
        expect(await catalog.getRun(v2Run)).toBeUndefined();
        expect(await catalog.listSteps(runId)).toEqual([]);
        expect(await catalog.listSteps(v2Run)).toEqual([]);
        expect(await catalog.listRunsWithSteps(assetId)).toEqual([]);
        expect(await catalog.listRenditions(assetId, 1)).toEqual([]);
        expect(await catalog.listRenditions(assetId, 2)).toEqual([]);
        expect(await ids({ limit: 10, deleted: true })).toEqual([]);
        expect(await ids({ limit: 10, q: 'purge', deleted: true })).toEqual([]);
        expect(await ids({ limit: 10, q: 'purgeable', deleted: true })).toEqual([]);
        expect(await catalog.listAssetsDeletedBefore(at(1000), 10)).toEqual([]);
        expect(await catalog.purgeAsset(assetId)).toEqual({ keys: [] });

        // The other asset is untouched.
        expect(await ids({ limit: 10, q: 'keep' })).toEqual([keep.assetId]);
        expect((await catalog.listSteps(keep.runId)).map((s) => s.id)).toEqual([keepStep]);
        expect(await catalog.listRenditions(keep.assetId, 1)).toHaveLength(1);
        expect(await catalog.getRun(keep.runId)).toBeDefined();
      });

      it('deleted assets are searchable only with deleted: true', async () => {
        const a = await create({ filename: 'hidden gem.jpg' });
        const b = await create({ filename: 'hidden treasure.jpg' });
        await catalog.softDeleteAsset(a.assetId, at(5));
        expect(await ids({ limit: 10, q: 'hidden' })).toEqual([b.assetId]);
        expect(await ids({ limit: 10, q: 'hidden', deleted: true })).toEqual([a.assetId]);
        expect(await ids({ limit: 10, q: 'gem' })).toEqual([]);
      });
    });

    describe('images: perceptual hashes, near-duplicates, original keys', () => {
      const BASE = '0123456789abcdef';

      /** A ready image asset (in `projectId`) whose current version has `hash`. */
      async function image(hash: string | null, overrides: Partial<NewAsset> = {}): Promise<string> {
        const { assetId, runId } = await create({ type: 'image', mimeType: MIME.image, ...overrides });
        await catalog.publishRun(runId, { width: 10, perceptualHash: hash }, at(100));
        return assetId;
      }

      async function similar(
        assetId: string,
        maxDistance: number,
        limit = 100,
      ): Promise<[string, number][] | undefined> {
        const found = await catalog.findSimilar(assetId, { maxDistance, limit });
        return found?.map((s) => [s.asset.id, s.distance]);
      }

      it('publishRun records perceptualHash on the version and the asset; absent keeps it, null clears it', async () => {
        const { assetId, runId } = await create();
        expect((await catalog.getAsset(assetId))?.perceptualHash).toBeNull();
        await catalog.publishRun(runId, { perceptualHash: BASE }, at(10));
        expect((await catalog.getAsset(assetId))?.perceptualHash).toBe(BASE);
        expect((await catalog.getVersion(assetId, 1))?.perceptualHash).toBe(BASE);
        await catalog.publishRun(runId, { width: 5 }, at(20));
        expect((await catalog.getAsset(assetId))?.perceptualHash).toBe(BASE);
        await catalog.publishRun(runId, { perceptualHash: null }, at(30));
        expect((await catalog.getAsset(assetId))?.perceptualHash).toBeNull();
        expect((await catalog.getVersion(assetId, 1))?.perceptualHash).toBeNull();
      });

      it('publishRun rejects a malformed perceptualHash with VALIDATION_FAILED and changes nothing', async () => {
        const { assetId, runId } = await create();
        for (const bad of ['0123456789ABCDEF', '0123', '0123456789abcdeg', '0123456789abcdef0']) {
          await expectCode(catalog.publishRun(runId, { perceptualHash: bad }, at(10)), 'VALIDATION_FAILED');
        }
        expect(await catalog.getRun(runId)).toMatchObject({ status: 'queued', finishedAt: null });
        expect(await catalog.getAsset(assetId)).toMatchObject({ status: 'processing', perceptualHash: null });
      });

      it('versions: a new version clears the asset hash, its own run sets it, setCurrentVersion brings one back', async () => {
        const v1Hash = BASE;
        const v2Hash = flipBits(BASE, spreadBits(40));
        const assetId = await image(v1Hash);
        const v2Run = await addVersion(assetId);
        expect((await catalog.getAsset(assetId))?.perceptualHash).toBeNull();
        expect((await catalog.getVersion(assetId, 1))?.perceptualHash).toBe(v1Hash);
        expect((await catalog.getVersion(assetId, 2))?.perceptualHash).toBeNull();

        await catalog.publishRun(v2Run, { perceptualHash: v2Hash }, at(200));
        expect((await catalog.getAsset(assetId))?.perceptualHash).toBe(v2Hash);
        expect((await catalog.setCurrentVersion(assetId, 1, at(210))).perceptualHash).toBe(v1Hash);
        expect((await catalog.getAsset(assetId))?.perceptualHash).toBe(v1Hash);

        // A late run of version 2 records its hash on version 2 only.
        const v2Late = flipBits(v2Hash, [0]);
        await catalog.publishRun(v2Run, { perceptualHash: v2Late }, at(220));
        expect((await catalog.getVersion(assetId, 2))?.perceptualHash).toBe(v2Late);
        expect((await catalog.getAsset(assetId))?.perceptualHash).toBe(v1Hash);
      });

      it('findSimilar lists the project images within maxDistance, nearest first, never itself or other projects', async () => {
        const query = await image(BASE, { projectId: 'prj_dup' });
        const same = await image(BASE, { projectId: 'prj_dup' });
        const d3 = await image(flipBits(BASE, spreadBits(3)), { projectId: 'prj_dup' });
        const d6 = await image(flipBits(BASE, [5, 17, 40, 41, 42, 63]), { projectId: 'prj_dup' });
        const d10 = await image(flipBits(BASE, spreadBits(10)), { projectId: 'prj_dup' });
        await image(flipBits(BASE, spreadBits(11)), { projectId: 'prj_dup' });
        await image(flipBits(BASE, spreadBits(32)), { projectId: 'prj_dup' });
        await image(null, { projectId: 'prj_dup' });
        await image(BASE, { projectId: 'prj_other' });

        expect(await similar(query, 10)).toEqual([
          [same, 0],
          [d3, 3],
          [d6, 6],
          [d10, 10],
        ]);
        expect(await similar(query, 6)).toEqual([
          [same, 0],
          [d3, 3],
          [d6, 6],
        ]);
        expect(await similar(query, 0)).toEqual([[same, 0]]);
        expect(await similar(query, 10, 2)).toEqual([
          [same, 0],
          [d3, 3],
        ]);
        // Symmetric: the copy finds the query and its twin (and not itself); d3 is 9 bits from it.
        expect(await similar(d6, 6)).toEqual([query, same].sort().map((id) => [id, 6]));
      });

      it('findSimilar breaks distance ties by id and lists an asset matched in several bands once', async () => {
        const query = await image(BASE, { projectId: 'prj_ties' });
        const copies: string[] = [];
        for (let i = 0; i < 5; i++)
          copies.push(await image(flipBits(BASE, [i * 13]), { projectId: 'prj_ties' }));
        const found = await similar(query, 4);
        expect(found).toEqual([...copies].sort().map((id) => [id, 1]));
      });

      it('findSimilar finds the index worst case: 12 flips spread 3 per band at maxDistance 12', async () => {
        const query = await image(BASE, { projectId: 'prj_far' });
        const d12 = await image(flipBits(BASE, spreadBits(12)), { projectId: 'prj_far' });
        const d13 = await image(flipBits(BASE, spreadBits(13)), { projectId: 'prj_far' });
        expect(await similar(query, 12)).toEqual([[d12, 12]]);
        expect(await similar(query, 11)).toEqual([]);
        expect(await similar(d13, 1)).toEqual([[d12, 1]]);
      });

      it('findSimilar leaves out deleted, processing, failed and non-image assets, and follows the current version', async () => {
        const projectId = 'prj_states';
        const query = await image(BASE, { projectId });
        const copy = await image(flipBits(BASE, [1]), { projectId });
        const ids = async () => (await similar(query, 10))?.map(([id]) => id);
        expect(await ids()).toEqual([copy]);

        await catalog.softDeleteAsset(copy, at(300));
        expect(await ids()).toEqual([]);
        await catalog.restoreAsset(copy, at(310));
        expect(await ids()).toEqual([copy]);

        // Reprocessing keeps the hash but the asset is not ready until the run ends.
        const rerun = newId('run');
        await catalog.createRun(copy, rerun, at(320));
        expect(await ids()).toEqual([]);
        await catalog.failRun(rerun, 'broken', at(330));
        expect(await ids()).toEqual([]);
        const again = newId('run');
        await catalog.createRun(copy, again, at(340));
        await catalog.publishRun(again, {}, at(350));
        expect(await ids()).toEqual([copy]);

        // A new version replaces the hash: not listed while processing, then listed by its own hash.
        const v2Run = await addVersion(copy);
        expect(await ids()).toEqual([]);
        await catalog.publishRun(v2Run, { perceptualHash: flipBits(BASE, spreadBits(30)) }, at(360));
        expect(await ids()).toEqual([]);
        await catalog.setCurrentVersion(copy, 1, at(370));
        expect(await ids()).toEqual([copy]);
        expect(await similar(copy, 1)).toEqual([[query, 1]]);

        // A video's hash (if a pipeline ever recorded one) is not indexed.
        const { runId: videoRun } = await create({ projectId, type: 'video', mimeType: MIME.video });
        await catalog.publishRun(videoRun, { perceptualHash: BASE }, at(380));
        expect(await ids()).toEqual([copy]);
      });

      it('findSimilar: undefined for an unknown or purged asset, [] without a hash, VALIDATION_FAILED for bad options', async () => {
        expect(await catalog.findSimilar(newId('ast'), { maxDistance: 10, limit: 20 })).toBeUndefined();
        const noHash = await create({ projectId: 'prj_none' });
        expect(await catalog.findSimilar(noHash.assetId, { maxDistance: 10, limit: 20 })).toEqual([]);

        const query = await image(BASE, { projectId: 'prj_purge' });
        const copy = await image(BASE, { projectId: 'prj_purge' });
        await catalog.purgeAsset(copy);
        expect(await similar(query, 10)).toEqual([]);
        await catalog.purgeAsset(query);
        expect(await catalog.findSimilar(query, { maxDistance: 10, limit: 20 })).toBeUndefined();

        const live = await image(BASE, { projectId: 'prj_bad' });
        for (const options of [
          { maxDistance: -1, limit: 20 },
          { maxDistance: 13, limit: 20 },
          { maxDistance: 2.5, limit: 20 },
          { maxDistance: 10, limit: 0 },
          { maxDistance: 10, limit: 101 },
        ]) {
          await expectCode(catalog.findSimilar(live, options), 'VALIDATION_FAILED');
        }
      });

      it('findVersionByOriginalKey finds any version by the key of its original', async () => {
        const input = makeAsset();
        const runId = newId('run');
        await catalog.createAssetWithRun(input, runId);
        await catalog.publishRun(runId, { perceptualHash: BASE }, at(5));
        const v2 = makeVersion(input.id);
        await catalog.createVersionWithRun(v2, newId('run'));

        expect(await catalog.findVersionByOriginalKey(input.originalKey)).toEqual(
          await catalog.getVersion(input.id, 1),
        );
        expect(await catalog.findVersionByOriginalKey(input.originalKey)).toMatchObject({
          assetId: input.id,
          version: 1,
          status: 'ready',
          perceptualHash: BASE,
        });
        expect(await catalog.findVersionByOriginalKey(v2.originalKey)).toMatchObject({
          assetId: input.id,
          version: 2,
          status: 'processing',
        });
        expect(await catalog.findVersionByOriginalKey(`${input.originalKey}x`)).toBeUndefined();
        expect(await catalog.findVersionByOriginalKey('')).toBeUndefined();

        // A deleted asset's versions are still found (the caller decides); a purged one's are gone.
        await catalog.softDeleteAsset(input.id, at(6));
        expect((await catalog.findVersionByOriginalKey(v2.originalKey))?.version).toBe(2);
        await catalog.purgeAsset(input.id);
        expect(await catalog.findVersionByOriginalKey(input.originalKey)).toBeUndefined();
      });
    });

    describe('projects', () => {
      it('the migration creates the public project default without limits', async () => {
        expect(await catalog.getProject('default')).toMatchObject({
          id: 'default',
          name: 'Default',
          visibility: 'public',
          duplicatePolicy: 'link',
          limits: {
            maxUploadBytes: null,
            maxTotalBytes: null,
            maxVideoDurationSec: null,
            allowedTypes: null,
          },
        });
        expect((await catalog.listProjects()).map((p) => p.id)).toEqual(['default']);
      });

      it('createProject stores a project; a taken id rejects PROJECT_EXISTS and keeps the stored one', async () => {
        const project = makeProject({ id: 'marketing' });
        expect(await catalog.createProject(project)).toEqual(project);
        expect(await catalog.getProject('marketing')).toEqual(project);

        const noLimits = makeProject({
          id: 'a-first',
          visibility: 'public',
          duplicatePolicy: 'keep',
          limits: {
            maxUploadBytes: null,
            maxTotalBytes: null,
            maxVideoDurationSec: null,
            allowedTypes: null,
          },
        });
        await catalog.createProject(noLimits);
        expect(await catalog.getProject('a-first')).toEqual(noLimits);

        await expectCode(catalog.createProject({ ...project, name: 'Other' }), 'PROJECT_EXISTS');
        await expectCode(catalog.createProject(makeProject({ id: 'default' })), 'PROJECT_EXISTS');
        expect(await catalog.getProject('marketing')).toEqual(project);
        expect((await catalog.getProject('default'))?.name).toBe('Default');
        expect((await catalog.listProjects()).map((p) => p.id)).toEqual(['a-first', 'default', 'marketing']);
      });

      it('updateProject changes settings and merges limits partially; null clears one limit', async () => {
        const project = makeProject({ id: 'media' });
        await catalog.createProject(project);
        const renamed = await catalog.updateProject('media', { name: 'Media', visibility: 'public' }, at(10));
        expect(renamed).toEqual({ ...project, name: 'Media', visibility: 'public', updatedAt: at(10) });

        const limited = await catalog.updateProject(
          'media',
          { duplicatePolicy: 'link', limits: { maxUploadBytes: 100, maxTotalBytes: null } },
          at(20),
        );
        expect(limited).toEqual({
          ...project,
          name: 'Media',
          visibility: 'public',
          duplicatePolicy: 'link',
          limits: {
            maxUploadBytes: 100,
            maxTotalBytes: null,
            maxVideoDurationSec: 12.5,
            allowedTypes: ['image', 'video'],
          },
          createdAt: project.createdAt,
          updatedAt: at(20),
        });
        expect(await catalog.getProject('media')).toEqual(limited);

        const cleared = await catalog.updateProject(
          'media',
          { limits: { allowedTypes: null, maxVideoDurationSec: 600 } },
          at(30),
        );
        expect(cleared?.limits).toEqual({
          maxUploadBytes: 100,
          maxTotalBytes: null,
          maxVideoDurationSec: 600,
          allowedTypes: null,
        });
        expect(await catalog.getProject('media')).toEqual(cleared);
        expect((await catalog.getProject('default'))?.name).toBe('Default');
      });

      it('exposeGps is stored, defaults to false for the project default, and updateProject changes it alone', async () => {
        expect((await catalog.getProject('default'))?.exposeGps).toBe(false);
        const open = makeProject({ id: 'gps-on', exposeGps: true });
        expect(await catalog.createProject(open)).toEqual(open);
        expect(await catalog.getProject('gps-on')).toEqual(open);
        await catalog.createProject(makeProject({ id: 'gps-off' }));
        expect((await catalog.getProject('gps-off'))?.exposeGps).toBe(false);

        const off = await catalog.updateProject('gps-on', { exposeGps: false }, at(10));
        expect(off).toEqual({ ...open, exposeGps: false, updatedAt: at(10) });
        expect(await catalog.getProject('gps-on')).toEqual(off);
        const renamed = await catalog.updateProject('gps-on', { name: 'Field work' }, at(20));
        expect(renamed?.exposeGps).toBe(false);
        const on = await catalog.updateProject('gps-on', { exposeGps: true }, at(30));
        expect(on).toEqual({ ...open, name: 'Field work', exposeGps: true, updatedAt: at(30) });
        expect((await catalog.listProjects()).map((p) => [p.id, p.exposeGps])).toEqual([
          ['default', false],
          ['gps-off', false],
          ['gps-on', true],
        ]);
      });

      it('projectUsage counts assets (deleted ones too) and the bytes of all their versions', async () => {
        const a = await create({ projectId: 'usage', size: 5_000_000_000 });
        const b = await create({ projectId: 'usage', size: 100 });
        await create({ projectId: 'elsewhere', size: 7 });
        await addVersion(a.assetId, { size: 3_000_000_000 });
        expect(await catalog.projectUsage('usage')).toEqual({ assets: 2, bytes: 8_000_000_100 });
        await catalog.softDeleteAsset(b.assetId, at(1));
        expect(await catalog.projectUsage('usage')).toEqual({ assets: 2, bytes: 8_000_000_100 });
        await catalog.purgeAsset(b.assetId);
        expect(await catalog.projectUsage('usage')).toEqual({ assets: 1, bytes: 8_000_000_000 });
        expect(await catalog.projectUsage('elsewhere')).toEqual({ assets: 1, bytes: 7 });
      });
    });

    describe('api keys', () => {
      it('creates, finds by prefix, lists, revokes once and records use', async () => {
        const older = makeApiKey({ createdAt: at(1), scopes: ['admin'] });
        const newer = makeApiKey({ createdAt: at(2), projectId: 'marketing', scopes: ['read'] });
        await catalog.createApiKey(newer);
        await catalog.createApiKey(older);
        expect(await catalog.getApiKeyByPrefix(older.prefix)).toEqual(older);
        expect(await catalog.getApiKeyByPrefix(newer.prefix)).toEqual(newer);
        expect(await catalog.listApiKeys()).toEqual([older, newer]);

        await expect(catalog.createApiKey(makeApiKey({ prefix: older.prefix }))).rejects.toThrow();

        expect(await catalog.revokeApiKey(older.id, at(10))).toBe(true);
        expect(await catalog.revokeApiKey(older.id, at(11))).toBe(false);
        expect((await catalog.getApiKeyByPrefix(older.prefix))?.revokedAt).toBe(at(10));
        expect((await catalog.getApiKeyByPrefix(newer.prefix))?.revokedAt).toBeNull();

        await catalog.touchApiKey(newer.id, at(20));
        expect((await catalog.getApiKeyByPrefix(newer.prefix))?.lastUsedAt).toBe(at(20));
        await catalog.touchApiKey(newer.id, at(15));
        expect((await catalog.getApiKeyByPrefix(newer.prefix))?.lastUsedAt).toBe(at(20));
        await catalog.touchApiKey(newer.id, at(30));
        expect(await catalog.getApiKeyByPrefix(newer.prefix)).toEqual({ ...newer, lastUsedAt: at(30) });
        expect((await catalog.getApiKeyByPrefix(older.prefix))?.lastUsedAt).toBeNull();
      });
    });

    describe('uploads', () => {
      it('round-trips an upload session', async () => {
        const full = makeUpload({
          protocol: 'multipart',
          mediaId: 'client-7',
          checksum: `sha256:${sha('x')}`,
          storeUploadId: 'store-1',
          createdBy: 'key_1',
        });
        const minimal = makeUpload({ size: null, declaredType: null, filename: 'ünï 📷.jpg' });
        await catalog.createUpload(full);
        await catalog.createUpload(minimal);
        expect(await catalog.getUpload(full.id)).toEqual(full);
        expect(await catalog.getUpload(minimal.id)).toEqual(minimal);
        await expect(catalog.createUpload(full)).rejects.toThrow();
      });

      it('goes open -> completing -> open -> completing -> completed', async () => {
        const upload = makeUpload();
        await catalog.createUpload(upload);
        expect(await catalog.claimUploadCompletion(upload.id)).toBe(true);
        expect(await catalog.claimUploadCompletion(upload.id)).toBe(false);
        expect((await catalog.getUpload(upload.id))?.state).toBe('completing');

        await catalog.reopenUpload(upload.id);
        expect((await catalog.getUpload(upload.id))?.state).toBe('open');
        expect(await catalog.claimUploadCompletion(upload.id)).toBe(true);

        const assetId = newId('ast');
        await catalog.finishUpload(upload.id, assetId);
        expect(await catalog.getUpload(upload.id)).toEqual({ ...upload, state: 'completed', assetId });
        expect(await catalog.claimUploadCompletion(upload.id)).toBe(false);
        await catalog.reopenUpload(upload.id);
        expect((await catalog.getUpload(upload.id))?.state).toBe('completed');
        expect(await catalog.abortUpload(upload.id)).toBe(false);
        expect((await catalog.getUpload(upload.id))?.state).toBe('completed');

        // A repeated finish with the same asset is fine; anything else is a conflict.
        await catalog.finishUpload(upload.id, assetId);
        await expectCode(catalog.finishUpload(upload.id, newId('ast')), 'UPLOAD_CONFLICT');
        await expectCode(catalog.finishUpload(newId('upl'), assetId), 'UPLOAD_NOT_FOUND');
        expect((await catalog.getUpload(upload.id))?.assetId).toBe(assetId);
      });

      it('aborts from open or completing, never from completed; an aborted upload cannot be claimed', async () => {
        const open = makeUpload();
        const completing = makeUpload();
        await catalog.createUpload(open);
        await catalog.createUpload(completing);
        await catalog.claimUploadCompletion(completing.id);
        expect(await catalog.abortUpload(open.id)).toBe(true);
        expect(await catalog.abortUpload(completing.id)).toBe(true);
        expect((await catalog.getUpload(open.id))?.state).toBe('aborted');
        expect((await catalog.getUpload(completing.id))?.state).toBe('aborted');
        expect(await catalog.claimUploadCompletion(open.id)).toBe(false);
        await catalog.reopenUpload(completing.id);
        expect((await catalog.getUpload(completing.id))?.state).toBe('aborted');
        await expectCode(catalog.finishUpload(completing.id, newId('ast')), 'UPLOAD_CONFLICT');
      });

      it('listExpiredUploads returns open uploads that expired before the time, soonest first', async () => {
        const expiredLater = makeUpload({ expiresAt: at(200) });
        const expiredFirst = makeUpload({ expiresAt: at(100) });
        const notYet = makeUpload({ expiresAt: at(300) });
        const completing = makeUpload({ expiresAt: at(50) });
        const aborted = makeUpload({ expiresAt: at(50) });
        for (const u of [expiredLater, expiredFirst, notYet, completing, aborted])
          await catalog.createUpload(u);
        await catalog.claimUploadCompletion(completing.id);
        await catalog.abortUpload(aborted.id);
        const expired = async (time: string, limit: number) =>
          (await catalog.listExpiredUploads(time, limit)).map((u) => u.id);
        expect(await expired(at(300), 10)).toEqual([expiredFirst.id, expiredLater.id]);
        expect(await expired(at(300), 1)).toEqual([expiredFirst.id]);
        expect(await expired(at(200), 10)).toEqual([expiredFirst.id]);
        expect(await expired(at(100), 10)).toEqual([]);
        expect((await catalog.listExpiredUploads(at(150), 10))[0]).toEqual(expiredFirst);
      });

      it('a timed claim can be taken over once it is stale (its process died), never while fresh', async () => {
        const upload = makeUpload({ expiresAt: at(10_000) });
        await catalog.createUpload(upload);
        expect(await catalog.claimUploadCompletion(upload.id, { at: at(100), staleBefore: at(0) })).toBe(
          true,
        );
        // A fresh claim holds against timed and untimed claimers alike.
        expect(await catalog.claimUploadCompletion(upload.id, { at: at(150), staleBefore: at(50) })).toBe(
          false,
        );
        expect(await catalog.claimUploadCompletion(upload.id)).toBe(false);
        // Past the stale mark, exactly one of several claimers takes it over.
        const takeovers = await Promise.all(
          [0, 1, 2].map(() =>
            catalog.claimUploadCompletion(upload.id, { at: at(500), staleBefore: at(200) }),
          ),
        );
        expect(takeovers.filter(Boolean)).toHaveLength(1);
        expect((await catalog.getUpload(upload.id))?.state).toBe('completing');
        // The takeover is a fresh claim in its turn.
        expect(await catalog.claimUploadCompletion(upload.id, { at: at(600), staleBefore: at(300) })).toBe(
          false,
        );
        await catalog.finishUpload(upload.id, newId('ast'));
        expect(await catalog.claimUploadCompletion(upload.id, { at: at(9000), staleBefore: at(8000) })).toBe(
          false,
        );
      });

      it('listExpiredUploads with staleBefore also returns expired uploads whose claim is stale', async () => {
        const open = makeUpload({ expiresAt: at(100) });
        const staleClaim = makeUpload({ expiresAt: at(50) });
        const freshClaim = makeUpload({ expiresAt: at(60) });
        const untimedClaim = makeUpload({ expiresAt: at(70) });
        for (const u of [open, staleClaim, freshClaim, untimedClaim]) await catalog.createUpload(u);
        await catalog.claimUploadCompletion(staleClaim.id, { at: at(10), staleBefore: at(0) });
        await catalog.claimUploadCompletion(freshClaim.id, { at: at(900), staleBefore: at(0) });
        await catalog.claimUploadCompletion(untimedClaim.id);
        const ids = async (staleBefore?: string) =>
          (await catalog.listExpiredUploads(at(1000), 10, staleBefore)).map((u) => u.id);
        expect(await ids()).toEqual([open.id]);
        expect(await ids(at(500))).toEqual([staleClaim.id, untimedClaim.id, open.id]);
      });

      it('concurrent claims of one upload: exactly one caller wins', async () => {
        const uploads = Array.from({ length: 10 }, () => makeUpload());
        for (const upload of uploads) await catalog.createUpload(upload);
        const results = await Promise.all(
          uploads.flatMap((upload) => [0, 1, 2].map(() => catalog.claimUploadCompletion(upload.id))),
        );
        for (let i = 0; i < uploads.length; i++) {
          expect(results.slice(i * 3, i * 3 + 3).filter(Boolean)).toHaveLength(1);
        }
        for (const upload of uploads) expect((await catalog.getUpload(upload.id))?.state).toBe('completing');
      });
    });

    describe('leases', () => {
      it('one holder at a time; a release by anyone else changes nothing', async () => {
        expect(await catalog.acquireLease('tus:a', 'one', at(0), at(15))).toBe(true);
        expect(await catalog.acquireLease('tus:a', 'two', at(1), at(16))).toBe(false);
        // Another name is another lease.
        expect(await catalog.acquireLease('tus:b', 'two', at(1), at(16))).toBe(true);
        await catalog.releaseLease('tus:a', 'two');
        expect(await catalog.acquireLease('tus:a', 'two', at(2), at(17))).toBe(false);
        await catalog.releaseLease('tus:a', 'one');
        expect(await catalog.acquireLease('tus:a', 'two', at(3), at(18))).toBe(true);
      });

      it('an expired lease can be taken; its old holder then learns it lost it', async () => {
        expect(await catalog.acquireLease('tus:a', 'one', at(0), at(15))).toBe(true);
        // Renewed in time: still one's at 20.
        expect(await catalog.renewLease('tus:a', 'one', at(30))).toEqual({
          held: true,
          releaseRequested: false,
        });
        expect(await catalog.acquireLease('tus:a', 'two', at(20), at(35))).toBe(false);
        expect(await catalog.acquireLease('tus:a', 'two', at(31), at(46))).toBe(true);
        expect(await catalog.renewLease('tus:a', 'one', at(60))).toEqual({
          held: false,
          releaseRequested: false,
        });
        // one's late release does not free two's lease.
        await catalog.releaseLease('tus:a', 'one');
        expect(await catalog.acquireLease('tus:a', 'three', at(32), at(47))).toBe(false);
      });

      it('a release request reaches the holder on its next renewal, and a new holder starts without it', async () => {
        await catalog.requestLeaseRelease('tus:nobody'); // nobody holds it: nothing to ask
        expect(await catalog.acquireLease('tus:nobody', 'one', at(0), at(15))).toBe(true);
        expect(await catalog.renewLease('tus:nobody', 'one', at(15))).toEqual({
          held: true,
          releaseRequested: false,
        });
        await catalog.requestLeaseRelease('tus:nobody');
        expect(await catalog.renewLease('tus:nobody', 'one', at(16))).toEqual({
          held: true,
          releaseRequested: true,
        });
        await catalog.releaseLease('tus:nobody', 'one');
        expect(await catalog.acquireLease('tus:nobody', 'two', at(2), at(17))).toBe(true);
        expect(await catalog.renewLease('tus:nobody', 'two', at(18))).toEqual({
          held: true,
          releaseRequested: false,
        });
      });

      it('concurrent acquisitions of a free lease: exactly one wins', async () => {
        const names = Array.from({ length: 10 }, (_, i) => `tus:race-${i}`);
        const results = await Promise.all(
          names.flatMap((name) =>
            [0, 1, 2].map((i) => catalog.acquireLease(name, `holder-${i}`, at(0), at(15))),
          ),
        );
        for (let i = 0; i < names.length; i++) {
          expect(results.slice(i * 3, i * 3 + 3).filter(Boolean)).toHaveLength(1);
        }
      });

      it('deleteExpiredLeases forgets only leases that expired', async () => {
        await catalog.acquireLease('tus:old', 'one', at(0), at(15));
        await catalog.acquireLease('tus:new', 'one', at(0), at(100));
        expect(await catalog.deleteExpiredLeases(at(50))).toBe(1);
        expect(await catalog.renewLease('tus:old', 'one', at(200))).toEqual({
          held: false,
          releaseRequested: false,
        });
        expect(await catalog.renewLease('tus:new', 'one', at(200))).toEqual({
          held: true,
          releaseRequested: false,
        });
      });
    });
  });
}

/** The tables of migration 0001 as a database that ran only it has them (for upgrade tests). */
export interface LegacyDatabase {
  assets: {
    id: string;
    project_id: string;
    filename: string;
    type: string;
    mime_type: string;
    size: number;
    sha256: string;
    status: string;
    error: string | null;
    width: number | null;
    height: number | null;
    format: string | null;
    blurhash: string | null;
    duration_sec: number | null;
    current_version: number;
    extra: string;
    uploaded_at: string;
    processed_at: string | null;
    updated_at: string;
  };
  asset_versions: {
    asset_id: string;
    version: number;
    original_key: string;
    filename: string;
    mime_type: string;
    size: number;
    sha256: string;
    created_at: string;
  };
  runs: {
    id: string;
    asset_id: string;
    version: number;
    kind: string;
    status: string;
    error: string | null;
    attempts: number;
    created_at: string;
    started_at: string | null;
    finished_at: string | null;
  };
}

export interface LegacySeed {
  /** Ready, two versions: v1's run failed, v2 (current) succeeded; project `prj_legacy`. */
  ready: string;
  /** A video still processing in project `default`, with a queued run. */
  processing: string;
  queuedRun: string;
}

/** Writes rows as the 0001-era adapter did, into a database migrated to 0001 only. */
export async function seedLegacyCatalog(db: Kysely<LegacyDatabase>): Promise<LegacySeed> {
  const ready = newId('ast');
  const processing = newId('ast');
  const queuedRun = newId('run');
  const asset = {
    error: null,
    width: null,
    height: null,
    format: null,
    blurhash: null,
    duration_sec: null,
    extra: '{}',
    processed_at: null,
  };
  await db
    .insertInto('assets')
    .values([
      {
        ...asset,
        id: ready,
        project_id: 'prj_legacy',
        filename: 'Legacy Café.jpg',
        type: 'image',
        mime_type: 'image/jpeg',
        size: 5_000_000_000,
        sha256: sha('legacy v2'),
        status: 'ready',
        width: 100,
        height: 50,
        format: 'jpeg',
        blurhash: 'LEHV6nWB2yk8',
        current_version: 2,
        extra: JSON.stringify({ make: 'Leica', iso: 100 }),
        uploaded_at: at(1),
        processed_at: at(30),
        updated_at: at(30),
      },
      {
        ...asset,
        id: processing,
        project_id: 'default',
        filename: 'clip.mp4',
        type: 'video',
        mime_type: 'video/mp4',
        size: 10,
        sha256: sha('legacy clip'),
        status: 'processing',
        current_version: 1,
        uploaded_at: at(2),
        updated_at: at(2),
      },
    ])
    .execute();
  const version = { mime_type: 'image/jpeg', created_at: at(1) };
  await db
    .insertInto('asset_versions')
    .values([
      {
        ...version,
        asset_id: ready,
        version: 1,
        original_key: `originals/${ready}/1`,
        filename: 'old.jpg',
        size: 1,
        sha256: sha('legacy v1'),
      },
      {
        ...version,
        asset_id: ready,
        version: 2,
        original_key: `originals/${ready}/2`,
        filename: 'Legacy Café.jpg',
        size: 5_000_000_000,
        sha256: sha('legacy v2'),
        created_at: at(20),
      },
      {
        asset_id: processing,
        version: 1,
        original_key: `originals/${processing}/1`,
        filename: 'clip.mp4',
        mime_type: 'video/mp4',
        size: 10,
        sha256: sha('legacy clip'),
        created_at: at(2),
      },
    ])
    .execute();
  const run = { error: null, attempts: 1, started_at: at(3) };
  await db
    .insertInto('runs')
    .values([
      {
        ...run,
        id: newId('run'),
        asset_id: ready,
        version: 1,
        kind: 'image',
        status: 'failed',
        error: 'corrupt',
        created_at: at(1),
        finished_at: at(5),
      },
      {
        ...run,
        id: newId('run'),
        asset_id: ready,
        version: 2,
        kind: 'image',
        status: 'succeeded',
        created_at: at(20),
        finished_at: at(30),
      },
      {
        ...run,
        id: queuedRun,
        asset_id: processing,
        version: 1,
        kind: 'video',
        status: 'queued',
        attempts: 0,
        created_at: at(2),
        started_at: null,
        finished_at: null,
      },
    ])
    .execute();
  return { ready, processing, queuedRun };
}

/** What a catalog upgraded from the rows of `seedLegacyCatalog` must show. */
export async function expectUpgradedCatalog(catalog: Catalog, seed: LegacySeed): Promise<void> {
  expect(await catalog.getAsset(seed.ready)).toMatchObject({
    status: 'ready',
    width: 100,
    versionNumber: 2,
    size: 5_000_000_000,
    extra: { make: 'Leica', iso: 100 },
    mediaId: null,
    tags: [],
    duplicateOf: null,
    deletedAt: null,
  });
  expect(await catalog.listVersions(seed.ready)).toMatchObject([
    {
      version: 1,
      type: 'image',
      status: 'failed',
      error: 'corrupt',
      width: null,
      extra: {},
      processedAt: at(5),
    },
    {
      version: 2,
      type: 'image',
      status: 'ready',
      error: null,
      width: 100,
      height: 50,
      format: 'jpeg',
      blurhash: 'LEHV6nWB2yk8',
      extra: { make: 'Leica', iso: 100 },
      processedAt: at(30),
    },
  ]);
  expect(await catalog.getVersion(seed.processing, 1)).toMatchObject({
    type: 'video',
    status: 'processing',
    processedAt: null,
  });

  // Existing assets are searchable, and their projects exist.
  const search = async (q: string) => (await catalog.listAssets({ limit: 10, q })).items.map((a) => a.id);
  expect(await search('leica')).toEqual([seed.ready]);
  expect(await search('legacy cafe')).toEqual([seed.ready]);
  expect(await search('clip')).toEqual([seed.processing]);
  expect((await catalog.listProjects()).map((p) => [p.id, p.name])).toEqual([
    ['default', 'Default'],
    ['prj_legacy', 'prj_legacy'],
  ]);
  expect(await catalog.getProject('prj_legacy')).toMatchObject({
    createdAt: at(1),
    visibility: 'public',
    exposeGps: false,
  });
  expect((await catalog.getAsset(seed.ready))?.perceptualHash).toBeNull();
  expect(await catalog.projectUsage('prj_legacy')).toEqual({ assets: 1, bytes: 5_000_000_001 });

  // And the new operations work on them.
  await catalog.publishRun(seed.queuedRun, { durationSec: 2 }, at(40));
  expect(await catalog.getVersion(seed.processing, 1)).toMatchObject({ status: 'ready', durationSec: 2 });
  const { asset } = await catalog.createVersionWithRun(makeVersion(seed.ready), newId('run'));
  expect(asset.versionNumber).toBe(3);
  expect(await search('leica')).toEqual([]);
  await catalog.setCurrentVersion(seed.ready, 2, at(50));
  expect(await search('leica')).toEqual([seed.ready]);
  // Assets from before 0003 join the near-duplicate index once a run records their hash.
  const [legacyRun] = await catalog.listRunsWithSteps(seed.ready);
  const newer = await catalog.createRun(seed.ready, newId('run'), at(60));
  await catalog.publishRun(newer.id, { perceptualHash: 'ffff0000ffff0000' }, at(70));
  const twin = makeAsset({ projectId: 'prj_legacy', originalKey: `originals/${newId('upl')}` });
  const twinRun = newId('run');
  await catalog.createAssetWithRun(twin, twinRun);
  await catalog.publishRun(twinRun, { perceptualHash: 'ffff0000ffff0001' }, at(80));
  expect(
    (await catalog.findSimilar(seed.ready, { maxDistance: 2, limit: 10 }))?.map((s) => [
      s.asset.id,
      s.distance,
    ]),
  ).toEqual([[twin.id, 1]]);
  expect(legacyRun).toBeDefined();
}
