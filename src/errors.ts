/**
 * One error type for everything a user can act on. `code` is stable (clients and tests match on
 * it), `status` is the HTTP status the problem body carries, `message` is safe to show a user.
 * `cause` keeps the internal detail for the logs only.
 */
export const ErrorCodes = {
  // request / input
  VALIDATION_FAILED: 400,
  QUERY_INVALID: 400,
  URL_INVALID: 400,
  CURSOR_INVALID: 400,
  FILE_FIELD_MISSING: 400,
  FILE_EMPTY: 400,
  BODY_INVALID: 400,
  CONTENT_TYPE_UNSUPPORTED: 415,
  PROJECT_INVALID: 400,
  RANGE_NOT_SATISFIABLE: 416,
  UPLOAD_TOO_LARGE: 413,
  MEDIA_UNSUPPORTED: 415,
  MEDIA_INVALID: 422,
  IMAGE_TOO_LARGE: 422,
  NOT_FOUND: 404,
  PROJECT_NOT_FOUND: 404,
  PROJECT_EXISTS: 409,
  UPLOAD_NOT_FOUND: 404,
  UPLOAD_CONFLICT: 409,
  DUPLICATE_ASSET: 409,
  CHECKSUM_MISMATCH: 460,
  QUOTA_EXCEEDED: 413,
  TYPE_NOT_ALLOWED: 422,
  DURATION_TOO_LONG: 422,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  SIGNATURE_INVALID: 403,
  RATE_LIMITED: 429,
  ASSET_NOT_FOUND: 404,
  BLOB_NOT_FOUND: 404,
  ROUTE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  KEY_INVALID: 400,
  TRANSFORM_INVALID: 400,
  NOT_AN_IMAGE: 422,
  HASH_UNAVAILABLE: 409,
  /** The encoded stream failed validation (or the source turned out damaged while decoding it). */
  PACKAGE_INVALID: 422,
  STREAM_TOKEN_INVALID: 403,
  /** The asset has no stream package to check or deliver (not a ready video or audio). */
  STREAM_UNAVAILABLE: 409,
  // server side
  CONFIG_INVALID: 500,
  UNAVAILABLE: 503,
  SHUTTING_DOWN: 503,
  INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = options?.status ?? ErrorCodes[code];
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

/** The message of any thrown value, for logs and stored failure reasons. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
