/*
 * tollgate-deliver: send the webhook events waiting in the outbox (SPEC 9).
 *
 *   tollgate-deliver [--config FILE] [--once | --interval S]
 *                    [--requeue-dead] [--quiet]
 *
 * The FastCGI programs deliver events after their responses; a server with
 * no traffic has no process running to do it, and a receiver that was down
 * needs its retries sent when they come due.  Run this from cron on shared
 * hosting (--once, every minute) or as a service (the default loop, every
 * --interval seconds, 2 unless given), e.g. under a systemd timer or unit.
 * Any number may run at once, on any machine: each claims rows atomically.
 *
 * The config is --config, else TOLLGATE_CONFIG, else
 * $sysconfdir/tollgate/config.yaml; it must name alerting targets (with
 * WEBHOOK_URL / SLACK_WEBHOOK_URL in the environment, as the programs get
 * them); without any there is nothing to deliver and it exits at once
 * with status 0.  --requeue-dead makes events given up as dead pending
 * again, due now, and then delivers as usual.  SIGTERM or SIGINT ends the loop
 * after the attempt in flight.  Exit status: 0, or 1 when the config or the
 * database failed, 2 for a bad command line.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "outbox.h"
#include "util.h"

/* Delivered events are pruned this often by the loop (microseconds). */
#define PRUNE_EVERY_US (3600 * 1000000LL)

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: tollgate-deliver [--config FILE] [--once | "
	           "--interval SECONDS] [--requeue-dead] [--quiet]\n");
}

/* Sleep s seconds, or less when a signal comes. */
static void
nap(long s)
{
	struct timespec ts = {s, 0};

	while (!stop && nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/*
 * One round: everything due, one attempt at a time (a SIGTERM is seen
 * between two), until the receiver fails or nothing is due.  false on a
 * database failure.
 */
static bool
round_once(struct tg_db *db, const struct tg_alerting *a, bool quiet)
{
	struct tg_outbox_stats st, total;
	struct tg_err err;

	memset(&total, 0, sizeof(total));
	while (!stop) {
		tg_err_clear(&err);
		if (tg_outbox_deliver(db, a, 0, 1, true, &st, &err) != TG_OK) {
			fprintf(stderr, "tollgate-deliver: %s\n", err.message);
			return false;
		}
		total.delivered += st.delivered;
		total.failed += st.failed;
		total.dead += st.dead;
		if (st.delivered == 0)
			break; /* none due, or the receiver failed */
	}
	if (!quiet && (total.delivered || total.failed || total.dead))
		printf("delivered %d, failed %d (will retry), given up %d\n",
		       total.delivered, total.failed, total.dead);
	fflush(stdout);
	return true;
}

int
main(int argc, char **argv)
{
	const char *config_path = NULL;
	struct tg_config *cfg = NULL;
	struct tg_db *db = NULL;
	struct tg_err err;
	struct sigaction sa;
	char fallback[512];
	bool once = false, quiet = false, requeue = false;
	long interval = 2, pending = 0, dead = 0;
	int64_t pruned_at = 0;
	int status = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		char *end;

		if (strcmp(a, "--once") == 0) {
			once = true;
		} else if (strcmp(a, "--quiet") == 0) {
			quiet = true;
		} else if (strcmp(a, "--requeue-dead") == 0) {
			requeue = true;
		} else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
			config_path = argv[++i];
		} else if (strcmp(a, "--interval") == 0 && i + 1 < argc) {
			errno = 0;
			interval = strtol(argv[++i], &end, 10);
			if (errno != 0 || *end != '\0' || interval < 1 ||
			    interval > 86400) {
				fprintf(stderr, "tollgate-deliver: --interval "
				                "takes 1 to 86400 seconds\n");
				return 2;
			}
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	tg_log_init("tollgate-deliver");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	config_path = tg_config_path(config_path, fallback, sizeof(fallback));
	tg_err_clear(&err);
	if (tg_config_load(config_path, tg_config_default_prices(), &cfg,
	                   &err) != TG_OK) {
		fprintf(stderr, "tollgate-deliver: %s\n", err.message);
		return 1;
	}
	if (cfg->alerting.webhook_url == NULL &&
	    cfg->alerting.slack_url == NULL) {
		/* Not an error: nothing is ever written to deliver. */
		if (!quiet)
			printf("tollgate-deliver: %s names no alerting target "
			       "(general_settings.alerting: [\"webhook\"] with "
			       "WEBHOOK_URL, or \"slack\" with "
			       "SLACK_WEBHOOK_URL); nothing to deliver\n",
			       config_path);
		status = 0;
		goto out;
	}
	if (cfg->database_url == NULL) {
		fprintf(stderr,
		        "tollgate-deliver: no database_url in %s nor "
		        "DATABASE_URL\n",
		        config_path);
		goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "tollgate-deliver: cannot start libcurl\n");
		goto out;
	}
	if (tg_db_open(cfg->database_url, &db, &err) != TG_OK) {
		fprintf(stderr, "tollgate-deliver: %s\n", err.message);
		goto out;
	}
	if (requeue) {
		long n = 0;

		if (tg_outbox_requeue_dead(db, &n, &err) != TG_OK) {
			fprintf(stderr, "tollgate-deliver: %s\n", err.message);
			goto out;
		}
		if (!quiet)
			printf("requeued %ld dead events\n", n);
	}

	status = 0;
	while (!stop) {
		if (!round_once(db, &cfg->alerting, quiet)) {
			status = 1;
			if (once)
				break;
		}
		if (tg_now_us() - pruned_at >= PRUNE_EVERY_US || once) {
			int n = 0;

			tg_err_clear(&err);
			if (tg_outbox_prune(db, &cfg->alerting, &n, &err) !=
			    TG_OK)
				fprintf(stderr,
				        "tollgate-deliver: pruning: %s\n",
				        err.message);
			pruned_at = tg_now_us();
		}
		if (once)
			break;
		nap(interval);
	}
	if (once && !quiet &&
	    tg_outbox_counts(db, &pending, &dead, &err) == TG_OK)
		printf("%ld events pending, %ld dead\n", pending, dead);
out:
	tg_outbox_cleanup();
	if (db != NULL)
		tg_db_close(db);
	tg_config_free(cfg);
	return status;
}
