// meter: an account's budget use, its spend plus its reserved (money held
// by calls in flight) against its max_budget, as a <meter> with the exact
// amounts in words beside it, coloured at the webhook's alert thresholds
// (SPEC 9): below 85%, from 85%, from 95%, at 100% and over.  The colour
// only repeats what the words say.

import { h } from "./dom.js";
import { add, plain, share, usd } from "./money.js";

// The use of max by used (an exact decimal), for the account named in
// label ("customer ishaan3"); "no limit" when max is null.
export function useMeter(used, max, label) {
  if (max === null || max === undefined) return h("span", { class: "muted no-limit" }, "no limit");
  const { percent, level } = share(used, max);
  const ofMax = percent === null ? "a budget of " + usd(max) : percent + "% of " + usd(max);
  const amount = usd(used) + " used";
  return h("div", { class: "use level-" + level, dataset: { level } },
    h("meter", { min: "0", max: plain(max), value: plain(used), "aria-label": "Budget use of " + label,
      "aria-valuetext": ofMax + ", " + amount }),
    h("span", { class: "use-text", "aria-hidden": "true" }, ofMax),
    h("span", { class: "use-amount", "aria-hidden": "true" }, amount));
}

// The same for an account of the API: spend + reserved against max.
export function accountUse(account, max, label) {
  return useMeter(add(account.spend, account.reserved), max, label);
}
