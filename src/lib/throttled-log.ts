/** Anything with pino's warn/error signature. */
export interface WarnErrorLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * Logs errors of one source at most once per window, with the number left out since the last
 * line: a worker whose database is restarting fails every fetch, and BullMQ emits each one.
 */
export class ThrottledLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: WarnErrorLogger,
    private readonly windowMs: number,
  ) {}

  report(level: 'warn' | 'error', source: string, obj: object, msg: string): void {
    const now = Date.now();
    const entry = this.last.get(source);
    if (entry && now - entry.at < this.windowMs) {
      entry.suppressed++;
      return;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.last.set(source, { at: now, suppressed: 0 });
    this.logger[level](suppressed > 0 ? { ...obj, source, suppressed } : { ...obj, source }, msg);
  }
}
