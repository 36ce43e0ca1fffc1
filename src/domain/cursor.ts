import { AppError } from '../errors.js';
import { isId } from './ids.js';

// Cursors are opaque to clients (so their shape can change) but carry no secret: base64url JSON.

export function encodeCursor(beforeId: string): string {
  return Buffer.from(JSON.stringify({ b: beforeId }), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): string {
  const invalid = () =>
    new AppError(
      'CURSOR_INVALID',
      'The cursor is not valid; pass the nextCursor value of a previous page unchanged.',
    );
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(cursor)) throw invalid();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  const id = typeof parsed === 'object' && parsed !== null ? (parsed as { b?: unknown }).b : undefined;
  if (typeof id !== 'string' || !isId(id, 'ast')) throw invalid();
  return id;
}
