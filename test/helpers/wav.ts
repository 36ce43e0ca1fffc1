import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** 16-bit stereo PCM at 48 kHz: the byte rate of every WAV the tests and benchmarks make. */
export const WAV_BYTE_RATE = 48_000 * 2 * 2;

/**
 * A canonical 44-byte PCM WAVE header announcing `dataBytes` of samples. Whatever follows it is a
 * valid (noisy) audio file, so large generated uploads pass content sniffing and ffprobe.
 */
export function wavHeader(dataBytes: number): Buffer {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'ascii');
  h.writeUInt32LE(Math.min(36 + dataBytes, 0xffffffff), 4);
  h.write('WAVE', 8, 'ascii');
  h.write('fmt ', 12, 'ascii');
  h.writeUInt32LE(16, 16); // fmt chunk size
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(2, 22); // channels
  h.writeUInt32LE(48_000, 24); // sample rate
  h.writeUInt32LE(WAV_BYTE_RATE, 28);
  h.writeUInt16LE(4, 32); // block align
  h.writeUInt16LE(16, 34); // bits per sample
  h.write('data', 36, 'ascii');
  h.writeUInt32LE(Math.min(dataBytes, 0xffffffff), 40);
  return h;
}

/** A silent WAV of `seconds`. */
export function silentWav(seconds: number): Buffer {
  const data = Math.round(seconds * 48_000) * 4;
  return Buffer.concat([wavHeader(data), Buffer.alloc(data)]);
}

/**
 * Streams a WAV of exactly `size` bytes (header + pseudo-random samples, 1 MiB at a time) into
 * `path` without holding it in memory; returns its sha256.
 */
export async function writeWavFile(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  async function* chunks() {
    const header = wavHeader(size - 44);
    hash.update(header);
    yield header;
    for (let written = header.length; written < size; ) {
      const chunk = randomBytes(Math.min(1024 * 1024, size - written));
      hash.update(chunk);
      yield chunk;
      written += chunk.length;
    }
  }
  await pipeline(Readable.from(chunks()), createWriteStream(path));
  return hash.digest('hex');
}
