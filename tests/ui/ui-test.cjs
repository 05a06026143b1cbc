// ui-test: the admin UI (ui/www, SPEC 14) driven in a real browser by
// playwright-core, against the servers tests/e2e/ui.py started.  Every
// check is printed as one line "CHECK {json}" ({ok, name, diag}) that
// ui.py turns into a TAP test point; screenshots go to TG_UI_SHOTS: one
// after each flow (flow-<name>.png), of each tab at 1400 and 390 px wide
// (tab-<name>-<width>.png; -390-bars: its table scrolled to the budget
// bars), and of a failure (failed-<flow>.png); Firefox's end in -firefox.
//
// Environment: TG_UI_BASE (http://127.0.0.1:PORT), TG_MASTER_KEY,
// TG_UI_BROWSER ("chromium" or "firefox"), TG_UI_EXECUTABLE (the browser),
// TG_UI_SHOTS, TG_UI_TODAY (YYYY-MM-DD, UTC).
// chromium runs every flow; firefox (WebDriver BiDi, Debian's
// firefox-esr) the ones marked for both.
"use strict";

const { execFileSync } = require("child_process");
const path = require("path");
const pw = require("playwright-core");

const BASE = process.env.TG_UI_BASE;
const KEY = process.env.TG_MASTER_KEY || "sk-1234";
const BROWSER = process.env.TG_UI_BROWSER || "chromium";
const SHOTS = process.env.TG_UI_SHOTS;
const TODAY = process.env.TG_UI_TODAY;
const tag = BROWSER === "chromium" ? "" : "-" + BROWSER;

function check(ok, name, ...diag) {
  process.stdout.write("CHECK " + JSON.stringify({ ok: !!ok, name: "[" + BROWSER + "] " + name, diag: diag.map(String) }) + "\n");
  return !!ok;
}
function eq(got, want, name) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  return check(g === w, name, "     got: " + g, "expected: " + w);
}

// The API, read as text: the exact numbers are compared as printed.
async function api(method, p, body, key) {
  const res = await fetch(BASE + p, {
    method,
    headers: { Authorization: "Bearer " + (key || KEY), "Content-Type": "application/json" },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch (e) {
    json = null;
  }
  return { status: res.status, text, json, headers: res.headers };
}

// The text of a number field as the API printed it: "max_budget":4 -> "4".
function rawField(text, name) {
  const m = new RegExp('"' + name + '":(-?[0-9.eE+-]+|null|"[^"]*")').exec(text);
  return m ? m[1] : undefined;
}

// JSON text with every number kept as the string the API printed (the
// reports here have no number-like text inside strings but dates, which
// are quoted).
function exactJson(text) {
  return JSON.parse(text.replace(/([:[,])(-?\d[\d.eE+-]*)/g, '$1"$2"'));
}

// Exact decimals for the checks, apart from the UI's money.js: text ->
// [BigInt, scale]; sums and canonical text ("0.00085", "2e-05" ->
// "0.00002", "4.50" -> "4.5").
function dec(s) {
  const m = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(String(s).trim());
  if (!m) throw new Error("not a decimal: " + s);
  const frac = m[3] || "";
  let v = BigInt((m[2] || "0") + frac) * (m[1] ? -1n : 1n);
  let scale = frac.length - (m[4] ? parseInt(m[4], 10) : 0);
  if (scale < 0) {
    v *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return [v, scale];
}
function decText([v, scale]) {
  const neg = v < 0n;
  let s = (neg ? -v : v).toString();
  if (scale > 0) {
    s = s.padStart(scale + 1, "0");
    s = (s.slice(0, -scale) + "." + s.slice(-scale)).replace(/0+$/, "").replace(/\.$/, "");
  }
  return (neg && s !== "0" ? "-" : "") + s;
}
function decAdd(...xs) {
  let [v, scale] = [0n, 0];
  for (const x of xs) {
    const [w, s] = dec(x);
    const k = Math.max(scale, s);
    v = v * 10n ** BigInt(k - scale) + w * 10n ** BigInt(k - s);
    scale = k;
  }
  return decText([v, scale]);
}
const canon = (s) => decAdd(s);

// The day n days before day ("YYYY-MM-DD", UTC).
function daysBefore(day, n) {
  const d = new Date(day + "T00:00:00Z");
  d.setUTCDate(d.getUTCDate() - n);
  return d.toISOString().slice(0, 10);
}

// CSV (RFC 4180: quoted fields, "" inside them, CRLF) -> rows of fields.
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c !== '"') field += c;
      else if (text[i + 1] === '"') field += text[++i];
      else quoted = false;
    } else if (c === '"') {
      quoted = true;
    } else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\n") {
      rows.push([...row, field.replace(/\r$/, "")]);
      row = [];
      field = "";
    } else {
      field += c;
    }
  }
  if (field !== "" || row.length) rows.push([...row, field]);
  return rows;
}

// The /customer/daily/activity report of start..end, its numbers exact.
async function activity(start, end) {
  const r = await api("GET", "/customer/daily/activity?start_date=" + start + "&end_date=" + end + "&page_size=1000");
  return exactJson(r.text);
}

// One breakdown of a report ("models", "entities") summed over its days:
// {name: {spend, requests, tokens}}.
function breakdownSums(report, part) {
  const out = {};
  for (const day of report.results) {
    for (const [name, e] of Object.entries(day.breakdown[part] || {})) {
      const o = out[name] || (out[name] = { spend: "0", requests: 0, tokens: 0 });
      o.spend = decAdd(o.spend, e.metrics.spend);
      o.requests += Number(e.metrics.api_requests);
      o.tokens += Number(e.metrics.total_tokens);
    }
  }
  return out;
}

function curl(args) {
  try {
    return execFileSync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}"].concat(args), { encoding: "utf8" });
  } catch (e) {
    return "curl failed: " + e.message;
  }
}

// A console error a flow causes on purpose (a RegExp), not counted.
let expectedConsoleError = null;

let shots = 0;
async function shot(page, name) {
  // caret "initial": no style of the test's own is put into the page (the
  // UI's Content-Security-Policy refuses it, and says so on the console).
  if (SHOTS) {
    shots += 1;
    await page.screenshot({ path: path.join(SHOTS, name + tag + ".png"), fullPage: true, caret: "initial" });
  }
}

const chat = (user, prompt, completion, key) => api("POST", "/chat/completions", {
  model: "fake-gpt", user, messages: [{ role: "user", content: "hi" }],
  fake: { usage: { prompt_tokens: prompt, completion_tokens: completion } },
}, key);

async function signIn(page) {
  await page.goto(BASE + "/ui/");
  await page.getByLabel("Master key").fill(KEY);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Customers", level: 1 }).waitFor();
}

async function caption(page) {
  return (await page.locator("caption").first().textContent()).trim();
}

// Until the first table's caption starts with prefix (the view re-renders
// after each action: the caption may be missing for a moment).
function captionStarts(page, prefix) {
  return page.waitForFunction((p) => {
    const c = document.querySelector("caption");
    return c !== null && c.textContent.startsWith(p);
  }, prefix);
}

async function cellTexts(page, column) {
  // The n-th cell of each body row (0: the id, a <th>).
  return page.locator("tbody tr").evaluateAll((rows, col) =>
    rows.map((r) => (r.children[col] ? r.children[col].textContent.trim() : null)), column);
}

async function searchCustomers(page, q) {
  await page.getByRole("link", { name: "Customers", exact: true }).click();
  await page.getByLabel("Search by id or alias").fill(q);
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await page.waitForFunction((q) => {
    const c = document.querySelector("caption");
    return c !== null && c.textContent.includes("matching “" + q + "”");
  }, q);
}

// ---- the flows ----

async function signInFlow(page) {
  await page.goto(BASE + "/ui");
  eq(new URL(page.url()).pathname, "/ui/", "/ui redirects to /ui/");
  await shot(page, "sign-in");
  await page.getByLabel("Master key").fill("sk-not-the-key");
  await page.getByRole("button", { name: "Sign in" }).click();
  const alert = page.getByRole("alert");
  await alert.waitFor();
  const want = (await api("GET", "/customer/list?page=1&page_size=1", undefined, "sk-not-the-key")).json.error.message;
  eq((await alert.textContent()).trim(), want, "a wrong key is refused with the API's message");
  eq(await page.evaluate(() => sessionStorage.getItem("tollgate.masterKey")), null, "... and nothing is saved");
  await page.getByLabel("Master key").fill(KEY);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Customers", level: 1 }).waitFor();
  eq(await page.evaluate(() => sessionStorage.getItem("tollgate.masterKey")), KEY, "the right key signs in, kept in sessionStorage");
}

async function pagingFlow(page) {
  const total = (await api("GET", "/customer/list?page=1&page_size=1")).headers.get("x-total-count");
  check(parseInt(total, 10) >= 10000, "more than 10,000 customers in the database (" + total + ")");
  const fmt = (n) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  await page.getByRole("link", { name: "Customers", exact: true }).click();
  await captionStarts(page, "Customers 1–50 ");
  eq(await caption(page), "Customers 1–50 of " + fmt(total), "the first page of 50, with the count of all");
  const p1 = (await api("GET", "/customer/list?page=1&page_size=50")).json.map((c) => c.user_id);
  eq(await cellTexts(page, 0), p1, "page 1 lists what /customer/list?page=1 does");
  await shot(page, "customers");
  const t0 = Date.now();
  await page.getByRole("button", { name: "Next page" }).click();
  await captionStarts(page, "Customers 51–100 ");
  const p2 = (await api("GET", "/customer/list?page=2&page_size=50")).json.map((c) => c.user_id);
  eq(await cellTexts(page, 0), p2, "Next page: page 2, from the server");
  const last = Math.ceil(parseInt(total, 10) / 50);
  const pl = (await api("GET", "/customer/list?page=" + last + "&page_size=50")).json.map((c) => c.user_id);
  await page.getByLabel("Page", { exact: true }).fill(String(last));
  await page.getByRole("button", { name: "Go", exact: true }).click();
  await captionStarts(page, "Customers " + fmt((last - 1) * 50 + 1) + "–");
  eq(await cellTexts(page, 0), pl, "Go to the last page (" + last + ")");
  check(await page.getByRole("button", { name: "Next page" }).isDisabled(), "no Next page on the last page");
  check(Date.now() - t0 < 5000, "paging through 10,000+ customers is quick (" + (Date.now() - t0) + " ms for 2 pages)");
}

async function searchFlow(page) {
  await searchCustomers(page, "bulk-04242");
  eq(await cellTexts(page, 0), ["bulk-04242"], "search by id");
  await searchCustomers(page, "BULK CUSTOMER 777");
  const want = (await api("GET", "/customer/list?page=1&page_size=50&search=" + encodeURIComponent("BULK CUSTOMER 777"))).json.map((c) => c.user_id);
  eq(await cellTexts(page, 0), want, "search by alias, in any case (" + want.length + " matches)");
  check(want.length > 0 && want.includes("bulk-00777"), "... finding bulk-00777 by its alias");
}

async function moneyFlow(page) {
  await searchCustomers(page, "exact-");
  const ids = await cellTexts(page, 0);
  const spend = await cellTexts(page, 2);
  eq(ids, ["exact-big", "exact-tiny"], "the exact-amount customers");
  eq(spend, ["$123456789.0123456789", "$0.0000000001"], "spend shown digit for digit, with a dollar sign");
  const api1 = await api("GET", "/customer/info?end_user_id=exact-big");
  eq(rawField(api1.text, "spend"), "123456789.0123456789", "(the API prints the same digits)");
}

async function createBudgetFlow(page, id) {
  await page.getByRole("link", { name: "Budgets", exact: true }).click();
  await page.getByRole("button", { name: "+ Create Budget" }).click();
  const dlg = page.getByRole("dialog", { name: "Create Budget" });
  await dlg.waitFor();
  const labels = ["Budget ID", "Max Budget (USD)", "Soft Budget (USD)", "TPM Limit", "RPM Limit", "Max Parallel Requests", "Reset Period"];
  const found = [];
  for (const l of labels) if (await dlg.getByLabel(l, { exact: true }).count() === 1) found.push(l);
  eq(found, labels, "+ Create Budget opens a dialog with the labelled fields of SPEC 14");
  await dlg.getByLabel("Budget ID", { exact: true }).fill(id);
  await dlg.getByLabel("Max Budget (USD)", { exact: true }).fill("4");
  await shot(page, "create-budget-dialog");
  await dlg.getByRole("button", { name: "Create Budget" }).click();
  await dlg.waitFor({ state: "detached" });
  await page.getByRole("rowheader", { name: id, exact: true }).waitFor();
  // The seed's curl, as its text.
  const seedId = "curl-" + id;
  const made = await api("POST", "/budget/new", '{\n  "budget_id": "' + seedId + '",\n  "max_budget": 4\n}');
  eq(made.status, 200, "the seed's /budget/new curl");
  const info = await api("POST", "/budget/info", { budgets: [id, seedId] });
  const [ui, seed] = info.json || [];
  const strip = (b) => {
    const o = { ...(b || {}) };
    delete o.budget_id;
    delete o.created_at;
    delete o.updated_at;
    return o;
  };
  check(ui && seed && JSON.stringify(strip(ui)) === JSON.stringify(strip(seed)),
    "the budget the dialog made equals the one the seed's /budget/new makes (but its id and times)",
    "ui:   " + JSON.stringify(ui), "curl: " + JSON.stringify(seed));
  eq([rawField(JSON.stringify(ui), "max_budget"), ui && ui.soft_budget, ui && ui.budget_duration], ["4", null, null],
    "max_budget 4, nothing else set");
  const row = page.getByRole("row").filter({ has: page.getByRole("rowheader", { name: id, exact: true }) });
  eq((await row.locator("td").nth(0).textContent()).trim(), "$4", "the tier's row shows $4");
  await shot(page, "budgets");
}

async function customerOnTierFlow(page, user, tier) {
  await page.getByRole("link", { name: "Customers", exact: true }).click();
  await page.getByRole("button", { name: "+ Create Customer" }).click();
  const dlg = page.getByRole("dialog", { name: "Create Customer" });
  await dlg.getByLabel("Customer ID").fill(user);
  await dlg.getByLabel("Alias").fill("UI customer");
  await dlg.getByLabel("A pricing tier", { exact: true }).check();
  await dlg.getByLabel("Pricing tier", { exact: true }).selectOption(tier);
  await dlg.getByRole("button", { name: "Create Customer" }).click();
  await dlg.waitFor({ state: "detached" });
  const r = await api("GET", "/customer/info?end_user_id=" + user);
  eq([r.status, r.json && r.json.budget_id, r.json && r.json.alias], [200, tier, "UI customer"], "+ Create Customer on the tier");
}

async function spendFlow(page, user) {
  for (const [p, c] of [[1234, 567], [89, 1]]) {
    const r = await chat(user, p, c);
    eq(r.status, 200, "a chat of " + user + " through the API");
  }
  const info = await api("GET", "/customer/info?end_user_id=" + user);
  const spend = rawField(info.text, "spend");
  // The test models cost 1e-6 a prompt token, 2e-6 a completion token.
  const micros = (1234 + 89) + 2 * (567 + 1);
  eq(spend, "0.00" + micros, "its spend (1323 prompt x 1e-6 + 568 completion x 2e-6)");
  await searchCustomers(page, user);
  eq(await cellTexts(page, 2), ["$" + spend], "the Customers table shows the exact spend");

  // Its page: the spend, its chart, its requests.
  await page.getByRole("link", { name: user, exact: true }).click();
  await page.getByRole("heading", { name: "Customer " + user }).waitFor();
  eq((await page.locator('[data-field="spend"]').textContent()).trim(), "$" + spend, "the customer's page shows its spend");
  await page.waitForFunction(() => document.querySelector("figure.chart") && document.querySelectorAll(".requests tbody tr").length >= 2);
  const own = JSON.parse(await page.locator("figure.chart").getAttribute("data-series"));
  eq(own.find(([d]) => d === TODAY), [TODAY, spend], "... its chart has today's spend");
  eq(await page.locator(".requests tbody tr").count(), 2, "... and its two requests, from /spend/logs");
  await shot(page, "customer");

  await page.getByRole("link", { name: "Usage", exact: true }).click();
  await page.getByLabel("Customer ID").fill(user);
  await page.getByRole("button", { name: "Show" }).click();
  const fig = page.locator("figure.chart");
  await page.waitForFunction((u) => {
    const f = document.querySelector("figure.chart");
    return f && f.getAttribute("aria-label").includes(u) && f.dataset.library;
  }, user);
  const series = JSON.parse(await fig.getAttribute("data-series"));
  const today = series.find(([d]) => d === TODAY);
  eq(today, [TODAY, spend], "the Usage chart has a point for today with that spend");
  eq(series.length, 30, "... among 30 days");
  eq(await fig.getAttribute("data-library"), "uplot", "the chart is drawn by uPlot");
  check(await fig.locator("canvas").count() >= 1, "... on a canvas");
  const act = await api("GET", "/customer/daily/activity?end_user_ids=" + user + "&start_date=" + series[0][0] + "&end_date=" + TODAY + "&page_size=31");
  eq((await page.locator('[data-field="total_spend"]').textContent()).trim(), "$" + rawField(act.text, "total_spend"),
    "the period's total equals the API's total_spend");
  await page.getByRole("heading", { name: "Recent requests" }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll(".requests tbody tr").length >= 2);
  eq(await page.locator(".requests tbody tr").count(), 2, "its recent requests, from /spend/logs");
}

async function usageAllFlow(page) {
  await page.getByRole("link", { name: "Usage", exact: true }).click();
  await page.getByRole("button", { name: "Show" }).click();
  await page.waitForFunction(() => {
    const f = document.querySelector("figure.chart");
    return f && f.getAttribute("aria-label").startsWith("Spend of every customer") && f.dataset.library;
  });
  const start = JSON.parse(await page.locator("figure.chart").getAttribute("data-series"))[0][0];
  const act = await api("GET", "/customer/daily/activity?start_date=" + start + "&end_date=" + TODAY + "&page_size=31");
  eq((await page.locator('[data-field="total_spend"]').textContent()).trim(), "$" + rawField(act.text, "total_spend"),
    "all customers: the total equals the API's total_spend, digit for digit");
  eq((await page.locator('[data-field="total_api_requests"]').textContent()).trim(),
    String(act.json.metadata.total_api_requests), "... and the request count");
  const top = page.getByRole("table", { name: "Top 10 customers of the period" });
  const ids = await top.locator("tbody th").allTextContents();
  const spends = await top.locator("tbody td.money").allTextContents();
  check(ids.length >= 3 && ids.length <= 10, "the top customers of the period (" + ids.length + ")");
  eq([ids[0], spends[0]], ["exact-big", "$123456789.0123456789"], "the largest first, its spend exact");
  eq(ids.includes("exact-tiny") ? spends[ids.indexOf("exact-tiny")] : "(not listed)", "$0.0000000001", "the smallest spend exact too");
  // Spend by route: the breakdown by call type, summed over the days (the
  // seed's two rows are the only Responses and embeddings calls).
  const requests = {};
  for (const day of act.json.results) {
    for (const [type, e] of Object.entries(day.breakdown.call_types || {})) {
      requests[type] = (requests[type] || 0) + Number(e.metrics.api_requests);
    }
  }
  const routes = page.getByRole("table", { name: "Spend by route" });
  const routeNames = await routes.locator("tbody th").allTextContents();
  const cells = await routes.locator("tbody td").allTextContents();
  const row = (route) => {
    const i = routeNames.indexOf(route);
    return i < 0 ? null : cells.slice(i * 3, i * 3 + 3);
  };
  eq(routeNames[0], "/v1/responses", "spend by route: the largest first (the Responses API's)");
  eq(row("/v1/responses"), ["aresponses", "$123456789.0123456789", String(requests.aresponses)],
    "spend by route: /v1/responses, its spend exact and its requests");
  eq(row("/v1/embeddings"), ["aembedding", "$0.0000000001", String(requests.aembedding)],
    "spend by route: /v1/embeddings, exact");
  await shot(page, "usage");
}

async function blockFlow(page, user) {
  await searchCustomers(page, user);
  // exact: a name is otherwise matched as a substring, in any case, and
  // "Unblock customer x" would do for "Block customer x".
  await page.getByRole("button", { name: "Block customer " + user, exact: true }).click();
  await page.getByRole("button", { name: "Unblock customer " + user, exact: true }).waitFor();
  eq(await cellTexts(page, 8), ["Blocked"], "Block: the table shows it blocked");
  const info = await api("GET", "/customer/info?end_user_id=" + user);
  eq(info.json && info.json.blocked, true, "... and so does the API");
  const r = await chat(user, 1, 1);
  eq(r.status, 403, "its next chat is refused with 403");
  await page.getByRole("button", { name: "Unblock customer " + user, exact: true }).click();
  await page.getByRole("button", { name: "Block customer " + user, exact: true }).waitFor();
  eq((await chat(user, 1, 1)).status, 200, "Unblock: it may call again");
}

async function editFlow(page, tier, user) {
  await page.getByRole("link", { name: "Budgets", exact: true }).click();
  await page.getByRole("button", { name: "Edit budget " + tier }).click();
  const dlg = page.getByRole("dialog", { name: "Edit budget " + tier });
  await dlg.getByLabel("Max Budget (USD)", { exact: true }).fill("5.5");
  await dlg.getByLabel("RPM Limit", { exact: true }).fill("100");
  await dlg.getByLabel("Reset Period", { exact: true }).fill("30d");
  await dlg.getByRole("button", { name: "Save Budget" }).click();
  await dlg.waitFor({ state: "detached" });
  const b = await api("POST", "/budget/info", { budgets: [tier] });
  eq([rawField(b.text, "max_budget"), b.json[0].rpm_limit, b.json[0].budget_duration], ["5.5", 100, "30d"], "Edit a budget: the API has the new limits");
  const row = page.getByRole("row").filter({ has: page.getByRole("rowheader", { name: tier, exact: true }) });
  // The table reloads after the dialog closes: wait for it (up to 5 s),
  // then read what it shows.
  await row.locator("td").nth(0).filter({ hasText: "$5.5" }).waitFor({ timeout: 5000 }).catch(() => {});
  eq((await row.locator("td").nth(0).textContent()).trim(), "$5.5", "... and the table shows them");

  await searchCustomers(page, user);
  await page.getByRole("button", { name: "Edit customer " + user }).click();
  const cd = page.getByRole("dialog", { name: "Edit customer " + user });
  await cd.getByLabel("Alias").fill("Renamed in the UI");
  await cd.getByLabel("Limits of its own").check();
  await cd.getByLabel("Max Budget (USD)", { exact: true }).fill("0.75");
  await cd.getByRole("button", { name: "Save Customer" }).click();
  await cd.waitFor({ state: "detached" });
  const c = await api("GET", "/customer/info?end_user_id=" + user);
  const t = c.json.litellm_budget_table || {};
  eq([c.json.alias, c.json.budget_id !== tier, rawField(JSON.stringify(t), "max_budget"), t.rpm_limit],
    ["Renamed in the UI", true, "0.75", 100], "Edit a customer: alias, and limits of its own (a private copy of the tier)");
  const tierNow = await api("POST", "/budget/info", { budgets: [tier] });
  eq(rawField(tierNow.text, "max_budget"), "5.5", "... the tier itself unchanged");
}

async function deleteFlow(page) {
  const user = "ui-delete-me";
  await api("POST", "/customer/new", { user_id: user });
  await searchCustomers(page, user);
  await page.getByRole("button", { name: "Delete customer " + user }).click();
  let dlg = page.getByRole("dialog", { name: "Delete customer " + user + "?" });
  await dlg.waitFor();
  await dlg.getByRole("button", { name: "Cancel" }).click();
  await dlg.waitFor({ state: "detached" });
  eq((await api("GET", "/customer/info?end_user_id=" + user)).status, 200, "Delete, then Cancel: the customer stays");
  await page.getByRole("button", { name: "Delete customer " + user }).click();
  dlg = page.getByRole("dialog", { name: "Delete customer " + user + "?" });
  await dlg.getByRole("button", { name: "Delete customer" }).click();
  await dlg.waitFor({ state: "detached" });
  await page.waitForFunction(() => document.querySelector("tbody td.empty"));
  eq((await api("GET", "/customer/info?end_user_id=" + user)).status, 404, "Delete, confirmed: gone from the API");

  // A budget too.
  await api("POST", "/budget/new", { budget_id: "ui-delete-tier", max_budget: 1 });
  await page.getByRole("link", { name: "Budgets", exact: true }).click();
  await page.getByRole("button", { name: "Delete budget ui-delete-tier" }).click();
  dlg = page.getByRole("dialog", { name: "Delete budget ui-delete-tier?" });
  await dlg.getByRole("button", { name: "Delete budget" }).click();
  await dlg.waitFor({ state: "detached" });
  const b = await api("POST", "/budget/info", { budgets: ["ui-delete-tier"] });
  eq(b.json, [], "Delete a budget, confirmed: gone");
}

async function keysFlow(page, context) {
  await page.getByRole("link", { name: "Keys", exact: true }).click();
  await page.getByRole("button", { name: "+ Generate Key" }).click();
  const dlg = page.getByRole("dialog", { name: "Generate Key" });
  await dlg.getByLabel("Key alias").fill("ui-app");
  await dlg.getByLabel("Max Budget (USD)", { exact: true }).fill("1");
  await dlg.getByRole("button", { name: "Generate Key" }).click();
  const shown = page.getByRole("dialog", { name: "New key ui-app" });
  await shown.waitFor();
  const key = await shown.getByLabel("Virtual key").inputValue();
  check(/^sk-[A-Za-z0-9_-]{10,}$/.test(key), "Generate: the new key is shown (" + key.slice(0, 6) + "...)");
  await shown.getByRole("button", { name: "Copy key" }).click();
  await shown.getByText("Copied to the clipboard.").waitFor();
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  eq(clip === key, true, "Copy key puts it on the clipboard");
  await shot(page, "new-key");
  await shown.getByRole("button", { name: "Done" }).click();
  const args = [BASE + "/chat/completions", "-H", "Authorization: Bearer " + key, "-H", "Content-Type: application/json",
    "-d", JSON.stringify({ model: "fake-gpt", user: "ui-key-user", max_tokens: 5, messages: [{ role: "user", content: "hi" }] })];
  eq(curl(args), "200", "curl with the new key: 200");
  const list = await api("GET", "/key/list?return_full_object=true");
  const token = list.json.keys.find((k) => k.key_alias === "ui-app").token;
  check(!(await page.content()).includes(key), "the key is not on the page once the dialog is closed");
  await page.getByRole("button", { name: /^Block key ui-app/ }).click();
  await page.getByRole("button", { name: /^Unblock key ui-app/ }).waitFor();
  eq(curl(args), "401", "Block: curl with the key is refused (401)");
  await shot(page, "keys");
  await page.getByRole("button", { name: /^Unblock key ui-app/ }).click();
  await page.getByRole("button", { name: /^Block key ui-app/ }).waitFor();
  eq(curl(args), "200", "Unblock: accepted again");
  await page.getByRole("button", { name: /^Delete key ui-app/ }).click();
  const del = page.getByRole("dialog", { name: /^Delete key ui-app/ });
  await del.getByRole("button", { name: "Delete key" }).click();
  await del.waitFor({ state: "detached" });
  eq(curl(args), "401", "Delete, confirmed: the key is refused");
  eq((await api("GET", "/key/info?key=" + token)).status, 404, "... and gone from /key/info");
}

// Tags: create one with a budget through the dialog, a call naming it
// charged to it in the table, block (its next call 403), delete.
async function tagsFlow(page) {
  await page.getByRole("link", { name: "Tags", exact: true }).click();
  await page.getByRole("button", { name: "+ Create Tag" }).click();
  const dlg = page.getByRole("dialog", { name: "Create Tag" });
  await dlg.getByLabel("Tag", { exact: true }).fill("ui-team");
  await dlg.getByLabel("Description").fill("The UI team");
  await dlg.getByLabel("Max Budget (USD)", { exact: true }).fill("0.5");
  await dlg.getByLabel("Reset Period").fill("30d");
  await dlg.getByRole("button", { name: "Create Tag" }).click();
  await dlg.waitFor({ state: "detached" });
  const info = await api("POST", "/tag/info", { names: ["ui-team"] });
  const t = info.json && info.json["ui-team"];
  eq([t && t.description, t && rawField(JSON.stringify(t.litellm_budget_table), "max_budget"),
    t && t.litellm_budget_table.budget_duration], ["The UI team", "0.5", "30d"],
  "Create Tag makes the tag with its budget");
  const call = (status) => api("POST", "/chat/completions", {
    model: "fake-gpt", user: "ui-tagged", messages: [{ role: "user", content: "hi" }],
    metadata: { tags: ["ui-team"] }, fake: { usage: { prompt_tokens: 1000, completion_tokens: 500 } },
  }).then((r) => eq(r.status, status, "a call naming the tag: " + status));
  await call(200);
  await page.getByRole("link", { name: "Customers", exact: true }).click();
  await page.getByRole("link", { name: "Tags", exact: true }).click();
  const row = page.getByRole("row").filter({ has: page.getByRole("rowheader", { name: /^ui-team/ }) });
  eq((await row.locator("td").nth(0).textContent()).trim(), "$0.002", "the tag's spend in the table (1000 + 500 tokens)");
  await shot(page, "tags");
  await page.getByRole("button", { name: "Block tag ui-team" }).click();
  await page.getByRole("button", { name: "Unblock tag ui-team" }).waitFor();
  await call(403);
  await page.getByRole("button", { name: "Unblock tag ui-team" }).click();
  await page.getByRole("button", { name: "Block tag ui-team" }).waitFor();
  await call(200);
  await page.getByRole("button", { name: "Delete tag ui-team" }).click();
  const del = page.getByRole("dialog", { name: "Delete tag ui-team?" });
  await del.getByRole("button", { name: "Delete tag" }).click();
  await del.waitFor({ state: "detached" });
  eq((await api("POST", "/tag/info", { names: ["ui-team"] })).status, 404, "Delete, confirmed: the tag is gone");
}

// ---- budget use, the Usage tab's period and breakdowns, the export ----

// The bars of a table's rows, by the row header's text: the .use cell's
// level, its meter's numbers and accessible text, its words, its colour;
// or the words of a row without a limit.
async function useRows(table) {
  const rows = await table.locator("tbody tr").evaluateAll((trs) => trs.map((r) => {
    const u = r.querySelector("td .use");
    const m = u && u.querySelector("meter");
    const none = r.querySelector(".no-limit");
    return {
      id: r.querySelector("th").textContent.trim(),
      level: u ? u.dataset.level : null,
      levelClass: u ? [...u.classList].filter((c) => c.startsWith("level-")).join(" ") : null,
      value: m ? m.getAttribute("value") : null,
      max: m ? m.getAttribute("max") : null,
      words: u ? u.querySelector(".use-text").textContent + " | " + u.querySelector(".use-amount").textContent : none ? none.textContent : null,
      valuetext: m ? m.getAttribute("aria-valuetext") : null,
      colour: u ? getComputedStyle(u).getPropertyValue("--bar").trim() : null,
    };
  }));
  return rows;
}

// What the bar of an account that used `used` of max shows: the whole
// percent, rounded down, and the level of the highest threshold reached.
function expectedUse(used, max = "0.001") {
  const [u, us] = dec(used);
  const [m, ms] = dec(max);
  const k = Math.max(us, ms);
  const pct = (u * 10n ** BigInt(k - us) * 100n) / (m * 10n ** BigInt(k - ms));
  const level = pct >= 100n ? "100" : pct >= 95n ? "95" : pct >= 85n ? "85" : "ok";
  const text = String(pct) + "% of $" + canon(max);
  return { level, levelClass: "level-" + level, value: canon(used), max: canon(max),
    words: text + " | $" + canon(used) + " used", valuetext: text + ", $" + canon(used) + " used" };
}

const pick = (r) => r && { level: r.level, levelClass: r.levelClass, value: r.value, max: r.max, words: r.words, valuetext: r.valuetext };

// n prompt tokens of the test model: n x 1e-6 dollars.
const micro = (n) => decText([BigInt(n), 6]);

// Prompt tokens of each account, and the level its bar must show against
// $0.001: either side of every threshold.
const LEVELS = [[849, "ok"], [850, "85"], [949, "85"], [950, "95"], [999, "95"], [1000, "100"], [1250, "100"]];

async function budgetUseFlow(page, prefix) {
  const levels = prefix === "ui" ? LEVELS : [[949, "85"], [1000, "100"]];
  // Customers: spend first (no budget yet, so nothing is refused), then
  // the budget.
  for (const [n] of levels) {
    const user = prefix + "-use-" + n;
    await api("POST", "/customer/new", { user_id: user });
    eq((await chat(user, n, 0)).status, 200, "budget use: " + user + " spends " + n + " prompt tokens");
    eq((await api("POST", "/customer/update", { user_id: user, max_budget: 0.001 })).status, 200, "... then gets a max budget of $0.001");
  }
  await api("POST", "/customer/new", { user_id: prefix + "-use-none" });
  await chat(prefix + "-use-none", 10, 0);

  // One with a call in flight (chromium): its hold counts, spend +
  // reserved.
  const heldUser = prefix + "-use-held";
  let held = null;
  let reserved = "0";
  if (prefix === "ui") {
    await api("POST", "/customer/new", { user_id: heldUser, max_budget: 0.003 });
    await api("POST", "/chat/completions", { model: "fake-gpt", user: heldUser, max_tokens: 5, messages: [{ role: "user", content: "hi" }],
      fake: { usage: { prompt_tokens: 500, completion_tokens: 0 } } });
    held = api("POST", "/chat/completions", { model: "fake-gpt", user: heldUser, max_tokens: 1000, messages: [{ role: "user", content: "hi" }],
      fake: { delay: 20, usage: { prompt_tokens: 100, completion_tokens: 50 } } });
    for (let i = 0; i < 100 && dec(reserved)[0] === 0n; i++) {
      await new Promise((r) => setTimeout(r, 100));
      reserved = rawField((await api("GET", "/customer/info?end_user_id=" + heldUser)).text, "reserved");
    }
    check(dec(reserved)[0] > 0n, "budget use: a call of " + heldUser + " is in flight, its hold reserved ($" + reserved + ")");
  }

  await searchCustomers(page, prefix + "-use-");
  const table = page.getByRole("table", { name: /^Customers / });
  const rows = await useRows(table);
  const byId = Object.fromEntries(rows.map((r) => [r.id, r]));
  for (const [n, level] of levels) {
    const want = expectedUse(micro(n));
    eq(want.level, level, "(the test's own level for " + n + " of 1000)");
    eq(pick(byId[prefix + "-use-" + n]), want, "Customers: the bar of " + prefix + "-use-" + n + " (" + micro(n) + " of $0.001): level, numbers, words");
  }
  eq(byId[prefix + "-use-none"] && [byId[prefix + "-use-none"].words, byId[prefix + "-use-none"].value], ["no limit", null],
    "Customers: no bar for a customer without max_budget, but the words no limit");
  if (held) {
    eq(pick(byId[heldUser]), expectedUse(decAdd("0.0005", reserved), "0.003"),
      "Customers: the bar counts the hold: $0.0005 spent + $" + reserved + " reserved, of $0.003");
    const after = rawField((await api("GET", "/customer/info?end_user_id=" + heldUser)).text, "reserved");
    eq(after, reserved, "... (the hold was still in flight when the page was read)");
  }
  const meter = page.getByRole("meter", { name: "Budget use of customer " + prefix + "-use-1000", exact: true });
  eq(await meter.count(), 1, "the bar is a meter named for its account (" + prefix + "-use-1000)");
  eq(await meter.getAttribute("aria-valuetext"), expectedUse(micro(1000)).valuetext, "... its value in words for assistive technology");
  const colours = {};
  for (const r of rows) if (r.level) colours[r.level] = r.colour;
  if (prefix === "ui") {
    check(new Set(Object.values(colours)).size === 4 && Object.keys(colours).length === 4,
      "four colours for the four levels (below 85%, from 85%, from 95%, from 100%)", JSON.stringify(colours));
  }
  await shot(page, "budget-use-customers");

  // The customer's page has the bar too.
  const last = levels[levels.length - 1][0];
  await page.getByRole("link", { name: prefix + "-use-" + last, exact: true }).click();
  await page.getByRole("heading", { name: "Customer " + prefix + "-use-" + last }).waitFor();
  eq(await page.getByRole("meter", { name: "Budget use of customer " + prefix + "-use-" + last }).getAttribute("aria-valuetext"),
    expectedUse(micro(last)).valuetext, "the customer's page shows its budget use (" + expectedUse(micro(last)).valuetext + ")");

  if (prefix !== "ui") return;
  eq((await held).status, 200, "the held call ends");
  await searchCustomers(page, heldUser);
  const settled = await useRows(page.getByRole("table", { name: /^Customers / }));
  const spendNow = rawField((await api("GET", "/customer/info?end_user_id=" + heldUser)).text, "spend");
  eq(pick(settled[0]), expectedUse(spendNow, "0.003"), "... then its bar is its spend alone ($" + spendNow + ")");

  // Keys: spend with the key, then the budget.
  const keyLevels = [[849, "ok"], [950, "95"], [1000, "100"]];
  for (const [n] of keyLevels) {
    const k = (await api("POST", "/key/generate", { key_alias: "ui-use-key-" + n })).json;
    eq((await chat("ui-use-keys", n, 0, k.key)).status, 200, "budget use: key ui-use-key-" + n + " spends " + n + " prompt tokens");
    eq((await api("POST", "/key/update", { key: k.token, max_budget: 0.001 })).status, 200, "... then gets a max budget of $0.001");
  }
  await api("POST", "/key/generate", { key_alias: "ui-use-key-none" });
  await page.getByRole("link", { name: "Keys", exact: true }).click();
  const keyTable = page.getByRole("table", { name: /^Virtual keys/ });
  await keyTable.getByText("ui-use-key-none").waitFor();
  const keyRows = await useRows(keyTable);
  const keyOf = (alias) => keyRows.find((r) => r.id.startsWith(alias + " "));
  for (const [n] of keyLevels) {
    eq(pick(keyOf("ui-use-key-" + n)), expectedUse(micro(n)), "Keys: the bar of ui-use-key-" + n + ": level, numbers, words");
  }
  eq(keyOf("ui-use-key-none") && keyOf("ui-use-key-none").words, "no limit", "Keys: no bar without max_budget");
  await shot(page, "budget-use-keys");

  // Tags: a call naming the tag, then the budget.
  const tagLevels = [[850, "85"], [999, "95"], [1250, "100"]];
  for (const [n] of tagLevels) {
    const name = "ui-use-tag-" + n;
    await api("POST", "/tag/new", { name });
    const c = await api("POST", "/chat/completions", { model: "fake-gpt", user: "ui-use-tags", messages: [{ role: "user", content: "hi" }],
      metadata: { tags: [name] }, fake: { usage: { prompt_tokens: n, completion_tokens: 0 } } });
    eq(c.status, 200, "budget use: a call naming tag " + name);
    eq((await api("POST", "/tag/update", { name, max_budget: 0.001 })).status, 200, "... then the tag gets a max budget of $0.001");
  }
  await page.getByRole("link", { name: "Tags", exact: true }).click();
  const tagTable = page.getByRole("table", { name: /^Tags/ });
  await tagTable.getByText("ui-use-tag-850").waitFor();
  const tagRows = await useRows(tagTable);
  for (const [n] of tagLevels) {
    eq(pick(tagRows.find((r) => r.id === "ui-use-tag-" + n)), expectedUse(micro(n)), "Tags: the bar of ui-use-tag-" + n + ": level, numbers, words");
  }
  await shot(page, "budget-use-tags");

  // A shared tier: its customers at each threshold, and the highest.
  await api("POST", "/budget/new", { budget_id: "ui-use-tier", max_budget: 0.001 });
  await api("POST", "/budget/new", { budget_id: "ui-use-tier-nobody", max_budget: 1 });
  await api("POST", "/budget/new", { budget_id: "ui-use-tier-unlimited", rpm_limit: 10 });
  for (const n of [500, 850, 960, 1100]) {
    await chat("ui-tier-" + n, n, 0);
    eq((await api("POST", "/customer/update", { user_id: "ui-tier-" + n, budget_id: "ui-use-tier" })).status, 200,
      "budget use: ui-tier-" + n + " (" + micro(n) + " spent) put on the tier ui-use-tier ($0.001)");
  }
  const onTier = (await api("GET", "/customer/list?budget_id=ui-use-tier")).text;
  const want = { 85: 0, 95: 0, 100: 0 };
  for (const m of onTier.matchAll(/"spend":([0-9.eE+-]+).*?"reserved":([0-9.eE+-]+)/g)) {
    const pct = expectedUse(decAdd(m[1], m[2])).level;
    for (const t of [85, 95, 100]) if (pct !== "ok" && Number(pct) >= t) want[t] += 1;
  }
  eq(want, { 85: 3, 95: 2, 100: 1 }, "(the API's customers of the tier: 3 at 85% or more, 2 at 95%, 1 at 100%)");
  await page.getByRole("link", { name: "Budgets", exact: true }).click();
  const tierRow = (id) => page.getByRole("row").filter({ has: page.getByRole("rowheader", { name: id, exact: true }) });
  const cell = tierRow("ui-use-tier").locator(".tier-use");
  await cell.locator("p.at").waitFor();
  const at = {};
  for (const t of [85, 95, 100]) at[t] = Number((await cell.locator('[data-at="' + t + '"] strong').textContent()).trim());
  eq(at, want, "Budgets: the tier's customers at or above 85%, 95% and 100% of it");
  const top = await useRows(page.getByRole("table", { name: /^Pricing tiers/ }));
  eq(pick(top.find((r) => r.id === "ui-use-tier")), expectedUse(micro(1100)), "Budgets: the highest use among them, as a bar (110% of $0.001)");
  eq((await cell.locator(".use-who a").textContent()).trim(), "ui-tier-1100", "... naming that customer");
  await tierRow("ui-use-tier-nobody").locator(".tier-use").filter({ hasText: "no customers" }).waitFor();
  eq((await tierRow("ui-use-tier-unlimited").locator(".tier-use").textContent()).trim(), "no limit", "Budgets: a tier without max_budget: no limit");
  const note = await page.locator("#tier-use-note").textContent();
  check(/85%, 95% and 100%/.test(note) && /highest use/.test(note) && await page.getByRole("table", { name: /^Pricing tiers/ }).getAttribute("aria-describedby") === "tier-use-note",
    "Budgets: a visible note says what the tier's use column counts, and describes the table", note);
  await shot(page, "budget-use-tiers");
}

// Usage: the period chosen (every part of the tab follows it), the spend
// by model (equal to the report's sums), the calls of no customer.
async function usageRangeFlow(page) {
  const start = daysBefore(TODAY, 29);
  // A call without user (the entity "" of the report), big enough for
  // the top 10, and one of a second model.
  eq((await api("POST", "/chat/completions", { model: "fake-gpt", messages: [{ role: "user", content: "hi" }],
    fake: { usage: { prompt_tokens: 5000, completion_tokens: 5000 } } })).status, 200, "usage: a chat without user");
  eq((await api("POST", "/chat/completions", { model: "fake-gpt-2", user: "ui-model-2", messages: [{ role: "user", content: "hi" }],
    fake: { usage: { prompt_tokens: 70, completion_tokens: 30 } } })).status, 200, "usage: a chat of the second model");

  await page.getByRole("link", { name: "Usage", exact: true }).click();
  await page.getByRole("table", { name: "Spend by model" }).waitFor();
  eq([await page.getByLabel("From", { exact: true }).inputValue(), await page.getByLabel("To", { exact: true }).inputValue()],
    [start, TODAY], "usage: the period is the last 30 days by default, in two labelled date fields");
  const report = await activity(start, TODAY);
  const models = breakdownSums(report, "models");
  const wantModels = Object.entries(models).sort((a, b) => {
    const d = dec(decAdd(b[1].spend, "-" + a[1].spend))[0];
    return d > 0n ? 1 : d < 0n ? -1 : (a[0] < b[0] ? -1 : 1);
  }).map(([m, o]) => [m, "$" + o.spend, String(o.requests), String(o.tokens).replace(/\B(?=(\d{3})+(?!\d))/g, ",")]);
  const modelTable = page.getByRole("table", { name: "Spend by model" });
  const got = await modelTable.locator("tbody tr").evaluateAll((trs) => trs.map((r) => [...r.children].map((c) => c.textContent.trim())));
  eq(got, wantModels, "usage: spend by model equals the sums of /customer/daily/activity's breakdown.models, exactly");
  check(wantModels.length >= 2, "... (" + wantModels.length + " models)");

  const entities = breakdownSums(report, "entities");
  const topTable = page.getByRole("table", { name: "Top 10 customers of the period" });
  const none = topTable.getByRole("row").filter({ has: page.getByRole("rowheader", { name: "(no customer)", exact: true }) });
  eq(await none.count(), 1, "usage: the calls without a customer are a row named (no customer)");
  eq(await none.getByRole("link").count(), 0, "... which links nowhere");
  eq((await none.locator("td.money").textContent()).trim(), "$" + entities[""].spend, "... with their spend ($" + entities[""].spend + ")");
  eq(await topTable.locator('a[href="#/customer/"]').count(), 0, "... and no link to a customer page of an empty id");

  // A period without activity: every part of the tab says so.
  const empty = await activity("2001-01-01", "2001-01-31");
  eq([empty.results.length, canon(empty.metadata.total_spend)], [0, "0"], "(no activity in January 2001, says the API)");
  await page.getByLabel("From", { exact: true }).fill("2001-01-01");
  await page.getByLabel("To", { exact: true }).fill("2001-01-31");
  await page.getByRole("button", { name: "Show" }).click();
  await page.waitForFunction(() => {
    const f = document.querySelector("figure.chart");
    return f && f.getAttribute("aria-label").includes("2001-01-01 to 2001-01-31");
  });
  eq(new URL(page.url()).hash, "#/usage?from=2001-01-01&to=2001-01-31", "usage: Show puts the period in the address");
  eq((await page.locator('[data-field="total_spend"]').textContent()).trim(), "$0", "usage: January 2001: total $0");
  const series = JSON.parse(await page.locator("figure.chart").getAttribute("data-series"));
  eq([series.length, series[0][0], series[30][0]], [31, "2001-01-01", "2001-01-31"], "... the chart has the 31 days of the period");
  for (const name of ["Spend by route", "Spend by model", "Top 10 customers of the period", "Spend per day (days with spend)"]) {
    eq(await page.getByRole("table", { name }).locator("td.empty").count(), 1, "... " + name + ": nothing");
  }
  await shot(page, "usage-empty-period");

  // A period the other way round is refused in words.
  await page.getByLabel("From", { exact: true }).fill("2001-02-01");
  await page.getByRole("button", { name: "Show" }).click();
  eq((await page.getByRole("alert").filter({ hasText: "before" }).textContent()).trim(), "To (2001-01-31) is before From (2001-02-01).",
    "usage: a period ending before it starts is refused in words");

  // Today only.
  await page.getByLabel("From", { exact: true }).fill(TODAY);
  await page.getByLabel("To", { exact: true }).fill(TODAY);
  await page.getByRole("button", { name: "Show" }).click();
  await page.waitForFunction((d) => {
    const f = document.querySelector("figure.chart");
    return f && f.getAttribute("aria-label").includes(d + " to " + d);
  }, TODAY);
  const today = await activity(TODAY, TODAY);
  eq((await page.locator('[data-field="total_spend"]').textContent()).trim(), "$" + canon(today.metadata.total_spend), "usage: today only: the API's total of today");
}

// Export: the CSV the buttons download, against the ledger's report of
// the same period; a failure in words.
async function exportFlow(page) {
  const start = daysBefore(TODAY, 29);
  await page.goto(BASE + "/ui/#/usage?from=" + start + "&to=" + TODAY);
  await page.getByRole("button", { name: "Export spend by customer (CSV)" }).waitFor();
  const report = await activity(start, TODAY);
  const total = canon(report.metadata.total_spend);
  const entities = breakdownSums(report, "entities");
  // Firefox over WebDriver BiDi tells playwright of no download from a
  // blob: there the file is read back from the blob the page made, and
  // its name from the link it clicked.
  if (BROWSER !== "chromium") {
    await page.evaluate(() => {
      const made = URL.createObjectURL;
      URL.createObjectURL = (blob) => {
        window.tgBlob = blob;
        return made(blob);
      };
      const click = HTMLAnchorElement.prototype.click;
      HTMLAnchorElement.prototype.click = function () {
        if (this.hasAttribute("download")) window.tgDownload = this.getAttribute("download");
        return click.call(this);
      };
    });
  }
  const fetchCsv = async (label) => {
    if (BROWSER !== "chromium") {
      await page.getByRole("button", { name: label }).click();
      await page.waitForFunction(() => window.tgDownload && window.tgBlob);
      const got = await page.evaluate(async () => {
        const out = { name: window.tgDownload, text: await window.tgBlob.text() };
        window.tgDownload = window.tgBlob = null;
        return out;
      });
      return { name: got.name, rows: parseCsv(got.text) };
    }
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: label }).click()]);
    const chunks = [];
    for await (const chunk of await download.createReadStream()) chunks.push(chunk);
    return { name: download.suggestedFilename(), rows: parseCsv(Buffer.concat(chunks).toString("utf8")) };
  };
  const byCustomer = await fetchCsv("Export spend by customer (CSV)");
  eq(byCustomer.name, "tollgate-spend-by-customer-" + start + "-" + TODAY + ".csv", "export: the button downloads the file the server names");
  await page.getByRole("status").filter({ hasText: "Downloaded" }).waitFor();
  const [head, ...rows] = byCustomer.rows;
  eq(head, ["customer_id", "alias", "requests", "successful_requests", "prompt_tokens", "completion_tokens", "total_tokens", "spend_usd"], "export: its header");
  eq(rows[0] && rows[0].slice(0, 2), ["", "(no customer)"], "export: the calls of no customer first");
  eq(decAdd(...rows.map((r) => r[7])), total, "export: the spend column adds up to the ledger's total of the period, $" + total + ", to the last digit");
  const csvBy = Object.fromEntries(rows.map((r) => [r[0], [canon(r[7]), Number(r[2])]]));
  const apiBy = Object.fromEntries(Object.entries(entities).map(([id, o]) => [id, [o.spend, o.requests]]));
  const sorted = (o) => Object.keys(o).sort().map((k) => [k, o[k]]);
  eq(sorted(csvBy), sorted(apiBy), "export: per customer, the same spend and requests as the report (" + rows.length + " rows)");

  const byKey = await fetchCsv("Export spend by key (CSV)");
  eq(byKey.name, "tollgate-spend-by-key-" + start + "-" + TODAY + ".csv", "export by key: the file the server names");
  const [khead, ...krows] = byKey.rows;
  eq(khead.slice(0, 2), ["key_token", "key_alias"], "export by key: its header");
  eq(decAdd(...krows.map((r) => r[7])), total, "export by key: the spend column adds up to the same total, to the last digit");
  const keys = (await api("GET", "/key/list?return_full_object=true&page_size=100")).text;
  for (const alias of BROWSER === "chromium" ? ["ui-use-key-849", "ui-use-key-1000"] : []) {
    const row = krows.find((r) => r[1] === alias);
    const m = new RegExp('"key_alias":"' + alias + '","token":"([0-9a-f]+)","spend":([0-9.eE+-]+)').exec(keys);
    eq(row && [row[0], canon(row[7])], m && [m[1], canon(m[2])], "export by key: " + alias + ", its token and the spend /key/list has");
  }

  // The export failing: the server's message in words.
  const isExport = (url) => url.pathname === "/spend/export";
  expectedConsoleError = /status of 500/;
  await page.route(isExport, (route) => route.fulfill({ status: 500, contentType: "application/json",
    body: JSON.stringify({ error: { message: "the database is away", type: "internal_error", param: null, code: "500" } }) }));
  await page.getByRole("button", { name: "Export spend by key (CSV)" }).click();
  const alert = page.getByRole("alert").filter({ hasText: "export" });
  await alert.waitFor();
  eq((await alert.textContent()).trim(), "The export failed: the database is away", "export: a failure is shown in words");
  await page.unroute(isExport);
  expectedConsoleError = null;
  await shot(page, "export-failed");
}

// Each tab at 1400 px and at 390 px (a phone): screenshots, and at 390 px
// no sideways scrolling of the page (a table scrolls in its box) and
// bars as wide as at 1400.
async function tabShotsFlow(page) {
  const tabs = [["customers", "#/customers?q=ui-use-"], ["budgets", "#/budgets"], ["usage", "#/usage"], ["keys", "#/keys"], ["tags", "#/tags"]];
  for (const width of [1400, 390]) {
    await page.setViewportSize({ width, height: width === 390 ? 844 : 900 });
    for (const [name, hash] of tabs) {
      await page.goto(BASE + "/ui/" + hash);
      await page.getByRole("heading", { level: 1 }).waitFor();
      await page.locator("main section.view:not([aria-busy])").waitFor();
      if (name === "usage") await page.waitForFunction(() => document.querySelector("figure.chart") && document.querySelector("figure.chart").dataset.library);
      await shot(page, "tab-" + name + "-" + width);
      if (width !== 390) continue;
      const sizes = await page.evaluate(() => ({ page: document.documentElement.scrollWidth, view: window.innerWidth,
        bars: [...document.querySelectorAll(".use meter")].map((m) => Math.round(m.getBoundingClientRect().width)) }));
      check(sizes.page <= sizes.view, "390 px: the " + name + " tab does not scroll sideways (" + sizes.page + " px wide)");
      if (sizes.bars.length) {
        check(Math.min(...sizes.bars) >= 100, "390 px: the bars of the " + name + " tab keep their width (" + Math.min(...sizes.bars) + " px or more)");
        await page.locator(".use meter").first().evaluate((m) => m.scrollIntoView({ inline: "center", block: "nearest" }));
        await shot(page, "tab-" + name + "-390-bars");
      }
    }
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

// Keyboard only: sign in, go to Budgets, create a tier through the
// dialog, sign out; no click, no fill.
async function keyboardFlow(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  await page.goto(BASE + "/ui/");
  const focused = () => page.evaluate(() => {
    const a = document.activeElement;
    if (!a) return "";
    const label = a.id ? document.querySelector('label[for="' + a.id + '"]') : null;
    return (label ? label.textContent : a.getAttribute("aria-label") || a.textContent || "").trim();
  });
  // Tab until the element named name has the focus (at most 40 presses).
  const tabTo = async (name, back) => {
    for (let i = 0; i < 40; i++) {
      if ((await focused()) === name) return true;
      await page.keyboard.press(back ? "Shift+Tab" : "Tab");
    }
    return false;
  };
  check(await tabTo("Master key"), "keyboard: the Master key field is reachable");
  await page.keyboard.type(KEY);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Customers", level: 1 }).waitFor();
  // The view has the focus (main): the tabs are behind it.
  check(await tabTo("Budgets", true), "keyboard: the Budgets tab is reachable");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Budgets", level: 1 }).waitFor();
  check(await tabTo("+ Create Budget"), "keyboard: + Create Budget is reachable");
  await page.keyboard.press("Enter");
  await page.getByRole("dialog", { name: "Create Budget" }).waitFor();
  eq(await focused(), "Budget ID", "keyboard: the dialog opens with the focus on Budget ID");
  await page.keyboard.type("kb-tier");
  check(await tabTo("Max Budget (USD)"), "keyboard: Max Budget (USD) is reachable");
  await page.keyboard.type("0.0000000001");
  check(await tabTo("RPM Limit"), "keyboard: RPM Limit is reachable");
  await page.keyboard.type("7");
  await page.keyboard.press("Enter");
  await page.getByRole("dialog", { name: "Create Budget" }).waitFor({ state: "detached" });
  const b = await api("POST", "/budget/info", { budgets: ["kb-tier"] });
  eq([rawField(b.text, "max_budget"), b.json[0] && b.json[0].rpm_limit], ["0.0000000001", 7],
    "keyboard: Enter creates the budget, its amount exact");
  const row = page.getByRole("row").filter({ has: page.getByRole("rowheader", { name: "kb-tier", exact: true }) });
  eq((await row.locator("td").nth(0).textContent()).trim(), "$0.0000000001", "... shown digit for digit");
  // Escape closes a dialog; the focus comes back.
  check(await tabTo("Delete budget kb-tier"), "keyboard: a row's Delete is reachable");
  await page.keyboard.press("Enter");
  await page.getByRole("dialog", { name: "Delete budget kb-tier?" }).waitFor();
  eq(await focused(), "Cancel", "keyboard: a confirmation starts on Cancel");
  await page.keyboard.press("Escape");
  await page.getByRole("dialog").waitFor({ state: "detached" });
  eq((await api("POST", "/budget/info", { budgets: ["kb-tier"] })).json.length, 1, "keyboard: Escape cancels");
  check(await tabTo("Sign out", true), "keyboard: Sign out is reachable");
  await page.keyboard.press("Enter");
  await page.getByLabel("Master key").waitFor();
  eq(await page.evaluate(() => sessionStorage.getItem("tollgate.masterKey")), null, "Sign out forgets the key");
  await shot(page, "keyboard-signed-out");
  await context.close();
}

// Firefox: the main views, the exact amounts, the seed's dialog, a chart.
async function smokeFlow(page) {
  await moneyFlow(page);
  await shot(page, "customers");
  await createBudgetFlow(page, "ff-free-tier");
  await page.getByRole("link", { name: "Usage", exact: true }).click();
  await page.waitForFunction(() => document.querySelector("figure.chart") && document.querySelector("figure.chart").dataset.library);
  eq(await page.locator("figure.chart").getAttribute("data-library"), "uplot", "the Usage chart is drawn by uPlot");
  check(await page.locator("figure.chart canvas").count() >= 1, "... on a canvas");
  const spends = await page.getByRole("table", { name: "Top 10 customers of the period" }).locator("tbody td.money").allTextContents();
  eq(spends[0], "$123456789.0123456789", "the top customer's spend exact");
  await shot(page, "usage");
  await page.getByRole("link", { name: "Keys", exact: true }).click();
  await page.getByRole("button", { name: "+ Generate Key" }).waitFor();
  await shot(page, "keys");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Master key").waitFor();
  eq(await page.evaluate(() => sessionStorage.getItem("tollgate.masterKey")), null, "Sign out forgets the key");
}

async function main() {
  const t0 = Date.now();
  const type = BROWSER === "firefox" ? pw.firefox : pw.chromium;
  const opts = { executablePath: process.env.TG_UI_EXECUTABLE, headless: true, timeout: 60000 };
  if (BROWSER === "firefox") opts.channel = "moz-firefox";
  else opts.args = ["--no-sandbox"];
  let browser;
  try {
    browser = await type.launch(opts);
  } catch (e) {
    check(false, "the browser starts (" + process.env.TG_UI_EXECUTABLE + ")", String(e).slice(0, 2000));
    return 1;
  }
  check(true, "the browser starts: " + BROWSER + " " + browser.version() + " (" + (Date.now() - t0) + " ms)");
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  if (BROWSER === "chromium") await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  const errors = [];

  // Under WebDriver BiDi every screenshot puts a <style> of playwright's
  // into the page, which the UI's Content-Security-Policy refuses (one
  // report per shot, none without shots); those are counted apart.
  // (Firefox reports them as page errors.)
  let driverStyles = 0;
  const error = (text) => {
    if (BROWSER === "firefox" && /blocked an inline style \(style-src-elem\)/.test(text)) driverStyles += 1;
    else errors.push(text);
  };
  page.on("pageerror", (e) => error(e.message));
  page.on("console", (m) => {
    // A refused key's 401 is logged by the browser itself.
    if (m.type() === "error" && !/status of 40[134]/.test(m.text()) &&
        !(expectedConsoleError && expectedConsoleError.test(m.text()))) error(m.text());
  });
  const flows = BROWSER === "firefox"
    ? [
        ["sign-in", () => signInFlow(page)],
        ["smoke", () => smokeFlow(page)],
        ["sign in again", () => signIn(page)],
        ["budget use", () => budgetUseFlow(page, "ff")],
        ["usage period", () => usageRangeFlow(page)],
        ["export", () => exportFlow(page)],
        ["tabs", () => tabShotsFlow(page)],
      ]
    : [
        ["sign-in", () => signInFlow(page)],
        ["paging", () => pagingFlow(page)],
        ["search", () => searchFlow(page)],
        ["money", () => moneyFlow(page)],
        ["create budget", () => createBudgetFlow(page, "my-free-tier")],
        ["customer on the tier", () => customerOnTierFlow(page, "ui-customer", "my-free-tier")],
        ["spend", () => spendFlow(page, "ui-customer")],
        ["usage", () => usageAllFlow(page)],
        ["block", () => blockFlow(page, "ui-customer")],
        ["edit", () => editFlow(page, "my-free-tier", "ui-customer")],
        ["delete", () => deleteFlow(page)],
        ["keys", () => keysFlow(page, context)],
        ["tags", () => tagsFlow(page)],
        ["keyboard", () => keyboardFlow(browser)],
        ["budget use", () => budgetUseFlow(page, "ui")],
        ["usage period", () => usageRangeFlow(page)],
        ["export", () => exportFlow(page)],
        ["tabs", () => tabShotsFlow(page)],
      ];
  for (const [name, fn] of flows) {
    const t = Date.now();
    try {
      await fn();
      await shot(page, "flow-" + name.replace(/ /g, "-"));
    } catch (e) {
      check(false, "flow " + name + " ran to its end", String(e.stack || e).slice(0, 3000));
      await shot(page, "failed-" + name.replace(/ /g, "-")).catch(() => {});
    }
    process.stdout.write("# flow " + name + ": " + (Date.now() - t) + " ms\n");
  }
  eq(errors, [], "no script errors in the page");
  if (BROWSER === "firefox") check(driverStyles <= shots, "refused styles: only the screenshots' (" + driverStyles + " for " + shots + " shots)");
  await browser.close();
  return 0;
}

main().then((rc) => process.exit(rc), (e) => {
  check(false, "ui-test crashed", String(e.stack || e));
  process.exit(1);
});
