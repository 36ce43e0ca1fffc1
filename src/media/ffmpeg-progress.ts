// ffmpeg's `-progress pipe:1 -nostats` output: blocks of `key=value` lines, each block ended by
// `progress=continue` (or `progress=end` once). This turns the text stream into snapshots and a
// per cent of the expected duration, for run progress. Pure: feed it chunks as they arrive.

export interface ProgressSnapshot {
  /** Position in the output, seconds (from out_time_us; out_time_ms is microseconds too, despite its name). */
  outTimeSec: number | null;
  frame: number | null;
  fps: number | null;
  /** Encoding speed as a multiple of real time (`speed=2.5x`). */
  speed: number | null;
  /** True for the last block (`progress=end`). */
  end: boolean;
}

function number(text: string | undefined): number | null {
  if (text === undefined) return null;
  const value = Number.parseFloat(text);
  return Number.isFinite(value) ? value : null;
}

/** Splits chunks into lines (a line may span chunks) and yields a snapshot per finished block. */
export class ProgressParser {
  private pending = '';
  private block = new Map<string, string>();

  push(chunk: string): ProgressSnapshot[] {
    const snapshots: ProgressSnapshot[] = [];
    const lines = (this.pending + chunk).split('\n');
    this.pending = lines.pop() ?? '';
    for (const raw of lines) {
      const line = raw.trim();
      const at = line.indexOf('=');
      if (at <= 0) continue;
      const key = line.slice(0, at);
      const value = line.slice(at + 1);
      if (key !== 'progress') {
        this.block.set(key, value);
        continue;
      }
      const micros = number(this.block.get('out_time_us') ?? this.block.get('out_time_ms'));
      const speed = number(this.block.get('speed')?.replace(/x$/, ''));
      snapshots.push({
        // ffmpeg prints a negative or N/A time before the first frame is out.
        outTimeSec: micros === null || micros < 0 ? null : micros / 1e6,
        frame: number(this.block.get('frame')),
        fps: number(this.block.get('fps')),
        speed,
        end: value === 'end',
      });
      this.block = new Map();
    }
    return snapshots;
  }
}

/** Whole per cent of `durationSec` done (0-100); 100 only at the end block. */
export function progressPercent(snapshot: ProgressSnapshot, durationSec: number | null): number | null {
  if (snapshot.end) return 100;
  if (snapshot.outTimeSec === null || durationSec === null || !(durationSec > 0)) return null;
  return Math.max(0, Math.min(99, Math.floor((snapshot.outTimeSec / durationSec) * 100)));
}
