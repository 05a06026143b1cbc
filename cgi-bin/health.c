/*
 * health: liveness and readiness probes (no key needed), /metrics for a
 * Prometheus server (SPEC 15), and the answer for any path no other
 * program serves (the web server sends unknown paths here, and the front
 * line answers 404 in the envelope).
 * Readiness says "db": "connected" or "unreachable"; why it is unreachable
 * goes to the error log, and to the master key as "db_error".
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "spool.h"

static enum tg_rc
liveliness(struct tg_req *req, struct tg_err *err)
{
	(void)err;
	tg_req_respond_json(req, 200, json_object_new_string("I'm alive!"));
	return TG_OK;
}

static enum tg_rc
readiness(struct tg_req *req, struct tg_err *err)
{
	struct json_object *o = json_object_new_object();
	struct tg_db *db;
	enum tg_rc rc = TG_ERR_CONFIG;

	if (tg_req_config(req) == NULL)
		tg_err_set(err, TG_ERR_CONFIG, NULL,
		           "Configuration error: see the server's error log");
	else if ((rc = tg_req_db(req, &db, err)) == TG_OK)
		rc = tg_db_ping(db, err);
	json_object_object_add(
	        o, "status",
	        json_object_new_string(rc == TG_OK ? "healthy" : "unhealthy"));
	/* Only the master key is told why: the database's own words can
	 * name its host and user.  The error log always has them. */
	json_object_object_add(o, "db",
	                       json_object_new_string(rc == TG_OK
	                                                      ? "connected"
	                                                      : "unreachable"));
	if (rc != TG_OK) {
		tg_log_warn("readiness: the database is unreachable: %s",
		            err->message);
		if (tg_req_master(req))
			json_object_object_add(
			        o, "db_error",
			        json_object_new_string(err->message));
	}
	/* Settlements waiting on this machine for the database (SPEC 4.4),
	 * and those it refused, for the operator. */
	if (tg_req_config(req) != NULL) {
		long pending, failed;

		if (tg_spool_count(tg_spool_dir(tg_req_config(req)), &pending,
		                   &failed)) {
			json_object_object_add(o, "spool",
			                       json_object_new_int64(pending));
			json_object_object_add(o, "spool_failed",
			                       json_object_new_int64(failed));
		} else {
			json_object_object_add(
			        o, "spool",
			        json_object_new_string("unreadable"));
		}
	}
	/* Webhook events waiting for their receiver, and those given up
	 * after retrying for webhook_retry_for (SPEC 9). */
	if (rc == TG_OK && (tg_req_config(req)->alerting.webhook_url != NULL ||
	                    tg_req_config(req)->alerting.slack_url != NULL)) {
		long pending, dead;
		struct tg_err oerr;

		tg_err_clear(&oerr);
		if (tg_outbox_counts(db, &pending, &dead, &oerr) == TG_OK) {
			json_object_object_add(o, "webhook_pending",
			                       json_object_new_int64(pending));
			json_object_object_add(o, "webhook_dead",
			                       json_object_new_int64(dead));
		}
	}
	tg_req_respond_json(req, rc == TG_OK ? 200 : 503, o);
	return TG_OK;
}

/* Prometheus' text format, version 0.0.4. */
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* A page of accounts is ready: the answer is streamed from the first. */
static bool
metrics_flush(struct tg_buf *out, void *arg)
{
	return tg_req_stream_buf(arg, METRICS_TYPE, out);
}

/*
 * GET /metrics (SPEC 15): for the master key or tollgate_settings'
 * metrics_key.  Whole, unless it lists every customer and key
 * (metrics_per_customer): then streamed page by page, and an error after
 * the first page ends it with a comment saying so.
 */
static enum tg_rc
metrics(struct tg_req *req, struct tg_err *err)
{
	const struct tg_config *cfg = tg_req_config(req);
	struct tg_metrics_node node;
	struct tg_buf out = {NULL, 0};
	struct tg_db *db;
	enum tg_rc rc;

	if (cfg == NULL)
		return tg_err_set(err, TG_ERR_CONFIG, NULL,
		                  "Configuration error: see the server's error "
		                  "log");
	if (!tg_req_master(req) && !tg_req_presents(req, cfg->metrics_key))
		return tg_err_set(err, TG_ERR_AUTH, NULL,
		                  "Authentication Error: /metrics needs the "
		                  "master key or metrics_key");
	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	memset(&node, 0, sizeof(node));
	node.spool_read = tg_spool_count(tg_spool_dir(cfg), &node.spool_pending,
	                                 &node.spool_failed);
	rc = tg_metrics_exposition(db, cfg->metrics_per_customer,
	                           cfg->max_end_user_budget_id, &node, &out,
	                           metrics_flush, req, err);
	if (rc != TG_OK && tg_req_responded(req)) {
		static const char cut[] = "# error: the answer was cut short "
		                          "(see the server's error log)\n";

		tg_log_error("/metrics: %s", err->message);
		tg_req_stream_write(req, cut, sizeof(cut) - 1);
		rc = TG_OK;
	} else if (rc == TG_OK && tg_req_responded(req)) {
		metrics_flush(&out, req);
	} else if (rc == TG_OK) {
		tg_req_respond_body(req, 200, METRICS_TYPE,
		                    out.p != NULL ? out.p : "", out.len);
	}
	tg_buf_free(&out);
	return rc;
}

static const struct tg_route routes[] = {
        {"/health/liveliness", "GET", TG_AUTH_NONE, TG_BODY_NONE, NULL, 0,
         liveliness},
        {"/health/liveness", "GET", TG_AUTH_NONE, TG_BODY_NONE, NULL, 0,
         liveliness},
        {"/health/readiness", "GET", TG_AUTH_NONE, TG_BODY_NONE, NULL, 0,
         readiness},
        {"/metrics", "GET", TG_AUTH_NONE, TG_BODY_NONE, NULL, 0, metrics},
};

static const struct tg_program program = {.name = "health",
                                          .routes = routes,
                                          .nroutes = sizeof(routes) /
                                                     sizeof(routes[0])};

int
main(void)
{
	return tg_app_main(&program);
}
