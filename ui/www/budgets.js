// budgets: the Budgets tab, pricing tiers (/budget/list, new, update,
// delete).  "+ Create Budget" is the seed's flow: "my-free-tier" with Max
// Budget 4 sends {"budget_id": "my-free-tier", "max_budget": 4}, the body
// of the seed's curl.  Also the budget fields every other form shares.

import { get, post } from "./api.js";
import { clear, confirmDialog, field, formDialog, h, statusLine, table, value, when } from "./dom.js";
import { count, usd } from "./money.js";

export const DURATIONS = ["1d", "7d", "30d", "1mo", "24h", "1h"];

// The budget fields, labelled as SPEC 14 names them, by API name.
export const LIMIT_FIELDS = [
  { name: "max_budget", label: "Max Budget (USD)", type: "amount", help: "Hard limit: a call that could pass it is refused. Empty: no limit." },
  { name: "soft_budget", label: "Soft Budget (USD)", type: "amount", help: "Only alerts (webhook) when reached. Empty: none." },
  { name: "tpm_limit", label: "TPM Limit", type: "integer", help: "Tokens per minute. Empty: no limit." },
  { name: "rpm_limit", label: "RPM Limit", type: "integer", help: "Requests per minute. Empty: no limit." },
  { name: "max_parallel_requests", label: "Max Parallel Requests", type: "integer", help: "Calls in flight at once. Empty: no limit." },
  { name: "budget_duration", label: "Reset Period", type: "text", list: DURATIONS, help: "How often spend starts again at 0, such as 30d or 1mo. Empty: never." },
];

// The limit fields filled from a budget row (or empty).
export function limitFields(row) {
  return LIMIT_FIELDS.map((f) => ({ ...f, value: row && row[f.name] !== null && row[f.name] !== undefined ? String(row[f.name]) : "" }));
}

// The values of the limit fields: those given (create), or every one
// that changed from row, an emptied one as null (update).
export function limitValues(form, row) {
  const out = {};
  for (const f of LIMIT_FIELDS) {
    const v = value(form, f);
    if (!row) {
      if (v !== "") out[f.name] = v;
      continue;
    }
    const before = row[f.name] === null || row[f.name] === undefined ? "" : String(row[f.name]);
    const now = v === "" ? "" : typeof v === "string" ? v : v.text;
    if (now !== before) out[f.name] = v === "" ? null : v;
  }
  return out;
}

// Shared tiers (not a customer's private budget), for pickers.
export async function sharedTiers() {
  const { data } = await get("/budget/list");
  return data.filter((b) => !b.private_for && !b.private_for_tag);
}

function budgetDialog(row, done) {
  const idField = { name: "budget_id", label: "Budget ID", type: "text", value: row ? row.budget_id : "", readonly: !!row,
    help: row ? "A budget's id does not change." : "The tier's name, such as my-free-tier. Empty: a UUID is made." };
  const fields = [idField, ...limitFields(row)];
  formDialog({
    title: row ? "Edit budget " + row.budget_id : "Create Budget",
    body: h("div", { class: "grid" }, fields.map(field)),
    submitLabel: row ? "Save Budget" : "Create Budget",
    onSubmit: async (form) => {
      const body = {};
      const id = value(form, idField);
      if (row) body.budget_id = row.budget_id;
      else if (id !== "") body.budget_id = id;
      Object.assign(body, limitValues(form, row));
      const { data } = await post(row ? "/budget/update" : "/budget/new", body);
      done((row ? "Saved budget " : "Created budget ") + data.budget_id + ".");
    },
  });
}

export async function budgetsView(section, ctx) {
  const status = statusLine();
  const create = h("button", { type: "button", class: "primary" }, "+ Create Budget");
  const holder = h("div");
  const refresh = async (message) => {
    const { data } = await get("/budget/list");
    if (!ctx.isCurrent()) return;
    // A tag's own budget is shown with the tag (Tags tab).
    const tiers = data.filter((b) => !b.private_for && !b.private_for_tag);
    const own = data.filter((b) => b.private_for);
    const actions = (b) => h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => budgetDialog(b, refresh), "aria-label": "Edit budget " + b.budget_id }, "Edit"),
      h("button", { type: "button", class: "danger", "aria-label": "Delete budget " + b.budget_id, onclick: () => confirmDialog({
        title: "Delete budget " + b.budget_id + "?",
        message: "Its " + count(b.customer_count) + " customer" + (b.customer_count === 1 ? "" : "s") +
          " fall back to no budget; their spend stays. This cannot be undone.",
        confirmLabel: "Delete budget",
        action: async () => {
          await post("/budget/delete", { id: b.budget_id });
          await refresh("Deleted budget " + b.budget_id + ".");
        },
      }) }, "Delete"));
    const limits = [
      { label: "Max budget", cell: (b) => usd(b.max_budget), class: "num" },
      { label: "Soft budget", cell: (b) => usd(b.soft_budget), class: "num" },
      { label: "TPM limit", cell: (b) => count(b.tpm_limit), class: "num" },
      { label: "RPM limit", cell: (b) => count(b.rpm_limit), class: "num" },
      { label: "Max parallel", cell: (b) => count(b.max_parallel_requests), class: "num" },
      { label: "Reset period", cell: (b) => b.budget_duration || "never" },
      { label: "Next reset", cell: (b) => when(b.budget_reset_at) },
    ];
    clear(holder,
      table("Pricing tiers (" + tiers.length + ")", [
        { label: "Budget ID", cell: (b) => b.budget_id },
        ...limits,
        { label: "Customers", cell: (b) => h("a", { href: "#/customers?budget_id=" + encodeURIComponent(b.budget_id) }, count(b.customer_count)), class: "num" },
        { label: "Actions", cell: actions },
      ], tiers, "No pricing tiers yet: + Create Budget makes one."),
      own.length ? h("details", { class: "private" },
        h("summary", null, "Budgets of single customers (" + own.length + ")"),
        h("p", null, "Made by /customer/new or /customer/update with budget fields; each belongs to one customer and is changed through that customer."),
        table("Budgets of single customers", [
          { label: "Budget ID", cell: (b) => b.budget_id },
          { label: "Customer", cell: (b) => h("a", { href: "#/customer/" + encodeURIComponent(b.private_for) }, b.private_for) },
          ...limits,
        ], own)) : null);
    status.textContent = message || "";
  };
  create.addEventListener("click", () => budgetDialog(null, refresh));
  clear(section,
    h("div", { class: "toolbar" }, h("h1", null, "Budgets"), create),
    h("p", { class: "lead" }, "Pricing tiers: limits that many customers share. A customer's spend is its own; the tier gives the limits."),
    status, holder);
  await refresh();
}
