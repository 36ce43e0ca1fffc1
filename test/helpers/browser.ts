import { constants, createReadStream } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { delimiter, extname, join, resolve, sep } from 'node:path';
import { type Browser, chromium } from 'playwright-core';

// The browser harness: Debian's chromium driven by playwright-core, and a tiny static file server
// on 127.0.0.1 for the pages and media it loads. playwright-core ships no browser and must never
// download one (`npx playwright install` fails on these machines); `sh scripts/setup.sh --browser`
// installs Debian's package as root.

/** hls.js's browser build, served to test pages as `/hls.min.js` (see {@link serveFiles}). */
export const HLS_JS_FILE = createRequire(import.meta.url).resolve('hls.js/dist/hls.min.js');

/** Where Debian's package puts its launcher; tried after every `chromium` on PATH. */
const DEBIAN_CHROMIUM = '/usr/bin/chromium';

/**
 * Flags for a headless Chromium as root on a machine without outside network access.
 * Playwright adds its own (`--headless`, a fresh `--user-data-dir`, ...).
 */
export const CHROMIUM_ARGS: readonly string[] = [
  // Root cannot use Chromium's sandbox (it refuses to start without this flag).
  '--no-sandbox',
  // Media may play without a click; tests also mute it, which every autoplay policy allows.
  '--autoplay-policy=no-user-gesture-required',
  '--mute-audio',
  '--disable-gpu',
  // No calls home: the closed network refuses them, many at a time, and they slow the start.
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
];

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * The Chromium executable: the first `chromium` on PATH (what `which chromium` prints), else
 * `/usr/bin/chromium`. Throws an Error that says how to install it when there is none.
 */
export async function findChromium(): Promise<string> {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((dir) => dir !== '');
  for (const candidate of [...dirs.map((dir) => join(dir, 'chromium')), DEBIAN_CHROMIUM]) {
    if (await isExecutable(candidate)) return candidate;
  }
  throw new Error(
    'Chromium is not installed: the browser tests need Debian\'s "chromium" package ' +
      '(as root: `sh scripts/setup.sh --browser`, or `sudo apt-get install -y chromium`). ' +
      'Do not run `npx playwright install`: playwright-core drives the system Chromium.',
  );
}

export interface LaunchChromiumOptions {
  /** Extra command-line flags after {@link CHROMIUM_ARGS}. */
  args?: readonly string[];
  /**
   * How long to wait for the browser to start, in milliseconds.
   * @default 30_000
   */
  timeoutMs?: number;
}

/** Starts a headless Debian Chromium under playwright-core. Close it in `afterAll`. */
export async function launchChromium(options: LaunchChromiumOptions = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: await findChromium(),
    headless: true,
    args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
    timeout: options.timeoutMs ?? 30_000,
  });
}

// What browsers and hls.js expect; an HLS player checks the playlist's type on some platforms, and
// MSE needs nothing but the bytes, yet wrong types hide real server mistakes.
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.mpd': 'application/dash+xml',
  '.mp4': 'video/mp4',
  '.m4s': 'video/mp4',
  '.vtt': 'text/vtt; charset=utf-8',
  '.jpg': 'image/jpeg',
  '.webp': 'image/webp',
};

/** One request the server answered, for a test's diagnostics and assertions. */
export interface ServedRequest {
  /** The URL path, without the query. */
  path: string;
  status: number;
}

export interface FileServer {
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  origin: string;
  /** Every request answered so far, in order. */
  requests: ServedRequest[];
  close(): Promise<void>;
}

export interface ServeFilesOptions {
  /** Directory whose files are served at `/`. */
  root: string;
  /**
   * Extra files by URL path, e.g. `{ '/hls.min.js': HLS_JS_FILE }`.
   * @default {}
   */
  files?: Readonly<Record<string, string>>;
}

/**
 * A static file server on 127.0.0.1 with a free port: GET and HEAD only, content types by
 * extension, no directory listings, nothing outside `root` (404). Pages loaded from it fetch their
 * media from the same origin, so no CORS headers are needed.
 */
export async function serveFiles(options: ServeFilesOptions): Promise<FileServer> {
  const root = resolve(options.root);
  const extra = options.files ?? {};
  const requests: ServedRequest[] = [];

  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    const answer = (status: number, text?: string) => {
      requests.push({ path, status });
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(text);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return answer(405, 'GET or HEAD only\n');
    const file = extra[path] ?? resolve(root, `.${path}`);
    if (extra[path] === undefined && !file.startsWith(root + sep)) return answer(404, 'not found\n');
    stat(file).then(
      (info) => {
        if (!info.isFile()) return answer(404, 'not found\n');
        requests.push({ path, status: 200 });
        res.writeHead(200, {
          'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
          'content-length': info.size,
          'cache-control': 'no-store',
        });
        if (req.method === 'HEAD') return res.end();
        createReadStream(file)
          .on('error', () => res.destroy())
          .pipe(res);
      },
      () => answer(404, 'not found\n'),
    );
  });

  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => done());
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((done, fail) => {
        // Keep-alive connections from the browser would hold `close` open until they time out.
        server.closeAllConnections();
        server.close((err) => (err ? fail(err) : done()));
      }),
  };
}
