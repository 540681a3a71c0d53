// A VRM avatar on a canvas: someone's own 3D model (VRM 0.x or 1.0) with a talking mouth.
//
//   import { loadVrm } from "/static/vrm_view.js";
//   const view = await loadVrm(canvas, `/api/avatars/${id}/vrm`);
//   // in the page's one requestAnimationFrame loop:
//   view.setVisemes({ aa: 0.7, oh: 0.2 });  // the mouth now (weights 0..1; left out: 0)
//   view.setExpression("happy", 0.5);       // happy sad angry surprised relaxed neutral
//   view.setBlink(1);                       // eyes shut; 0 open
//   view.lookAt("user");                    // or "away" (thinking, listening elsewhere)
//   view.update(deltaSeconds);              // animates and draws one frame
//   view.dispose();                         // frees the GPU memory (the canvas stays)
//
// The background is transparent, the camera frames the head, and the head sways a little
// when idle. Nothing here starts its own animation loop: the page calls update() per frame.
// The canvas gets a WebGL2 context, so it can't also be used for a 2D face.
//
// Expression names are VRM 1.0's; three-vrm maps a VRM 0.x model's presets onto them
// (a i u e o -> aa ih ou ee oh, joy -> happy, sorrow -> sad, fun -> relaxed), and a custom
// expression is found by name whatever its case (a 0.x "Surprised" group is "surprised").

import {
  AmbientLight,
  Box3,
  DirectionalLight,
  GLTFLoader,
  MathUtils,
  Object3D,
  PerspectiveCamera,
  Scene,
  TextureLoader,
  Vector3,
  VRMLoaderPlugin,
  VRMUtils,
  WebGLRenderer,
} from "./vendor/three/vrm-bundle.js";

export const VISEMES = ["aa", "ih", "ou", "ee", "oh"];
export const EMOTIONS = ["happy", "sad", "angry", "surprised", "relaxed", "neutral"];

const FOV = 28; // degrees, vertical: a portrait lens, little distortion of the face
const AWAY_YAW = 0.35; // radians the head turns when looking away
const AWAY_PITCH = 0.08;

/**
 * Load a VRM model and show it on `canvas`.
 *
 * @param {HTMLCanvasElement} canvas where to draw (sized by CSS; followed on resize)
 * @param {string | ArrayBuffer | Blob} source the model's URL (fetched with the page's
 *   cookies), or its bytes (e.g. a File the person picked, to preview before uploading)
 * @returns {Promise<object>} the view (see the top of this file); rejects with an Error
 *   saying what went wrong (no WebGL, not a VRM, a broken file, a failed download)
 */
export async function loadVrm(canvas, source) {
  const renderer = new WebGLRenderer({ canvas, alpha: true, antialias: true });
  renderer.setClearColor(0x000000, 0);
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));

  let vrm;
  try {
    vrm = await parse(source);
  } catch (e) {
    renderer.dispose();
    throw e;
  }
  VRMUtils.removeUnnecessaryVertices(vrm.scene);
  VRMUtils.rotateVRM0(vrm); // 0.x models face -Z; turn them to face the camera like 1.0
  vrm.scene.traverse((o) => {
    o.frustumCulled = false; // skinned meshes' bounds are their rest pose
  });

  const scene = new Scene();
  scene.add(vrm.scene);
  const key = new DirectionalLight(0xffffff, Math.PI * 0.8);
  key.position.set(0.6, 1.2, 1.5);
  scene.add(key, new AmbientLight(0xffffff, 1.1));

  const camera = new PerspectiveCamera(FOV, 1, 0.05, 50);
  const away = new Object3D(); // what "away" looks at: off to one side, a little down
  scene.add(camera, away);

  const humanoid = vrm.humanoid;
  const bone = (name) => humanoid?.getNormalizedBoneNode(name) ?? null;
  const head = bone("head");
  const neck = bone("neck");
  relaxArms(bone);
  vrm.update(0);
  const frame = framing(vrm, head);
  camera.position.set(frame.centre.x, frame.centre.y, frame.centre.z + frame.distance);
  camera.lookAt(frame.centre);
  away.position
    .copy(frame.centre)
    .add(new Vector3(frame.height * 2.5, -frame.height * 0.6, frame.distance));

  // Expression names as the model spells them, looked up by lower-case name.
  const manager = vrm.expressionManager;
  const names = new Map();
  for (const e of manager?.expressions ?? [])
    names.set(e.expressionName.toLowerCase(), e.expressionName);
  const wanted = new Map(); // name -> weight, applied in update()

  function set(name, weight) {
    const real = names.get(String(name).toLowerCase());
    if (real === undefined) return false;
    const w = Number.isFinite(weight) ? MathUtils.clamp(weight, 0, 1) : 0;
    wanted.set(real, w);
    manager.setValue(real, w);
    return true;
  }

  let lookMode = "user";
  let awayAmount = 0; // 0 looking at the user .. 1 looking away, eased
  let time = Math.random() * 100; // two views side by side don't sway in step
  let width = 0;
  let height = 0;
  if (vrm.lookAt) vrm.lookAt.target = camera;

  function fit() {
    const w = canvas.clientWidth || canvas.width || 1;
    const h = canvas.clientHeight || canvas.height || 1;
    if (w === width && h === height) return;
    width = w;
    height = h;
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    // A tall canvas shows more of the body; a wide one stays on the face.
    camera.fov =
      w >= h
        ? FOV
        : MathUtils.radToDeg(2 * Math.atan(Math.tan(MathUtils.degToRad(FOV / 2)) * (h / w)));
    camera.updateProjectionMatrix();
  }

  let disposed = false;
  return {
    /** The three-vrm VRM object, for anything this view does not offer. */
    vrm,
    camera,
    renderer,
    /** "0.x" or "1.0". */
    version: vrm.meta?.metaVersion === "0" ? "0.x" : "1.0",
    /** The model's expression names (VRM 1.0 names for the presets). */
    expressions: [...names.values()],

    /** The mouth now: weights 0..1 for aa ih ou ee oh; one left out is closed (0). */
    setVisemes(visemes = {}) {
      for (const v of VISEMES) set(v, visemes[v] ?? 0);
    },
    /** One expression's weight 0..1; false if the model has no such expression. */
    setExpression(name, weight) {
      return set(name, weight);
    },
    /** Eyes: 1 shut, 0 open. */
    setBlink(weight) {
      set("blink", weight);
    },
    /** "user": look at the person (the camera); "away": look off to the side. */
    lookAt(mode) {
      lookMode = mode === "away" ? "away" : "user";
      if (vrm.lookAt) vrm.lookAt.target = lookMode === "away" ? away : camera;
    },
    /** The weight an expression is set to (0 if unknown), for tests. */
    getExpressionWeight(name) {
      const real = names.get(String(name).toLowerCase());
      return real === undefined ? 0 : (manager.getValue(real) ?? 0);
    },
    /** Animate by `deltaSeconds` and draw one frame. */
    update(deltaSeconds) {
      if (disposed) return;
      const dt = Math.min(Math.max(Number(deltaSeconds) || 0, 0), 0.25);
      time += dt;
      fit();
      awayAmount += ((lookMode === "away" ? 1 : 0) - awayAmount) * Math.min(1, dt * 4);
      // A gentle idle sway: slow, out of phase on each axis, a few degrees at most.
      const yaw =
        0.05 * Math.sin(time * 0.45) + 0.02 * Math.sin(time * 1.1) + AWAY_YAW * awayAmount;
      const pitch = 0.025 * Math.sin(time * 0.37 + 1) - AWAY_PITCH * awayAmount;
      const roll = 0.025 * Math.sin(time * 0.29 + 2);
      if (head) head.rotation.set(pitch * 0.6, yaw * 0.6, roll * 0.6);
      if (neck) neck.rotation.set(pitch * 0.4, yaw * 0.4, roll * 0.4);
      for (const [name, w] of wanted) manager.setValue(name, w);
      vrm.update(dt);
      renderer.render(scene, camera);
    },
    /** Free the model's and the renderer's GPU memory. The view can't be used after. */
    dispose() {
      if (disposed) return;
      disposed = true;
      scene.remove(vrm.scene);
      VRMUtils.deepDispose(vrm.scene);
      renderer.dispose();
    },
  };
}

async function parse(source) {
  const loader = new GLTFLoader();
  loader.register((parser) => {
    // Textures inside a .vrm become blob: URLs. GLTFLoader's default in Chromium
    // (ImageBitmapLoader) fetch()es them, which the page's CSP (connect-src 'self') refuses;
    // an <img> may load them (img-src blob:).
    const textures = new TextureLoader(parser.options.manager);
    textures.setCrossOrigin(parser.options.crossOrigin);
    parser.textureLoader = textures;
    return new VRMLoaderPlugin(parser);
  });
  let gltf;
  if (typeof source === "string") {
    gltf = await loader.loadAsync(source);
  } else {
    const bytes = source instanceof Blob ? await source.arrayBuffer() : source;
    gltf = await loader.parseAsync(bytes, "");
  }
  const vrm = gltf.userData.vrm;
  if (!vrm) throw new Error("This file is a glTF model but not a VRM (no VRM extension).");
  return vrm;
}

/** Arms down from the T-pose the models rest in (only the shoulders are in view). */
function relaxArms(bone) {
  const down = 1.2; // radians
  const left = bone("leftUpperArm");
  const right = bone("rightUpperArm");
  if (left) left.rotation.z = -down;
  if (right) right.rotation.z = down;
}

/** Where to look and from how far: the head and a little of the shoulders. */
function framing(vrm, head) {
  const box = new Box3().setFromObject(vrm.scene);
  const size = box.getSize(new Vector3());
  const centre = new Vector3();
  // How tall the figure is: from its feet to its head bone (a model's meshes may be only
  // a bust, or include a tall hat), else its bounding box.
  let tall = size.y > 0 ? size.y : 1.6;
  if (head) {
    head.getWorldPosition(centre);
    const feet = ["leftFoot", "rightFoot"]
      .map((b) => vrm.humanoid.getNormalizedBoneNode(b))
      .filter(Boolean)
      .map((n) => n.getWorldPosition(new Vector3()).y);
    if (feet.length && centre.y - Math.min(...feet) > 0.1)
      tall = (centre.y - Math.min(...feet)) * 1.15;
  }
  // Head and shoulders: about a quarter of a person's height, at least 25 cm.
  const height = Math.max(0.25, 0.26 * tall);
  if (head) {
    // The head bone sits at the top of the neck; the eyes are above it.
    const eyes = vrm.lookAt?.offsetFromHeadBone?.y ?? 0.06 * (tall / 1.6);
    centre.y += eyes - 0.12 * height;
  } else {
    box.getCenter(centre);
    centre.y = box.max.y - height / 2;
  }
  const distance = height / 2 / Math.tan(MathUtils.degToRad(FOV / 2));
  return { centre, distance, height };
}
