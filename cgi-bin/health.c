/*
 * health: liveness and readiness probes (no key needed), and the answer
 * for any path no other program serves (the web server sends unknown
 * paths here, and the front line answers 404 in the envelope).
 * Readiness says "db": "connected" or "unreachable"; why it is unreachable
 * goes to the error log, and to the master key as "db_error".
 */
#include <stdio.h>

#include "app.h"
#include "log.h"
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

static const struct tg_route routes[] = {
        {"/health/liveliness", "GET", TG_AUTH_NONE, TG_BODY_NONE, NULL, 0,
         liveliness},
        {"/health/liveness", "GET", TG_AUTH_NONE, TG_BODY_NONE, NULL, 0,
         liveliness},
        {"/health/readiness", "GET", TG_AUTH_NONE, TG_BODY_NONE, NULL, 0,
         readiness},
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
