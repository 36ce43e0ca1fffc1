import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from './cursor.js';
import { newId } from './ids.js';

describe('cursor', () => {
  it('round-trips an asset id', () => {
    const id = newId('ast');
    expect(decodeCursor(encodeCursor(id))).toBe(id);
  });

  it.each([
    '',
    '!!!',
    'zzz',
    Buffer.from('{"b":"run_01ARZ3NDEKTSV4RRFFQ69G5FAV"}').toString('base64url'),
    Buffer.from('{"b":42}').toString('base64url'),
    Buffer.from('not json').toString('base64url'),
    'A'.repeat(500),
  ])('rejects %j with CURSOR_INVALID', (cursor) => {
    expect(() => decodeCursor(cursor)).toThrow(
      expect.objectContaining({ code: 'CURSOR_INVALID', status: 400 }),
    );
  });
});
