// usage: the Usage tab: spend per day of the last 30 days for every
// customer or one, from /customer/daily/activity, as a chart, with the
// period's totals, its spend by route (the LLM API, from the breakdown by
// call type) and its top 10 customers (summed exactly from the report's
// breakdowns), and the chosen customer's recent requests.

import { clear, go, h, statusLine, table } from "./dom.js";
import { dailySpend } from "./customers.js";
import { spendChart } from "./chart.js";
import { recentRequests } from "./requests.js";
import { add, compare, count, usd } from "./money.js";

const DAYS = 30;

// The end users of the report's days, with their summed spend and
// requests, the largest spend first.
export function topCustomers(results, n) {
  const by = new Map();
  for (const day of results) {
    for (const [user, e] of Object.entries((day.breakdown && day.breakdown.entities) || {})) {
      const acc = by.get(user) || { user, spend: "0", requests: 0 };
      acc.spend = add(acc.spend, e.metrics.spend);
      acc.requests += Number(e.metrics.api_requests);
      by.set(user, acc);
    }
  }
  return [...by.values()].sort((a, b) => compare(b.spend, a.spend) || (a.user < b.user ? -1 : 1)).slice(0, n);
}

// The LLM route of each of LiteLLM's call types.
const ROUTES = {
  acompletion: "/v1/chat/completions",
  aresponses: "/v1/responses",
  anthropic_messages: "/v1/messages",
  aembedding: "/v1/embeddings",
  atext_completion: "/v1/completions",
};

// The report's spend and requests by call type, summed over its days, the
// largest spend first.
export function byRoute(results) {
  const by = new Map();
  for (const day of results) {
    for (const [type, e] of Object.entries((day.breakdown && day.breakdown.call_types) || {})) {
      const acc = by.get(type) || { type, spend: "0", requests: 0 };
      acc.spend = add(acc.spend, e.metrics.spend);
      acc.requests += Number(e.metrics.api_requests);
      by.set(type, acc);
    }
  }
  return [...by.values()].sort((a, b) => compare(b.spend, a.spend) || (a.type < b.type ? -1 : 1));
}

export async function usageView(section, ctx) {
  const who = ctx.params.get("customer") || "";
  const input = h("input", { id: "usage-customer", type: "search", name: "customer", value: who, autocomplete: "off", spellcheck: "false",
    "aria-describedby": "usage-customer-help" });
  const form = h("form", { class: "search" },
    h("div", { class: "field" }, h("label", { for: "usage-customer" }, "Customer ID"), input,
      h("small", { id: "usage-customer-help" }, "Empty: every customer.")),
    h("button", { type: "submit" }, "Show"),
    who ? h("button", { type: "button", onclick: () => go("#/usage") }, "All customers") : null);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = input.value.trim();
    go("#/usage" + (v ? "?customer=" + encodeURIComponent(v) : ""));
  });
  const status = statusLine();
  const holder = h("div");
  clear(section, h("h1", null, "Usage"), form, status, holder);

  const daily = await dailySpend(who || null, DAYS);
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
  const top = topCustomers(daily.results, 10);
  const days = daily.points.filter(([, v]) => compare(v, "0") !== 0);
  clear(holder,
    h("p", { class: "lead" }, subject + ", " + daily.start + " to " + daily.end + " (UTC days)."),
    totals,
    await spendChart(daily.points, subject + " per day, " + daily.start + " to " + daily.end),
    table("Spend by route", [
      { label: "Route", cell: (r) => ROUTES[r.type] || (r.type ? "other" : "(not recorded)") },
      { label: "Call type", cell: (r) => r.type || "-" },
      { label: "Spend", cell: (r) => usd(r.spend), class: "num money" },
      { label: "Requests", cell: (r) => count(r.requests), class: "num" },
    ], byRoute(daily.results), "No spend in these 30 days."),
    table("Spend per day (days with spend)", [
      { label: "Day", cell: ([d]) => d },
      { label: "Spend", cell: ([, v]) => usd(v), class: "num money" },
    ], days.reverse(), "No spend in these 30 days."),
    who ? null : table("Top 10 customers of the period", [
      { label: "Customer ID", cell: (t) => h("a", { href: "#/usage?customer=" + encodeURIComponent(t.user) }, t.user) },
      { label: "Spend", cell: (t) => usd(t.spend), class: "num money" },
      { label: "Requests", cell: (t) => count(t.requests), class: "num" },
      { label: "Details", cell: (t) => h("a", { href: "#/customer/" + encodeURIComponent(t.user), "aria-label": "Customer page of " + t.user }, "Customer page") },
    ], top, "No customer spent anything in these 30 days."));
  if (who) {
    const requests = recentRequests(who, ctx.isCurrent);
    holder.append(requests.element);
    await requests.load();
  }
}
