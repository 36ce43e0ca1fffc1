import { describe, expect, it } from 'vitest';
import { isId, newId, ulid } from './ids.js';

describe('ids', () => {
  it('are 26-character ULIDs with a prefix', () => {
    const id = newId('ast');
    expect(id).toMatch(/^ast_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(isId(id, 'ast')).toBe(true);
    expect(isId(id, 'run')).toBe(false);
    expect(isId('ast_../../etc')).toBe(false);
  });

  it('sort by creation time, also within one millisecond', () => {
    const ids = Array.from({ length: 1000 }, () => ulid(1_700_000_000_000));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(1000);
    expect(ulid(1_700_000_000_001) > ids[999]!).toBe(true);
  });
});
