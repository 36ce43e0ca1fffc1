// Storyboards for scrubbing: small frames every N seconds tiled into sprite sheets, and a WebVTT
// track whose cues point into the sheets with `#xywh=` (the form Mux's storyboard.vtt uses and
// most players read). Pure planning and VTT writing; the frames come from ffmpeg later.

export interface StoryboardOptions {
  /** Most tiles in the whole storyboard; the interval grows with the duration to stay under it. @default 200 */
  maxTiles: number;
  /** Shortest and longest interval between tiles, seconds. @default 1, 60 */
  minIntervalSec: number;
  maxIntervalSec: number;
  /** Tile width in pixels (height from the aspect ratio, even). @default 160 */
  tileWidth: number;
  /** Tiles per row and rows per sheet: a sheet holds columns x rows tiles. @default 10 x 10 */
  columns: number;
  rows: number;
}

export const DEFAULT_STORYBOARD_OPTIONS: StoryboardOptions = Object.freeze({
  maxTiles: 200,
  minIntervalSec: 1,
  maxIntervalSec: 60,
  tileWidth: 160,
  columns: 10,
  rows: 10,
});

export interface StoryboardSheet {
  index: number;
  /** Tiles on this sheet (the last one may be partly filled). */
  tiles: number;
  /** Pixel size of the sheet image: only the rows it uses. */
  width: number;
  height: number;
}

export interface StoryboardPlan {
  intervalSec: number;
  tileWidth: number;
  tileHeight: number;
  columns: number;
  rows: number;
  /** Tile i shows the frame at i x intervalSec. */
  tileCount: number;
  sheets: StoryboardSheet[];
  durationSec: number;
}

/**
 * Tiles every `intervalSec` seconds, where the interval is the smallest whole number of seconds
 * (within the bounds) that keeps the tile count at most `maxTiles`. Throws for a non-positive
 * duration or size.
 */
export function planStoryboard(
  source: { durationSec: number; width: number; height: number },
  options: StoryboardOptions = DEFAULT_STORYBOARD_OPTIONS,
): StoryboardPlan {
  const { durationSec, width, height } = source;
  if (!(durationSec > 0) || !(width > 0) || !(height > 0)) {
    throw new RangeError(
      `A storyboard needs a positive duration and size; got ${durationSec} s, ${width}x${height}.`,
    );
  }
  const wanted = Math.ceil(durationSec / options.maxTiles);
  const intervalSec = Math.min(options.maxIntervalSec, Math.max(options.minIntervalSec, wanted));
  const tileCount = Math.max(1, Math.ceil(durationSec / intervalSec));
  const tileWidth = options.tileWidth;
  const tileHeight = Math.max(2, Math.round((tileWidth * height) / width / 2) * 2);
  const perSheet = options.columns * options.rows;
  const sheets: StoryboardSheet[] = [];
  for (let first = 0, index = 0; first < tileCount; first += perSheet, index++) {
    const tiles = Math.min(perSheet, tileCount - first);
    const usedRows = Math.ceil(tiles / options.columns);
    sheets.push({
      index,
      tiles,
      width: Math.min(tiles, options.columns) * tileWidth,
      height: usedRows * tileHeight,
    });
  }
  return {
    intervalSec,
    tileWidth,
    tileHeight,
    columns: options.columns,
    rows: options.rows,
    tileCount,
    sheets,
    durationSec,
  };
}

/** Where tile `i` is: its sheet and pixel rectangle on it. */
export function tilePosition(
  plan: StoryboardPlan,
  i: number,
): { sheet: number; x: number; y: number; w: number; h: number } {
  const perSheet = plan.columns * plan.rows;
  const onSheet = i % perSheet;
  return {
    sheet: Math.floor(i / perSheet),
    x: (onSheet % plan.columns) * plan.tileWidth,
    y: Math.floor(onSheet / plan.columns) * plan.tileHeight,
    w: plan.tileWidth,
    h: plan.tileHeight,
  };
}

/** `HH:MM:SS.mmm`, as WebVTT wants (hours always present). */
export function vttTimestamp(seconds: number): string {
  const ms = Math.round(seconds * 1000);
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  const rest = ms % 1000;
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${pad(h)}:${pad(m)}:${pad(s)}.${pad(rest, 3)}`;
}

/**
 * The WebVTT track: one cue per tile, from its time to the next tile's (the last one to the end),
 * with `<sheet URL>#xywh=x,y,w,h`. Cues cover [0, duration] without gaps.
 */
export function storyboardVtt(plan: StoryboardPlan, sheetUrl: (sheet: number) => string): string {
  const lines = ['WEBVTT', ''];
  for (let i = 0; i < plan.tileCount; i++) {
    const start = i * plan.intervalSec;
    const end = Math.min(plan.durationSec, (i + 1) * plan.intervalSec);
    const { sheet, x, y, w, h } = tilePosition(plan, i);
    lines.push(
      `${vttTimestamp(start)} --> ${vttTimestamp(end)}`,
      `${sheetUrl(sheet)}#xywh=${x},${y},${w},${h}`,
      '',
    );
  }
  return lines.join('\n');
}
