import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AssetRecord, getJson } from '../helpers/api.js';
import { AUTH } from '../helpers/auth.js';
import { ensureBuilt, ProcessGroup, waitFor } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { wavHeader } from '../helpers/wav.js';

const GiB = 1024 ** 3;
const CHUNK = 1024 * 1024;
const PEAK_RSS_LIMIT_BYTES = 200 * 1000 * 1000; // 200 MB

/** Peak resident set size since start (VmHWM), in bytes. */
async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(status);
  if (!match) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

interface Sent {
  status: number;
  body: unknown;
  bytesSent: number;
  sha256: string;
}

/**
 * POSTs a multipart/form-data body whose `file` part is `fileBytes` long (header first, then generated
 * samples), streamed in 1 MiB chunks with backpressure; hashes the file part while sending it.
 */
async function streamUpload(url: string, header: Buffer, fileBytes: number, filename: string): Promise<Sent> {
  const boundary = `----assetpipe-e2e-${randomBytes(12).toString('hex')}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: audio/wav\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const hash = createHash('sha256');
  // Generated samples: a random 1 MiB block, with a chunk counter stamped into each copy so no two chunks are equal.
  const block = randomBytes(CHUNK);

  const req = request(url, {
    method: 'POST',
    headers: {
      ...AUTH,
      'content-type': `multipart/form-data; boundary=${boundary}`,
      'content-length': String(head.length + fileBytes + tail.length),
    },
  });
  const response = new Promise<{ status: number; body: unknown }>((resolve, reject) => {
    req.once('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (part: Buffer) => parts.push(part));
      res.once('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
        } catch {
          resolve({ status: res.statusCode ?? 0, body: text });
        }
      });
      res.once('error', reject);
    });
    req.once('error', reject);
  });
  // Keep the rejection observed while we are still writing.
  response.catch(() => undefined);

  const write = async (bytes: Buffer) => {
    if (!req.write(bytes)) await once(req, 'drain');
  };

  let sent = 0;
  await write(head);
  hash.update(header);
  await write(header);
  sent += header.length;
  for (let index = 0; sent < fileBytes; index++) {
    const size = Math.min(CHUNK, fileBytes - sent);
    // A fresh buffer per chunk: a buffer handed to write() must not change until it is flushed.
    const chunk = Buffer.allocUnsafe(size);
    block.copy(chunk, 0, 0, size);
    if (size >= 8) chunk.writeBigUInt64LE(BigInt(index), 0);
    hash.update(chunk);
    await write(chunk);
    sent += size;
  }
  req.end(tail);
  const { status, body } = await response;
  return { status, body, bytesSent: sent, sha256: hash.digest('hex') };
}

describe('a 1 GiB upload is streamed, not buffered', () => {
  const procs = new ProcessGroup();
  let parent: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => {
    await ensureBuilt();
    parent = await tempDir('assetpipe-e2e-big-');
  }, 300_000);

  afterEach(async () => {
    await procs.killAll();
  });

  afterAll(async () => {
    await procs.killAll();
    await parent?.cleanup();
  });

  it('stores a 1 GiB WAV with the right size and sha256 while the server stays under 200 MB peak RSS', async () => {
    const server = await procs.serve(join(parent.dir, 'data'), { cwd: parent.dir });
    const header = wavHeader(GiB - 44);

    const sent = await streamUpload(`${server.baseUrl}/v1/assets`, header, GiB, 'big.wav');
    expect(sent.status, JSON.stringify(sent.body)).toBe(201);
    const asset = sent.body as AssetRecord;
    expect(sent.bytesSent).toBe(GiB);
    expect(asset.size).toBe(sent.bytesSent);
    expect(asset.sha256).toBe(sent.sha256);
    expect(asset.type).toBe('audio');

    const peakAfterUpload = await peakRss(server.child.pid);
    expect(
      peakAfterUpload,
      `peak RSS after the upload: ${(peakAfterUpload / 1e6).toFixed(1)} MB`,
    ).toBeLessThan(PEAK_RSS_LIMIT_BYTES);

    // The stored original has the full length.
    const head = await fetch(`${server.baseUrl}/v1/assets/${asset.id}/original`, {
      headers: AUTH,
      method: 'HEAD',
      signal: AbortSignal.timeout(15_000),
    });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBe(GiB);

    // Processing (a copy of the original to scratch, ffprobe, then 93 minutes of audio encoded to
    // an audio-only HLS of ~930 segments) does not buffer it either.
    const done = await waitFor(
      async () => {
        const { body } = await getJson<AssetRecord>(`${server.baseUrl}/v1/assets/${asset.id}`);
        return body.status === 'processing' ? undefined : body;
      },
      480_000,
      'the 1 GiB WAV to finish processing',
      500,
    );
    expect(done.status, String(done.error)).toBe('ready');
    expect(done.durationSec).toBeCloseTo((GiB - 44) / (48_000 * 4), 0);
    const peakAfterProcessing = await peakRss(server.child.pid);
    expect(
      peakAfterProcessing,
      `peak RSS after processing: ${(peakAfterProcessing / 1e6).toFixed(1)} MB`,
    ).toBeLessThan(PEAK_RSS_LIMIT_BYTES);
    console.info(
      `big-upload: peak RSS ${(peakAfterUpload / 1e6).toFixed(1)} MB after the upload, ${(peakAfterProcessing / 1e6).toFixed(1)} MB after processing`,
    );
  }, 600_000);
});
