// money: exact decimals as the API prints them (strings or safe integers,
// see api.js), shown with a dollar sign, added and compared without ever
// going through a binary float.  A number is used only to draw a chart.

// text -> {neg, digits: BigInt, scale} for a plain or exponent decimal.
function parse(v) {
  const s = String(v).trim();
  const m = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(s);
  if (!m || (m[2] === "" && (m[3] === undefined || m[3] === ""))) return null;
  const frac = m[3] || "";
  let digits = BigInt((m[2] || "0") + frac);
  let scale = frac.length - (m[4] ? parseInt(m[4], 10) : 0);
  if (scale < 0) {
    digits *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return { neg: m[1] === "-" && digits !== 0n, digits, scale };
}

function text(d) {
  let s = d.digits.toString();
  if (d.scale > 0) {
    s = s.padStart(d.scale + 1, "0");
    s = s.slice(0, s.length - d.scale) + "." + s.slice(s.length - d.scale);
    s = s.replace(/0+$/, "").replace(/\.$/, "");
  }
  return (d.neg ? "-" : "") + s;
}

function aligned(a, b) {
  const scale = Math.max(a.scale, b.scale);
  const av = a.digits * 10n ** BigInt(scale - a.scale) * (a.neg ? -1n : 1n);
  const bv = b.digits * 10n ** BigInt(scale - b.scale) * (b.neg ? -1n : 1n);
  return [av, bv, scale];
}

// The plain decimal text of v (an exponent written out), or null.
export function plain(v) {
  if (v === null || v === undefined || v === "") return null;
  const d = parse(v);
  return d ? text(d) : String(v);
}

// "$0.001413" for the API's 0.001413, digit for digit; "—" for null.
export function usd(v) {
  const p = plain(v);
  if (p === null) return "—";
  return p.startsWith("-") ? "-$" + p.slice(1) : "$" + p;
}

// a + b, exactly, as text.
export function add(a, b) {
  const x = parse(a ?? 0);
  const y = parse(b ?? 0);
  if (!x || !y) return null;
  const [av, bv, scale] = aligned(x, y);
  const sum = av + bv;
  return text({ neg: sum < 0n, digits: sum < 0n ? -sum : sum, scale });
}

// -1, 0, 1 as a < b, a == b, a > b.
export function compare(a, b) {
  const [av, bv] = aligned(parse(a ?? 0), parse(b ?? 0));
  return av < bv ? -1 : av > bv ? 1 : 0;
}

// The alert thresholds of a budget (SPEC 9): percent of max_budget.
export const THRESHOLDS = [85, 95, 100];

// How much of max the amount used is: {percent, level}.  percent is the
// whole percent, rounded down (so that it reads 85 exactly when the 85%
// alert is due), or null for a budget of 0; level is the highest
// threshold reached ("85", "95", "100") or "ok" below the first.  Exact:
// used * 100 is compared with max * threshold as integers.
export function share(used, max) {
  const [u, m] = aligned(parse(used ?? 0), parse(max ?? 0));
  let level = "ok";
  for (const t of THRESHOLDS) if (u * 100n >= m * BigInt(t)) level = String(t);
  return { percent: m > 0n ? Number((u * 100n) / m) : null, level };
}

// Whether text is a non-negative decimal a user may type for money.
export function isAmount(s) {
  return /^(\d+(\.\d*)?|\.\d+)$/.test(String(s).trim());
}

// A number for drawing only (never shown, never summed).
export function approx(v) {
  return v === null || v === undefined ? 0 : Number(v);
}

// 1234567 -> "1,234,567" for counts (never for money).
export function count(n) {
  return n === null || n === undefined ? "—" : String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}
