import { type RunOptions, run, ToolError } from './ffmpeg.js';
import { ffprobeFailure, parseFfprobeOutput, type VideoProbe } from './ffprobe-parse.js';

/** ffprobe's arguments for reading a file's container and streams as JSON. */
export function ffprobeArgs(path: string): string[] {
  return [
    // Errors only: warnings about odd but readable files would crowd the stderr tail.
    '-v',
    'error',
    // Input option: local files only. ffmpeg 5.1's HLS demuxer already limits a local playlist's
    // segments to file,crypto,data; this states the rule here instead of relying on that default.
    '-protocol_whitelist',
    'file',
    '-print_format',
    'json',
    '-show_format',
    '-show_streams',
    // `file:` keeps a name beginning with "-" or containing "proto:" from being read as anything else.
    '-i',
    `file:${path}`,
  ];
}

/**
 * Probes a video or audio file with ffprobe. A file ffprobe cannot open is refused with
 * `MEDIA_INVALID` and a reason a user understands; a timeout, an abort, a missing ffprobe or a
 * missing source file is a {@link ToolError} (worth a retry or an operator's attention, not the
 * user's fault).
 * Refusals that depend on the result (nothing decodable, too long) are `probeRefusal`'s.
 */
export async function probeVideo(path: string, options: RunOptions): Promise<VideoProbe> {
  const args = ffprobeArgs(path);
  let stdout: string;
  try {
    ({ stdout } = await run('ffprobe', args, options));
  } catch (err) {
    // A null exit code means ffprobe never ran to the end (not installed, killed, aborted).
    if (err instanceof ToolError && err.exitCode !== null) {
      // ffprobe names the input (the last argument) in its messages; the reason must not show it.
      const refusal = ffprobeFailure(err.stderrTail, args.at(-1) ?? path, err);
      if (refusal) throw refusal;
    }
    throw err;
  }
  return parseFfprobeOutput(JSON.parse(stdout));
}
