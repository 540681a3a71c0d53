// The avatar editor: create, change, copy or delete an avatar, and hear its voice first.
//   /avatars/edit              a new avatar
//   /avatars/edit?avatar=ID    change ID (if it is yours; otherwise shown read-only)
//   /avatars/edit?from=ID      a new avatar starting as a copy of ID
// The server validates and answers field by field; each message is shown under its input.
import { api, getJSON, hashHue, HttpError, initialsOf, showAccount } from "./ui.js";

const $ = (id) => document.getElementById(id);
const form = $("form");
const params = new URLSearchParams(location.search);

let config = null; // every setting of the avatar being edited (fields not on the form kept)
let editing = null; // the id being changed, or null when creating
let idTouched = false; // once the person types an id, the name no longer suggests one

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

function fill(values) {
  for (const el of form.elements) {
    if (!el.name) continue;
    const v = getPath(values, el.name);
    if (el.type === "checkbox") el.checked = Boolean(v);
    else if (el.dataset.lines !== undefined) el.value = (v ?? []).join("\n");
    else el.value = v ?? "";
  }
  showOutputs();
  showArt();
}

function read() {
  const out = structuredClone(config);
  for (const el of form.elements) {
    if (!el.name) continue;
    let v;
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
    out.textContent = out.dataset.for === "voice.speed" ? `${v.toFixed(2)}x` : v.toFixed(2);
  }
}

function showArt() {
  const name = form.elements.name.value || "?";
  const id = form.elements.id.value || name;
  $("art").textContent = initialsOf(name);
  document.body.style.setProperty("--hue", String(hashHue(id)));
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
    const input = form.elements[field];
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
  for (const el of form.elements) if (el.id !== "preview") el.disabled = !mine;
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
    form.elements[slot.dataset.errorFor]?.setAttribute("aria-describedby", slot.id);
  }
  showMode(avatar);
  form.hidden = false; // only now: typing before the settings arrive would be overwritten
  form.addEventListener("input", (e) => {
    if (e.target.name === "id") idTouched = true;
    if (e.target.name === "name" && !editing && !idTouched) form.elements.id.value = slug(e.target.value);
    const slot = form.querySelector(`[data-error-for="${CSS.escape(e.target.name ?? "")}"]`);
    if (slot) slot.textContent = "";
    e.target.removeAttribute?.("aria-invalid");
    showOutputs();
    showArt();
  });
  form.addEventListener("submit", save);
  $("preview").addEventListener("click", preview);
  $("delete").addEventListener("click", remove);
}

init();
