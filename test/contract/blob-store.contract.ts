import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobInfo, BlobStore, UploadedPart } from '../../src/storage/blob-store.js';
import { collect, errorOf, readAll, sha256 } from './blob-test-utils.js';

/** A part as `completeMultipart` takes it. */
type Listed = { partNumber: number; etag: string };

/**
 * The `BlobStore` port contract, runnable against any adapter. It talks to the store only through
 * the port (no filesystem, no bucket listing outside its own namespace): every test works below a
 * fresh random key prefix, so it can run against a shared bucket too.
 */
export function blobStoreContract(
  name: string,
  makeStore: () => Promise<{ store: BlobStore; cleanup: () => Promise<void> }>,
): void {
  describe(`BlobStore contract: ${name}`, () => {
    let store: BlobStore;
    let cleanup: () => Promise<void>;
    let ns: string;
    const k = (rest: string): string => ns + rest;

    beforeEach(async () => {
      ({ store, cleanup } = await makeStore());
      ns = `contract-${randomUUID()}/`;
    });

    afterEach(async () => {
      await store.close();
      await cleanup();
    });

    describe('put and get', () => {
      it('round-trips a Buffer and reports what it stored', async () => {
        const bytes = Buffer.from('hello, blob store\n');
        const info = await store.put(k('greeting.txt'), bytes, { contentType: 'text/plain' });

        expect(info.key).toBe(k('greeting.txt'));
        expect(info.size).toBe(bytes.length);
        expect(typeof info.etag).toBe('string');
        expect(info.etag.length).toBeGreaterThan(0);
        expect(info.lastModified).toBeInstanceOf(Date);
        expect(Number.isNaN(info.lastModified.getTime())).toBe(false);
        expect(await readAll(await store.get(k('greeting.txt')))).toEqual(bytes);
      });

      it('round-trips a plain Uint8Array (not a Buffer)', async () => {
        const bytes = new Uint8Array([0, 1, 2, 250, 251, 252, 253, 254, 255]);
        const info = await store.put(k('u8'), bytes);

        expect(info.size).toBe(9);
        expect([...(await readAll(await store.get(k('u8'))))]).toEqual([...bytes]);
      });

      it('round-trips a Readable made of several chunks', async () => {
        const chunks = [
          Buffer.from('first,'),
          Buffer.from(''),
          Buffer.from('second,'),
          Buffer.alloc(70_000, 7),
        ];
        const info = await store.put(k('chunks.bin'), Readable.from(chunks));
        const expected = Buffer.concat(chunks);

        expect(info.size).toBe(expected.length);
        expect(await readAll(await store.get(k('chunks.bin')))).toEqual(expected);
      });

      it('stores an empty object', async () => {
        const info = await store.put(k('empty'), Buffer.alloc(0));

        expect(info.size).toBe(0);
        expect((await store.head(k('empty')))?.size).toBe(0);
        expect((await readAll(await store.get(k('empty')))).length).toBe(0);
      });

      it('streams a multi-megabyte body through unchanged', async () => {
        const total = 8 * 1024 * 1024 + 12_345;
        const source = pseudoRandomBody(total, 0x5eed);
        const info = await store.put(k('big/random.bin'), Readable.from(source.chunks()));

        expect(source.produced()).toBe(total);
        expect(info.size).toBe(total);
        expect((await store.head(k('big/random.bin')))?.size).toBe(total);
        const stored = await readAll(await store.get(k('big/random.bin')));
        expect(stored.length).toBe(total);
        expect(sha256(stored)).toBe(source.sha256());
      });

      it('replaces the whole object on overwrite (no tail of the old bytes)', async () => {
        await store.put(k('over'), Buffer.from('a much longer first version'), { contentType: 'text/plain' });
        const info = await store.put(k('over'), Buffer.from('short'), { contentType: 'text/markdown' });

        expect(info.size).toBe(5);
        expect((await readAll(await store.get(k('over')))).toString()).toBe('short');
        const head = await store.head(k('over'));
        expect(head?.size).toBe(5);
        expect(head?.contentType).toBe('text/markdown');
      });

      it('keeps streaming the version a reader opened, whole, when the key is overwritten', async () => {
        const v1 = Buffer.alloc(512 * 1024, 1);
        const v2 = Buffer.alloc(300 * 1024, 2);
        await store.put(k('reading'), v1);
        const stream = await store.get(k('reading'));
        await store.put(k('reading'), v2);

        const seen = await readAll(stream);
        expect([sha256(v1), sha256(v2)]).toContain(sha256(seen));
        expect(await readAll(await store.get(k('reading')))).toEqual(v2);
      });

      it('accepts unusual but valid keys', async () => {
        const keys = [k('.hidden'), k('a/..b/c..'), k('ünïcödé ✓/x y (1).txt'), k('dots.../~tilde/-')];
        for (const [i, key] of keys.entries()) await store.put(key, Buffer.from(`value ${i}`));

        for (const [i, key] of keys.entries()) {
          expect((await readAll(await store.get(key))).toString()).toBe(`value ${i}`);
        }
        expect((await collect(store.list(ns))).map((b) => b.key).sort()).toEqual([...keys].sort());
      });

      it('accepts a key of exactly 1024 bytes and rejects one of 1025', async () => {
        const longest = keyOfBytes(ns, 1024);
        expect(Buffer.byteLength(longest)).toBe(1024);
        await store.put(longest, Buffer.from('long'));
        expect((await readAll(await store.get(longest))).toString()).toBe('long');

        const tooLong = keyOfBytes(ns, 1025);
        expect(await errorOf(() => store.put(tooLong, Buffer.from('x')))).toMatchObject({
          code: 'KEY_INVALID',
        });
      });
    });

    describe('head', () => {
      it('reports size, content type and the etag put returned', async () => {
        const put = await store.put(k('img.png'), Buffer.alloc(1234, 9), { contentType: 'image/png' });
        const head = await store.head(k('img.png'));

        expect(head).toMatchObject({
          key: k('img.png'),
          size: 1234,
          etag: put.etag,
          contentType: 'image/png',
        });
        expect(head?.lastModified).toBeInstanceOf(Date);
      });

      it('changes the etag when the bytes change, even at the same size', async () => {
        const first = await store.put(k('etag'), Buffer.from('aaaa'));
        const second = await store.put(k('etag'), Buffer.from('aaab'));
        const third = await store.put(k('etag'), Buffer.from('longer bytes'));

        expect(second.etag).not.toBe(first.etag);
        expect(third.etag).not.toBe(second.etag);
        expect(third.etag).not.toBe(first.etag);
        expect((await store.head(k('etag')))?.etag).toBe(third.etag);
      });

      it('round-trips the content type and updates it on overwrite', async () => {
        await store.put(k('ct'), Buffer.from('{}'), { contentType: 'application/json; charset=utf-8' });
        expect((await store.head(k('ct')))?.contentType).toBe('application/json; charset=utf-8');

        await store.put(k('ct'), Readable.from([Buffer.from('<svg/>')]), { contentType: 'image/svg+xml' });
        expect((await store.head(k('ct')))?.contentType).toBe('image/svg+xml');
      });
    });

    describe('ranges', () => {
      // 100 distinct bytes: byte i has value i, so a wrong offset shows up as wrong values.
      const hundred = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
      const slice = (from: number, to: number): number[] => [...hundred.subarray(from, to + 1)];

      beforeEach(async () => {
        await store.put(k('range.bin'), hundred);
      });

      it('serves the first byte', async () => {
        expect([...(await readAll(await store.get(k('range.bin'), { start: 0, end: 0 })))]).toEqual([0]);
      });

      it('serves a middle range inclusively', async () => {
        const bytes = await readAll(await store.get(k('range.bin'), { start: 10, end: 19 }));
        expect([...bytes]).toEqual(slice(10, 19));
      });

      it('serves from start to the end when end is omitted', async () => {
        const bytes = await readAll(await store.get(k('range.bin'), { start: 90 }));
        expect([...bytes]).toEqual(slice(90, 99));
      });

      it('serves exactly the last byte', async () => {
        expect([...(await readAll(await store.get(k('range.bin'), { start: 99, end: 99 })))]).toEqual([99]);
      });

      it('clamps an end past the last byte', async () => {
        const bytes = await readAll(await store.get(k('range.bin'), { start: 95, end: 10_000 }));
        expect([...bytes]).toEqual(slice(95, 99));
      });

      it.each([
        ['start at the size', { start: 100 }],
        ['start far past the end', { start: 5000, end: 6000 }],
        ['start after end', { start: 20, end: 10 }],
        ['negative start', { start: -1 }],
        ['negative start and end', { start: -10, end: -1 }],
      ])('rejects %s with RANGE_NOT_SATISFIABLE', async (_label, range) => {
        expect(await errorOf(() => store.get(k('range.bin'), range))).toMatchObject({
          code: 'RANGE_NOT_SATISFIABLE',
        });
      });

      it('rejects any range on an empty object', async () => {
        await store.put(k('empty.bin'), Buffer.alloc(0));
        expect(await errorOf(() => store.get(k('empty.bin'), { start: 0 }))).toMatchObject({
          code: 'RANGE_NOT_SATISFIABLE',
        });
      });
    });

    describe('missing keys', () => {
      it('get throws BLOB_NOT_FOUND, with or without a range', async () => {
        expect(await errorOf(() => store.get(k('nope')))).toMatchObject({ code: 'BLOB_NOT_FOUND' });
        expect(await errorOf(() => store.get(k('nope'), { start: 0, end: 10 }))).toMatchObject({
          code: 'BLOB_NOT_FOUND',
        });
      });

      it('head returns undefined', async () => {
        expect(await store.head(k('nope'))).toBeUndefined();
      });

      it('a prefix of a stored key, or a key below a stored key, is not an object', async () => {
        await store.put(k('dir/file'), Buffer.from('x'));

        expect(await store.head(k('dir'))).toBeUndefined();
        expect(await errorOf(() => store.get(k('dir')))).toMatchObject({ code: 'BLOB_NOT_FOUND' });
        expect(await store.head(k('dir/file/below'))).toBeUndefined();
        expect(await errorOf(() => store.get(k('dir/file/below')))).toMatchObject({ code: 'BLOB_NOT_FOUND' });
      });
    });

    describe('delete', () => {
      it('removes the object and is idempotent', async () => {
        await store.put(k('del/me'), Buffer.from('bye'));
        await store.put(k('del/keep'), Buffer.from('stay'));

        await expect(store.delete(k('del/me'))).resolves.toBeUndefined();
        expect(await store.head(k('del/me'))).toBeUndefined();
        expect(await errorOf(() => store.get(k('del/me')))).toMatchObject({ code: 'BLOB_NOT_FOUND' });
        await expect(store.delete(k('del/me'))).resolves.toBeUndefined();
        await expect(store.delete(k('never/existed'))).resolves.toBeUndefined();

        expect((await readAll(await store.get(k('del/keep')))).toString()).toBe('stay');
        expect((await collect(store.list(ns))).map((b) => b.key)).toEqual([k('del/keep')]);
      });

      it('lets a key that was only a "directory" of a deleted object be stored', async () => {
        await store.put(k('d/e/f'), Buffer.from('deep'));
        await store.delete(k('d/e/f'));
        await store.put(k('d/e'), Buffer.from('shallow'));

        expect((await readAll(await store.get(k('d/e')))).toString()).toBe('shallow');
        expect((await collect(store.list(ns))).map((b) => b.key)).toEqual([k('d/e')]);
      });
    });

    describe('list', () => {
      // In byte order: '-' (0x2d) < '.' (0x2e) < '/' (0x2f) < '0'..'9' < 'a'..'z'.
      const keys = ['z', 'a/c', 'ab', 'a/bc', 'a/b/d/e', 'a/b/c', 'a/b-d', 'a.txt'];
      const sorted = ['a.txt', 'a/b-d', 'a/b/c', 'a/b/d/e', 'a/bc', 'a/c', 'ab', 'z'];

      beforeEach(async () => {
        for (const [i, key] of keys.entries()) await store.put(k(key), Buffer.alloc(i + 1, i));
      });

      it('yields every object under the prefix in key order, with size and etag', async () => {
        const listed = await collect(store.list(ns));

        expect(listed.map((b) => b.key)).toEqual(sorted.map(k));
        for (const info of listed) {
          const head = await store.head(info.key);
          expect(info.size).toBe(head?.size);
          expect(info.etag).toBe(head?.etag);
          expect(info.lastModified).toBeInstanceOf(Date);
        }
        expect(listed.find((b) => b.key === k('a/b/c'))?.size).toBe(keys.indexOf('a/b/c') + 1);
      });

      it('treats the prefix as a plain string prefix, not a directory', async () => {
        const keysOf = async (prefix: string) => (await collect(store.list(k(prefix)))).map((b) => b.key);

        expect(await keysOf('a/b')).toEqual(['a/b-d', 'a/b/c', 'a/b/d/e', 'a/bc'].map(k));
        expect(await keysOf('a/b/')).toEqual(['a/b/c', 'a/b/d/e'].map(k));
        expect(await keysOf('a')).toEqual(['a.txt', 'a/b-d', 'a/b/c', 'a/b/d/e', 'a/bc', 'a/c', 'ab'].map(k));
        expect(await keysOf('a/b/c')).toEqual([k('a/b/c')]);
        expect(await keysOf('a/b/d/e')).toEqual([k('a/b/d/e')]);
        expect(await keysOf('z')).toEqual([k('z')]);
      });

      it('yields nothing for a prefix that matches nothing', async () => {
        expect(await collect(store.list(k('nothing')))).toEqual([]);
        expect(await collect(store.list(k('a/x/')))).toEqual([]);
        expect(await collect(store.list(k('a/b/c/')))).toEqual([]);
        expect(await collect(store.list(`contract-${randomUUID()}/`))).toEqual([]);
      });

      it('reflects deletes', async () => {
        await store.delete(k('a/b/c'));
        await store.delete(k('a/b/d/e'));

        expect((await collect(store.list(k('a/b')))).map((b) => b.key)).toEqual(['a/b-d', 'a/bc'].map(k));
      });
    });

    describe('key validation', () => {
      const invalid: Array<[string, string]> = [
        ['empty', ''],
        ['leading ..', '../x'],
        ['inner ..', 'a/../b'],
        ['absolute', '/abs'],
        ['empty segment', 'a//b'],
        ['. segment', 'a/./b'],
        ['NUL', 'with\u0000nul'],
        ['tab', 'tab\tkey'],
        ['drive letter', 'C:/win'],
        ['backslash', 'a\\b'],
        ['2000 bytes', 'k'.repeat(2000)],
      ];

      it.each(invalid)(
        'rejects the %s key with KEY_INVALID in put, get, head and delete',
        async (_label, key) => {
          expect(await errorOf(() => store.put(key, Buffer.from('x')))).toMatchObject({
            code: 'KEY_INVALID',
          });
          expect(await errorOf(() => store.put(key, Readable.from([Buffer.from('x')])))).toMatchObject({
            code: 'KEY_INVALID',
          });
          expect(await errorOf(() => store.get(key))).toMatchObject({ code: 'KEY_INVALID' });
          expect(await errorOf(() => store.get(key, { start: 0 }))).toMatchObject({ code: 'KEY_INVALID' });
          expect(await errorOf(() => store.head(key))).toMatchObject({ code: 'KEY_INVALID' });
          expect(await errorOf(() => store.delete(key))).toMatchObject({ code: 'KEY_INVALID' });
        },
      );

      it.each(invalid.filter(([, key]) => key !== ''))(
        'rejects the %s prefix with KEY_INVALID in list',
        async (_l, key) => {
          expect(await errorOf(() => collect(store.list(key)))).toMatchObject({ code: 'KEY_INVALID' });
          expect(await errorOf(() => collect(store.list(`${key}/`)))).toMatchObject({ code: 'KEY_INVALID' });
        },
      );

      it('stores nothing when a key is rejected', async () => {
        await store.put(k('ok'), Buffer.from('ok'));
        for (const [, key] of invalid) await errorOf(() => store.put(key, Buffer.from('hostile')));
        await errorOf(() => store.put(`${ns}../escape`, Buffer.from('hostile')));
        await errorOf(() => store.put(`${ns}a/../../b`, Buffer.from('hostile')));

        expect((await collect(store.list(ns))).map((b) => b.key)).toEqual([k('ok')]);
        expect((await readAll(await store.get(k('ok')))).toString()).toBe('ok');
      });
    });

    describe('failed writes', () => {
      it('a body that errors midway rejects with that error and stores nothing', async () => {
        const boom = new Error('body failed midway');
        const body = failingBody(boom, 3);

        expect(await errorOf(() => store.put(k('broken'), body))).toBe(boom);
        expect(body.destroyed).toBe(true);
        expect(await store.head(k('broken'))).toBeUndefined();
        expect(await errorOf(() => store.get(k('broken')))).toMatchObject({ code: 'BLOB_NOT_FOUND' });
        expect(await collect(store.list(ns))).toEqual([]);
      });

      it('a body that errors midway leaves the previous object intact', async () => {
        const old = Buffer.from('the old, complete version');
        const before = await store.put(k('keep'), old, { contentType: 'text/plain' });
        const boom = new Error('connection reset');

        expect(
          await errorOf(() => store.put(k('keep'), failingBody(boom, 2), { contentType: 'image/png' })),
        ).toBe(boom);
        expect(await readAll(await store.get(k('keep')))).toEqual(old);
        expect(await store.head(k('keep'))).toMatchObject({
          size: old.length,
          etag: before.etag,
          contentType: 'text/plain',
        });
      });

      it('a stream over maxBytes rejects with UPLOAD_TOO_LARGE, is destroyed, and stores nothing', async () => {
        const body = Readable.from([
          Buffer.alloc(40_000, 1),
          Buffer.alloc(40_000, 2),
          Buffer.alloc(40_000, 3),
        ]);

        expect(await errorOf(() => store.put(k('big'), body, { maxBytes: 100_000 }))).toMatchObject({
          code: 'UPLOAD_TOO_LARGE',
        });
        expect(body.destroyed).toBe(true);
        expect(await store.head(k('big'))).toBeUndefined();
        expect(await collect(store.list(ns))).toEqual([]);
      });

      it('stops reading an endless stream once maxBytes is exceeded', async () => {
        let pulled = 0;
        const endless = Readable.from(
          (async function* () {
            for (;;) {
              pulled += 1;
              yield Buffer.alloc(64 * 1024, pulled % 256);
            }
          })(),
        );

        expect(
          await errorOf(() => store.put(k('endless'), endless, { maxBytes: 1024 * 1024 })),
        ).toMatchObject({
          code: 'UPLOAD_TOO_LARGE',
        });
        expect(endless.destroyed).toBe(true);
        expect(pulled).toBeGreaterThan(16);
        expect(await store.head(k('endless'))).toBeUndefined();
      });

      it('a Uint8Array over maxBytes rejects with UPLOAD_TOO_LARGE and stores nothing', async () => {
        expect(await errorOf(() => store.put(k('buf'), Buffer.alloc(11), { maxBytes: 10 }))).toMatchObject({
          code: 'UPLOAD_TOO_LARGE',
        });
        expect(await store.head(k('buf'))).toBeUndefined();
      });

      it('a body of exactly maxBytes is accepted', async () => {
        const stream = await store.put(k('exact-stream'), Readable.from([Buffer.alloc(6), Buffer.alloc(4)]), {
          maxBytes: 10,
        });
        const buffer = await store.put(k('exact-buffer'), Buffer.alloc(10), { maxBytes: 10 });

        expect(stream.size).toBe(10);
        expect(buffer.size).toBe(10);
        expect((await store.head(k('exact-stream')))?.size).toBe(10);
      });

      it('an oversized overwrite leaves the previous object intact', async () => {
        const old = Buffer.from('small and fine');
        const before = await store.put(k('limited'), old);

        const body = Readable.from([Buffer.alloc(600, 1), Buffer.alloc(600, 2)]);
        expect(await errorOf(() => store.put(k('limited'), body, { maxBytes: 1000 }))).toMatchObject({
          code: 'UPLOAD_TOO_LARGE',
        });
        expect(await readAll(await store.get(k('limited')))).toEqual(old);
        expect((await store.head(k('limited')))?.etag).toBe(before.etag);
      });
    });

    describe('concurrency', () => {
      it('concurrent puts to one key end with one complete version, and readers never see a mix', async () => {
        const key = k('contended');
        // Different sizes, so bytes, size, etag and content type from different versions cannot pass
        // for one another; the same number of chunks, so writers finish together and commits interleave.
        const versions = Array.from({ length: 6 }, (_, i) => patterned(i, 96 * 1024 + i * 4099));
        const initial = patterned(99, 100_000);
        const all = new Map<number, Buffer>([[99, initial], ...versions.map((v, i) => [i, v] as const)]);
        const versionOfHash = new Map([...all].map(([i, bytes]) => [sha256(bytes), i] as const));
        const versionOfEtag = new Map<string, number>();
        versionOfEtag.set((await store.put(key, initial, { contentType: 'application/x-v99' })).etag, 99);

        let writing = true;
        const problems: string[] = [];
        const heads: BlobInfo[] = [];
        let reads = 0;
        const byteReader = async () => {
          while (writing) {
            const seen = sha256(await readAll(await store.get(key)));
            reads += 1;
            if (!versionOfHash.has(seen)) problems.push(`torn read ${seen}`);
          }
        };
        const headReader = async () => {
          while (writing) {
            const head = await store.head(key);
            if (head) heads.push(head);
            else problems.push('head found no object');
          }
        };
        const readers = [byteReader(), headReader(), headReader()];
        let results: BlobInfo[] = [];
        try {
          for (let round = 0; round < 4; round++) {
            results = await Promise.all(
              versions.map((bytes, i) =>
                store.put(key, Readable.from(slowChunks(bytes, Math.ceil(bytes.length / 12))), {
                  contentType: `application/x-v${i}`,
                }),
              ),
            );
            for (const [i, info] of results.entries()) versionOfEtag.set(info.etag, i);
          }
        } finally {
          writing = false;
        }
        await Promise.all(readers);

        for (const head of heads) {
          const version = versionOfEtag.get(head.etag);
          const bytes = version === undefined ? undefined : all.get(version);
          if (
            version === undefined ||
            head.size !== bytes?.length ||
            head.contentType !== `application/x-v${version}`
          ) {
            problems.push(`inconsistent head ${JSON.stringify(head)}`);
          }
        }
        expect(problems).toEqual([]);
        expect(reads).toBeGreaterThan(0);
        expect(heads.length).toBeGreaterThan(0);

        const winner = versionOfHash.get(sha256(await readAll(await store.get(key))));
        expect(winner).toBeDefined();
        expect(winner).not.toBe(99);
        const size = all.get(winner ?? -1)?.length;
        const etag = results[winner ?? -1]?.etag;
        expect(await store.head(key)).toMatchObject({ size, etag, contentType: `application/x-v${winner}` });
        const listed = await collect(store.list(key));
        expect(listed.map((b) => [b.key, b.size, b.etag])).toEqual([[key, size, etag]]);
      });

      it('concurrent puts to different keys all land', async () => {
        const keys = Array.from({ length: 12 }, (_, i) => k(`many/${String(i).padStart(2, '0')}`));
        await Promise.all(
          keys.map((key, i) => store.put(key, Readable.from(slowChunks(patterned(i, 50_000), 8192)))),
        );

        const listed = await collect(store.list(k('many/')));
        expect(listed.map((b) => b.key)).toEqual(keys);
        for (const [i, key] of keys.entries()) {
          expect(sha256(await readAll(await store.get(key)))).toBe(sha256(patterned(i, 50_000)));
        }
      });
    });

    describe('multipart', () => {
      // S3 refuses to join a part under 5 MiB unless it is the last one, so every part but the last
      // is full-sized wherever an upload is completed: these tests must pass against a bucket too.
      const FULL = 5 * 1024 * 1024;
      /** A full-sized part whose bytes all equal `fill`, so parts joined in the wrong order show up. */
      const full = (fill: number): Buffer => Buffer.alloc(FULL, fill);
      const listOf = (parts: readonly UploadedPart[]) =>
        [...parts]
          .sort((a, b) => a.partNumber - b.partNumber)
          .map(({ partNumber, etag }) => ({ partNumber, etag }));
      /** An upload id no store handed out. */
      const unknownId = (): string => `no-such-upload-${randomUUID()}`;

      it('joins parts sent out of order and in parallel, in part-number order', async () => {
        const key = k('mp/joined.bin');
        const bodies = [full(1), full(2), full(3), Buffer.from('and a short last part')];
        const uploadId = await store.createMultipart(key, { contentType: 'video/mp4' });
        expect(typeof uploadId).toBe('string');
        expect(uploadId.length).toBeGreaterThan(0);

        // Last part first, and every part at once as interleaving streams.
        const order = [3, 0, 2, 1];
        const uploaded = await Promise.all(
          order.map((i) =>
            store.putPart(key, uploadId, i + 1, Readable.from(slowChunks(bodies[i]!, 512 * 1024))),
          ),
        );
        for (const [j, i] of order.entries()) {
          expect(uploaded[j]).toMatchObject({ partNumber: i + 1, size: bodies[i]!.length });
          expect(typeof uploaded[j]?.etag).toBe('string');
        }
        const info = await store.completeMultipart(key, uploadId, listOf(uploaded));

        const expected = Buffer.concat(bodies);
        expect(info).toMatchObject({ key, size: expected.length, contentType: 'video/mp4' });
        const stored = await readAll(await store.get(key));
        expect(stored.length).toBe(expected.length);
        expect(sha256(stored)).toBe(sha256(expected));
        expect(await store.head(key)).toMatchObject({
          size: expected.length,
          etag: info.etag,
          contentType: 'video/mp4',
        });
        expect((await collect(store.list(ns))).map((b) => b.key)).toEqual([key]);
      });

      it('completes an upload of a single small part, given as a Uint8Array', async () => {
        const key = k('mp/single');
        const bytes = new Uint8Array([9, 8, 7, 0, 255]);
        const uploadId = await store.createMultipart(key);
        const part = await store.putPart(key, uploadId, 1, bytes);
        const info = await store.completeMultipart(key, uploadId, [part]);

        expect(info.size).toBe(5);
        expect([...(await readAll(await store.get(key)))]).toEqual([...bytes]);
      });

      it('a re-sent part replaces the earlier one', async () => {
        const key = k('mp/resent');
        const uploadId = await store.createMultipart(key);
        const firstOne = await store.putPart(key, uploadId, 1, full(1));
        const firstTwo = await store.putPart(key, uploadId, 2, Buffer.from('old tail'));
        const secondOne = await store.putPart(key, uploadId, 1, Readable.from([full(7)]));
        const secondTwo = await store.putPart(key, uploadId, 2, Buffer.from('the new, longer tail'));

        expect(secondOne.etag).not.toBe(firstOne.etag);
        expect(secondTwo.etag).not.toBe(firstTwo.etag);
        expect(await store.listParts(key, uploadId)).toEqual([
          { partNumber: 1, etag: secondOne.etag, size: FULL },
          { partNumber: 2, etag: secondTwo.etag, size: 20 },
        ]);
        expect(
          await errorOf(() => store.completeMultipart(key, uploadId, [firstOne, secondTwo])),
        ).toMatchObject({ code: 'VALIDATION_FAILED' });

        await store.completeMultipart(key, uploadId, [secondOne, secondTwo]);
        const expected = Buffer.concat([full(7), Buffer.from('the new, longer tail')]);
        expect(sha256(await readAll(await store.get(key)))).toBe(sha256(expected));
      });

      it('lists the parts received so far by part number, with the etag and size putPart returned', async () => {
        const key = k('mp/listed');
        const uploadId = await store.createMultipart(key);
        expect(await store.listParts(key, uploadId)).toEqual([]);

        const three = await store.putPart(key, uploadId, 3, Buffer.from('three'));
        const one = await store.putPart(
          key,
          uploadId,
          1,
          Readable.from([Buffer.from('one'), Buffer.from('!')]),
        );
        const ten = await store.putPart(key, uploadId, 10, Buffer.alloc(1000, 10));

        expect(await store.listParts(key, uploadId)).toEqual([
          { partNumber: 1, etag: one.etag, size: 4 },
          { partNumber: 3, etag: three.etag, size: 5 },
          { partNumber: 10, etag: ten.etag, size: 1000 },
        ]);
        expect(new Set([one.etag, three.etag, ten.etag]).size).toBe(3);
        await store.abortMultipart(key, uploadId);
      });

      it('shows nothing at the key until complete, and keeps an older object there until then', async () => {
        const key = k('mp/pending');
        await store.put(k('mp/fresh'), Buffer.from('unrelated'));
        const old = await store.put(key, Buffer.from('the old object'), { contentType: 'text/plain' });
        const uploadId = await store.createMultipart(key, { contentType: 'application/x-new' });
        const part = await store.putPart(key, uploadId, 1, Buffer.from('the new object'));

        expect(await store.head(key)).toMatchObject({ etag: old.etag, contentType: 'text/plain' });
        expect((await readAll(await store.get(key))).toString()).toBe('the old object');
        expect((await collect(store.list(k('mp/')))).map((b) => [b.key, b.etag])).toEqual([
          [k('mp/fresh'), expect.any(String)],
          [key, old.etag],
        ]);

        const fresh = k('mp/never-put');
        const other = await store.createMultipart(fresh);
        await store.putPart(fresh, other, 1, Buffer.from('not yet'));
        expect(await store.head(fresh)).toBeUndefined();
        expect(await errorOf(() => store.get(fresh))).toMatchObject({ code: 'BLOB_NOT_FOUND' });

        const info = await store.completeMultipart(key, uploadId, [part]);
        expect(info.etag).not.toBe(old.etag);
        expect((await readAll(await store.get(key))).toString()).toBe('the new object');
        expect(await store.head(key)).toMatchObject({ etag: info.etag, contentType: 'application/x-new' });
        await store.abortMultipart(fresh, other);
      });

      it('rejects a missing part or a wrong etag with VALIDATION_FAILED naming the part, and stays completable', async () => {
        const key = k('mp/checked');
        const uploadId = await store.createMultipart(key);
        const one = await store.putPart(key, uploadId, 1, full(1));
        const two = await store.putPart(key, uploadId, 2, Buffer.from('tail'));

        const missing = await errorOf(() =>
          store.completeMultipart(key, uploadId, [one, two, { partNumber: 3, etag: two.etag }]),
        );
        expect(missing).toMatchObject({ code: 'VALIDATION_FAILED' });
        expect((missing as Error).message).toMatch(/\b3\b/);

        const swapped = await errorOf(() =>
          store.completeMultipart(key, uploadId, [one, { partNumber: 2, etag: one.etag }]),
        );
        expect(swapped).toMatchObject({ code: 'VALIDATION_FAILED' });
        expect((swapped as Error).message).toMatch(/\b2\b/);

        const made = await errorOf(() =>
          store.completeMultipart(key, uploadId, [{ partNumber: 1, etag: '"0123456789abcdef"' }, two]),
        );
        expect(made).toMatchObject({ code: 'VALIDATION_FAILED' });
        expect((made as Error).message).toMatch(/\b1\b/);

        expect(await store.head(key)).toBeUndefined();
        expect(await store.listParts(key, uploadId)).toEqual([one, two]);
        const info = await store.completeMultipart(key, uploadId, [one, two]);
        expect(info.size).toBe(FULL + 4);
        expect(sha256(await readAll(await store.get(key)))).toBe(
          sha256(Buffer.concat([full(1), Buffer.from('tail')])),
        );
      });

      it.each([
        ['out of order', (a: Listed, b: Listed) => [b, a]],
        ['listed twice', (a: Listed, b: Listed) => [a, a, b]],
        ['empty', () => []],
        ['with part 0', (a: Listed, b: Listed) => [{ ...a, partNumber: 0 }, b]],
        ['with part 10001', (a: Listed, b: Listed) => [a, { ...b, partNumber: 10_001 }]],
        ['with a fractional part', (a: Listed, b: Listed) => [a, { ...b, partNumber: 1.5 }]],
        ['with an empty etag', (a: Listed, b: Listed) => [a, { ...b, etag: '' }]],
      ])('rejects a part list %s with VALIDATION_FAILED, and stays completable', async (_label, make) => {
        const key = k('mp/ordered');
        const uploadId = await store.createMultipart(key);
        const one = await store.putPart(key, uploadId, 1, full(1));
        const two = await store.putPart(key, uploadId, 2, Buffer.from('tail'));
        const bad = make({ partNumber: 1, etag: one.etag }, { partNumber: 2, etag: two.etag });

        expect(await errorOf(() => store.completeMultipart(key, uploadId, bad))).toMatchObject({
          code: 'VALIDATION_FAILED',
        });
        expect(await store.head(key)).toBeUndefined();
        expect((await store.completeMultipart(key, uploadId, [one, two])).size).toBe(FULL + 4);
      });

      it("answers UPLOAD_NOT_FOUND for an unknown upload id, or another key's upload", async () => {
        const key = k('mp/unknown');
        const id = unknownId();
        const part = Buffer.from('x');

        expect(await errorOf(() => store.putPart(key, id, 1, part))).toMatchObject({
          code: 'UPLOAD_NOT_FOUND',
        });
        expect(await errorOf(() => store.putPart(key, id, 1, Readable.from([part])))).toMatchObject({
          code: 'UPLOAD_NOT_FOUND',
        });
        expect(await errorOf(() => store.listParts(key, id))).toMatchObject({ code: 'UPLOAD_NOT_FOUND' });
        expect(
          await errorOf(() => store.completeMultipart(key, id, [{ partNumber: 1, etag: '"abc"' }])),
        ).toMatchObject({ code: 'UPLOAD_NOT_FOUND' });
        await expect(store.abortMultipart(key, id)).resolves.toBeUndefined();

        const theirs = await store.createMultipart(k('mp/theirs'));
        const theirPart = await store.putPart(k('mp/theirs'), theirs, 1, part);
        expect(await errorOf(() => store.putPart(key, theirs, 1, part))).toMatchObject({
          code: 'UPLOAD_NOT_FOUND',
        });
        expect(await errorOf(() => store.listParts(key, theirs))).toMatchObject({ code: 'UPLOAD_NOT_FOUND' });
        expect(await errorOf(() => store.completeMultipart(key, theirs, [theirPart]))).toMatchObject({
          code: 'UPLOAD_NOT_FOUND',
        });
        expect(await store.head(key)).toBeUndefined();
        expect(await store.listParts(k('mp/theirs'), theirs)).toEqual([theirPart]);
        await store.abortMultipart(k('mp/theirs'), theirs);
      });

      it('finishes the upload on complete: a second complete, listParts and putPart give UPLOAD_NOT_FOUND', async () => {
        const key = k('mp/twice');
        const uploadId = await store.createMultipart(key);
        const part = await store.putPart(key, uploadId, 1, Buffer.from('once'));
        const info = await store.completeMultipart(key, uploadId, [part]);

        expect(await errorOf(() => store.completeMultipart(key, uploadId, [part]))).toMatchObject({
          code: 'UPLOAD_NOT_FOUND',
        });
        expect(await errorOf(() => store.listParts(key, uploadId))).toMatchObject({
          code: 'UPLOAD_NOT_FOUND',
        });
        expect(await errorOf(() => store.putPart(key, uploadId, 2, Buffer.from('late')))).toMatchObject({
          code: 'UPLOAD_NOT_FOUND',
        });
        await expect(store.abortMultipart(key, uploadId)).resolves.toBeUndefined();
        expect(await store.head(key)).toMatchObject({ size: 4, etag: info.etag });
        expect((await readAll(await store.get(key))).toString()).toBe('once');
      });

      it.each([2, 4])('of %i concurrent completes of one upload, exactly one succeeds', async (callers) => {
        for (let round = 0; round < 3; round++) {
          const key = k(`mp/race-${round}`);
          const bytes = patterned(round, 200_000 + round);
          const uploadId = await store.createMultipart(key);
          const part = await store.putPart(key, uploadId, 1, bytes);

          const outcomes = await Promise.allSettled(
            Array.from({ length: callers }, () => store.completeMultipart(key, uploadId, [part])),
          );
          const won = outcomes.filter((o) => o.status === 'fulfilled');
          const lost = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason] : []));
          expect(won).toHaveLength(1);
          expect(lost).toHaveLength(callers - 1);
          for (const reason of lost) expect(reason).toMatchObject({ code: 'UPLOAD_NOT_FOUND' });
          expect(sha256(await readAll(await store.get(key)))).toBe(sha256(bytes));
          expect(await errorOf(() => store.listParts(key, uploadId))).toMatchObject({
            code: 'UPLOAD_NOT_FOUND',
          });
        }
      });

      it('abort removes every part, is idempotent, and leaves the object at the key alone', async () => {
        const key = k('mp/aborted');
        await store.put(key, Buffer.from('already here'));
        const uploadId = await store.createMultipart(key);
        const one = await store.putPart(key, uploadId, 1, Buffer.alloc(4096, 1));
        await store.putPart(key, uploadId, 2, Buffer.from('two'));

        await expect(store.abortMultipart(key, uploadId)).resolves.toBeUndefined();
        expect(await errorOf(() => store.listParts(key, uploadId))).toMatchObject({
          code: 'UPLOAD_NOT_FOUND',
        });
        expect(await errorOf(() => store.completeMultipart(key, uploadId, [one]))).toMatchObject({
          code: 'UPLOAD_NOT_FOUND',
        });
        expect(await errorOf(() => store.putPart(key, uploadId, 3, Buffer.from('late')))).toMatchObject({
          code: 'UPLOAD_NOT_FOUND',
        });
        await expect(store.abortMultipart(key, uploadId)).resolves.toBeUndefined();
        expect((await readAll(await store.get(key))).toString()).toBe('already here');
        expect((await collect(store.list(ns))).map((b) => b.key)).toEqual([key]);
      });

      it('keeps uploads of one key apart: aborting one leaves the other completable', async () => {
        const key = k('mp/shared');
        const first = await store.createMultipart(key);
        const second = await store.createMultipart(key);
        expect(second).not.toBe(first);
        await store.putPart(key, first, 1, Buffer.from('first upload'));
        const mine = await store.putPart(key, second, 1, Buffer.from('second upload'));

        await store.abortMultipart(key, first);
        expect(await store.listParts(key, second)).toEqual([mine]);
        await store.completeMultipart(key, second, [mine]);
        expect((await readAll(await store.get(key))).toString()).toBe('second upload');
      });

      it.each([0, -1, 10_001, 1.5, Number.NaN, Number.POSITIVE_INFINITY])(
        'rejects part number %s with VALIDATION_FAILED',
        async (partNumber) => {
          const key = k('mp/numbers');
          const uploadId = await store.createMultipart(key);

          expect(
            await errorOf(() => store.putPart(key, uploadId, partNumber, Buffer.from('x'))),
          ).toMatchObject({
            code: 'VALIDATION_FAILED',
          });
          expect(
            await errorOf(() => store.putPart(key, uploadId, partNumber, Readable.from([Buffer.from('x')]))),
          ).toMatchObject({ code: 'VALIDATION_FAILED' });
          expect(await store.listParts(key, uploadId)).toEqual([]);
          await store.abortMultipart(key, uploadId);
        },
      );

      it('accepts part numbers 1 and 10000', async () => {
        const key = k('mp/edges');
        const uploadId = await store.createMultipart(key);
        const first = await store.putPart(key, uploadId, 1, Buffer.from('first'));
        const last = await store.putPart(key, uploadId, 10_000, Buffer.from('last'));

        expect((await store.listParts(key, uploadId)).map((p) => p.partNumber)).toEqual([1, 10_000]);
        expect(first.partNumber).toBe(1);
        expect(last.partNumber).toBe(10_000);
        await store.abortMultipart(key, uploadId);
      });

      it('enforces maxBytes on a part, keeping the part that was there', async () => {
        const key = k('mp/limited');
        const uploadId = await store.createMultipart(key);
        const kept = await store.putPart(key, uploadId, 1, Buffer.alloc(10, 1), { maxBytes: 10 });
        const exact = await store.putPart(
          key,
          uploadId,
          2,
          Readable.from([Buffer.alloc(6), Buffer.alloc(4)]),
          {
            maxBytes: 10,
          },
        );
        expect(exact.size).toBe(10);

        const body = Readable.from([Buffer.alloc(6, 2), Buffer.alloc(6, 3)]);
        expect(await errorOf(() => store.putPart(key, uploadId, 1, body, { maxBytes: 10 }))).toMatchObject({
          code: 'UPLOAD_TOO_LARGE',
        });
        expect(body.destroyed).toBe(true);
        expect(
          await errorOf(() => store.putPart(key, uploadId, 3, Buffer.alloc(11), { maxBytes: 10 })),
        ).toMatchObject({ code: 'UPLOAD_TOO_LARGE' });

        expect(await store.listParts(key, uploadId)).toEqual([kept, exact]);
        await store.abortMultipart(key, uploadId);
      });

      it('a part body that errors midway rejects with that error and leaves the earlier part', async () => {
        const key = k('mp/broken');
        const uploadId = await store.createMultipart(key);
        const kept = await store.putPart(key, uploadId, 1, Buffer.from('good part'));
        const boom = new Error('part body failed');

        expect(await errorOf(() => store.putPart(key, uploadId, 1, failingBody(boom, 2)))).toBe(boom);
        expect(await errorOf(() => store.putPart(key, uploadId, 2, failingBody(boom, 1)))).toBe(boom);
        expect(await store.listParts(key, uploadId)).toEqual([kept]);
        await store.abortMultipart(key, uploadId);
      });

      it('rejects invalid keys with KEY_INVALID', async () => {
        for (const key of ['', '../x', 'a//b', '/abs']) {
          expect(await errorOf(() => store.createMultipart(key))).toMatchObject({ code: 'KEY_INVALID' });
          expect(await errorOf(() => store.putPart(key, unknownId(), 1, Buffer.from('x')))).toMatchObject({
            code: 'KEY_INVALID',
          });
          expect(await errorOf(() => store.listParts(key, unknownId()))).toMatchObject({
            code: 'KEY_INVALID',
          });
          expect(
            await errorOf(() => store.completeMultipart(key, unknownId(), [{ partNumber: 1, etag: '"x"' }])),
          ).toMatchObject({ code: 'KEY_INVALID' });
          expect(await errorOf(() => store.abortMultipart(key, unknownId()))).toMatchObject({
            code: 'KEY_INVALID',
          });
        }
      });

      it('joins a multi-megabyte object whose ranges read back across part boundaries', async () => {
        const key = k('mp/big/video.bin');
        const bodies = [patterned(11, FULL), patterned(12, FULL), patterned(13, FULL), patterned(14, 12_345)];
        const whole = Buffer.concat(bodies);
        const uploadId = await store.createMultipart(key, { contentType: 'application/octet-stream' });
        const uploaded = await Promise.all(
          bodies.map((bytes, i) =>
            store.putPart(key, uploadId, i + 1, Readable.from(slowChunks(bytes, 1024 * 1024))),
          ),
        );
        const info = await store.completeMultipart(key, uploadId, listOf(uploaded));

        expect(info.size).toBe(whole.length);
        expect((await store.head(key))?.size).toBe(whole.length);
        expect(sha256(await readAll(await store.get(key)))).toBe(sha256(whole));
        const ranges: Array<[number, number]> = [
          [0, 0],
          [FULL - 2, FULL + 1],
          [2 * FULL - 1, 2 * FULL],
          [3 * FULL - 100, 3 * FULL + 100],
          [FULL - 5, 3 * FULL + 5],
          [whole.length - 10, whole.length - 1],
        ];
        for (const [start, end] of ranges) {
          const got = await readAll(await store.get(key, { start, end }));
          expect(got.length).toBe(end - start + 1);
          expect(got.equals(whole.subarray(start, end + 1))).toBe(true);
        }
        const tail = await readAll(await store.get(key, { start: 3 * FULL + 1 }));
        expect(tail.equals(whole.subarray(3 * FULL + 1))).toBe(true);
      });
    });
  });
}

/** A key of exactly `bytes` UTF-8 bytes below `ns`, in segments short enough for any filesystem. */
function keyOfBytes(ns: string, bytes: number): string {
  let key = ns;
  while (Buffer.byteLength(key) < bytes) {
    const room = bytes - Buffer.byteLength(key);
    key += room <= 200 ? 'y'.repeat(room) : `${'y'.repeat(199)}/`;
  }
  return key;
}

/** Deterministic bytes, different for every `seed`. */
function patterned(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let x = Math.imul(seed + 1, 2654435761) >>> 0;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = (x >>> 16) & 0xff;
  }
  return out;
}

/** Chunks of `bytes` with a macrotask between them, so concurrent writers interleave. */
async function* slowChunks(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < bytes.length; offset += size) {
    await new Promise((resolve) => setImmediate(resolve));
    yield bytes.subarray(offset, offset + size);
  }
}

/** A lazily generated body (xorshift32, uneven chunk sizes) that hashes what it hands out. */
function pseudoRandomBody(total: number, seed: number) {
  const hash = createHash('sha256');
  let produced = 0;
  let state = seed >>> 0 || 1;
  const next = (): number => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
  return {
    async *chunks(): AsyncGenerator<Buffer> {
      while (produced < total) {
        const size = Math.min(total - produced, 1 + (next() % (256 * 1024)));
        const chunk = Buffer.alloc(size);
        for (let i = 0; i < size; i += 4) {
          const word = next();
          for (let j = 0; j < 4 && i + j < size; j++) chunk[i + j] = (word >>> (8 * j)) & 0xff;
        }
        hash.update(chunk);
        produced += size;
        yield chunk;
      }
    },
    produced: () => produced,
    sha256: () => hash.digest('hex'),
  };
}

/** A body that yields `goodChunks` chunks of 64 KiB, then fails with `error`. */
function failingBody(error: Error, goodChunks: number): Readable {
  return Readable.from(
    (async function* () {
      for (let i = 0; i < goodChunks; i++) yield Buffer.alloc(64 * 1024, i + 1);
      throw error;
    })(),
  );
}
