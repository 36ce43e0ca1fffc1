import { randomBytes } from 'node:crypto';

/** A multipart/form-data body for `app.inject()`: fields first, then the file (as browsers send). */
export function multipart(parts: {
  fields?: Record<string, string>;
  file?: { name: string; data: Buffer; field?: string; contentType?: string };
}): { payload: Buffer; headers: Record<string, string> } {
  const boundary = `----assetpipe${randomBytes(8).toString('hex')}`;
  const chunks: Buffer[] = [];
  for (const [name, value] of Object.entries(parts.fields ?? {})) {
    chunks.push(
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`),
    );
  }
  if (parts.file) {
    const { name, data, field = 'file', contentType = 'application/octet-stream' } = parts.file;
    chunks.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${name}"\r\nContent-Type: ${contentType}\r\n\r\n`,
      ),
      data,
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    payload: Buffer.concat(chunks),
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
  };
}
