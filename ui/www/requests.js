// requests: a customer's recent requests, from the ledger (/spend/logs,
// newest first), page by page.

import { get } from "./api.js";
import { clear, h, table, when } from "./dom.js";
import { count, usd } from "./money.js";

const PAGE_SIZE = 25;

export function recentRequests(userId, isCurrent) {
  const box = h("section", { class: "requests", "aria-labelledby": "requests-title" },
    h("h2", { id: "requests-title" }, "Recent requests"));
  const holder = h("div");
  const nav = h("div", { class: "pager" });
  box.append(holder, nav);
  let page = 1;
  const load = async () => {
    const { data } = await get("/spend/logs", { end_user: userId, page, page_size: PAGE_SIZE });
    if (!isCurrent()) return;
    clear(holder, table("Requests of " + userId + ", newest first (page " + page + ")", [
      { label: "Started", cell: (r) => when(r.start_time) },
      { label: "Model", cell: (r) => r.model || "—" },
      { label: "Status", cell: (r) => r.status },
      { label: "Prompt tokens", cell: (r) => count(r.prompt_tokens), class: "num" },
      { label: "Completion tokens", cell: (r) => count(r.completion_tokens), class: "num" },
      { label: "Spend", cell: (r) => usd(r.spend), class: "num" },
      { label: "Duration", cell: (r) => count(r.request_duration_ms) + " ms", class: "num" },
      { label: "Request ID", cell: (r) => h("code", null, r.request_id) },
    ], data, page === 1 ? "No requests in the ledger." : "No older requests."));
    clear(nav,
      h("button", { type: "button", disabled: page === 1, onclick: () => { page -= 1; load(); } }, "Newer"),
      h("button", { type: "button", disabled: data.length < PAGE_SIZE, onclick: () => { page += 1; load(); } }, "Older"));
  };
  return { element: box, load };
}
