import type { Kysely } from 'kysely';
import type { Project, ProjectLimits } from '../../domain/project.js';
import { AppError } from '../../errors.js';
import type { ProjectPatch } from '../catalog.js';
import { toNumber, toProject, toProjectRow } from '../rows.js';
import type { Database } from '../schema.js';
import { type CatalogDb, lockRows, write, writeTransaction } from '../write-transaction.js';

export async function createProject(cdb: CatalogDb, project: Project): Promise<Project> {
  const row = toProjectRow(project);
  // `on conflict do nothing` + the row count, rather than catching a unique violation: the same
  // statement on both dialects, and a PostgreSQL transaction is never left aborted.
  const result = await write(cdb, (db) =>
    db
      .insertInto('projects')
      .values(row)
      .onConflict((oc) => oc.column('id').doNothing())
      .executeTakeFirst(),
  );
  if (Number(result.numInsertedOrUpdatedRows ?? 0n) === 0) {
    throw new AppError('PROJECT_EXISTS', `project ${project.id} already exists`);
  }
  return toProject(row);
}

function projectById(db: Kysely<Database>, id: string) {
  return db.selectFrom('projects').selectAll().where('id', '=', id);
}

export async function getProject(db: Kysely<Database>, id: string): Promise<Project | undefined> {
  const row = await projectById(db, id).executeTakeFirst();
  return row === undefined ? undefined : toProject(row);
}

export async function listProjects(db: Kysely<Database>): Promise<Project[]> {
  const rows = await db.selectFrom('projects').selectAll().orderBy('id', 'asc').execute();
  return rows.map(toProject);
}

export async function updateProject(
  cdb: CatalogDb,
  id: string,
  patch: ProjectPatch,
  at: string,
): Promise<Project | undefined> {
  return writeTransaction(cdb, async (trx) => {
    const row = await projectById(trx, id)
      .$call((qb) => lockRows(cdb.dialect, qb))
      .executeTakeFirst();
    if (row === undefined) return undefined;
    const stored = toProject(row);
    const updated: Project = {
      ...stored,
      name: patch.name ?? stored.name,
      visibility: patch.visibility ?? stored.visibility,
      duplicatePolicy: patch.duplicatePolicy ?? stored.duplicatePolicy,
      limits: mergeLimits(stored.limits, patch.limits),
      exposeGps: patch.exposeGps ?? stored.exposeGps,
      updatedAt: at,
    };
    const { id: _id, created_at: _createdAt, ...changes } = toProjectRow(updated);
    await trx.updateTable('projects').set(changes).where('id', '=', id).execute();
    return updated;
  });
}

/** Keys absent (or `undefined`) in `patch` keep their limit; `null` clears it. */
function mergeLimits(stored: ProjectLimits, patch: Partial<ProjectLimits> | undefined): ProjectLimits {
  if (patch === undefined) return stored;
  return {
    maxUploadBytes: patch.maxUploadBytes === undefined ? stored.maxUploadBytes : patch.maxUploadBytes,
    maxTotalBytes: patch.maxTotalBytes === undefined ? stored.maxTotalBytes : patch.maxTotalBytes,
    maxVideoDurationSec:
      patch.maxVideoDurationSec === undefined ? stored.maxVideoDurationSec : patch.maxVideoDurationSec,
    allowedTypes: patch.allowedTypes === undefined ? stored.allowedTypes : patch.allowedTypes,
  };
}

/**
 * Assets carry no foreign key to `projects` (their `project_id` predates projects); migration 0002
 * creates a project for every project id existing assets use, besides `default`. Usage counts the
 * assets by `project_id`.
 */
export async function projectUsage(
  db: Kysely<Database>,
  projectId: string,
): Promise<{ assets: number; bytes: number }> {
  const row = await db
    .selectNoFrom((eb) => [
      eb
        .selectFrom('assets')
        .select((sub) => sub.fn.countAll<number | string | bigint>().as('n'))
        .where('project_id', '=', projectId)
        .as('assets'),
      eb
        .selectFrom('asset_versions as v')
        .innerJoin('assets as a', 'a.id', 'v.asset_id')
        .select((sub) => sub.fn.sum<number | string | bigint | null>('v.size').as('total'))
        .where('a.project_id', '=', projectId)
        .as('bytes'),
    ])
    .executeTakeFirstOrThrow();
  return { assets: toNumber(row.assets ?? 0), bytes: toNumber(row.bytes ?? 0) };
}
