import { AppError } from '../errors.js';

/** S3's part numbers, which every adapter of the port follows. */
export const MIN_PART_NUMBER = 1;
export const MAX_PART_NUMBER = 10_000;

export function assertPartNumber(partNumber: number): void {
  if (!Number.isInteger(partNumber) || partNumber < MIN_PART_NUMBER || partNumber > MAX_PART_NUMBER) {
    throw new AppError(
      'VALIDATION_FAILED',
      `Part number ${String(partNumber)} is not an integer from ${MIN_PART_NUMBER} to ${MAX_PART_NUMBER}.`,
    );
  }
}

/** The list given to complete: at least one part, valid numbers, strictly increasing, with etags. */
export function checkPartList(
  parts: ReadonlyArray<{ partNumber: number; etag: string }>,
): ReadonlyArray<{ partNumber: number; etag: string }> {
  if (!Array.isArray(parts) || parts.length === 0) {
    throw new AppError('VALIDATION_FAILED', 'Completing an upload needs the list of its parts.');
  }
  if (parts.length > MAX_PART_NUMBER) {
    throw new AppError('VALIDATION_FAILED', `An upload has at most ${MAX_PART_NUMBER} parts.`);
  }
  let previous = 0;
  for (const part of parts) {
    const partNumber = part?.partNumber;
    assertPartNumber(partNumber);
    if (partNumber <= previous) {
      throw new AppError(
        'VALIDATION_FAILED',
        `Part ${String(partNumber)} is listed after part ${previous}: list parts in strictly increasing order.`,
      );
    }
    if (typeof part.etag !== 'string' || part.etag === '') {
      throw new AppError('VALIDATION_FAILED', `Part ${String(partNumber)} is listed without its etag.`);
    }
    previous = partNumber;
  }
  return parts;
}
