/**
 * Image delivery and analysis, each against a baseline on the same work in the same run:
 *
 *   npm run bench:images      (sh scripts/setup.sh && tsx bench/images.ts)
 *
 * (a) uncached `/img` throughput: a 12 MP photo-like JPEG -> 400 px WebP at concurrency 2, through
 *     the real HTTP route (every request a different asset, so each one transforms), against raw
 *     sharp doing the same resize in this process from the same file;
 * (b) cached hits: requests per second for one cached `/img` URL, against nginx (Debian package,
 *     one worker process, like our one Node.js process) serving the same bytes from disk, both
 *     measured by the same load generator in its own process (bench/lib/load-client.ts);
 * (c) placeholders and hash: ThumbHash + BlurHash + LQIP + pHash + dominant colour of one image
 *     (the placeholders step's analysis, its own decode included) against one plain sharp decode
 *     of the same image.
 * Prints the figures and ratios and replaces the images section of bench/RESULTS.md.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import sharp from 'sharp';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createContainer } from '../src/container.js';
import { probeImage } from '../src/media/image.js';
import { analyseImage } from '../src/media/image-analysis.js';
import { startWorkers } from '../src/workers.js';

const here = dirname(fileURLToPath(import.meta.url));
const RESULTS = join(here, 'RESULTS.md');
const START = '<!-- bench:images:start -->';
const END = '<!-- bench:images:end -->';
const ADMIN_KEY = randomBytes(24).toString('hex');
const WIDTH = 4000;
const HEIGHT = 3000;
const UNCACHED_REQUESTS = 48;
const CONCURRENCY = 2;
const HIT_SECONDS = 5;
const HIT_CONCURRENCY = 16;
const ANALYSIS_ROUNDS = 20;

sharp.cache(false);

/** A photo-like 12 MP JPEG: smooth colour fields (an upscaled random image) plus fine grain. */
async function photoLikeJpeg(seed: number): Promise<Buffer> {
  const small = randomBytes(16 * 12 * 3);
  small[0] = seed % 256;
  const smooth = await sharp(small, { raw: { width: 16, height: 12, channels: 3 } })
    .resize(WIDTH, HEIGHT, { kernel: 'cubic' })
    .raw()
    .toBuffer();
  const grain = randomBytes(smooth.length);
  for (let i = 0; i < smooth.length; i++)
    smooth[i] = Math.min(255, (smooth[i] ?? 0) + ((grain[i] ?? 0) >> 4));
  return sharp(smooth, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
    .jpeg({ quality: 88 })
    .toBuffer();
}

async function lanes(count: number, concurrency: number, work: (index: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let index = next++; index < count; index = next++) await work(index);
    }),
  );
}

async function timed(run: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

interface LoadResult {
  requests: number;
  seconds: number;
  errors: number;
  statuses: Record<string, number>;
}

function load(url: string, headers: string[] = []): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(here, 'lib/load-client.ts'),
        url,
        String(HIT_CONCURRENCY),
        String(HIT_SECONDS),
        ...headers,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`load client exited with ${code}`));
      else resolve(JSON.parse(out) as LoadResult);
    });
  });
}

/** nginx from Debian serving `dir` on a free port, one worker; undefined when nginx is missing. */
async function startNginx(dir: string): Promise<{ port: number; stop: () => void } | undefined> {
  const binary = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((path) => spawnSync(path, ['-v']).status === 0);
  if (!binary) return undefined;
  const port = 20000 + Math.floor(Math.random() * 20000);
  const conf = join(dir, 'nginx.conf');
  await writeFile(
    conf,
    `worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  client_body_temp_path ${dir};
  proxy_temp_path ${dir};
  fastcgi_temp_path ${dir};
  uwsgi_temp_path ${dir};
  scgi_temp_path ${dir};
  types { image/webp webp; }
  server {
    listen 127.0.0.1:${port};
    root ${join(dir, 'www')};
    add_header Cache-Control "public, max-age=31536000, immutable";
  }
}
`,
  );
  const child = spawn(binary, ['-c', conf, '-p', dir], { stdio: 'ignore' });
  for (let i = 0; i < 50; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/hit.webp`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { port, stop: () => child.kill('SIGTERM') };
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`nginx did not start (see ${join(dir, 'error.log')})`);
}

const work = await mkdtemp(join(tmpdir(), 'assetpipe-bench-img-'));
const lines: string[] = [];
const say = (line = '') => {
  lines.push(line);
  process.stdout.write(`${line}\n`);
};

try {
  process.stdout.write('generating a 12 MP JPEG and starting assetpipe...\n');
  const photo = await photoLikeJpeg(1);
  const photoPath = join(work, 'photo.jpg');
  await writeFile(photoPath, photo);

  const config = loadConfig(
    {
      ASSETPIPE_LOG_LEVEL: 'silent',
      ASSETPIPE_ADMIN_KEY: ADMIN_KEY,
      ASSETPIPE_RATE_LIMIT: '0',
      ASSETPIPE_IMG_SIGNATURE: 'off',
      ASSETPIPE_IMAGE_PRESETS: 'thumb=320:webp',
      ASSETPIPE_WORKERS: '2',
    },
    { data: join(work, 'data') },
  );
  const container = await createContainer(config, pino({ level: 'silent' }));
  const app = await buildApp(container, { isShuttingDown: () => false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const auth = { authorization: `Bearer ${ADMIN_KEY}` };
  const workers = startWorkers(container);

  try {
    const created = await fetch(`${base}/v1/projects`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'bench', name: 'bench', duplicatePolicy: 'keep' }),
    });
    if (!created.ok) throw new Error(`creating the project: ${created.status} ${await created.text()}`);
    const ids: string[] = [];
    await lanes(UNCACHED_REQUESTS, 2, async () => {
      const form = new FormData();
      form.set('projectId', 'bench');
      form.set('file', new Blob([photo], { type: 'image/jpeg' }), 'photo.jpg');
      const res = await fetch(`${base}/v1/assets`, { method: 'POST', headers: auth, body: form });
      if (res.status !== 201) throw new Error(`upload: ${res.status} ${await res.text()}`);
      ids.push(((await res.json()) as { id: string }).id);
    });
    // Let the pipeline finish first, so that the measurements below have the machine to themselves.
    for (const id of ids) {
      for (;;) {
        const asset = (await (await fetch(`${base}/v1/assets/${id}`, { headers: auth })).json()) as {
          status: string;
        };
        if (asset.status === 'ready') break;
        if (asset.status === 'failed') throw new Error(`asset ${id} failed`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    await workers.stop();

    // (a) uncached transforms
    const query = 'w=400&f=webp';
    // Output sizes, printed: the two sides must have done the same work (same size, same encoder).
    let sharpBytes = 0;
    let imgBytes = 0;
    const baseline = await timed(() =>
      lanes(UNCACHED_REQUESTS, CONCURRENCY, async () => {
        const out = await sharp(photoPath).resize(400, 400, { fit: 'inside' }).webp().toBuffer();
        sharpBytes += out.length;
      }),
    );
    const viaImg = await timed(() =>
      lanes(UNCACHED_REQUESTS, CONCURRENCY, async (index) => {
        const res = await fetch(`${base}/img/${ids[index]}?${query}`);
        if (res.status !== 200) throw new Error(`/img: ${res.status} ${await res.text()}`);
        imgBytes += (await res.arrayBuffer()).byteLength;
      }),
    );
    const sharpRate = UNCACHED_REQUESTS / baseline;
    const imgRate = UNCACHED_REQUESTS / viaImg;

    // (b) cached hits
    const hitUrl = `${base}/img/${ids[0]}?${query}`;
    const cachedBytes = Buffer.from(await (await fetch(hitUrl)).arrayBuffer());
    const www = join(work, 'www');
    await mkdir(www);
    await writeFile(join(www, 'hit.webp'), cachedBytes);
    const nginx = await startNginx(work);
    const ours = await load(hitUrl);
    let theirs: LoadResult | undefined;
    if (nginx) {
      try {
        theirs = await load(`http://127.0.0.1:${nginx.port}/hit.webp`);
      } finally {
        nginx.stop();
      }
    }

    // (c) analysis vs one plain decode
    const probe = await probeImage(photoPath, { maxInputPixels: config.maxInputPixels });
    const limits = { maxInputPixels: config.maxInputPixels };
    await analyseImage({ path: photoPath, probe, limits, blurhashComponents: config.blurhashComponents }); // warm-up
    const decodeSec = await timed(async () => {
      for (let i = 0; i < ANALYSIS_ROUNDS; i++) await sharp(photoPath).raw().toBuffer();
    });
    const analysisSec = await timed(async () => {
      for (let i = 0; i < ANALYSIS_ROUNDS; i++) {
        await analyseImage({ path: photoPath, probe, limits, blurhashComponents: config.blurhashComponents });
      }
    });

    const cpu = cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU';
    say(START);
    say('## Images: `/img` and the placeholders step (`npm run bench:images`)');
    say('');
    say(
      `${new Date().toISOString()} · Node.js ${process.version} · ${cpu} · ${availableParallelism()} cores`,
    );
    say('');
    say(`Source: one ${WIDTH}x${HEIGHT} (12 MP) photo-like JPEG, ${(photo.length / 1e6).toFixed(1)} MB.`);
    say('');
    say('| measurement | figure |');
    say('| --- | ---: |');
    say(
      `| (a) raw sharp in process, 12 MP JPEG -> 400 px WebP, concurrency ${CONCURRENCY} | ${sharpRate.toFixed(1)} images/s |`,
    );
    say(
      `| (a) \`GET /img/{id}?${query}\` uncached over HTTP, concurrency ${CONCURRENCY} | ${imgRate.toFixed(1)} images/s |`,
    );
    say(
      `| (a) mean output size: raw sharp / \`/img\` | ${(sharpBytes / UNCACHED_REQUESTS / 1024).toFixed(1)} KiB / ${(imgBytes / UNCACHED_REQUESTS / 1024).toFixed(1)} KiB |`,
    );
    say(
      `| (b) \`/img\` cached hit, ${HIT_CONCURRENCY} keep-alive connections, ${HIT_SECONDS} s | ${(ours.requests / ours.seconds).toFixed(0)} req/s (${ours.errors} errors) |`,
    );
    if (theirs) {
      say(
        `| (b) nginx (1 worker, sendfile) serving the same ${cachedBytes.length} bytes from disk | ${(theirs.requests / theirs.seconds).toFixed(0)} req/s (${theirs.errors} errors) |`,
      );
    }
    say(
      `| (c) one plain sharp decode of the 12 MP JPEG | ${((decodeSec / ANALYSIS_ROUNDS) * 1000).toFixed(1)} ms |`,
    );
    say(
      `| (c) placeholders analysis (ThumbHash + BlurHash + LQIP + pHash + dominant colour, own decode) | ${((analysisSec / ANALYSIS_ROUNDS) * 1000).toFixed(1)} ms |`,
    );
    say('');
    say(`- (a) uncached /img / raw sharp: **${(imgRate / sharpRate).toFixed(2)}** (aim >= 0.85)`);
    if (theirs) {
      say(
        `- (b) cached /img / nginx: **${(ours.requests / ours.seconds / (theirs.requests / theirs.seconds)).toFixed(2)}** (aim >= 0.5)`,
      );
    } else {
      say('- (b) nginx is not installed (`apt-get install nginx-light`): no comparison this run');
    }
    say(
      `- (c) analysis / one plain decode: **${(analysisSec / decodeSec).toFixed(2)}** (below 1: the analysis decodes a JPEG at reduced size)`,
    );
    say(END);
  } finally {
    await workers.stop().catch(() => undefined);
    await app.close();
    await container.close();
  }

  const previous = await readFile(RESULTS, 'utf8').catch(() => '# Benchmark results\n');
  const section = lines.slice(lines.indexOf(START)).join('\n');
  const updated = previous.includes(START)
    ? previous.replace(new RegExp(`${START}[\\s\\S]*?${END}`), section)
    : `${previous.trimEnd()}\n\n${section}\n`;
  await writeFile(RESULTS, updated);
} finally {
  await rm(work, { recursive: true, force: true });
}
