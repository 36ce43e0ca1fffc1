import { type Kysely, type RawBuilder, type SqlBool, sql } from 'kysely';
import { parseJsonObject, parseJsonStringArray } from '../rows.js';
import type { Database } from '../schema.js';
import type { CatalogDialect } from '../write-transaction.js';

/*
 * Full-text search, where the port (catalog.ts) leaves it open: filename, tags and the string values
 * of `extra` (nested ones included, keys excluded) are reduced to words by `searchWords` (letters and
 * digits only, lower-cased, accents removed) and stored in `asset_search`; the query goes through the
 * same function, so both dialects agree on what a word is and user input never reaches the FTS5 /
 * tsquery syntax. A blank `q` is no filter; a `q` without any letter or digit (e.g. `"*"`) matches
 * nothing. At most `MAX_QUERY_WORDS` words of `q` are used; words are cut to `MAX_WORD_CHARS` on both
 * sides.
 */

/** Longer words are cut (index and query alike): a prefix match still finds them. */
const MAX_WORD_CHARS = 64;
/** Bounds one asset's search document (a huge `extra` cannot bloat the index). */
const MAX_DOCUMENT_WORDS = 2000;
/** Words of a query beyond this are ignored. */
const MAX_QUERY_WORDS = 32;
/** Nested `extra` values deeper than this are not indexed. */
const MAX_METADATA_DEPTH = 8;

function foldText(text: string): string {
  return text.normalize('NFKD').replace(/\p{M}+/gu, '');
}

/**
 * The words of `text` as the search index and queries see them: maximal runs of letters and digits,
 * lower-cased, with diacritics removed (`Café-2024.JPG` -> `cafe`, `2024`, `jpg`). Everything else
 * separates words, so the result never contains quotes, operators or whitespace.
 */
export function searchWords(text: string): string[] {
  // Fold, lower-case, fold again: lower-casing can produce combining marks (`İ` -> `i̇`).
  const folded = foldText(foldText(text).toLowerCase());
  const words: string[] = [];
  for (const word of folded.split(/[^\p{L}\p{N}]+/u)) {
    if (word === '') continue;
    const chars = Array.from(word);
    words.push(chars.length > MAX_WORD_CHARS ? chars.slice(0, MAX_WORD_CHARS).join('') : word);
  }
  return words;
}

/**
 * An asset's search document (`asset_search.words`): the distinct words of its filename, its tags
 * and the string values of its metadata, separated by single spaces.
 */
export function searchDocument(asset: { filename: string; tags: string; extra: string }): string {
  const words = new Set<string>();
  const add = (text: string): void => {
    for (const word of searchWords(text)) {
      if (words.size >= MAX_DOCUMENT_WORDS) return;
      words.add(word);
    }
  };
  add(asset.filename);
  for (const tag of parseJsonStringArray(asset.tags)) add(tag);
  const visit = (value: unknown, depth: number): void => {
    if (typeof value === 'string') add(value);
    else if (depth >= MAX_METADATA_DEPTH || typeof value !== 'object' || value === null) return;
    else for (const item of Array.isArray(value) ? value : Object.values(value)) visit(item, depth + 1);
  };
  visit(parseJsonObject(asset.extra), 0);
  return [...words].join(' ');
}

/** The distinct words of a query, each to be matched as a prefix. */
export function searchTerms(q: string): string[] {
  return [...new Set(searchWords(q))].slice(0, MAX_QUERY_WORDS);
}

/** `assets.id` is one of the assets whose search document has every term as a word prefix. */
export function matchesSearch(dialect: CatalogDialect, terms: string[]): RawBuilder<SqlBool> {
  if (dialect === 'sqlite') {
    // FTS5 query syntax: each term a quoted string with a prefix star. Terms are letters and digits
    // only (see `searchWords`), so they can never carry FTS5 syntax or a quote.
    const match = terms.map((term) => `"${term}"*`).join(' AND ');
    return sql<SqlBool>`assets.id in (
        select s.asset_id from asset_search s
        where s.doc_id in (select rowid from assets_fts where assets_fts match ${match})
      )`;
  }
  // A tsquery literal (no parser, no normalisation: the terms are already normalised), each term
  // quoted as a lexeme with a prefix marker. The expression matches the GIN index of 0002.
  const query = terms.map((term) => `'${term.replaceAll("'", "''").replaceAll('\\', '\\\\')}':*`).join(' & ');
  return sql<SqlBool>`assets.id in (
      select s.asset_id from asset_search s
      where array_to_tsvector(string_to_array(s.words, ' ')) @@ cast(${query} as tsquery)
    )`;
}

/**
 * Rewrites the asset's search document from its row, in the caller's transaction. Called by every
 * write that changes filename, tags or extra. SQLite's FTS5 index follows through triggers.
 */
export async function syncSearch(trx: Kysely<Database>, assetId: string): Promise<void> {
  const row = await trx
    .selectFrom('assets')
    .leftJoin('asset_search', 'asset_search.asset_id', 'assets.id')
    .select(['assets.filename', 'assets.tags', 'assets.extra', 'asset_search.words'])
    .where('assets.id', '=', assetId)
    .executeTakeFirst();
  if (row === undefined) return;
  const words = searchDocument(row);
  if (words === row.words) return;
  await trx
    .insertInto('asset_search')
    .values({ asset_id: assetId, words })
    .onConflict((oc) => oc.column('asset_id').doUpdateSet({ words }))
    .execute();
}
