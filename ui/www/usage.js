// usage: the Usage tab: for a range of UTC days (the last 30 by default)
// and every customer or one, from /customer/daily/activity: spend per day
// as a chart, the period's totals, its spend by route (the LLM API, from
// the breakdown by call type), by model and its top 10 customers (summed
// exactly from the report's breakdowns), the chosen customer's recent
// requests, and the period's spend by customer or by key as CSV
// (/spend/export).

import { download } from "./api.js";
import { alertBox, clear, go, h, showError, statusLine, table } from "./dom.js";
import { dailySpend } from "./customers.js";
import { daysBetween, lastDays, spendChart } from "./chart.js";
import { recentRequests } from "./requests.js";
import { add, compare, count, usd } from "./money.js";

const DAYS = 30;
const MAX_DAYS = 366;

// The entries of one breakdown of the report ("models", "entities",
// "call_types"), each {name, spend, requests, tokens} summed over its
// days, the largest spend first.
export function summed(results, part) {
  const by = new Map();
  for (const day of results) {
    for (const [name, e] of Object.entries((day.breakdown && day.breakdown[part]) || {})) {
      const acc = by.get(name) || { name, spend: "0", requests: 0, tokens: 0 };
      acc.spend = add(acc.spend, e.metrics.spend);
      acc.requests += Number(e.metrics.api_requests);
      acc.tokens += Number(e.metrics.total_tokens);
      by.set(name, acc);
    }
  }
  return [...by.values()].sort((a, b) => compare(b.spend, a.spend) || (a.name < b.name ? -1 : 1));
}

// The LLM route of each of LiteLLM's call types.
const ROUTES = {
  acompletion: "/v1/chat/completions",
  aresponses: "/v1/responses",
  anthropic_messages: "/v1/messages",
  aembedding: "/v1/embeddings",
  atext_completion: "/v1/completions",
};

// The calls of no customer are the report's end user "".
const NO_CUSTOMER = "(no customer)";

// Why from..to is not a range this tab shows, or null.
function badRange(from, to) {
  const day = /^\d{4}-\d{2}-\d{2}$/;
  const valid = (d) => day.test(d) && new Date(d + "T00:00:00Z").toISOString().slice(0, 10) === d;
  if (!valid(from) || !valid(to)) return "From and To must be days, such as 2026-01-31.";
  if (to < from) return "To (" + to + ") is before From (" + from + ").";
  if (daysBetween(from, to).length > MAX_DAYS) return "The range is longer than " + MAX_DAYS + " days: choose a shorter one.";
  return null;
}

function hashFor(who, from, to) {
  const q = new URLSearchParams();
  if (who) q.set("customer", who);
  q.set("from", from);
  q.set("to", to);
  return "#/usage?" + q.toString();
}

// The buttons that download the period's spend by customer and by key.
function exportSection(from, to, who) {
  const status = statusLine();
  const err = alertBox();
  const button = (by, label) => h("button", { type: "button", onclick: async (ev) => {
    const b = ev.currentTarget;
    showError(err, null);
    status.textContent = "";
    b.disabled = true;
    try {
      const { blob, filename } = await download("/spend/export", { start_date: from, end_date: to, group_by: by });
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: filename, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      status.textContent = "Downloaded " + filename + ".";
    } catch (e) {
      showError(err, new Error("The export failed: " + e.message));
    } finally {
      b.disabled = false;
    }
  } }, label);
  return h("section", { class: "export", "aria-labelledby": "export-title" },
    h("h2", { id: "export-title" }, "Export"),
    h("p", null, "The spend from " + from + " to " + to + " (UTC days) as a CSV file: one line per customer or per key with calls then, " +
      "the calls of none first" + (who ? "; every customer's, not only " + who + "'s." : ".")),
    h("div", { class: "actions" },
      button("customer", "Export spend by customer (CSV)"),
      button("key", "Export spend by key (CSV)")),
    status, err);
}

export async function usageView(section, ctx) {
  const who = ctx.params.get("customer") || "";
  const dflt = lastDays(DAYS);
  const from = ctx.params.get("from") || dflt.start;
  const to = ctx.params.get("to") || dflt.end;
  const input = h("input", { id: "usage-customer", type: "search", name: "customer", value: who, autocomplete: "off", spellcheck: "false",
    "aria-describedby": "usage-help" });
  const fromInput = h("input", { id: "usage-from", type: "date", name: "from", value: from, required: true, "aria-describedby": "usage-help" });
  const toInput = h("input", { id: "usage-to", type: "date", name: "to", value: to, required: true, "aria-describedby": "usage-help" });
  const err = alertBox();
  const form = h("form", { class: "search", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "usage-customer" }, "Customer ID"), input),
    h("div", { class: "field" }, h("label", { for: "usage-from" }, "From"), fromInput),
    h("div", { class: "field" }, h("label", { for: "usage-to" }, "To"), toInput),
    h("button", { type: "submit" }, "Show"),
    who ? h("button", { type: "button", onclick: () => go(hashFor("", from, to)) }, "All customers") : null,
    h("small", { id: "usage-help", class: "form-help" },
      "Customer ID empty: every customer. From and To: UTC days, both included, at most " + MAX_DAYS + " days; every part of this tab is of that period."));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const bad = badRange(fromInput.value, toInput.value);
    showError(err, bad ? new Error(bad) : null);
    if (!bad) go(hashFor(input.value.trim(), fromInput.value, toInput.value));
  });
  const status = statusLine();
  const holder = h("div");
  clear(section, h("h1", null, "Usage"), form, err, status, holder);
  const bad = badRange(from, to);
  if (bad) {
    showError(err, new Error(bad));
    return;
  }

  const daily = await dailySpend(who || null, from, to);
  if (!ctx.isCurrent()) return;
  const m = daily.metadata;
  const subject = who ? "Spend of " + who : "Spend of every customer";
  const totals = h("dl", { class: "totals", "aria-label": "Totals of the period" },
    h("dt", null, "Total spend"), h("dd", { class: "money", "data-field": "total_spend" }, usd(m.total_spend)),
    h("dt", null, "Requests"), h("dd", { "data-field": "total_api_requests" }, count(m.total_api_requests)),
    h("dt", null, "Succeeded"), h("dd", null, count(m.total_successful_requests)),
    h("dt", null, "Failed"), h("dd", null, count(m.total_failed_requests)),
    h("dt", null, "Tokens"), h("dd", null, count(m.total_tokens) + " (" + count(m.total_prompt_tokens) + " prompt, " +
      count(m.total_completion_tokens) + " completion)"));
  const days = daily.points.filter(([, v]) => compare(v, "0") !== 0);
  const none = "No spend in this period.";
  const spendCols = [
    { label: "Spend", cell: (r) => usd(r.spend), class: "num money" },
    { label: "Requests", cell: (r) => count(r.requests), class: "num" },
  ];
  clear(holder,
    h("p", { class: "lead" }, subject + ", " + daily.start + " to " + daily.end + " (UTC days)."),
    totals,
    await spendChart(daily.points, subject + " per day, " + daily.start + " to " + daily.end),
    h("div", { class: "reports" }, h("div", null,
      table("Spend by route", [
        { label: "Route", cell: (r) => ROUTES[r.name] || (r.name ? "other" : "(not recorded)") },
        { label: "Call type", cell: (r) => r.name || "-" },
        ...spendCols,
      ], summed(daily.results, "call_types"), none),
      table("Spend by model", [
        { label: "Model", cell: (r) => r.name || "(not recorded)" },
        ...spendCols,
        { label: "Tokens", cell: (r) => count(r.tokens), class: "num" },
      ], summed(daily.results, "models"), none)),
      who ? null : table("Top 10 customers of the period", [
        { label: "Customer ID", cell: (t) => (t.name === ""
          ? h("span", { class: "muted" }, NO_CUSTOMER)
          : h("a", { href: hashFor(t.name, from, to) }, t.name)) },
        ...spendCols,
        { label: "Details", cell: (t) => (t.name === ""
          ? "calls that named no user"
          : h("a", { href: "#/customer/" + encodeURIComponent(t.name), "aria-label": "Customer page of " + t.name }, "Customer page")) },
      ], summed(daily.results, "entities").slice(0, 10), "No customer spent anything in this period.")),
    table("Spend per day (days with spend)", [
      { label: "Day", cell: ([d]) => d },
      { label: "Spend", cell: ([, v]) => usd(v), class: "num money" },
    ], days.reverse(), none));
  const requests = who ? recentRequests(who, ctx.isCurrent) : null;
  holder.append(...(requests ? [requests.element] : []), exportSection(from, to, who));
  if (requests) await requests.load();
}
