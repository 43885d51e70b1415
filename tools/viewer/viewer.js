// viewer.js — plays the per-frame 3DGS PLYs of an `avat3r animate` folder (docs/animate.md).
// ?manifest=URL names its manifest.json; the PLY names in it are relative to that URL. Up to 32 frames
// (the renderer's scene limit) are loaded once and shown one at a time; longer sequences load each frame
// when it is shown. window.avat3r reports progress to tests (tools/viewer/e2e.mjs).
import * as GS from '@mkkellogg/gaussian-splats-3d';

const MAX_SCENES = 32;
const state = (window.avat3r = { status: 'loading', frames: 0, frame: -1, sorted: 0, drawn: 0, busy: false, error: null });
const $ = (id) => document.getElementById(id);
// The renderer's loads return an AbortablePromise whose then() drops rejections: await its inner promise so a
// failed load (a missing PLY) reaches the error path instead of hanging.
const settled = (p) => (p && p.promise instanceof Promise ? p.promise : p);

function fail(msg) {
  state.status = 'error';
  state.error = msg;
  $('status').textContent = `error: ${msg}`;
  console.error(msg);
}

async function loadManifest() {
  const param = new URLSearchParams(location.search).get('manifest');
  if (!param) throw new Error('no ?manifest=URL in the address (see docs/animate.md)');
  const url = new URL(param, location.href);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  let m;
  try {
    m = await res.json();
  } catch (e) {
    throw new Error(`${url}: not JSON (${e.message})`);
  }
  if (m.format !== 'avat3r-animation' || !Array.isArray(m.frames) || m.frames.length === 0 || !Array.isArray(m.cameras))
    throw new Error(`${url}: not a manifest written by avat3r animate`);
  return { m, url };
}

async function main() {
  const { m, url } = await loadManifest();
  const cam = m.cameras[0];
  const viewer = new GS.Viewer({
    rootElement: $('view'),
    cameraUp: m.up,
    initialCameraPosition: cam.position,
    initialCameraLookAt: m.centre,
    sharedMemoryForWorkers: self.crossOriginIsolated === true, // serve.mjs sends the headers that allow it
    enableOptionalEffects: true, // per-scene visibility: one frame shown at a time
    sceneRevealMode: GS.SceneRevealMode.Instant,
    gpuAcceleratedSort: false,
  });
  viewer.perspectiveCamera.fov = cam.fov_y_deg; // the capture camera's field of view
  viewer.perspectiveCamera.updateProjectionMatrix();
  const render = viewer.render.bind(viewer);
  viewer.render = () => {
    render();
    if (state.sorted > 0) state.drawn++;
  };
  const onSort = () => {
    state.sorted++;
    viewer.runAfterNextSort.push(onSort);
  };
  viewer.runAfterNextSort.push(onSort);

  const F = m.frames.length;
  const paths = m.frames.map((f) => new URL(f.ply, url).href);
  const preload = F <= MAX_SCENES;
  state.frames = F;
  state.mode = preload ? 'preloaded' : 'streamed';
  const opts = (i, visible) => ({ path: paths[i], format: GS.SceneFormat.Ply, visible, showLoadingUI: false });
  try {
    if (preload) await settled(viewer.addSplatScenes(paths.map((_, i) => opts(i, i === 0)), false));
    else await settled(viewer.addSplatScene(paths[0], opts(0, true)));
  } catch (e) {
    for (const p of preload ? paths : paths.slice(0, 1)) { // name the file when one is missing
      const res = await fetch(p);
      if (!res.ok) throw new Error(`${p}: HTTP ${res.status}`);
    }
    throw e;
  }
  viewer.start();

  // one loop (tick, below) shows frames: the next one while playing, or the one the slider asks for; a
  // frame still loading (long sequences) finishes first
  let shown = 0, playing = F > 1, wanted = 0, last = performance.now();
  const show = async (i) => {
    state.busy = true;
    if (preload) {
      viewer.getSplatScene(shown).visible = false;
      viewer.getSplatScene(i).visible = true;
    } else if (i !== shown) {
      await settled(viewer.removeSplatScene(0, false));
      await settled(viewer.addSplatScene(paths[i], opts(i, true)));
    }
    shown = i;
    state.frame = i;
    if (playing) $('slider').value = String(i);
    const f = m.frames[i];
    $('label').textContent = `frame ${i + 1}/${F} · ${f.gaussians} Gaussians` + (f.frame_id !== undefined ? ` · capture frame ${f.frame_id}` : '');
    viewer.forceRenderNextFrame();
    state.busy = false;
  };

  const play = $('play'), slider = $('slider');
  slider.max = String(F - 1);
  slider.disabled = play.disabled = F < 2;
  play.textContent = playing ? 'pause' : 'play';
  play.onclick = () => {
    playing = !playing;
    play.textContent = playing ? 'pause' : 'play';
  };
  slider.oninput = () => {
    playing = false;
    play.textContent = 'play';
    wanted = Number(slider.value);
  };
  await show(0);
  state.status = 'ready';
  $('status').textContent = `${m.subject} · ${m.codes.kind === 'frames' ? `capture frames ${m.codes.first}–${m.codes.end - 1}` : m.codes.path}`;
  const period = 1000 / (m.fps > 0 ? m.fps : 25);
  const tick = async (now) => {
    if (!state.busy) {
      if (playing && now - last >= period) {
        last = now;
        wanted = (shown + 1) % F;
      }
      if (wanted !== shown) await show(wanted).catch((e) => fail(e.message || String(e)));
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

main().catch((e) => fail(e.message || String(e)));
