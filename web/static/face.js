// The avatar's face, drawn by our own code as SVG from the avatar's [face] settings
// (bots/config.py FaceConfig): head shape, colours, hairstyle, accessories, resting
// expression and expressiveness. One face per container:
//
//   const f = createFace(el, avatar.face, { label: "Lumina" });
//   f.setViseme("AA"); f.setLevel(0.4); f.setExpression("happy"); f.setGaze("user");
//   f.update(performance.now());      // from the page's one requestAnimationFrame loop
//   animateFaces([f, g]);              // or: a shared loop for pages that only show faces
//
// Per frame only SVG attributes change (cached, so unchanged ones are not written): no
// layout reads and no new elements. Every transition is a function of time, so what
// state()/mouthOpenness() report does not depend on the frame rate.

const NS = ["http:", "", "www.w3.org", "2000", "svg"].join("/"); // the SVG namespace

export const VISEMES = ["rest", "MBP", "FV", "TH", "L", "S", "CH", "R", "KG", "AA", "E", "I", "O", "U"];
export const EXPRESSIONS = ["neutral", "happy", "sad", "surprised", "thinking", "angry"];
export const GAZES = ["user", "away", "idle"];
export const SHAPES = ["round", "oval", "square", "heart", "long"];
export const HAIRSTYLES = ["none", "short", "bob", "long", "bun", "curly", "spiky"];
export const ACCESSORIES = ["beard", "moustache", "cap", "glasses", "earrings", "freckles", "blush"];
export const DEFAULT_FACE = Object.freeze({
  shape: "oval",
  skin: "#f2c9a8",
  hair: "#4a3426",
  eyes: "#4b6f9c",
  hairstyle: "short",
  accessories: [],
  resting: "neutral",
  expressiveness: 0.6,
  vrm: false,
});

/** How long a mouth shape takes to become the next one (ms). */
export const VISEME_EASE_MS = 55;
/** Visemes seen within this long (ms) win over the audio level (setLevel is ignored). */
export const VISEME_HOLD_MS = 300;
/** How long an expression takes to ease in (ms). */
export const EXPRESSION_EASE_MS = 250;

// ---------- mouth shapes ----------
// open: jaw/lip opening 0..1; wide: spread (+) or narrowed (-); round: rounded, pushed-out
// lips; teeth: upper teeth shown; upper: upper lip raised; fv: lower lip tucked under the
// upper teeth; tongue: tongue between the teeth (1) or its tip up (0.5); press: lips pressed.
const MOUTH_KEYS = ["open", "wide", "round", "teeth", "upper", "fv", "tongue", "press"];
const M = (o) => Object.fromEntries(MOUTH_KEYS.map((k) => [k, o[k] ?? 0]));
const MOUTHS = {
  rest: M({}),
  MBP: M({ press: 1, wide: -0.05 }),
  FV: M({ open: 0.1, teeth: 1, upper: 0.8, fv: 1, wide: 0.05 }),
  TH: M({ open: 0.24, teeth: 0.9, tongue: 1, wide: 0.05 }),
  L: M({ open: 0.36, teeth: 0.7, tongue: 0.5, wide: 0.05 }),
  S: M({ open: 0.14, teeth: 1, upper: 0.5, wide: 0.3 }),
  CH: M({ open: 0.24, teeth: 0.9, round: 0.6, wide: -0.35, upper: 0.4 }),
  R: M({ open: 0.24, teeth: 0.4, round: 0.45, wide: -0.25 }),
  KG: M({ open: 0.42, teeth: 0.35, wide: 0.05 }),
  AA: M({ open: 1, teeth: 0.45, wide: 0.12 }),
  E: M({ open: 0.46, teeth: 0.75, wide: 0.45, upper: 0.3 }),
  I: M({ open: 0.22, teeth: 0.85, wide: 0.62, upper: 0.4 }),
  O: M({ open: 0.72, teeth: 0.1, round: 0.9, wide: -0.42 }),
  U: M({ open: 0.3, round: 1, wide: -0.62 }),
};
const VISEME_ALIASES = { sil: "rest", X: "rest", PP: "MBP", ff: "FV", aa: "AA", E: "E", ih: "I", oh: "O", ou: "U" };

// ---------- expressions (at full intensity) ----------
// brow: both brows up (+) / down (-); inner: inner ends up (+, sad) / down (-, angry);
// asym: one brow up, the other down; lid: eyes wider (+) / narrower (-); squint: lower lids
// up; smile: mouth corners up (+) / down (-); blush; open/round: a mouth opened by the
// feeling (surprise); press: lips pressed; tilt: head tilt (deg); side: mouth pulled aside.
const EXPR_KEYS = ["brow", "inner", "asym", "lid", "squint", "smile", "blush", "open", "round", "press", "tilt", "side"];
const X = (o) => Object.fromEntries(EXPR_KEYS.map((k) => [k, o[k] ?? 0]));
const EXPRS = {
  neutral: X({}),
  happy: X({ brow: 0.3, lid: -0.05, squint: 0.65, smile: 1.15, blush: 0.7, tilt: 1.5 }),
  sad: X({ brow: 0.05, inner: 1, lid: -0.3, smile: -0.85, tilt: -2.5 }),
  surprised: X({ brow: 1, inner: 0.15, lid: 0.4, open: 0.38, round: 0.7 }),
  thinking: X({ asym: 1, lid: -0.15, squint: 0.15, smile: -0.15, side: 1, tilt: 4 }),
  angry: X({ brow: -0.45, inner: -1, lid: -0.3, squint: 0.3, smile: -0.55, press: 0.5, blush: 0.25 }),
};

// ---------- head shapes (in a 200 x 220 viewBox; the face is centred on x = 100) ----------
// T top, yC/W widest (cheekbones), yJ/J jaw, B chin, chin: half-width of the chin's curve,
// jaw: how square the jaw corner is (0 round .. 1 square).
const SHAPE_DIMS = {
  round: { T: 40, yC: 104, W: 60, yJ: 146, J: 50, B: 174, chin: 26, jaw: 0.2 },
  oval: { T: 38, yC: 100, W: 55, yJ: 148, J: 43, B: 178, chin: 18, jaw: 0.15 },
  square: { T: 40, yC: 98, W: 59, yJ: 150, J: 55, B: 175, chin: 30, jaw: 0.85 },
  heart: { T: 40, yC: 98, W: 60, yJ: 145, J: 40, B: 179, chin: 6, jaw: 0.1 },
  long: { T: 32, yC: 98, W: 50, yJ: 156, J: 42, B: 185, chin: 17, jaw: 0.3 },
};

// ---------- colours ----------
const clamp = (x, lo = 0, hi = 1) => Math.min(hi, Math.max(lo, x));
const lerp = (a, b, t) => a + (b - a) * t;
const smooth = (t) => t * t * (3 - 2 * t);
const rgb = (hex) => {
  const m = /^#?([0-9a-f]{6})$/i.exec(String(hex ?? ""));
  const n = m ? parseInt(m[1], 16) : 0x808080;
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
};
const hex = (c) => `#${c.map((v) => Math.round(clamp(v, 0, 255)).toString(16).padStart(2, "0")).join("")}`;
/** `a` blended towards `b` by t (0: a, 1: b). */
export function mix(a, b, t) {
  const [x, y] = [rgb(a), rgb(b)];
  return hex(x.map((v, i) => lerp(v, y[i], t)));
}
const luma = (c) => {
  const [r, g, b] = rgb(c);
  return (0.299 * r + 0.587 * g + 0.114 * b) / 255;
};

function palette(face) {
  const { skin, hair, eyes } = face;
  return {
    skin,
    skinLight: mix(skin, "#fff6ee", 0.35),
    skinShade: mix(skin, "#8a4632", 0.24),
    skinDeep: mix(skin, "#5b2a1e", 0.42),
    lip: mix(skin, "#b8474f", 0.5),
    lipDark: mix(skin, "#6e2229", 0.62),
    lipLight: mix(skin, "#e88c90", 0.45),
    inner: "#3a1217",
    teeth: "#f6f2ea",
    tongue: "#c9606a",
    hair,
    hairShade: mix(hair, "#140d0a", 0.3),
    hairDeep: mix(hair, "#140d0a", 0.5),
    hairLight: mix(hair, "#ffffff", luma(hair) > 0.7 ? 0.5 : 0.22),
    brow: mix(hair, "#1a120e", luma(hair) > 0.7 ? 0.22 : 0.15),
    lash: mix(hair, "#1b1210", luma(hair) > 0.6 ? 0.75 : 0.55),
    iris: eyes,
    irisDeep: mix(eyes, "#000000", 0.45),
    irisLight: mix(eyes, "#ffffff", 0.3),
    white: "#f8f5f1",
    blush: "#ef6f7b",
    cloth: mix(eyes, "#1b2030", 0.55),
    clothShade: mix(eyes, "#0c0f18", 0.72),
    gold: "#d8b04a",
  };
}

/** The face settings with every field present and in range (unknown values: defaults). */
export function normalizeFace(face) {
  const f = { ...DEFAULT_FACE, ...(face ?? {}) };
  const colour = (v, d) => (/^#[0-9a-f]{6}$/i.test(String(v)) ? v : d);
  return {
    shape: SHAPES.includes(f.shape) ? f.shape : DEFAULT_FACE.shape,
    skin: colour(f.skin, DEFAULT_FACE.skin),
    hair: colour(f.hair, DEFAULT_FACE.hair),
    eyes: colour(f.eyes, DEFAULT_FACE.eyes),
    hairstyle: HAIRSTYLES.includes(f.hairstyle) ? f.hairstyle : DEFAULT_FACE.hairstyle,
    accessories: [...new Set((f.accessories ?? []).filter((a) => ACCESSORIES.includes(a)))],
    resting: EXPRESSIONS.includes(f.resting) ? f.resting : "neutral",
    expressiveness: clamp(Number.isFinite(Number(f.expressiveness)) ? Number(f.expressiveness) : 0.6),
    vrm: Boolean(f.vrm),
  };
}

// ---------- SVG helpers ----------
const n1 = (v) => (Math.round(v * 10) / 10).toString();
const P = (...pts) => pts.map(n1).join(" ");

function el(parent, tag, attrs = {}) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  if (parent) parent.append(e);
  return e;
}

/** A left-right symmetric closed path from its right half: cubic segments from the top
 * centre [[c1x,c1y,c2x,c2y,x,y], ...] (x as offsets from the centre line x = 100). */
function mirrored(top, segs) {
  const r = (x) => 100 + x;
  const l = (x) => 100 - x;
  let d = `M${P(100, top)}`;
  for (const [a, b, c, e, x, y] of segs) d += `C${P(r(a), b, r(c), e, r(x), y)}`;
  const back = [...segs].reverse();
  for (let i = 0; i < back.length; i++) {
    const [a, b, c, e] = back[i];
    const [x, y] = i + 1 < back.length ? back[i + 1].slice(4) : [0, top];
    d += `C${P(l(c), e, l(a), b, l(x), y)}`;
  }
  return `${d}Z`;
}

function headPath(g) {
  const { T, yC, W, yJ, J, B, chin, jaw } = g;
  return mirrored(T, [
    [W * 0.6, T, W, yC - (yC - T) * 0.56, W, yC],
    [W, yC + (yJ - yC) * 0.45, lerp(J + (W - J) * 0.5, J, jaw), yJ - (yJ - yC) * lerp(0.3, 0.12, jaw), J, yJ],
    [lerp(J * 0.85, J, jaw), yJ + (B - yJ) * lerp(0.5, 0.75, jaw), chin + lerp(4, 10, jaw), B, 0, B],
  ]);
}

/** The head's half-width at height y (a rough piecewise fit, for placing hair and ears). */
function halfWidth(g, y) {
  const { T, yC, W, yJ, J, B, chin } = g;
  if (y <= T) return 0;
  if (y < yC) return W * Math.sqrt(1 - ((yC - y) / (yC - T)) ** 2);
  if (y < yJ) return lerp(W, J, smooth((y - yC) / (yJ - yC)));
  if (y < B) return lerp(J, chin * 0.5, ((y - yJ) / (B - yJ)) ** 1.4);
  return 0;
}

let instances = 0;

// ---------- the face ----------

/**
 * Draw a face in `container` (an SVG appended to it, scaled to its width).
 * @param {HTMLElement} container
 * @param {object} face the avatar's `face` settings (missing fields: defaults)
 * @param {{animated?: boolean, label?: string}} options animated: blinks, breathing,
 *   wandering gaze (false: still, but visemes and expressions still apply on update())
 */
export function createFace(container, face, { animated = true, label } = {}) {
  const uid = `face${++instances}`;
  let cfg = normalizeFace(face);
  const svg = el(null, "svg", {
    viewBox: "0 0 200 220",
    class: "face-svg",
    role: "img",
    "aria-label": label || "Avatar face",
    preserveAspectRatio: "xMidYMid meet",
    focusable: "false",
  });
  container.append(svg);

  const rnd = mulberry(instances * 7919 + 17);
  const phase = rnd() * 1000;
  const now0 = performance.now();
  const reducedMotion = globalThis.matchMedia?.("(prefers-reduced-motion: reduce)").matches ?? false;

  // Animation state: transitions are {from, to, t0, dur}, evaluated at any time.
  const mouthT = { from: MOUTHS.rest, to: MOUTHS.rest, t0: now0, dur: 1 };
  const exprT = { from: EXPRS[cfg.resting], to: EXPRS[cfg.resting], t0: now0, dur: 1 };
  let viseme = "rest";
  let lastVisemeAt = -Infinity;
  let expression = cfg.resting;
  let exprIntensity = 1;
  let gaze = "user";
  let gazeTarget = [0, 0];
  let gazeNow = [0, 0];
  let nextGazeAt = now0 + 800;
  let nextBlinkAt = now0 + 1200 + rnd() * 2500;
  let blinkStart = -Infinity;
  let doubleBlink = false;
  let lastUpdate = now0;
  let blinkingNow = false;
  const appliedVisemes = [];
  let parts = null;
  const written = new Map(); // element -> {attr: last value}, so unchanged ones are not set

  function put(e, attr, value) {
    if (!e) return;
    let m = written.get(e);
    if (!m) written.set(e, (m = {}));
    if (m[attr] !== value) {
      m[attr] = value;
      e.setAttribute(attr, value);
    }
  }

  function valueAt(tr, now) {
    const k = tr.dur <= 0 ? 1 : clamp((now - tr.t0) / tr.dur);
    const e = smooth(k);
    const out = {};
    for (const key of Object.keys(tr.to)) out[key] = lerp(tr.from[key], tr.to[key], e);
    return out;
  }

  function retarget(tr, to, dur, now) {
    // The page asks for the same shape every frame: restarting the ease each time would
    // only ever cover a fraction of the way (a slow exponential), so the same target goes on.
    if (Object.keys(to).every((k) => tr.to[k] === to[k])) return;
    tr.from = valueAt(tr, now);
    tr.to = to;
    tr.t0 = now;
    tr.dur = dur;
  }

  // ---------- drawing (on create and on set(face)) ----------
  function build() {
    svg.replaceChildren();
    written.clear();
    const g = SHAPE_DIMS[cfg.shape];
    const c = palette(cfg);
    const has = (a) => cfg.accessories.includes(a);
    const H = g.B - g.T;
    const geo = {
      ...g,
      H,
      eyeY: g.T + H * 0.5,
      eyeDX: cfg.shape === "long" ? 21 : cfg.shape === "heart" ? 23.5 : 23,
      browY: g.T + H * 0.5 - 14,
      noseY: g.T + H * 0.665,
      mouthY: g.T + H * 0.805,
      mouthW: 17 * clamp(0.85 + g.J / 220, 0.9, 1.15),
    };
    const defs = el(svg, "defs");
    const skinGrad = el(defs, "radialGradient", { id: `${uid}-skin`, cx: "0.45", cy: "0.38", r: "0.7" });
    el(skinGrad, "stop", { offset: "0", "stop-color": c.skinLight });
    el(skinGrad, "stop", { offset: "0.55", "stop-color": c.skin });
    el(skinGrad, "stop", { offset: "1", "stop-color": c.skinShade });
    const irisGrad = el(defs, "radialGradient", { id: `${uid}-iris`, cx: "0.5", cy: "0.45", r: "0.55" });
    el(irisGrad, "stop", { offset: "0", "stop-color": c.irisLight });
    el(irisGrad, "stop", { offset: "0.65", "stop-color": c.iris });
    el(irisGrad, "stop", { offset: "1", "stop-color": c.irisDeep });
    const hairGrad = el(defs, "linearGradient", { id: `${uid}-hair`, x1: "0", y1: "0", x2: "0", y2: "1" });
    el(hairGrad, "stop", { offset: "0", "stop-color": c.hairLight });
    el(hairGrad, "stop", { offset: "0.35", "stop-color": c.hair });
    el(hairGrad, "stop", { offset: "1", "stop-color": c.hairShade });
    const blushGrad = el(defs, "radialGradient", { id: `${uid}-blush` });
    el(blushGrad, "stop", { offset: "0", "stop-color": c.blush, "stop-opacity": "0.75" });
    el(blushGrad, "stop", { offset: "1", "stop-color": c.blush, "stop-opacity": "0" });
    const clip = (id) => el(el(defs, "clipPath", { id: `${uid}-${id}` }), "path");
    const eyeClipL = clip("eyeL");
    const eyeClipR = clip("eyeR");
    const mouthClip = clip("mouth");
    const headD = headPath(g);
    const headClip = el(el(defs, "clipPath", { id: `${uid}-headclip` }), "path", { d: headD });
    void headClip;

    // Body: shoulders and neck (breathes).
    const body = el(svg, "g", { "data-part": "body" });
    const sh = g.B + 20;
    el(body, "path", {
      d: `M${P(8, 221)}C${P(12, sh + 8, 48, sh - 2, 78, sh - 6)}L${P(122, sh - 6)}C${P(152, sh - 2, 188, sh + 8, 192, 221)}Z`,
      fill: has("cap") ? "#1f2a44" : c.cloth,
    });
    const neckTop = g.B - 26;
    el(body, "path", {
      d: `M${P(84, neckTop)}L${P(83, sh - 3)}Q${P(100, sh + 10, 117, sh - 3)}L${P(116, neckTop)}Z`,
      fill: c.skinShade,
    });
    el(body, "path", {
      d: `M${P(84, neckTop)}L${P(116, neckTop)}L${P(116, g.B + 4)}Q${P(100, g.B + 14, 84, g.B + 4)}Z`,
      fill: c.skinDeep,
      opacity: "0.55",
    });
    if (has("cap")) {
      // A captain's jacket: lapels and two gold buttons.
      el(body, "path", { d: `M${P(84, sh - 5)}L${P(100, 221)}L${P(116, sh - 5)}L${P(126, sh - 4)}L${P(106, 221)}L${P(94, 221)}L${P(74, sh - 4)}Z`, fill: "#eef0f2" });
      for (const y of [212]) {
        el(body, "circle", { cx: 86, cy: y, r: 2.2, fill: c.gold });
        el(body, "circle", { cx: 114, cy: y, r: 2.2, fill: c.gold });
      }
    } else {
      el(body, "path", { d: `M${P(82, sh - 5)}Q${P(100, sh + 14, 118, sh - 5)}`, fill: "none", stroke: c.clothShade, "stroke-width": "2.5", "stroke-linecap": "round" });
    }

    const sway = el(svg, "g", { "data-part": "sway" });
    // Hair, behind the head.
    const hair = hairShapes(cfg.hairstyle, geo, c, `url(#${uid}-hair)`);
    const hairBack = el(sway, "g", { "data-part": "hair-back" });
    for (const s of hair.back) el(hairBack, s.tag ?? "path", s);

    // Ears (and earrings).
    const earY = geo.eyeY + 7;
    const earX = halfWidth(g, earY) - 2.5;
    const hidden = ["long", "bob"].includes(cfg.hairstyle);
    const ears = el(sway, "g", { "data-part": "ears" });
    for (const sgn of hidden ? [] : [-1, 1]) {
      const x = 100 + sgn * earX;
      el(ears, "ellipse", { cx: n1(x + sgn * 4), cy: n1(earY), rx: 7.5, ry: 12.5, fill: c.skin });
      el(ears, "path", {
        d: `M${P(x + sgn * 3, earY - 7)}Q${P(x + sgn * 9, earY - 4, x + sgn * 6, earY + 6)}`,
        fill: "none",
        stroke: c.skinDeep,
        "stroke-width": "2",
        "stroke-linecap": "round",
        opacity: "0.6",
      });
    }
    const drawEarrings = (parent) => {
      const ring = el(parent, "g", { "data-part": "earrings" });
      for (const sgn of [-1, 1]) {
        const x = 100 + sgn * (earX + 5);
        el(ring, "circle", { cx: n1(x), cy: n1(earY + 12.5), r: 1.8, fill: c.gold });
        el(ring, "path", { d: `M${P(x, earY + 14)}L${P(x - 3, earY + 20)}L${P(x, earY + 25)}L${P(x + 3, earY + 20)}Z`, fill: c.gold, stroke: mix(c.gold, "#5a3c00", 0.4), "stroke-width": "0.6" });
        el(ring, "circle", { cx: n1(x - 0.8), cy: n1(earY + 19), r: 0.9, fill: "#fff8dc" });
      }
    };
    if (has("earrings") && !hidden) drawEarrings(sway);

    // The head: everything of the face is in here (tests find it by data-part="head").
    const head = el(sway, "g", { "data-part": "head" });
    el(head, "path", { d: headD, fill: `url(#${uid}-skin)`, "data-part": "skin" });
    // Soft cheek/jaw shading and a forehead highlight.
    el(head, "path", {
      d: headD,
      fill: "none",
      stroke: c.skinShade,
      "stroke-width": "2",
      opacity: "0.55",
    });

    const blushG = el(head, "g", { "data-part": "blush", opacity: "0" });
    for (const sgn of [-1, 1]) {
      el(blushG, "ellipse", { cx: n1(100 + sgn * (geo.eyeDX + 4)), cy: n1(geo.noseY + 4), rx: 12, ry: 7, fill: `url(#${uid}-blush)` });
    }
    if (has("freckles")) {
      const fr = el(head, "g", { "data-part": "freckles", fill: c.skinDeep, opacity: "0.55" });
      const spots = [[-4, 0], [3, -3], [8, 1], [-1, 4], [5, 5], [11, -2], [1, -6], [14, 3]];
      for (const sgn of [-1, 1]) {
        for (const [dx, dy] of spots) {
          el(fr, "circle", { cx: n1(100 + sgn * (geo.eyeDX - 2 + dx)), cy: n1(geo.noseY - 4 + dy), r: 0.95 });
        }
      }
    }

    // Eyes: white, iris (moves with gaze), pupil, highlights, all clipped to the lids' opening.
    const eyes = [];
    for (const [sgn, clipPath, side] of [[-1, eyeClipL, "left"], [1, eyeClipR, "right"]]) {
      const cx = 100 + sgn * geo.eyeDX;
      const eg = el(head, "g", { "data-part": `eye-${side}` });
      const crease = el(eg, "path", { fill: "none", stroke: c.skinShade, "stroke-width": "1.4", "stroke-linecap": "round", opacity: "0.8" });
      const white = el(eg, "path", { fill: c.white });
      const inside = el(eg, "g", { "clip-path": `url(#${uid}-eye${side === "left" ? "L" : "R"})` });
      el(inside, "path", { d: `M${P(cx - 14, geo.eyeY - 12)}h28v6h-28Z`, fill: c.skinShade, opacity: "0.25" });
      const iris = el(inside, "g");
      el(iris, "circle", { cx: n1(cx), cy: n1(geo.eyeY), r: 6.6, fill: `url(#${uid}-iris)` });
      el(iris, "circle", { cx: n1(cx), cy: n1(geo.eyeY), r: 6.6, fill: "none", stroke: c.irisDeep, "stroke-width": "0.9" });
      el(iris, "circle", { cx: n1(cx), cy: n1(geo.eyeY), r: 3.1, fill: "#141518" });
      el(iris, "circle", { cx: n1(cx - 2.2), cy: n1(geo.eyeY - 2.4), r: 1.7, fill: "#ffffff", opacity: "0.95" });
      el(iris, "circle", { cx: n1(cx + 2.1), cy: n1(geo.eyeY + 2), r: 0.8, fill: "#ffffff", opacity: "0.7" });
      const lash = el(eg, "path", { fill: "none", stroke: c.lash, "stroke-width": "2.1", "stroke-linecap": "round", "stroke-linejoin": "round" });
      const lower = el(eg, "path", { fill: "none", stroke: c.skinDeep, "stroke-width": "0.9", "stroke-linecap": "round", opacity: "0.45" });
      eyes.push({ sgn, cx, white, clipPath, iris, lash, lower, crease });
    }

    // Brows.
    const brows = [-1, 1].map((sgn) =>
      el(head, "path", { fill: c.brow, "data-part": sgn < 0 ? "brow-left" : "brow-right" }),
    );

    // Nose.
    const nose = el(head, "g", { "data-part": "nose" });
    const ny = geo.noseY;
    el(nose, "path", { d: `M${P(96.5, ny - 9)}Q${P(95, ny - 3, 94.5, ny)}`, fill: "none", stroke: c.skinShade, "stroke-width": "1.3", "stroke-linecap": "round", opacity: "0.45" });
    el(nose, "path", { d: `M${P(93, ny + 1)}Q${P(96, ny + 5, 100, ny + 4.2)}Q${P(104, ny + 5, 107, ny + 1)}`, fill: "none", stroke: c.skinDeep, "stroke-width": "1.6", "stroke-linecap": "round", opacity: "0.75" });
    el(nose, "ellipse", { cx: 101, cy: n1(ny - 2), rx: 2.6, ry: 1.8, fill: c.skinLight, opacity: "0.7" });

    // Beard (behind the mouth; the mouth is drawn over it and keeps moving).
    if (has("beard")) {
      const clipB = el(defs, "clipPath", { id: `${uid}-beard` });
      const top = geo.eyeY + 2;
      const side = halfWidth(g, top);
      el(clipB, "path", {
        d:
          `M${P(0, top)}L${P(100 - side + 2, top)}C${P(100 - side + 6, ny + 6, 100 - 30, ny + 4, 100 - 14, ny + 6)}` +
          `Q${P(100, ny + 2, 100 + 14, ny + 6)}C${P(100 + 30, ny + 4, 100 + side - 6, ny + 6, 100 + side - 2, top)}` +
          `L${P(200, top)}L${P(200, 220)}L${P(0, 220)}Z`,
      });
      const beard = el(head, "g", { "data-part": "beard", "clip-path": `url(#${uid}-beard)` });
      el(beard, "path", {
        d: headD,
        fill: mix(c.hair, c.hairShade, 0.25),
        transform: `translate(100 ${n1(geo.yC)}) scale(1.07 1.1) translate(-100 ${n1(-geo.yC)})`,
      });
      el(beard, "path", { d: headD, fill: "none", stroke: c.hairShade, "stroke-width": "1.2", opacity: "0.5", transform: `translate(100 ${n1(geo.yC)}) scale(1.07 1.1) translate(-100 ${n1(-geo.yC)})` });
      // Texture: short strokes of the shade colour.
      for (let i = 0; i < 22; i++) {
        const a = (i / 21) * Math.PI;
        const x = 100 - Math.cos(a) * (geo.J - 6);
        const y = geo.yJ - 8 + Math.sin(a) * (geo.B - geo.yJ + 4);
        el(beard, "path", { d: `M${P(x, y)}l${P(-Math.cos(a) * 2, 4)}`, stroke: c.hairShade, "stroke-width": "1", "stroke-linecap": "round", opacity: "0.6" });
      }
      // The skin around the lips, so the mouth reads clearly.
      el(head, "ellipse", { cx: 100, cy: n1(geo.mouthY + 1), rx: n1(geo.mouthW + 5), ry: 8, fill: mix(c.hair, c.skinShade, 0.55), opacity: "0.7" });
    }

    // Mouth: lips, the dark inside, teeth, tongue.
    const mouth = el(head, "g", { "data-part": "mouth" });
    const lips = el(mouth, "path", { fill: c.lip });
    const lipShine = el(mouth, "path", { fill: c.lipLight, opacity: "0.55" });
    const inner = el(mouth, "path", { fill: c.inner });
    const insideMouth = el(mouth, "g", { "clip-path": `url(#${uid}-mouth)` });
    const tongue = el(insideMouth, "ellipse", { fill: c.tongue });
    const teeth = el(insideMouth, "path", { fill: c.teeth });
    const tongueTip = el(insideMouth, "ellipse", { fill: c.tongue });
    const lipLine = el(mouth, "path", { fill: "none", stroke: c.lipDark, "stroke-width": "1.5", "stroke-linecap": "round" });
    const dimples = el(mouth, "path", { fill: "none", stroke: c.skinDeep, "stroke-width": "1.1", "stroke-linecap": "round", opacity: "0.5" });

    if (has("moustache") || has("beard")) {
      const big = has("moustache") && has("beard");
      const my = ny + 8;
      const w = geo.mouthW + (big ? 9 : 6);
      el(head, "path", {
        "data-part": "moustache",
        d:
          `M${P(100, my - 3)}C${P(96, my - 6, 90, my - 6, 100 - w * 0.6, my - 3)}C${P(100 - w, my - 1, 100 - w - 2, my + 6, 100 - w - 1, my + 9)}` +
          `C${P(100 - w + 4, my + 6, 100 - w * 0.5, my + 4, 100, my + 3)}` +
          `C${P(100 + w * 0.5, my + 4, 100 + w - 4, my + 6, 100 + w + 1, my + 9)}C${P(100 + w + 2, my + 6, 100 + w, my - 1, 100 + w * 0.6, my - 3)}C${P(110, my - 6, 104, my - 6, 100, my - 3)}Z`,
        fill: c.hairShade,
      });
    }

    if (has("glasses")) {
      const gl = el(head, "g", { "data-part": "glasses", fill: "none", stroke: "#2a2c33", "stroke-width": "2.2" });
      for (const sgn of [-1, 1]) {
        const cx = 100 + sgn * geo.eyeDX;
        el(gl, "rect", { x: n1(cx - 14), y: n1(geo.eyeY - 10.5), width: 28, height: 21, rx: 7, fill: "#cfe3ff", "fill-opacity": "0.13" });
        el(gl, "path", { d: `M${P(cx + sgn * 14, geo.eyeY - 4)}L${P(100 + sgn * (halfWidth(g, geo.eyeY) + 1), geo.eyeY - 6)}` });
        el(gl, "path", { d: `M${P(cx - 8, geo.eyeY - 7)}l${P(4, -1.5)}`, stroke: "#ffffff", "stroke-width": "1.2", opacity: "0.5" });
      }
      el(gl, "path", { d: `M${P(100 - geo.eyeDX + 14, geo.eyeY - 3)}Q${P(100, geo.eyeY - 8, 100 + geo.eyeDX - 14, geo.eyeY - 3)}` });
    }

    // Hair in front of the forehead, then the cap over it.
    const hairFront = el(sway, "g", { "data-part": "hair-front" });
    for (const s of hair.front) el(hairFront, s.tag ?? "path", s);
    if (has("earrings") && hidden) drawEarrings(sway);
    if (has("cap")) drawCap(el(sway, "g", { "data-part": "cap" }), geo, c);

    parts = { geo, body, sway, head, eyes, brows, blushG, lips, lipShine, inner, mouthClip, teeth, tongue, tongueTip, lipLine, dimples, baseBlush: has("blush") ? 0.75 : 0 };
    render(lastUpdate, true);
  }

  // ---------- per-frame rendering ----------
  function blinkAmount(now) {
    if (!animated) return 0;
    const t = now - blinkStart;
    if (t < 0 || t > 150) {
      if (doubleBlink && t > 150 && t < 260) return 0;
      return 0;
    }
    if (t < 60) return smooth(t / 60);
    if (t < 80) return 1;
    return 1 - smooth((t - 80) / 70);
  }

  function render(now) {
    if (!parts) return;
    const { geo } = parts;
    const e = valueAt(exprT, now);
    const k = cfg.expressiveness * exprIntensity;
    for (const key of EXPR_KEYS) e[key] *= k;
    let m = valueAt(mouthT, now);

    // Idle motion: breathing and a slow sway, slight tilt from the expression.
    const t = (now + phase) / 1000;
    const amp = animated && !reducedMotion ? 1 : 0;
    const breathe = Math.sin(t * 1.45) * 0.9 * amp;
    const rot = (Math.sin(t * 0.53) * 1.3 + Math.sin(t * 0.31 + 1.3) * 0.6) * amp + e.tilt;
    const dx = Math.sin(t * 0.41 + 0.7) * 1.2 * amp;
    put(parts.body, "transform", `translate(0 ${n1(breathe * 0.6)})`);
    put(parts.sway, "transform", `translate(${n1(dx)} ${n1(breathe)}) rotate(${n1(rot)} 100 ${n1(geo.B + 20)})`);

    // Eyes: lids from blink, expression; iris from gaze.
    const blink = blinkAmount(now);
    blinkingNow = blink > 0.05;
    const [gx, gy] = gazeNow;
    for (const eye of parts.eyes) {
      const { sgn, cx } = eye;
      const cy = geo.eyeY;
      const rx = 11.6;
      const lidOpen = 1 + e.lid + Math.max(0, -gy) * 0.04;
      const bot = 5.6 * (1 - e.squint * 0.55) + Math.max(0, gy) * 0.2;
      const topOpen = 7.8 * lidOpen;
      const top = lerp(topOpen, -bot + 0.4, blink);
      const tilt = sgn * 0.8; // outer corners slightly up
      const lx = cx - rx;
      const rxp = cx + rx;
      const ly = cy + (sgn < 0 ? -tilt : tilt) * -1;
      const ry = cy - (sgn < 0 ? tilt : -tilt) * -1;
      const tc = cy - top * 1.33;
      const bc = cy + bot * 1.33;
      const upper = `M${P(lx, ly)}C${P(cx - rx * 0.45, tc, cx + rx * 0.45, tc, rxp, ry)}`;
      const d = `${upper}C${P(cx + rx * 0.45, bc, cx - rx * 0.45, bc, lx, ly)}Z`;
      put(eye.white, "d", d);
      put(eye.clipPath, "d", d);
      put(eye.lash, "d", upper);
      put(eye.lower, "d", `M${P(cx - rx * 0.7, cy + bot * 0.9)}Q${P(cx, bc + 0.6, cx + rx * 0.7, cy + bot * 0.9)}`);
      const cr = cy - Math.max(topOpen, 4) - 4.2 - e.brow * 2;
      put(eye.crease, "d", `M${P(cx - rx * 0.75, cr + 3)}Q${P(cx, cr - 1.5, cx + rx * 0.75, cr + 3)}`);
      put(eye.iris, "transform", `translate(${n1(gx)} ${n1(gy)})`);
    }

    // Brows: inner, middle and outer points; a tapered shape.
    for (const [i, sgn] of [[0, -1], [1, 1]]) {
      const lift = e.brow * 6.5 + e.asym * (sgn < 0 ? 4.5 : -2.5);
      const yIn = geo.browY - lift - e.inner * 5.5 + 1;
      const yMid = geo.browY - lift - 3.2 - e.inner * 1.5 + Math.max(0, -e.inner) * 0.5;
      const yOut = geo.browY - lift + 1 + e.inner * 1.5 + Math.max(0, -e.inner) * -0.5;
      const xIn = 100 + sgn * (10.5 - Math.max(0, -e.inner) * 1.8);
      const xMid = 100 + sgn * 22;
      const xOut = 100 + sgn * 34;
      const d =
        `M${P(xIn, yIn - 2.4)}Q${P(xMid, yMid - 2.6, xOut, yOut - 0.6)}` +
        `Q${P(xOut + sgn * 1.2, yOut + 0.6, xOut - sgn * 0.5, yOut + 0.8)}` +
        `Q${P(xMid, yMid + 1.6, xIn, yIn + 2.2)}Q${P(xIn - sgn * 1.4, yIn, xIn, yIn - 2.4)}Z`;
      put(parts.brows[i], "d", d);
    }

    put(parts.blushG, "opacity", n1(clamp(parts.baseBlush + e.blush * 0.8)));

    // Mouth: the shape of the current viseme, with the feeling on top.
    const open = Math.max(m.open, e.open);
    const round = Math.max(m.round, e.round * clamp(1 - m.open * 2));
    const press = clamp(m.press + e.press * (1 - m.open));
    const smile = e.smile * (1 - 0.5 * clamp(m.open * 1.5));
    const cx = 100 + e.side * 3;
    const cy = geo.mouthY + e.side * -0.5;
    const w = geo.mouthW * (1 + 0.24 * m.wide + 0.12 * Math.max(0, smile)) * (1 - 0.3 * round) * (1 - 0.06 * press);
    const h = open * 17 * (1 + 0.15 * round);
    const cornerY = cy - smile * 5.6;
    const sideTilt = e.side * 1.6; // thinking: one corner up
    const lcY = cornerY + sideTilt;
    const rcY = cornerY - sideTilt;
    const upperMid = cy - h * 0.28 - m.upper * 1.6 + smile * 1.3;
    let lowerMid = cy + h * 0.72 + smile * 2.2 * (0.4 + open);
    lowerMid = lerp(lowerMid, upperMid + 2.4, m.fv);
    const ctl = w * (0.5 + 0.3 * round);
    const ux = upperMid + (upperMid - (lcY + rcY) / 2) * 0.33;
    const lx = lowerMid + (lowerMid - (lcY + rcY) / 2) * 0.33;
    const L = [cx - w, lcY];
    const R = [cx + w, rcY];
    const innerD = `M${P(...L)}C${P(cx - ctl, ux, cx + ctl, ux, ...R)}C${P(cx + ctl, lx, cx - ctl, lx, ...L)}Z`;
    put(parts.inner, "d", innerD);
    put(parts.mouthClip, "d", innerD);
    put(parts.lipLine, "d", `M${P(L[0] - 0.5, L[1])}C${P(cx - ctl, ux, cx + ctl, ux, R[0] + 0.5, R[1])}`);
    put(parts.lipLine, "opacity", n1(clamp(1 - open * 3, 0.25, 1)));
    const tu = (3.4 + round * 1.6) * (1 - 0.55 * press) + 0.3;
    const tl = (4.4 + round * 1.8) * (1 - 0.45 * press) * (1 - 0.35 * m.fv) + 0.4;
    const bow = upperMid - tu;
    const pk = bow - 1.1 * (1 - press);
    const o = w + 1.6 + round * 0.5;
    const lips =
      `M${P(cx - o, lcY)}C${P(cx - w * 0.7, lerp(lcY, pk, 0.7), cx - w * 0.42, pk, cx - 4.5, pk)}` +
      `Q${P(cx - 1.5, pk, cx, bow + 0.8)}Q${P(cx + 1.5, pk, cx + 4.5, pk)}` +
      `C${P(cx + w * 0.42, pk, cx + w * 0.7, lerp(rcY, pk, 0.7), cx + o, rcY)}` +
      `C${P(cx + w * 0.72, lx + tl * 1.34, cx - w * 0.72, lx + tl * 1.34, cx - o, lcY)}Z`;
    put(parts.lips, "d", lips);
    put(parts.lipShine, "d", `M${P(cx - w * 0.45, lowerMid + tl * 0.55)}Q${P(cx, lowerMid + tl * 0.95, cx + w * 0.45, lowerMid + tl * 0.55)}Q${P(cx, lowerMid + tl * 0.35, cx - w * 0.45, lowerMid + tl * 0.55)}Z`);
    // Upper teeth hang from the upper lip; the tongue lies low, or comes forward (TH, L).
    const th = m.teeth * Math.min(5.5, 1.5 + h * 0.5);
    put(parts.teeth, "d", `M${P(cx - w * 0.85, upperMid - 3)}L${P(cx + w * 0.85, upperMid - 3)}L${P(cx + w * 0.78, upperMid + th)}Q${P(cx, upperMid + th + 1.2, cx - w * 0.78, upperMid + th)}Z`);
    put(parts.tongue, "cx", n1(cx));
    put(parts.tongue, "cy", n1(lowerMid + 1.5 - Math.min(h, 12) * 0.12));
    put(parts.tongue, "rx", n1(w * 0.62));
    put(parts.tongue, "ry", n1(3 + h * 0.18));
    const tip = clamp(m.tongue);
    put(parts.tongueTip, "cx", n1(cx));
    put(parts.tongueTip, "cy", n1(lerp(lowerMid, upperMid + th * 0.6 + 1, tip)));
    put(parts.tongueTip, "rx", n1(w * 0.42 * tip));
    put(parts.tongueTip, "ry", n1(3.4 * tip));
    const dim = Math.max(0, smile);
    put(parts.dimples, "d", `M${P(L[0] - 2.5, L[1] - 2)}q${P(-1.5, 2, 0, 4)}M${P(R[0] + 2.5, R[1] - 2)}q${P(1.5, 2, 0, 4)}`);
    put(parts.dimples, "opacity", n1(dim * 0.55));
  }

  // ---------- idle behaviour: blinks and gaze ----------
  function idle(now) {
    if (!animated) return;
    if (now >= nextBlinkAt) {
      blinkStart = now;
      doubleBlink = !doubleBlink && rnd() < 0.18;
      nextBlinkAt = now + (doubleBlink ? 260 : 2000 + rnd() * 4000);
    }
    if (now >= nextGazeAt) {
      if (gaze === "user") {
        gazeTarget = [(rnd() - 0.5) * 1.8, (rnd() - 0.5) * 1.0];
        nextGazeAt = now + 500 + rnd() * 1800;
      } else if (gaze === "away") {
        const side = rnd() < 0.75 ? 1 : -1;
        gazeTarget = [side * (3 + rnd() * 1.2), -2.6 - rnd() * 1];
        nextGazeAt = now + 1200 + rnd() * 2000;
      } else {
        const far = rnd() < 0.3;
        gazeTarget = far
          ? [(rnd() < 0.5 ? -1 : 1) * (2.5 + rnd() * 1.5), (rnd() - 0.6) * 3]
          : [(rnd() - 0.5) * 2, (rnd() - 0.5) * 1.2];
        nextGazeAt = now + 900 + rnd() * 2800;
      }
    }
  }

  const api = {
    svg,
    appliedVisemes,
    get resting() {
      return cfg.resting;
    },
    get face() {
      return { ...cfg, accessories: [...cfg.accessories] };
    },

    /** Show a mouth shape (one of VISEMES; weight 0..1 blends it with "rest"). */
    setViseme(name, weight = 1) {
      const key = VISEME_ALIASES[name] ?? name;
      const shape = MOUTHS[key];
      if (!shape) return;
      const now = performance.now();
      const wgt = clamp(Number(weight) || 0);
      const to = {};
      for (const k of MOUTH_KEYS) to[k] = MOUTHS.rest[k] + (shape[k] - MOUTHS.rest[k]) * wgt;
      retarget(mouthT, to, VISEME_EASE_MS, now);
      lastVisemeAt = now;
      if (key !== viseme) {
        viseme = key;
        appliedVisemes.push({ t: now, name: key });
        if (appliedVisemes.length > 500) appliedVisemes.splice(0, appliedVisemes.length - 500);
      }
    },

    /** The fallback mouth: open in proportion to the audio level (0..1); ignored while
     * visemes arrive (one seen in the last VISEME_HOLD_MS). */
    setLevel(x) {
      const now = performance.now();
      if (now - lastVisemeAt < VISEME_HOLD_MS) return;
      const open = clamp(Number(x) || 0) * 0.9;
      viseme = open > 0.02 ? "level" : "rest";
      retarget(mouthT, M({ open, teeth: 0.35 * clamp(open * 3), wide: 0.05 }), VISEME_EASE_MS, now);
    },

    /** Ease to an expression (scaled by the avatar's expressiveness) over ~250 ms. */
    setExpression(name, intensity = 1) {
      if (!EXPRS[name]) return;
      const now = performance.now();
      // The current look (at the old intensity) is where the new one starts from.
      const cur = valueAt(exprT, now);
      const scale = exprIntensity;
      for (const k of EXPR_KEYS) cur[k] *= scale;
      exprIntensity = clamp(Number(intensity) || 0);
      const s = exprIntensity > 0 ? exprIntensity : 1;
      for (const k of EXPR_KEYS) cur[k] /= s;
      exprT.from = cur;
      exprT.to = EXPRS[name];
      exprT.t0 = now;
      exprT.dur = EXPRESSION_EASE_MS;
      expression = name;
    },

    /** Where the eyes look: "user" (at the viewer, small saccades), "away" (up and aside,
     * thinking), "idle" (wandering). */
    setGaze(mode) {
      if (!GAZES.includes(mode) || mode === gaze) return;
      gaze = mode;
      nextGazeAt = 0;
      if (mode === "user") gazeTarget = [0, 0];
    },

    /** Advance every animation to `nowMs` (performance.now() time) and draw. */
    update(nowMs = performance.now()) {
      const dt = clamp(nowMs - lastUpdate, 0, 100);
      lastUpdate = nowMs;
      idle(nowMs);
      const a = 1 - Math.exp(-dt / 32);
      gazeNow = [lerp(gazeNow[0], gazeTarget[0], a), lerp(gazeNow[1], gazeTarget[1], a)];
      render(nowMs);
    },

    /** How far speech opens the mouth now, 0..1 (an expression's own opening left out). */
    speechOpenness(now = performance.now()) {
      return clamp(valueAt(mouthT, now).open);
    },

    /** How open the mouth is right now, 0 (closed) .. 1 (wide open). */
    mouthOpenness(now = performance.now()) {
      const m = valueAt(mouthT, now);
      const e = valueAt(exprT, now);
      return clamp(Math.max(m.open, e.open * cfg.expressiveness * exprIntensity));
    },

    state() {
      return {
        viseme,
        expression,
        gaze,
        mouthOpen: api.mouthOpenness(),
        blinking: blinkingNow || blinkAmount(performance.now()) > 0.05,
      };
    },

    /** Redraw with other face settings (the designer's live preview); state is kept. */
    set(newFace) {
      const before = cfg.resting;
      cfg = normalizeFace(newFace);
      if (expression === before && cfg.resting !== before) {
        expression = cfg.resting;
        exprT.from = EXPRS[cfg.resting];
        exprT.to = EXPRS[cfg.resting];
      }
      build();
    },

    /** Remove the SVG and leave the shared loop. */
    destroy() {
      loop.faces.delete(api);
      svg.remove();
      parts = null;
    },
  };

  build();
  return api;
}

function drawCap(g, geo, c) {
  const { T, W } = geo;
  const band = T + 21;
  const navy = "#1d2840";
  const white = "#f4f4f0";
  // Crown: white top, wider than the head, tilted back a little.
  g.append(
    el(null, "path", {
      d: `M${P(100 - W - 4, band)}C${P(100 - W - 12, T - 8, 100 - W + 4, T - 22, 100, T - 23)}C${P(100 + W - 4, T - 22, 100 + W + 12, T - 8, 100 + W + 4, band)}Z`,
      fill: white,
      stroke: "#c9ccd2",
      "stroke-width": "1.2",
    }),
  );
  g.append(el(null, "path", { d: `M${P(100 - W + 4, T - 8)}Q${P(100, T - 18, 100 + W - 4, T - 8)}`, fill: "none", stroke: "#dadde2", "stroke-width": "2" }));
  // Band, badge, visor.
  g.append(el(null, "path", { d: `M${P(100 - W - 4, band)}L${P(100 - W - 2, band - 9)}Q${P(100, band - 13, 100 + W + 2, band - 9)}L${P(100 + W + 4, band)}Q${P(100, band - 3, 100 - W - 4, band)}Z`, fill: navy }));
  g.append(el(null, "path", { d: `M${P(100 - W - 3, band - 2)}Q${P(100, band - 6, 100 + W + 3, band - 2)}`, fill: "none", stroke: c.gold, "stroke-width": "1.6" }));
  g.append(el(null, "ellipse", { cx: 100, cy: n1(band - 8), rx: 7, ry: 5.5, fill: c.gold, stroke: mix(c.gold, "#4b3300", 0.4), "stroke-width": "0.8" }));
  g.append(el(null, "path", { d: `M${P(100, band - 12)}L${P(100, band - 4)}M${P(96, band - 9)}Q${P(100, band - 5, 104, band - 9)}`, fill: "none", stroke: navy, "stroke-width": "1.1", "stroke-linecap": "round" }));
  g.append(el(null, "path", { d: `M${P(100 - W + 2, band - 1)}Q${P(100, band + 2, 100 + W - 2, band - 1)}Q${P(100 + W * 0.6, band + 11, 100, band + 12)}Q${P(100 - W * 0.6, band + 11, 100 - W + 2, band - 1)}Z`, fill: "#14161c" }));
  g.append(el(null, "path", { d: `M${P(100 - W * 0.6, band + 4)}Q${P(100, band + 8, 100 + W * 0.6, band + 4)}`, fill: "none", stroke: "#3b404c", "stroke-width": "1.2" }));
}

/** Hair shapes (attribute objects) behind and in front of the head, per hairstyle. */
function hairShapes(style, g, c, fill) {
  const { T, yC, W, yJ, browY, eyeY } = g;
  const back = [];
  const front = [];
  const strand = (d, extra = {}) => ({ d, fill: "none", stroke: c.hairShade, "stroke-width": "1.2", "stroke-linecap": "round", opacity: "0.55", ...extra });
  const cap = (hairline, temple) =>
    // The hair covering the top of the head down to `temple` at the sides.
    `M${P(100 - W - 2.5, temple)}C${P(100 - W - 5, T - 12, 100 + W + 5, T - 12, 100 + W + 2.5, temple)}` +
    `L${P(100 + W - 3, temple)}C${P(100 + W - 8, hairline + 2, 100 + 30, hairline - 4, 100 + 6, hairline)}` +
    `Q${P(100 - 18, hairline + 5, 100 - W + 6, hairline + 12)}L${P(100 - W + 3, temple)}Z`;
  switch (style) {
    case "short": {
      back.push({ tag: "ellipse", cx: 100, cy: n1(T + (yC - T) * 0.72), rx: n1(W + 3.5), ry: n1((yC - T) * 0.72 + 7), fill: c.hairShade });
      front.push({ d: cap(T + 19, yC - 14), fill });
      for (const sgn of [-1, 1]) {
        front.push({ d: `M${P(100 + sgn * (W + 2), yC - 16)}L${P(100 + sgn * (W - 3), yC - 16)}L${P(100 + sgn * (W - 2.5), eyeY + 2)}L${P(100 + sgn * (W + 0.5), eyeY + 4)}Z`, fill: c.hair });
      }
      front.push(strand(`M${P(100 + 6, T + 19)}Q${P(100 + 22, T + 4, 100 + W - 6, T + 8)}`));
      front.push(strand(`M${P(100 - 10, T + 21)}Q${P(100 - 28, T + 8, 100 - W + 8, T + 14)}`));
      break;
    }
    case "bob": {
      back.push({ d: `M${P(100 - W - 13, yJ + 2)}C${P(100 - W - 20, T - 24, 100 + W + 20, T - 24, 100 + W + 13, yJ + 2)}Q${P(100 + W + 4, yJ + 8, 100 + W - 8, yJ + 2)}L${P(100 - W + 8, yJ + 2)}Q${P(100 - W - 4, yJ + 8, 100 - W - 13, yJ + 2)}Z`, fill: c.hairShade });
      front.push({
        d:
          `M${P(100 - W - 11, yJ)}C${P(100 - W - 16, T - 20, 100 + W + 16, T - 20, 100 + W + 11, yJ)}` +
          `L${P(100 + W - 3, yJ - 4)}C${P(100 + W - 1, eyeY, 100 + W - 4, browY - 2, 100 + W - 12, browY - 5)}` +
          `Q${P(100 + 28, browY - 1, 100 + 14, browY - 5)}Q${P(100, browY - 1, 100 - 14, browY - 5)}Q${P(100 - 28, browY - 1, 100 - W + 12, browY - 5)}` +
          `C${P(100 - W + 4, browY - 2, 100 - W + 1, eyeY, 100 - W + 3, yJ - 4)}Z`,
        fill,
      });
      for (const x of [-24, -8, 8, 24]) front.push(strand(`M${P(100 + x, T - 2)}Q${P(100 + x * 1.15, browY - 14, 100 + x * 1.2, browY - 6)}`));
      break;
    }
    case "long": {
      back.push({ d: `M${P(100 - W - 16, 216)}C${P(100 - W - 30, 140, 100 - W - 26, T - 24, 100, T - 16)}C${P(100 + W + 26, T - 24, 100 + W + 30, 140, 100 + W + 16, 216)}Q${P(100, 224, 100 - W - 16, 216)}Z`, fill: c.hairShade });
      front.push({
        d:
          `M${P(100 - W - 14, 206)}C${P(100 - W - 22, 120, 100 - W - 18, T - 16, 100 + 4, T - 14)}` +
          `C${P(100 + W + 18, T - 16, 100 + W + 22, 120, 100 + W + 14, 206)}` +
          `Q${P(100 + W + 6, 210, 100 + W - 2, 204)}C${P(100 + W - 2, 160, 100 + W + 3, yC, 100 + W - 6, browY - 4)}` +
          `C${P(100 + W - 14, T + 14, 100 + 24, T + 8, 100 + 10, T + 12)}` +
          `C${P(100 - 10, T + 20, 100 - W + 6, browY - 10, 100 - W + 3, eyeY)}` +
          `C${P(100 - W, yC + 10, 100 - W - 2, 170, 100 - W + 1, 204)}Q${P(100 - W - 6, 210, 100 - W - 14, 206)}Z`,
        fill,
      });
      front.push(strand(`M${P(100 + 10, T + 12)}C${P(100 + 26, T + 2, 100 + W, T + 8, 100 + W + 6, yC)}`));
      front.push(strand(`M${P(100 + 6, T - 8)}C${P(100 - 20, T - 4, 100 - W - 8, T + 30, 100 - W - 8, yC + 20)}`));
      front.push(strand(`M${P(100 - W - 4, yC + 10)}C${P(100 - W - 10, 150, 100 - W - 4, 180, 100 - W - 8, 200)}`));
      front.push(strand(`M${P(100 + W + 6, yC + 20)}C${P(100 + W + 10, 150, 100 + W + 4, 180, 100 + W + 8, 200)}`));
      front.push(strand(`M${P(100 + 14, T - 6)}Q${P(100 + 30, T - 8, 100 + 40, T)}`, { stroke: c.hairLight, opacity: "0.6", "stroke-width": "2" }));
      break;
    }
    case "bun": {
      back.push({ tag: "circle", cx: 100, cy: n1(T - 12), r: 18, fill: c.hairShade });
      back.push({ tag: "ellipse", cx: 100, cy: n1(T + (yC - T) * 0.72), rx: n1(W + 2.5), ry: n1((yC - T) * 0.72 + 5), fill: c.hairShade });
      front.push({ tag: "circle", cx: 100, cy: n1(T - 13), r: 15.5, fill });
      front.push(strand(`M${P(88, T - 14)}Q${P(100, T - 26, 112, T - 12)}`));
      front.push({ d: `M${P(100 - W - 1.5, yC - 10)}C${P(100 - W - 4, T - 10, 100 + W + 4, T - 10, 100 + W + 1.5, yC - 10)}L${P(100 + W - 3, yC - 10)}C${P(100 + W - 10, T + 14, 100 + 20, T + 12, 100, T + 14)}C${P(100 - 20, T + 12, 100 - W + 10, T + 14, 100 - W + 3, yC - 10)}Z`, fill });
      front.push({ tag: "rect", x: 90, y: n1(T - 2), width: 20, height: 4, rx: 2, fill: c.hairDeep });
      for (const x of [-30, -14, 14, 30]) front.push(strand(`M${P(100 + x * 0.2, T + 13)}Q${P(100 + x * 0.8, T + 4, 100 + x * 1.3, T + 12)}`));
      break;
    }
    case "curly": {
      const rx = W + 8;
      const ry = yC - T + 12;
      back.push({ tag: "ellipse", cx: 100, cy: n1(yC - 4), rx: n1(rx + 2), ry: n1(ry + 2), fill: c.hairShade });
      for (let i = 0; i <= 14; i++) {
        const a = Math.PI * (0.98 + (i / 14) * 1.04);
        back.push({ tag: "circle", cx: n1(100 + Math.cos(a) * rx), cy: n1(yC - 4 + Math.sin(a) * ry), r: 10.5, fill: c.hairShade });
      }
      for (const sgn of [-1, 1]) for (const dy of [6, 20, 34]) back.push({ tag: "circle", cx: n1(100 + sgn * (W + 6)), cy: n1(yC + dy), r: 9, fill: c.hairShade });
      front.push({ d: cap(T + 18, yC - 12), fill });
      for (let i = 0; i <= 8; i++) {
        const x = 100 - W + 6 + (i / 8) * (2 * W - 12);
        const y = T + 16 + Math.abs(x - 100) * 0.2 - 2;
        front.push({ tag: "circle", cx: n1(x), cy: n1(y), r: 7.5, fill: c.hair });
        front.push(strand(`M${P(x - 3, y + 1)}q${P(3, -5, 5, 1)}`, { stroke: c.hairLight, opacity: "0.7" }));
      }
      break;
    }
    case "spiky": {
      back.push({ tag: "ellipse", cx: 100, cy: n1(T + (yC - T) * 0.72), rx: n1(W + 3), ry: n1((yC - T) * 0.72 + 6), fill: c.hairShade });
      const spikes = 9;
      let d = `M${P(100 - W - 2.5, yC - 14)}`;
      for (let i = 0; i <= spikes; i++) {
        const a = Math.PI * (1.05 + (i / spikes) * 0.9);
        const r1x = W + 2;
        const r1y = yC - T + 4;
        const bx = 100 + Math.cos(a) * r1x;
        const by = yC - 14 + Math.sin(a) * (r1y - 6);
        const sa = Math.PI * (1.05 + ((i + 0.5) / spikes) * 0.9);
        if (i < spikes) {
          const tx = 100 + Math.cos(sa) * (r1x + 14);
          const ty = yC - 14 + Math.sin(sa) * (r1y + 12);
          d += `L${P(bx, by)}L${P(tx, ty)}`;
        } else d += `L${P(bx, by)}`;
      }
      d += `L${P(100 + W + 2.5, yC - 14)}L${P(100 + W - 3, yC - 14)}C${P(100 + W - 8, T + 20, 100 + 28, T + 14, 100 + 12, T + 22)}L${P(100 + 4, T + 14)}L${P(100 - 6, T + 23)}L${P(100 - 14, T + 15)}Q${P(100 - 30, T + 18, 100 - W + 3, yC - 14)}Z`;
      front.push({ d, fill, "stroke-linejoin": "round" });
      break;
    }
    default:
      // No hair: a soft highlight on the scalp.
      front.push({ tag: "ellipse", cx: 88, cy: n1(T + 12), rx: 16, ry: 7, fill: "#ffffff", opacity: "0.16" });
  }
  return { back, front };
}

/** A small seeded random generator, so each face has its own rhythm. */
function mulberry(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------- one shared animation loop ----------
const loop = { faces: new Set(), raf: 0 };

function tick(now) {
  for (const f of loop.faces) f.update(now);
  loop.raf = loop.faces.size ? requestAnimationFrame(tick) : 0;
}

/**
 * Animate these faces from one shared requestAnimationFrame loop (for pages that show only
 * faces; a page with its own loop calls face.update(now) there instead). Returns a function
 * that takes them out of the loop again.
 */
export function animateFaces(faces) {
  const list = [...faces];
  for (const f of list) loop.faces.add(f);
  if (!loop.raf && loop.faces.size) loop.raf = requestAnimationFrame(tick);
  return () => {
    for (const f of list) loop.faces.delete(f);
  };
}
