/**
 * Scale-out on one machine: images processed per second by one `assetpipe worker` process and by
 * two, on the same work in the same run, and their ratio.
 *
 *   npm run bench:scale      (sh scripts/setup.sh && tsx bench/scale.ts)
 *
 * The deployment is the scaled-out one: PostgreSQL catalog + BullMQ queue on PostgreSQL, a local
 * blob directory (`ASSETPIPE_STORAGE=file://…`) shared by every process, one `serve --no-workers`
 * API process and `worker --workers 1` processes. Each side gets a fresh schema and a fresh blob
 * directory and its own API process:
 *   1. the API process starts, and the same IMAGES noise JPEGs are uploaded through it over HTTP
 *      (`POST /v1/assets`), with no worker running: every asset waits, queued, in `processing`;
 *   2. the worker process(es) start, and the clock runs from their spawn until no asset is left in
 *      `processing` (polling `GET /v1/assets?status=processing&limit=1`), so upload time is out;
 *   3. every asset must then be `ready`; the workers and the API process are stopped, the schemas
 *      (`<schema>`, `<schema>_queue`) dropped.
 * Prints the throughputs, the ratio (2 processes / 1 process; ideal 2.00 on >= 2 free cores), the
 * CPU the workers and the whole machine used, and replaces the scale section of bench/RESULTS.md.
 *
 * Needs dist/ (built by `npm run bench`/`npm run bench:scale`) and PostgreSQL, at
 * BENCH_DATABASE_URL, else ASSETPIPE_TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test;
 * exits 1 with a message when it is not reachable. BENCH_SCALE_IMAGES sets the image count.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import sharp from 'sharp';
import { requireLinux } from './lib/measure.js';

const here = dirname(fileURLToPath(import.meta.url));
const MAIN = join(here, '..', 'dist', 'main.js');
const RESULTS = join(here, 'RESULTS.md');
const START = '<!-- bench:scale:start -->';
const END = '<!-- bench:scale:end -->';
const DATABASE_URL =
  process.env.BENCH_DATABASE_URL ??
  process.env.ASSETPIPE_TEST_DATABASE_URL ??
  'postgres://postgres@127.0.0.1:5432/test';
// About 1 s of CPU per image with the default presets (the 1280 px AVIF preview dominates), so one
// worker process takes ~35-40 s on this kind of machine.
const IMAGES = Number(process.env.BENCH_SCALE_IMAGES ?? 36);
const WIDTH = 1600;
const HEIGHT = 1200;
const PROCESS_COUNTS = [1, 2] as const;
const UPLOAD_CONCURRENCY = 2;
const POLL_MS = 200;
const SIDE_TIMEOUT_MS = 10 * 60_000;
const ADMIN_KEY = randomBytes(24).toString('hex');
const SIGNING_SECRET = randomBytes(32).toString('hex');
const AUTH = { authorization: `Bearer ${ADMIN_KEY}` };

requireLinux('bench/scale.ts');
if (!Number.isInteger(IMAGES) || IMAGES < 2) {
  process.stderr.write(`bench/scale.ts: BENCH_SCALE_IMAGES must be a whole number >= 2, got ${IMAGES}\n`);
  process.exit(1);
}
if (!existsSync(MAIN)) {
  process.stderr.write(
    `bench/scale.ts runs ${MAIN}, which is missing: build first (npm run build), or run npm run bench:scale\n`,
  );
  process.exit(1);
}

// ---------------------------------------------------------------------------------------------
// Children and clean-up: every child is killed and every schema dropped on the way out, error or not.

interface Child {
  name: string;
  proc: ChildProcess;
  /** The last bytes of stdout + stderr, for error messages. */
  tail: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

const children = new Set<Child>();
const schemas = new Set<string>();
let work: string | undefined;

function startChild(name: string, args: string[], env: NodeJS.ProcessEnv): Child {
  const proc = spawn(process.execPath, [MAIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let errOutput = '';
  const keep = (s: string) => (s.length > 16_000 ? s.slice(-8_000) : s);
  proc.stdout?.setEncoding('utf8');
  proc.stderr?.setEncoding('utf8');
  proc.stdout?.on('data', (chunk: string) => {
    output = keep(output + chunk);
  });
  proc.stderr?.on('data', (chunk: string) => {
    output = keep(output + chunk);
    errOutput = keep(errOutput + chunk);
  });
  const exited = new Promise<number | null>((resolve) => {
    proc.once('exit', (code) => resolve(code));
    proc.once('error', () => resolve(-1));
  });
  const child: Child = {
    name,
    proc,
    tail: () => output.slice(-4_000),
    stderr: () => errOutput,
    exited,
  };
  children.add(child);
  void exited.then(() => children.delete(child));
  return child;
}

function running(child: Child): boolean {
  return child.proc.exitCode === null && child.proc.signalCode === null;
}

/** SIGTERM (a clean shutdown), then SIGKILL after 15 s. */
async function stopChild(child: Child): Promise<void> {
  if (!running(child)) return;
  child.proc.kill('SIGTERM');
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), 15_000);
  await child.exited;
  clearTimeout(timer);
}

async function dropSchemas(names: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 5_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    for (const name of names) {
      await client.query(`drop schema if exists "${name}" cascade`);
      await client.query(`drop schema if exists "${name}_queue" cascade`);
      schemas.delete(name);
    }
  } finally {
    await client.end().catch(() => {});
  }
}

async function cleanUp(): Promise<void> {
  await Promise.all([...children].map(stopChild));
  if (schemas.size > 0) {
    await dropSchemas([...schemas]).catch((err: unknown) => {
      process.stderr.write(
        `bench/scale.ts: could not drop schema(s) ${[...schemas].join(', ')} (and their _queue): ${String(err)}\n`,
      );
    });
  }
  if (work) await rm(work, { recursive: true, force: true });
}

process.once('exit', () => {
  for (const child of children) child.proc.kill('SIGKILL');
  if (work) rmSync(work, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench/scale.ts: ${signal}, stopping the children and dropping the schemas\n`);
    void cleanUp().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// Helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function probePostgres(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message || err.name : String(err);
  } finally {
    await client.end().catch(() => {});
  }
}

function redact(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

/** Coloured noise (3/4 tint, 1/4 random): every image differs and none is cheap to encode. */
async function noiseJpeg(index: number): Promise<Buffer> {
  const raw = randomBytes(WIDTH * HEIGHT * 3);
  const hue = (index * 137.508) % 360;
  const tint = [0, 120, 240].map((offset) =>
    Math.round(100 + 100 * Math.cos(((hue - offset) * Math.PI) / 180)),
  );
  for (let i = 0; i < raw.length; i++) raw[i] = Math.min(255, ((tint[i % 3]! * 3) >> 2) + (raw[i]! >> 2));
  return sharp(raw, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
    .jpeg({ quality: 85 })
    .toBuffer();
}

/** The machine's busy and total CPU ticks so far (all cores, /proc/stat). */
function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [, ...fields] = line.trim().split(/\s+/);
  const ticks = fields.slice(0, 8).map(Number); // user nice system idle iowait irq softirq steal
  const total = ticks.reduce((a, b) => a + b, 0);
  return { busy: total - (ticks[3] ?? 0) - (ticks[4] ?? 0), total };
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** Command name and CPU ticks (user + system, all threads) of a live process (/proc/<pid>/stat). */
function processStat(pid: number | string | undefined): { comm: string; ticks: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { comm, ticks: Number(fields[14 - 3]) + Number(fields[15 - 3]) };
  } catch {
    return undefined; // gone
  }
}

function processTicks(pid: number | undefined): number {
  return processStat(pid)?.ticks ?? 0;
}

/** CPU ticks so far of every PostgreSQL server process on this machine, by pid. */
function postgresTicks(): Map<string, number> {
  const out = new Map<string, number>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = processStat(pid);
    if (stat?.comm === 'postgres') out.set(pid, stat.ticks);
  }
  return out;
}

/** CPU seconds PostgreSQL spent between two snapshots (backends that ended in between are missed). */
function postgresCpuSec(before: Map<string, number>, after: Map<string, number>): number {
  let ticks = 0;
  for (const [pid, t] of after) ticks += t - (before.get(pid) ?? 0);
  return ticks / CLK_TCK;
}

interface AssetPage {
  items: { id: string; status: string; error: string | null }[];
  nextCursor: string | null;
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { headers: AUTH, signal: AbortSignal.timeout(30_000) });
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function countAssets(base: string, status: string): Promise<number> {
  let count = 0;
  let cursor: string | null = null;
  do {
    const query: string = `status=${status}&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page: AssetPage = await getJson<AssetPage>(`${base}/v1/assets?${query}`);
    count += page.items.length;
    cursor = page.nextCursor;
  } while (cursor);
  return count;
}

function checkDeadline(deadline: number, side: string, what: string): void {
  if (Date.now() > deadline) {
    throw new Error(
      `${side}: over the ${SIDE_TIMEOUT_MS / 60_000}-minute limit while ${what}; is the machine busy with something else?`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// One side: a fresh schema, blob directory and API process; upload everything; then time the workers.

interface Side {
  processes: number;
  seconds: number;
  imagesPerSec: number;
  /** Spawn to the "worker running" line, per process. */
  startupSec: number[];
  /** CPU seconds of the worker processes, all of them together, from their spawn to the last `ready`. */
  workerCpuSec: number;
  /** Share of the work (CPU) per worker process. */
  cpuShares: number[];
  /** The whole machine's busy cores, on average, while the workers ran. */
  machineBusyCores: number;
  /** Cores busy, on average, in the API process and in PostgreSQL (all its clients), while the workers ran. */
  apiBusyCores: number;
  postgresBusyCores: number;
  /** This bench process (polling the API). */
  benchBusyCores: number;
  loadBefore: number;
}

async function runSide(images: readonly Buffer[], processes: number): Promise<Side> {
  const label = `${processes} worker process${processes > 1 ? 'es' : ''}`;
  const deadline = Date.now() + SIDE_TIMEOUT_MS;
  const schema = `assetpipe_bench_scale_${process.pid}_${randomBytes(4).toString('hex')}`;
  const dir = join(work!, `side-${processes}`);
  const blobs = join(dir, 'blobs');
  await mkdir(blobs, { recursive: true });
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('ASSETPIPE_') && name !== 'NODE_OPTIONS') env[name] = value;
  }
  Object.assign(env, {
    ASSETPIPE_DATABASE_URL: DATABASE_URL,
    ASSETPIPE_DATABASE_SCHEMA: schema,
    ASSETPIPE_DATABASE_POOL: '4',
    ASSETPIPE_STORAGE: `file://${blobs}`,
    ASSETPIPE_SIGNING_SECRET: SIGNING_SECRET,
    ASSETPIPE_ADMIN_KEY: ADMIN_KEY,
    ASSETPIPE_RATE_LIMIT: '0',
    ASSETPIPE_LOG_LEVEL: 'warn',
  });

  schemas.add(schema);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const api = startChild(
    'api',
    ['serve', '--no-workers', '--port', String(port), '--host', '127.0.0.1', '--data', join(dir, 'api')],
    env,
  );
  for (;;) {
    if (!running(api)) throw new Error(`${label}: the API process exited before it answered\n${api.tail()}`);
    const ok = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2_000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    checkDeadline(Math.min(deadline, Date.now() + 60_000), label, 'waiting for the API process');
    await sleep(100);
  }

  process.stdout.write(`${label}: uploading ${images.length} images (no worker running yet)...\n`);
  let next = 0;
  await Promise.all(
    Array.from({ length: UPLOAD_CONCURRENCY }, async () => {
      for (let index = next++; index < images.length; index = next++) {
        checkDeadline(deadline, label, 'uploading');
        const form = new FormData();
        form.set('file', new Blob([images[index]!], { type: 'image/jpeg' }), `noise-${index}.jpg`);
        const res = await fetch(`${base}/v1/assets`, {
          method: 'POST',
          headers: AUTH,
          body: form,
          signal: AbortSignal.timeout(60_000),
        });
        if (res.status !== 201)
          throw new Error(`${label}: upload ${index}: ${res.status} ${await res.text()}`);
        await res.arrayBuffer();
      }
    }),
  );
  const waiting = await countAssets(base, 'processing');
  if (waiting !== images.length) {
    throw new Error(
      `${label}: ${waiting} of ${images.length} assets in processing before any worker started`,
    );
  }

  const loadBefore = loadavg()[0]!;
  process.stdout.write(
    `${label}: starting the workers and timing (1-minute load average ${loadBefore.toFixed(2)})...\n`,
  );
  const machine0 = machineTicks();
  const api0 = processTicks(api.proc.pid);
  const postgres0 = postgresTicks();
  const bench0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const workers = Array.from({ length: processes }, (_, i) =>
    startChild(`worker-${i}`, ['worker', '--data', join(dir, `worker-${i}`), '--workers', '1'], env),
  );
  const startupSec: (number | undefined)[] = workers.map(() => undefined);
  let seconds: number;
  for (;;) {
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    workers.forEach((worker, i) => {
      if (startupSec[i] === undefined && worker.stderr().includes('worker running')) startupSec[i] = elapsed;
    });
    for (const worker of workers) {
      if (!running(worker)) throw new Error(`${label}: ${worker.name} exited early\n${worker.tail()}`);
    }
    const page = await getJson<AssetPage>(`${base}/v1/assets?status=processing&limit=1`);
    if (page.items.length === 0) {
      seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      break;
    }
    checkDeadline(deadline, label, `processing (${elapsed.toFixed(0)} s since the workers started)`);
    await sleep(POLL_MS);
  }
  const machine1 = machineTicks();
  const api1 = processTicks(api.proc.pid);
  const postgres1 = postgresTicks();
  const bench1 = process.cpuUsage(bench0);
  const ticks = workers.map((w) => processTicks(w.proc.pid));
  await Promise.all(workers.map(stopChild));

  const ready = await countAssets(base, 'ready');
  if (ready !== images.length) {
    const failed = await getJson<AssetPage>(`${base}/v1/assets?status=failed&limit=1`);
    const first = failed.items[0];
    throw new Error(
      `${label}: ${ready} of ${images.length} assets ready${first ? `; failed, e.g. ${first.id}: ${first.error}` : ''}`,
    );
  }
  await stopChild(api);
  await dropSchemas([schema]);
  await rm(dir, { recursive: true, force: true });

  const totalTicks = ticks.reduce((a, b) => a + b, 0);
  const side: Side = {
    processes,
    seconds,
    imagesPerSec: images.length / seconds,
    startupSec: startupSec.map((s) => s ?? Number.NaN),
    workerCpuSec: totalTicks / CLK_TCK,
    cpuShares: ticks.map((t) => (totalTicks > 0 ? t / totalTicks : Number.NaN)),
    machineBusyCores:
      ((machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total)) *
      availableParallelism(),
    apiBusyCores: (api1 - api0) / CLK_TCK / seconds,
    postgresBusyCores: postgresCpuSec(postgres0, postgres1) / seconds,
    benchBusyCores: (bench1.user + bench1.system) / 1e6 / seconds,
    loadBefore,
  };
  process.stdout.write(
    `${label}: ${images.length} images in ${seconds.toFixed(1)} s = ${side.imagesPerSec.toFixed(2)} images/s\n`,
  );
  return side;
}

// ---------------------------------------------------------------------------------------------

const unreachable = await probePostgres();
if (unreachable !== undefined) {
  process.stderr.write(
    `bench/scale.ts needs PostgreSQL (the scaled-out catalog and job queue) and cannot reach ${redact(DATABASE_URL)}: ${unreachable}\n` +
      'Start PostgreSQL there, or point BENCH_DATABASE_URL at one (the bench creates and drops its own schemas).\n',
  );
  process.exit(1);
}

const loadAtStart = loadavg()[0]!;
const lines: string[] = [];
const say = (line = '') => {
  lines.push(line);
  process.stdout.write(`${line}\n`);
};

try {
  work = await mkdtemp(join(tmpdir(), 'assetpipe-bench-scale-'));
  process.stdout.write(`generating ${IMAGES} ${WIDTH}x${HEIGHT} noise JPEGs...\n`);
  const images: Buffer[] = [];
  for (let i = 0; i < IMAGES; i++) images.push(await noiseJpeg(i));
  const megabytes = images.reduce((a, b) => a + b.length, 0) / 1e6;

  const sides: Side[] = [];
  for (const processes of PROCESS_COUNTS) sides.push(await runSide(images, processes));
  const [one, two] = sides as [Side, Side];
  const ratio = two.imagesPerSec / one.imagesPerSec;
  const cores = availableParallelism();
  const cpuPerImage = (s: Side) => s.workerCpuSec / IMAGES;
  const shares = (s: Side) => s.cpuShares.map((x) => `${(x * 100).toFixed(0)} %`).join(' / ');
  const startups = (s: Side) => s.startupSec.map((x) => x.toFixed(1)).join(' / ');

  const cpu = cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU';
  say(START);
  say('## Scale: 1 worker process against 2 (`npm run bench:scale`)');
  say('');
  say(`${new Date().toISOString()} · Node.js ${process.version} · ${cpu} · ${cores} cores`);
  say('');
  say(
    `1-minute load average before the bench began: ${loadAtStart.toFixed(2)}; before each side was timed: ` +
      `${one.loadBefore.toFixed(2)} (1 process), ${two.loadBefore.toFixed(2)} (2 processes).`,
  );
  say('');
  say(
    `The same ${IMAGES} ${WIDTH}x${HEIGHT} noise JPEGs (${megabytes.toFixed(1)} MB), default presets ` +
      '(thumb 320 WebP, preview 1280 WebP + AVIF, placeholders), on the scaled-out deployment: PostgreSQL ' +
      'catalog + BullMQ queue on PostgreSQL, a local blob directory (`file://`) shared by every process, one ' +
      '`serve --no-workers` API process and `worker --workers 1` processes. Each side: a fresh schema and blob ' +
      'directory, its own API process, every image uploaded over HTTP before any worker starts; timed from the ' +
      `worker processes' spawn until no asset is left \`processing\` (polled every ${POLL_MS} ms; all ` +
      `${IMAGES} then \`ready\`). One round each, 1 process first.`,
  );
  say('');
  say('| | 1 worker process | 2 worker processes |');
  say('| --- | ---: | ---: |');
  say(
    `| wall time, spawn to the last asset \`ready\` | ${one.seconds.toFixed(1)} s | ${two.seconds.toFixed(1)} s |`,
  );
  say(`| throughput | ${one.imagesPerSec.toFixed(2)} images/s | ${two.imagesPerSec.toFixed(2)} images/s |`);
  say(`| start-up (spawn to "worker running") | ${startups(one)} s | ${startups(two)} s |`);
  say(
    `| worker CPU per image (user + system) | ${cpuPerImage(one).toFixed(2)} s | ${cpuPerImage(two).toFixed(2)} s |`,
  );
  say(`| share of the worker CPU per process | ${shares(one)} | ${shares(two)} |`);
  const busy = (s: Side) => {
    const workers = s.workerCpuSec / s.seconds;
    return {
      workers,
      rest: Math.max(
        0,
        s.machineBusyCores - workers - s.postgresBusyCores - s.apiBusyCores - s.benchBusyCores,
      ),
    };
  };
  const row = (what: string, f: (s: Side) => number) =>
    say(`| ${what} | ${f(one).toFixed(2)} | ${f(two).toFixed(2)} |`);
  row(`cores busy (of ${cores}), whole machine`, (s) => s.machineBusyCores);
  row('... worker processes', (s) => busy(s).workers);
  row('... PostgreSQL (catalog + queue; all its clients)', (s) => s.postgresBusyCores);
  row('... the API process (answering the polls)', (s) => s.apiBusyCores);
  row('... this bench (polling)', (s) => s.benchBusyCores);
  row('... anything else on the machine', (s) => busy(s).rest);
  say('');
  const idle = Math.max(0, cores - two.machineBusyCores);
  say(
    `Ideal: **2.00**, when each worker process has a core of its own: one \`--workers 1\` process kept ` +
      `${busy(one).workers.toFixed(2)} cores busy (its image work is essentially single-threaded). This machine ` +
      `has ${cores} cores in all, so the second process gets what is left of the second core: with 2 worker ` +
      `processes the workers had ${busy(two).workers.toFixed(2)} cores ` +
      `(${(busy(two).workers / busy(one).workers).toFixed(2)}x one process's, at ${cpuPerImage(one).toFixed(2)} ` +
      `against ${cpuPerImage(two).toFixed(2)} CPU seconds per image), the rest going to PostgreSQL ` +
      `(${two.postgresBusyCores.toFixed(2)}: every job's catalog writes and the BullMQ queue), the API process ` +
      `(${two.apiBusyCores.toFixed(2)}: answering this bench's polls), this bench (${two.benchBusyCores.toFixed(2)}), ` +
      `anything else on the machine (${busy(two).rest.toFixed(2)}) and idle moments (${idle.toFixed(2)}: start-up, I/O waits, ` +
      'and the end, when one process finishes its last image and the other has nothing left). Start-up and that ' +
      'drain are fixed costs: they weigh about twice as much on the 2-process side, which runs half as long.',
  );
  const others = Math.max(busy(one).rest, busy(two).rest);
  if (others > 0.2) {
    say('');
    say(
      `**Disturbed run:** other processes on the machine took up to ${others.toFixed(2)} cores while a side was ` +
        'timed ("anything else" above), which takes from the workers unevenly; the ratio says less than it ' +
        'would on a quiet machine. Run again when nothing else is running.',
    );
  }
  say('');
  say(
    `- throughput, 2 worker processes / 1 (same machine, same run): **${ratio.toFixed(2)}** ` +
      `(${two.imagesPerSec.toFixed(2)} / ${one.imagesPerSec.toFixed(2)} images/s; ideal 2.00 on >= 2 free cores; ` +
      `${cores} cores shared with PostgreSQL and the API here)`,
  );
  say(END);

  const previous = await readFile(RESULTS, 'utf8').catch(() => '# Benchmark results\n');
  const section = lines.slice(lines.indexOf(START)).join('\n');
  const updated = previous.includes(START)
    ? previous.replace(new RegExp(`${START}[\\s\\S]*?${END}`), () => section)
    : `${previous.trimEnd()}\n\n${section}\n`;
  await writeFile(RESULTS, updated);
} catch (err) {
  process.stderr.write(`bench/scale.ts: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
