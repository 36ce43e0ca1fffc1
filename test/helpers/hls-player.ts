import type { Browser, Page } from 'playwright-core';

// A player page for the playback tests: hls.js (served at /hls.min.js next to the page) on a muted
// <video>, driven by the test through `page.evaluate`.

// Waits in the browser: far above what a warm run needs (well under 5 s each), so a loaded
// two-core machine does not fail the test.
const WAIT_MS = 60_000;

// The page: hls.js on a muted <video>, every event the test asserts on recorded in `state`.
// Plain browser JavaScript (the test's tsconfig has no DOM types); the test drives it with
// `page.evaluate('<expression>')`.
export const PLAYER_PAGE = `<!doctype html>
<meta charset="utf-8">
<title>hls.js playback</title>
<link rel="icon" href="data:,">
<video id="video" muted playsinline width="854" height="480"></video>
<script src="/hls.min.js"></script>
<script>
  const video = document.getElementById('video');
  const state = {
    errors: [],           // every hls.js ERROR event: { type, details, fatal }
    mediaErrors: [],      // the <video> element's own 'error' events
    levelSwitched: [],    // every LEVEL_SWITCHED: { level, at: currentTime }
    firstBufferStart: {}, // per source buffer (audio, video): start of its first appended range
    firstPlaying: null,   // at the first 'playing': { currentTime, bufferedStart }
    fragsLoaded: [],      // every FRAG_LOADED: { type, level, url }
    ended: false,
  };
  let hls = null;
  video.addEventListener('ended', () => { state.ended = true; });
  video.addEventListener('error', () => {
    state.mediaErrors.push({ code: video.error && video.error.code, message: video.error && video.error.message });
  });
  video.addEventListener('playing', () => {
    if (state.firstPlaying === null) {
      state.firstPlaying = {
        currentTime: video.currentTime,
        bufferedStart: video.buffered.length > 0 ? video.buffered.start(0) : null,
      };
    }
  });

  /** Loads the master, resolves with the levels once parsed and play() has been called. */
  function start(src, options) {
    if (!Hls.isSupported()) return Promise.reject(new Error('hls.js: MediaSource is not supported'));
    hls = new Hls({ startLevel: options.startLevel });
    hls.on(Hls.Events.ERROR, (_, data) => {
      state.errors.push({ type: data.type, details: data.details, fatal: data.fatal });
    });
    hls.on(Hls.Events.FRAG_LOADED, (_, data) => {
      state.fragsLoaded.push({ type: data.frag.type, level: data.frag.level, url: data.frag.url });
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => {
      state.levelSwitched.push({ level: data.level, at: video.currentTime });
    });
    hls.on(Hls.Events.BUFFER_APPENDED, (_, data) => {
      for (const [type, ranges] of Object.entries(data.timeRanges)) {
        if (!(type in state.firstBufferStart) && ranges && ranges.length > 0) {
          state.firstBufferStart[type] = ranges.start(0);
        }
      }
    });
    return new Promise((resolve, reject) => {
      hls.once(Hls.Events.MANIFEST_PARSED, (_, data) => {
        // Attaching the MediaSource ran the media element's load algorithm, which resets
        // playbackRate to defaultPlaybackRate: set both, now.
        video.defaultPlaybackRate = options.rate;
        video.playbackRate = options.rate;
        video.play().then(
          () => resolve(data.levels.map((l) => ({ width: l.width, height: l.height, bitrate: l.bitrate, codecs: [l.videoCodec, l.audioCodec] }))),
          reject,
        );
      });
      hls.loadSource(src);
      hls.attachMedia(video);
    });
  }

  function setLevel(level) { hls.currentLevel = level; }
  function setRate(rate) { video.playbackRate = rate; }

  function ranges(r) {
    const out = [];
    for (let i = 0; i < r.length; i++) out.push([r.start(i), r.end(i)]);
    return out;
  }

  function snapshot() {
    return {
      currentTime: video.currentTime,
      duration: video.duration,
      paused: video.paused,
      ended: state.ended,
      readyState: video.readyState,
      videoHeight: video.videoHeight,
      buffered: ranges(video.buffered),
      levels: hls ? hls.levels.length : 0,
      currentLevel: hls ? hls.currentLevel : null,
      state,
    };
  }
</script>
`;

export interface Snapshot {
  currentTime: number;
  duration: number;
  paused: boolean;
  ended: boolean;
  readyState: number;
  videoHeight: number;
  buffered: [number, number][];
  levels: number;
  currentLevel: number | null;
  state: {
    errors: { type: string; details: string; fatal: boolean }[];
    mediaErrors: { code: number | null; message: string | null }[];
    levelSwitched: { level: number; at: number }[];
    firstBufferStart: Partial<Record<'audio' | 'video' | 'audiovideo', number>>;
    firstPlaying: { currentTime: number; bufferedStart: number | null } | null;
    fragsLoaded: { type: string; level: number; url: string }[];
    ended: boolean;
  };
}

export interface PageLevel {
  width: number;
  height: number;
  bitrate: number;
  codecs: [string | undefined, string | undefined];
}

/**
 * A fresh page at `pageUrl` (a server that serves PLAYER_PAGE and /hls.min.js), with uncaught page
 * errors and console errors collected.
 */
export async function openPlayer(
  browser: Browser,
  pageUrl: string,
): Promise<{ page: Page; pageErrors: string[]; close: () => Promise<void> }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(`console: ${msg.text()}`);
  });
  await page.goto(pageUrl);
  return { page, pageErrors, close: () => context.close() };
}

export const snapshot = (page: Page) => page.evaluate<Snapshot>('snapshot()');

/** Waits until `expression` is true in the page; on a timeout the error shows the player's state. */
export async function waitInPage(page: Page, expression: string, what: string): Promise<void> {
  try {
    await page.waitForFunction(expression, undefined, { timeout: WAIT_MS, polling: 50 });
  } catch (err) {
    const state = await snapshot(page).catch(() => 'page gone');
    throw new Error(`waiting for ${what} (${expression}): ${String(err)}\nplayer: ${JSON.stringify(state)}`);
  }
}

/** Waits until playback has advanced `seconds` past where it is now. */
export async function waitForProgress(page: Page, seconds: number, what: string): Promise<void> {
  const { currentTime } = await snapshot(page);
  await waitInPage(page, `video.currentTime >= ${currentTime + seconds} || state.ended`, what);
}
