// The composer: the message box, the Send and attach buttons, files dropped
// on the page or pasted into the box, and the name dialog.

import { $ } from "./view.js";

// Composer calls onText with the text to send, which returns whether it
// was sent, and onFiles with files chosen, dropped or pasted.
export class Composer {
  constructor({ onText, onFiles }) {
    this.form = $("composer");
    this.text = $("text");
    this.send = $("send");
    this.attach = $("attach");
    this.file = $("file");
    this.note = $("note");
    this.onFiles = onFiles;
    this.usable = false;

    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = this.text.value;
      if (text.trim() === "" || !this.usable) return;
      if (onText(text)) this.text.value = "";
      this.text.focus();
    });
    this.text.addEventListener("keydown", (e) => {
      // Enter sends, Shift+Enter is a new line; Enter that ends the
      // composition of a character (an input method) is not a send.
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.attach.addEventListener("click", () => this.file.click());
    this.file.addEventListener("change", () => {
      const files = [...this.file.files];
      this.file.value = "";
      if (files.length) onFiles(files);
    });
    this.text.addEventListener("paste", (e) => {
      const files = [...(e.clipboardData?.files ?? [])];
      if (files.length) {
        e.preventDefault();
        onFiles(files);
      }
    });
    this.watchDrops();
  }

  // watchDrops takes files dropped anywhere on the page, and keeps the
  // browser from opening them instead.
  watchDrops() {
    const hasFiles = (e) => e.dataTransfer?.types.includes("Files");
    let depth = 0;
    document.addEventListener("dragenter", (e) => {
      if (!hasFiles(e)) return;
      depth++;
      document.body.classList.add("dragging");
    });
    document.addEventListener("dragleave", (e) => {
      if (hasFiles(e) && --depth <= 0) {
        depth = 0;
        document.body.classList.remove("dragging");
      }
    });
    document.addEventListener("dragover", (e) => {
      if (hasFiles(e)) e.preventDefault();
    });
    document.addEventListener("drop", (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth = 0;
      document.body.classList.remove("dragging");
      const files = [...e.dataTransfer.files];
      if (files.length) this.onFiles(files);
    });
  }

  // enable allows sending when connected with read-write access. A
  // read-only user sees why they cannot write.
  enable(connected, readOnly) {
    this.usable = connected && !readOnly;
    this.text.disabled = readOnly;
    this.send.disabled = !this.usable;
    this.attach.disabled = !this.usable;
    this.note.hidden = !readOnly;
    this.note.textContent = readOnly ? "You have read-only access: you can read this room, not write in it." : "";
    this.text.placeholder = readOnly ? "Read-only" : "Message";
    document.getElementById("hint").hidden = readOnly;
  }

  focus() {
    if (!this.text.disabled) this.text.focus();
  }
}

// validName is what the server accepts as a chosen name.
export const validName = /^[A-Za-z0-9._-]{1,32}$/;

// askName shows the name dialog and resolves to the name chosen, or to ""
// when the user stays a guest (also with Escape).
export function askName(current) {
  const dialog = $("name-dialog");
  const form = $("name-form");
  const input = $("name-input");
  input.value = current || "";
  input.removeAttribute("aria-invalid");
  return new Promise((resolve) => {
    const done = (name) => {
      form.removeEventListener("submit", onSubmit);
      $("guest").removeEventListener("click", onGuest);
      dialog.removeEventListener("cancel", onGuest);
      dialog.close();
      resolve(name);
    };
    const onSubmit = (e) => {
      e.preventDefault();
      const name = input.value.trim();
      if (!validName.test(name) || name === "server") {
        input.setAttribute("aria-invalid", "true");
        input.focus();
        return;
      }
      done(name);
    };
    const onGuest = (e) => {
      e.preventDefault();
      done("");
    };
    form.addEventListener("submit", onSubmit);
    $("guest").addEventListener("click", onGuest);
    dialog.addEventListener("cancel", onGuest);
    dialog.showModal();
    input.focus();
  });
}
