// customers: the Customers tab (/customer/list paged on the server, with
// its search and x-total-count; block, unblock, update, delete, new) and a
// customer's page (#/customer/<id>: /customer/info, its spend chart from
// /customer/daily/activity and its requests from /spend/logs).

import { get, post } from "./api.js";
import { alertBox, clear, confirmDialog, field, formDialog, go, h, newId, showError, statusLine, table, value, when } from "./dom.js";
import { LIMIT_FIELDS, limitFields, limitValues, sharedTiers } from "./budgets.js";
import { daysBetween, lastDays, spendChart } from "./chart.js";
import { recentRequests } from "./requests.js";
import { accountUse } from "./meter.js";
import { add, count, usd } from "./money.js";

const PAGE_SIZES = [25, 50, 100, 250];

function customerLink(id) {
  return h("a", { href: "#/customer/" + encodeURIComponent(id) }, id);
}

// A budget's model_max_budget with what each capped model has spent in its
// period (/customer/info's model_spend): "gpt-4o: $1.20 of $5.00 per 1d".
function modelBudgets(caps, spent) {
  const names = caps && typeof caps === "object" ? Object.keys(caps).sort() : [];
  if (!names.length) return "none";
  return names.map((m) => {
    const cap = caps[m] || {};
    return m + ": " + usd((spent && spent[m]) || "0") + " of " + usd(cap.budget_limit) +
      (cap.time_period ? " per " + cap.time_period : "");
  }).join(" · ");
}

function budgetLabel(c, tiers) {
  if (c.budget_id && tiers.has(c.budget_id)) return c.budget_id;
  if (c.budget_id) return "own limits";
  if (c.litellm_budget_table) return c.litellm_budget_table.budget_id + " (default tier)";
  return "—";
}

// The fieldset choosing a customer's budget: none, a tier, or limits of
// its own (prefilled with what applies now).
function budgetChoice(c, tiers) {
  const current = !c ? "none" : c.budget_id && tiers.some((t) => t.budget_id === c.budget_id)
    ? "tier" : c.budget_id ? "own" : "none";
  const name = newId("budget-mode");
  const radio = (v, label) => {
    const id = newId("mode");
    return h("div", { class: "field checkbox" },
      h("input", { type: "radio", id, name: "budget_mode", value: v, checked: current === v, "data-group": name }),
      h("label", { for: id }, label));
  };
  const tierField = field({ name: "tier", label: "Pricing tier", type: "select",
    value: current === "tier" ? c.budget_id : "",
    options: [["", tiers.length ? "— choose a tier —" : "— no tiers yet —"], ...tiers.map((t) => [t.budget_id, t.budget_id + " (max " + usd(t.max_budget) + ")"])] });
  const own = h("div", { class: "grid own" }, limitFields(c && c.litellm_budget_table).map(field));
  const sync = (fs) => {
    const mode = fs.querySelector("input[name=budget_mode]:checked").value;
    tierField.hidden = mode !== "tier";
    own.hidden = mode !== "own";
  };
  const fs = h("fieldset", { class: "budget-choice" }, h("legend", null, "Budget"),
    radio("none", c && c.litellm_budget_table && !c.budget_id ? "No budget of its own (the default tier applies)" : "No budget"),
    radio("tier", "A pricing tier"),
    radio("own", "Limits of its own"),
    tierField, own);
  fs.addEventListener("change", () => sync(fs));
  sync(fs);
  return fs;
}

// The body fields for the budget the form chose, compared with c (null
// when creating).
function budgetBody(form, c) {
  const mode = form.querySelector("input[name=budget_mode]:checked").value;
  const now = c ? c.budget_id : null;
  if (mode === "none") return now !== null ? { budget_id: null } : {};
  if (mode === "tier") {
    const tier = form.elements.tier.value;
    if (!tier) throw new Error("Choose a pricing tier, or another budget choice.");
    return tier !== now ? { budget_id: tier } : {};
  }
  return limitValues(form, (c && c.litellm_budget_table) || {});
}

export async function customerDialog(c, done) {
  const tiers = await sharedTiers();
  const idField = { name: "user_id", label: "Customer ID", type: "text", value: c ? c.user_id : "", required: true, readonly: !!c,
    help: c ? "A customer's id does not change." : "The id your application sends as user, such as ishaan3." };
  const aliasField = { name: "alias", label: "Alias", type: "text", value: c && c.alias ? c.alias : "", help: "A name for people. Empty: none." };
  formDialog({
    title: c ? "Edit customer " + c.user_id : "Create Customer",
    body: [field(idField), field(aliasField), budgetChoice(c, tiers)],
    submitLabel: c ? "Save Customer" : "Create Customer",
    onSubmit: async (form) => {
      const id = value(form, idField);
      if (!c && id === "") throw new Error("Customer ID is required.");
      const alias = value(form, aliasField);
      const body = { user_id: c ? c.user_id : id };
      if (!c) {
        if (alias !== "") body.alias = alias;
      } else if (alias !== (c.alias || "")) {
        body.alias = alias === "" ? null : alias;
      }
      Object.assign(body, budgetBody(form, c));
      await post(c ? "/customer/update" : "/customer/new", body);
      await done((c ? "Saved customer " : "Created customer ") + body.user_id + ".");
    },
  });
}

export function blockButton(c, done) {
  const verb = c.blocked ? "Unblock" : "Block";
  return h("button", { type: "button", "aria-label": verb + " customer " + c.user_id, onclick: async (ev) => {
    ev.target.disabled = true;
    try {
      await post(c.blocked ? "/customer/unblock" : "/customer/block", { user_ids: [c.user_id] });
      await done((c.blocked ? "Unblocked " : "Blocked ") + c.user_id + ".");
    } catch (e) {
      await done(null, e);
    }
  } }, verb);
}

export function deleteButton(c, done) {
  return h("button", { type: "button", class: "danger", "aria-label": "Delete customer " + c.user_id, onclick: () => confirmDialog({
    title: "Delete customer " + c.user_id + "?",
    message: "Its row and any budget of its own are deleted; the ledger keeps its requests. This cannot be undone.",
    confirmLabel: "Delete customer",
    action: async () => {
      await post("/customer/delete", { user_ids: [c.user_id] });
      await done("Deleted customer " + c.user_id + ".");
    },
  }) }, "Delete");
}

function hashFor(state) {
  const q = new URLSearchParams();
  if (state.q) q.set("q", state.q);
  if (state.budget_id) q.set("budget_id", state.budget_id);
  if (state.blocked) q.set("blocked", state.blocked);
  if (state.page > 1) q.set("page", String(state.page));
  if (state.size !== PAGE_SIZES[1]) q.set("size", String(state.size));
  const s = q.toString();
  return "#/customers" + (s ? "?" + s : "");
}

export async function customersView(section, ctx) {
  const p = ctx.params;
  const state = {
    q: p.get("q") || "",
    budget_id: p.get("budget_id") || "",
    blocked: ["true", "false"].includes(p.get("blocked")) ? p.get("blocked") : "",
    page: Math.max(1, parseInt(p.get("page") || "1", 10) || 1),
    size: PAGE_SIZES.includes(parseInt(p.get("size"), 10)) ? parseInt(p.get("size"), 10) : PAGE_SIZES[1],
  };
  const status = statusLine();
  const err = alertBox();
  const holder = h("div");
  const pager = h("nav", { class: "pager", "aria-label": "Pages of customers" });

  const search = h("input", { id: "customer-search", type: "search", name: "q", value: state.q, autocomplete: "off", spellcheck: "false" });
  const show = h("select", { id: "customer-show", name: "blocked" },
    [["", "All customers"], ["true", "Blocked only"], ["false", "Not blocked"]].map(([v, l]) => h("option", { value: v, selected: state.blocked === v }, l)));
  const searchForm = h("form", { class: "search", role: "search" },
    h("div", { class: "field" }, h("label", { for: "customer-search" }, "Search by id or alias"), search),
    h("div", { class: "field" }, h("label", { for: "customer-show" }, "Show"), show),
    h("button", { type: "submit" }, "Search"),
    state.q || state.budget_id || state.blocked
      ? h("button", { type: "button", onclick: () => go("#/customers") }, "Clear") : null);
  searchForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    go(hashFor({ ...state, q: search.value.trim(), blocked: show.value, page: 1 }));
  });
  const create = h("button", { type: "button", class: "primary" }, "+ Create Customer");

  let tiers = new Set();
  const render = async (message, error) => {
    const { data, headers } = await get("/customer/list", {
      page: state.page, page_size: state.size, search: state.q, budget_id: state.budget_id, blocked: state.blocked,
    });
    if (!ctx.isCurrent()) return;
    const total = parseInt(headers.get("x-total-count") || String(data.length), 10);
    const pages = Math.max(1, Math.ceil(total / state.size));
    const first = total === 0 ? 0 : (state.page - 1) * state.size + 1;
    const last = (state.page - 1) * state.size + data.length;
    const done = (msg, e) => render(msg, e);
    const what = [state.q ? "matching “" + state.q + "”" : null, state.budget_id ? "on " + state.budget_id : null,
      state.blocked === "true" ? "blocked" : state.blocked === "false" ? "not blocked" : null].filter(Boolean).join(", ");
    clear(holder, table(
      "Customers " + (data.length ? count(first) + "–" + count(last) : "0") + " of " + count(total) + (what ? " (" + what + ")" : ""), [
        { label: "Customer ID", cell: (c) => customerLink(c.user_id) },
        { label: "Alias", cell: (c) => c.alias || "—" },
        { label: "Spend", cell: (c) => usd(c.spend), class: "num money" },
        { label: "Reserved", cell: (c) => usd(c.reserved), class: "num money" },
        { label: "Max budget", cell: (c) => usd(c.litellm_budget_table && c.litellm_budget_table.max_budget), class: "num money" },
        { label: "Budget use", cell: (c) => accountUse(c, c.litellm_budget_table && c.litellm_budget_table.max_budget, "customer " + c.user_id) },
        { label: "Budget", cell: (c) => budgetLabel(c, tiers) },
        { label: "Period reset", cell: (c) => when(c.spend_reset_at) },
        { label: "Blocked", cell: (c) => (c.blocked ? h("strong", { class: "blocked" }, "Blocked") : "No") },
        { label: "Actions", cell: (c) => h("div", { class: "actions" },
          blockButton(c, done),
          h("button", { type: "button", "aria-label": "Edit customer " + c.user_id, onclick: () => customerDialog(c, done) }, "Edit"),
          deleteButton(c, done)) },
      ], data, total === 0 ? (what ? "No customer " + what + "." : "No customers yet.") : "No customers on this page."));
    const pageInput = h("input", { id: "customer-page", type: "text", inputmode: "numeric", value: String(state.page), size: 6 });
    const goTo = h("form", { class: "goto" },
      h("label", { for: "customer-page" }, "Page"), pageInput, h("span", null, "of " + count(pages)),
      h("button", { type: "submit" }, "Go"));
    goTo.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const n = parseInt(pageInput.value, 10);
      if (!(n >= 1 && n <= pages)) {
        showError(err, new Error("Page must be a number from 1 to " + pages + "."));
        return;
      }
      go(hashFor({ ...state, page: n }));
    });
    const sizeSel = h("select", { id: "customer-size" }, PAGE_SIZES.map((n) => h("option", { value: n, selected: n === state.size }, String(n))));
    sizeSel.addEventListener("change", () => go(hashFor({ ...state, size: parseInt(sizeSel.value, 10), page: 1 })));
    clear(pager,
      h("button", { type: "button", disabled: state.page <= 1, onclick: () => go(hashFor({ ...state, page: state.page - 1 })) }, "Previous page"),
      goTo,
      h("button", { type: "button", disabled: state.page >= pages, onclick: () => go(hashFor({ ...state, page: state.page + 1 })) }, "Next page"),
      h("div", { class: "field inline" }, h("label", { for: "customer-size" }, "Per page"), sizeSel));
    status.textContent = message || "";
    showError(err, error || null);
  };

  create.addEventListener("click", () => customerDialog(null, (m) => render(m)).catch((e) => showError(err, e)));
  clear(section,
    h("div", { class: "toolbar" }, h("h1", null, "Customers"), create),
    searchForm, status, err, holder, pager);
  tiers = new Set((await sharedTiers()).map((t) => t.budget_id));
  await render();
}

// Spend per day from start to end (UTC days, both included) for
// end_user_ids (null: everyone): [[day, exact spend]] for every day, and
// the report itself (its days with activity, page by page, and the
// metadata of the first page, which totals them all).
export async function dailySpend(userIds, start, end) {
  const days = daysBetween(start, end);
  const results = [];
  let metadata = null;
  for (let page = 1; ; page++) {
    const { data } = await get("/customer/daily/activity", {
      start_date: start, end_date: end, end_user_ids: userIds, page, page_size: Math.min(days.length + 1, 1000),
    });
    results.push(...data.results);
    metadata = metadata || data.metadata;
    if (!data.metadata.has_more || !data.results.length) break;
  }
  const byDay = new Map(results.map((r) => [r.date, r]));
  const points = days.map((d) => [d, byDay.has(d) ? String(byDay.get(d).metrics.spend) : "0"]);
  return { start, end, points, results, metadata };
}

export async function customerView(section, ctx) {
  const id = ctx.arg;
  const status = statusLine();
  const err = alertBox();
  const info = h("div");
  const chartBox = h("div");
  const requests = recentRequests(id, ctx.isCurrent);
  const back = h("p", null, h("a", { href: "#/customers" }, "← All customers"));
  clear(section, back, h("h1", null, "Customer ", h("code", null, id)), status, err, info,
    h("section", { "aria-labelledby": "chart-title" }, h("h2", { id: "chart-title" }, "Spend per day, last 30 days"), chartBox),
    requests.element);
  const render = async (message, error) => {
    const { data: c } = await get("/customer/info", { end_user_id: id });
    if (!ctx.isCurrent()) return;
    const b = c.litellm_budget_table;
    const tierNames = new Set((await sharedTiers()).map((t) => t.budget_id));
    const done = async (msg, e) => render(msg, e);
    clear(info,
      h("dl", { class: "facts" },
        h("dt", null, "Alias"), h("dd", null, c.alias || "—"),
        h("dt", null, "Spend this period"), h("dd", { class: "money", "data-field": "spend" }, usd(c.spend)),
        h("dt", null, "Reserved (in flight)"), h("dd", { class: "money" }, usd(c.reserved)),
        h("dt", null, "Budget"), h("dd", null, budgetLabel(c, tierNames)),
        h("dt", null, "Max budget"), h("dd", { class: "money" }, usd(b && b.max_budget)),
        h("dt", null, "Budget use"), h("dd", null, accountUse(c, b && b.max_budget, "customer " + c.user_id)),
        h("dt", null, "Soft budget"), h("dd", { class: "money" }, usd(b && b.soft_budget)),
        h("dt", null, "Per-model budgets"), h("dd", { "data-field": "model_budgets" }, modelBudgets(b && b.model_max_budget, c.model_spend)),
        h("dt", null, "Limits"), h("dd", null, LIMIT_FIELDS.slice(2, 5).map((f) => f.label + " " + count(b && b[f.name])).join(" · ")),
        h("dt", null, "Reset period"), h("dd", null, (b && b.budget_duration) || "never"),
        h("dt", null, "Period reset"), h("dd", null, when(c.spend_reset_at)),
        h("dt", null, "Blocked"), h("dd", null, c.blocked ? h("strong", { class: "blocked" }, "Blocked") : "No")),
      h("div", { class: "actions" },
        blockButton(c, done),
        h("button", { type: "button", onclick: () => customerDialog(c, done).catch((e) => showError(err, e)) }, "Edit"),
        deleteButton(c, async (msg) => {
          go("#/customers");
          return msg;
        })));
    status.textContent = message || "";
    showError(err, error || null);
  };
  await render();
  const { start, end } = lastDays(30);
  const [daily] = await Promise.all([dailySpend(id, start, end), requests.load()]);
  if (!ctx.isCurrent()) return;
  let total = "0";
  for (const [, v] of daily.points) total = add(total, v);
  clear(chartBox, await spendChart(daily.points, "Spend of " + id + " per day, " + daily.start + " to " + daily.end),
    h("p", null, "Total of the 30 days: ", h("strong", { class: "money" }, usd(total))));
}
