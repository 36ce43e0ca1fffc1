import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewAsset } from '../../src/catalog/catalog.js';
import { KyselyCatalog } from '../../src/catalog/kysely-catalog.js';
import { sqliteMigrations } from '../../src/catalog/migrations/sqlite.js';
import type { Database } from '../../src/catalog/schema.js';
import { openSqliteCatalog } from '../../src/catalog/sqlite-catalog.js';
import { newId } from '../../src/domain/ids.js';
import { tempDir } from '../helpers/tmp.js';
import {
  catalogContract,
  expectUpgradedCatalog,
  type LegacyDatabase,
  seedLegacyCatalog,
} from './catalog.contract.js';
import { expectOneClaimPerUpload } from './claim-race.js';

const ALL_MIGRATIONS = [
  '0001_initial',
  '0002_catalog_ops',
  '0003_images',
  '0004_run_progress',
  '0005_upload_claimed_at',
  '0006_leases',
];

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

catalogContract('sqlite', async () => {
  const tmp = await tempDir('assetpipe-catalog-');
  const file = join(tmp.dir, 'catalog.db');
  const catalog = await openSqliteCatalog(file);
  return {
    catalog,
    cleanup: async () => {
      await catalog.close();
      await tmp.cleanup();
    },
  };
});

function assetInput(i: number, projectId: string): NewAsset {
  const id = newId('ast');
  return {
    id,
    projectId,
    filename: `concurrent-${i}.png`,
    type: 'image',
    mimeType: 'image/png',
    size: i + 1,
    sha256: i.toString(16).padStart(64, '0'),
    originalKey: `originals/${id}/1`,
    uploadedAt: new Date(Date.UTC(2024, 0, 1) + i).toISOString(),
  };
}

describe('SQLite catalog', () => {
  let dir: string;
  let cleanupDir: () => Promise<void>;
  const opened: KyselyCatalog[] = [];

  beforeEach(async () => {
    ({ dir, cleanup: cleanupDir } = await tempDir('assetpipe-catalog-'));
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((c) => c.close()));
    await cleanupDir();
  });

  async function open(file: string): Promise<KyselyCatalog> {
    const catalog = await openSqliteCatalog(file);
    opened.push(catalog);
    return catalog;
  }

  it('opens the file in WAL mode with foreign keys on', async () => {
    const file = join(dir, 'catalog.db');
    const catalog = await open(file);
    await catalog.migrate();
    const raw = new BetterSqlite3(file, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      const tables = raw
        .prepare(
          `select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name`,
        )
        .pluck()
        .all();
      expect(tables).toEqual([
        'api_keys',
        'asset_search',
        'asset_versions',
        'assets',
        'assets_fts',
        'assets_fts_config',
        'assets_fts_data',
        'assets_fts_docsize',
        'assets_fts_idx',
        'image_hashes',
        'kysely_migration',
        'kysely_migration_lock',
        'leases',
        'projects',
        'renditions',
        'runs',
        'steps',
        'uploads',
      ]);
      expect(raw.prepare('select name from kysely_migration order by name').pluck().all()).toEqual(
        ALL_MIGRATIONS,
      );
    } finally {
      raw.close();
    }
    // foreign_keys is per connection: a step for an unknown run must be refused by the catalog's own.
    await expect(
      catalog.startStep({
        id: newId('stp'),
        runId: newId('run'),
        name: 'x',
        attempt: 1,
        startedAt: '2024-01-01T00:00:00.000Z',
      }),
    ).rejects.toThrow(/FOREIGN KEY/);
  });

  it('two catalogs on one file migrate and write concurrently without SQLITE_BUSY', async () => {
    const file = join(dir, 'shared.db');
    const a = await open(file);
    const b = await open(file);
    await Promise.all([a.migrate(), b.migrate()]);

    const outcomes = await Promise.allSettled(
      Array.from({ length: 200 }, async (_, i) => {
        const catalog = i % 2 === 0 ? a : b;
        const other = i % 2 === 0 ? b : a;
        const asset = assetInput(i, 'prj_concurrent');
        const runId = newId('run');
        await catalog.createAssetWithRun(asset, runId);
        // Read-then-write transactions from both connections, interleaved.
        await other.startRun(runId, asset.uploadedAt);
        if (i % 3 === 0) await catalog.failRun(runId, `failed ${i}`, asset.uploadedAt);
        else await catalog.publishRun(runId, { width: i, extra: { i } }, asset.uploadedAt);
      }),
    );
    const errors = outcomes.flatMap((o) => (o.status === 'rejected' ? [String(o.reason)] : []));
    expect(errors).toEqual([]);

    expect(await a.countAssetsByStatus()).toEqual({ processing: 0, ready: 133, failed: 67 });
    const seen = new Set<string>();
    let beforeId: string | undefined;
    do {
      const page = await b.listAssets({ projectId: 'prj_concurrent', limit: 1000, beforeId });
      for (const item of page.items) seen.add(item.id);
      beforeId = page.nextBeforeId ?? undefined;
    } while (beforeId !== undefined);
    expect(seen.size).toBe(200);
    expect(await a.listUnfinishedRuns(1000)).toEqual([]);
  });

  it('two catalogs on one file: concurrent claims of an upload succeed exactly once', async () => {
    const file = join(dir, 'claims.db');
    const a = await open(file);
    const b = await open(file);
    await Promise.all([a.migrate(), b.migrate()]);
    const ids = await expectOneClaimPerUpload(a, b, 'multipart');
    for (const id of ids) expect((await b.getUpload(id))?.state).toBe('completing');
  });

  it('upgrades a database that ran only 0001: backfills versions, search and projects', async () => {
    const file = join(dir, 'legacy.db');
    const initial = sqliteMigrations['0001_initial'];
    if (initial === undefined) throw new Error('0001_initial missing');
    const db = new Kysely<LegacyDatabase>({
      dialect: new SqliteDialect({ database: new BetterSqlite3(file) }),
    });
    const legacy = new KyselyCatalog(db as unknown as Kysely<Database>, 'sqlite', {
      '0001_initial': initial,
    });
    await legacy.migrate();
    const seed = await seedLegacyCatalog(db);
    await legacy.close();

    const catalog = await open(file);
    await catalog.migrate();
    await expectUpgradedCatalog(catalog, seed);
    await catalog.migrate();
    expect((await catalog.listProjects()).map((p) => p.id)).toEqual(['default', 'prj_legacy']);
  });

  it('separate OS processes migrate and write the same file at once without errors', async () => {
    const file = join(dir, 'processes.db');
    const perProcess = 40;
    const workers = [0, 1, 2].map((worker) => startWorker(file, worker, perProcess));
    // Barrier: every process has loaded its code before any opens the database.
    await Promise.all(workers.map((w) => w.ready));
    for (const w of workers) w.child.stdin.write('go\n');
    const results = await Promise.all(workers.map((w) => w.exit));
    for (const result of results) {
      expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
      expect(result.stdout).toContain(`done ${perProcess}`);
    }

    const catalog = await open(file);
    await catalog.migrate();
    expect(await catalog.countAssetsByStatus()).toEqual({ processing: 0, ready: 3 * perProcess, failed: 0 });
    const raw = new BetterSqlite3(file, { readonly: true });
    try {
      expect(raw.prepare('select name from kysely_migration order by name').pluck().all()).toEqual(
        ALL_MIGRATIONS,
      );
      expect(raw.prepare(`select count(*) from steps where status = 'succeeded'`).pluck().get()).toBe(
        3 * perProcess,
      );
    } finally {
      raw.close();
    }
  });
});

interface Worker {
  child: ChildProcessWithoutNullStreams;
  ready: Promise<void>;
  exit: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** A child process that opens the catalog, migrates and runs `count` full asset lifecycles. */
function startWorker(file: string, worker: number, count: number): Worker {
  const catalogUrl = pathToFileURL(join(REPO_ROOT, 'src/catalog/sqlite-catalog.ts')).href;
  const idsUrl = pathToFileURL(join(REPO_ROOT, 'src/domain/ids.ts')).href;
  const code = `
    import { createInterface } from 'node:readline';
    import { openSqliteCatalog } from ${JSON.stringify(catalogUrl)};
    import { newId } from ${JSON.stringify(idsUrl)};
    const { CATALOG_FILE: file, WORKER: worker, COUNT } = process.env;
    const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
    process.stdout.write('ready\\n');
    await lines.next();
    const catalog = await openSqliteCatalog(file);
    await catalog.migrate();
    let done = 0;
    for (let i = 0; i < Number(COUNT); i++) {
      const id = newId('ast');
      const runId = newId('run');
      const now = new Date().toISOString();
      await catalog.createAssetWithRun({ id, projectId: 'prj_' + worker, filename: 'w' + worker + '-' + i + '.jpg',
        type: 'image', mimeType: 'image/jpeg', size: i, sha256: 'x', originalKey: 'originals/' + id + '/1',
        uploadedAt: now }, runId);
      await catalog.startRun(runId, now);
      const stepId = newId('stp');
      await catalog.startStep({ id: stepId, runId, name: 'decode', attempt: 1, startedAt: now });
      await catalog.finishStep(stepId, { status: 'succeeded', finishedAt: now, output: { worker } });
      await catalog.putRendition({ assetId: id, version: 1, name: 'thumbnail', key: 'k/' + id, contentType: 'image/webp',
        size: 1, createdAt: now });
      await catalog.publishRun(runId, { width: i, extra: { worker } }, now);
      done++;
    }
    await catalog.close();
    process.stdout.write('done ' + done + '\\n');
    process.exit(0);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: REPO_ROOT,
    env: { ...process.env, CATALOG_FILE: file, WORKER: String(worker), COUNT: String(count) },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  const exit = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.includes('ready\n')) resolve();
    });
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    exit.then(
      (r) => reject(new Error(`worker ${worker} exited before it was ready (${r.code}): ${r.stderr}`)),
      reject,
    );
  });
  return { child, ready, exit };
}
