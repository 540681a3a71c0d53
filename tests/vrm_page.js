// tests/test_vrm.py drives this page: loads ?model= with vrm_view.js and exposes the view.
import { loadVrm } from "/static/vrm_view.js";

const canvas = document.getElementById("avatar");
const status = document.getElementById("status");
const model = new URLSearchParams(location.search).get("model") || "/model.vrm";

// What the test reads: the canvas's opaque pixels, counted in the same task as the frame
// is drawn (the drawing buffer is not preserved after it is shown).
function drawnPixels(view) {
  view.update(1 / 60);
  const copy = document.createElement("canvas");
  copy.width = canvas.width;
  copy.height = canvas.height;
  const ctx = copy.getContext("2d");
  ctx.drawImage(canvas, 0, 0);
  const data = ctx.getImageData(0, 0, copy.width, copy.height).data;
  let opaque = 0;
  let red = 0; // the mouth's red (lit: about 186, 96, 105; the skin about 232, 213, 198)
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 0) opaque++;
    if (data[i + 3] > 200 && data[i] > 1.5 * data[i + 1] && data[i] > 1.4 * data[i + 2]) red++;
  }
  return { opaque, red, total: data.length / 4, width: copy.width, height: copy.height };
}

// The morph influences the expressions reached on the meshes (the mouth really moved).
function morphs(view) {
  let most = 0;
  view.vrm.scene.traverse((o) => {
    for (const w of o.morphTargetInfluences ?? []) most = Math.max(most, w);
  });
  return most;
}

// How many materials have their texture image (a failed one is dropped with a console error).
function textures(view) {
  let loaded = 0;
  view.vrm.scene.traverse((o) => {
    for (const m of [o.material ?? []].flat()) if (m.map?.image) loaded++;
  });
  return loaded;
}

loadVrm(canvas, model).then(
  (view) => {
    window.vrmTest = {
      view,
      drawnPixels: () => drawnPixels(view),
      morphs: () => morphs(view),
      textures: () => textures(view),
    };
    for (let i = 0; i < 5; i++) view.update(1 / 60);
    status.textContent = "ready";
  },
  (e) => {
    status.textContent = `error: ${e.message}`;
  },
);
