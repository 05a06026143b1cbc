/*
 * metrics: the counts of this process, their flush into metrics_counters
 * (sql/014), and the text of GET /metrics (SPEC 15).  See metrics.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "money.h"
#include "outbox.h"

/* One counter of this process: what it counted since the last flush. */
struct entry {
	char name[TG_METRICS_NAME_MAX];
	char labels[TG_METRICS_LABELS_MAX];
	int64_t units;
};

static struct entry *entries;
static size_t nentries, capentries;
static size_t *slots;              /* index + 1 into entries; 0 is empty */
static size_t nslots;              /* a power of two, above 2 * nentries */
static int64_t unflushed_since_us; /* 0: nothing to flush */
static int64_t retry_after_us;     /* after a failed flush */
static bool flushing;
static bool enabled;

/* After a flush failed, the next try waits this long. */
#define FLUSH_RETRY_US (30 * 1000000LL)
/* Accounts read by one query of an exposition. */
#define ACCOUNT_PAGE 5000

/* ---- counting ---- */

static size_t
entry_hash(const char *name, const char *labels)
{
	uint64_t h = 14695981039346656037ULL;

	for (const char *p = name; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ '{') * 1099511628211ULL;
	for (const char *p = labels; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (size_t)h;
}

static size_t *
entry_slot(const char *name, const char *labels)
{
	size_t mask = nslots - 1;
	size_t i = entry_hash(name, labels) & mask;

	while (slots[i] != 0 &&
	       (strcmp(entries[slots[i] - 1].name, name) != 0 ||
	        strcmp(entries[slots[i] - 1].labels, labels) != 0))
		i = (i + 1) & mask;
	return &slots[i];
}

void
tg_metrics_enable(void)
{
	enabled = true;
}

void
tg_metrics_add(const char *name, const char *labels, int64_t units)
{
	struct entry *e;
	size_t *slot;

	if (!enabled || units == 0 || strlen(name) >= TG_METRICS_NAME_MAX ||
	    strlen(labels) >= TG_METRICS_LABELS_MAX)
		return;
	if (2 * (nentries + 1) > nslots) {
		nslots = nslots ? 2 * nslots : 64;
		free(slots);
		slots = tg_xcalloc(nslots, sizeof(*slots));
		for (size_t k = 0; k < nentries; k++)
			*entry_slot(entries[k].name, entries[k].labels) = k + 1;
	}
	slot = entry_slot(name, labels);
	if (*slot == 0) {
		if (nentries == capentries) {
			capentries = capentries ? 2 * capentries : 32;
			entries = tg_xrealloc(entries,
			                      capentries * sizeof(*entries));
		}
		e = &entries[nentries];
		memset(e, 0, sizeof(*e));
		tg_strlcpy(e->name, sizeof(e->name), name);
		tg_strlcpy(e->labels, sizeof(e->labels), labels);
		*slot = ++nentries;
	}
	e = &entries[*slot - 1];
	if (__builtin_add_overflow(e->units, units, &e->units))
		return;
	if (unflushed_since_us == 0)
		unflushed_since_us = tg_now_us();
}

bool
tg_metrics_labels(char *buf, size_t cap, size_t n, const char *const *kv)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		const char *k = kv[2 * i], *v = kv[2 * i + 1];
		size_t klen = strlen(k);

		if (o + klen + 4 >= cap)
			goto too_long;
		if (i > 0)
			buf[o++] = ',';
		memcpy(buf + o, k, klen);
		o += klen;
		buf[o++] = '=';
		buf[o++] = '"';
		for (const char *p = v != NULL ? v : ""; *p != '\0'; p++) {
			const char *esc = *p == '\\'   ? "\\\\"
			                  : *p == '"'  ? "\\\""
			                  : *p == '\n' ? "\\n"
			                               : NULL;
			size_t len = esc != NULL ? 2 : 1;

			if (o + len + 2 >= cap)
				goto too_long;
			memcpy(buf + o, esc != NULL ? esc : p, len);
			o += len;
		}
		buf[o++] = '"';
	}
	buf[o] = '\0';
	return true;
too_long:
	buf[0] = '\0';
	return false;
}

/* The histograms: their names and upper bounds (le), in microseconds and
 * as printed. */
#define NBUCKETS 12
static const struct histogram {
	const char *name;
	int64_t le_us[NBUCKETS];
	const char *le[NBUCKETS];
} histograms[] = {
        [TG_METRICS_DB] = {"tollgate_db_round_trip_seconds",
                           {500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
                            250000, 500000, 1000000, 2500000},
                           {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                            "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5"}},
        [TG_METRICS_UPSTREAM] = {"tollgate_upstream_seconds",
                                 {50000, 100000, 250000, 500000, 1000000,
                                  2500000, 5000000, 10000000, 30000000,
                                  60000000, 120000000, 300000000},
                                 {"0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
                                  "10", "30", "60", "120", "300"}},
};

void
tg_metrics_observe(enum tg_metrics_histogram h, const char *labels, int64_t us)
{
	const struct histogram *hi = &histograms[h];
	char name[TG_METRICS_NAME_MAX], with_le[TG_METRICS_LABELS_MAX];
	const char *sep = labels[0] != '\0' ? "," : "";

	if (us < 0)
		us = 0;
	/* Cumulative, as the format has them: every bucket that holds it. */
	snprintf(name, sizeof(name), "%s_bucket", hi->name);
	for (size_t i = 0; i < NBUCKETS; i++) {
		if (us > hi->le_us[i])
			continue;
		snprintf(with_le, sizeof(with_le), "%s%sle=\"%s\"", labels, sep,
		         hi->le[i]);
		tg_metrics_count(name, with_le, 1);
	}
	snprintf(with_le, sizeof(with_le), "%s%sle=\"+Inf\"", labels, sep);
	tg_metrics_count(name, with_le, 1);
	snprintf(name, sizeof(name), "%s_sum", hi->name);
	tg_metrics_add(name, labels, us * (TG_METRICS_ONE / 1000000));
	snprintf(name, sizeof(name), "%s_count", hi->name);
	tg_metrics_count(name, labels, 1);
}

int64_t
tg_metrics_due_us(void)
{
	int64_t due;

	if (unflushed_since_us == 0)
		return 0;
	due = unflushed_since_us + TG_METRICS_FLUSH_US;
	return due > retry_after_us ? due : retry_after_us;
}

bool
tg_metrics_flushing(void)
{
	return flushing;
}

void
tg_metrics_reset(void)
{
	free(entries);
	free(slots);
	entries = NULL;
	slots = NULL;
	nentries = capentries = nslots = 0;
	unflushed_since_us = retry_after_us = 0;
}

/* ---- the flush ---- */

static int
by_key(const void *a, const void *b)
{
	const struct entry *x = &entries[*(const size_t *)a];
	const struct entry *y = &entries[*(const size_t *)b];
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : strcmp(x->labels, y->labels);
}

struct flush_arg {
	const size_t *order;
	size_t n;
};

static enum tg_rc
flush_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	const struct flush_arg *a = varg;
	struct tg_db_param p[3];
	enum tg_rc rc = TG_OK;

	/* In the order of the key, as every process: no deadlock between
	 * two flushes. */
	for (size_t i = 0; i < a->n && rc == TG_OK; i++) {
		const struct entry *e = &entries[a->order[i]];

		p[0] = tg_db_str(e->name);
		p[1] = tg_db_str(e->labels);
		p[2] = tg_db_money(e->units);
		rc = tg_db_run(
		        db,
		        "INSERT INTO metrics_counters (name, labels, value)"
		        " VALUES (?, ?, CAST(? AS DECIMAL(38,10)))"
		        " ON DUPLICATE KEY UPDATE"
		        " value = value + VALUES(value)",
		        p, 3, NULL, err);
	}
	return rc;
}

enum tg_rc
tg_metrics_flush(struct tg_db *db, struct tg_err *err)
{
	struct flush_arg a;
	size_t *order;
	enum tg_rc rc;

	if (unflushed_since_us == 0)
		return TG_OK;
	order = tg_xcalloc(nentries ? nentries : 1, sizeof(*order));
	a.order = order;
	a.n = 0;
	for (size_t i = 0; i < nentries; i++)
		if (entries[i].units != 0)
			order[a.n++] = i;
	qsort(order, a.n, sizeof(*order), by_key);
	flushing = true;
	rc = tg_db_txn(db, flush_txn, &a, err);
	flushing = false;
	if (rc == TG_ERR_DB && tg_db_errno(db) == 1146) {
		/* A schema before sql/014: nowhere to keep them. */
		tg_log_warn("metrics: no metrics_counters table (run "
		            "tollgate-migrate): counts dropped");
		tg_err_clear(err);
		rc = TG_OK;
	}
	if (rc == TG_OK) {
		for (size_t i = 0; i < a.n; i++)
			entries[order[i]].units = 0;
		unflushed_since_us = 0;
		retry_after_us = 0;
	} else {
		retry_after_us = tg_now_us() + FLUSH_RETRY_US;
	}
	free(order);
	return rc;
}

/* ---- the exposition ---- */

static const struct family {
	const char *name;
	const char *type; /* counter, gauge, histogram */
	const char *help;
} families[] = {
        {"tollgate_requests_total", "counter",
         "LLM calls answered, by route, model and HTTP status."},
        {"tollgate_tokens_total", "counter",
         "Tokens of the calls charged, by route, model and type (prompt, "
         "completion)."},
        {"tollgate_spend_usd_total", "counter",
         "USD charged to the ledger, by model."},
        {"tollgate_db_round_trip_seconds", "histogram",
         "Database round trips of the programs."},
        {"tollgate_upstream_seconds", "histogram",
         "Upstream calls, from the request to the answer's last byte, by "
         "route."},
};

/* A DECIMAL's text without its trailing zeros ("12.5000" is "12.5"). */
static void
put_decimal(struct tg_buf *out, const char *v)
{
	size_t n = strlen(v);

	if (memchr(v, '.', n) != NULL) {
		while (n > 0 && v[n - 1] == '0')
			n--;
		if (n > 0 && v[n - 1] == '.')
			n--;
	}
	tg_buf_add(out, v, n);
}

static void
put_sample(struct tg_buf *out, const char *name, const char *labels,
           const char *value)
{
	tg_buf_add(out, name, strlen(name));
	if (labels[0] != '\0') {
		tg_buf_add(out, "{", 1);
		tg_buf_add(out, labels, strlen(labels));
		tg_buf_add(out, "}", 1);
	}
	tg_buf_add(out, " ", 1);
	put_decimal(out, value);
	tg_buf_add(out, "\n", 1);
}

static void
put_family(struct tg_buf *out, const char *name, const char *type,
           const char *help)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n",
	                 name, help, name, type);

	if (n > 0)
		tg_buf_add(out, line,
		           (size_t)n < sizeof(line) ? (size_t)n
		                                    : sizeof(line) - 1);
}

/* A row of metrics_counters, for ordering a histogram's lines. */
struct row {
	const char *name, *labels, *value;
	char base[TG_METRICS_LABELS_MAX]; /* the labels but le */
	double le;                        /* +Inf: HUGE */
};

static void
split_le(struct row *r)
{
	const char *le = strstr(r->labels, "le=\"");
	size_t n = le != NULL ? (size_t)(le - r->labels) : strlen(r->labels);

	if (n > 0 && r->labels[n - 1] == ',')
		n--;
	if (n >= sizeof(r->base))
		n = sizeof(r->base) - 1;
	memcpy(r->base, r->labels, n);
	r->base[n] = '\0';
	r->le = 0;
	if (le != NULL)
		r->le = strncmp(le + 4, "+Inf", 4) == 0 ? 1e308
		                                        : strtod(le + 4, NULL);
}

/* _bucket lines by their other labels, then le; then _count, _sum. */
static int
by_series(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	int c = strcmp(x->base, y->base);

	if (c != 0)
		return c;
	c = strcmp(x->name, y->name);
	if (c != 0)
		return c;
	return x->le < y->le ? -1 : x->le > y->le;
}

static enum tg_rc
put_counters(struct tg_db *db, struct tg_buf *out, struct tg_err *err)
{
	struct tg_db_result res;
	struct row *rows;
	enum tg_rc rc;

	rc = tg_db_exec(db,
	                "SELECT name, labels, CAST(value AS CHAR)"
	                " FROM metrics_counters ORDER BY name, labels",
	                NULL, 0, &res, err);
	if (rc == TG_ERR_DB && tg_db_errno(db) == 1146) {
		tg_err_clear(err);
		memset(&res, 0, sizeof(res));
		rc = TG_OK;
	}
	if (rc != TG_OK)
		return rc;
	rows = tg_xcalloc(res.nrows ? res.nrows : 1, sizeof(*rows));
	for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
		const struct family *fa = &families[f];
		size_t flen = strlen(fa->name), n = 0;
		bool hist = strcmp(fa->type, "histogram") == 0;

		for (size_t i = 0; i < res.nrows; i++) {
			const char *name = tg_db_cell(&res, i, 0);
			const char *labels = tg_db_cell(&res, i, 1);
			const char *value = tg_db_cell(&res, i, 2);

			if (name == NULL || labels == NULL || value == NULL ||
			    strncmp(name, fa->name, flen) != 0)
				continue;
			if (hist ? strcmp(name + flen, "_bucket") != 0 &&
			                    strcmp(name + flen, "_count") !=
			                            0 &&
			                    strcmp(name + flen, "_sum") != 0
			         : name[flen] != '\0')
				continue;
			rows[n].name = name;
			rows[n].labels = labels;
			rows[n].value = value;
			split_le(&rows[n]);
			n++;
		}
		put_family(out, fa->name, fa->type, fa->help);
		if (hist)
			qsort(rows, n, sizeof(*rows), by_series);
		for (size_t i = 0; i < n; i++)
			put_sample(out, rows[i].name, rows[i].labels,
			           rows[i].value);
	}
	free(rows);
	tg_db_result_free(&res);
	return TG_OK;
}

static void
put_count(struct tg_buf *out, const char *name, const char *labels, long v)
{
	char num[24];

	snprintf(num, sizeof(num), "%ld", v);
	put_sample(out, name, labels, num);
}

/*
 * One family of each account of kind ("customer" or "key"): its spend in
 * its current period (an ended period reads 0, as its next call will find
 * it), or, with remaining, what is left of its max_budget (accounts
 * without one have no line).  Page by page of ACCOUNT_PAGE, by id.
 */
static enum tg_rc
put_accounts(struct tg_db *db, const char *kind, bool remaining,
             const char *default_budget, struct tg_buf *out,
             bool (*flush)(struct tg_buf *, void *), void *arg,
             struct tg_err *err)
{
	bool customers = strcmp(kind, "customer") == 0;
	char *after = tg_xstrdup("");
	char name[64], help[128];
	enum tg_rc rc = TG_OK;

	snprintf(name, sizeof(name), "tollgate_%s_%s", kind,
	         remaining ? "budget_remaining_usd" : "spend_usd");
	snprintf(help, sizeof(help),
	         remaining ? "What is left of each %s's max_budget in its "
	                     "current period."
	                   : "Each %s's spend in its current period.",
	         customers ? "customer" : "virtual key");
	put_family(out, name, "gauge", help);
	for (;;) {
		struct tg_db_param p[3];
		struct tg_db_result res;
		size_t np = 0, got;

		if (customers)
			p[np++] = tg_db_str(default_budget);
		p[np++] = tg_db_str(after);
		p[np++] = tg_db_int(ACCOUNT_PAGE);
#define ACCOUNT_SPEND                                                          \
	" CAST(IF(b.budget_duration IS NOT NULL AND a.spend_reset_at IS NOT"   \
	" NULL AND a.spend_reset_at <= UTC_TIMESTAMP(6), 0, a.spend) AS "      \
	"CHAR),"
		rc = tg_db_exec(
		        db,
		        customers
		                ? "SELECT a.user_id, NULL," ACCOUNT_SPEND
		                  " CAST(b.max_budget AS CHAR)"
		                  " FROM customers a LEFT JOIN budgets b"
		                  " ON b.budget_id = COALESCE(a.budget_id, ?)"
		                  " WHERE a.user_id > ? ORDER BY a.user_id"
		                  " LIMIT ?"
		                : "SELECT a.token, a.key_alias," ACCOUNT_SPEND
		                  " CAST(b.max_budget AS CHAR)"
		                  " FROM api_keys a LEFT JOIN budgets b"
		                  " ON b.budget_id = a.budget_id"
		                  " WHERE a.token > ? ORDER BY a.token LIMIT ?",
		        p, np, &res, err);
#undef ACCOUNT_SPEND
		if (rc != TG_OK)
			break;
		for (size_t i = 0; i < res.nrows; i++) {
			const char *id = tg_db_cell(&res, i, 0);
			const char *alias = tg_db_cell(&res, i, 1);
			const char *spend = tg_db_cell(&res, i, 2);
			const char *max = tg_db_cell(&res, i, 3);
			const char *kv[4] = {kind, id, "key_alias", alias};
			char labels[TG_METRICS_LABELS_MAX];
			char left_s[TG_MONEY_STRLEN];
			tg_money s, m;

			if (id == NULL || spend == NULL ||
			    !tg_metrics_labels(labels, sizeof(labels),
			                       alias == NULL ? 1 : 2, kv))
				continue;
			if (!remaining) {
				put_sample(out, name, labels, spend);
				continue;
			}
			if (max == NULL || !tg_money_parse(spend, &s) ||
			    !tg_money_parse(max, &m))
				continue;
			tg_money_format(m - s, left_s, sizeof(left_s));
			put_sample(out, name, labels, left_s);
		}
		got = res.nrows;
		free(after);
		after = tg_xstrdup(got > 0 ? tg_db_cell(&res, got - 1, 0) : "");
		tg_db_result_free(&res);
		if (flush != NULL && !flush(out, arg))
			break;
		if (got < ACCOUNT_PAGE)
			break;
	}
	free(after);
	return rc;
}

enum tg_rc
tg_metrics_exposition(struct tg_db *db, bool per_account,
                      const char *default_budget,
                      const struct tg_metrics_node *node, struct tg_buf *out,
                      bool (*flush)(struct tg_buf *out, void *arg), void *arg,
                      struct tg_err *err)
{
	struct tg_db_result res;
	long pending = 0, dead = 0;
	enum tg_rc rc;

	if ((rc = put_counters(db, out, err)) != TG_OK)
		return rc;
	rc = tg_db_exec(db, "SELECT COUNT(*) FROM reservations", NULL, 0, &res,
	                err);
	if (rc != TG_OK)
		return rc;
	put_family(out, "tollgate_holds_in_flight", "gauge",
	           "Budget holds of calls in flight, on every node.");
	put_sample(out, "tollgate_holds_in_flight", "",
	           res.nrows == 1 && tg_db_cell(&res, 0, 0) != NULL
	                   ? tg_db_cell(&res, 0, 0)
	                   : "0");
	tg_db_result_free(&res);
	if ((rc = tg_outbox_counts(db, &pending, &dead, err)) != TG_OK)
		return rc;
	put_family(out, "tollgate_webhook_events", "gauge",
	           "Webhook events waiting for their receiver (pending) and "
	           "given up (dead).");
	put_count(out, "tollgate_webhook_events", "state=\"pending\"", pending);
	put_count(out, "tollgate_webhook_events", "state=\"dead\"", dead);
	if (node->spool_read) {
		put_family(out, "tollgate_spool_settlements", "gauge",
		           "Settlements this node keeps for the database "
		           "(pending) and those it refused (failed).");
		put_count(out, "tollgate_spool_settlements",
		          "state=\"pending\"", node->spool_pending);
		put_count(out, "tollgate_spool_settlements", "state=\"failed\"",
		          node->spool_failed);
	}
	if (!per_account)
		return TG_OK;
	if (flush != NULL && !flush(out, arg))
		return TG_OK;
	for (int k = 0; k < 4 && rc == TG_OK; k++)
		rc = put_accounts(db, k < 2 ? "customer" : "key", k % 2 == 1,
		                  default_budget, out, flush, arg, err);
	return rc;
}
