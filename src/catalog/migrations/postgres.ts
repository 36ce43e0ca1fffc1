import { type Migration, sql } from 'kysely';

/** Ids compare byte-wise (like SQLite) whatever the database's default collation is. */
const idType = sql`text collate "C"`;

/**
 * PostgreSQL migrations, applied in key order by Kysely's `Migrator` (see `KyselyCatalog.migrate`),
 * inside one transaction under Kysely's advisory lock. Never edit a migration that has shipped; add a
 * new key instead.
 *
 * Timestamps are ISO-8601 text (identical behaviour to SQLite), JSON is text, byte sizes are `bigint`
 * (read back as strings by node-postgres and converted by the adapter).
 */
export const postgresMigrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db) {
      await db.schema
        .createTable('assets')
        .addColumn('id', idType, (col) => col.primaryKey())
        .addColumn('project_id', idType, (col) => col.notNull())
        .addColumn('filename', 'text', (col) => col.notNull())
        .addColumn('type', 'text', (col) => col.notNull().check(sql`type in ('image', 'video', 'audio')`))
        .addColumn('mime_type', 'text', (col) => col.notNull())
        .addColumn('size', 'bigint', (col) => col.notNull())
        .addColumn('sha256', 'text', (col) => col.notNull())
        .addColumn('status', 'text', (col) =>
          col.notNull().check(sql`status in ('processing', 'ready', 'failed')`),
        )
        .addColumn('error', 'text')
        .addColumn('width', 'integer')
        .addColumn('height', 'integer')
        .addColumn('format', 'text')
        .addColumn('blurhash', 'text')
        .addColumn('duration_sec', 'double precision')
        .addColumn('current_version', 'integer', (col) => col.notNull())
        .addColumn('extra', 'text', (col) => col.notNull().defaultTo('{}'))
        .addColumn('uploaded_at', 'text', (col) => col.notNull())
        .addColumn('processed_at', 'text')
        .addColumn('updated_at', 'text', (col) => col.notNull())
        .execute();
      await db.schema
        .createIndex('assets_project_id_idx')
        .on('assets')
        .columns(['project_id', 'id'])
        .execute();
      await db.schema.createIndex('assets_status_id_idx').on('assets').columns(['status', 'id']).execute();
      await db.schema.createIndex('assets_type_id_idx').on('assets').columns(['type', 'id']).execute();

      await db.schema
        .createTable('asset_versions')
        .addColumn('asset_id', idType, (col) => col.notNull().references('assets.id').onDelete('cascade'))
        .addColumn('version', 'integer', (col) => col.notNull())
        .addColumn('original_key', 'text', (col) => col.notNull())
        .addColumn('filename', 'text', (col) => col.notNull())
        .addColumn('mime_type', 'text', (col) => col.notNull())
        .addColumn('size', 'bigint', (col) => col.notNull())
        .addColumn('sha256', 'text', (col) => col.notNull())
        .addColumn('created_at', 'text', (col) => col.notNull())
        .addPrimaryKeyConstraint('asset_versions_pk', ['asset_id', 'version'])
        .execute();

      await db.schema
        .createTable('runs')
        .addColumn('id', idType, (col) => col.primaryKey())
        .addColumn('asset_id', idType, (col) => col.notNull())
        .addColumn('version', 'integer', (col) => col.notNull())
        .addColumn('kind', 'text', (col) => col.notNull().check(sql`kind in ('image', 'video', 'audio')`))
        .addColumn('status', 'text', (col) =>
          col.notNull().check(sql`status in ('queued', 'running', 'succeeded', 'failed')`),
        )
        .addColumn('error', 'text')
        .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (col) => col.notNull())
        .addColumn('started_at', 'text')
        .addColumn('finished_at', 'text')
        .addForeignKeyConstraint(
          'runs_version_fk',
          ['asset_id', 'version'],
          'asset_versions',
          ['asset_id', 'version'],
          (fk) => fk.onDelete('cascade'),
        )
        .execute();
      await db.schema.createIndex('runs_asset_id_idx').on('runs').column('asset_id').execute();
      await db.schema.createIndex('runs_status_idx').on('runs').column('status').execute();

      await db.schema
        .createTable('steps')
        .addColumn('id', idType, (col) => col.primaryKey())
        .addColumn('run_id', idType, (col) => col.notNull().references('runs.id').onDelete('cascade'))
        .addColumn('name', 'text', (col) => col.notNull())
        .addColumn('attempt', 'integer', (col) => col.notNull())
        .addColumn('status', 'text', (col) =>
          col.notNull().check(sql`status in ('running', 'succeeded', 'failed', 'skipped', 'abandoned')`),
        )
        .addColumn('started_at', 'text', (col) => col.notNull())
        .addColumn('finished_at', 'text')
        .addColumn('duration_ms', 'bigint')
        .addColumn('error', 'text')
        .addColumn('output', 'text')
        .execute();
      await db.schema.createIndex('steps_run_id_idx').on('steps').column('run_id').execute();

      await db.schema
        .createTable('renditions')
        .addColumn('asset_id', idType, (col) => col.notNull())
        .addColumn('version', 'integer', (col) => col.notNull())
        .addColumn('name', 'text', (col) => col.notNull())
        .addColumn('key', 'text', (col) => col.notNull())
        .addColumn('content_type', 'text', (col) => col.notNull())
        .addColumn('size', 'bigint', (col) => col.notNull())
        .addColumn('width', 'integer')
        .addColumn('height', 'integer')
        .addColumn('created_at', 'text', (col) => col.notNull())
        .addPrimaryKeyConstraint('renditions_pk', ['asset_id', 'version', 'name'])
        .addForeignKeyConstraint(
          'renditions_version_fk',
          ['asset_id', 'version'],
          'asset_versions',
          ['asset_id', 'version'],
          (fk) => fk.onDelete('cascade'),
        )
        .execute();
    },
  },
};
