import { describe, expect, it } from 'vitest';
import { checkKind, keyedJobId, parsePortId, portId, statusOf } from './bullmq-mapping.js';

describe('BullMQ id and status mapping', () => {
  it('round-trips a port id, kinds with slashes included', () => {
    expect(parsePortId(portId('pipeline.run', 'job_01ABC'))).toEqual({
      kind: 'pipeline.run',
      bullId: 'job_01ABC',
    });
    expect(parsePortId(portId('a/b', 'key_x'))).toEqual({ kind: 'a/b', bullId: 'key_x' });
  });

  it('refuses ids that no enqueue made', () => {
    for (const id of ['', 'nokind', '/job_1', 'kind/', 'a:b/job_1']) expect(parsePortId(id)).toBeUndefined();
  });

  it('derives one BullMQ id per deduplication key, without the characters BullMQ refuses', () => {
    const id = keyedJobId('chunk:run_1:3');
    expect(id).toBe(keyedJobId('chunk:run_1:3'));
    expect(id).not.toBe(keyedJobId('chunk:run_1:4'));
    expect(id).toMatch(/^key_[A-Za-z0-9_-]{43}$/);
  });

  it('refuses kinds BullMQ cannot name a queue after', () => {
    expect(() => checkKind('pipeline:run')).toThrow(TypeError);
    expect(() => checkKind('')).toThrow(TypeError);
    expect(() => checkKind('pipeline.run')).not.toThrow();
  });

  it("maps BullMQ's states onto the port's statuses", () => {
    expect(statusOf('prioritized')).toBe('waiting');
    expect(statusOf('waiting-children')).toBe('waiting');
    expect(statusOf('delayed')).toBe('delayed');
    expect(statusOf('failed')).toBe('dead');
    expect(statusOf('unknown')).toBeUndefined();
  });
});
