import { describe, expect, it } from 'vitest';
import { SingleFlight } from './single-flight.js';

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('SingleFlight', () => {
  it('runs the work once for concurrent calls with the same key and shares the result', async () => {
    const flights = new SingleFlight<string>();
    const gate = deferred<string>();
    let calls = 0;
    const work = () => {
      calls++;
      return gate.promise;
    };
    const first = flights.run('a', work);
    const second = flights.run('a', work);
    const other = flights.run('b', async () => 'b');
    expect(first.shared).toBe(false);
    expect(second.shared).toBe(true);
    expect(other.shared).toBe(false);
    gate.resolve('done');
    expect(await first.result).toBe('done');
    expect(await second.result).toBe('done');
    expect(await other.result).toBe('b');
    expect(calls).toBe(1);
    expect(flights.size).toBe(0);
  });

  it('forgets a failure, so the next call runs the work again', async () => {
    const flights = new SingleFlight<number>();
    const failed = flights.run('k', async () => {
      throw new Error('boom');
    });
    const joined = flights.run('k', async () => 2);
    await expect(failed.result).rejects.toThrow('boom');
    await expect(joined.result).rejects.toThrow('boom');
    const again = flights.run('k', async () => 3);
    expect(again.shared).toBe(false);
    expect(await again.result).toBe(3);
  });

  it('turns a synchronous throw into a rejection', async () => {
    const flights = new SingleFlight<number>();
    const { result } = flights.run('k', () => {
      throw new Error('sync');
    });
    await expect(result).rejects.toThrow('sync');
    expect(flights.size).toBe(0);
  });
});
