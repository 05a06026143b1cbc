/*
 * metrics: what GET /metrics reports (SPEC 15), in Prometheus' text format.
 *
 * Each process counts in memory (calls by route, model and status; tokens;
 * spend; the database's and the upstreams' latency histograms) and adds
 * what it counted to the database's totals (metrics_counters, sql/014) a
 * few seconds later, in one short transaction: never on a call's own way,
 * and so that every process and every web node reports the same totals.
 * A scrape reads those totals and a few counts (holds in flight, the
 * webhook outbox; this node's spool), and, when the config asks for it,
 * each customer's and key's spend and remaining budget.
 */
#ifndef TG_METRICS_H
#define TG_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "err.h"
#include "util.h"

/* A counter's value in units of 10^-10 (as tg_money): 1 is TG_METRICS_ONE. */
#define TG_METRICS_ONE ((int64_t)10000000000)
/* The longest name and label text of a counter. */
#define TG_METRICS_NAME_MAX   96
#define TG_METRICS_LABELS_MAX 600
/* How long a count waits in a process before it is added to the
 * database's (microseconds). */
#define TG_METRICS_FLUSH_US (5 * 1000000LL)

/* Counting is for the programs (tg_app_main() turns it on): a tool's
 * counts would never be flushed. */
void tg_metrics_enable(void);

/* Add units to name{labels} (labels: the text between the braces, "" for
 * none) of this process.  A value that would overflow is dropped; nothing
 * is counted before tg_metrics_enable(). */
void tg_metrics_add(const char *name, const char *labels, int64_t units);

static inline void
tg_metrics_count(const char *name, const char *labels, int64_t n)
{
	tg_metrics_add(name, labels, n * TG_METRICS_ONE);
}

/*
 * The labels text k1="v1",k2="v2" of the n pairs in kv (names, values)
 * into buf, values escaped as the format says (\\, \", \n); a NULL value
 * is "".  False (buf empty) when it does not fit.
 */
bool tg_metrics_labels(char *buf, size_t cap, size_t n, const char *const *kv);

enum tg_metrics_histogram {
	TG_METRICS_DB,       /* one database round trip */
	TG_METRICS_UPSTREAM, /* one upstream call, to its last byte */
};

/* One observation of us microseconds into histogram h{labels}. */
void tg_metrics_observe(enum tg_metrics_histogram h, const char *labels,
                        int64_t us);

/* When the counts of this process are due to be added (tg_now_us()
 * time), or 0 when there are none. */
int64_t tg_metrics_due_us(void);

/*
 * Add this process's counts to the database's, in one transaction, and
 * forget them; kept for the next time when it fails (a schema before
 * sql/014 is not a failure: they are dropped).  While it runs, its own
 * round trips are not observed.
 */
enum tg_rc tg_metrics_flush(struct tg_db *db, struct tg_err *err);

/* Whether a flush is running (db.c does not observe it). */
bool tg_metrics_flushing(void);

/* What the node itself knows: its spool (SPEC 4.4). */
struct tg_metrics_node {
	bool spool_read;
	long spool_pending, spool_failed;
};

/*
 * The exposition: the database's totals, holds in flight, the webhook
 * outbox, the node's spool, and with per_account each customer's and
 * key's spend and remaining budget (a customer without a budget of its
 * own is on default_budget, as its calls are), appended to out.  The
 * accounts are read page by page; flush(out, arg), when not NULL, is
 * called after each page so that out need not hold them all (it empties
 * out; false stops).
 */
enum tg_rc tg_metrics_exposition(struct tg_db *db, bool per_account,
                                 const char *default_budget,
                                 const struct tg_metrics_node *node,
                                 struct tg_buf *out,
                                 bool (*flush)(struct tg_buf *out, void *arg),
                                 void *arg, struct tg_err *err);

/* Forget every count of this process and free what holds them (at the
 * end of a program, after its last flush). */
void tg_metrics_reset(void);

#endif
