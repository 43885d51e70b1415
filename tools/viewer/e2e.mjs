// e2e.mjs — end-to-end check of the viewer: serves an `avat3r animate` folder, opens the viewer in Debian's
// headless Chromium (software WebGL), waits until a frame is drawn, screenshots the view and checks that a
// head is there: enough non-background pixels in the centre AND background in the corners.
// Usage: node tools/viewer/e2e.mjs OUT_DIR [--screenshot FILE.png] [--timeout SECONDS]
// Exit 0: the head is drawn; 1: it is not (or the viewer reported an error); 2: bad usage or setup.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { startServer } from './serve.mjs';

const CHROMIUM = process.env.AVAT3R_CHROMIUM || '/usr/bin/chromium';
const BG = [0, 0, 0]; // index.html's page background: the canvas is transparent where nothing is drawn
const CENTRE_MIN_FRACTION = 0.2; // share of the centre box that must differ from the background
const CORNER_MAX_DIFF = 8; // mean per-channel difference allowed in each corner patch

// 8-bit RGB/RGBA non-interlaced PNG (what Chromium's screenshots are) → { w, h, ch, px }.
function decodePng(buf) {
  if (buf.readUInt32BE(0) !== 0x89504e47) throw new Error('screenshot is not a PNG');
  let off = 8, w = 0, h = 0, ch = 0;
  const idat = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off), type = buf.toString('latin1', off + 4, off + 8), body = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      w = body.readUInt32BE(0), h = body.readUInt32BE(4);
      const depth = body[8], color = body[9], interlace = body[12];
      if (depth !== 8 || (color !== 2 && color !== 6) || interlace) throw new Error(`PNG kind not read (depth ${depth}, color ${color})`);
      ch = color === 6 ? 4 : 3;
    } else if (type === 'IDAT') idat.push(body);
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat)), stride = w * ch, px = Buffer.alloc(h * stride);
  for (let y = 0; y < h; y++) {
    const f = raw[y * (stride + 1)], src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= ch ? px[y * stride + x - ch] : 0, b = y ? px[(y - 1) * stride + x] : 0;
      const c = x >= ch && y ? px[(y - 1) * stride + x - ch] : 0;
      let v = src[x];
      if (f === 1) v += a;
      else if (f === 2) v += b;
      else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      px[y * stride + x] = v & 255;
    }
  }
  return { w, h, ch, px };
}

// The head check on a decoded screenshot.
function judge({ w, h, ch, px }) {
  const diff = (x, y) => {
    const i = (y * w + x) * ch;
    return [0, 1, 2].map((k) => Math.abs(px[i + k] - BG[k]));
  };
  let n = 0, fg = 0;
  for (let y = Math.floor(0.3 * h); y < Math.floor(0.7 * h); y++)
    for (let x = Math.floor(0.3 * w); x < Math.floor(0.7 * w); x++, n++) fg += Math.max(...diff(x, y)) > 40 ? 1 : 0;
  const P = 12, corners = [];
  for (const [x0, y0] of [[0, 0], [w - P, 0], [0, h - P], [w - P, h - P]]) {
    let s = 0;
    for (let y = y0; y < y0 + P; y++) for (let x = x0; x < x0 + P; x++) s += diff(x, y).reduce((a, b) => a + b, 0);
    corners.push(s / (P * P * 3));
  }
  const centre = fg / n;
  return { centre_fraction: +centre.toFixed(4), corner_diffs: corners.map((c) => +c.toFixed(2)),
           ok: centre >= CENTRE_MIN_FRACTION && corners.every((c) => c <= CORNER_MAX_DIFF) };
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, def) => {
    const i = args.indexOf(name);
    return i >= 0 ? args.splice(i, 2)[1] : def;
  };
  const shot = opt('--screenshot', null), timeoutS = Number(opt('--timeout', '90'));
  if (args.length !== 1) {
    console.error('usage: node tools/viewer/e2e.mjs OUT_DIR [--screenshot FILE.png] [--timeout SECONDS]');
    return 2;
  }
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch {
    console.error('e2e: playwright-core is not installed: run npm ci in tools/viewer');
    return 2;
  }
  const { server, url } = await startServer(args[0], 0);
  const profile = mkdtempSync(join(tmpdir(), 'avat3r-e2e-'));
  let ctx;
  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 640, height: 480 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             '--use-gl=angle', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist'],
    });
    const page = ctx.pages()[0] || (await ctx.newPage());
    const logs = [];
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    const t0 = Date.now();
    await page.goto(url, { waitUntil: 'load' });
    // drawn: the viewer counts renders after its first depth sort; a few of them mean a frame is on screen
    let st;
    try {
      await page.waitForFunction(() => window.avat3r && (window.avat3r.status === 'error' || window.avat3r.drawn >= 3),
                                 null, { timeout: timeoutS * 1000, polling: 100 });
    } catch {
      console.error(`e2e: no frame drawn within ${timeoutS} s; page log:\n  ${logs.join('\n  ')}`);
      return 1;
    }
    st = await page.evaluate(() => window.avat3r);
    if (st.status === 'error') {
      console.error(`e2e: the viewer reports: ${st.error}`);
      return 1;
    }
    // playback advances; pause; the slider shows the last frame; then the held frame is drawn a few times
    if (st.frames > 1) await page.waitForFunction(() => window.avat3r.frame >= 1, null, { timeout: timeoutS * 1000, polling: 50 });
    const d0 = await page.evaluate(() => {
      const play = document.getElementById('play'), slider = document.getElementById('slider');
      if (play.textContent === 'pause') play.click();
      slider.value = slider.max;
      slider.dispatchEvent(new Event('input'));
      return window.avat3r.drawn;
    });
    await page.waitForFunction((d) => !window.avat3r.busy && window.avat3r.frame === window.avat3r.frames - 1 &&
                                      window.avat3r.drawn >= d + 3, d0, { timeout: timeoutS * 1000, polling: 100 });
    const png = await page.locator('#view').screenshot();
    if (shot) writeFileSync(shot, png);
    const r = judge(decodePng(png));
    st = await page.evaluate(() => window.avat3r);
    console.log(JSON.stringify({ ...r, frames: st.frames, frame: st.frame, mode: st.mode, drawn: st.drawn,
                                 seconds: (Date.now() - t0) / 1000 }));
    if (!r.ok) console.error(`e2e: no head drawn: ${(100 * r.centre_fraction).toFixed(1)}% of the centre differs from ` +
                             `the background (want >= ${100 * CENTRE_MIN_FRACTION}%), corner differences ${r.corner_diffs}`);
    return r.ok ? 0 : 1;
  } finally {
    if (ctx) await ctx.close();
    server.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

process.exitCode = await main().catch((e) => {
  console.error(`e2e: ${e.message}`);
  return 1;
});
