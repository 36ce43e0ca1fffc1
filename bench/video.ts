/**
 * The video ladder encode against a naive script, on the same work in the same run:
 *
 *   npm run bench:video      (sh scripts/setup.sh && tsx bench/video.ts)
 *
 * One generated source: 10 s of 1920x1080 30 fps testsrc2 + a sine tone, encoded once up front as a
 * high-quality H.264/AAC mezzanine (CRF 16), so that decoding it costs what decoding a real upload
 * costs. The ladder is planned from the source's probe with the default settings (`planLadder`).
 *
 * (a) wall time and CPU time of assetpipe's ladder (`encodeLadder`: one ffmpeg process, one decode,
 *     `split` into every rung, audio encoded once) against the baseline a naive script would run:
 *     one plain ffmpeg process per rung, one after another, each decoding the source itself and
 *     doing the same encode (same size, frame rate, x264 preset, CRF, maxrate/bufsize, GOP and
 *     forced-keyframe flags, the same `-f hls -hls_segment_type fmp4` output), plus the audio
 *     encoded once in its own process;
 * (b) encode speed as a multiple of real time: source duration / assetpipe's wall time.
 *
 * Each side runs ROUNDS times, alternating (baseline, ladder, ladder, baseline, ...) so neither side
 * always runs on a warmer or cooler machine; the medians are printed. Before printing, every rung of
 * both sides is read back with ffprobe (codec, width, height, frame rate must be as planned) and the
 * audio rendition must exist on both.
 *
 * CPU seconds: the `cutime` + `cstime` fields of /proc/self/stat (user and system time of every
 * child process this process has waited for, all of ffmpeg's threads included), read before and
 * after each side; Linux only. `process.cpuUsage()`/`process.resourceUsage()` count only this
 * process, and ffmpeg is spawned inside `encodeLadder`, so a `/usr/bin/time` wrapper cannot be put
 * around it without changing the code under test.
 *
 * Prints the figures and ratios and replaces the video section of bench/RESULTS.md.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_LADDER_SETTINGS, type LadderPlan, planLadder, type Rung } from '../src/domain/ladder.js';
import { run } from '../src/media/ffmpeg.js';
import { encodeLadder, type LadderOutputLayout, type X264Preset } from '../src/media/ladder-encode.js';
import { probeVideo } from '../src/media/video-probe.js';
import { ladderSourceFromProbe } from '../src/pipeline/video/ladder-source.js';

const here = dirname(fileURLToPath(import.meta.url));
const RESULTS = join(here, 'RESULTS.md');
const START = '<!-- bench:video:start -->';
const END = '<!-- bench:video:end -->';
const WIDTH = 1920;
const HEIGHT = 1080;
const FPS = 30;
const SOURCE_SEC = 10;
const PRESET: X264Preset = 'veryfast';
const ROUNDS = Number(process.env.BENCH_VIDEO_ROUNDS ?? 3);
const RUN = { timeoutMs: 600_000 };

if (process.platform !== 'linux') {
  process.stderr.write('bench/video.ts reads children CPU time from /proc/self/stat: Linux only\n');
  process.exit(1);
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU seconds (user + system) of all waited-for children of this process so far. */
function childrenCpuSec(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  // Fields after the command name (which is in parentheses and may hold spaces) start at field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cutime = Number(fields[16 - 3]);
  const cstime = Number(fields[17 - 3]);
  return (cutime + cstime) / CLK_TCK;
}

interface Measured {
  wallSec: number;
  cpuSec: number;
}

async function measured(work: () => Promise<void>): Promise<Measured> {
  const cpu0 = childrenCpuSec();
  const t0 = process.hrtime.bigint();
  await work();
  const wallSec = Number(process.hrtime.bigint() - t0) / 1e9;
  return { wallSec, cpuSec: childrenCpuSec() - cpu0 };
}

async function ffmpeg(args: string[]): Promise<void> {
  await run('ffmpeg', ['-hide_banner', '-v', 'error', '-nostdin', '-y', ...args], RUN);
}

/** The HLS fMP4 output flags both sides share (ladder-encode.ts writes the same). */
function hlsOutput(dir: string, segmentSec: number): string[] {
  return [
    '-map_metadata',
    '-1',
    '-map_chapters',
    '-1',
    '-f',
    'hls',
    '-hls_time',
    String(segmentSec),
    '-hls_playlist_type',
    'vod',
    '-hls_segment_type',
    'fmp4',
    '-hls_flags',
    'independent_segments',
    '-hls_fmp4_init_filename',
    'init.mp4',
    '-hls_segment_filename',
    join(dir, 'seg-%05d.m4s'),
    join(dir, 'index.m3u8'),
  ];
}

/** One plain ffmpeg process for one rung: its own decode, the rung's scale and the same x264 flags. */
function baselineRungArgs(source: string, rung: Rung, sourceFps: number | null, dir: string, seg: number) {
  const filters = [
    ...(sourceFps === null || Math.abs(sourceFps - rung.frameRateFps) > 1e-6
      ? [`fps=${rung.frameRate}`]
      : []),
    `scale=${rung.widthPx}:${rung.heightPx}`,
    'setsar=1',
  ];
  return [
    '-i',
    source,
    '-map',
    '0:v:0',
    '-vf',
    filters.join(','),
    '-c:v',
    'libx264',
    '-profile:v',
    rung.profile,
    '-pix_fmt',
    rung.pixelFormat,
    '-crf',
    String(rung.crf),
    '-maxrate',
    String(rung.maxrateBps),
    '-bufsize',
    String(rung.bufsizeBits),
    '-g',
    String(rung.gopFrames),
    '-keyint_min',
    String(rung.gopFrames),
    '-preset',
    PRESET,
    '-sc_threshold',
    '0',
    '-force_key_frames',
    `expr:gte(t,n_forced*${seg})`,
    ...hlsOutput(dir, seg),
  ];
}

function baselineAudioArgs(source: string, plan: LadderPlan, dir: string): string[] {
  return [
    '-i',
    source,
    '-map',
    '0:a:0',
    '-c:a',
    'aac',
    '-b:a',
    String(plan.audio!.bitrateBps),
    '-ac',
    String(plan.audio!.channels),
    ...hlsOutput(dir, plan.segmentDurationSec),
  ];
}

interface Rendition {
  name: string;
  playlist: string;
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}

/** Throws unless every rung's playlist reads back as planned and the audio rendition exists. */
async function verify(
  side: string,
  plan: LadderPlan,
  rungs: Rendition[],
  audio: Rendition | null,
): Promise<number[]> {
  if (rungs.length !== plan.rungs.length) {
    throw new Error(`${side}: ${rungs.length} rung outputs for ${plan.rungs.length} planned rungs`);
  }
  const bytes: number[] = [];
  for (const [i, rung] of plan.rungs.entries()) {
    const r = rungs[i]!;
    const { stdout } = await run(
      'ffprobe',
      [
        '-v',
        'error',
        '-of',
        'json',
        '-show_entries',
        'stream=codec_type,codec_name,width,height,r_frame_rate',
        r.playlist,
      ],
      RUN,
    );
    const streams = (JSON.parse(stdout) as { streams: Record<string, unknown>[] }).streams;
    const got = streams.map(
      (s) => `${s.codec_type} ${s.codec_name} ${s.width}x${s.height} ${s.r_frame_rate}`,
    );
    const want = `video h264 ${rung.widthPx}x${rung.heightPx} ${rung.frameRate}`;
    if (got.length !== 1 || got[0] !== want) {
      throw new Error(`${side} ${rung.id}: expected ${want}, ffprobe read ${JSON.stringify(got)}`);
    }
    bytes.push(await dirBytes(dirname(r.playlist)));
  }
  if (plan.audio !== null) {
    if (audio === null) throw new Error(`${side}: no audio rendition`);
    const { stdout } = await run(
      'ffprobe',
      [
        '-v',
        'error',
        '-of',
        'json',
        '-show_entries',
        'stream=codec_type,codec_name,channels',
        audio.playlist,
      ],
      RUN,
    );
    const streams = (JSON.parse(stdout) as { streams: Record<string, unknown>[] }).streams;
    if (streams.length !== 1 || streams[0]?.codec_name !== 'aac' || streams[0]?.channels !== 2) {
      throw new Error(`${side} audio: expected AAC stereo, ffprobe read ${JSON.stringify(streams)}`);
    }
    bytes.push(await dirBytes(dirname(audio.playlist)));
  }
  return bytes;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

// Other processes on the machine take cores from both sides: the load average is printed with the figures.
const loadAtStart = loadavg()[0]!;
const work = await mkdtemp(join(tmpdir(), 'assetpipe-bench-video-'));
const lines: string[] = [];
const say = (line = '') => {
  lines.push(line);
  process.stdout.write(`${line}\n`);
};

try {
  process.stdout.write(`generating a ${SOURCE_SEC} s ${WIDTH}x${HEIGHT} ${FPS} fps H.264 mezzanine...\n`);
  const source = join(work, 'source.mp4');
  await ffmpeg([
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${WIDTH}x${HEIGHT}:rate=${FPS}:duration=${SOURCE_SEC}`,
    '-f',
    'lavfi',
    '-i',
    `sine=frequency=440:sample_rate=48000:duration=${SOURCE_SEC}`,
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-crf',
    '16',
    '-pix_fmt',
    'yuv420p',
    '-c:a',
    'aac',
    '-b:a',
    '192k',
    '-ac',
    '2',
    '-movflags',
    '+faststart',
    source,
  ]);
  const sourceBytes = (await stat(source)).size;

  const probe = await probeVideo(source, RUN);
  const durationSec = probe.durationSec ?? SOURCE_SEC;
  const plan = planLadder(ladderSourceFromProbe(probe), DEFAULT_LADDER_SETTINGS);
  const seg = plan.segmentDurationSec;
  const sourceFps = probe.video?.variableFrameRate ? null : (probe.video?.frameRate ?? null);
  const rungList = plan.rungs.map((r) => `${r.widthPx}x${r.heightPx}@${r.frameRate}`).join(', ');
  process.stdout.write(`planned rungs: ${rungList}; audio: ${plan.audio ? 'AAC stereo' : 'none'}\n`);

  const ladderRuns: Measured[] = [];
  const baselineRuns: Measured[] = [];
  let ladderBytes: number[] = [];
  let baselineBytes: number[] = [];

  const runLadder = async (round: number) => {
    const outDir = join(work, `ladder-${round}`);
    let layout: LadderOutputLayout | undefined;
    const m = await measured(async () => {
      layout = await encodeLadder(plan, {
        input: source,
        outDir,
        sourceFrameRateFps: sourceFps,
        videoStreamIndex: probe.video?.index,
        audioStreamIndex: probe.audio?.index,
        durationSec: probe.durationSec,
        preset: PRESET,
        ...RUN,
      });
    });
    ladderBytes = await verify(
      'assetpipe',
      plan,
      layout!.rungs.map((r) => ({ name: r.name, playlist: join(outDir, r.playlist) })),
      layout!.audio && { name: layout!.audio.name, playlist: join(outDir, layout!.audio.playlist) },
    );
    await rm(outDir, { recursive: true, force: true });
    ladderRuns.push(m);
    process.stdout.write(
      `  assetpipe ladder: ${m.wallSec.toFixed(2)} s wall, ${m.cpuSec.toFixed(2)} s CPU\n`,
    );
  };

  const runBaseline = async (round: number) => {
    const outDir = join(work, `baseline-${round}`);
    const rungs: Rendition[] = plan.rungs.map((r) => ({
      name: r.id,
      playlist: join(outDir, r.id, 'index.m3u8'),
    }));
    const audio: Rendition | null = plan.audio && {
      name: 'audio',
      playlist: join(outDir, 'audio', 'index.m3u8'),
    };
    for (const r of [...rungs, ...(audio ? [audio] : [])])
      await mkdir(dirname(r.playlist), { recursive: true });
    const m = await measured(async () => {
      for (const [i, rung] of plan.rungs.entries()) {
        await ffmpeg(baselineRungArgs(source, rung, sourceFps, dirname(rungs[i]!.playlist), seg));
      }
      if (audio) await ffmpeg(baselineAudioArgs(source, plan, dirname(audio.playlist)));
    });
    baselineBytes = await verify('baseline', plan, rungs, audio);
    await rm(outDir, { recursive: true, force: true });
    baselineRuns.push(m);
    process.stdout.write(
      `  baseline (ffmpeg per rung): ${m.wallSec.toFixed(2)} s wall, ${m.cpuSec.toFixed(2)} s CPU\n`,
    );
  };

  for (let round = 0; round < ROUNDS; round++) {
    process.stdout.write(`round ${round + 1} of ${ROUNDS}\n`);
    if (round % 2 === 0) {
      await runBaseline(round);
      await runLadder(round);
    } else {
      await runLadder(round);
      await runBaseline(round);
    }
  }

  const ladderWall = median(ladderRuns.map((m) => m.wallSec));
  const ladderCpu = median(ladderRuns.map((m) => m.cpuSec));
  const baseWall = median(baselineRuns.map((m) => m.wallSec));
  const baseCpu = median(baselineRuns.map((m) => m.cpuSec));
  const MB = (n: number) => (n / 1e6).toFixed(2);
  const names = [...plan.rungs.map((r) => r.name), ...(plan.audio ? ['audio'] : [])];
  const sizes = names.map((n, i) => `${n} ${MB(baselineBytes[i]!)} / ${MB(ladderBytes[i]!)}`).join(', ');
  const rungFlags = plan.rungs
    .map(
      (r) =>
        `${r.name} ${r.widthPx}x${r.heightPx} CRF ${r.crf} maxrate ${(r.maxrateBps / 1e6).toFixed(2)} Mb/s`,
    )
    .join('; ');

  const cpu = cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU';
  say(START);
  say('## Video: the ladder encode against one ffmpeg process per rung (`npm run bench:video`)');
  say('');
  say(`${new Date().toISOString()} · Node.js ${process.version} · ${cpu} · ${availableParallelism()} cores`);
  say('');
  say(
    `1-minute load average before the bench began: ${loadAtStart.toFixed(2)} (work of other processes: the higher, the more they may have taken cores from both sides).`,
  );
  say('');
  say(
    `Source: ${durationSec.toFixed(2)} s of ${WIDTH}x${HEIGHT} ${FPS} fps testsrc2 + 440 Hz sine, H.264 CRF 16 + AAC mezzanine, ${MB(sourceBytes)} MB.`,
  );
  say(
    `Ladder (\`planLadder\`, default settings, ${seg} s segments): ${rungFlags}; AAC stereo ${(plan.audio?.bitrateBps ?? 0) / 1000} kb/s. x264 preset ${PRESET} on both sides.`,
  );
  say(
    `Baseline: ${plan.rungs.length} plain ffmpeg processes (one per rung, each decoding the source), then one for the audio, run one after another, each writing \`-f hls -hls_segment_type fmp4\` with the same encoder and GOP flags.`,
  );
  say(
    `Median of ${ROUNDS} round(s), sides alternating. CPU = user + system seconds of the child processes (cutime + cstime of /proc/self/stat).`,
  );
  say('Every rung of both sides was read back with ffprobe: H.264 at the planned size and frame rate.');
  say('');
  say('| measurement | wall | CPU |');
  say('| --- | ---: | ---: |');
  say(
    `| baseline: one ffmpeg per rung + audio, sequential | ${baseWall.toFixed(2)} s | ${baseCpu.toFixed(2)} s |`,
  );
  say(
    `| assetpipe \`encodeLadder\` (one process, split) | ${ladderWall.toFixed(2)} s | ${ladderCpu.toFixed(2)} s |`,
  );
  say('');
  const each = (runs: Measured[]) =>
    runs.map((m) => `${m.wallSec.toFixed(2)}/${m.cpuSec.toFixed(2)}`).join(', ');
  say(`Every round, wall/CPU s: baseline ${each(baselineRuns)}; assetpipe ${each(ladderRuns)}.`);
  say('');
  say(`Output MB, baseline / assetpipe: ${sizes}.`);
  say('');
  say(`- (a) ladder / baseline wall time: **${(ladderWall / baseWall).toFixed(2)}** (aim <= 0.65)`);
  say(`- (a) ladder / baseline CPU time: **${(ladderCpu / baseCpu).toFixed(2)}**`);
  say(
    `- (b) encode speed: **${(durationSec / ladderWall).toFixed(2)}x real time** (${durationSec.toFixed(1)} s of 1080p${FPS} in ${ladderWall.toFixed(2)} s; baseline ${(durationSec / baseWall).toFixed(2)}x)`,
  );
  say('- (c) automated ABR vs the fixed ladder and (d) chunked encode with 2 workers: not measured yet');
  say(END);

  const previous = await readFile(RESULTS, 'utf8').catch(() => '# Benchmark results\n');
  const section = lines.slice(lines.indexOf(START)).join('\n');
  const updated = previous.includes(START)
    ? previous.replace(new RegExp(`${START}[\\s\\S]*?${END}`), () => section)
    : `${previous.trimEnd()}\n\n${section}\n`;
  await writeFile(RESULTS, updated);
} finally {
  await rm(work, { recursive: true, force: true });
}
