import { describe, expect, it } from 'vitest';
import { assertValidKey, keyProblem, originalKey, stepOutputKey } from './keys.js';

describe('keyProblem', () => {
  it.each(['a', 'originals/ast_1/v1/original', 'derived/x/v2/thumbnail/thumb.webp', 'ünïcødé/ファイル'])(
    'accepts %j',
    (key) => {
      expect(keyProblem(key)).toBeUndefined();
    },
  );

  it.each([
    ['', 'empty'],
    ['../etc/passwd', '".."'],
    ['a/../../b', '".."'],
    ['./a', '"."'],
    ['/etc/passwd', 'absolute'],
    ['C:/windows', 'absolute'],
    ['a\\..\\b', 'backslash'],
    ['a//b', 'empty path segment'],
    ['a/', 'empty path segment'],
    ['nul\u0000byte', 'control'],
    ['new\nline', 'control'],
    ['del\u007f', 'control'],
    ['x'.repeat(1025), 'longer'],
  ])('rejects %j (%s)', (key, why) => {
    expect(keyProblem(key)).toContain(why);
    expect(() => assertValidKey(key)).toThrow(expect.objectContaining({ code: 'KEY_INVALID' }));
  });
});

describe('derived keys', () => {
  it('never contain user input and always pass validation', () => {
    const keys = [originalKey('upl_01ABC'), stepOutputKey('ast_01ABC', 3, 'thumbnail', 'thumbnail')];
    expect(keys).toEqual(['originals/upl_01ABC', 'derived/ast_01ABC/v3/thumbnail/thumbnail']);
    for (const key of keys) expect(keyProblem(key)).toBeUndefined();
  });
});
