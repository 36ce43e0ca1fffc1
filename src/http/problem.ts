import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type ErrorCode, isAppError } from '../errors.js';
import { isOutage } from '../lib/outage.js';

/** RFC 9457 problem details, plus our stable `code`. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  instance?: string;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function problemFor(err: AppError, instance?: string): Problem {
  return {
    type: `/docs/problems#${err.code.toLowerCase().replaceAll('_', '-')}`,
    title: TITLES[err.status] ?? 'Error',
    status: err.status,
    detail: err.message,
    code: err.code,
    ...(instance ? { instance } : {}),
  };
}

// Fastify and plugin errors that are the client's doing, mapped to our codes.
const FRAMEWORK_CODES: Record<string, ErrorCode> = {
  FST_REQ_FILE_TOO_LARGE: 'UPLOAD_TOO_LARGE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'UPLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'CONTENT_TYPE_UNSUPPORTED',
  FST_INVALID_MULTIPART_CONTENT_TYPE: 'CONTENT_TYPE_UNSUPPORTED',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BODY_INVALID',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BODY_INVALID',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BODY_INVALID',
  FST_FILES_LIMIT: 'BODY_INVALID',
  FST_PARTS_LIMIT: 'BODY_INVALID',
  FST_FIELDS_LIMIT: 'BODY_INVALID',
  FST_PROTO_VIOLATION: 'BODY_INVALID',
  FST_ERR_BAD_URL: 'URL_INVALID',
  FST_ERR_ASYNC_CONSTRAINT: 'VALIDATION_FAILED',
};

/** Seconds a client should wait before retrying after a 503. */
const RETRY_AFTER_SEC = '5';

/** Any thrown value as an AppError: known client errors keep a 4xx code, the rest is INTERNAL. */
export function toAppError(err: unknown): AppError {
  if (isAppError(err) && !(err.code === 'INTERNAL' && isOutage(err.cause))) return err;
  if (isOutage(err)) {
    return new AppError(
      'UNAVAILABLE',
      'A service assetpipe depends on (its database, queue or object store) cannot be reached right now; nothing was lost, retry shortly.',
      { cause: err },
    );
  }
  const fe = err as Partial<FastifyError> & { validationContext?: string };
  if (fe && Array.isArray(fe.validation)) {
    const where = fe.validationContext ?? 'request';
    const code: ErrorCode = where === 'querystring' ? 'QUERY_INVALID' : 'VALIDATION_FAILED';
    const detail = fe.validation
      .map(
        (v) =>
          `${where}${v.instancePath ? v.instancePath.replaceAll('/', '.') : ''} ${v.message ?? 'is invalid'}`,
      )
      .join('; ');
    return new AppError(code, `Invalid ${where}: ${detail}.`, { cause: err });
  }
  const code = fe?.code ? FRAMEWORK_CODES[fe.code] : undefined;
  if (code) {
    const message =
      code === 'UPLOAD_TOO_LARGE'
        ? 'The upload is larger than this server accepts (ASSETPIPE_MAX_UPLOAD_BYTES).'
        : code === 'CONTENT_TYPE_UNSUPPORTED'
          ? 'Unsupported request Content-Type for this endpoint.'
          : (fe.message ?? 'Invalid request.');
    return new AppError(code, message, { cause: err });
  }
  // busboy reports a body that ends before its closing boundary (a client that hung up mid-upload).
  if (
    err instanceof Error &&
    /Unexpected end of (form|multipart data)|Malformed part header|boundary/i.test(err.message)
  ) {
    return new AppError('BODY_INVALID', 'The multipart body is malformed or ended early.', { cause: err });
  }
  if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new AppError('VALIDATION_FAILED', fe.message ?? 'Invalid request.', {
      cause: err,
      status: fe.statusCode,
    });
  }
  return new AppError('INTERNAL', 'Something went wrong on our side; the error has been logged.', {
    cause: err,
  });
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const appError = toAppError(err);
  if (appError.status >= 500) request.log.error({ err: appError.cause ?? appError }, 'request failed');
  else request.log.info({ code: appError.code, detail: appError.message }, 'request refused');
  // A 503 is temporary by definition here (an outage, a full queue, a shutdown): say when to retry.
  if (appError.status === 503 && !reply.hasHeader('retry-after'))
    reply.header('retry-after', RETRY_AFTER_SEC);
  return reply
    .code(appError.status)
    .type('application/problem+json; charset=utf-8')
    .send(problemFor(appError, request.url.split('?')[0]));
}
