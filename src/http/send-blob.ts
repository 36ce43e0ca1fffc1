import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { decideRange, etagMatches, quoteEtag } from '../domain/http-range.js';
import { AppError } from '../errors.js';
import type { BlobInfo, ByteRange } from '../storage/blob-store.js';

export interface BlobResponse {
  info: BlobInfo;
  open: (range?: ByteRange) => Promise<Readable>;
  /** The whole object in memory, when the caller has it: sent as is instead of opening a stream. */
  bytes?: Buffer | undefined;
  contentType: string;
  cacheControl: string;
  /** Sets `Content-Disposition: attachment` with this name when given. */
  downloadName?: string | undefined;
}

/** Serves stored bytes with ETag/304, single byte ranges (206/416) and HEAD support. */
export async function sendBlob(
  request: FastifyRequest,
  reply: FastifyReply,
  blob: BlobResponse,
): Promise<FastifyReply> {
  const etag = quoteEtag(blob.info.etag);
  reply.header('etag', etag);
  reply.header('cache-control', blob.cacheControl);
  reply.header('accept-ranges', 'bytes');
  reply.header('last-modified', blob.info.lastModified.toUTCString());
  reply.header('x-content-type-options', 'nosniff');
  if (blob.downloadName) {
    reply.header(
      'content-disposition',
      `attachment; filename*=UTF-8''${encodeURIComponent(blob.downloadName)}`,
    );
  }
  if (etagMatches(request.headers['if-none-match'], blob.info.etag)) {
    return reply.code(304).send();
  }
  const rangeHeader = request.headers.range;
  const decision = decideRange(typeof rangeHeader === 'string' ? rangeHeader : undefined, blob.info.size);
  if (decision.kind === 'unsatisfiable') {
    reply.header('content-range', `bytes */${blob.info.size}`);
    // The problem answer must not be cached as if it were the (immutable) file.
    reply.header('cache-control', 'no-store');
    throw new AppError(
      'RANGE_NOT_SATISFIABLE',
      `The requested range is outside the ${blob.info.size} bytes of this file.`,
    );
  }
  // SVG can carry script: never hand it to a browser as a document, only as a download.
  reply.type(blob.contentType === 'image/svg+xml' ? 'application/octet-stream' : blob.contentType);
  if (decision.kind === 'partial') {
    reply.code(206);
    reply.header('content-range', `bytes ${decision.start}-${decision.end}/${blob.info.size}`);
    reply.header('content-length', String(decision.end - decision.start + 1));
    if (request.method === 'HEAD') return reply.send();
    if (blob.bytes) return reply.send(blob.bytes.subarray(decision.start, decision.end + 1));
    return reply.send(await blob.open({ start: decision.start, end: decision.end }));
  }
  reply.header('content-length', String(blob.info.size));
  if (request.method === 'HEAD') return reply.send();
  if (blob.bytes) return reply.send(blob.bytes);
  return reply.send(await blob.open());
}
