import type { X264Preset } from '../../src/media/ladder-encode.js';

/** What every section of bench/video.ts gets. */
export interface VideoBenchContext {
  /** A scratch directory of its own run, removed when the bench ends. */
  work: string;
  /** The x264 preset every side of every section encodes with. */
  preset: X264Preset;
  /** How many times a timed side runs (medians are printed). */
  rounds: number;
}

/** One lettered part of the video bench: what it prints into bench/RESULTS.md. */
export interface VideoBenchSection {
  title: string;
  run(ctx: VideoBenchContext): Promise<{
    /** Markdown: how it was measured and the figures (a `###` heading first). */
    body: string[];
    /** One line per headline figure, `(x) what: **value** (aim ...)`, listed together at the end. */
    bullets: string[];
  }>;
}
