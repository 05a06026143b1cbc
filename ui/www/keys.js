// keys: the Keys tab: virtual keys (SPEC 13; /key/list with the full
// objects, /key/generate, block, unblock, delete).  A new key is shown
// once, with a button that copies it: only its SHA-256 is stored.

import { post, get } from "./api.js";
import { alertBox, clear, confirmDialog, field, formDialog, h, infoDialog, newId, showError, statusLine, table, value, when } from "./dom.js";
import { DURATIONS, LIMIT_FIELDS } from "./budgets.js";
import { count, usd } from "./money.js";
import { accountUse } from "./meter.js";

const PAGE_SIZE = 50;

async function copyText(input, note) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(input.value);
    ok = true;
  } catch (e) {
    // No clipboard permission (or not a secure context): copy the
    // selection the old way.
    input.select();
    try {
      ok = document.execCommand("copy");
    } catch (e2) {
      ok = false;
    }
  }
  note.textContent = ok ? "Copied to the clipboard." : "Could not copy: select the key and copy it yourself.";
}

function showNewKey(k) {
  const id = newId("new-key");
  const input = h("input", { id, type: "text", readonly: true, value: k.key, class: "secret", spellcheck: "false" });
  const note = h("p", { class: "status", role: "status" });
  const dlg = infoDialog({
    title: "New key " + (k.key_alias || k.key_name),
    body: h("div", null,
      h("p", null, h("strong", null, "This key is shown only now."), " tollgate keeps only its SHA-256; copy it to the application that will use it."),
      h("div", { class: "field" }, h("label", { for: id }, "Virtual key"), input),
      h("div", { class: "buttons" }, h("button", { type: "button", onclick: () => copyText(input, note) }, "Copy key")),
      note),
  });
  input.focus();
  input.select();
  return dlg;
}

function generateDialog(done) {
  const fields = [
    { name: "key_alias", label: "Key alias", type: "text", help: "A name for the key, such as billing-app." },
    { name: "models", label: "Models", type: "text", help: "Comma-separated model names the key may call. Empty: every model." },
    { name: "duration", label: "Expires after", type: "text", list: DURATIONS, help: "Such as 30d. Empty: never expires." },
    ...LIMIT_FIELDS.map((f) => ({ ...f })),
  ];
  formDialog({
    title: "Generate Key",
    body: h("div", { class: "grid" }, fields.map(field)),
    submitLabel: "Generate Key",
    onSubmit: async (form) => {
      const body = {};
      for (const f of fields) {
        const v = value(form, f);
        if (v === "") continue;
        body[f.name] = f.name === "models" ? v.split(",").map((s) => s.trim()).filter(Boolean) : v;
      }
      const { data } = await post("/key/generate", body);
      await done("Generated key " + data.key_name + ".");
      // After this dialog has closed (and given focus back).
      setTimeout(() => showNewKey(data), 0);
    },
  });
}

export async function keysView(section, ctx) {
  const status = statusLine();
  const err = alertBox();
  const holder = h("div");
  const pager = h("nav", { class: "pager", "aria-label": "Pages of keys" });
  let page = 1;
  const render = async (message, error) => {
    const { data } = await get("/key/list", { return_full_object: "true", page, page_size: PAGE_SIZE });
    if (!ctx.isCurrent()) return;
    const done = (msg, e) => render(msg, e);
    const name = (k) => (k.key_alias ? k.key_alias + " (" + k.key_name + ")" : k.key_name);
    clear(holder, table("Virtual keys (" + count(data.total_count) + "), newest first", [
      { label: "Key", cell: (k) => h("span", null, k.key_alias ? h("strong", null, k.key_alias) : null, k.key_alias ? " " : null, h("code", null, k.key_name)) },
      { label: "Spend", cell: (k) => usd(k.spend), class: "num money" },
      { label: "Reserved", cell: (k) => usd(k.reserved), class: "num money" },
      { label: "Max budget", cell: (k) => usd(k.max_budget), class: "num money" },
      { label: "Budget use", cell: (k) => accountUse(k, k.max_budget, "key " + name(k)) },
      { label: "Models", cell: (k) => (k.models && k.models.length ? k.models.join(", ") : "every model") },
      { label: "Expires", cell: (k) => (k.expires ? when(k.expires) : "never") },
      { label: "Created", cell: (k) => when(k.created_at) },
      { label: "Blocked", cell: (k) => (k.blocked ? h("strong", { class: "blocked" }, "Blocked") : "No") },
      { label: "Actions", cell: (k) => h("div", { class: "actions" },
        h("button", { type: "button", "aria-label": (k.blocked ? "Unblock" : "Block") + " key " + name(k), onclick: async () => {
          try {
            await post(k.blocked ? "/key/unblock" : "/key/block", { key: k.token });
            await done((k.blocked ? "Unblocked " : "Blocked ") + name(k) + ".");
          } catch (e) {
            await done(null, e);
          }
        } }, k.blocked ? "Unblock" : "Block"),
        h("button", { type: "button", class: "danger", "aria-label": "Delete key " + name(k), onclick: () => confirmDialog({
          title: "Delete key " + name(k) + "?",
          message: "Calls with it are refused from now on; the ledger keeps its requests. This cannot be undone.",
          confirmLabel: "Delete key",
          action: async () => {
            await post("/key/delete", { keys: [k.token] });
            await done("Deleted key " + name(k) + ".");
          },
        }) }, "Delete")) },
    ], data.keys, "No virtual keys yet: + Generate Key makes one."));
    const pages = Math.max(1, data.total_pages);
    clear(pager,
      h("button", { type: "button", disabled: page <= 1, onclick: () => { page -= 1; render(); } }, "Previous page"),
      h("span", null, "Page " + page + " of " + pages),
      h("button", { type: "button", disabled: page >= pages, onclick: () => { page += 1; render(); } }, "Next page"));
    status.textContent = message || "";
    showError(err, error || null);
  };
  const gen = h("button", { type: "button", class: "primary", onclick: () => generateDialog(render) }, "+ Generate Key");
  clear(section, h("div", { class: "toolbar" }, h("h1", null, "Keys"), gen),
    h("p", { class: "lead" }, "Virtual keys let applications call the LLM routes without the master key, each with its own budget and limits."),
    status, err, holder, pager);
  await render();
}
