import pino, { type Logger } from 'pino';
import type { Config } from './config.js';

/** Structured JSON logs; request, asset and run ids are added by child loggers where known. */
export function createLogger(
  config: Pick<Config, 'logLevel'>,
  options: { stream?: 'stdout' | 'stderr' } = {},
): Logger {
  return pino(
    { level: config.logLevel, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: options.stream === 'stderr' ? 2 : 1, sync: false }),
  );
}
