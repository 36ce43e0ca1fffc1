import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_ADMIN_KEY } from '../helpers/auth.js';
import { type FileServer, HLS_JS_FILE, launchChromium, serveFiles } from '../helpers/browser.js';
import {
  openPlayer,
  type PageLevel,
  PLAYER_PAGE,
  snapshot,
  waitForProgress,
  waitInPage,
} from '../helpers/hls-player.js';
import { tempDir } from '../helpers/tmp.js';
import {
  makeTestClip,
  startVideoServer,
  uploadReadyVideo,
  type VideoRecord,
  type VideoServer,
} from '../helpers/video-server.js';

// The playback canary on a READY asset, end to end: a clip is uploaded to a running assetpipe
// (API + workers in this process), the pipeline probes, plans, encodes, packages, validates and
// publishes it, and Debian's Chromium plays the record's `hls` URL with hls.js from a page on
// ANOTHER origin (as a customer's site would: the stream prefix answers with CORS headers, and the
// signed token in the path covers every file the player fetches). Asserted: both rungs are levels,
// playback reaches its end without a fatal error, and levels chosen by hand are switched to.

const CLIP_SEC = 8;
let cleanup: (() => Promise<void>) | undefined;
let server: VideoServer | undefined;
let pageServer: FileServer | undefined;
let browser: Browser | undefined;
let asset: VideoRecord;
let baseUrl: string;

beforeAll(async () => {
  const tmp = await tempDir('assetpipe-video-playback-');
  cleanup = tmp.cleanup;
  const source = join(tmp.dir, 'clip.mp4');
  await makeTestClip(source, { size: '854x480', rate: '30', durationSec: CLIP_SEC });
  server = await startVideoServer({
    // 2 s segments give each rung four segments, so a switch happens mid-stream.
    ASSETPIPE_VIDEO_SEGMENT_SEC: '2',
    ASSETPIPE_VIDEO_ABR: 'fixed',
    ASSETPIPE_WORKERS: '1',
  });
  baseUrl = server.baseUrl;
  asset = await uploadReadyVideo(baseUrl, source);

  const pageDir = join(tmp.dir, 'page');
  await mkdir(pageDir, { recursive: true });
  await writeFile(join(pageDir, 'index.html'), PLAYER_PAGE);
  pageServer = await serveFiles({ root: pageDir, files: { '/hls.min.js': HLS_JS_FILE } });
  browser = await launchChromium();
}, 420_000);

afterAll(async () => {
  await browser?.close();
  await pageServer?.close();
  await server?.close();
  await cleanup?.();
});

const masterUrl = () => new URL(asset.hls ?? '', baseUrl).toString();

describe('a ready video asset plays in Chromium with hls.js', () => {
  it('has a record with the HLS and DASH URLs and the two-rung ladder it chose', () => {
    expect(asset.hls).toMatch(/^(https?:\/\/[^/]+)?\/stream\/[^/]+\/1\/[^/]+\/master\.m3u8$/);
    expect(asset.dash).toMatch(/\/manifest\.mpd$/);
    expect(asset.ladder?.rungs.map((r) => `${r.width}x${r.height}`)).toEqual(['854x480', '640x360']);
  });

  it('plays from another origin to its end at 4x, with both levels and no fatal error', async () => {
    const { page, pageErrors, close } = await openPlayer(browser!, `${pageServer!.origin}/index.html`);
    try {
      const levels = await page.evaluate<PageLevel[]>(
        `start(${JSON.stringify(masterUrl())}, { rate: 4, startLevel: -1 })`,
      );
      expect(levels.map((l) => `${l.width}x${l.height}`)).toEqual(['640x360', '854x480']);
      expect(levels.every((l) => l.codecs[0]?.startsWith('avc1.') && l.codecs[1] === 'mp4a.40.2')).toBe(true);
      await waitInPage(page, 'state.ended', 'the ended event');
      const end = await snapshot(page);
      expect(end.ended).toBe(true);
      expect(Math.abs(end.duration - CLIP_SEC)).toBeLessThan(0.2);
      expect(Math.abs(end.currentTime - end.duration)).toBeLessThanOrEqual(0.3);
      expect(end.state.errors.filter((e) => e.fatal)).toEqual([]);
      expect(end.state.mediaErrors).toEqual([]);
      expect(pageErrors).toEqual([]);
      // Every fragment came from the signed stream prefix of version 1.
      expect(end.state.fragsLoaded.length).toBeGreaterThan(0);
      const prefix = masterUrl().replace(/master\.m3u8$/, '');
      expect(end.state.fragsLoaded.every((f) => f.url.startsWith(prefix))).toBe(true);
    } finally {
      await close();
    }
  });

  it('switches quality levels by hand while playing, and playback goes on to the end', async () => {
    const { page, pageErrors, close } = await openPlayer(browser!, `${pageServer!.origin}/index.html`);
    try {
      await page.evaluate(`start(${JSON.stringify(masterUrl())}, { rate: 1, startLevel: 1 })`);
      await waitInPage(page, 'state.levelSwitched.some((s) => s.level === 1)', 'the start on level 1');
      await waitForProgress(page, 0.3, 'playback on level 1');
      for (const [level, height] of [
        [0, 360],
        [1, 480],
      ] as const) {
        const before = (await snapshot(page)).state;
        await page.evaluate(`setLevel(${level})`);
        await waitInPage(
          page,
          `state.levelSwitched.slice(${before.levelSwitched.length}).some((s) => s.level === ${level})`,
          `LEVEL_SWITCHED to level ${level}`,
        );
        await waitInPage(page, `video.videoHeight === ${height}`, `${height}p frames on screen`);
        await waitForProgress(page, 0.3, `playback after the switch to level ${level}`);
        const after = await snapshot(page);
        expect(after.currentLevel).toBe(level);
        const fetched = after.state.fragsLoaded.slice(before.fragsLoaded.length);
        expect(fetched.some((f) => f.url.includes(`/h264-${height}p/seg-`))).toBe(true);
      }
      await page.evaluate('setRate(4)');
      await waitInPage(page, 'state.ended', 'the ended event after the switches');
      const end = await snapshot(page);
      expect(end.state.errors.filter((e) => e.fatal)).toEqual([]);
      expect(end.state.mediaErrors).toEqual([]);
      expect(pageErrors).toEqual([]);
    } finally {
      await close();
    }
  });

  it("shows in the web page's asset list with its poster and duration", async () => {
    const context = await browser!.newContext();
    try {
      const page = await context.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (err) => pageErrors.push(err.message));
      await page.goto(`${baseUrl}/#key=${TEST_ADMIN_KEY}`);
      const item = page.locator('#assets li', { hasText: 'clip.mp4' });
      await item.waitFor({ timeout: 30_000 });
      expect(await item.textContent()).toMatch(/clip\.mp4 — video, ready, 854×480, 8\.0 s/);
      // The poster came from the signed stream prefix and decoded (a broken image has no natural size).
      const poster = item.locator('img');
      // Polled from here: waitForFunction re-evaluates its predicate with eval inside the page,
      // which the page's CSP (default-src 'self') forbids once the first check comes back false.
      await expect
        .poll(
          () =>
            page.evaluate<boolean>(
              `[...document.querySelectorAll('#assets li img')].some((img) => img.complete && img.naturalWidth > 0)`,
            ),
          { timeout: 30_000, interval: 100 },
        )
        .toBe(true);
      expect(await poster.getAttribute('src')).toMatch(/\/stream\/.+\/poster\.webp$/);
      expect(pageErrors).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
