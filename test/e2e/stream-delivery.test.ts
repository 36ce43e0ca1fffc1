import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { Asset } from '../../src/domain/asset.js';
import { signStreamToken } from '../../src/domain/stream-token.js';
import { streamLinker, streamPath } from '../../src/http/stream-links.js';
import { AUTH } from '../helpers/auth.js';
import { testContainer } from '../helpers/container.js';
import { makeStreamPackage, type StreamPackage, storeReadyVideo } from '../helpers/stream-package.js';
import { tempDir } from '../helpers/tmp.js';

// /stream end to end, in process: a real package (encodeLadder + packageLadder on a 2 s 320x180
// testsrc2 + sine clip, 1 s segments: one 180p rung and the AAC rendition) is stored as the
// `stream/` renditions of assets put into the catalog as `ready`, as the video pipeline publishes
// them. No pipeline runs. URLs come from streamLinker, as asset records carry them, and every URI
// inside a playlist is resolved against the playlist's own URL, as a player does.

const _RUN = { timeoutMs: 120_000 };
const _CLIP_SEC = 2;
const HLS = 'application/vnd.apple.mpegurl';
const SHORT = 'public, max-age=60';
const IMMUTABLE = 'public, max-age=31536000, immutable';

/** The URI lines of a playlist, and the URI attributes of its tags (EXT-X-MAP, EXT-X-MEDIA). */
function playlistUris(text: string): string[] {
  const lines = text.split('\n').map((line) => line.trim());
  return [
    ...lines.flatMap((line) => [...line.matchAll(/URI="([^"]+)"/g)].map((m) => m[1]!)),
    ...lines.filter((line) => line !== '' && !line.startsWith('#')),
  ];
}

/** `uri` resolved against the URL path `base` (RFC 3986, as players resolve playlist URIs). */
const resolveUri = (base: string, uri: string) => new URL(uri, `http://player.invalid${base}`).pathname;

function problemOf(res: LightMyRequestResponse) {
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  return res.json<{ code: string; status: number; detail: string }>();
}

/** Sends `path` byte for byte over a socket: fetch and inject may normalise dot segments first. */
function rawGet(app: FastifyInstance, path: string): Promise<{ status: number; body: string }> {
  const { port } = app.server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('/stream delivery of a stored package', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let harness: Awaited<ReturnType<typeof testContainer>>;
  let app: FastifyInstance;
  let pkg: StreamPackage;
  let video: Asset;
  let masterUrl: string;

  const get = (url: string, headers: Record<string, string> = {}) => app.inject({ url, headers });
  const urlFor = async (asset: Asset, path: string) => {
    const links = await streamLinker({
      catalog: harness.container.catalog,
      signingKeys: harness.container.signingKeys,
    })(asset);
    if (!links) throw new Error(`no stream links for ${asset.id}`);
    return links.url(path);
  };

  beforeAll(async () => {
    tmp = await tempDir('assetpipe-stream-delivery-');
    pkg = await makeStreamPackage(tmp.dir);
    harness = await testContainer({ ASSETPIPE_WORKERS: '0' });
    app = await buildApp(harness.container);
    await app.listen({ host: '127.0.0.1', port: 0 });
    video = await storeReadyVideo(harness.container, pkg);
    masterUrl = await urlFor(video, 'master.m3u8');
  }, 180_000);

  afterAll(async () => {
    await app?.close();
    await harness?.cleanup();
    await tmp?.cleanup();
  });

  it('serves the master from the record-style URL, without an API key, as a short-lived public playlist any origin may read', async () => {
    expect(masterUrl).toMatch(new RegExp(`^/stream/${video.id}/1/[^/]+/master\\.m3u8$`));
    const res = await get(masterUrl);

    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toBe(HLS);
    expect(res.headers['cache-control']).toBe(SHORT);
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(String(res.headers['access-control-expose-headers'])).toMatch(/Content-Length.*Content-Range/);
    expect(res.rawPayload.equals(pkg.files.get('master.m3u8')!)).toBe(true);
  });

  it('resolves every URI of the master and the media playlists to the stored bytes, with their content types and cache headers', async () => {
    const master = (await get(masterUrl)).body;
    const mediaUris = playlistUris(master);
    expect(mediaUris.sort()).toEqual(['audio/index.m3u8', 'h264-180p/index.m3u8']);
    let segments = 0;
    for (const uri of mediaUris) {
      const playlistUrl = resolveUri(masterUrl, uri);
      const playlist = await get(playlistUrl);
      expect(playlist.statusCode, playlistUrl).toBe(200);
      expect(playlist.headers['content-type']).toBe(HLS);
      expect(playlist.headers['cache-control']).toBe(SHORT);
      const audio = uri.startsWith('audio/');
      for (const fileUri of playlistUris(playlist.body)) {
        const fileUrl = resolveUri(playlistUrl, fileUri);
        const path = fileUrl.split('/').slice(5).join('/');
        const res = await get(fileUrl);
        expect(res.statusCode, fileUrl).toBe(200);
        expect(res.rawPayload.equals(pkg.files.get(path)!), path).toBe(true);
        expect(res.headers['cache-control'], path).toBe(IMMUTABLE);
        if (fileUri.startsWith('init')) {
          expect(res.headers['content-type'], path).toBe(audio ? 'audio/mp4' : 'video/mp4');
        } else {
          expect(res.headers['content-type'], path).toMatch(
            audio ? /^(audio|video)\/iso\.segment$/ : /^video\/iso\.segment$/,
          );
          segments++;
        }
      }
    }
    expect(segments).toBeGreaterThanOrEqual(4); // 2 s in 1 s segments, video and audio
  });

  it('serves the DASH manifest under the same token', async () => {
    const res = await get(await urlFor(video, 'manifest.mpd'));

    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/dash+xml');
    expect(res.headers['cache-control']).toBe(SHORT);
  });

  it('answers a byte range of a segment with 206 and exactly those bytes, and HEAD with the length only', async () => {
    const segment = pkg.files.get('h264-180p/seg-00001.m4s')!;
    const url = resolveUri(masterUrl, 'h264-180p/seg-00001.m4s');

    const partial = await get(url, { range: 'bytes=100-299' });
    expect(partial.statusCode).toBe(206);
    expect(partial.headers['content-range']).toBe(`bytes 100-299/${segment.length}`);
    expect(partial.rawPayload.equals(segment.subarray(100, 300))).toBe(true);
    expect(partial.headers['access-control-allow-origin']).toBe('*');

    const head = await app.inject({ method: 'HEAD', url });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe(String(segment.length));
    expect(head.rawPayload.length).toBe(0);
  });

  it('gives a strong ETag and answers If-None-Match with 304', async () => {
    const url = resolveUri(masterUrl, 'h264-180p/init_h264-180p.mp4');
    const first = await get(url);
    const etag = String(first.headers.etag);
    expect(etag).toMatch(/^"[^"]+"$/);

    const again = await get(url, { 'if-none-match': etag });
    expect(again.statusCode).toBe(304);
    expect(again.rawPayload.length).toBe(0);
    expect(again.headers['cache-control']).toBe(IMMUTABLE);
  });

  it('answers a CORS preflight for Range requests', async () => {
    const res = await app.inject({
      method: 'OPTIONS',
      url: resolveUri(masterUrl, 'h264-180p/seg-00000.m4s'),
      headers: {
        origin: 'https://player.example',
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'range',
      },
    });

    expect(res.statusCode).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(String(res.headers['access-control-allow-methods'])).toContain('GET');
    expect(String(res.headers['access-control-allow-headers']).toLowerCase()).toContain('range');
  });

  it.each([
    [
      'an altered signature',
      (t: string) => `${t.slice(0, -43)}${t.at(-43) === 'A' ? 'B' : 'A'}${t.slice(-42)}`,
      /mismatch/,
    ],
    ['a malformed token', () => 'not-a-token', /malformed/],
    ['a key this server does not have', (t: string) => `ffffffff${t.slice(t.indexOf('.'))}`, /unknown-key/],
  ])(
    'refuses %s with 403 STREAM_TOKEN_INVALID, still readable cross-origin',
    async (_label, tamper, reason) => {
      const token = masterUrl.split('/')[4]!;
      const res = await get(streamPath(video.id, 1, tamper(token), 'master.m3u8'));

      expect(res.statusCode).toBe(403);
      const problem = problemOf(res);
      expect(problem.code).toBe('STREAM_TOKEN_INVALID');
      expect(problem.detail).toMatch(reason);
      expect(res.headers['access-control-allow-origin']).toBe('*');
    },
  );

  it('refuses an expired token, naming the expiry', async () => {
    const past = Math.floor(Date.now() / 1000) - 60;
    const token = signStreamToken(video.id, 1, { keys: harness.container.signingKeys, expiresAt: past });
    const res = await get(streamPath(video.id, 1, token, 'master.m3u8'));

    expect(res.statusCode).toBe(403);
    expect(problemOf(res).detail).toContain(`expired at ${new Date(past * 1000).toISOString()}`);
  });

  it("refuses one version's token for another version of the same asset", async () => {
    const twoVersions = await storeReadyVideo(harness.container, pkg, { versions: 2 });
    expect(twoVersions.versionNumber).toBe(2);
    const v2Url = await urlFor(twoVersions, 'master.m3u8');
    const v1Token = signStreamToken(twoVersions.id, 1, { keys: harness.container.signingKeys });
    expect((await get(streamPath(twoVersions.id, 1, v1Token, 'master.m3u8'))).statusCode).toBe(200);
    expect((await get(v2Url)).statusCode).toBe(200);

    const swapped = await get(streamPath(twoVersions.id, 2, v1Token, 'master.m3u8'));
    expect(swapped.statusCode).toBe(403);
    expect(problemOf(swapped).code).toBe('STREAM_TOKEN_INVALID');
    // Nor another asset's files with this asset's token.
    expect((await get(streamPath(video.id, 1, v1Token, 'master.m3u8'))).statusCode).toBe(403);
  });

  it('answers 404 for a version that does not exist and a file that is not in the package', async () => {
    const v9 = signStreamToken(video.id, 9, { keys: harness.container.signingKeys });
    const noVersion = await get(streamPath(video.id, 9, v9, 'master.m3u8'));
    expect(noVersion.statusCode).toBe(404);
    expect(problemOf(noVersion).detail).toContain('no ready version 9');

    const noFile = await get(resolveUri(masterUrl, 'h264-180p/seg-09999.m4s'));
    expect(noFile.statusCode).toBe(404);
    expect(problemOf(noFile).code).toBe('NOT_FOUND');
  });

  it('answers 404 once the asset is deleted, and serves it again when restored', async () => {
    await harness.container.catalog.softDeleteAsset(video.id, new Date().toISOString());
    try {
      const res = await get(masterUrl);
      expect(res.statusCode).toBe(404);
      expect(problemOf(res).code).toBe('ASSET_NOT_FOUND');
    } finally {
      await harness.container.catalog.restoreAsset(video.id, new Date().toISOString());
    }
    expect((await get(masterUrl)).statusCode).toBe(200);
  });

  it.each([
    ['a dot-dot segment', '../master.m3u8'],
    ['dot-dot segments out of the package', 'h264-180p/../../../../../derived/x'],
    ['a percent-encoded dot-dot', '%2e%2e/master.m3u8'],
    ['an encoded slash', 'h264-180p%2Findex.m3u8'],
    ['an encoded backslash', 'h264-180p%5Cindex.m3u8'],
    ['a NUL byte', 'master.m3u8%00.jpg'],
    ['a control character', 'master%0A.m3u8'],
    ['an empty segment', 'h264-180p//index.m3u8'],
    ['a single-dot segment', './master.m3u8'],
    ['broken percent-encoding', 'master%E0%A4%A.m3u8'],
  ])('refuses %s with 400 URL_INVALID', async (_label, tail) => {
    const prefix = masterUrl.slice(0, masterUrl.lastIndexOf('/') + 1);
    const res = await rawGet(app, `${prefix}${tail}`);

    expect(res.status, res.body.slice(0, 300)).toBe(400);
    expect(res.body).toContain('"code":"URL_INVALID"');
  });

  it("never reaches another asset's file by walking out of this asset's prefix", async () => {
    const other = await storeReadyVideo(harness.container, pkg);
    const otherMaster = await urlFor(other, 'master.m3u8');
    // /stream/<this>/1/<this token>/../../../<other>/1/<other token>/master.m3u8
    const walk = `${masterUrl.slice(0, masterUrl.lastIndexOf('/'))}/../../..${otherMaster.slice('/stream'.length)}`;
    const res = await rawGet(app, walk);

    expect(res.status).toBe(400);
    expect(res.body).toContain('URL_INVALID');
  });

  it('keeps private projects private: cache headers say private and end with the token, and a token without expiry is refused', async () => {
    await harness.container.projects.create({ id: 'studio', visibility: 'private' });
    const secret = await storeReadyVideo(harness.container, pkg, { projectId: 'studio' });
    const url = await urlFor(secret, 'master.m3u8');
    const exp = Number(url.split('/')[4]!.split('.')[1]);
    expect(exp).toBeGreaterThan(Date.now() / 1000);

    const playlist = await get(url);
    expect(playlist.statusCode).toBe(200);
    expect(playlist.headers['cache-control']).toBe('private, max-age=60');

    const segment = await get(resolveUri(url, 'h264-180p/seg-00000.m4s'));
    expect(segment.statusCode).toBe(200);
    const match = /^private, max-age=(\d+), immutable$/.exec(String(segment.headers['cache-control']));
    expect(match, String(segment.headers['cache-control'])).not.toBeNull();
    const maxAge = Number(match![1]);
    expect(maxAge).toBeGreaterThan(0);
    expect(maxAge).toBeLessThanOrEqual(exp - Math.floor(Date.now() / 1000) + 1);

    const forever = signStreamToken(secret.id, 1, { keys: harness.container.signingKeys });
    const refused = await get(streamPath(secret.id, 1, forever, 'master.m3u8'));
    expect(refused.statusCode).toBe(403);
    expect(problemOf(refused).detail).toMatch(/private/);
  });

  it('documents the route in the OpenAPI document under "delivery"', async () => {
    const doc = (await app.inject({ url: '/docs/json', headers: AUTH })).json<{
      paths: Record<string, Record<string, { tags?: string[]; summary?: string }>>;
    }>();
    const path = Object.keys(doc.paths).find((p) => p.startsWith('/stream/'));
    expect(path).toBeDefined();
    expect(doc.paths[path!]!.get?.tags).toEqual(['delivery']);
    expect(doc.paths[path!]!.get?.summary).toMatch(/stream package/);
  });
});
