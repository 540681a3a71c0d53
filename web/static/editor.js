// The avatar editor: create, change, copy or delete an avatar, and hear its voice first.
//   /avatars/edit              a new avatar
//   /avatars/edit?avatar=ID    change ID (if it is yours; otherwise shown read-only)
//   /avatars/edit?from=ID      a new avatar starting as a copy of ID
// The server validates and answers field by field; each message is shown under its input.
// The face designer redraws the preview face (face.js) as each setting changes; a saved
// avatar can also get its own 3D model (a .vrm upload, PUT /api/avatars/{id}/vrm).
import { animateFaces, createFace } from "./face.js";
import { api, getJSON, hashHue, HttpError, showAccount, toLogin } from "./ui.js";

const $ = (id) => document.getElementById(id);
const form = $("form");
const params = new URLSearchParams(location.search);

let config = null; // every setting of the avatar being edited (fields not on the form kept)
let editing = null; // the id being changed, or null when creating
let idTouched = false; // once the person types an id, the name no longer suggests one
let designFace = null; // the face designer's big face
let headFace = null; // the small face in the page header
let hasModel = false; // an uploaded .vrm exists for the avatar being edited

/** An id suggestion from a name: "Captain Rook" -> "captain-rook". */
function slug(name) {
  const s = name
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^[^a-z]+|-+$/g, "");
  return s.slice(0, 40).replace(/-+$/, "");
}

const getPath = (obj, path) => path.split(".").reduce((o, k) => o?.[k], obj);

function setPath(obj, path, value) {
  const keys = path.split(".");
  const last = keys.pop();
  let o = obj;
  for (const k of keys) o = o[k] ??= {};
  o[last] = value;
}

/** A field by name: the element, or the first of a group (the accessory checkboxes). */
function fieldEl(name) {
  const f = form.elements[name];
  return f instanceof RadioNodeList ? f[0] : f;
}

function fill(values) {
  for (const el of form.elements) {
    if (!el.name) continue;
    const v = getPath(values, el.name);
    if (el.type === "checkbox" && el.dataset.list !== undefined) el.checked = (v ?? []).includes(el.value);
    else if (el.type === "checkbox") el.checked = Boolean(v);
    else if (el.dataset.lines !== undefined) el.value = (v ?? []).join("\n");
    else el.value = v ?? "";
  }
  showOutputs();
  showArt();
  showFace();
}

function read() {
  const out = structuredClone(config);
  const lists = new Set(); // checkbox groups: the values of the checked ones, in page order
  for (const el of form.elements) {
    if (!el.name) continue;
    let v;
    if (el.type === "checkbox" && el.dataset.list !== undefined) {
      if (!lists.has(el.name)) setPath(out, el.name, []);
      lists.add(el.name);
      if (el.checked) getPath(out, el.name).push(el.value);
      continue;
    }
    if (el.type === "checkbox") v = el.checked;
    else if (el.type === "range" || el.type === "number") v = el.value === "" ? null : Number(el.value);
    else if (el.dataset.lines !== undefined)
      v = el.value.split("\n").map((l) => l.trim()).filter(Boolean);
    else v = el.value;
    setPath(out, el.name, v);
  }
  return out;
}

function showOutputs() {
  for (const out of form.querySelectorAll("output[data-for]")) {
    const v = Number(form.elements[out.dataset.for].value);
    out.textContent =
      out.dataset.for === "voice.speed"
        ? `${v.toFixed(2)}x`
        : out.dataset.for === "face.expressiveness"
          ? `${Math.round(v * 100)}%`
          : v.toFixed(2);
  }
}

function showArt() {
  const name = form.elements.name.value || "?";
  const id = form.elements.id.value || name;
  document.body.style.setProperty("--hue", String(hashHue(id)));
}

/** The face settings as the form has them now. */
const formFace = () => read().face ?? {};

/** Redraw both faces from the form (the designer's live preview). */
function showFace() {
  const face = formFace();
  const label = `${form.elements.name.value || "The avatar"}'s face`;
  if (!designFace) {
    designFace = createFace($("face-preview"), face, { label });
    headFace = createFace($("art"), face, { label });
    animateFaces([designFace, headFace]);
  } else {
    designFace.set(face);
    headFace.set(face);
  }
  designFace.svg.setAttribute("aria-label", label);
}

let tryTimer = 0;

/** Show an expression on the preview for a few seconds, then go back to resting. */
function tryExpression(name) {
  clearTimeout(tryTimer);
  for (const b of form.querySelectorAll("[data-try]")) b.setAttribute("aria-pressed", String(b.dataset.try === name));
  designFace.setExpression(name);
  designFace.setGaze(name === "thinking" ? "away" : "user");
  tryTimer = setTimeout(() => {
    designFace.setExpression(designFace.resting);
    designFace.setGaze("user");
    for (const b of form.querySelectorAll("[data-try]")) b.setAttribute("aria-pressed", "false");
  }, 2500);
}

// "Hello! How are you today?" as mouth shapes, ~70-140 ms each.
const TALK = [
  ["KG", 90], ["E", 110], ["L", 90], ["O", 160], ["rest", 120],
  ["KG", 80], ["AA", 130], ["U", 120], ["rest", 50], ["AA", 100], ["R", 90], ["U", 140], ["rest", 60],
  ["TH", 90], ["U", 80], ["KG", 70], ["E", 140], ["rest", 300],
  ["MBP", 90], ["AA", 120], ["S", 110], ["I", 90], ["KG", 80], ["FV", 100], ["O", 150], ["rest", 0],
];
let talking = 0;

function talkPreview() {
  clearTimeout(talking);
  let i = 0;
  const step = () => {
    const [name, ms] = TALK[i++];
    designFace.setViseme(name);
    talking = i < TALK.length ? setTimeout(step, ms) : 0;
  };
  step();
}

function clearErrors() {
  for (const el of form.querySelectorAll("[data-error-for]")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  $("form-error").textContent = "";
}

/** Show the server's messages under their fields; a message with no field goes on top. */
function showErrors(err) {
  clearErrors();
  const fields = err.payload?.errors ?? [];
  let first = null;
  const loose = [];
  for (const { field, message } of fields) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
    if (!slot) {
      loose.push(`${field}: ${message}`);
      continue;
    }
    slot.textContent = message;
    const input = form.elements[field] && fieldEl(field);
    input?.setAttribute("aria-invalid", "true");
    first ??= input;
  }
  $("form-error").textContent = fields.length
    ? `Please fix the marked field${fields.length > 1 ? "s" : ""}.${loose.length ? ` ${loose.join("; ")}` : ""}`
    : err.message;
  first?.focus();
}

function setStatus(text) {
  $("status").textContent = text;
}

function showMode(avatar) {
  const mine = !avatar || avatar.editable;
  for (const el of form.elements) if (el.id !== "preview" && el.dataset.alwaysOn === undefined) el.disabled = !mine;
  form.elements.id.disabled = Boolean(editing);
  $("save").hidden = !mine;
  $("save").textContent = editing ? "Save changes" : "Create avatar";
  $("delete").hidden = !(editing && mine);
  $("talk").hidden = !editing;
  $("copy").hidden = !editing;
  if (editing) {
    $("talk").href = `/talk?avatar=${encodeURIComponent(editing)}`;
    $("talk").textContent = `Talk to ${config.name}`;
    $("copy").href = `/avatars/edit?from=${encodeURIComponent(editing)}`;
    $("title").textContent = mine ? `Edit ${config.name}` : config.name;
    document.title = `${config.name} · Avatar editor`;
  }
  const note = $("readonly");
  note.hidden = mine;
  if (!mine) {
    note.textContent =
      avatar.kind === "room"
        ? `${config.name} is one of the room's avatars, so it can't be changed here. Make a copy to make it your own.`
        : `${config.name} belongs to ${avatar.owner}. Make a copy to make it your own.`;
  }
}

async function save(event) {
  event.preventDefault();
  clearErrors();
  const body = read();
  $("save").disabled = true;
  try {
    if (editing) {
      await api("PUT", `/api/avatars/${encodeURIComponent(editing)}`, body);
      config = body;
      setStatus(`Saved. The next call with ${body.name} uses these settings.`);
    } else {
      const made = await api("POST", "/api/avatars", body);
      editing = made.id;
      config = { ...body, id: made.id };
      history.replaceState(null, "", `/avatars/edit?avatar=${encodeURIComponent(made.id)}`);
      setStatus(`${body.name} is ready: it is in the lobby for everyone in the room.`);
    }
    showMode({ editable: true });
    showModel();
  } catch (err) {
    if (err instanceof HttpError) showErrors(err);
    else throw err;
  } finally {
    $("save").disabled = false;
  }
}

async function preview() {
  const button = $("preview");
  const voice = read().voice;
  const name = form.elements.name.value.trim();
  const text = name ? `Hi, I'm ${name}. This is how I sound.` : "Hi! This is how I sound.";
  button.disabled = true;
  button.textContent = "Synthesizing…";
  try {
    const res = await fetch("/api/voices/preview", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ voice, text }),
    });
    if (!res.ok) {
      const payload = await res.json().catch(() => null);
      showErrors(new HttpError(payload?.detail ?? `Preview failed (HTTP ${res.status})`, res.status, payload));
      return;
    }
    const audio = $("preview-audio");
    if (audio.src) URL.revokeObjectURL(audio.src);
    audio.src = URL.createObjectURL(await res.blob());
    audio.hidden = false;
    await audio.play().catch(() => {}); // autoplay may be refused; the controls are there
  } finally {
    button.disabled = false;
    button.textContent = "Preview voice";
  }
}

// ---------- the avatar's own 3D model ----------

const MB = (n) => `${(n / 1e6).toFixed(1)} MB`;

/** What the model section offers: nothing until the avatar is saved and is yours. */
function showModel(avatar = { editable: true }) {
  const mine = !avatar || avatar.editable;
  const saved = Boolean(editing);
  $("vrm-unsaved").hidden = saved;
  if (saved && !mine) $("vrm-unsaved").hidden = true;
  $("vrm-file").disabled = !(saved && mine);
  $("vrm-file").closest("label").toggleAttribute("aria-disabled", !(saved && mine));
  $("vrm-remove").hidden = !(saved && mine && hasModel);
  form.elements["face.vrm"].disabled = !(saved && mine);
  if (saved && !$("vrm-status").textContent)
    $("vrm-status").textContent = hasModel ? "A model is uploaded." : "No model uploaded yet.";
}

function modelStatus(text, bad = false) {
  $("vrm-status").textContent = text;
  $("vrm-status").classList.toggle("bad", bad);
}

/** PUT the chosen .vrm file as the raw body, with upload progress. */
function uploadModel() {
  const input = $("vrm-file");
  const file = input.files?.[0];
  if (!file || !editing) return;
  if (file.size > 30e6) {
    modelStatus(`${file.name} is ${MB(file.size)}; a model may be at most 30 MB.`, true);
    input.value = "";
    return;
  }
  const bar = $("vrm-progress");
  bar.hidden = false;
  bar.value = 0;
  input.disabled = true;
  modelStatus(`Uploading ${file.name} (${MB(file.size)})…`);
  const xhr = new XMLHttpRequest();
  xhr.open("PUT", `/api/avatars/${encodeURIComponent(editing)}/vrm`);
  xhr.setRequestHeader("Content-Type", "model/gltf-binary");
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.addEventListener("progress", (e) => {
    if (!e.lengthComputable) return;
    bar.value = e.loaded / e.total;
    modelStatus(`Uploading ${file.name}: ${Math.round((100 * e.loaded) / e.total)}%`);
  });
  const done = () => {
    bar.hidden = true;
    input.disabled = false;
    input.value = "";
  };
  xhr.addEventListener("load", () => {
    done();
    let payload = null;
    try {
      payload = JSON.parse(xhr.responseText);
    } catch {
      /* not JSON: the status code says enough */
    }
    if (xhr.status === 401) return toLogin();
    if (xhr.status === 200) {
      hasModel = true;
      const n = payload?.expressions?.length ?? 0;
      modelStatus(
        `Uploaded: VRM ${payload?.version ?? "?"}, ${MB(payload?.size ?? file.size)}, ` +
          `${n} expression${n === 1 ? "" : "s"}${n ? ` (${payload.expressions.join(", ")})` : ""}.`,
      );
      form.elements["face.vrm"].checked = true; // most people upload a model to show it
      showModel();
      $("status").textContent = "Model uploaded. Save changes to show it on the talk page.";
      return;
    }
    const why =
      typeof payload?.detail === "string"
        ? payload.detail
        : xhr.status === 413
          ? "The file is too big: a model may be at most 30 MB."
          : xhr.status === 415
            ? "That is not a glTF binary (.vrm) file."
            : `The upload failed (HTTP ${xhr.status}).`;
    modelStatus(why, true);
  });
  xhr.addEventListener("error", () => {
    done();
    modelStatus("The upload did not reach the server. Is it still running?", true);
  });
  xhr.send(file);
}

async function removeModel() {
  if (!editing) return;
  try {
    await api("DELETE", `/api/avatars/${encodeURIComponent(editing)}/vrm`);
    hasModel = false;
    form.elements["face.vrm"].checked = false;
    modelStatus("Model removed. Save changes so the talk page shows the drawn face.");
  } catch (err) {
    if (err.status === 404) {
      hasModel = false;
      modelStatus("There was no model to remove.");
    } else modelStatus(err.message, true);
  }
  showModel();
}

async function remove() {
  const ok = confirm(
    `Delete ${config.name}?\n\nIts avatar file goes, and so does every conversation and memory ` +
      `anyone in the room had with ${config.name}. This can't be undone.`,
  );
  if (!ok) return;
  try {
    await api("DELETE", `/api/avatars/${encodeURIComponent(editing)}`);
    location.assign("/");
  } catch (err) {
    $("form-error").textContent = err.message;
  }
}

async function loadChoices() {
  const [voices, models] = await Promise.all([getJSON("/api/voices"), getJSON("/api/llm/models")]);
  $("voices").replaceChildren(...voices.map((v) => new Option(v, v)));
  $("models").replaceChildren(...models.models.map((m) => new Option(m, m)));
  $("model-note").textContent = models.note;
}

async function init() {
  await showAccount($("account"));
  await loadChoices();
  const id = params.get("avatar");
  const from = params.get("from");
  let avatar = null;
  try {
    if (id) {
      avatar = await getJSON(`/api/avatars/${encodeURIComponent(id)}`);
      config = avatar.config;
      editing = id;
    } else if (from) {
      const source = await getJSON(`/api/avatars/${encodeURIComponent(from)}`);
      config = { ...source.config, id: "", name: `${source.config.name} (copy)` };
      $("title").textContent = `New avatar, from ${source.config.name}`;
    } else {
      config = await getJSON("/api/avatar-template");
    }
  } catch (err) {
    setStatus(err.message);
    form.hidden = true;
    return;
  }
  if (config.voice && !$("voices").querySelector(`option[value="${CSS.escape(config.voice.piper_voice)}"]`)) {
    // A voice given as a file path in a hand-written avatar: keep it selectable.
    $("voices").append(new Option(config.voice.piper_voice, config.voice.piper_voice));
  }
  fill(config);
  if (!editing) {
    form.elements.id.value = slug(form.elements.name.value);
  }
  for (const slot of form.querySelectorAll("[data-error-for]")) {
    if (form.elements[slot.dataset.errorFor]) fieldEl(slot.dataset.errorFor).setAttribute("aria-describedby", slot.id);
  }
  hasModel = Boolean(avatar?.vrm);
  showMode(avatar);
  showModel(avatar);
  form.hidden = false; // only now: typing before the settings arrive would be overwritten
  form.addEventListener("input", (e) => {
    if (e.target.name === "id") idTouched = true;
    if (e.target.name === "name" && !editing && !idTouched) form.elements.id.value = slug(e.target.value);
    const slot = form.querySelector(`[data-error-for="${CSS.escape(e.target.name ?? "")}"]`);
    if (slot) slot.textContent = "";
    e.target.removeAttribute?.("aria-invalid");
    showOutputs();
    showArt();
    const drawn = !["face.vrm", "face.emotion_tags"].includes(e.target.name); // not the look
    if (e.target.name?.startsWith("face.") && drawn) showFace();
  });
  form.addEventListener("submit", save);
  for (const b of form.querySelectorAll("[data-try]")) b.addEventListener("click", () => tryExpression(b.dataset.try));
  $("face-talk").addEventListener("click", talkPreview);
  $("vrm-file").addEventListener("change", uploadModel);
  $("vrm-remove").addEventListener("click", removeModel);
  $("preview").addEventListener("click", preview);
  $("delete").addEventListener("click", remove);
}

init();
