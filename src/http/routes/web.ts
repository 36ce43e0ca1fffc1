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
  li { margin: .3rem 0; display: flex; align-items: center; gap: .6rem; }
  li img { width: 64px; height: 48px; object-fit: cover; border-radius: 4px; background-size: cover; }
</style>
</head>
<body>
<h1>assetpipe</h1>
<p>Self-hosted media pipeline: upload images, video and audio; get placeholders, renditions and a catalog back.</p>
<p id="login">Not logged in: open the link printed at first start (<code>/#key=…</code>) or paste an API key:
  <input id="key" type="password" size="40" autocomplete="off"> <button id="save">Use key</button></p>
<form id="upload">
  <label>Upload a file: <input type="file" name="file" required></label>
  <button type="submit">Upload</button> <span id="status" role="status"></span>
</form>
<h2>Recent assets</h2>
<ul id="assets"><li>…</li></ul>
<script src="/app.js"></script>
<ul>
  <li><a href="/docs">API documentation (OpenAPI)</a></li>
  <li><code>curl -H "Authorization: Bearer $KEY" -F file=@photo.jpg http://HOST/v1/assets</code></li>
  <li><a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a>, <a href="/metrics">/metrics</a></li>
</ul>
</body>
</html>
`;

// The key comes in the URL fragment (never sent to a server or its logs) and stays in localStorage.
const SCRIPT = `
const KEY = 'assetpipe.key';
const fromHash = new URLSearchParams(location.hash.slice(1)).get('key');
if (fromHash) { localStorage.setItem(KEY, fromHash); history.replaceState(null, '', location.pathname); }
const key = () => localStorage.getItem(KEY);
const api = (path, init = {}) => fetch(path, { ...init, headers: { ...(init.headers || {}), authorization: 'Bearer ' + key() } });
const list = document.getElementById('assets');
async function refresh() {
  document.getElementById('login').hidden = Boolean(key());
  if (!key()) { list.textContent = ''; return; }
  const res = await api('/v1/assets?limit=20');
  if (!res.ok) { list.textContent = (await res.json()).detail; return; }
  list.replaceChildren(...(await res.json()).items.map((a) => {
    const li = document.createElement('li');
    const thumb = (a.variants || []).find((v) => v.src && v.format === 'webp');
    if (thumb) {
      // The signed /img URL needs no key; the LQIP shows until it has loaded.
      const img = document.createElement('img');
      img.src = thumb.src;
      if (a.srcset) { img.srcset = a.srcset; img.sizes = '64px'; }
      if (a.lqip) img.style.backgroundImage = 'url("' + a.lqip + '")';
      img.alt = '';
      li.append(img);
    } else if (a.poster && a.poster.webp) {
      // A video's poster, from its signed stream prefix (no key needed either).
      const img = document.createElement('img');
      img.src = a.poster.webp;
      img.alt = '';
      li.append(img);
    }
    const text = document.createElement('span');
    text.textContent = a.filename + ' \u2014 ' + a.type + ', ' + a.status + (a.width ? ', ' + a.width + '\u00d7' + a.height : '') + (a.durationSec ? ', ' + a.durationSec.toFixed(1) + ' s' : '') + (a.error ? ': ' + a.error : '');
    li.append(text);
    return li;
  }));
}
document.getElementById('save').onclick = () => { localStorage.setItem(KEY, document.getElementById('key').value.trim()); refresh(); };
document.getElementById('upload').onsubmit = async (event) => {
  event.preventDefault();
  const status = document.getElementById('status');
  status.textContent = 'uploading\u2026';
  const res = await api('/v1/assets', { method: 'POST', body: new FormData(event.target) });
  const body = await res.json();
  status.textContent = res.ok ? 'uploaded ' + body.id : body.detail;
  refresh();
};
refresh();
setInterval(refresh, 3000);
`;

export async function webRoutes(app: FastifyInstance): Promise<void> {
  app.get('/app.js', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(SCRIPT),
  );
  app.get('/', { schema: { hide: true } }, async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header(
        'content-security-policy',
        "default-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:",
      )
      .send(PAGE),
  );
}
