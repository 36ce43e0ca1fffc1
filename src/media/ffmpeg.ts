import { spawn } from 'node:child_process';
import { toolEnv } from '../config.js';
import { AppError } from '../errors.js';

// The only module that spawns ffmpeg/ffprobe: argument arrays (never a shell), a timeout, and the
// tail of stderr attached to every error so a failure explains itself.

const STDERR_TAIL_BYTES = 4096;
// ffprobe's JSON for a hostile container (huge tags) could otherwise grow without bound.
const MAX_STDOUT_BYTES = 16 * 1024 * 1024;

export interface RunOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /**
   * Receives stdout as it arrives (UTF-8 text, split anywhere), e.g. ffmpeg's `-progress pipe:1`.
   * When set, stdout is streamed instead of collected: the result's `stdout` is empty and the
   * stdout cap does not apply (a long encode prints progress for hours).
   */
  onStdout?: ((chunk: string) => void) | undefined;
}

export class ToolError extends Error {
  constructor(
    message: string,
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderrTail: string,
  ) {
    super(message);
    this.name = 'ToolError';
  }
}

/**
 * Runs `tool` with `args` (no shell) and resolves with its stdout and the tail of its stderr.
 * Rejects with a {@link ToolError}: `exitCode` is the tool's own exit code, `null` when it could not
 * start, was killed by the timeout or the abort signal, or printed more than the stdout cap.
 */
export async function run(
  tool: string,
  args: readonly string[],
  options: RunOptions,
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: options.signal,
      env: toolEnv(),
    });
    const out: Buffer[] = [];
    let outBytes = 0;
    let overflow = false;
    let stderr = '';
    const onStdout = options.onStdout;
    if (onStdout !== undefined) child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: Buffer | string) => {
      if (onStdout !== undefined) {
        onStdout(chunk as string);
        return;
      }
      const bytes = chunk as Buffer;
      outBytes += bytes.length;
      if (outBytes > MAX_STDOUT_BYTES) {
        overflow = true;
        child.kill('SIGKILL');
        return;
      }
      out.push(bytes);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    const command = [tool, ...args].join(' ');
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ENOENT') {
        reject(
          new ToolError(
            `${tool} is not installed (install it with: apt-get install -y ffmpeg)`,
            command,
            null,
            '',
          ),
        );
      } else {
        reject(new ToolError(`${tool} could not run: ${err.message}`, command, null, stderr));
      }
    });
    child.once('close', (code, signalName) => {
      clearTimeout(timer);
      if (code === 0) {
        resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr });
        return;
      }
      const why = overflow
        ? `printed more than ${MAX_STDOUT_BYTES} bytes`
        : signalName === 'SIGKILL'
          ? `timed out after ${options.timeoutMs} ms`
          : `exited with code ${code}`;
      reject(
        new ToolError(
          `${tool} ${why}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`,
          command,
          code,
          stderr,
        ),
      );
    });
  });
}

export interface MediaProbe {
  durationSec: number | null;
  formatName: string;
  video: { codec: string; width: number; height: number } | null;
  audio: { codec: string; channels: number } | null;
}

interface FfprobeStream {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  channels?: number;
  disposition?: { attached_pic?: number };
}

interface FfprobeOutput {
  streams?: FfprobeStream[];
  format?: { format_name?: string; duration?: string };
}

/** ffprobe's view of a file: container, duration, first video and audio stream. */
export async function probeMedia(path: string, options: RunOptions): Promise<MediaProbe> {
  let stdout: string;
  try {
    ({ stdout } = await run(
      'ffprobe',
      ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', path],
      options,
    ));
  } catch (err) {
    if (err instanceof ToolError && err.exitCode !== null) {
      throw new AppError(
        'MEDIA_INVALID',
        `The file cannot be read as audio or video (${err.stderrTail.trim().split('\n').pop() ?? 'ffprobe failed'}).`,
        { cause: err },
      );
    }
    throw err;
  }
  const parsed = JSON.parse(stdout) as FfprobeOutput;
  const streams = parsed.streams ?? [];
  // Cover art in audio files is a "video" stream with the attached_pic disposition: not video.
  const video = streams.find((s) => s.codec_type === 'video' && !s.disposition?.attached_pic);
  const audio = streams.find((s) => s.codec_type === 'audio');
  const duration = Number(parsed.format?.duration);
  return {
    durationSec: Number.isFinite(duration) ? duration : null,
    formatName: parsed.format?.format_name ?? 'unknown',
    video: video
      ? { codec: video.codec_name ?? 'unknown', width: video.width ?? 0, height: video.height ?? 0 }
      : null,
    audio: audio ? { codec: audio.codec_name ?? 'unknown', channels: audio.channels ?? 0 } : null,
  };
}
