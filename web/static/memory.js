// The memory page: what each avatar remembers about you, where each memory came from, and
// deleting any of it. Talks to the REST API in web/memory_api.py. Every piece of data goes
// into the page as text (textContent), never as markup.
import { api, getJSON, hashHue, requireSignIn, withCode } from "./ui.js";

const $ = (id) => document.getElementById(id);
const ui = {
  root: document.documentElement,
  banner: $("banner"),
  back: $("back"),
  backLabel: $("back-label"),
  title: $("title"),
  avatars: $("avatars"),
  status: $("status"),
  search: $("search"),
  q: $("q"),
  profile: $("profile"),
  cards: $("cards"),
  cardsTitle: $("cards-title"),
  cardsCount: $("cards-count"),
  cardsEmpty: $("cards-empty"),
  convs: $("convs"),
  convsTitle: $("convs-title"),
  convsCount: $("convs-count"),
  convsEmpty: $("convs-empty"),
  forget: $("forget"),
  forgetResult: $("forget-result"),
};

const SEARCH_DELAY_MS = 300;
const SEARCH_LIMIT = 50;

let avatars = [];
let avatar = null; // the avatar whose memories are shown
let query = ""; // the search text ("" lists everything)
let mySessions = new Set(); // this avatar's conversations (to say whose words a source is)
let generation = 0; // bumped on every load: answers to an older one are dropped
let searchTimer = 0;

// ---------- start-up ----------

async function init() {
  setStatus("Loading…");
  try {
    await requireSignIn();
    avatars = (await getJSON("/api/avatars")).filter((a) => !a.error); // broken files: lobby
  } catch (e) {
    return showError(`Could not load the avatars: ${e.message}`);
  }
  if (!avatars.length) return showError("This server offers no avatars.");

  const params = new URLSearchParams(location.search);
  query = (params.get("q") ?? "").trim();
  ui.q.value = query;
  const wanted = params.get("avatar") ?? avatarFromReferrer();
  selectAvatar(avatars.find((a) => a.id === wanted) ?? avatars[0]);
  if (!params.get("avatar")) writeURL("replace"); // so a reload shows the same avatar

  ui.q.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(runSearch, SEARCH_DELAY_MS);
  });
  ui.search.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(searchTimer);
    runSearch();
  });
  ui.forget.addEventListener("click", forgetMe);
  addEventListener("popstate", () => {
    const p = new URLSearchParams(location.search);
    query = (p.get("q") ?? "").trim();
    ui.q.value = query;
    selectAvatar(avatars.find((a) => a.id === p.get("avatar")) ?? avatars[0]);
    load();
  });

  await load();
  if (wanted && wanted !== avatar.id) {
    setStatus(`There is no avatar “${wanted}” here; showing ${avatar.name} instead.`, "warn");
  }
}

/** Coming from the talk page of one avatar (its link has no ?avatar): show that avatar. */
function avatarFromReferrer() {
  try {
    const from = new URL(document.referrer);
    return from.origin === location.origin ? from.searchParams.get("avatar") : null;
  } catch {
    return null;
  }
}

function selectAvatar(a) {
  avatar = a;
  document.title = `What ${a.name} remembers · Local avatars`;
  ui.title.textContent = `What ${a.name} remembers about you`;
  ui.back.href = `/talk?avatar=${encodeURIComponent(a.id)}`;
  ui.backLabel.textContent = `Back to talking with ${a.name}`;
  // Same colours as the avatar's talk page.
  ui.root.style.setProperty("--hue", String(hashHue(a.id)));
  renderAvatarPicker();
}

function renderAvatarPicker() {
  ui.avatars.replaceChildren(
    ...avatars.map((a) => {
      const link = el("a", { class: "mem-avatar", text: a.name });
      link.href = `?avatar=${encodeURIComponent(a.id)}`;
      if (a.id === avatar.id) link.setAttribute("aria-current", "page");
      link.addEventListener("click", (event) => {
        if (event.ctrlKey || event.metaKey || event.shiftKey || event.altKey || event.button) return;
        event.preventDefault();
        if (a.id === avatar.id) return;
        selectAvatar(a);
        writeURL("push");
        load();
      });
      return link;
    }),
  );
  ui.avatars.hidden = avatars.length < 2;
}

function writeURL(how) {
  const params = new URLSearchParams({ avatar: avatar.id });
  if (query) params.set("q", query);
  const url = `${location.pathname}?${params}`;
  if (how === "push") history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

function runSearch() {
  const q = ui.q.value.trim();
  if (q === query) return;
  query = q;
  writeURL("replace");
  load();
}

// ---------- loading ----------

/** Load the profile, memories and conversations of the current avatar (matching the query). */
async function load() {
  const mine = ++generation;
  const a = avatar;
  const q = query;
  hideError();
  setStatus(q ? `Searching for “${q}”…` : `Loading what ${a.name} remembers…`);
  ui.root.setAttribute("aria-busy", "true");
  const base = `avatar=${encodeURIComponent(a.id)}`;
  try {
    // The overview always: it has the profile, and which conversations are this avatar's.
    const [overview, found, talks] = await Promise.all([
      getJSON(`/api/memory?${base}`),
      q ? getJSON(`/api/memory/cards?${base}&q=${encodeURIComponent(q)}&limit=${SEARCH_LIMIT}`) : null,
      q ? getJSON(`/api/memory/conversations?${base}&q=${encodeURIComponent(q)}`) : null,
    ]);
    if (mine !== generation) return; // the person moved on meanwhile
    mySessions = new Set(overview.conversations.map((c) => c.session_id));
    renderProfile(overview.profile);
    renderCards(found ?? overview.cards);
    renderConversations(talks ?? overview.conversations);
    setStatus(summary(found ?? overview.cards, talks ?? overview.conversations));
  } catch (e) {
    if (mine !== generation) return;
    setStatus("");
    showError(`Could not load the memories: ${e.message}`);
  } finally {
    if (mine === generation) ui.root.removeAttribute("aria-busy");
  }
}

function summary(cards, convs) {
  if (!query && !cards.length && !convs.length) {
    return `${avatar.name} doesn't remember anything about you yet.`;
  }
  const counts = `${plural(cards.length, "memory", "memories")} and ${plural(convs.length, "conversation")}`;
  return query ? `${counts} match “${query}”.` : `${avatar.name} has ${counts} with you.`;
}

/** Only the profile (after a memory is deleted, the profile may have lost a line). */
async function refreshProfile() {
  const mine = generation;
  try {
    const overview = await getJSON(`/api/memory?avatar=${encodeURIComponent(avatar.id)}`);
    if (mine === generation) renderProfile(overview.profile);
  } catch {
    // The deletion worked; a stale profile line until the next load is not worth an error.
  }
}

// ---------- profile ----------

function renderProfile(text) {
  const has = Boolean(text?.trim());
  ui.profile.classList.toggle("mem-empty", !has);
  ui.profile.textContent = has
    ? text
    : `Nothing yet. Tell ${avatar.name} about yourself and it will show up here.`;
}

// ---------- memory cards ----------

function renderCards(cards) {
  ui.cards.replaceChildren(...cards.map(cardItem));
  updateCardsCount();
}

function updateCardsCount() {
  const n = ui.cards.children.length;
  ui.cardsCount.textContent = n ? String(n) : "";
  ui.cardsEmpty.hidden = n > 0;
  ui.cardsEmpty.textContent = query
    ? `No memories match “${query}”.`
    : `${avatar.name} doesn't remember anything about you yet.`;
}

function cardItem(card) {
  const li = el("li", { class: "mem-card" });
  li.dataset.id = card.id;

  const text = el("p", { class: "mem-text", text: card.text });
  const del = el("button", { class: "mem-button", text: "Delete" });
  del.type = "button";
  del.append(el("span", { class: "visually-hidden", text: ` the memory “${card.text}”` }));
  del.addEventListener("click", () => deleteCard(card, li, del));
  const head = el("div", { class: "mem-row" }, text, del);

  const everyone = card.scope === "user";
  const badge = el("span", {
    class: "mem-badge",
    text: everyone ? "About you · every avatar" : `With ${avatar.name} only`,
  });
  badge.dataset.scope = everyone ? "user" : "avatar";
  badge.title = everyone
    ? "Every avatar you talk to knows this."
    : `Only ${avatar.name} knows this; other avatars don't.`;
  const when = el("span", { class: "mem-when" }, "Updated ", timeEl(card.updated || card.created));
  const meta = el("p", { class: "mem-meta" }, badge, when);

  li.append(head, meta, whyDetails(card));
  return li;
}

/** "Why?": the turns a memory was learned from (who said what, when). */
function whyDetails(card) {
  const details = el("details", { class: "mem-why" });
  const summaryEl = el("summary", { text: "Why?" });
  summaryEl.append(el("span", { class: "visually-hidden", text: " Where this memory came from" }));
  details.append(summaryEl);
  const sources = card.sources ?? [];
  if (!sources.length) {
    const gone = card.source_turn_ids?.length
      ? "The conversation this was learned from has been deleted."
      : "There is no record of which conversation this came from.";
    details.append(el("p", { class: "mem-note", text: gone }));
    return details;
  }
  details.append(el("p", { class: "mem-note", text: "Learned from:" }));
  const list = el("ol", { class: "mem-sources" });
  for (const s of sources) {
    const ours = mySessions.has(s.session_id);
    const who = s.role === "user" ? "You" : ours ? avatar.name : "An avatar";
    const whoEl = el("strong", { text: who });
    const line = el("p", { class: "mem-source-meta" }, whoEl, " · ", timeEl(s.started));
    if (!ours) line.append(" · with another avatar");
    list.append(el("li", { class: "mem-source" }, line, el("blockquote", { text: s.text })));
  }
  details.append(list);
  return details;
}

async function deleteCard(card, li, button) {
  const after =
    card.scope === "user"
      ? "No avatar will remember it any more."
      : `${avatar.name} will no longer remember it.`;
  if (!confirm(`Delete this memory?\n\n“${card.text}”\n\n${after}`)) return;
  button.disabled = true;
  hideError();
  try {
    await api("DELETE", `/api/memory/cards/${encodeURIComponent(card.id)}`);
    removeItem(li, ui.cardsTitle);
    updateCardsCount();
    setStatus(`Deleted the memory “${card.text}”.`, "ok");
    refreshProfile();
  } catch (e) {
    if (e.status === 404) {
      removeItem(li, ui.cardsTitle);
      updateCardsCount();
      setStatus("That memory was already deleted.", "warn");
      return;
    }
    button.disabled = false;
    showError(`Could not delete the memory: ${e.message}`);
  }
}

/** Remove a list item, keeping keyboard focus nearby (the next item's button, or the heading). */
function removeItem(li, heading) {
  const next = li.nextElementSibling ?? li.previousElementSibling;
  const hadFocus = li.contains(document.activeElement) || document.activeElement === document.body;
  li.remove();
  if (hadFocus) (next?.querySelector("button") ?? heading).focus();
}

// ---------- conversations ----------

function renderConversations(convs) {
  ui.convs.replaceChildren(...convs.map(conversationItem));
  updateConvsCount();
}

function updateConvsCount() {
  const n = ui.convs.children.length;
  ui.convsCount.textContent = n ? String(n) : "";
  ui.convsEmpty.hidden = n > 0;
  ui.convsEmpty.textContent = query
    ? `No conversations match “${query}”.`
    : `No conversations with ${avatar.name} are stored.`;
}

function conversationItem(c) {
  const li = el("li", { class: "mem-conv" });
  li.dataset.session = c.session_id;
  const date = formatDate(c.started);

  const facts = [plural(c.turns, "turn")];
  if (c.interrupted) facts.push(`${c.interrupted} interrupted`);
  const info = el(
    "div",
    { class: "mem-conv-info" },
    el("p", { class: "mem-conv-when" }, timeEl(c.started)),
    el("p", { class: "mem-meta", text: facts.join(" · ") }),
  );
  const del = el("button", { class: "mem-button", text: "Delete" });
  del.type = "button";
  del.append(el("span", { class: "visually-hidden", text: ` the conversation from ${date}` }));
  del.addEventListener("click", () => deleteConversation(c, li, del));
  li.append(el("div", { class: "mem-row" }, info, del));

  if (c.preview) li.append(el("p", { class: "mem-preview", text: `“${c.preview}”` }));

  const details = el("details", { class: "mem-turns-details" });
  details.append(el("summary", { text: `Show all ${plural(c.turns, "turn")}` }));
  const turns = el("ol", { class: "mem-turns", "aria-label": `Conversation from ${date}` });
  details.append(turns);
  details.addEventListener("toggle", () => {
    if (details.open && !turns.dataset.loaded) loadTurns(c.session_id, turns);
  });
  li.append(details);
  return li;
}

async function loadTurns(sessionId, list) {
  list.dataset.loaded = "loading";
  list.replaceChildren(el("li", { class: "mem-note", text: "Loading…" }));
  try {
    const { turns } = await getJSON(`/api/memory/conversations/${encodeURIComponent(sessionId)}`);
    list.replaceChildren(...turns.map(turnItem));
    list.dataset.loaded = "yes";
  } catch (e) {
    delete list.dataset.loaded; // closing and opening again retries
    list.replaceChildren(el("li", { class: "mem-note", text: `Could not load it: ${e.message}` }));
  }
}

function turnItem(t) {
  const user = t.role === "user";
  const li = el("li", { class: `msg ${user ? "user" : "bot"}` });
  const who = el("span", { class: "who" }, user ? "You" : avatar.name, " · ", timeEl(t.started, "time"));
  const bubble = el("div", { class: "bubble" }, el("span", { class: "text", text: t.text }));
  if (t.interrupted) {
    li.classList.add("interrupted");
    bubble.append(el("span", { class: "mem-interrupted", text: " (interrupted)" }));
  }
  li.append(who, bubble);
  return li;
}

async function deleteConversation(c, li, button) {
  const date = formatDate(c.started);
  const ok = confirm(
    `Delete the conversation with ${avatar.name} from ${date}?\n\n` +
      `All ${plural(c.turns, "turn")} of it are deleted, and so is anything ${avatar.name} ` +
      "learned only from it. Memories that also came up in other conversations are kept.",
  );
  if (!ok) return;
  button.disabled = true;
  hideError();
  try {
    const r = await api("DELETE", `/api/memory/conversations/${encodeURIComponent(c.session_id)}`);
    removeItem(li, ui.convsTitle);
    updateConvsCount();
    const learned = r.cards ? `, and ${plural(r.cards, "memory", "memories")} learned only from it` : "";
    await load(); // memories and the profile may have changed: redraw them
    if (!document.activeElement || document.activeElement === document.body) ui.convsTitle.focus();
    setStatus(`Deleted the conversation from ${date} (${plural(r.turns, "turn")}${learned}).`, "ok");
  } catch (e) {
    if (e.status === 404) {
      removeItem(li, ui.convsTitle);
      updateConvsCount();
      setStatus("That conversation was already deleted.", "warn");
      return;
    }
    button.disabled = false;
    showError(`Could not delete the conversation: ${e.message}`);
  }
}

// ---------- forget me ----------

async function forgetMe() {
  const ok = confirm(
    "Forget everything about you?\n\n" +
      `This deletes everything EVERY avatar remembers about you, not just ${avatar.name}: ` +
      "all conversations, all memories and your profile. It cannot be undone.",
  );
  if (!ok) return;
  ui.forget.disabled = true;
  hideError();
  ui.forgetResult.textContent = "Forgetting…";
  try {
    const { forgotten, left } = await api("POST", "/api/memory/forget");
    const gone =
      `${plural(forgotten.turns, "turn")} of conversation, ${plural(forgotten.chunks, "passage")} ` +
      `and ${plural(forgotten.cards, "memory", "memories")}`;
    const total = (counts) => Object.values(counts).reduce((sum, n) => sum + n, 0);
    const remaining = total(left);
    ui.forgetResult.dataset.kind = remaining ? "warn" : "ok";
    ui.forgetResult.textContent = remaining
      ? `Deleted ${gone}, but ${plural(remaining, "item")} could not be deleted. Try again.`
      : total(forgotten)
        ? `Done. Deleted ${gone}. No avatar remembers anything about you now.`
        : "There was nothing to forget: no avatar remembers anything about you.";
    await load();
  } catch (e) {
    ui.forgetResult.textContent = "";
    showError(`Could not forget you: ${e.message}`);
  } finally {
    ui.forget.disabled = false;
  }
}

// ---------- small helpers ----------

/** An element with a class, text (as text) and children (nodes or strings). */
function el(tag, { class: className, text, ...attrs } = {}, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/** A <time> for seconds since the epoch, in the person's locale. */
function timeEl(seconds, style = "datetime") {
  const date = new Date(seconds * 1000);
  const node = el("time", { text: style === "time" ? formatTime(seconds) : formatDate(seconds) });
  if (!Number.isNaN(date.getTime())) {
    node.dateTime = date.toISOString();
    node.title = date.toLocaleString(undefined, { dateStyle: "full", timeStyle: "medium" });
  }
  return node;
}

function formatDate(seconds) {
  const date = new Date(seconds * 1000);
  if (!seconds || Number.isNaN(date.getTime())) return "an unknown date";
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function formatTime(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

function setStatus(text, kind = "") {
  ui.status.textContent = text;
  ui.status.dataset.kind = kind;
}

function showError(text) {
  ui.banner.querySelector(".banner-text").replaceChildren(...withCode(text));
  ui.banner.hidden = false;
}

function hideError() {
  ui.banner.hidden = true;
}

init();
