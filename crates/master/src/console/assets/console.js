// The console's one script: live parts of pages, copy buttons, form rows, confirmations,
// and the profile editor. Served from this origin (the CSP allows nothing inline).
"use strict";

const csrf = () => document.body.dataset.csrf || "";

// Live: the master says that something changed; the page fetches itself again and
// replaces each element marked data-live by the one with the same id.
function live() {
  const parts = document.querySelectorAll("[data-live][id]");
  const status = document.getElementById("live-status");
  if (!parts.length || !window.EventSource) return;
  let busy = false, again = false;
  const refresh = async () => {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const answer = await fetch(location.href, { headers: { "X-Grove-Live": "1" }, credentials: "same-origin" });
      if (answer.ok) {
        const page = new DOMParser().parseFromString(await answer.text(), "text/html");
        for (const part of document.querySelectorAll("[data-live][id]")) {
          const fresh = page.getElementById(part.id);
          if (fresh && fresh.innerHTML !== part.innerHTML) part.replaceWith(document.importNode(fresh, true));
        }
        document.dispatchEvent(new CustomEvent("grove:refreshed"));
      }
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  };
  const events = new EventSource("/events");
  events.addEventListener("open", () => status && status.classList.add("on"));
  events.addEventListener("error", () => status && status.classList.remove("on"));
  events.addEventListener("change", refresh);
}

// Buttons and forms, through delegation so that replaced parts keep working.
document.addEventListener("click", (event) => {
  const copy = event.target.closest("button.copy");
  if (copy) {
    navigator.clipboard?.writeText(copy.dataset.copy || "").then(() => {
      copy.textContent = "copied";
      setTimeout(() => { copy.textContent = "copy"; }, 1200);
    });
    return;
  }
  const add = event.target.closest("button.add-row");
  if (add) {
    const rows = document.getElementById(add.dataset.target);
    const row = rows?.querySelector(".row");
    if (row) {
      const clone = row.cloneNode(true);
      clone.querySelectorAll("input").forEach((input) => { input.value = ""; });
      rows.appendChild(clone);
    }
  }
});

document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const question = button?.dataset?.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// The profile editor: resolve as the user types, a little after the last key.
function editor() {
  const text = document.getElementById("profile");
  if (!text) return;
  const list = document.getElementById("diagnostics");
  const count = document.getElementById("diagnostic-count");
  const resolved = document.getElementById("resolved");
  let timer = null, sent = 0;
  const show = (result) => {
    list.replaceChildren();
    for (const d of result.diagnostics) {
      const item = document.createElement("li");
      item.className = d.severity;
      const where = [d.line ? `line ${d.line}` : null, d.section ? `[${d.section}]` : null, d.option].filter(Boolean).join(" ");
      item.textContent = (where ? where + ": " : "") + d.message;
      list.appendChild(item);
    }
    if (!result.diagnostics.length) {
      const ok = document.createElement("li");
      ok.className = "ok";
      ok.textContent = "no problem found";
      list.appendChild(ok);
    }
    const errors = result.diagnostics.filter((d) => d.severity === "error").length;
    count.textContent = `(${errors} error${errors === 1 ? "" : "s"})`;
    resolved.replaceChildren();
    for (const [name, options] of Object.entries(result.sections)) {
      const title = document.createElement("h3");
      title.textContent = `[${name}]` + (result.parts.includes(name) ? "  part" : "");
      const table = document.createElement("table");
      table.className = "kv";
      for (const [key, value] of Object.entries(options)) {
        const row = table.insertRow();
        const th = document.createElement("th");
        th.textContent = key;
        row.appendChild(th);
        const td = row.insertCell();
        const code = document.createElement("code");
        code.textContent = value;
        td.appendChild(code);
      }
      resolved.append(title, table);
    }
  };
  const check = async () => {
    const mine = ++sent;
    const answer = await fetch("/profiles/check", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify({ text: text.value }),
    });
    if (mine !== sent) return;
    if (answer.ok) show(await answer.json());
    else show({ diagnostics: [{ severity: "error", message: await answer.text() }], sections: {}, parts: [] });
  };
  text.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(check, 250); });
  check();
}

live();
editor();
