import type { Dirent } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../src/storage/fs-blob-store.js';
import { tempDir } from '../helpers/tmp.js';
import { blobStoreContract } from './blob-store.contract.js';
import { codeOf, collect, errorOf, readAll, sha256 } from './blob-test-utils.js';

blobStoreContract('FsBlobStore', async () => {
  const { dir, cleanup } = await tempDir('assetpipe-fs-blob-');
  return { store: new FsBlobStore({ root: join(dir, 'root') }), cleanup };
});

describe('FsBlobStore on the filesystem', () => {
  let dir: string;
  let root: string;
  let cleanup: () => Promise<void>;
  let store: FsBlobStore;

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir('assetpipe-fs-blob-'));
    root = join(dir, 'root');
    store = new FsBlobStore({ root });
  });

  afterEach(async () => {
    await store.close();
    await cleanup();
  });

  it('keeps each object as a plain file at objects/<key> and uses its sha256 as the etag', async () => {
    const bytes = Buffer.from('plain bytes on disk');
    const info = await store.put('a/b.txt', bytes, { contentType: 'text/plain' });

    expect(await readFile(join(root, 'objects', 'a', 'b.txt'))).toEqual(bytes);
    expect(info.etag).toBe(`"${sha256(bytes)}"`);
    expect((await store.head('a/b.txt'))?.etag).toBe(`"${sha256(bytes)}"`);
  });

  it('never writes outside root, whatever the key', async () => {
    await store.put('ok', Buffer.from('fine'));
    const hostile = [
      '',
      '..',
      '../x',
      '../../outside',
      'a/../b',
      'a/../../../x',
      'a/b/../../..',
      '/abs',
      '/tmp/evil',
      'a//b',
      'a/./b',
      './x',
      'with\u0000nul',
      'tab\tkey',
      'C:/win',
      'C:\\evil',
      'a\\b',
      '..\\..\\x',
      'k'.repeat(2000),
    ];
    const codes = new Set<unknown>();
    for (const key of hostile) {
      codes.add(await codeOf(() => store.put(key, Buffer.from('hostile'))));
      codes.add(await codeOf(() => store.put(key, Readable.from([Buffer.from('hostile')]))));
      codes.add(await codeOf(() => store.get(key)));
      codes.add(await codeOf(() => store.head(key)));
      codes.add(await codeOf(() => store.delete(key)));
      if (key !== '') codes.add(await codeOf(() => collect(store.list(key))));
    }

    expect([...codes]).toEqual(['KEY_INVALID']);
    expect(await readdir(dir)).toEqual(['root']);
    expect(await filesUnder(join(root, 'objects'))).toEqual(['ok']);
    expect(await filesUnder(join(root, 'tmp'))).toEqual([]);
    expect(await filesUnder(join(root, 'meta'))).toHaveLength(1);
  });

  it('leaves no temp files, sidecars or directories behind after failed puts', async () => {
    await store.put('keep', Buffer.from('old'));
    const failing = Readable.from(
      (async function* () {
        yield Buffer.alloc(100_000, 1);
        throw new Error('client went away');
      })(),
    );

    expect(await errorOf(() => store.put('new/deep/broken', failing))).toMatchObject({
      message: 'client went away',
    });
    expect(
      await codeOf(() =>
        store.put('new/deep/big', Readable.from([Buffer.alloc(70_000)]), { maxBytes: 65_536 }),
      ),
    ).toBe('UPLOAD_TOO_LARGE');
    expect(await codeOf(() => store.put('keep', Buffer.alloc(20), { maxBytes: 10 }))).toBe(
      'UPLOAD_TOO_LARGE',
    );
    expect(await codeOf(() => store.put('keep/below', Buffer.from('conflict')))).toBe('KEY_INVALID');

    expect(await filesUnder(join(root, 'tmp'))).toEqual([]);
    expect(await filesUnder(join(root, 'objects'))).toEqual(['keep']);
    expect(await readdir(join(root, 'objects'))).toEqual(['keep']);
    expect(await filesUnder(join(root, 'meta'))).toHaveLength(1);
    expect((await readAll(await store.get('keep'))).toString()).toBe('old');
  });

  it('writes to disk while the body is still arriving (no buffering of the whole body)', async () => {
    const body = new PassThrough();
    const pending = store.put('streamed', body);
    body.write(Buffer.alloc(1024 * 1024, 1));

    const sizes = await poll(async () => {
      const found = await tempSizes(join(root, 'tmp'));
      return found.includes(1024 * 1024) ? found : undefined;
    });
    expect(sizes).toEqual([1024 * 1024]);
    expect(await store.head('streamed')).toBeUndefined();

    body.end(Buffer.alloc(10, 2));
    const info = await pending;
    expect(info.size).toBe(1024 * 1024 + 10);
    expect(await filesUnder(join(root, 'tmp'))).toEqual([]);
  });

  it('removes temp files older than an hour on start and keeps fresh ones', async () => {
    const otherRoot = join(dir, 'other');
    await mkdir(join(otherRoot, 'tmp'), { recursive: true });
    await writeFile(join(otherRoot, 'tmp', 'crashed.tmp'), 'partial');
    await writeFile(join(otherRoot, 'tmp', 'in-flight.tmp'), 'partial');
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(join(otherRoot, 'tmp', 'crashed.tmp'), twoHoursAgo, twoHoursAgo);

    const other = new FsBlobStore({ root: otherRoot });
    try {
      await other.put('x', Buffer.from('x'));
      expect(await readdir(join(otherRoot, 'tmp'))).toEqual(['in-flight.tmp']);
    } finally {
      await other.close();
    }
  });

  it('removes empty parent directories on delete, up to objects/', async () => {
    await store.put('p/q/r/s', Buffer.from('1'));
    await store.put('p/q/x', Buffer.from('2'));

    await store.delete('p/q/r/s');
    expect(await exists(join(root, 'objects', 'p', 'q', 'r'))).toBe(false);
    expect(await exists(join(root, 'objects', 'p', 'q', 'x'))).toBe(true);

    await store.delete('p/q/x');
    expect(await exists(join(root, 'objects', 'p'))).toBe(false);
    expect(await readdir(join(root, 'objects'))).toEqual([]);
  });

  it('keeps exactly one sidecar per live object', async () => {
    await store.put('o', Buffer.from('one'), { contentType: 'text/plain' });
    await store.put('o', Buffer.from('two'), { contentType: 'text/plain' });
    await store.put('o', Buffer.from('three'), { contentType: 'text/csv' });
    await store.put('p', Buffer.from('other'));
    expect(await filesUnder(join(root, 'meta'))).toHaveLength(2);

    await store.delete('o');
    expect(await filesUnder(join(root, 'meta'))).toHaveLength(1);
    await store.delete('p');
    expect(await filesUnder(join(root, 'meta'))).toEqual([]);
  });

  it('lists only objects, even ones whose keys look like the store layout', async () => {
    const keys = ['meta/a.json', 'objects/b', 'tmp/c.tmp'];
    for (const key of keys) await store.put(key, Buffer.from(key), { contentType: 'text/plain' });

    expect((await collect(store.list(''))).map((b) => b.key)).toEqual(keys);
    expect(await filesUnder(join(root, 'meta'))).toHaveLength(3);
  });

  it('does not report an object whose data file is gone, even if its sidecar remains', async () => {
    await store.put('gone', Buffer.from('data'), { contentType: 'text/plain' });
    await unlink(join(root, 'objects', 'gone'));

    expect(await filesUnder(join(root, 'meta'))).toHaveLength(1);
    expect(await store.head('gone')).toBeUndefined();
    expect(await codeOf(() => store.get('gone'))).toBe('BLOB_NOT_FOUND');
    expect(await collect(store.list(''))).toEqual([]);
  });

  it('serves a file copied in without a sidecar, with an etag that changes with its bytes', async () => {
    await mkdir(join(root, 'objects', 'manual'), { recursive: true });
    await writeFile(join(root, 'objects', 'manual', 'a.bin'), 'AAAA');
    const first = await store.head('manual/a.bin');

    expect(first).toMatchObject({ key: 'manual/a.bin', size: 4, contentType: undefined });
    expect(first?.etag).toMatch(/^".+"$/);
    expect((await collect(store.list('manual/'))).map((b) => [b.key, b.etag])).toEqual([
      ['manual/a.bin', first?.etag],
    ]);

    await writeFile(join(root, 'replacement'), 'BBBB');
    await rename(join(root, 'replacement'), join(root, 'objects', 'manual', 'a.bin'));
    const second = await store.head('manual/a.bin');
    expect(second?.size).toBe(4);
    expect(second?.etag).not.toBe(first?.etag);
    expect((await readAll(await store.get('manual/a.bin'))).toString()).toBe('BBBB');
  });

  it('rejects keys that would need a path to be both a file and a directory', async () => {
    await store.put('c', Buffer.from('file c'));
    await store.put('e/f', Buffer.from('file e/f'));

    expect(await codeOf(() => store.put('c/d', Buffer.from('below a file')))).toBe('KEY_INVALID');
    expect(await codeOf(() => store.put('e', Readable.from([Buffer.from('over a directory')])))).toBe(
      'KEY_INVALID',
    );
    expect((await readAll(await store.get('c'))).toString()).toBe('file c');
    expect((await readAll(await store.get('e/f'))).toString()).toBe('file e/f');
    expect(await filesUnder(join(root, 'tmp'))).toEqual([]);
    expect(await filesUnder(join(root, 'meta'))).toHaveLength(2);
  });

  it('rejects a key segment longer than a file name, and finds nothing under it', async () => {
    const key = `seg/${'x'.repeat(300)}`;

    expect(await codeOf(() => store.put(key, Buffer.from('x')))).toBe('KEY_INVALID');
    expect(await store.head(key)).toBeUndefined();
    expect(await codeOf(() => store.get(key))).toBe('BLOB_NOT_FOUND');
    await expect(store.delete(key)).resolves.toBeUndefined();
    expect(await collect(store.list(`${key}/`))).toEqual([]);
    expect(await filesUnder(join(root, 'tmp'))).toEqual([]);
  });

  it('does not follow a symlink planted in objects/', async () => {
    const secret = join(dir, 'secret.txt');
    await writeFile(secret, 'top secret');
    await store.put('real', Buffer.from('real'));
    await symlink(secret, join(root, 'objects', 'link'));

    expect(await store.head('link')).toBeUndefined();
    expect(await codeOf(() => store.get('link'))).toBe('BLOB_NOT_FOUND');
    expect((await collect(store.list(''))).map((b) => b.key)).toEqual(['real']);
    await store.delete('link');
    expect(await readFile(secret, 'utf8')).toBe('top secret');
  });

  it('refuses to start without a root', () => {
    expect(() => new FsBlobStore({ root: '' })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});

describe('FsBlobStore multipart on the filesystem', () => {
  let dir: string;
  let root: string;
  let cleanup: () => Promise<void>;
  let store: FsBlobStore;

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir('assetpipe-fs-multipart-'));
    root = join(dir, 'root');
    store = new FsBlobStore({ root });
  });

  afterEach(async () => {
    await store.close();
    await cleanup();
  });

  it('leaves no parts, sidecars, claimed folders or temp files after complete and after abort', async () => {
    const done = await store.createMultipart('mp/done');
    const one = await store.putPart('mp/done', done, 1, Buffer.alloc(70_000, 1));
    await store.putPart('mp/done', done, 2, Buffer.from('replaced'));
    const two = await store.putPart('mp/done', done, 2, Readable.from([Buffer.from('tail')]));
    await codeOf(() => store.putPart('mp/done', done, 3, Buffer.alloc(20), { maxBytes: 10 }));
    const dropped = await store.createMultipart('mp/dropped');
    await store.putPart('mp/dropped', dropped, 1, Buffer.alloc(1000, 5));
    expect((await readdir(join(root, 'multipart'))).sort()).toEqual([done, dropped].sort());

    await store.completeMultipart('mp/done', done, [one, two]);
    await store.abortMultipart('mp/dropped', dropped);
    // Late calls must not bring a folder back.
    expect(await codeOf(() => store.putPart('mp/done', done, 4, Buffer.from('late')))).toBe(
      'UPLOAD_NOT_FOUND',
    );
    expect(await codeOf(() => store.listParts('mp/dropped', dropped))).toBe('UPLOAD_NOT_FOUND');
    await store.abortMultipart('mp/dropped', dropped);

    expect(await readdir(join(root, 'multipart'))).toEqual([]);
    expect(await filesUnder(join(root, 'tmp'))).toEqual([]);
    expect(await filesUnder(join(root, 'objects'))).toEqual(['mp/done']);
    expect(await filesUnder(join(root, 'meta'))).toHaveLength(1);
  });

  it('keeps one data file and one sidecar per part; failed and replaced writes leave nothing', async () => {
    const id = await store.createMultipart('mp/k', { contentType: 'text/plain' });
    await store.putPart('mp/k', id, 1, Buffer.from('first try'));
    await store.putPart('mp/k', id, 1, Buffer.from('second try'));
    await codeOf(() =>
      store.putPart('mp/k', id, 2, Readable.from([Buffer.alloc(50_000)]), { maxBytes: 1000 }),
    );
    await errorOf(() =>
      store.putPart(
        'mp/k',
        id,
        3,
        Readable.from(
          (async function* () {
            yield Buffer.alloc(10_000);
            throw new Error('gone');
          })(),
        ),
      ),
    );

    const names = await readdir(join(root, 'multipart', id));
    expect(names.sort()).toEqual(['1', expect.stringMatching(/^1\.\d+-10-\d+\.sha256$/), 'upload.json']);
    expect(await readFile(join(root, 'multipart', id, '1'), 'utf8')).toBe('second try');
    expect(JSON.parse(await readFile(join(root, 'multipart', id, 'upload.json'), 'utf8'))).toMatchObject({
      key: 'mp/k',
      contentType: 'text/plain',
    });
  });

  it('hands out upload ids that are safe file names', async () => {
    const ids = await Promise.all(Array.from({ length: 20 }, () => store.createMultipart('mp/ids')));

    expect(new Set(ids).size).toBe(20);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]{16,64}$/);
  });

  it('commits a multipart object like put: a plain file whose etag is the sha256 of all its bytes', async () => {
    const id = await store.createMultipart('mp/plain', { contentType: 'application/x-joined' });
    const one = await store.putPart('mp/plain', id, 1, Buffer.from('hello, '));
    const two = await store.putPart('mp/plain', id, 2, Buffer.from('world'));
    // Etags are accepted without their quotes too.
    const info = await store.completeMultipart('mp/plain', id, [
      one,
      { partNumber: 2, etag: two.etag.replaceAll('"', '') },
    ]);

    expect(one.etag).toBe(`"${sha256(Buffer.from('hello, '))}"`);
    expect(info.etag).toBe(`"${sha256(Buffer.from('hello, world'))}"`);
    expect(await readFile(join(root, 'objects', 'mp', 'plain'), 'utf8')).toBe('hello, world');
    expect(await store.head('mp/plain')).toMatchObject({
      etag: info.etag,
      contentType: 'application/x-joined',
    });
  });

  it('rejects hostile upload ids without touching anything outside the multipart folder', async () => {
    // A decoy upload outside root that a path-following store would find.
    const decoy = join(dir, 'decoy');
    await mkdir(decoy);
    await writeFile(join(decoy, 'upload.json'), JSON.stringify({ key: 'mp/k', createdAt: 'x' }));
    await writeFile(join(decoy, '1'), 'decoy part');
    const real = await store.createMultipart('mp/k');
    const part = await store.putPart('mp/k', real, 1, Buffer.from('real part'));
    const hostile = [
      '',
      '.',
      '..',
      '../decoy',
      '../../decoy',
      `${real}/../${real}`,
      `../multipart/${real}`,
      `${real}/.`,
      `${real}.completing-x`,
      '/etc',
      join(dir, 'decoy'),
      'a\\..\\b',
      'nul\u0000',
      '%2e%2e',
      'x'.repeat(65),
      'ünï',
      undefined as unknown as string,
      42 as unknown as string,
    ];

    const codes = new Set<unknown>();
    for (const id of hostile) {
      codes.add(await codeOf(() => store.putPart('mp/k', id, 1, Buffer.from('hostile'))));
      codes.add(await codeOf(() => store.putPart('mp/k', id, 2, Readable.from([Buffer.from('hostile')]))));
      codes.add(await codeOf(() => store.listParts('mp/k', id)));
      codes.add(
        await codeOf(() => store.completeMultipart('mp/k', id, [{ partNumber: 1, etag: part.etag }])),
      );
      await expect(store.abortMultipart('mp/k', id)).resolves.toBeUndefined();
    }

    expect([...codes]).toEqual(['UPLOAD_NOT_FOUND']);
    expect((await readdir(dir)).sort()).toEqual(['decoy', 'root']);
    expect((await readdir(decoy)).sort()).toEqual(['1', 'upload.json']);
    expect(await readFile(join(decoy, '1'), 'utf8')).toBe('decoy part');
    expect(await readdir(join(root, 'multipart'))).toEqual([real]);
    expect(await filesUnder(join(root, 'objects'))).toEqual([]);
    expect(await store.listParts('mp/k', real)).toEqual([part]);
  });

  it('does not take a symlink planted in an upload folder for a part', async () => {
    const secret = join(dir, 'secret.txt');
    await writeFile(secret, 'top secret');
    const id = await store.createMultipart('mp/link');
    const one = await store.putPart('mp/link', id, 1, Buffer.from('real'));
    await symlink(secret, join(root, 'multipart', id, '2'));

    expect(await store.listParts('mp/link', id)).toEqual([one]);
    expect(
      await codeOf(() =>
        store.completeMultipart('mp/link', id, [
          one,
          { partNumber: 2, etag: `"${sha256(Buffer.from('top secret'))}"` },
        ]),
      ),
    ).toBe('VALIDATION_FAILED');
    expect(await store.head('mp/link')).toBeUndefined();
    expect(await readFile(secret, 'utf8')).toBe('top secret');
  });

  it('hands the upload back when the joined object cannot be committed', async () => {
    await store.put('taken', Buffer.from('a file where a directory would go'));
    const id = await store.createMultipart('taken/below');
    const part = await store.putPart('taken/below', id, 1, Buffer.from('bytes'));

    expect(await codeOf(() => store.completeMultipart('taken/below', id, [part]))).toBe('KEY_INVALID');
    expect(await readdir(join(root, 'multipart'))).toEqual([id]);
    expect(await filesUnder(join(root, 'tmp'))).toEqual([]);
    expect(await store.listParts('taken/below', id)).toEqual([part]);

    await store.abortMultipart('taken/below', id);
    expect(await readdir(join(root, 'multipart'))).toEqual([]);
  });

  it('removes upload folders untouched for a week on start and keeps younger ones', async () => {
    const otherRoot = join(dir, 'other');
    const multipart = join(otherRoot, 'multipart');
    for (const name of ['abandoned', 'recent', 'crashed.completing-1']) {
      await mkdir(join(multipart, name), { recursive: true });
      await writeFile(join(multipart, name, 'upload.json'), '{}');
    }
    const eightDaysAgo = new Date(Date.now() - 8 * 24 * 60 * 60 * 1000);
    const sixDaysAgo = new Date(Date.now() - 6 * 24 * 60 * 60 * 1000);
    await utimes(join(multipart, 'abandoned'), eightDaysAgo, eightDaysAgo);
    await utimes(join(multipart, 'crashed.completing-1'), eightDaysAgo, eightDaysAgo);
    await utimes(join(multipart, 'recent'), sixDaysAgo, sixDaysAgo);

    const other = new FsBlobStore({ root: otherRoot });
    try {
      await other.createMultipart('x');
      const left = (await readdir(multipart)).filter((name) => !/^[A-Za-z0-9_-]{24}$/.test(name));
      expect(left).toEqual(['recent']);
    } finally {
      await other.close();
    }
  });
});

/** Paths (relative, `/`-separated) of every non-directory below `dir`; `[]` when it does not exist. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (current: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(current, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) await visit(path);
      else out.push(relative(dir, path).split('\\').join('/'));
    }
  };
  await visit(dir);
  return out.sort();
}

async function tempSizes(dir: string): Promise<number[]> {
  const sizes: number[] = [];
  for (const name of await readdir(dir).catch(() => [])) {
    const info = await stat(join(dir, name)).catch(() => undefined);
    if (info?.isFile()) sizes.push(info.size);
  }
  return sizes;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Re-checks `probe` until it returns a value (bounded by attempts, not by time). */
async function poll<T>(probe: () => Promise<T | undefined>, attempts = 2000): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error('condition never became true');
}
