/** A one-line progress bar on a terminal; silent when the stream is not a TTY (logs, pipes, CI). */
export class ProgressBar {
  private lastRender = 0;
  private readonly enabled: boolean;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly total: number,
    private readonly label: string,
  ) {
    this.enabled = Boolean(stream.isTTY) && total > 0;
  }

  update(done: number, suffix = '', force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.lastRender < 100) return;
    this.lastRender = now;
    const width = Math.max(10, Math.min(40, (this.stream.columns ?? 80) - 40 - suffix.length));
    const filled = Math.round((done / this.total) * width);
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    this.stream.write(`\r${this.label} [${bar}] ${done}/${this.total} ${suffix}\u001b[K`);
  }

  /** Clears the bar so that a normal line can be printed. */
  clear(): void {
    if (this.enabled) this.stream.write('\r\u001b[K');
  }

  done(): void {
    if (this.enabled) this.stream.write('\n');
  }
}
