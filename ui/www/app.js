// app: tollgate's admin UI (SPEC 14).  Sign-in with the master key (kept
// in sessionStorage, so it ends with the tab), then five sections, each a
// hash route: #/customers (and #/customer/<id>), #/budgets, #/usage,
// #/keys, #/tags.  Every view calls the JSON API of the same origin with the key.

import { ApiError, call, forgetKey, saveKey, savedKey, setUnauthorizedHandler } from "./api.js";
import { alertBox, clear, h, showError } from "./dom.js";
import { customersView, customerView } from "./customers.js";
import { budgetsView } from "./budgets.js";
import { usageView } from "./usage.js";
import { keysView } from "./keys.js";
import { tagsView } from "./tags.js";

const main = document.getElementById("main");
const tabs = document.getElementById("tabs");
const signOutButton = document.getElementById("sign-out");

function signInView(message) {
  tabs.hidden = true;
  signOutButton.hidden = true;
  document.title = "Sign in · tollgate admin";
  const err = alertBox();
  const input = h("input", { id: "master-key", name: "master-key", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "sign-in", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("p", null, "The master key of this tollgate (general_settings.master_key). It is kept in this browser tab only, until you sign out or close the tab."),
    h("div", { class: "field" }, h("label", { for: "master-key" }, "Master key"), input),
    err,
    h("div", { class: "buttons" }, button));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    showError(err, null);
    if (!key) {
      showError(err, new Error("Type the master key."));
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      // A master-only route: a virtual key is refused here too (403).
      await call("GET", "/customer/list", { params: { page: 1, page_size: 1 }, key });
      saveKey(key);
      // A new hash renders through hashchange; the same one here.
      if (!location.hash || location.hash === "#" || location.hash === "#/") location.hash = "#/customers";
      else route();
    } catch (e) {
      showError(err, e instanceof ApiError && e.status === 403
        ? new Error(e.message + " Sign in with the master key.")
        : e);
      input.select();
    } finally {
      button.disabled = false;
    }
  });
  clear(main, form);
  if (message) showError(err, new Error(message));
  input.focus();
}

function signOut(message) {
  forgetKey();
  history.replaceState(null, "", location.pathname + location.search);
  signInView(message);
}

signOutButton.addEventListener("click", () => signOut());
setUnauthorizedHandler((e) => signOut("The saved key was refused: " + e.message + " Sign in again."));

const routes = {
  customers: customersView,
  customer: customerView,
  budgets: budgetsView,
  usage: usageView,
  keys: keysView,
  tags: tagsView,
};
const titles = { customers: "Customers", customer: "Customer", budgets: "Budgets", usage: "Usage", keys: "Keys", tags: "Tags" };

let generation = 0;

// Render the view the hash names: "#/customers?page=2&q=abc", "#/customer/<id>".
async function route() {
  if (!savedKey()) {
    signInView();
    return;
  }
  tabs.hidden = false;
  signOutButton.hidden = false;
  const hash = location.hash.replace(/^#\/?/, "");
  const [pathPart, queryPart] = hash.split("?");
  const [name, ...rest] = pathPart.split("/");
  const view = routes[name] ? name : "customers";
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : null;
  const params = new URLSearchParams(queryPart || "");
  const tab = view === "customer" ? "customers" : view;
  for (const a of tabs.querySelectorAll("a")) {
    if (a.dataset.tab === tab) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = titles[view] + " · tollgate admin";
  const mine = ++generation;
  const section = h("section", { class: "view", "aria-busy": "true" });
  clear(main, section);
  try {
    await routes[view](section, { arg, params, isCurrent: () => mine === generation });
  } catch (e) {
    if (mine === generation && !(e instanceof ApiError && e.status === 401)) {
      const box = alertBox();
      section.append(box);
      showError(box, e);
    }
  } finally {
    section.removeAttribute("aria-busy");
  }
}

window.addEventListener("hashchange", () => {
  route();
  main.focus({ preventScroll: true });
});
route();
