// budgets: the Budgets tab, pricing tiers (/budget/list, new, update,
// delete), each with its customers' use of it.  "+ Create Budget" is the
// seed's flow: "my-free-tier" with Max Budget 4 sends {"budget_id":
// "my-free-tier", "max_budget": 4}, the body of the seed's curl.  Also the
// budget fields every other form shares.

import { get, post } from "./api.js";
import { clear, confirmDialog, field, formDialog, h, statusLine, table, value, when } from "./dom.js";
import { THRESHOLDS, add, compare, count, share, usd } from "./money.js";
import { useMeter } from "./meter.js";

// A tier's use is read from its customers, at most this many.
const TIER_SCAN = 10000;
const SCAN_PAGE = 1000;

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

// The use of a shared tier by the customers on it (budget_id = the tier),
// from /customer/list page by page: how many have used (spend + reserved,
// this period) at least each alert threshold of its max_budget, {85: n,
// 95: n, 100: n}, and the one who used the most, {id, used}, or null.
async function tierUse(tier) {
  const at = Object.fromEntries(THRESHOLDS.map((t) => [t, 0]));
  let top = null;
  for (let page = 1; ; page++) {
    const { data } = await get("/customer/list", { budget_id: tier.budget_id, page, page_size: SCAN_PAGE });
    for (const c of data) {
      const used = add(c.spend, c.reserved);
      const { level } = share(used, tier.max_budget);
      for (const t of THRESHOLDS) if (level !== "ok" && Number(level) >= t) at[t] += 1;
      if (!top || compare(used, top.used) > 0) top = { id: c.user_id, used };
    }
    if (data.length < SCAN_PAGE) break;
  }
  return { at, top };
}

// A tier's use, "…" until fill() has read it: how many customers are at
// each threshold or above ("≥ 85%: 2"), then the highest use, as a meter,
// and whose it is.
function useCell(tier) {
  const el = h("div", { class: "tier-use" }, "…");
  const fill = async () => {
    if (tier.max_budget === null || tier.max_budget === undefined) return clear(el, "no limit");
    if (tier.customer_count === 0) return clear(el, h("span", { class: "muted" }, "no customers"));
    if (tier.customer_count > TIER_SCAN) return clear(el, "not counted: over " + count(TIER_SCAN) + " customers");
    try {
      const { at, top } = await tierUse(tier);
      // (customer_count was read before: the tier may have none now)
      clear(el, !top ? h("span", { class: "muted" }, "no customers") : [
        h("p", { class: "at" }, THRESHOLDS.map((t, i) => [i ? ", " : "",
          h("span", { "data-at": t }, "≥ " + t + "%: ", h("strong", null, count(at[t])))])),
        useMeter(top.used, tier.max_budget, "the most used customer of tier " + tier.budget_id),
        h("span", { class: "use-who" }, "highest: ", h("a", { href: "#/customer/" + encodeURIComponent(top.id) }, top.id))]);
    } catch (e) {
      clear(el, "could not be read: " + e.message);
    }
  };
  return { el, fill };
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
    const use = new Map(tiers.map((b) => [b.budget_id, useCell(b)]));
    const tierTable = table("Pricing tiers (" + tiers.length + ")", [
      { label: "Budget ID", cell: (b) => b.budget_id },
      ...limits,
      { label: "Customers", cell: (b) => h("a", { href: "#/customers?budget_id=" + encodeURIComponent(b.budget_id) }, count(b.customer_count)), class: "num" },
      { label: "Customers' use", cell: (b) => use.get(b.budget_id).el },
      { label: "Actions", cell: actions },
    ], tiers, "No pricing tiers yet: + Create Budget makes one.");
    tierTable.querySelector("table").setAttribute("aria-describedby", "tier-use-note");
    clear(holder,
      h("p", { id: "tier-use-note", class: "caption-note" }, "Customers' use: how many of the customers on the tier have used at least " +
        "85%, 95% and 100% of its max budget (spend + reserved, this period; the webhook alerts at these), and the highest use among them."),
      tierTable,
      own.length ? h("details", { class: "private" },
        h("summary", null, "Budgets of single customers (" + own.length + ")"),
        h("p", null, "Made by /customer/new or /customer/update with budget fields; each belongs to one customer and is changed through that customer."),
        table("Budgets of single customers", [
          { label: "Budget ID", cell: (b) => b.budget_id },
          { label: "Customer", cell: (b) => h("a", { href: "#/customer/" + encodeURIComponent(b.private_for) }, b.private_for) },
          ...limits,
        ], own)) : null);
    status.textContent = message || "";
    await Promise.all([...use.values()].map((u) => u.fill()));
  };
  create.addEventListener("click", () => budgetDialog(null, refresh));
  clear(section,
    h("div", { class: "toolbar" }, h("h1", null, "Budgets"), create),
    h("p", { class: "lead" }, "Pricing tiers: limits that many customers share. A customer's spend is its own; the tier gives the limits."),
    status, holder);
  await refresh();
}
