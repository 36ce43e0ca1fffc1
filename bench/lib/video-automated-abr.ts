/**
 * Bench (c): automated ABR against the fixed default ladder, on low-complexity content.
 *
 * One generated source: 24 s of a 1920x1080 30 fps slideshow with a soundtrack (video-tools.ts).
 * Its complexity is measured with `measureComplexity` (what the plan step runs), then two ladders
 * are planned from the same probe with the default settings: automated (with the measured
 * complexity) and fixed (without), and both are encoded with `encodeLadder` at the same preset.
 *
 * Printed: each ladder's rungs and caps, the bytes of every rendition and their totals (with and
 * without the audio rendition, which is the same on both sides), and the SSIM of every rung against
 * the source scaled to the rung's size (ffmpeg's `ssim` filter, "All": Y, U and V weighted 4:1:1,
 * mean over every frame). A rung the automated ladder leaves out is compared by what a player at
 * that size gets instead: the automated ladder's next larger rung, scaled down to that size.
 * SSIM values within SSIM_EQUAL of each other count as equal.
 */
import { join } from 'node:path';
import { DEFAULT_LADDER_SETTINGS, type LadderPlan, planLadder, type Rung } from '../../src/domain/ladder.js';
import { measureComplexity } from '../../src/media/complexity-probe.js';
import { encodeLadder } from '../../src/media/ladder-encode.js';
import { ladderSourceFromProbe } from '../../src/media/ladder-source.js';
import { probeVideo } from '../../src/media/video-probe.js';
import { measured } from './measure.js';
import type { VideoBenchContext, VideoBenchSection } from './video-section.js';
import {
  makeSlideshowSource,
  RUN,
  type SsimComparison,
  ssimAgainstSource,
  verifyRenditions,
} from './video-tools.js';

const SOURCE_SEC = 24;
/** SSIM differences below this are within what re-encoding noise moves it by: "equal". */
const SSIM_EQUAL = 0.002;
/** The issue's aim: automated ABR writes at least 30 % fewer bytes. */
const AIM_RATIO = 0.7;

interface Encoded {
  plan: LadderPlan;
  /** Bytes of each rung's directory, in plan order, then the audio rendition's. */
  bytes: number[];
  playlists: string[];
  wallSec: number;
}

const MB = (n: number) => (n / 1e6).toFixed(3);
const kbps = (bps: number) => `${Math.round(bps / 1000)} kb/s`;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

export const automatedAbrSection: VideoBenchSection = {
  title: '(c) automated ABR vs the fixed ladder',
  async run(ctx: VideoBenchContext) {
    const { work, preset } = ctx;
    process.stdout.write(`(c) generating a ${SOURCE_SEC} s 1920x1080 slideshow...\n`);
    const source = join(work, 'abr-source.mp4');
    await makeSlideshowSource(source, SOURCE_SEC);
    const probe = await probeVideo(source, RUN);
    const durationSec = probe.durationSec ?? SOURCE_SEC;

    let complexity: Awaited<ReturnType<typeof measureComplexity>> | undefined;
    const probeTime = await measured(async () => {
      complexity = await measureComplexity(source, probe, { ...RUN, preset });
    });
    process.stdout.write(`(c) complexity ${complexity!.complexityBpp.toFixed(5)} bpp\n`);

    const fixedSource = ladderSourceFromProbe(probe);
    const autoSource = ladderSourceFromProbe(probe);
    autoSource.video!.complexityBpp = complexity!.complexityBpp;
    const plans = {
      fixed: planLadder(fixedSource, DEFAULT_LADDER_SETTINGS),
      automated: planLadder(autoSource, DEFAULT_LADDER_SETTINGS),
    };

    const encode = async (name: string, plan: LadderPlan): Promise<Encoded> => {
      process.stdout.write(`(c) encoding the ${name} ladder (${plan.rungs.map((r) => r.name).join(', ')})\n`);
      const outDir = join(work, `abr-${name}`);
      const m = await measured(async () => {
        await encodeLadder(plan, {
          input: source,
          outDir,
          sourceFrameRateFps: probe.video?.variableFrameRate ? null : (probe.video?.frameRate ?? null),
          videoStreamIndex: probe.video?.index,
          audioStreamIndex: probe.audio?.index,
          durationSec: probe.durationSec,
          preset,
          ...RUN,
        });
      });
      const playlists = plan.rungs.map((r) => join(outDir, r.id, 'index.m3u8'));
      const bytes = await verifyRenditions(
        name,
        plan,
        playlists.map((playlist, i) => ({ name: plan.rungs[i]!.id, playlist })),
        plan.audio && { name: 'audio', playlist: join(outDir, 'audio', 'index.m3u8') },
      );
      return { plan, bytes, playlists, wallSec: m.wallSec };
    };
    const fixed = await encode('fixed', plans.fixed);
    const auto = await encode('automated', plans.automated);

    // Every fixed rung's size: the automated rung of that size, or (left out) the smallest larger
    // one, which is what a player that fits that size would pick instead.
    const stand = (r: Rung) =>
      [...plans.automated.rungs].reverse().find((a) => a.widthPx * a.heightPx >= r.widthPx * r.heightPx) ??
      plans.automated.rungs[0]!;
    const compare = (playlist: string, own: Rung, at: Rung): SsimComparison => ({
      distorted: playlist,
      distortedSize: own,
      at: { widthPx: at.widthPx, heightPx: at.heightPx, frameRate: at.frameRate },
    });
    process.stdout.write('(c) SSIM of every rung against the source...\n');
    const fixedSsim = await ssimAgainstSource(
      source,
      plans.fixed.rungs.map((r, i) => compare(fixed.playlists[i]!, r, r)),
    );
    const autoSsim = await ssimAgainstSource(
      source,
      plans.fixed.rungs.map((r) => {
        const a = stand(r);
        return compare(auto.playlists[plans.automated.rungs.indexOf(a)]!, a, r);
      }),
    );

    const audioBytes = (e: Encoded) => (e.plan.audio === null ? 0 : e.bytes.at(-1)!);
    const videoBytes = (e: Encoded) => sum(e.bytes) - audioBytes(e);
    const totalRatio = sum(auto.bytes) / sum(fixed.bytes);
    const videoRatio = videoBytes(auto) / videoBytes(fixed);
    const rows = plans.fixed.rungs.map((r, i) => {
      const a = stand(r);
      const j = plans.automated.rungs.indexOf(a);
      const same = a.name === r.name;
      const delta = autoSsim[i]! - fixedSsim[i]!;
      const verdict = delta >= SSIM_EQUAL ? 'better' : delta > -SSIM_EQUAL ? 'equal' : 'worse';
      const autoCell = same
        ? `${kbps(a.maxrateBps)} (expected ${kbps(a.expectedBitrateBps ?? 0)}) · ${MB(auto.bytes[j]!)} MB · ${kbps((auto.bytes[j]! * 8) / durationSec)}`
        : `left out: a player at ${r.name} gets ${a.name}`;
      return `| ${r.name} ${r.widthPx}x${r.heightPx} | ${kbps(r.maxrateBps)} · ${MB(fixed.bytes[i]!)} MB · ${kbps((fixed.bytes[i]! * 8) / durationSec)} | ${autoCell} | ${fixedSsim[i]!.toFixed(4)} / ${autoSsim[i]!.toFixed(4)} (${verdict}) |`;
    });
    const worse = rows.filter((r) => r.endsWith('(worse) |')).length;
    const c = complexity!;

    return {
      body: [
        '### (c): automated ABR against the fixed ladder, low-complexity content',
        '',
        `Source: ${durationSec.toFixed(2)} s of a 1920x1080 30 fps slideshow (a new slide every 2 s: text, a picture, a box; still in between) + a 220 Hz tone, H.264 CRF 16 + AAC mezzanine.`,
        `Complexity (\`measureComplexity\`, preset ${preset}): **${c.complexityBpp.toFixed(5)} bits per pixel per frame** at the probe size, ${c.sampledSec.toFixed(1)} s encoded in ${c.samples} window(s), ${probeTime.wallSec.toFixed(1)} s wall (the fixed ladder's encode: ${fixed.wallSec.toFixed(1)} s).`,
        `Both ladders planned with \`planLadder\` and the default settings from the same probe (automated: with the complexity; fixed: without) and encoded with \`encodeLadder\`, x264 preset ${preset}, CRF 23 on every rung.`,
        `SSIM: ffmpeg's \`ssim\` filter, "All" (Y, U, V weighted 4:1:1, mean of every frame), each rung against the source scaled to the rung size with \`scale\` (bicubic, as the ladder scales); within ${SSIM_EQUAL} counts as equal.`,
        '',
        '| rung | fixed: cap · bytes · average | automated: cap (expected) · bytes · average | SSIM fixed / automated |',
        '| --- | --- | --- | --- |',
        ...rows,
        '',
        `Totals: fixed ${MB(sum(fixed.bytes))} MB (video ${MB(videoBytes(fixed))} + audio ${MB(audioBytes(fixed))}), automated ${MB(sum(auto.bytes))} MB (video ${MB(videoBytes(auto))} + audio ${MB(audioBytes(auto))}).`,
      ],
      bullets: [
        `(c) automated / fixed bytes, whole package (video + audio): **${totalRatio.toFixed(2)}**; video rungs only: **${videoRatio.toFixed(2)}** (aim <= ${AIM_RATIO}); SSIM per rung: ${worse === 0 ? 'equal or better at every size' : `worse at ${worse} size(s)`} (equal = within ${SSIM_EQUAL})`,
      ],
    };
  },
};
