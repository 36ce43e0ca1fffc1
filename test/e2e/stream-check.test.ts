import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { AUTH } from '../helpers/auth.js';
import { ensureBuilt, ProcessGroup } from '../helpers/cli.js';
import { testContainer } from '../helpers/container.js';
import {
  makeStreamPackage,
  type StreamPackage,
  storeReadyVideo,
  storeStreamFile,
  streamBlobKey,
} from '../helpers/stream-package.js';
import { tempDir } from '../helpers/tmp.js';

// `POST /v1/assets/{id}/check` and `assetpipe check`: a real package (encodeLadder + packageLadder
// on a 2 s 320x180 testsrc2 + sine clip, 1 s segments: one 180p rung and the AAC rendition) is
// stored as the `stream/` renditions of a `ready` video, as the video pipeline publishes one; then
// blobs are removed, truncated or rewritten behind the catalog's back, and the check must say which.

const _RUN = { timeoutMs: 120_000 };
const _CLIP_SEC = 2;

interface Report {
  ok: boolean;
  checkedAt: string;
  playlists: number;
  segments: number;
  findings: { code: string; message: string; path?: string }[];
}

/** Segments the stored media playlists list, counted here from the files themselves. */
function countSegments(pkg: StreamPackage): number {
  return [...pkg.files]
    .filter(([path]) => path.endsWith('/index.m3u8'))
    .reduce((sum, [, text]) => sum + (text.toString('utf8').match(/^#EXTINF:/gm)?.length ?? 0), 0);
}

describe('stream package check', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let harness: Awaited<ReturnType<typeof testContainer>>;
  let app: FastifyInstance;
  let pkg: StreamPackage;

  const check = async (id: string, headers: Record<string, string> = AUTH) => {
    const res = await app.inject({ method: 'POST', url: `/v1/assets/${id}/check`, headers });
    return { status: res.statusCode, body: res.json<Report & { code?: string; detail?: string }>() };
  };

  beforeAll(async () => {
    tmp = await tempDir('assetpipe-stream-check-');
    pkg = await makeStreamPackage(tmp.dir);
    harness = await testContainer({ ASSETPIPE_WORKERS: '0' });
    app = await buildApp(harness.container);
  }, 180_000);

  afterAll(async () => {
    await app?.close();
    await harness?.cleanup();
    await tmp?.cleanup();
  });

  it('finds nothing wrong with a good package, and counts its playlists and segments', async () => {
    const video = await storeReadyVideo(harness.container, pkg);
    const before = Date.now();
    const res = await check(video.id);

    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ ok: true, findings: [], playlists: 3, segments: countSegments(pkg) });
    expect(res.body.segments).toBeGreaterThanOrEqual(4);
    expect(Date.parse(res.body.checkedAt)).toBeGreaterThanOrEqual(before - 1000);
  });

  it('is open to a read-only key, and a key of another project does not see the asset', async () => {
    const video = await storeReadyVideo(harness.container, pkg);
    const reader = await harness.container.auth.createKey({ name: 'reader', scopes: ['read'] });
    await harness.container.projects.create({ id: 'elsewhere' });
    const outsider = await harness.container.auth.createKey({
      name: 'outsider',
      scopes: ['read', 'write'],
      projectId: 'elsewhere',
    });

    expect((await check(video.id, { authorization: `Bearer ${reader.key}` })).body.ok).toBe(true);
    const hidden = await check(video.id, { authorization: `Bearer ${outsider.key}` });
    expect(hidden.status).toBe(404);
    expect(hidden.body.code).toBe('ASSET_NOT_FOUND');
    expect((await check(video.id, {})).status).toBe(401);
  });

  it('names the segment whose blob is gone, and nothing else', async () => {
    const video = await storeReadyVideo(harness.container, pkg);
    await harness.container.blobs.delete(streamBlobKey(video.id, 1, 'h264-180p/seg-00001.m4s'));
    const res = await check(video.id);

    expect(res.status).toBe(200);
    expect(res.body.ok).toBe(false);
    expect(res.body.findings).toEqual([
      {
        code: 'SEGMENT_MISSING',
        message: expect.stringMatching(
          /^h264-180p\/index\.m3u8 line \d+: segment seg-00001\.m4s does not exist/,
        ),
        path: 'h264-180p/seg-00001.m4s',
      },
    ]);
  });

  it('names a blob that is shorter than its rendition row says', async () => {
    const video = await storeReadyVideo(harness.container, pkg);
    const original = pkg.files.get('audio/seg-00000.m4s')!;
    await harness.container.blobs.put(
      streamBlobKey(video.id, 1, 'audio/seg-00000.m4s'),
      original.subarray(0, 200),
    );
    const res = await check(video.id);

    expect(res.body.ok).toBe(false);
    expect(res.body.findings).toContainEqual({
      code: 'FILE_SIZE_MISMATCH',
      message: `audio/seg-00000.m4s: 200 bytes are stored, the catalog recorded ${original.length} (truncated or replaced).`,
      path: 'audio/seg-00000.m4s',
    });
  });

  it('names a file the asset record links to that the package lacks, and an empty one', async () => {
    const video = await storeReadyVideo(harness.container, pkg, {
      links: { poster: { jpeg: 'poster.jpg', webp: 'poster.webp' } },
    });
    await storeStreamFile(harness.container, video.id, 1, 'poster.webp', Buffer.alloc(0));
    const res = await check(video.id);

    expect(res.body.findings).toEqual([
      { code: 'FILE_EMPTY', message: 'poster.webp: is stored empty (0 bytes).', path: 'poster.webp' },
      {
        code: 'FILE_MISSING',
        message: 'poster.jpg: the asset record links to it, but it is not in the stored package.',
        path: 'poster.jpg',
      },
    ]);
  });

  it('compares the CODECS of the master with what ffprobe reads from the stored init and first segment', async () => {
    const video = await storeReadyVideo(harness.container, pkg);
    const master = pkg.files.get('master.m3u8')!.toString('utf8');
    const declared = /CODECS="(avc1\.[0-9a-f]{6}),/.exec(master)?.[1];
    expect(declared).toBeDefined();
    // Baseline 3.0: a player that trusts it may pick a decoder the stream is too much for.
    await storeStreamFile(
      harness.container,
      video.id,
      1,
      'master.m3u8',
      Buffer.from(master.replaceAll(declared!, 'avc1.42e01e')),
    );
    const res = await check(video.id);

    expect(res.body.findings).toEqual([
      {
        code: 'CODECS_MISMATCH',
        message: expect.stringContaining(`ffprobe reads "${declared},mp4a.40.2"`),
        path: 'master.m3u8',
      },
    ]);
  });

  it('reports a missing master playlist', async () => {
    const video = await storeReadyVideo(harness.container, pkg);
    await harness.container.blobs.delete(streamBlobKey(video.id, 1, 'master.m3u8'));
    const res = await check(video.id);

    expect(res.body).toMatchObject({ ok: false, playlists: 0, segments: 0 });
    expect(res.body.findings).toEqual([
      {
        code: 'PLAYLIST_MISSING',
        message:
          'master.m3u8: the master playlist is not in the stored package (its blob is missing or too large).',
        path: 'master.m3u8',
      },
    ]);
  });

  it('answers 409 STREAM_UNAVAILABLE for a video that is not ready, 404 for an unknown asset', async () => {
    const processing = await storeReadyVideo(harness.container, pkg, { publish: false });
    const res = await check(processing.id);
    expect(res.status).toBe(409);
    expect(res.body.code).toBe('STREAM_UNAVAILABLE');
    expect(res.body.detail).toContain('processing');

    const unknown = await check('ast_00000000000000000000000000');
    expect(unknown.status).toBe(404);
  });

  describe('assetpipe check (real processes)', () => {
    const procs = new ProcessGroup();

    beforeAll(async () => {
      await ensureBuilt();
    }, 300_000);
    afterEach(async () => procs.killAll());

    it('exits 0 with a one-line summary for a good package', async () => {
      const video = await storeReadyVideo(harness.container, pkg);
      const res = await procs.run(['check', video.id, '--data', harness.dataDir]);

      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toBe(`ok: ${video.id}: 3 playlists, ${countSegments(pkg)} segments, no findings\n`);
    });

    it('exits 1 and prints each finding on its own line', async () => {
      const video = await storeReadyVideo(harness.container, pkg);
      await harness.container.blobs.delete(streamBlobKey(video.id, 1, 'h264-180p/seg-00001.m4s'));
      await harness.container.blobs.put(streamBlobKey(video.id, 1, 'manifest.mpd'), Buffer.from('<MPD/>'));
      const res = await procs.run(['check', video.id, '--data', harness.dataDir]);

      expect(res.code, res.stderr).toBe(1);
      const lines = res.stdout.trimEnd().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines).toContainEqual(
        expect.stringMatching(/^FILE_SIZE_MISMATCH {2}manifest\.mpd: 6 bytes are stored/),
      );
      expect(lines).toContainEqual(
        expect.stringMatching(/^SEGMENT_MISSING {2}h264-180p\/index\.m3u8 line \d+: segment seg-00001\.m4s/),
      );
    });

    it('exits 1 with a clear message for an unknown asset', async () => {
      const res = await procs.run(['check', 'ast_00000000000000000000000000', '--data', harness.dataDir]);

      expect(res.code).toBe(1);
      expect(res.stdout).toBe('');
      expect(res.stderr).toBe('assetpipe check: No asset with id "ast_00000000000000000000000000".\n');
    });
  });
});
