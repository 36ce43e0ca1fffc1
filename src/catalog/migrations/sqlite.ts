import { type Kysely, type Migration, type SqlBool, sql } from 'kysely';
import { searchDocument } from '../kysely-catalog.js';

/**
 * SQLite migrations, applied in key order by Kysely's `Migrator` (see `KyselyCatalog.migrate`).
 * Never edit a migration that has shipped; add a new key instead.
 *
 * Timestamps are ISO-8601 text, JSON is text, sizes are `integer` (SQLite integers are 64-bit).
 */
export const sqliteMigrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db) {
      await db.schema
        .createTable('assets')
        .addColumn('id', 'text', (col) => col.primaryKey())
        .addColumn('project_id', 'text', (col) => col.notNull())
        .addColumn('filename', 'text', (col) => col.notNull())
        .addColumn('type', 'text', (col) => col.notNull().check(sql`type in ('image', 'video', 'audio')`))
        .addColumn('mime_type', 'text', (col) => col.notNull())
        .addColumn('size', 'integer', (col) => col.notNull())
        .addColumn('sha256', 'text', (col) => col.notNull())
        .addColumn('status', 'text', (col) =>
          col.notNull().check(sql`status in ('processing', 'ready', 'failed')`),
        )
        .addColumn('error', 'text')
        .addColumn('width', 'integer')
        .addColumn('height', 'integer')
        .addColumn('format', 'text')
        .addColumn('blurhash', 'text')
        .addColumn('duration_sec', 'real')
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
        .addColumn('asset_id', 'text', (col) => col.notNull().references('assets.id').onDelete('cascade'))
        .addColumn('version', 'integer', (col) => col.notNull())
        .addColumn('original_key', 'text', (col) => col.notNull())
        .addColumn('filename', 'text', (col) => col.notNull())
        .addColumn('mime_type', 'text', (col) => col.notNull())
        .addColumn('size', 'integer', (col) => col.notNull())
        .addColumn('sha256', 'text', (col) => col.notNull())
        .addColumn('created_at', 'text', (col) => col.notNull())
        .addPrimaryKeyConstraint('asset_versions_pk', ['asset_id', 'version'])
        .execute();

      await db.schema
        .createTable('runs')
        .addColumn('id', 'text', (col) => col.primaryKey())
        .addColumn('asset_id', 'text', (col) => col.notNull())
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
        .addColumn('id', 'text', (col) => col.primaryKey())
        .addColumn('run_id', 'text', (col) => col.notNull().references('runs.id').onDelete('cascade'))
        .addColumn('name', 'text', (col) => col.notNull())
        .addColumn('attempt', 'integer', (col) => col.notNull())
        .addColumn('status', 'text', (col) =>
          col.notNull().check(sql`status in ('running', 'succeeded', 'failed', 'skipped', 'abandoned')`),
        )
        .addColumn('started_at', 'text', (col) => col.notNull())
        .addColumn('finished_at', 'text')
        .addColumn('duration_ms', 'integer')
        .addColumn('error', 'text')
        .addColumn('output', 'text')
        .execute();
      await db.schema.createIndex('steps_run_id_idx').on('steps').column('run_id').execute();

      await db.schema
        .createTable('renditions')
        .addColumn('asset_id', 'text', (col) => col.notNull())
        .addColumn('version', 'integer', (col) => col.notNull())
        .addColumn('name', 'text', (col) => col.notNull())
        .addColumn('key', 'text', (col) => col.notNull())
        .addColumn('content_type', 'text', (col) => col.notNull())
        .addColumn('size', 'integer', (col) => col.notNull())
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
  '0002_catalog_ops': {
    async up(db) {
      // --- assets: media id, tags, duplicate link, soft delete ------------------------------------
      // SQLite adds one column per ALTER TABLE statement.
      await db.schema.alterTable('assets').addColumn('media_id', 'text').execute();
      await db.schema
        .alterTable('assets')
        .addColumn('tags', 'text', (col) => col.notNull().defaultTo('[]'))
        .execute();
      await db.schema.alterTable('assets').addColumn('duplicate_of', 'text').execute();
      await db.schema.alterTable('assets').addColumn('deleted_at', 'text').execute();
      // A media id names one live asset per project; a deleted asset keeps its media id, so a new
      // upload with it can create a new asset while the old one waits for its purge.
      await db.schema
        .createIndex('assets_project_media_id_uidx')
        .unique()
        .on('assets')
        .columns(['project_id', 'media_id'])
        .where(sql<SqlBool>`media_id is not null and deleted_at is null`)
        .execute();
      await db.schema
        .createIndex('assets_project_media_id_idx')
        .on('assets')
        .columns(['project_id', 'media_id'])
        .execute();
      await db.schema
        .createIndex('assets_project_sha256_idx')
        .on('assets')
        .columns(['project_id', 'sha256'])
        .execute();
      await db.schema
        .createIndex('assets_deleted_at_idx')
        .on('assets')
        .columns(['deleted_at', 'id'])
        .where(sql<SqlBool>`deleted_at is not null`)
        .execute();

      // --- asset_versions: each version keeps the outcome of its latest run ----------------------
      // `type` needs a default to be added as NOT NULL; every row is backfilled from its asset below
      // and the adapter always writes it.
      await db.schema
        .alterTable('asset_versions')
        .addColumn('type', 'text', (col) =>
          col.notNull().defaultTo('image').check(sql`type in ('image', 'video', 'audio')`),
        )
        .execute();
      await db.schema
        .alterTable('asset_versions')
        .addColumn('status', 'text', (col) =>
          col.notNull().defaultTo('processing').check(sql`status in ('processing', 'ready', 'failed')`),
        )
        .execute();
      await db.schema.alterTable('asset_versions').addColumn('error', 'text').execute();
      await db.schema.alterTable('asset_versions').addColumn('width', 'integer').execute();
      await db.schema.alterTable('asset_versions').addColumn('height', 'integer').execute();
      await db.schema.alterTable('asset_versions').addColumn('format', 'text').execute();
      await db.schema.alterTable('asset_versions').addColumn('blurhash', 'text').execute();
      await db.schema.alterTable('asset_versions').addColumn('duration_sec', 'real').execute();
      await db.schema
        .alterTable('asset_versions')
        .addColumn('extra', 'text', (col) => col.notNull().defaultTo('{}'))
        .execute();
      await db.schema.alterTable('asset_versions').addColumn('processed_at', 'text').execute();
      await db.schema.alterTable('asset_versions').addColumn('duplicate_of', 'text').execute();
      await backfillVersions(db);

      // --- projects --------------------------------------------------------------------------------
      await db.schema
        .createTable('projects')
        .addColumn('id', 'text', (col) => col.primaryKey())
        .addColumn('name', 'text', (col) => col.notNull())
        .addColumn('visibility', 'text', (col) =>
          col.notNull().defaultTo('public').check(sql`visibility in ('public', 'private')`),
        )
        .addColumn('duplicate_policy', 'text', (col) =>
          col.notNull().defaultTo('link').check(sql`duplicate_policy in ('reject', 'keep', 'link')`),
        )
        .addColumn('max_upload_bytes', 'integer')
        .addColumn('max_total_bytes', 'integer')
        .addColumn('max_video_duration_sec', 'real')
        .addColumn('allowed_types', 'text')
        .addColumn('created_at', 'text', (col) => col.notNull())
        .addColumn('updated_at', 'text', (col) => col.notNull())
        .execute();
      await insertProjects(db);

      // --- api keys --------------------------------------------------------------------------------
      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (col) => col.primaryKey())
        .addColumn('name', 'text', (col) => col.notNull())
        .addColumn('prefix', 'text', (col) => col.notNull().unique())
        .addColumn('secret_hash', 'text', (col) => col.notNull())
        .addColumn('scopes', 'text', (col) => col.notNull().defaultTo('[]'))
        .addColumn('project_id', 'text')
        .addColumn('created_at', 'text', (col) => col.notNull())
        .addColumn('last_used_at', 'text')
        .addColumn('revoked_at', 'text')
        .execute();

      // --- uploads ---------------------------------------------------------------------------------
      await db.schema
        .createTable('uploads')
        .addColumn('id', 'text', (col) => col.primaryKey())
        .addColumn('protocol', 'text', (col) => col.notNull().check(sql`protocol in ('multipart', 'tus')`))
        .addColumn('project_id', 'text', (col) => col.notNull())
        .addColumn('media_id', 'text')
        .addColumn('filename', 'text', (col) => col.notNull())
        .addColumn('declared_type', 'text')
        .addColumn('size', 'integer')
        .addColumn('key', 'text', (col) => col.notNull())
        .addColumn('store_upload_id', 'text')
        .addColumn('checksum', 'text')
        .addColumn('state', 'text', (col) =>
          col.notNull().check(sql`state in ('open', 'completing', 'completed', 'aborted')`),
        )
        .addColumn('asset_id', 'text')
        .addColumn('created_by', 'text')
        .addColumn('created_at', 'text', (col) => col.notNull())
        .addColumn('expires_at', 'text', (col) => col.notNull())
        .execute();
      await db.schema
        .createIndex('uploads_state_expires_at_idx')
        .on('uploads')
        .columns(['state', 'expires_at'])
        .execute();

      // --- full-text search ------------------------------------------------------------------------
      // `asset_search` holds each asset's normalised words (written by the adapter, which also
      // normalises queries the same way); `assets_fts` is an external-content FTS5 index over it, kept
      // in sync by the triggers below. The explicit INTEGER PRIMARY KEY gives FTS5 a rowid that VACUUM
      // cannot renumber (the rowid of `assets`, whose key is text, could change).
      await sql`
        create table asset_search (
          doc_id integer primary key,
          asset_id text not null unique references assets (id) on delete cascade,
          words text not null default ''
        )
      `.execute(db);
      await sql`
        create virtual table assets_fts using fts5(
          words,
          content = 'asset_search',
          content_rowid = 'doc_id',
          tokenize = 'unicode61 remove_diacritics 2'
        )
      `.execute(db);
      await sql`
        create trigger asset_search_ai after insert on asset_search begin
          insert into assets_fts (rowid, words) values (new.doc_id, new.words);
        end
      `.execute(db);
      await sql`
        create trigger asset_search_ad after delete on asset_search begin
          insert into assets_fts (assets_fts, rowid, words) values ('delete', old.doc_id, old.words);
        end
      `.execute(db);
      await sql`
        create trigger asset_search_au after update on asset_search begin
          insert into assets_fts (assets_fts, rowid, words) values ('delete', old.doc_id, old.words);
          insert into assets_fts (rowid, words) values (new.doc_id, new.words);
        end
      `.execute(db);
      await backfillSearch(db);
    },
  },
  '0003_images': {
    async up(db) {
      // The perceptual hash is a fact like `blurhash`: each version records its own, the asset mirrors
      // its current version's. Nothing to backfill: no earlier run computed one.
      await db.schema.alterTable('asset_versions').addColumn('perceptual_hash', 'text').execute();
      await db.schema.alterTable('assets').addColumn('perceptual_hash', 'text').execute();
      // SQLite has no boolean type: 0/1.
      await db.schema
        .alterTable('projects')
        .addColumn('expose_gps', 'integer', (col) =>
          col.notNull().defaultTo(0).check(sql`expose_gps in (0, 1)`),
        )
        .execute();
      // `/img/{key}` finds the version whose original has this key.
      await db.schema
        .createIndex('asset_versions_original_key_idx')
        .on('asset_versions')
        .column('original_key')
        .execute();

      // The near-duplicate index (multi-index hashing, see queries/similar.ts): one row per asset whose
      // current version is an image with a perceptual hash. Each 16-bit band is indexed with the
      // project (a search never leaves its project); the rows carry no status or deletion, which the
      // search reads from `assets`, so soft delete and restore leave the index alone.
      // The band indexes also hold `hash` and `asset_id` (covering): a search reads thousands of
      // candidates at maxDistance 10 in a million images, and skipping a table look-up for each made
      // it 2.5x faster on SQLite (bench/similar.ts) for twice the index size (~380 MB per million).
      await db.schema
        .createTable('image_hashes')
        .addColumn('asset_id', 'text', (col) => col.primaryKey().references('assets.id').onDelete('cascade'))
        .addColumn('project_id', 'text', (col) => col.notNull())
        .addColumn('hash', 'text', (col) => col.notNull())
        .addColumn('b0', 'integer', (col) => col.notNull())
        .addColumn('b1', 'integer', (col) => col.notNull())
        .addColumn('b2', 'integer', (col) => col.notNull())
        .addColumn('b3', 'integer', (col) => col.notNull())
        .execute();
      for (const band of ['b0', 'b1', 'b2', 'b3']) {
        await db.schema
          .createIndex(`image_hashes_project_${band}_idx`)
          .on('image_hashes')
          .columns(['project_id', band, 'hash', 'asset_id'])
          .execute();
      }
    },
  },
  '0004_run_progress': {
    async up(db) {
      // How far a run is, for progress bars: a video's encode takes minutes.
      await db.schema
        .alterTable('runs')
        .addColumn('progress', 'integer', (col) => col.notNull().defaultTo(0))
        .execute();
    },
  },
  '0005_upload_claimed_at': {
    async up(db) {
      // When a completion claimed its upload: a claim whose process died (an API node killed
      // mid-completion) can be taken over once it is stale, instead of blocking the upload forever.
      await db.schema.alterTable('uploads').addColumn('claimed_at', 'text').execute();
    },
  },
  '0006_leases': {
    async up(db) {
      // Locks that hold across API nodes (a tus upload's requests): see queries/leases.ts.
      await db.schema
        .createTable('leases')
        .addColumn('name', 'text', (col) => col.primaryKey())
        .addColumn('holder', 'text', (col) => col.notNull())
        .addColumn('expires_at', 'text', (col) => col.notNull())
        .addColumn('release_requested', 'integer', (col) => col.notNull().defaultTo(0))
        .execute();
    },
  },
};

/**
 * Versions before 0002 had no outcome of their own. Every version takes its latest run's outcome,
 * then the current version of each asset takes the asset's full record (status, error, facts).
 * Both statements are plain SQL that SQLite and PostgreSQL share.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations run against the schema of their time.
async function backfillVersions(db: Kysely<any>): Promise<void> {
  await sql`
    update asset_versions set type = (select a.type from assets a where a.id = asset_versions.asset_id)
  `.execute(db);
  const latestRun = (column: string) => sql`(
    select ${sql.ref(`r.${column}`)} from runs r
    where r.asset_id = asset_versions.asset_id and r.version = asset_versions.version
    order by r.created_at desc, r.id desc limit 1
  )`;
  await sql`
    update asset_versions set
      status = case ${latestRun('status')}
        when 'succeeded' then 'ready' when 'failed' then 'failed' else 'processing' end,
      error = case ${latestRun('status')} when 'failed' then ${latestRun('error')} else null end,
      processed_at = case ${latestRun('status')}
        when 'succeeded' then ${latestRun('finished_at')}
        when 'failed' then ${latestRun('finished_at')}
        else null end
  `.execute(db);
  await sql`
    update asset_versions set
      type = a.type, status = a.status, error = a.error, width = a.width, height = a.height,
      format = a.format, blurhash = a.blurhash, duration_sec = a.duration_sec, extra = a.extra,
      processed_at = a.processed_at
    from assets a
    where a.id = asset_versions.asset_id and a.current_version = asset_versions.version
  `.execute(db);
}

/**
 * The project `default`, and one project (default settings, no limits) for every other project id
 * assets already use: before 0002 projects were free-form ids, and their assets must stay reachable.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations run against the schema of their time.
async function insertProjects(db: Kysely<any>): Promise<void> {
  const now = new Date().toISOString();
  await sql`
    insert into projects (id, name, visibility, duplicate_policy, created_at, updated_at)
    values ('default', 'Default', 'public', 'link', ${now}, ${now})
  `.execute(db);
  await sql`
    insert into projects (id, name, visibility, duplicate_policy, created_at, updated_at)
    select project_id, project_id, 'public', 'link', min(uploaded_at), min(uploaded_at)
    from assets where project_id <> 'default' group by project_id
  `.execute(db);
}

/** Writes the search document of every existing asset, a page at a time. */
// biome-ignore lint/suspicious/noExplicitAny: migrations run against the schema of their time.
async function backfillSearch(db: Kysely<any>): Promise<void> {
  let after = '';
  for (;;) {
    const rows: { id: string; filename: string; tags: string; extra: string }[] = await db
      .selectFrom('assets')
      .select(['id', 'filename', 'tags', 'extra'])
      .where('id', '>', after)
      .orderBy('id', 'asc')
      .limit(500)
      .execute();
    if (rows.length === 0) return;
    await db
      .insertInto('asset_search')
      .values(rows.map((row) => ({ asset_id: row.id, words: searchDocument(row) })))
      .execute();
    after = rows.at(-1)?.id ?? after;
  }
}
