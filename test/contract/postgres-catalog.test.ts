import { setTimeout as sleep } from 'node:timers/promises';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { KyselyCatalog } from '../../src/catalog/kysely-catalog.js';
import { postgresMigrations } from '../../src/catalog/migrations/postgres.js';
import { createCatalogPool, openPostgresCatalog } from '../../src/catalog/postgres-catalog.js';
import type { Database } from '../../src/catalog/schema.js';
import { redactUrl } from '../../src/config.js';
import { newId } from '../../src/domain/ids.js';
import { isOutage } from '../../src/lib/outage.js';
import { dropSchemas, probePostgres, TEST_DATABASE_URL, uniqueSchema } from '../helpers/postgres.js';
import {
  catalogContract,
  expectUpgradedCatalog,
  type LegacyDatabase,
  seedLegacyCatalog,
} from './catalog.contract.js';
import { expectOneClaimPerUpload } from './claim-race.js';

const DATABASE_URL = TEST_DATABASE_URL;
const redact = redactUrl;
const probe = probePostgres;

/** Runs `fn` with a plain pg client whose search_path is `schema`. */
async function withClient<T>(schema: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    await client.query(`set search_path to "${schema}"`);
    return await fn(client);
  } finally {
    await client.end();
  }
}

function dropSchema(schema: string): Promise<void> {
  return dropSchemas(DATABASE_URL, schema);
}

const reachability = await probe(DATABASE_URL);

if (!reachability.ok && process.env.CI) {
  describe('PostgreSQL catalog', () => {
    it('needs PostgreSQL, which is mandatory in CI', () => {
      expect.fail(`PostgreSQL not reachable at ${redact(DATABASE_URL)}: ${reachability.reason}`);
    });
  });
} else if (!reachability.ok) {
  describe.skipIf(true)(`PostgreSQL not reachable at ${redact(DATABASE_URL)}: ${reachability.reason}`, () => {
    it('runs the catalog contract on PostgreSQL', () => {});
  });
} else {
  catalogContract('postgres', async () => {
    const schema = uniqueSchema();
    const catalog = await openPostgresCatalog(DATABASE_URL, { schema });
    return {
      catalog,
      cleanup: async () => {
        await catalog.close();
        await dropSchema(schema);
      },
    };
  });

  describe('PostgreSQL catalog', () => {
    it('survives the server ending a session it holds between two queries', async () => {
      const pool = createCatalogPool(DATABASE_URL, { maxConnections: 2 });
      // A connection checked out for a transaction, idle between two of its statements.
      const held = await pool.connect();
      let released = false;
      try {
        const { rows } = await held.query<{ pid: number }>('select pg_backend_pid() as pid');
        const pid = rows[0]?.pid;
        // pg-pool removed its own listener on checkout; this is the one that keeps the process alive.
        expect(held.listenerCount('error'), 'a checked-out client listens for errors').toBeGreaterThan(0);
        // What a PostgreSQL restart does to every session (FATAL 57P01); waits until it is gone.
        await withClient('public', (admin) => admin.query('select pg_terminate_backend($1, 5000)', [pid]));
        await sleep(200);
        // The FATAL arrived while no query ran: an unguarded client emits an unhandled `error` and
        // the process (here: the test worker) dies. Guarded, the next statement fails as an outage.
        const failure = await held.query('select 1').then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(failure).toBeInstanceOf(Error);
        expect(isOutage(failure), String(failure)).toBe(true);
        held.release(failure as Error);
        released = true;
        // The dead client was discarded: the pool answers with a fresh session.
        const again = await pool.query<{ pid: number }>('select pg_backend_pid() as pid');
        expect(again.rows[0]?.pid).not.toBe(pid);
      } finally {
        if (!released) held.release(true);
        await pool.end();
      }
    });

    it('migrates while another application creates and drops schemas in the same database', async () => {
      // Kysely's migrator lists the tables of every schema; a schema dropped meanwhile used to fail
      // the migration ("schema ... does not exist"), about one start in two under this churn.
      let stop = false;
      const churn = withClient('public', async (client) => {
        for (let n = 0; !stop; n++) {
          const other = `${uniqueSchema('churn')}_${n}`;
          await client.query(`create schema "${other}"; create table "${other}".t (id serial primary key)`);
          await client.query(`drop schema "${other}" cascade`);
        }
      });
      const failures: string[] = [];
      try {
        for (let i = 0; i < 10; i++) {
          const schema = uniqueSchema();
          const catalog = await openPostgresCatalog(DATABASE_URL, { schema });
          try {
            await catalog.migrate();
          } catch (err) {
            failures.push(String(err));
          } finally {
            await catalog.close();
            await dropSchema(schema);
          }
        }
      } finally {
        stop = true;
        await churn;
      }
      expect(failures).toEqual([]);
    });

    it('keeps its tables in the given schema', async () => {
      const schema = uniqueSchema();
      const catalog = await openPostgresCatalog(DATABASE_URL, { schema });
      try {
        await catalog.migrate();
        const tables = await withClient(schema, async (client) => {
          const result = await client.query<{ table_name: string }>(
            'select table_name from information_schema.tables where table_schema = $1 order by table_name',
            [schema],
          );
          return result.rows.map((r) => r.table_name);
        });
        expect(tables).toEqual([
          'api_keys',
          'asset_search',
          'asset_versions',
          'assets',
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
      } finally {
        await catalog.close();
        await dropSchema(schema);
      }
    });

    it('several catalogs opening and migrating one new schema at once all succeed, then write concurrently', async () => {
      const schema = uniqueSchema();
      const catalogs: KyselyCatalog[] = [];
      try {
        const opened = await Promise.allSettled(
          [0, 1, 2, 3].map(async () => {
            const catalog = await openPostgresCatalog(DATABASE_URL, { schema, maxConnections: 3 });
            catalogs.push(catalog);
            await catalog.migrate();
            return catalog;
          }),
        );
        expect(opened.flatMap((o) => (o.status === 'rejected' ? [String(o.reason)] : []))).toEqual([]);
        const migrations = await withClient(schema, async (client) => {
          const result = await client.query<{ name: string }>(
            'select name from kysely_migration order by name',
          );
          return result.rows.map((r) => r.name);
        });
        expect(migrations).toEqual([
          '0001_initial',
          '0002_catalog_ops',
          '0003_images',
          '0004_run_progress',
          '0005_upload_claimed_at',
          '0006_leases',
        ]);

        const writes = await Promise.allSettled(
          Array.from({ length: 60 }, async (_, i) => {
            const catalog = catalogs[i % catalogs.length];
            if (catalog === undefined) throw new Error('no catalog');
            const id = newId('ast');
            const runId = newId('run');
            const now = new Date(Date.UTC(2024, 0, 1) + i).toISOString();
            await catalog.createAssetWithRun(
              {
                id,
                projectId: 'prj_pg',
                filename: `f${i}.png`,
                type: 'image',
                mimeType: 'image/png',
                size: i,
                sha256: 'x',
                originalKey: `originals/${id}/1`,
                uploadedAt: now,
              },
              runId,
            );
            await catalog.startRun(runId, now);
            await catalog.publishRun(runId, { width: i, extra: { i } }, now);
          }),
        );
        expect(writes.flatMap((o) => (o.status === 'rejected' ? [String(o.reason)] : []))).toEqual([]);
        expect(await catalogs[0]?.countAssetsByStatus()).toEqual({ processing: 0, ready: 60, failed: 0 });
      } finally {
        await Promise.all(catalogs.map((c) => c.close()));
        await dropSchema(schema);
      }
    });

    it('upgrades a schema that ran only 0001: backfills versions, search and projects', async () => {
      const schema = uniqueSchema();
      const initial = postgresMigrations['0001_initial'];
      if (initial === undefined) throw new Error('0001_initial missing');
      let catalog: KyselyCatalog | undefined;
      try {
        await withClient('public', (client) => client.query(`create schema "${schema}"`));
        const pool = new pg.Pool({
          connectionString: DATABASE_URL,
          options: `-c search_path=${schema}`,
          max: 2,
        });
        const db = new Kysely<LegacyDatabase>({ dialect: new PostgresDialect({ pool }) });
        const legacy = new KyselyCatalog(db as unknown as Kysely<Database>, 'postgres', {
          '0001_initial': initial,
        });
        let seed: Awaited<ReturnType<typeof seedLegacyCatalog>>;
        try {
          await legacy.migrate();
          seed = await seedLegacyCatalog(db);
        } finally {
          await legacy.close();
        }
        catalog = await openPostgresCatalog(DATABASE_URL, { schema });
        await catalog.migrate();
        await expectUpgradedCatalog(catalog, seed);
        await catalog.migrate();
        expect((await catalog.listProjects()).map((p) => p.id)).toEqual(['default', 'prj_legacy']);
      } finally {
        await catalog?.close();
        await dropSchema(schema);
      }
    });

    it('two catalogs on one schema: concurrent claims of an upload succeed exactly once', async () => {
      const schema = uniqueSchema();
      const catalogs: KyselyCatalog[] = [];
      try {
        for (let i = 0; i < 2; i++) catalogs.push(await openPostgresCatalog(DATABASE_URL, { schema }));
        const [a, b] = catalogs;
        if (a === undefined || b === undefined) throw new Error('no catalogs');
        await Promise.all([a.migrate(), b.migrate()]);
        await expectOneClaimPerUpload(a, b, 'tus');
      } finally {
        await Promise.all(catalogs.map((c) => c.close()));
        await dropSchema(schema);
      }
    });

    it('openPostgresCatalog rejects when the server cannot be reached', async () => {
      // Port 1 on localhost: nothing listens there, the connection is refused at once.
      await expect(openPostgresCatalog('postgres://postgres@127.0.0.1:1/test')).rejects.toThrow();
    });
  });
}
