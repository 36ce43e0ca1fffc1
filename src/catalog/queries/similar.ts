import type { Kysely } from 'kysely';
import { hammingDistance, isPerceptualHash } from '../../domain/phash.js';
import { AppError } from '../../errors.js';
import { MAX_SIMILAR_DISTANCE, MAX_SIMILAR_LIMIT, type SimilarAsset, type SimilarQuery } from '../catalog.js';
import { bandRadius, hashBands, valuesWithin } from '../hash-bands.js';
import { toAsset } from '../rows.js';
import type { Database } from '../schema.js';

/*
 * Near-duplicate search over `image_hashes` by multi-index hashing (see hash-bands.ts for why it finds
 * every match). The index row of an asset follows its `perceptual_hash` column (`syncImageHash`, called
 * wherever the asset's facts change); whether the asset is live and ready is read from `assets` at
 * search time, so deleting, restoring or reprocessing never touches the index. Nothing is cached in
 * memory: several API nodes share the database.
 *
 * Cost: for maxDistance d the query looks up sum(C(16, k), k <= floor(d / 4)) band values in each of
 * the four band indexes (17 at d 4..7, 137 at d 8..11, 697 at d 12); a random 64-bit hash matches one
 * of those values with probability values / 65536 per band, so about 0.8 % of a project's rows are
 * candidates at d = 10 and their exact distance is checked here.
 */

/** Rows of `assets` read per round when turning matches into live, ready assets. */
const ASSET_BATCH = 200;

/** The index row of an asset: kept iff the asset is an image whose current version has a hash. */
export async function syncImageHash(trx: Kysely<Database>, assetId: string): Promise<void> {
  const asset = await trx
    .selectFrom('assets')
    .select(['project_id', 'type', 'perceptual_hash'])
    .where('id', '=', assetId)
    .executeTakeFirst();
  const hash = asset?.type === 'image' ? asset.perceptual_hash : null;
  if (asset === undefined || hash === null || !isPerceptualHash(hash)) {
    await trx.deleteFrom('image_hashes').where('asset_id', '=', assetId).execute();
    return;
  }
  const [b0, b1, b2, b3] = hashBands(hash);
  const row = { asset_id: assetId, project_id: asset.project_id, hash, b0, b1, b2, b3 };
  await trx
    .insertInto('image_hashes')
    .values(row)
    .onConflict((oc) =>
      oc.column('asset_id').doUpdateSet({ project_id: row.project_id, hash, b0, b1, b2, b3 }),
    )
    .execute();
}

/** Throws `VALIDATION_FAILED` for a malformed hash (a pipeline bug: never store one the index cannot use). */
export function checkPerceptualHash(hash: string | null | undefined): void {
  if (hash === null || hash === undefined || isPerceptualHash(hash)) return;
  throw new AppError(
    'VALIDATION_FAILED',
    `perceptualHash must be 16 lowercase hex digits, got ${JSON.stringify(String(hash).slice(0, 40))}`,
  );
}

function checkQuery({ maxDistance, limit }: SimilarQuery): void {
  if (!Number.isInteger(maxDistance) || maxDistance < 0 || maxDistance > MAX_SIMILAR_DISTANCE) {
    throw new AppError(
      'VALIDATION_FAILED',
      `maxDistance must be an integer from 0 to ${MAX_SIMILAR_DISTANCE}, got ${maxDistance}`,
    );
  }
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_SIMILAR_LIMIT) {
    throw new AppError(
      'VALIDATION_FAILED',
      `limit must be an integer from 1 to ${MAX_SIMILAR_LIMIT}, got ${limit}`,
    );
  }
}

/**
 * The live, ready images of the asset's project within `maxDistance` of its perceptual hash, nearest
 * first, ties by id; the asset itself excluded. `undefined` for an unknown asset, `[]` for one
 * without a perceptual hash. A deleted asset is still searched from (the caller decides whether to).
 */
export async function findSimilar(
  db: Kysely<Database>,
  assetId: string,
  query: SimilarQuery,
): Promise<SimilarAsset[] | undefined> {
  checkQuery(query);
  const self = await db
    .selectFrom('assets')
    .select(['project_id', 'perceptual_hash'])
    .where('id', '=', assetId)
    .executeTakeFirst();
  if (self === undefined) return undefined;
  const hash = self.perceptual_hash;
  if (hash === null || !isPerceptualHash(hash)) return [];

  const radius = bandRadius(query.maxDistance);
  const bands = hashBands(hash);
  const candidates = await db
    .selectFrom('image_hashes')
    .select(['asset_id', 'hash'])
    .where('project_id', '=', self.project_id)
    .where((eb) =>
      eb.or([
        eb('b0', 'in', valuesWithin(bands[0], radius)),
        eb('b1', 'in', valuesWithin(bands[1], radius)),
        eb('b2', 'in', valuesWithin(bands[2], radius)),
        eb('b3', 'in', valuesWithin(bands[3], radius)),
      ]),
    )
    .execute();

  const matches = nearestFirst(
    candidates.flatMap((row) => {
      if (row.asset_id === assetId) return [];
      const distance = hammingDistance(hash, row.hash);
      return distance <= query.maxDistance ? [{ id: row.asset_id, distance }] : [];
    }),
  );
  return liveReadyAssets(db, self.project_id, matches, query.limit);
}

/** Nearest first; equal distances by id (byte-wise, as ids compare in both databases). */
function nearestFirst<T extends { id: string; distance: number }>(matches: T[]): T[] {
  return matches.sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * The first `limit` matches whose asset is live and ready, in the order given. Read in batches: most
 * matches are live, so one batch usually suffices even when thousands of copies match.
 */
async function liveReadyAssets(
  db: Kysely<Database>,
  projectId: string,
  matches: { id: string; distance: number }[],
  limit: number,
): Promise<SimilarAsset[]> {
  const out: SimilarAsset[] = [];
  for (let start = 0; start < matches.length && out.length < limit; start += ASSET_BATCH) {
    const batch = matches.slice(start, start + ASSET_BATCH);
    const rows = await db
      .selectFrom('assets')
      .selectAll()
      .where(
        'id',
        'in',
        batch.map((m) => m.id),
      )
      .where('project_id', '=', projectId)
      .where('status', '=', 'ready')
      .where('deleted_at', 'is', null)
      .execute();
    const byId = new Map(rows.map((row) => [row.id, row]));
    for (const match of batch) {
      const row = byId.get(match.id);
      if (row !== undefined) out.push({ asset: toAsset(row), distance: match.distance });
      if (out.length === limit) break;
    }
  }
  return out;
}
