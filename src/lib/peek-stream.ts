import { PassThrough, type Readable } from 'node:stream';

/**
 * Reads up to `bytes` from the start of `source` without losing them: resolves with those bytes
 * and a stream that yields the whole source again (head first). Used to decide the content type
 * from the bytes before anything is stored.
 */
export async function peekStream(
  source: Readable,
  bytes: number,
): Promise<{ head: Buffer; stream: Readable }> {
  const chunks: Buffer[] = [];
  let length = 0;
  let ended = false;

  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= bytes) finish();
    };
    const onEnd = () => {
      ended = true;
      finish();
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onError);
    };
    function finish() {
      cleanup();
      source.pause();
      resolve();
    }
    source.on('data', onData);
    source.once('end', onEnd);
    source.once('error', onError);
  });

  const buffered = Buffer.concat(chunks);
  const out = new PassThrough();
  out.write(buffered);
  if (ended) {
    out.end();
  } else {
    source.on('error', (err) => out.destroy(err));
    source.pipe(out);
    source.resume();
  }
  return { head: buffered.subarray(0, bytes), stream: out };
}
