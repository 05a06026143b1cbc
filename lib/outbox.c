/*
 * outbox: delivery of webhook events, claimed atomically, retried with
 * backoff (SPEC 9).  See outbox.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "log.h"
#include "outbox.h"
#include "util.h"

/* A claim outlives its attempt by this much (seconds). */
#define CLAIM_MARGIN_S 5
/* An attempt is not begun with less time than this left (microseconds). */
#define ATTEMPT_MIN_US (20 * 1000LL)
/* The longest delay between two attempts (seconds). */
#define RETRY_MAX_S 3600
/* What is kept of a receiver's answer: nothing but its status. */
#define ERROR_MAX 200

static bool outbox_hint;
static CURL *outbox_curl; /* kept for keep-alive to the receiver */

void
tg_outbox_hint(void)
{
	outbox_hint = true;
}

bool
tg_outbox_take_hint(void)
{
	bool h = outbox_hint;

	outbox_hint = false;
	return h;
}

void
tg_outbox_cleanup(void)
{
	if (outbox_curl != NULL)
		curl_easy_cleanup(outbox_curl);
	outbox_curl = NULL;
}

/* One claimed row. */
struct row {
	char *id;
	char *event_id;
	char *target;
	char *event;
	char *body;
	long attempts;
	long age_s; /* since the event was written (or requeued) */
};

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

enum post_result {
	POST_OK,       /* the receiver answered 2xx */
	POST_FAILED,   /* another status, a refused connection, ... */
	POST_TIMED_OUT /* no answer within the time given */
};

/* POST r's body to url within timeout_ms; why (ERROR_MAX bytes) says
 * what went wrong. */
static enum post_result
post(const struct tg_alerting *a, const char *url, const struct row *r,
     long timeout_ms, char *why, size_t cap)
{
	struct curl_slist *h = NULL;
	char line[160], mac_hex[65];
	unsigned char mac[32];
	long status = 0;
	CURLcode cc;

	if (outbox_curl == NULL)
		outbox_curl = curl_easy_init();
	if (outbox_curl == NULL) {
		snprintf(why, cap, "cannot start libcurl");
		return POST_FAILED;
	}
	curl_easy_reset(outbox_curl);
	h = curl_slist_append(h, "Content-Type: application/json");
	snprintf(line, sizeof(line), "X-Tollgate-Event-Id: %s", r->event_id);
	h = curl_slist_append(h, line);
	snprintf(line, sizeof(line), "X-Tollgate-Event: %s", r->event);
	h = curl_slist_append(h, line);
	if (a->webhook_secret != NULL && strcmp(r->target, "webhook") == 0) {
		tg_hmac_sha256(a->webhook_secret, strlen(a->webhook_secret),
		               r->body, strlen(r->body), mac);
		tg_hex(mac, sizeof(mac), mac_hex);
		snprintf(line, sizeof(line), "X-Tollgate-Signature: sha256=%s",
		         mac_hex);
		h = curl_slist_append(h, line);
	}
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(outbox_curl, CURLOPT_URL, url);
	curl_easy_setopt(outbox_curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(outbox_curl, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(outbox_curl, CURLOPT_POSTFIELDSIZE,
	                 (long)strlen(r->body));
	curl_easy_setopt(outbox_curl, CURLOPT_USERAGENT, "tollgate");
	curl_easy_setopt(outbox_curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(outbox_curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(outbox_curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(outbox_curl, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(outbox_curl, CURLOPT_PROTOCOLS_STR, "http,https");
	cc = curl_easy_perform(outbox_curl);
	curl_slist_free_all(h);
	curl_easy_setopt(outbox_curl, CURLOPT_HTTPHEADER, NULL);
	if (cc != CURLE_OK) {
		snprintf(why, cap, "%s", curl_easy_strerror(cc));
		return cc == CURLE_OPERATION_TIMEDOUT ? POST_TIMED_OUT
		                                      : POST_FAILED;
	}
	curl_easy_getinfo(outbox_curl, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		snprintf(why, cap, "the receiver answered HTTP %ld", status);
		return POST_FAILED;
	}
	return POST_OK;
}

static void
row_free(struct row *r)
{
	free(r->id);
	free(r->event_id);
	free(r->target);
	free(r->event);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* Give the row of claim back, due after delay_s, its attempt uncounted
 * (not made, or cut short by this sender's own time). */
static void
release(struct tg_db *db, const char *token, long delay_s)
{
	struct tg_db_param p[2];
	struct tg_err err;

	tg_err_clear(&err);
	p[0] = tg_db_int(delay_s);
	p[1] = tg_db_str(token);
	if (tg_db_run(
	            db,
	            "UPDATE webhook_outbox SET claim = NULL, next_attempt_at ="
	            " UTC_TIMESTAMP(6) + INTERVAL ? SECOND WHERE claim = ?",
	            p, 2, NULL, &err) != TG_OK)
		tg_log_warn("a webhook event stays claimed until its claim "
		            "runs out: %s",
		            err.message);
}

/*
 * Claim the oldest due row for one attempt under token: *found says
 * whether there was one, *r gets it (row_free() it).  A claim covers one
 * attempt (its timeout plus a margin), never a batch, so it cannot run
 * out while its sender still works on earlier rows.
 */
static enum tg_rc
claim(struct tg_db *db, const struct tg_alerting *a, const char *token,
      struct row *r, bool *found, struct tg_err *err)
{
	struct tg_db_param p[4];
	struct tg_db_result res;
	const char *t1, *t2, *v;
	uint64_t claimed = 0;
	enum tg_rc rc;

	memset(r, 0, sizeof(*r));
	*found = false;
	/* Only the targets this config has a URL for. */
	t1 = a->webhook_url != NULL ? "webhook" : "slack";
	t2 = a->slack_url != NULL ? "slack" : "webhook";
	p[0] = tg_db_str(token);
	p[1] = tg_db_int(a->timeout_s + CLAIM_MARGIN_S);
	p[2] = tg_db_str(t1);
	p[3] = tg_db_str(t2);
	rc = tg_db_run(db,
	               "UPDATE webhook_outbox SET claim = ?, next_attempt_at ="
	               " UTC_TIMESTAMP(6) + INTERVAL ? SECOND"
	               " WHERE status = 'pending' AND next_attempt_at <="
	               " UTC_TIMESTAMP(6) AND target IN (?, ?)"
	               " ORDER BY next_attempt_at, id LIMIT 1",
	               p, 4, &claimed, err);
	if (rc != TG_OK || claimed == 0)
		return rc;
	rc = tg_db_exec(db,
	                "SELECT id, event_id, target, event, body, attempts,"
	                " TIMESTAMPDIFF(SECOND, retry_since, UTC_TIMESTAMP(6))"
	                " FROM webhook_outbox WHERE claim = ?",
	                p, 1, &res, err);
	if (rc != TG_OK) {
		release(db, token, 0);
		return rc;
	}
	if (res.nrows == 1) {
		r->id = tg_xstrdup(tg_db_cell(&res, 0, 0));
		r->event_id = tg_xstrdup(tg_db_cell(&res, 0, 1));
		r->target = tg_xstrdup(tg_db_cell(&res, 0, 2));
		r->event = tg_xstrdup(tg_db_cell(&res, 0, 3));
		r->body = tg_xstrdup(tg_db_cell(&res, 0, 4));
		v = tg_db_cell(&res, 0, 5);
		r->attempts = v != NULL ? strtol(v, NULL, 10) : 0;
		v = tg_db_cell(&res, 0, 6);
		r->age_s = v != NULL ? strtol(v, NULL, 10) : 0;
		*found = true;
	}
	tg_db_result_free(&res);
	return TG_OK;
}

/* The delay before attempt number attempts + 2, after attempts + 1
 * failed: retry_base doubled per earlier failure, at most RETRY_MAX_S. */
static long
retry_delay(const struct tg_alerting *a, long attempts)
{
	long d = a->retry_base_s > 0 ? a->retry_base_s : 1;

	for (long i = 0; i < attempts && d < RETRY_MAX_S; i++)
		d *= 2;
	return d < RETRY_MAX_S ? d : RETRY_MAX_S;
}

/*
 * Record the outcome of r's attempt (delivered, or failed with why).
 * *lost: the claim was no longer ours (it ran out and another sender took
 * the row), so nothing is recorded and the other's outcome stands.
 */
static enum tg_rc
record(struct tg_db *db, const struct tg_alerting *a, const char *token,
       const struct row *r, bool ok, const char *why, bool *dead, bool *lost,
       struct tg_err *err)
{
	struct tg_db_param p[5];
	uint64_t n = 0;
	enum tg_rc rc;

	*dead = false;
	if (ok) {
		p[0] = tg_db_str(r->id);
		p[1] = tg_db_str(token);
		rc = tg_db_run(db,
		               "UPDATE webhook_outbox SET status = 'delivered',"
		               " delivered_at = UTC_TIMESTAMP(6), attempts ="
		               " attempts + 1, claim = NULL, last_error = NULL"
		               " WHERE id = ? AND claim = ?",
		               p, 2, &n, err);
	} else {
		*dead = r->age_s >= a->retry_for_s;
		p[0] = tg_db_str(why);
		p[1] = tg_db_str(*dead ? "dead" : "pending");
		p[2] = tg_db_int(retry_delay(a, r->attempts));
		p[3] = tg_db_str(r->id);
		p[4] = tg_db_str(token);
		rc = tg_db_run(
		        db,
		        "UPDATE webhook_outbox SET attempts = attempts + 1,"
		        " last_error = ?, claim = NULL, status = ?,"
		        " next_attempt_at = UTC_TIMESTAMP(6) +"
		        " INTERVAL ? SECOND WHERE id = ? AND claim = ?",
		        p, 5, &n, err);
	}
	*lost = rc == TG_OK && n == 0;
	return rc;
}

enum tg_rc
tg_outbox_deliver(struct tg_db *db, const struct tg_alerting *a,
                  int64_t budget_us, int max, bool stop_on_failure,
                  struct tg_outbox_stats *st, struct tg_err *err)
{
	struct tg_outbox_stats none;
	int64_t start = tg_now_us();
	char token[37], why[ERROR_MAX];
	struct row r;
	int tried = 0;
	enum tg_rc rc = TG_OK;

	if (st == NULL)
		st = &none;
	memset(st, 0, sizeof(*st));
	if (a == NULL || (a->webhook_url == NULL && a->slack_url == NULL))
		return TG_OK;
	while (max == 0 || tried < max) {
		long timeout_ms = a->timeout_s * 1000;
		bool found, dead, lost, cut = false;
		enum post_result pr;

		if (budget_us > 0) {
			int64_t left = budget_us - (tg_now_us() - start);

			if (left < ATTEMPT_MIN_US)
				break;
			if (left / 1000 < timeout_ms) {
				timeout_ms = (long)(left / 1000);
				cut = true;
			}
		}
		tg_uuid_new(token);
		rc = claim(db, a, token, &r, &found, err);
		if (rc != TG_OK || !found)
			break;
		tried++;
		pr = post(a,
		          strcmp(r.target, "slack") == 0 ? a->slack_url
		                                         : a->webhook_url,
		          &r, timeout_ms, why, sizeof(why));
		if (pr == POST_TIMED_OUT && cut) {
			/* Out of this sender's time, not the receiver's: not
			 * an attempt.  It is due again after retry_base, for
			 * a sender with the whole timeout. */
			release(db, token, a->retry_base_s);
			st->cut_short++;
			row_free(&r);
			break;
		}
		rc = record(db, a, token, &r, pr == POST_OK,
		            pr == POST_OK ? NULL : why, &dead, &lost, err);
		if (rc == TG_OK && lost)
			tg_log_warn("webhook event %s (%s): its claim ran out "
			            "during the attempt; another sender has it",
			            r.event_id, r.event);
		else if (rc == TG_OK && pr == POST_OK)
			st->delivered++;
		else if (rc == TG_OK && dead)
			tg_log_error("webhook event %s (%s) given up after %ld "
			             "attempts: %s",
			             r.event_id, r.event, r.attempts + 1, why);
		else if (rc == TG_OK)
			tg_log_warn("webhook event %s (%s) not delivered, will "
			            "retry: %s",
			            r.event_id, r.event, why);
		if (rc == TG_OK && !lost && pr != POST_OK) {
			if (dead)
				st->dead++;
			else
				st->failed++;
		}
		row_free(&r);
		if (rc != TG_OK || (pr != POST_OK && stop_on_failure))
			break;
	}
	return rc;
}

enum tg_rc
tg_outbox_prune(struct tg_db *db, const struct tg_alerting *a, int *pruned,
                struct tg_err *err)
{
	struct tg_db_param p[1];
	uint64_t n = 0, m = 0;
	enum tg_rc rc;

	if (pruned != NULL)
		*pruned = 0;
	p[0] = tg_db_int(a->retention_s);
	rc = tg_db_run(db,
	               "DELETE FROM webhook_outbox WHERE status = 'delivered'"
	               " AND delivered_at < UTC_TIMESTAMP(6) - INTERVAL ?"
	               " SECOND LIMIT 1000",
	               p, 1, &n, err);
	if (rc != TG_OK)
		return rc;
	/* A mark of a period that ended long ago guards nothing. */
	rc = tg_db_run(db,
	               "DELETE FROM alert_marks WHERE period <> '' AND"
	               " period < DATE_FORMAT(UTC_TIMESTAMP(6) - INTERVAL ?"
	               " SECOND, '%Y-%m-%d %H:%i:%s.%f') LIMIT 1000",
	               p, 1, &m, err);
	if (rc == TG_OK && pruned != NULL)
		*pruned = (int)n;
	return rc;
}

enum tg_rc
tg_outbox_counts(struct tg_db *db, long *pending, long *dead,
                 struct tg_err *err)
{
	struct tg_db_result res;
	long p = 0, d = 0;
	enum tg_rc rc;

	rc = tg_db_exec(db,
	                "SELECT status, COUNT(*) FROM webhook_outbox WHERE"
	                " status IN ('pending', 'dead') GROUP BY status",
	                NULL, 0, &res, err);
	if (rc != TG_OK)
		return rc;
	for (size_t i = 0; i < res.nrows; i++) {
		const char *s = tg_db_cell(&res, i, 0);
		const char *c = tg_db_cell(&res, i, 1);
		long v = c != NULL ? strtol(c, NULL, 10) : 0;

		if (s != NULL && strcmp(s, "pending") == 0)
			p = v;
		else if (s != NULL && strcmp(s, "dead") == 0)
			d = v;
	}
	tg_db_result_free(&res);
	*pending = p;
	*dead = d;
	return TG_OK;
}

enum tg_rc
tg_outbox_requeue_dead(struct tg_db *db, long *requeued, struct tg_err *err)
{
	uint64_t n = 0;
	enum tg_rc rc;

	rc = tg_db_run(db,
	               "UPDATE webhook_outbox SET status = 'pending',"
	               " next_attempt_at = UTC_TIMESTAMP(6), retry_since ="
	               " UTC_TIMESTAMP(6) WHERE status = 'dead'",
	               NULL, 0, &n, err);
	if (rc == TG_OK && requeued != NULL)
		*requeued = (long)n;
	return rc;
}
