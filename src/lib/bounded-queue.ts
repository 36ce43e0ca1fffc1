/** Thrown by `BoundedQueue.run` when every slot is busy and the waiting line is full. */
export class QueueFullError extends Error {
  constructor(
    readonly running: number,
    readonly waiting: number,
  ) {
    super(`The queue is full (${running} running, ${waiting} waiting).`);
    this.name = 'QueueFullError';
  }
}

export interface BoundedQueueOptions {
  /** Tasks run at once; at least 1. */
  concurrency: number;
  /** Tasks that may wait for a slot; 0 = none wait (a task runs at once or is refused). */
  maxWaiting: number;
  /** Called whenever `running` or `waiting` changes (for gauges). */
  onChange?: ((state: { running: number; waiting: number }) => void) | undefined;
}

/**
 * A concurrency limiter with a bounded waiting line: at most `concurrency` tasks run, at most
 * `maxWaiting` wait (first in, first out), and anything beyond is refused at once with
 * `QueueFullError` instead of piling up in memory.
 */
export class BoundedQueue {
  private active = 0;
  private readonly line: Array<() => void> = [];
  private readonly concurrency: number;
  private readonly maxWaiting: number;
  private readonly onChange: BoundedQueueOptions['onChange'];

  constructor(options: BoundedQueueOptions) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
      throw new TypeError(`concurrency must be a whole number >= 1; got ${String(options.concurrency)}.`);
    }
    if (!Number.isInteger(options.maxWaiting) || options.maxWaiting < 0) {
      throw new TypeError(`maxWaiting must be a whole number >= 0; got ${String(options.maxWaiting)}.`);
    }
    this.concurrency = options.concurrency;
    this.maxWaiting = options.maxWaiting;
    this.onChange = options.onChange;
  }

  get running(): number {
    return this.active;
  }

  get waiting(): number {
    return this.line.length;
  }

  /** Runs `task` when a slot is free; rejects with `QueueFullError` at once when none can be had. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.concurrency) {
      if (this.line.length >= this.maxWaiting) throw new QueueFullError(this.active, this.line.length);
      await new Promise<void>((resolve) => {
        this.line.push(resolve);
        this.changed();
      });
      // The slot was handed over by `release` (active was not decremented for us).
    } else {
      this.active++;
      this.changed();
    }
    try {
      return await task();
    } finally {
      this.release();
    }
  }

  private release(): void {
    const next = this.line.shift();
    if (next)
      next(); // the finished task's slot passes straight to the next in line
    else this.active--;
    this.changed();
  }

  private changed(): void {
    this.onChange?.({ running: this.active, waiting: this.line.length });
  }
}
