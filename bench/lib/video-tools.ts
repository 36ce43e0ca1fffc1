/**
 * What the video benches share: running ffmpeg, generating sources, reading renditions back with
 * ffprobe, their sizes on disk, and SSIM against the source.
 */
import { readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { LadderPlan } from '../../src/domain/ladder.js';
import { run } from '../../src/media/ffmpeg.js';

export const RUN = { timeoutMs: 900_000 };

export async function ffmpeg(args: string[]): Promise<void> {
  await run('ffmpeg', ['-hide_banner', '-v', 'error', '-nostdin', '-y', ...args], RUN);
}

/** A rendition's media playlist (its segments sit beside it). */
export interface Rendition {
  name: string;
  playlist: string;
}

/** The near-lossless H.264 + AAC settings of a generated mezzanine: decoding it costs what a real upload's does. */
const MEZZANINE = [
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
];

/** testsrc2 (moving pattern, counters) + a 440 Hz tone: the ladder-speed source. */
export async function makeTestsrcSource(
  path: string,
  size: { widthPx: number; heightPx: number; fps: number; seconds: number },
): Promise<void> {
  const { widthPx, heightPx, fps, seconds } = size;
  await ffmpeg([
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${widthPx}x${heightPx}:rate=${fps}:duration=${seconds}`,
    '-f',
    'lavfi',
    '-i',
    `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
    ...MEZZANINE,
    path,
  ]);
}

/**
 * A 1920x1080 30 fps slideshow with a soundtrack: a new slide every 2 s (title with the slide
 * number, five lines of text, a picture that changes, a coloured box that moves), still between
 * changes, as a talk recording or a product walkthrough is. drawtext uses fontconfig's default
 * font (Debian's ffmpeg pulls in fonts-dejavu-core).
 */
export async function makeSlideshowSource(path: string, seconds: number): Promise<void> {
  const lines = [
    'Quarterly review: assetpipe media pipeline',
    '- uploads: tus, resumable, checksummed',
    '- images: WebP and AVIF variants, placeholders',
    '- video: one-process ABR ladder, CMAF segments',
    '- delivery: signed URLs, HLS and DASH',
  ];
  const text = lines
    .map(
      (line, i) =>
        // Commas, colons and quotes are drawtext syntax: escaped for the option parser.
        `drawtext=text='${line.replace(/[:,]/g, (c) => `\\${c}`)}':fontsize=44:x=80:y=${170 + i * 64}:fontcolor=0x202020`,
    )
    .join(',');
  await ffmpeg([
    '-filter_complex',
    [
      `color=c=0xf4f4f0:s=1920x1080:r=30:d=${seconds}[page]`,
      // One testsrc2 frame per slide (its colours, gradient and counters make a busy picture).
      `testsrc2=s=800x450:r=0.5:d=${seconds},fps=30[picture]`,
      `[page][picture]overlay=1040:520,${text},` +
        `drawtext=text='Slide %{eif\\:floor(t/2)+1\\:d}':fontsize=72:x=80:y=50:fontcolor=0x1040a0,` +
        `drawbox=x='80+mod(floor(t/2)*137\\,800)':y=800:w=300:h=200:color=0x30a050:t=fill,format=yuv420p[v]`,
    ].join(';'),
    '-f',
    'lavfi',
    '-i',
    `sine=frequency=220:sample_rate=48000:duration=${seconds}`,
    '-map',
    '[v]',
    '-map',
    '0:a',
    ...MEZZANINE,
    path,
  ]);
}

export async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}

/**
 * Throws unless every rung's playlist reads back as planned (H.264 at the planned size and frame
 * rate) and the audio rendition is AAC stereo; resolves with the bytes on disk of each rendition's
 * directory, the rungs in the plan's order, then the audio.
 */
export async function verifyRenditions(
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

/** One SSIM comparison: a rendition against the source, both brought to `at`. */
export interface SsimComparison {
  /** The rendition's media playlist (or any file ffmpeg reads). */
  distorted: string;
  /** Size and frame rate the two are compared at; the rendition is scaled only when it differs. */
  at: { widthPx: number; heightPx: number; frameRate: string };
  /** The rendition's own size, to tell whether it needs scaling. */
  distortedSize: { widthPx: number; heightPx: number };
}

/**
 * SSIM (ffmpeg's `ssim` filter, the mean over every frame of the Y, U and V planes weighted 4:1:1,
 * its "All") of each comparison, in one ffmpeg process: the source is decoded once, split, and
 * scaled to each comparison's size with `scale` (bicubic, the filter the ladder itself scales with)
 * and frame rate; a rendition smaller or larger than `at` is scaled the same way.
 */
export async function ssimAgainstSource(source: string, comparisons: SsimComparison[]): Promise<number[]> {
  if (comparisons.length === 0) return [];
  const n = comparisons.length;
  const inputs = comparisons.flatMap((c) => ['-i', c.distorted]);
  const graph = [
    `[0:v:0]split=${n}${comparisons.map((_, i) => `[src${i}]`).join('')}`,
    ...comparisons.map((c, i) => {
      const size = `${c.at.widthPx}:${c.at.heightPx}`;
      const same = c.distortedSize.widthPx === c.at.widthPx && c.distortedSize.heightPx === c.at.heightPx;
      const distorted = `[${i + 1}:v:0]${same ? '' : `scale=${size},`}fps=${c.at.frameRate},setsar=1[d${i}]`;
      const reference = `[src${i}]fps=${c.at.frameRate},scale=${size},setsar=1[r${i}]`;
      // A named instance, so its summary line can be told from the others'.
      return `${distorted};${reference};[d${i}][r${i}]ssim@c${i}[o${i}]`;
    }),
  ].join(';');
  const { stderr } = await run(
    'ffmpeg',
    [
      '-hide_banner',
      '-nostdin',
      '-nostats',
      // Info level: the ssim filter prints its summary at that level when the graph closes.
      '-v',
      'info',
      '-i',
      source,
      ...inputs,
      '-filter_complex',
      graph,
      ...comparisons.flatMap((_, i) => ['-map', `[o${i}]`]),
      '-f',
      'null',
      '-',
    ],
    RUN,
  );
  return comparisons.map((_, i) => {
    const all = new RegExp(`\\[ssim@c${i} @ [^\\]]+\\] SSIM .*All:([\\d.]+)`).exec(stderr)?.[1];
    if (all === undefined) throw new Error(`no SSIM summary for comparison ${i} in: ${stderr.slice(-500)}`);
    return Number(all);
  });
}
