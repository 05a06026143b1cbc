// dom: small helpers for building the UI's elements, its dialogs (the
// native <dialog>: modal, Escape closes it, focus stays inside) and the
// forms in them.  Every field gets a <label>; every error is shown in
// words in a role="alert" element next to what failed.

import { Raw } from "./api.js";
import { isAmount } from "./money.js";

// h("button", {class: "x", onclick: f}, "text", child...)
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
  return el;
}

// Show the view of a hash route ("#/customers?page=2"), again when it is
// the current one.
export function go(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

let uid = 0;
export function newId(prefix) {
  uid += 1;
  return prefix + "-" + uid;
}

// An alert paragraph: empty until fail() puts a message in it.
export function alertBox() {
  return h("p", { class: "error", role: "alert", hidden: true });
}

export function showError(box, err) {
  box.textContent = err ? String(err.message || err) : "";
  box.hidden = !err;
}

// A polite status line (results of actions).
export function statusLine() {
  return h("p", { class: "status", role: "status", "aria-live": "polite" });
}

// A date-time of the API ("2026-12-01T00:00:00Z") as "2026-12-01 00:00 UTC".
export function when(iso) {
  if (!iso) return "—";
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2})?/.exec(iso);
  return m ? m[1] + " " + m[2] + (m[3] && m[3] !== ":00" ? m[3] : "") + " UTC" : iso;
}

// A table: columns [{label, cell(row) -> node|text, class}], rows.
export function table(caption, columns, rows, empty) {
  const head = h("tr", null, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)));
  const body = rows.length
    ? rows.map((r) => h("tr", null, columns.map((c, i) =>
        i === 0 && c.header !== false
          ? h("th", { scope: "row", class: c.class }, c.cell(r))
          : h("td", { class: c.class }, c.cell(r)))))
    : [h("tr", null, h("td", { colspan: columns.length, class: "empty" }, empty || "Nothing yet."))];
  return h("div", { class: "table-wrap" },
    h("table", null, h("caption", null, caption), h("thead", null, head), h("tbody", null, body)));
}

// ---- forms ----
//
// A field: {name, label, type: "text"|"amount"|"integer"|"select"|
// "checkbox"|"password", value, help, required, readonly, options:
// [[value, label]], list: [suggestions], placeholder}.

export function field(f) {
  const id = newId("f-" + f.name);
  const helpId = f.help ? id + "-help" : null;
  let input;
  if (f.type === "select") {
    input = h("select", { id, name: f.name, "aria-describedby": helpId },
      (f.options || []).map(([v, l]) => h("option", { value: v, selected: String(f.value ?? "") === v }, l)));
  } else if (f.type === "checkbox") {
    input = h("input", { id, name: f.name, type: "checkbox", checked: !!f.value, "aria-describedby": helpId });
    return h("div", { class: "field checkbox" }, input, h("label", { for: id }, f.label),
      f.help ? h("small", { id: helpId }, f.help) : null);
  } else {
    const listId = f.list ? id + "-list" : null;
    input = h("input", {
      id, name: f.name,
      type: f.type === "password" ? "password" : "text",
      inputmode: f.type === "amount" ? "decimal" : f.type === "integer" ? "numeric" : null,
      value: f.value ?? "",
      required: !!f.required,
      readonly: !!f.readonly,
      placeholder: f.placeholder,
      autocomplete: "off",
      spellcheck: "false",
      list: listId,
      "aria-describedby": helpId,
    });
    if (f.list) {
      return h("div", { class: "field" }, h("label", { for: id }, f.label), input,
        h("datalist", { id: listId }, f.list.map((v) => h("option", { value: v }))),
        f.help ? h("small", { id: helpId }, f.help) : null);
    }
  }
  return h("div", { class: "field" }, h("label", { for: id }, f.label), input,
    f.help ? h("small", { id: helpId }, f.help) : null);
}

// The value of field f in form: text as typed (trimmed), "" when empty;
// amounts and integers checked, as Raw numbers; checkboxes as booleans.
// Throws an Error naming the field when a value is malformed.
export function value(form, f) {
  const el = form.elements[f.name];
  if (f.type === "checkbox") return el.checked;
  const v = el.value.trim();
  if (v === "") return "";
  if (f.type === "amount") {
    if (!isAmount(v)) throw new Error(f.label + " must be an amount in dollars, such as 4 or 0.25.");
    return new Raw(v.startsWith(".") ? "0" + v : v.endsWith(".") ? v.slice(0, -1) : v);
  }
  if (f.type === "integer") {
    if (!/^\d+$/.test(v)) throw new Error(f.label + " must be a whole number, such as 100.");
    return new Raw(v.replace(/^0+(?=\d)/, ""));
  }
  return v;
}

// A modal dialog holding a form.  onSubmit(form) may throw (or reject)
// with an error, shown in the dialog, which stays open; otherwise the
// dialog closes.  Returns the <dialog>, already shown.
export function formDialog({ title, body, submitLabel, onSubmit, cancelLabel }) {
  const err = alertBox();
  const titleId = newId("dialog-title");
  const submit = h("button", { type: "submit", class: "primary" }, submitLabel);
  const form = h("form", { method: "dialog", novalidate: true },
    body, err,
    h("div", { class: "buttons" },
      h("button", { type: "button", value: "cancel", onclick: () => close() }, cancelLabel || "Cancel"),
      submit));
  const dlg = h("dialog", { "aria-labelledby": titleId }, h("h2", { id: titleId }, title), form);
  const close = () => {
    dlg.close();
    dlg.remove();
  };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError(err, null);
    submit.disabled = true;
    try {
      await onSubmit(form);
      close();
    } catch (e) {
      showError(err, e);
    } finally {
      submit.disabled = false;
    }
  });
  dlg.addEventListener("cancel", (ev) => {
    ev.preventDefault();
    close();
  });
  document.body.append(dlg);
  dlg.showModal();
  const first = form.querySelector("input:not([readonly]):not([type=hidden]), select");
  if (first) first.focus();
  return dlg;
}

// Ask before doing something that cannot be undone; resolves after
// action() succeeded (true) or when cancelled (false).
export function confirmDialog({ title, message, confirmLabel, action }) {
  return new Promise((resolve) => {
    let done = false;
    const dlg = formDialog({
      title,
      body: h("p", null, message),
      submitLabel: confirmLabel,
      onSubmit: async () => {
        await action();
        done = true;
        resolve(true);
      },
    });
    dlg.querySelector("button.primary").classList.add("danger");
    // Focus the safe choice first.
    dlg.querySelector("button[value=cancel]").focus();
    dlg.addEventListener("close", () => {
      if (!done) resolve(false);
    });
  });
}

// A dialog that only tells something (no form submission but "Done").
export function infoDialog({ title, body, doneLabel }) {
  const titleId = newId("dialog-title");
  const dlg = h("dialog", { "aria-labelledby": titleId }, h("h2", { id: titleId }, title), body,
    h("div", { class: "buttons" }, h("button", { type: "button", class: "primary", onclick: () => {
      dlg.close();
      dlg.remove();
    } }, doneLabel || "Done")));
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}
