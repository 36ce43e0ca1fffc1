import { describe, expect, it } from 'vitest';
import { BoundedQueue, QueueFullError } from './bounded-queue.js';

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((res) => {
    resolve = res;
  });
  return { promise, resolve };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('BoundedQueue', () => {
  it('runs at most `concurrency` tasks, queues up to `maxWaiting`, refuses the rest', async () => {
    const states: string[] = [];
    const queue = new BoundedQueue({
      concurrency: 2,
      maxWaiting: 1,
      onChange: ({ running, waiting }) => states.push(`${running}/${waiting}`),
    });
    const gates = [deferred(), deferred(), deferred()];
    const started: number[] = [];
    const runs = gates.map((gate, i) =>
      queue.run(async () => {
        started.push(i);
        await gate.promise;
        return i;
      }),
    );
    await tick();
    expect(started).toEqual([0, 1]);
    expect(queue.running).toBe(2);
    expect(queue.waiting).toBe(1);
    await expect(queue.run(async () => 99)).rejects.toBeInstanceOf(QueueFullError);

    gates[0]?.resolve();
    expect(await runs[0]).toBe(0);
    await tick();
    expect(started).toEqual([0, 1, 2]);
    expect(queue.waiting).toBe(0);
    gates[1]?.resolve();
    gates[2]?.resolve();
    expect(await Promise.all(runs)).toEqual([0, 1, 2]);
    expect(queue.running).toBe(0);
    expect(states.at(-1)).toBe('0/0');
    expect(states).toContain('2/1');
  });

  it('with maxWaiting 0, refuses as soon as every slot is busy; a failing task frees its slot', async () => {
    const queue = new BoundedQueue({ concurrency: 1, maxWaiting: 0 });
    const gate = deferred();
    const held = queue.run(() => gate.promise);
    await expect(queue.run(async () => 1)).rejects.toThrow(/queue is full \(1 running, 0 waiting\)/);
    gate.resolve();
    await held;
    await expect(
      queue.run(async () => {
        throw new Error('task failed');
      }),
    ).rejects.toThrow('task failed');
    expect(queue.running).toBe(0);
    expect(await queue.run(async () => 'free again')).toBe('free again');
  });

  it('refuses nonsensical options with a message that says what was expected', () => {
    expect(() => new BoundedQueue({ concurrency: 0, maxWaiting: 1 })).toThrow(/concurrency must be/);
    expect(() => new BoundedQueue({ concurrency: 1, maxWaiting: -1 })).toThrow(/maxWaiting must be/);
  });
});
