/**
 * The video benches, each on the same work in the same run, as one section of bench/RESULTS.md:
 *
 *   npm run bench:video      (sh scripts/setup.sh && tsx bench/video.ts)
 *
 * (a) and (b): the one-process ladder encode against one plain ffmpeg process per rung, and its
 *     speed as a multiple of real time (bench/lib/video-ladder-speed.ts);
 * (c) automated ABR against the fixed default ladder on a slideshow: bytes and SSIM per rung
 *     (bench/lib/video-automated-abr.ts);
 * (d) a 2-minute source through the whole pipeline on 2 worker processes, cut into chunk jobs
 *     against one piece (bench/lib/video-chunked.ts; runs dist/main.js, built by `npm run bench`).
 *
 * A section is a `VideoBenchSection` (bench/lib/video-section.ts): it gets a scratch directory, the
 * preset and the round count, and returns its markdown and its headline bullets. Adding one is a
 * new file and one entry in SECTIONS (and its letter out of NOT_MEASURED).
 *
 * Environment: BENCH_VIDEO_ROUNDS (timed rounds per side, default 3), BENCH_VIDEO_ONLY (letters of
 * the sections to run, e.g. `c`; the results file is then not written, so it never holds a partial
 * run).
 *
 * Prints the figures and ratios and replaces the video section of bench/RESULTS.md.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { X264Preset } from '../src/media/ladder-encode.js';
import { requireLinux } from './lib/measure.js';
import { automatedAbrSection } from './lib/video-automated-abr.js';
import { chunkedSection } from './lib/video-chunked.js';
import { ladderSpeedSection } from './lib/video-ladder-speed.js';
import type { VideoBenchSection } from './lib/video-section.js';

const here = dirname(fileURLToPath(import.meta.url));
const RESULTS = join(here, 'RESULTS.md');
const START = '<!-- bench:video:start -->';
const END = '<!-- bench:video:end -->';
const PRESET: X264Preset = 'veryfast';
const ROUNDS = Number(process.env.BENCH_VIDEO_ROUNDS ?? 3);

/** Sections by the letters of their bullets. */
const SECTIONS: { letters: string; section: VideoBenchSection }[] = [
  { letters: 'ab', section: ladderSpeedSection },
  { letters: 'c', section: automatedAbrSection },
  { letters: 'd', section: chunkedSection },
];
const NOT_MEASURED: string[] = [];

requireLinux('bench/video.ts');
const only = process.env.BENCH_VIDEO_ONLY;
const chosen = SECTIONS.filter((s) => only === undefined || [...s.letters].some((l) => only.includes(l)));

// Other processes on the machine take cores from both sides: the load average is printed with the figures.
const loadAtStart = loadavg()[0]!;
const work = await mkdtemp(join(tmpdir(), 'assetpipe-bench-video-'));
const lines: string[] = [];
const say = (line = '') => {
  lines.push(line);
  process.stdout.write(`${line}\n`);
};

try {
  const results = [];
  for (const { section } of chosen) {
    process.stdout.write(`== ${section.title}\n`);
    results.push(await section.run({ work, preset: PRESET, rounds: ROUNDS }));
  }

  const cpu = cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU';
  say(START);
  say('## Video: the ladder encode and automated ABR (`npm run bench:video`)');
  say('');
  say(`${new Date().toISOString()} · Node.js ${process.version} · ${cpu} · ${availableParallelism()} cores`);
  say('');
  say(
    `1-minute load average before the bench began: ${loadAtStart.toFixed(2)} (work of other processes: the higher, the more they may have taken cores from both sides).`,
  );
  for (const r of results) {
    say('');
    for (const line of r.body) say(line);
  }
  say('');
  for (const bullet of [...results.flatMap((r) => r.bullets), ...NOT_MEASURED]) say(`- ${bullet}`);
  say(END);

  if (only === undefined) {
    const previous = await readFile(RESULTS, 'utf8').catch(() => '# Benchmark results\n');
    const section = lines.slice(lines.indexOf(START)).join('\n');
    const updated = previous.includes(START)
      ? previous.replace(new RegExp(`${START}[\\s\\S]*?${END}`), () => section)
      : `${previous.trimEnd()}\n\n${section}\n`;
    await writeFile(RESULTS, updated);
  } else {
    process.stdout.write(`BENCH_VIDEO_ONLY=${only}: ${RESULTS} left as it was\n`);
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
