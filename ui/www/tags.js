// tags: the Tags tab (SPEC 14; tags: SPEC 11): tags as accounts, with LiteLLM's /tag/*
// routes (list, new, update, delete).  A tag's spend, reserved and budget
// are shown as the customers' are; "+ Create Tag" makes one with a budget
// of its own from the limit fields.

import { get, post } from "./api.js";
import { alertBox, clear, confirmDialog, field, formDialog, h, showError, statusLine, table, value, when } from "./dom.js";
import { LIMIT_FIELDS, limitFields, limitValues } from "./budgets.js";
import { count, usd } from "./money.js";
import { accountUse } from "./meter.js";

// The tag's budget fields, for the limit fields' form.
function budgetRow(tag) {
  return tag.litellm_budget_table || {};
}

function tagDialog(tag, done) {
  const nameField = { name: "name", label: "Tag", type: "text", value: tag ? tag.name : "", readonly: !!tag, required: !tag,
    help: tag ? "A tag's name does not change." : "The name calls give in metadata.tags or the x-litellm-tags header, such as engineering." };
  const descField = { name: "description", label: "Description", type: "text", value: tag && tag.description ? tag.description : "" };
  const modelsField = { name: "models", label: "Models", type: "text", value: tag && tag.models ? tag.models.join(", ") : "",
    help: "Comma-separated model names calls with the tag may use. Empty: every model." };
  const limits = tag ? limitFields(budgetRow(tag)) : LIMIT_FIELDS.map((f) => ({ ...f }));
  const fields = [nameField, descField, modelsField, ...limits];
  formDialog({
    title: tag ? "Edit tag " + tag.name : "Create Tag",
    body: h("div", { class: "grid" }, fields.map(field)),
    submitLabel: tag ? "Save Tag" : "Create Tag",
    onSubmit: async (form) => {
      const body = { name: tag ? tag.name : value(form, nameField) };
      const desc = value(form, descField);
      if (!tag || desc !== (tag.description || "")) body.description = desc === "" && tag ? null : desc || undefined;
      const models = value(form, modelsField);
      const list = models === "" ? [] : models.split(",").map((s) => s.trim()).filter(Boolean);
      if (!tag || list.join(",") !== (tag.models || []).join(",")) body.models = list;
      Object.assign(body, limitValues(form, tag ? budgetRow(tag) : null));
      const { data } = await post(tag ? "/tag/update" : "/tag/new", body);
      done(data.message + ".");
    },
  });
}

export async function tagsView(section, ctx) {
  const status = statusLine();
  const err = alertBox();
  const holder = h("div");
  const render = async (message, error) => {
    const { data } = await get("/tag/list");
    if (!ctx.isCurrent()) return;
    const done = (msg, e) => render(msg, e);
    const act = async (what, fn) => {
      try {
        await fn();
        await done(what);
      } catch (e) {
        await done(null, e);
      }
    };
    clear(holder, table("Tags (" + count(data.length) + ")", [
      { label: "Tag", cell: (t) => h("span", null, h("strong", null, t.name), t.description ? h("span", { class: "muted" }, " " + t.description) : null) },
      { label: "Spend", cell: (t) => usd(t.spend), class: "num money" },
      { label: "Reserved", cell: (t) => usd(t.reserved), class: "num money" },
      { label: "Max budget", cell: (t) => usd(budgetRow(t).max_budget), class: "num money" },
      { label: "Budget use", cell: (t) => accountUse(t, budgetRow(t).max_budget, "tag " + t.name) },
      { label: "Reset period", cell: (t) => budgetRow(t).budget_duration || "never" },
      { label: "Period ends", cell: (t) => when(t.spend_reset_at) },
      { label: "Models", cell: (t) => (t.models && t.models.length ? t.models.join(", ") : "every model") },
      { label: "Blocked", cell: (t) => (t.blocked ? h("strong", { class: "blocked" }, "Blocked") : "No") },
      { label: "Actions", cell: (t) => h("div", { class: "actions" },
        h("button", { type: "button", "aria-label": "Edit tag " + t.name, onclick: () => tagDialog(t, render) }, "Edit"),
        h("button", { type: "button", "aria-label": (t.blocked ? "Unblock" : "Block") + " tag " + t.name,
          onclick: () => act((t.blocked ? "Unblocked " : "Blocked ") + t.name + ".",
            () => post("/tag/update", { name: t.name, blocked: !t.blocked })) }, t.blocked ? "Unblock" : "Block"),
        h("button", { type: "button", class: "danger", "aria-label": "Delete tag " + t.name, onclick: () => confirmDialog({
          title: "Delete tag " + t.name + "?",
          message: "Calls naming it are no longer limited or charged by it; the ledger keeps its requests. This cannot be undone.",
          confirmLabel: "Delete tag",
          action: async () => {
            await post("/tag/delete", { name: t.name });
            await done("Deleted tag " + t.name + ".");
          },
        }) }, "Delete")) },
    ], data, "No tags yet: + Create Tag makes one."));
    status.textContent = message || "";
    showError(err, error || null);
  };
  const create = h("button", { type: "button", class: "primary", onclick: () => tagDialog(null, render) }, "+ Create Tag");
  clear(section, h("div", { class: "toolbar" }, h("h1", null, "Tags"), create),
    h("p", { class: "lead" }, "Tags are accounts that calls name (metadata.tags, the x-litellm-tags header): a call is admitted only within every named tag's budget and charged to each. A tag that was never created only labels the call."),
    status, err, holder);
  await render();
}
