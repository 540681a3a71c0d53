// Sign in or create an account; then go back where the visitor was headed (?next=).
import { api, withCode } from "./ui.js";

const $ = (id) => document.getElementById(id);
let mode = "login";
let room = { passcode_required: false };

function setMode(next) {
  mode = next;
  $("tab-login").setAttribute("aria-selected", String(mode === "login"));
  $("tab-signup").setAttribute("aria-selected", String(mode === "signup"));
  $("submit").textContent = mode === "login" ? "Sign in" : "Create account";
  $("password").autocomplete = mode === "login" ? "current-password" : "new-password";
  $("passcode-row").hidden = !(mode === "signup" && room.passcode_required);
  $("auth-error").textContent = "";
}

/** Only same-site paths: ?next= must not send anyone to another site. */
function nextPage() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

async function submit(e) {
  e.preventDefault();
  const body = { username: $("username").value, password: $("password").value };
  if (mode === "signup") body.passcode = $("passcode").value;
  $("submit").disabled = true;
  try {
    await api("POST", mode === "login" ? "/api/login" : "/api/signup", body, { auth: false });
    location.assign(nextPage());
  } catch (err) {
    $("auth-error").replaceChildren(...withCode(err.message.replace(/ \(HTTP \d+\)$/, "")));
  } finally {
    $("submit").disabled = false;
  }
}

async function init() {
  room = await api("GET", "/api/room", undefined, { auth: false }).catch(() => room);
  if (room.user) return location.assign(nextPage()); // already signed in
  if (room.lan && !room.https && location.hostname !== "localhost" && location.hostname !== "127.0.0.1") {
    $("room-note").textContent =
      "This room is served over plain HTTP: your browser will not allow the microphone here. " +
      "Ask the host to start it with --https.";
  }
  $("tab-login").addEventListener("click", () => setMode("login"));
  $("tab-signup").addEventListener("click", () => setMode("signup"));
  $("auth-form").addEventListener("submit", submit);
  setMode(new URLSearchParams(location.search).has("signup") ? "signup" : "login");
  $("username").focus();
}

init();
