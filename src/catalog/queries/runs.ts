import type { Kysely } from 'kysely';
import type { AssetFacts, Rendition, Run, RunWithSteps, StepRecord } from '../../domain/asset.js';
import { AppError } from '../../errors.js';
import type { FinishStep, NewRendition } from '../catalog.js';
import {
  intOrNull,
  type Outcome,
  outcomeOf,
  parseJsonObject,
  queuedRun,
  toNumber,
  toRendition,
  toRun,
  toStep,
} from '../rows.js';
import type { Database } from '../schema.js';
import { type CatalogDb, lockRows, write, writeTransaction } from '../write-transaction.js';
import { lockLiveAsset } from './assets.js';
import { syncSearch } from './search.js';
import { checkPerceptualHash, syncImageHash } from './similar.js';
import { versionOf } from './versions.js';

// --- runs ---------------------------------------------------------------------------------------

function runById(db: Kysely<Database>, runId: string) {
  return db.selectFrom('runs').selectAll().where('id', '=', runId);
}

/**
 * Throws `ASSET_NOT_FOUND` for an unknown or deleted asset. Keeps the facts and `processedAt` of the
 * version until the new run finishes.
 */
export async function createRun(cdb: CatalogDb, assetId: string, runId: string, at: string): Promise<Run> {
  return writeTransaction(cdb, async (trx) => {
    const asset = await lockLiveAsset(trx, cdb.dialect, assetId);
    const version = toNumber(asset.current_version);
    const runRow = queuedRun(runId, assetId, version, asset.type, at);
    await trx.insertInto('runs').values(runRow).execute();
    // Facts stay until the new run publishes; only the status says "being processed again".
    await trx
      .updateTable('asset_versions')
      .set({ status: 'processing', error: null })
      .where('asset_id', '=', assetId)
      .where('version', '=', version)
      .execute();
    await trx
      .updateTable('assets')
      .set({ status: 'processing', error: null, updated_at: at })
      .where('id', '=', assetId)
      .execute();
    return toRun(runRow);
  });
}

export async function getRun(db: Kysely<Database>, runId: string): Promise<Run | undefined> {
  const row = await runById(db, runId).executeTakeFirst();
  return row === undefined ? undefined : toRun(row);
}

export async function listRunsWithSteps(db: Kysely<Database>, assetId: string): Promise<RunWithSteps[]> {
  const runs = await db
    .selectFrom('runs')
    .selectAll()
    .where('asset_id', '=', assetId)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .execute();
  if (runs.length === 0) return [];
  const steps = await db
    .selectFrom('steps')
    .selectAll()
    .where(
      'run_id',
      'in',
      runs.map((run) => run.id),
    )
    .orderBy('started_at', 'asc')
    .orderBy('id', 'asc')
    .execute();
  const byRun = new Map<string, StepRecord[]>();
  for (const step of steps) {
    const list = byRun.get(step.run_id) ?? [];
    list.push(toStep(step));
    byRun.set(step.run_id, list);
  }
  return runs.map((run) => ({ ...toRun(run), steps: byRun.get(run.id) ?? [] }));
}

export async function listUnfinishedRuns(db: Kysely<Database>, limit: number): Promise<Run[]> {
  const rows = await db
    .selectFrom('runs')
    .selectAll()
    .where('status', 'in', ['queued', 'running'])
    .orderBy('created_at', 'asc')
    .orderBy('id', 'asc')
    .limit(limit)
    .execute();
  return rows.map(toRun);
}

export async function setRunProgress(cdb: CatalogDb, runId: string, percent: number): Promise<void> {
  const value = Math.max(0, Math.min(100, Math.round(percent)));
  await cdb.db
    .updateTable('runs')
    .set({ progress: value })
    .where('id', '=', runId)
    .where('status', 'in', ['queued', 'running'])
    // Never backwards: chunk jobs and the run's own steps report concurrently, a retry starts over.
    .where('progress', '<', value)
    .execute();
}

export async function startRun(cdb: CatalogDb, runId: string, at: string): Promise<Run> {
  return writeTransaction(cdb, async (trx) => {
    const updated = await trx
      .updateTable('runs')
      .set((eb) => ({
        status: 'running',
        started_at: eb.fn.coalesce('started_at', eb.val(at)),
        attempts: eb('attempts', '+', 1),
      }))
      .where('id', '=', runId)
      // A finished run stays finished (a redelivered job must not reopen it); the caller sees
      // its status in the returned record.
      .where('status', 'in', ['queued', 'running'])
      .returningAll()
      .executeTakeFirst();
    if (updated !== undefined) return toRun(updated);
    const existing = await runById(trx, runId).executeTakeFirst();
    if (existing === undefined) throw new AppError('NOT_FOUND', `run ${runId} not found`);
    return toRun(existing);
  });
}

export async function publishRun(
  cdb: CatalogDb,
  runId: string,
  facts: AssetFacts,
  at: string,
): Promise<void> {
  checkPerceptualHash(facts.perceptualHash);
  await finishRun(cdb, runId, at, { status: 'succeeded', error: null }, (stored) => ({
    status: 'ready',
    error: null,
    // Absent facts keep the stored value; an explicit null clears it.
    width: facts.width === undefined ? stored.width : intOrNull(facts.width),
    height: facts.height === undefined ? stored.height : intOrNull(facts.height),
    format: facts.format === undefined ? stored.format : facts.format,
    blurhash: facts.blurhash === undefined ? stored.blurhash : facts.blurhash,
    duration_sec: facts.durationSec === undefined ? stored.duration_sec : facts.durationSec,
    perceptual_hash: facts.perceptualHash === undefined ? stored.perceptual_hash : facts.perceptualHash,
    extra:
      facts.extra === undefined
        ? stored.extra
        : JSON.stringify({ ...parseJsonObject(stored.extra), ...facts.extra }),
    processed_at: at,
  }));
}

export async function failRun(cdb: CatalogDb, runId: string, reason: string, at: string): Promise<void> {
  await finishRun(cdb, runId, at, { status: 'failed', error: reason }, (stored) => ({
    ...stored,
    status: 'failed',
    error: reason,
    processed_at: at,
  }));
}

/**
 * Finishes the run, records the outcome on its version, and mirrors it onto the asset when that
 * version is current. PostgreSQL locks run, asset, then version: every transaction that touches an
 * asset and one of its versions takes the asset first, so two of them cannot deadlock.
 */
async function finishRun(
  cdb: CatalogDb,
  runId: string,
  at: string,
  runUpdate: { status: 'succeeded' | 'failed'; error: string | null },
  outcome: (stored: Outcome) => Outcome,
): Promise<void> {
  const { dialect } = cdb;
  await writeTransaction(cdb, async (trx) => {
    const run = await trx
      .selectFrom('runs')
      .select(['asset_id', 'version'])
      .where('id', '=', runId)
      .$call((qb) => lockRows(dialect, qb))
      .executeTakeFirst();
    if (run === undefined) throw new AppError('NOT_FOUND', `run ${runId} not found`);
    await trx
      .updateTable('runs')
      .set((eb) => ({
        status: runUpdate.status,
        error: runUpdate.error,
        finished_at: at,
        // A published run is done; a failed one keeps how far it got.
        progress: runUpdate.status === 'succeeded' ? 100 : eb.ref('progress'),
      }))
      .where('id', '=', runId)
      .execute();
    const asset = await trx
      .selectFrom('assets')
      .select(['current_version', 'extra', 'perceptual_hash'])
      .where('id', '=', run.asset_id)
      .$call((qb) => lockRows(dialect, qb))
      .executeTakeFirst();
    const version = await versionOf(trx, run.asset_id, run.version)
      .$call((qb) => lockRows(dialect, qb))
      .executeTakeFirst();
    if (version === undefined) return;
    const next = outcome(outcomeOf(version));
    await trx
      .updateTable('asset_versions')
      .set(next)
      .where('asset_id', '=', run.asset_id)
      .where('version', '=', run.version)
      .execute();
    // A late run of an older version never overwrites the record of the current one.
    if (asset === undefined || toNumber(asset.current_version) !== toNumber(run.version)) return;
    await trx
      .updateTable('assets')
      .set({ ...next, updated_at: at })
      .where('id', '=', run.asset_id)
      .where('current_version', '=', run.version)
      .execute();
    if (next.extra !== asset.extra) await syncSearch(trx, run.asset_id);
    if (next.perceptual_hash !== asset.perceptual_hash) await syncImageHash(trx, run.asset_id);
  });
}

// --- steps --------------------------------------------------------------------------------------

function durationMs(startedAt: string, finishedAt: string): number | null {
  const ms = Date.parse(finishedAt) - Date.parse(startedAt);
  return Number.isFinite(ms) ? Math.max(0, Math.round(ms)) : null;
}

export async function startStep(
  cdb: CatalogDb,
  step: { id: string; runId: string; name: string; attempt: number; startedAt: string },
): Promise<void> {
  await write(cdb, (db) =>
    db
      .insertInto('steps')
      .values({
        id: step.id,
        run_id: step.runId,
        name: step.name,
        attempt: step.attempt,
        status: 'running',
        started_at: step.startedAt,
        finished_at: null,
        duration_ms: null,
        error: null,
        output: null,
      })
      .execute(),
  );
}

export async function finishStep(cdb: CatalogDb, stepId: string, finish: FinishStep): Promise<void> {
  await writeTransaction(cdb, async (trx) => {
    const step = await trx
      .selectFrom('steps')
      .select(['started_at', 'status'])
      .where('id', '=', stepId)
      .executeTakeFirst();
    if (step === undefined) throw new AppError('NOT_FOUND', `step ${stepId} not found`);
    // Only a running step finishes: one marked `abandoned` stays so even if its old worker wakes up.
    if (step.status !== 'running') return;
    await trx
      .updateTable('steps')
      .set({
        status: finish.status,
        finished_at: finish.finishedAt,
        duration_ms: durationMs(step.started_at, finish.finishedAt),
        error: finish.error ?? null,
        output: finish.output == null ? null : JSON.stringify(finish.output),
      })
      .where('id', '=', stepId)
      .where('status', '=', 'running')
      .execute();
  });
}

export async function listSteps(db: Kysely<Database>, runId: string): Promise<StepRecord[]> {
  const rows = await db
    .selectFrom('steps')
    .selectAll()
    .where('run_id', '=', runId)
    .orderBy('started_at', 'asc')
    .orderBy('id', 'asc')
    .execute();
  return rows.map(toStep);
}

export async function abandonRunningSteps(
  cdb: CatalogDb,
  runId: string,
  at: string,
  reason: string,
): Promise<number> {
  const result = await write(cdb, (db) =>
    db
      .updateTable('steps')
      // No duration: when the worker stopped is unknown, `at` is only when we noticed.
      .set({ status: 'abandoned', finished_at: at, error: reason })
      .where('run_id', '=', runId)
      .where('status', '=', 'running')
      .executeTakeFirst(),
  );
  return Number(result.numUpdatedRows);
}

// --- renditions ---------------------------------------------------------------------------------

export async function putRendition(cdb: CatalogDb, rendition: NewRendition): Promise<void> {
  const row = {
    asset_id: rendition.assetId,
    version: rendition.version,
    name: rendition.name,
    key: rendition.key,
    content_type: rendition.contentType,
    size: rendition.size,
    width: intOrNull(rendition.width),
    height: intOrNull(rendition.height),
    created_at: rendition.createdAt,
  };
  await write(cdb, (db) =>
    db
      .insertInto('renditions')
      .values(row)
      .onConflict((oc) =>
        oc.columns(['asset_id', 'version', 'name']).doUpdateSet({
          key: row.key,
          content_type: row.content_type,
          size: row.size,
          width: row.width,
          height: row.height,
          created_at: row.created_at,
        }),
      )
      .execute(),
  );
}

export async function listRenditions(
  db: Kysely<Database>,
  assetId: string,
  version: number,
): Promise<Rendition[]> {
  const rows = await db
    .selectFrom('renditions')
    .selectAll()
    .where('asset_id', '=', assetId)
    .where('version', '=', version)
    .orderBy('name', 'asc')
    .execute();
  return rows.map(toRendition);
}
