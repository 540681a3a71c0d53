// The lobby: the avatars (each its own face, blinking and breathing; persona, voice), who is
// talking right now, and the health of each part with what to do when one is down.
// Refreshes every few seconds.
import { animateFaces, createFace } from "./face.js";
import { getJSON, hashHue, showAccount, withCode } from "./ui.js";

const $ = (id) => document.getElementById(id);
const PARTS = { llm: "Language model", stt: "Speech recognition", tts: "Voices", memory: "Memory" };
const REFRESH_MS = 5000;
const faces = []; // every card's face, animated by face.js's one shared loop

function avatarCard(a) {
  if (a.error) return brokenCard(a);
  const li = document.createElement("li");
  li.className = "avatar-card";
  li.style.setProperty("--hue", String(hashHue(a.id)));
  const link = document.createElement("a");
  link.href = `/talk?avatar=${encodeURIComponent(a.id)}`;
  link.setAttribute("aria-label", `Talk to ${a.name}`);
  const art = document.createElement("span");
  art.className = "avatar-face";
  art.setAttribute("aria-hidden", "true");
  faces.push(createFace(art, a.face, { label: `${a.name}'s face` }));
  const name = document.createElement("h3");
  name.textContent = a.name;
  const blurb = document.createElement("p");
  blurb.textContent = a.blurb;
  const voice = document.createElement("p");
  voice.className = "avatar-voice";
  voice.textContent = `Voice: ${a.voice}${a.speed !== 1 ? ` at ${a.speed}x` : ""}`;
  link.append(art, name, blurb, voice);
  if (a.owner) {
    const owner = document.createElement("p");
    owner.className = "avatar-voice";
    owner.textContent = a.kind === "yours" ? "Made by you" : `Made by ${a.owner}`;
    link.append(owner);
  }
  const actions = document.createElement("div");
  actions.className = "card-actions";
  const edit = document.createElement("a");
  edit.href = `/avatars/edit?${a.editable ? "avatar" : "from"}=${encodeURIComponent(a.id)}`;
  edit.textContent = a.editable ? "Edit" : "Copy";
  edit.setAttribute("aria-label", `${edit.textContent} ${a.name}`);
  actions.append(edit);
  li.append(link, actions);
  return li;
}

/** An avatar file that does not validate: say which and why, instead of hiding it. */
function brokenCard(a) {
  const li = document.createElement("li");
  li.className = "avatar-card broken";
  const box = document.createElement("a");
  box.href = "#";
  box.addEventListener("click", (e) => e.preventDefault());
  const name = document.createElement("h3");
  name.textContent = `${a.id} (can't start)`;
  const why = document.createElement("p");
  why.textContent = a.error;
  box.append(name, why);
  li.append(box);
  return li;
}

function newAvatarCard() {
  const li = document.createElement("li");
  li.className = "avatar-card new-avatar";
  const link = document.createElement("a");
  link.href = "/avatars/edit";
  const plus = document.createElement("span");
  plus.className = "avatar-art";
  plus.setAttribute("aria-hidden", "true");
  plus.textContent = "+";
  const label = document.createElement("h3");
  label.textContent = "New avatar";
  link.append(plus, label);
  li.append(link);
  return li;
}

function showPresent(present, avatars) {
  const names = Object.fromEntries(avatars.map((a) => [a.id, a.name]));
  const items = present.map((p) => {
    const li = document.createElement("li");
    li.textContent = `${p.username} is talking to ${names[p.avatar] ?? p.avatar}`;
    return li;
  });
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "Nobody is talking right now.";
    items.push(li);
  }
  $("present").replaceChildren(...items);
}

function showHealth(h) {
  $("health").replaceChildren(
    ...Object.entries(PARTS).map(([key, label]) => {
      const part = h[key] ?? { ok: false, fix: "No report." };
      const li = document.createElement("li");
      li.dataset.ok = String(part.ok);
      const title = document.createElement("strong");
      title.textContent = `${label}: ${part.ok ? "ok" : "down"}`;
      li.append(title);
      const detail = document.createElement("p");
      detail.append(...withCode(part.ok ? (part.note ?? part.backend ?? part.engine ?? "") : part.fix));
      li.append(detail);
      return li;
    }),
  );
}

async function refresh(avatars) {
  const [room, health] = await Promise.all([getJSON("/api/room"), getJSON("/api/health")]);
  showPresent(room.present, avatars);
  showHealth(health);
  $("share").hidden = !room.urls.length;
  $("urls").replaceChildren(
    ...room.urls.map((u) => {
      const li = document.createElement("li");
      const code = document.createElement("code");
      code.textContent = u;
      li.append(code);
      return li;
    }),
  );
}

async function init() {
  await showAccount($("account"));
  const avatars = await getJSON("/api/avatars");
  $("avatars").replaceChildren(...avatars.map(avatarCard), newAvatarCard());
  animateFaces(faces);
  await refresh(avatars);
  setInterval(() => refresh(avatars).catch(() => {}), REFRESH_MS);
}

init();
