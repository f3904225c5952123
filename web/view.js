// The page's DOM. Everything that comes from the network goes into the page
// as text nodes and attribute values (textContent, append, setAttribute),
// never as HTML, so a message such as <img src=x onerror=alert(1)> shows
// as what it is.

export const $ = (id) => document.getElementById(id);

// el makes an element with attributes ("class", "text" for its text) and
// children (strings become text nodes).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// formatSize writes a byte count as the server's flags do (KiB, MiB).
export function formatSize(n) {
  const units = ["bytes", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  if (i === 0 && n === 1) return "1 byte";
  return n.toFixed(i === 0 || n >= 10 ? 0 : 1).replace(/\.0$/, "") + " " + units[i];
}

// decodeBase64 turns the data of a binary message event into bytes.
export function decodeBase64(s) {
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(s);
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// A link in a message: http or https, up to a space or a character that
// cannot be in a URL as people write them.
const linkPattern = /\bhttps?:\/\/[^\s<>"'`]+/gi;

// trimLink leaves the punctuation that ends a sentence out of a link, and
// a closing parenthesis that has no opening one inside it.
function trimLink(u) {
  const count = (ch) => u.split(ch).length - 1;
  for (;;) {
    const c = u.at(-1);
    if (".,;:!?*".includes(c)) u = u.slice(0, -1);
    else if (c === ")" && count("(") < count(")")) u = u.slice(0, -1);
    else if (c === "]" && count("[") < count("]")) u = u.slice(0, -1);
    else return u;
  }
}

// textBody is a message's text with its links made clickable.
function textBody(s) {
  const div = el("div", { class: "text" });
  let at = 0;
  for (const m of s.matchAll(linkPattern)) {
    const url = trimLink(m[0]);
    if (url.length < "http://x".length) continue;
    div.append(s.slice(at, m.index));
    div.append(el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: url }));
    at = m.index + url.length;
  }
  div.append(s.slice(at));
  return div;
}

// mediaKind says how a file shows inline: as an image, an audio or video
// player, or not at all (a download link). SVG is not shown: opened on its
// own, an SVG could run script in the page's origin.
function mediaKind(mime) {
  if (/^image\//.test(mime) && mime !== "image/svg+xml") return "img";
  if (/^audio\//.test(mime)) return "audio";
  if (/^video\//.test(mime)) return "video";
  return "";
}

// fileBody shows a binary message: inline when its announced type allows,
// always with a download link that has its name and size.
function fileBody(m) {
  const bytes = m.bytes ?? decodeBase64(m.data);
  const kind = mediaKind(m.mime ?? "");
  // A file that does not show inline is a blob of no particular type, so
  // that opening it never renders it as a page.
  const blob = new Blob([bytes], { type: kind ? m.mime : "application/octet-stream" });
  const url = URL.createObjectURL(blob);
  const name = m.name || (m.mime ? "file" : "binary message");
  const box = el("div", { class: "file" });
  if (kind === "img") box.append(el("img", { src: url, alt: name }));
  if (kind === "audio" || kind === "video") box.append(el(kind, { src: url, controls: "", preload: "metadata", "aria-label": name }));
  box.append(el("span", {},
    el("a", { href: url, download: name, class: "name", text: name }),
    " ", el("span", { class: "size", text: formatSize(bytes.length) })));
  return box;
}

// nameColor picks one of eight colours for a sender, the same every time.
function nameColor(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return "c" + (h % 8);
}

// dayLabel names the day of a date for the dividers between days.
function dayLabel(d) {
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  const opts = { weekday: "long", month: "long", day: "numeric" };
  if (d.getFullYear() !== today.getFullYear()) opts.year = "numeric";
  return d.toLocaleDateString(undefined, opts);
}

// groupGap is how close in time two messages of one sender must be to
// share a group.
const groupGap = 5 * 60 * 1000;

// MessageList is the list of messages and notices, oldest first.
export class MessageList {
  constructor(list, scroller) {
    this.list = list;
    this.scroller = scroller;
    this.last = null; // the last message added: {from, own, time}, or null after a notice
    this.day = "";
  }

  // atBottom reports whether the list is scrolled to (nearly) its end, so
  // that what is added keeps it there.
  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 60;
  }

  add(item) {
    const stick = this.atBottom();
    this.list.append(item);
    if (stick) this.scroller.scrollTop = this.scroller.scrollHeight;
    // An image or a player grows once it has loaded.
    for (const media of item.querySelectorAll("img, video, audio")) {
      media.addEventListener(media.tagName === "IMG" ? "load" : "loadedmetadata", () => {
        if (stick) this.scroller.scrollTop = this.scroller.scrollHeight;
      }, { once: true });
    }
  }

  divideDays(d) {
    const key = d.toDateString();
    if (key !== this.day) {
      this.day = key;
      this.last = null;
      this.add(el("li", { class: "day", text: dayLabel(d) }));
    }
  }

  // message adds a message event (or one of ours, not yet numbered) and
  // returns its element. A message follows the previous one in its group
  // when it has the same sender and comes soon after it.
  message(m, own) {
    const d = new Date(m.time);
    this.divideDays(d);
    const l = this.last;
    const first = !l || l.from !== m.from || l.own !== own || d - l.time > groupGap;
    this.last = { from: m.from, own, time: d };
    const li = el("li", {
      class: "msg" + (own ? " own" : "") + (first ? " first" : ""),
      "data-id": m.id || null, "data-seq": m.seq ? String(m.seq) : null, "data-from": m.from,
    });
    const bubble = el("div", { class: "bubble" });
    if (first && !own) bubble.append(el("span", { class: "from " + nameColor(m.from), text: m.from }));
    bubble.append(m.type === "binary" ? fileBody(m) : textBody(m.data));
    const time = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    bubble.append(el("time", { class: "time", datetime: m.time, title: d.toLocaleString(), text: time }));
    li.append(bubble);
    this.add(li);
    return li;
  }

  // notice adds a line about the room: a join or leave, or a problem
  // (kind "warn" or "error").
  notice(text, kind) {
    this.divideDays(new Date());
    this.last = null;
    const li = el("li", { class: "notice" + (kind ? " " + kind : ""), text });
    this.add(li);
    return li;
  }
}

// markFailed notes under one of our messages that it did not arrive
// (kind "error") or may not have (kind "unsure").
export function markFailed(li, why, kind) {
  li.append(el("p", { class: "failed " + kind, text: why }));
}

// People is the list of who is online, with its counts.
export class People {
  constructor() {
    this.list = $("people-list");
    this.counts = [$("people-count"), $("people-count-2")];
    this.panel = $("people");
    this.toggle = $("people-toggle");
    this.toggle.addEventListener("click", () => this.open(!this.panel.classList.contains("open")));
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.panel.classList.contains("open")) {
        this.open(false);
        this.toggle.focus();
      }
    });
    // On a phone the list opens over the messages: a tap elsewhere closes it.
    document.addEventListener("click", (e) => {
      if (this.panel.classList.contains("open") && !this.panel.contains(e.target) && !this.toggle.contains(e.target)) this.open(false);
    });
  }

  open(yes) {
    this.panel.classList.toggle("open", yes);
    this.toggle.setAttribute("aria-expanded", String(yes));
  }

  // show lists the members of online (conn → name), you marked.
  show(online, you) {
    const entries = [...online].sort((a, b) => a[1].localeCompare(b[1]) || a[0] - b[0]);
    this.list.replaceChildren(...entries.map(([conn, name]) =>
      el("li", { class: conn === you ? "you" : null, "data-conn": String(conn), text: name })));
    for (const c of this.counts) c.textContent = String(online.size);
  }
}

// Status shows the state of the connection, all the time: a dot and a word
// in the header, and while it is down a banner that says when the next try
// is, with a button to try now.
export class Status {
  constructor(onRetry) {
    this.box = $("status");
    this.text = $("status-text");
    this.banner = $("banner");
    this.bannerText = $("banner-text");
    $("retry").addEventListener("click", onRetry);
  }

  set(state, text) {
    this.box.dataset.state = state;
    if (this.text.textContent !== text) this.text.textContent = text;
    this.box.title = text;
  }

  showBanner(text) {
    if (this.bannerText.textContent !== text) this.bannerText.textContent = text;
    this.banner.hidden = false;
  }

  hideBanner() {
    this.banner.hidden = true;
  }
}
