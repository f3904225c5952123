// The chat page of wsx serve: one room, spoken to in wsx.chat.v1 (README:
// "The JSON protocol"). It takes everything it needs from its own location:
// the room from the path, ws: or wss: from the scheme, ?token= and ?name=
// from the query.

import { $, MessageList, People, Status, formatSize, markFailed } from "./view.js";
import { Composer, askName, validName } from "./compose.js";

const params = new URLSearchParams(location.search);
const room = roomName(location.pathname);

// Reconnecting: the first try comes after about a second, then twice as
// long each time up to half a minute, each wait drawn between half and all
// of that (jitter), so that the clients of a restarted server do not all
// come back at once.
const retryBase = 1000;
const retryMax = 30000;

// unconfirmedFor is how long a message we sent may have been lost with its
// connection: the server drops a connection silent for two 30 s pings. A
// message sent longer before a loss is taken as delivered.
const unconfirmedFor = 60000;

// session is what the page knows of the room, across reconnections.
const session = {
  welcomed: false, // a welcome has arrived: a reconnection asks to catch up
  epoch: "", // the numbering that lastSeq belongs to
  lastSeq: 0, // the seq of the last message received
  you: null, // {conn, name} on the current connection
  role: "rw",
  maxSize: 0, // the largest message the server takes, in bytes
  shown: new Set(), // ids of the messages shown
  mine: new Map(), // conn → name of our connections, to know our messages
  // pending are the messages we sent that no event has shown yet: {conn,
  // type, data or name and size, li, floor: the seq it must come after,
  // at: when it was sent}.
  pending: [],
  online: new Map(), // conn → name
  unread: 0,
};

let socket = null; // the current WebSocket, or null while waiting to retry
let attempt = 0; // tries since the last welcome
let retryTimer = 0;
let countdown = 0;
let retryAt = 0;
let leaving = false;
let name = params.get("name") ?? storedName();
let named = false; // the server's name for us was compared with the one we asked for

const messages = new MessageList($("messages"), $("log"));
const people = new People();
const status = new Status(() => connect());
const composer = new Composer({ onText: sendText, onFiles: sendFiles });

// roomName is the room a path names, as the server reads it: "/" is the lobby.
function roomName(path) {
  let p = path;
  try { p = decodeURIComponent(path); } catch { /* keep it as it is */ }
  return p.replace(/^\/+|\/+$/g, "") || "lobby";
}

function storedName() {
  try { return localStorage.getItem("wsx.name"); } catch { return null; }
}

function storeName(n) {
  try { localStorage.setItem("wsx.name", n); } catch { /* storage is off: ask again next time */ }
}

// socketURL is the room's WebSocket URL, with the token and name, and after
// a welcome the point to catch up from.
function socketURL() {
  const q = new URLSearchParams();
  if (params.has("token")) q.set("token", params.get("token"));
  if (name) q.set("name", name);
  if (session.welcomed) {
    // From before our oldest unconfirmed message, so that the catch-up
    // shows whether it arrived.
    const since = Math.min(session.lastSeq, ...session.pending.map((p) => p.floor));
    q.set("since", String(since));
    q.set("epoch", session.epoch);
  }
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = q.toString();
  return scheme + "//" + location.host + location.pathname + (query ? "?" + query : "");
}

function connect() {
  clearTimeout(retryTimer);
  clearInterval(countdown);
  if (socket) {
    const old = socket;
    socket = null;
    old.close(1000);
  }
  status.set("connecting", "connecting…");
  if (attempt > 0) status.showBanner("Connecting…");
  const ws = new WebSocket(socketURL(), "wsx.chat.v1");
  socket = ws;
  ws.onmessage = (e) => {
    if (socket !== ws) return;
    let ev;
    try { ev = JSON.parse(e.data); } catch { return; }
    handle(ev);
  };
  let opened = false;
  ws.onopen = () => { opened = true; };
  ws.onclose = () => {
    if (socket !== ws || leaving) return;
    socket = null;
    lost(opened);
  };
}

// refused is set when the server answers HTTP but refused the WebSocket:
// a wrong token, or a name it does not take.
let refused = false;

// lost waits before the next try, counting down where it shows. A
// connection that never opened may have been refused rather than not
// reached: a request for the page tells which.
function lost(opened) {
  refused = false;
  forgetOldPending();
  if (!opened) {
    fetch(location.pathname, { method: "HEAD", cache: "no-store" })
      .then((r) => { if (!socket) { refused = r.ok; showCountdown(); } }, () => {});
  }
  composer.enable(false, session.role === "ro");
  const wait = Math.min(retryMax, retryBase * 2 ** attempt) * (0.5 + Math.random() / 2);
  attempt++;
  retryAt = Date.now() + wait;
  retryTimer = setTimeout(connect, wait);
  countdown = setInterval(showCountdown, 250);
  showCountdown();
}

function showCountdown() {
  const s = Math.max(1, Math.ceil((retryAt - Date.now()) / 1000));
  const what = refused ? "The server refused the connection (a wrong token, or a name it does not take?)"
    : session.welcomed ? "Connection lost" : "Cannot reach the server";
  status.set("closed", "offline");
  status.showBanner(`${what}: reconnecting in ${s} s…`);
}

function handle(ev) {
  switch (ev.event) {
    case "welcome": welcome(ev); break;
    case "message": message(ev, true); break;
    case "join":
      session.online.set(ev.conn, ev.name);
      people.show(session.online, session.you?.conn);
      messages.notice(`${ev.name} joined`);
      break;
    case "leave":
      session.online.delete(ev.conn);
      people.show(session.online, session.you?.conn);
      if (session.mine.get(ev.conn) !== ev.name) messages.notice(`${ev.name} left`); // not our own last connection
      break;
    case "error":
      if (ev.code !== "read-only") messages.notice(ev.message, "error");
      break;
  }
}

// welcome starts (or resumes) the room: the history is the messages
// missed when the server could say exactly which (recovered), else the
// room's history, of which only what is not shown yet is added.
function welcome(ev) {
  const resumed = session.welcomed;
  attempt = 0;
  clearInterval(countdown);
  if (resumed && ev.recovered !== true) {
    messages.notice("Some earlier messages are not available.", "warn");
  }
  if (ev.recovered !== true) session.lastSeq = 0; // the history numbers from where it starts
  Object.assign(session, { welcomed: true, epoch: ev.epoch, you: ev.you, role: ev.role, maxSize: ev.max_message_size });
  session.mine.set(ev.you.conn, ev.you.name);
  // What a catch-up brings was missed: it counts as unread like live messages.
  for (const m of ev.history) message(m, resumed);
  settlePending(ev.recovered === true);
  session.online = new Map(ev.online.map((u) => [u.conn, u.name]));
  people.show(session.online, ev.you.conn);
  $("me").textContent = ev.you.name;
  status.set("open", "connected");
  status.hideBanner();
  composer.enable(true, ev.role === "ro");
  if (!resumed && ev.welcome) messages.notice(ev.welcome);
  if (name && ev.you.name !== name && !named) {
    messages.notice(`You are ${ev.you.name} here: the server names you by your token.`);
  }
  named = true;
}

// mine reports whether a message is one of ours: sent on one of our
// connections under the name it had, or under our chosen name.
function isMine(m) {
  return session.mine.get(m.conn) === m.from || (!!session.you && !m.from.startsWith("guest-") && m.from === session.you.name);
}

// message shows a message event once; new ones count as unread while the
// tab is hidden.
function message(m, isNew) {
  if (session.shown.has(m.id)) return;
  session.shown.add(m.id);
  session.lastSeq = Math.max(session.lastSeq, m.seq);
  if (confirm(m)) return;
  const own = isMine(m);
  messages.message(m, own);
  if (isNew && !own && document.hidden) {
    session.unread++;
    showTitle();
  }
}

// confirm finds the message among the ones we sent and shows no copy: the
// server relays a message to its sender only with --include-self, and
// replays it when we catch up.
function confirm(m) {
  const i = session.pending.findIndex((p) => p.conn === m.conn && p.type === m.type &&
    (m.type === "text" ? p.data === m.data : p.name === (m.name ?? "") && p.size === byteLength(m.data)));
  if (i < 0) return false;
  const [p] = session.pending.splice(i, 1);
  p.li.dataset.id = m.id;
  p.li.dataset.seq = String(m.seq);
  return true;
}

function byteLength(b64) {
  const pad = b64.endsWith("==") ? 2 : b64.endsWith("=") ? 1 : 0;
  return b64.length / 4 * 3 - pad;
}

// settlePending, after a welcome, gives up on what we sent on an earlier
// connection and did not see again: when the catch-up was complete, it did
// not reach the server; otherwise nobody can tell.
function settlePending(recovered) {
  const earlier = session.pending.filter((p) => p.conn !== session.you.conn);
  session.pending = session.pending.filter((p) => p.conn === session.you.conn);
  for (const p of earlier) {
    if (recovered) markFailed(p.li, "Not delivered: the connection was lost before it reached the server.", "error");
    else markFailed(p.li, "Delivery not confirmed: the connection was lost.", "unsure");
  }
}

function forgetOldPending() {
  const now = Date.now();
  session.pending = session.pending.filter((p) => now - p.at < unconfirmedFor);
}

// sent shows a message we sent and keeps it to confirm.
function sent(m, pending) {
  forgetOldPending();
  const li = messages.message(m, true);
  session.pending.push({ ...pending, conn: m.conn, type: m.type, li, floor: session.lastSeq, at: Date.now() });
}

function canSend() {
  return socket && socket.readyState === WebSocket.OPEN && session.you && session.role !== "ro";
}

function sendText(text) {
  if (!canSend()) return false;
  socket.send(text);
  sent({ from: session.you.name, conn: session.you.conn, time: new Date().toISOString(), type: "text", data: text }, { data: text });
  return true;
}

// sendFiles sends each file as one binary message, announced just before
// with its name and type; one over the server's limit is refused here,
// before anything is sent.
async function sendFiles(files) {
  for (const file of files) {
    if (session.maxSize && file.size > session.maxSize) {
      messages.notice(`${file.name} is ${formatSize(file.size)}: the server takes at most ${formatSize(session.maxSize)} per message (--max-message-size), so it was not sent.`, "error");
      continue;
    }
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (!canSend()) {
      messages.notice(`Not connected: ${file.name} was not sent.`, "error");
      continue;
    }
    const meta = fileMeta(file);
    socket.send(JSON.stringify({ event: "file", ...meta }));
    socket.send(bytes);
    sent({ from: session.you.name, conn: session.you.conn, time: new Date().toISOString(), type: "binary", bytes, ...meta },
      { name: meta.name ?? "", size: bytes.length });
  }
}

// fileMeta is what the server accepts of a file's name and type: a name of
// at most 255 bytes with no control characters, a type/subtype.
function fileMeta(file) {
  let n = file.name.replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, "");
  while (new TextEncoder().encode(n).length > 255) n = [...n].slice(0, -1).join("");
  const meta = {};
  if (n) meta.name = n;
  if (/^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(file.type)) meta.mime = file.type;
  return meta;
}

function showTitle() {
  document.title = (session.unread ? `(${session.unread}) ` : "") + room + " · wsx chat";
}

async function changeName() {
  const chosen = await askName(name || "");
  storeName(chosen);
  if (chosen !== (name || "")) {
    name = chosen;
    named = false;
    connect();
  }
  composer.focus();
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && session.unread) {
    session.unread = 0;
    showTitle();
  }
});
window.addEventListener("online", () => { if (!socket) connect(); });
window.addEventListener("pagehide", () => { leaving = true; });
$("me").addEventListener("click", changeName);

async function start() {
  $("room").textContent = room;
  showTitle();
  composer.enable(false, false);
  if (name !== null && name !== "" && !validName.test(name)) name = null;
  // Ask once, unless the URL names the user or carries a token (whose user
  // may have a name already).
  if (name === null && !params.has("token")) {
    name = await askName("");
    storeName(name);
  }
  connect();
  composer.focus();
}

start();
