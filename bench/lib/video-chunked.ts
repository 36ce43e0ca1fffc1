import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/media/ffmpeg.js';
import type { VideoBenchSection } from './video-section.js';

// (d) Chunked encoding across worker processes. The same 2-minute 720p source is ingested twice
// into a fresh data directory served by two `assetpipe worker` processes (one run slot and one
// chunk slot each): once with chunking off (one process encodes the whole ladder, the other is
// idle), once cut into 30 s chunks (four chunk jobs shared by both processes, then the join). The
// wall time runs from `assetpipe ingest --no-workers` starting to it reporting the asset `ready`:
// probe, plan, encode (+ chunks, join), package, validate, poster, storyboard, publish.
// Same preset, fixed ladder (no complexity probe: it is the same on both sides), no download MP4.

const here = dirname(fileURLToPath(import.meta.url));
const MAIN = join(here, '..', '..', 'dist', 'main.js');
const SOURCE_SEC = 120;
const CHUNK_SEC = 30;
const WORKER_PROCESSES = 2;

interface Timed {
  seconds: number;
  status: string;
  error: string | null;
}

function waitForExit(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

async function ingestWithWorkers(
  work: string,
  name: string,
  source: string,
  env: NodeJS.ProcessEnv,
): Promise<Timed> {
  const data = join(work, name);
  await mkdir(data, { recursive: true });
  const childEnv = { ...process.env, ...env, ASSETPIPE_LOG_LEVEL: 'warn' };
  // Migrate once before several processes open the new database.
  const migrate = spawn(process.execPath, [MAIN, 'migrate', '--data', data], {
    env: childEnv,
    stdio: 'ignore',
  });
  if ((await waitForExit(migrate)) !== 0) throw new Error('assetpipe migrate failed');
  const workers = Array.from({ length: WORKER_PROCESSES }, () =>
    spawn(process.execPath, [MAIN, 'worker', '--data', data, '--workers', '1'], {
      env: childEnv,
      stdio: 'ignore',
    }),
  );
  try {
    const started = process.hrtime.bigint();
    const ingest = spawn(
      process.execPath,
      [MAIN, 'ingest', '--no-workers', '--json', '--data', data, source],
      {
        env: childEnv,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    ingest.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
    });
    await waitForExit(ingest);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const record = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as {
      status?: string;
      error?: string | null;
    };
    return { seconds, status: record.status ?? 'unknown', error: record.error ?? null };
  } finally {
    for (const worker of workers) worker.kill('SIGTERM');
    await Promise.all(workers.map(waitForExit));
  }
}

export const chunkedSection: VideoBenchSection = {
  title: `(d) chunked encode of a ${SOURCE_SEC / 60}-minute source with ${WORKER_PROCESSES} worker processes`,
  async run(ctx) {
    const source = join(ctx.work, 'two-minutes-720p.mp4');
    await run(
      'ffmpeg',
      [
        ...['-hide_banner', '-v', 'error', '-y'],
        ...['-f', 'lavfi', '-i', `testsrc2=size=1280x720:rate=30:duration=${SOURCE_SEC}`],
        ...['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${SOURCE_SEC}`],
        ...[
          '-c:v',
          'libx264',
          '-preset',
          'ultrafast',
          '-crf',
          '18',
          '-pix_fmt',
          'yuv420p',
          '-c:a',
          'aac',
          source,
        ],
      ],
      { timeoutMs: 600_000 },
    );
    const common = {
      ASSETPIPE_VIDEO_ABR: 'fixed',
      ASSETPIPE_VIDEO_PRESET: ctx.preset,
      ASSETPIPE_VIDEO_DOWNLOAD: 'off',
    };
    const onePiece = await ingestWithWorkers(ctx.work, 'd-one-piece', source, {
      ...common,
      ASSETPIPE_VIDEO_CHUNK_SEC: String(24 * 3600),
    });
    const chunked = await ingestWithWorkers(ctx.work, 'd-chunked', source, {
      ...common,
      ASSETPIPE_VIDEO_CHUNK_SEC: String(CHUNK_SEC),
    });
    for (const [label, r] of [
      ['one piece', onePiece],
      ['chunked', chunked],
    ] as const) {
      if (r.status !== 'ready') throw new Error(`(d) ${label}: the asset ended ${r.status}: ${r.error}`);
    }
    const ratio = chunked.seconds / onePiece.seconds;
    const chunks = Math.ceil(SOURCE_SEC / CHUNK_SEC);
    process.stdout.write(
      `(d) one piece ${onePiece.seconds.toFixed(1)} s, ${chunks} chunks ${chunked.seconds.toFixed(1)} s: ratio ${ratio.toFixed(2)}\n`,
    );
    return {
      body: [
        `### (d) Chunked encode across ${WORKER_PROCESSES} worker processes`,
        '',
        `${SOURCE_SEC} s of 1280x720 30 fps testsrc2 + sine, fixed ladder (720p, 480p, 360p + AAC), x264 ${ctx.preset}, ` +
          `${WORKER_PROCESSES} \`assetpipe worker --workers 1\` processes on one data directory; wall time of ` +
          '`assetpipe ingest --no-workers` from start to `ready` (the whole pipeline), one round each.',
        '',
        '| | wall time |',
        '|---|---|',
        `| one piece (chunking off: one process encodes, the other idles) | ${onePiece.seconds.toFixed(1)} s |`,
        `| ${chunks} chunks of ${CHUNK_SEC} s (chunk jobs on both processes, then the join) | ${chunked.seconds.toFixed(1)} s |`,
        `| ratio | **${ratio.toFixed(2)}** |`,
        '',
        'x264 already spreads one encode over every core, so on one machine the chunks mostly share the same cores; ' +
          'the gain of chunking is on several machines, each adding its cores. The figure here is the cost of the cut, ' +
          'the extra second decoded before each chunk, and the join.',
      ],
      bullets: [
        `(d) chunked (${chunks} chunks, ${WORKER_PROCESSES} worker processes) vs one piece, wall time to ready: **${ratio.toFixed(2)}**`,
      ],
    };
  },
};
