import type { FastifyInstance } from 'fastify';

// A placeholder page until the web UI lands: what this server is, and where to go next.
const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>assetpipe</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 3rem auto; padding: 0 1rem; color: #1d2433; }
  h1 { font-size: 1.6rem; margin-bottom: .2rem; }
  code { background: #f1f3f7; padding: .1rem .3rem; border-radius: 4px; }
  form { margin: 1.5rem 0; padding: 1rem; border: 1px solid #d6dbe4; border-radius: 8px; }
  li { margin: .3rem 0; }
</style>
</head>
<body>
<h1>assetpipe</h1>
<p>Self-hosted media pipeline: upload images, video and audio; get placeholders, renditions and a catalog back.</p>
<form method="post" action="/v1/assets" enctype="multipart/form-data">
  <label>Upload a file: <input type="file" name="file" required></label>
  <button type="submit">Upload</button>
</form>
<ul>
  <li><a href="/docs">API documentation (OpenAPI)</a></li>
  <li><a href="/v1/assets">Assets</a> &mdash; <code>curl -F file=@photo.jpg http://HOST/v1/assets</code></li>
  <li><a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a>, <a href="/metrics">/metrics</a></li>
</ul>
</body>
</html>
`;

export async function webRoutes(app: FastifyInstance): Promise<void> {
  app.get('/', { schema: { hide: true } }, async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', "default-src 'self'; style-src 'unsafe-inline'")
      .send(PAGE),
  );
}
