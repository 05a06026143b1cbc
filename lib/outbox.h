/*
 * outbox: delivery of the webhook events lib/events.c writes (SPEC 9).
 *
 * Events wait in webhook_outbox until their receiver answers 2xx.  A
 * delivery first claims due rows in one UPDATE (a fresh claim token, and
 * next_attempt_at moved past the attempt's timeout), so two processes on
 * any number of machines never send the same attempt, and one that dies
 * mid-send leaves its rows to be retried when the claim runs out.  Each
 * POST carries X-Tollgate-Event-Id (the same on every retry, so receivers
 * can drop duplicates) and, with general_settings.webhook_secret,
 * X-Tollgate-Signature: sha256=<hex HMAC-SHA256 of the body>.  A failure
 * (non-2xx, timeout, refused connection) schedules the next attempt after
 * retry_base doubled per attempt, at most an hour; once an event is older
 * than retry_for, a failure marks it dead.
 *
 * The FastCGI programs deliver after their response is complete, bounded
 * in time (lib/app.c); tools/tollgate-deliver drains the outbox of a server
 * that has no traffic.
 */
#ifndef TG_OUTBOX_H
#define TG_OUTBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
#include "err.h"

/* This process wrote an event (a hint for delivering soon, nothing more). */
void tg_outbox_hint(void);
/* Whether an event was written since the last call; clears the hint. */
bool tg_outbox_take_hint(void);

struct tg_outbox_stats {
	int delivered; /* answered 2xx */
	int failed;    /* left pending for a retry */
	int dead;      /* failed after retry_for: given up */
	int cut_short; /* out of budget_us before the receiver answered */
};

/*
 * Deliver events that are due, oldest first, one claim per attempt, for
 * at most budget_us microseconds (0: no bound but each attempt's timeout)
 * and at most max attempts (0: until none is due).  An attempt that
 * budget_us cuts short is not counted (the receiver may be slow, not
 * down): it is released, due again after retry_base, and the round ends.
 * stop_on_failure ends the round at the first failed attempt (a receiver
 * that is down is not tried once per event).  *st (may be NULL) gets the
 * counts.  TG_ERR_DB when the database failed.
 */
enum tg_rc tg_outbox_deliver(struct tg_db *db, const struct tg_alerting *a,
                             int64_t budget_us, int max, bool stop_on_failure,
                             struct tg_outbox_stats *st, struct tg_err *err);

/* Delete delivered events older than a->retention_s (at most 1000 per
 * call) and alert marks of periods that ended that long ago. */
enum tg_rc tg_outbox_prune(struct tg_db *db, const struct tg_alerting *a,
                           int *pruned, struct tg_err *err);

/* Events waiting for delivery, and events given up. */
enum tg_rc tg_outbox_counts(struct tg_db *db, long *pending, long *dead,
                            struct tg_err *err);

/* Make dead events pending again, due now (an operator's retry). */
enum tg_rc tg_outbox_requeue_dead(struct tg_db *db, long *requeued,
                                  struct tg_err *err);

/* Free what delivery keeps between calls (the HTTP handle). */
void tg_outbox_cleanup(void);

#endif
