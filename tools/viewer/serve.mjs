// serve.mjs — a tiny static server for the viewer: tools/viewer/ at /, an animate folder at /data/.
// Usage: node tools/viewer/serve.mjs OUT_DIR [--port P]   (127.0.0.1 only; P = 0 picks a free port)
// It sends the cross-origin-isolation headers, so the splat sorter may share memory with its worker.
import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { dirname, extname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const VIEWER_DIR = dirname(fileURLToPath(import.meta.url));
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json',
  '.ply': 'application/octet-stream', '.png': 'image/png', '.mp4': 'video/mp4', '.wasm': 'application/wasm', '.map': 'application/json',
};

// The file a URL path names under root, or null when it leaves root or is not a file.
function fileUnder(root, urlPath) {
  const p = resolve(root, '.' + decodeURIComponent(urlPath));
  if (p !== root && !p.startsWith(root + sep)) return null;
  try {
    const st = statSync(p);
    if (st.isDirectory()) return fileUnder(root, urlPath.replace(/\/?$/, '/index.html'));
    return st.isFile() ? p : null;
  } catch {
    return null;
  }
}

// Starts serving dataDir; resolves to { server, url } where url opens the viewer on its manifest.json.
export function startServer(dataDir, port = 0) {
  const data = resolve(dataDir);
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const file = path.startsWith('/data/') ? fileUnder(data, path.slice(5)) : fileUnder(VIEWER_DIR, path);
    const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp',
                      'Cache-Control': 'no-store' };
    if (!file || req.method !== 'GET') {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' });
      res.end(`not found: ${path}\n`);
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(file)] || 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  return new Promise((ok, bad) => {
    server.once('error', bad);
    server.listen(port, '127.0.0.1', () => {
      const url = `http://127.0.0.1:${server.address().port}/index.html?manifest=/data/manifest.json`;
      ok({ server, url });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const i = args.indexOf('--port');
  const port = i >= 0 ? Number(args.splice(i, 2)[1]) : 8377;
  if (args.length !== 1) {
    console.error('usage: node tools/viewer/serve.mjs OUT_DIR [--port P]');
    process.exit(2);
  }
  const { url } = await startServer(args[0], port);
  console.log(`serving ${resolve(args[0])} and the viewer; open ${url}  (Ctrl-C stops)`);
}
