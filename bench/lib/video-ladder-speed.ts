/**
 * Bench (a) and (b): assetpipe's ladder encode against what a naive script would run.
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
 * Each side runs `rounds` times, alternating (baseline, ladder, ladder, baseline, ...) so neither
 * side always runs on a warmer or cooler machine; the medians are printed. Before printing, every
 * rung of both sides is read back with ffprobe (codec, width, height, frame rate must be as
 * planned) and the audio rendition must exist on both.
 */
import { mkdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DEFAULT_LADDER_SETTINGS, type LadderPlan, planLadder, type Rung } from '../../src/domain/ladder.js';
import { encodeLadder, type LadderOutputLayout, type X264Preset } from '../../src/media/ladder-encode.js';
import { ladderSourceFromProbe } from '../../src/media/ladder-source.js';
import { probeVideo } from '../../src/media/video-probe.js';
import { type Measured, measured, median } from './measure.js';
import type { VideoBenchContext, VideoBenchSection } from './video-section.js';
import { ffmpeg, makeTestsrcSource, type Rendition, RUN, verifyRenditions } from './video-tools.js';

const WIDTH = 1920;
const HEIGHT = 1080;
const FPS = 30;
const SOURCE_SEC = 10;

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
function baselineRungArgs(
  source: string,
  rung: Rung,
  sourceFps: number | null,
  dir: string,
  seg: number,
  preset: X264Preset,
): string[] {
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
    preset,
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

export const ladderSpeedSection: VideoBenchSection = {
  title: '(a) one-process ladder vs one ffmpeg per rung, (b) speed',
  async run(ctx: VideoBenchContext) {
    const { work, preset, rounds } = ctx;
    process.stdout.write(
      `(a) generating a ${SOURCE_SEC} s ${WIDTH}x${HEIGHT} ${FPS} fps H.264 mezzanine...\n`,
    );
    const source = join(work, 'speed-source.mp4');
    await makeTestsrcSource(source, { widthPx: WIDTH, heightPx: HEIGHT, fps: FPS, seconds: SOURCE_SEC });
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
          preset,
          ...RUN,
        });
      });
      ladderBytes = await verifyRenditions(
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
      for (const r of [...rungs, ...(audio ? [audio] : [])]) {
        await mkdir(dirname(r.playlist), { recursive: true });
      }
      const m = await measured(async () => {
        for (const [i, rung] of plan.rungs.entries()) {
          await ffmpeg(baselineRungArgs(source, rung, sourceFps, dirname(rungs[i]!.playlist), seg, preset));
        }
        if (audio) await ffmpeg(baselineAudioArgs(source, plan, dirname(audio.playlist)));
      });
      baselineBytes = await verifyRenditions('baseline', plan, rungs, audio);
      await rm(outDir, { recursive: true, force: true });
      baselineRuns.push(m);
      process.stdout.write(
        `  baseline (ffmpeg per rung): ${m.wallSec.toFixed(2)} s wall, ${m.cpuSec.toFixed(2)} s CPU\n`,
      );
    };

    for (let round = 0; round < rounds; round++) {
      process.stdout.write(`(a) round ${round + 1} of ${rounds}\n`);
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
    const each = (runs: Measured[]) =>
      runs.map((m) => `${m.wallSec.toFixed(2)}/${m.cpuSec.toFixed(2)}`).join(', ');

    return {
      body: [
        '### (a) and (b): one-process ladder against one ffmpeg process per rung',
        '',
        `Source: ${durationSec.toFixed(2)} s of ${WIDTH}x${HEIGHT} ${FPS} fps testsrc2 + 440 Hz sine, H.264 CRF 16 + AAC mezzanine, ${MB(sourceBytes)} MB.`,
        `Ladder (\`planLadder\`, default settings, ${seg} s segments): ${rungFlags}; AAC stereo ${(plan.audio?.bitrateBps ?? 0) / 1000} kb/s. x264 preset ${preset} on both sides.`,
        `Baseline: ${plan.rungs.length} plain ffmpeg processes (one per rung, each decoding the source), then one for the audio, run one after another, each writing \`-f hls -hls_segment_type fmp4\` with the same encoder and GOP flags.`,
        `Median of ${rounds} round(s), sides alternating. CPU = user + system seconds of the child processes (cutime + cstime of /proc/self/stat).`,
        'Every rung of both sides was read back with ffprobe: H.264 at the planned size and frame rate.',
        '',
        '| measurement | wall | CPU |',
        '| --- | ---: | ---: |',
        `| baseline: one ffmpeg per rung + audio, sequential | ${baseWall.toFixed(2)} s | ${baseCpu.toFixed(2)} s |`,
        `| assetpipe \`encodeLadder\` (one process, split) | ${ladderWall.toFixed(2)} s | ${ladderCpu.toFixed(2)} s |`,
        '',
        `Every round, wall/CPU s: baseline ${each(baselineRuns)}; assetpipe ${each(ladderRuns)}.`,
        '',
        `Output MB, baseline / assetpipe: ${sizes}.`,
      ],
      bullets: [
        `(a) ladder / baseline wall time: **${(ladderWall / baseWall).toFixed(2)}** (aim <= 0.65)`,
        `(a) ladder / baseline CPU time: **${(ladderCpu / baseCpu).toFixed(2)}**`,
        `(b) encode speed: **${(durationSec / ladderWall).toFixed(2)}x real time** (${durationSec.toFixed(1)} s of 1080p${FPS} in ${ladderWall.toFixed(2)} s; baseline ${(durationSec / baseWall).toFixed(2)}x)`,
      ],
    };
  },
};
