/*
 * spool: settlements kept on local disk until the database takes them
 * (SPEC 4.4).  See spool.h for the contract.
 *
 * Layout: one file per settlement, "<request id>.json", a JSON object with
 * the account, the ledger row and the hold.  It is written as
 * ".tmp-<request id>", fsync'd, renamed into place and the directory
 * fsync'd, so a crash leaves either no file or a whole one (a stale .tmp-
 * file is a settlement that was never acknowledged: its request got a 503,
 * or its process died, and its hold is reclaimed).  ".lock" serialises
 * replays across processes (flock, never waited for).
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "log.h"
#include "money.h"
#include "spool.h"
#include "util.h"

#define SPOOL_FILE_MAX (1024 * 1024)
#define SUFFIX         ".json"
#define FAILED_SUFFIX  ".json.failed"

/* What the last replay of this process saw: the directory's mtime when it
 * left it empty.  Another process's spooling changes the mtime. */
static struct timespec spool_empty_mtime;
static bool spool_empty_known;

const char *
tg_spool_dir(const struct tg_config *cfg)
{
	static const struct tg_config *cached_for;
	static char path[4096];
	const char *env = getenv("TOLLGATE_SPOOL_DIR");
	const char *base = TG_LOCALSTATEDIR "/spool/tollgate";
	char hash[65];

	if (cfg != NULL && cfg == cached_for)
		return path;
	if (cfg != NULL && cfg->spool_dir != NULL)
		base = cfg->spool_dir;
	else if (env != NULL && env[0] != '\0')
		base = env;
	/* One subdirectory per database: two deployments sharing a spool
	 * directory (staging and production) never replay into each
	 * other's ledger. */
	if (cfg == NULL || cfg->database_url == NULL) {
		snprintf(path, sizeof(path), "%s", base);
	} else {
		tg_sha256_hex(cfg->database_url, strlen(cfg->database_url),
		              hash);
		snprintf(path, sizeof(path), "%s/db-%.16s", base, hash);
	}
	cached_for = cfg;
	return path;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && strcmp(s + n - m, suffix) == 0;
}

static void
add_str(struct json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, v ? json_object_new_string(v) : NULL);
}

static void
add_money(struct json_object *o, const char *key, tg_money v)
{
	char text[TG_MONEY_STRLEN];

	tg_money_format(v, text, sizeof(text));
	json_object_object_add(o, key, json_object_new_string(text));
}

static struct json_object *
to_json(const struct tg_ledger_account *acct, const struct tg_ledger_entry *e,
        const struct tg_reservation *r)
{
	struct json_object *o = json_object_new_object();
	struct json_object *a = json_object_new_object();
	struct json_object *row = json_object_new_object();

	add_str(a, "user_id", acct ? acct->user_id : NULL);
	add_str(a, "budget_id", acct ? acct->budget_id : NULL);
	add_str(a, "budget_duration", acct ? acct->budget_duration : NULL);
	/* The virtual key, if one was used: charged with the customer. */
	add_str(a, "key_token", acct ? acct->key_token : NULL);
	add_str(a, "key_alias", acct ? acct->key_alias : NULL);
	add_str(a, "key_budget_duration",
	        acct ? acct->key_budget_duration : NULL);
	json_object_object_add(o, "account", a);

	add_str(row, "request_id", e->request_id);
	add_str(row, "end_user", e->end_user);
	add_str(row, "model", e->model);
	add_str(row, "model_id", e->model_id);
	add_str(row, "api_key", e->api_key_hash);
	add_str(row, "call_type", e->call_type);
	add_str(row, "api_base", e->api_base);
	json_object_object_add(row, "success",
	                       json_object_new_boolean(e->success));
	add_money(row, "spend", e->spend);
	json_object_object_add(row, "prompt_tokens",
	                       json_object_new_int64(e->prompt_tokens));
	json_object_object_add(row, "completion_tokens",
	                       json_object_new_int64(e->completion_tokens));
	json_object_object_add(row, "total_tokens",
	                       json_object_new_int64(e->total_tokens));
	json_object_object_add(row, "start_us",
	                       json_object_new_int64(e->start_us));
	json_object_object_add(row, "end_us", json_object_new_int64(e->end_us));
	add_str(row, "metadata", e->metadata);
	if (e->ntags > 0) {
		struct json_object *tags = json_object_new_array();

		for (size_t i = 0; i < e->ntags; i++)
			json_object_array_add(
			        tags, json_object_new_string(e->tags[i]));
		json_object_object_add(row, "tags", tags);
	}
	json_object_object_add(o, "entry", row);

	if (r != NULL && r->held) {
		struct json_object *h = json_object_new_object();

		add_str(h, "request_id", r->request_id);
		/* Against a lease (lib/lease.c): the row it comes off. */
		if (r->lease_id[0] != '\0')
			add_str(h, "lease_id", r->lease_id);
		add_str(h, "user_id", r->user_id);
		add_str(h, "key_token", r->key_token[0] ? r->key_token : NULL);
		add_money(h, "amount", r->amount);
		json_object_object_add(h, "budgeted",
		                       json_object_new_boolean(r->budgeted));
		json_object_object_add(
		        h, "key_budgeted",
		        json_object_new_boolean(r->key_budgeted));
		/* Only when there is something to say: a file without it
		 * is read as a hold on no model_spend row. */
		if (r->model_accounts != 0)
			json_object_object_add(
			        h, "model_accounts",
			        json_object_new_int64(r->model_accounts));
		/* The tags it was held from, as the reservations row says
		 * them ({"<name>": flags}; none: absent), or that its row
		 * is to say them (the admission's answer was lost). */
		if (r->tags_unknown)
			json_object_object_add(h, "tags_unknown",
			                       json_object_new_boolean(1));
		if (r->ntags > 0) {
			char *tags = tg_ledger_tags_text(r);

			json_object_object_add(h, "tags",
			                       json_tokener_parse(tags));
			free(tags);
		}
		json_object_object_add(o, "hold", h);
	}
	return o;
}

/* A request id as a file name: ours are UUIDs; anything else is refused
 * rather than trusted with a path. */
static bool
safe_name(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= 'A' && ch <= 'Z') || ch == '-' || ch == '_'))
			return false;
	}
	return true;
}

enum tg_rc
tg_spool_write(const char *dir, const struct tg_ledger_account *acct,
               const struct tg_ledger_entry *e, const struct tg_reservation *r,
               struct tg_err *err)
{
	char tmp[4200], final[4200];
	struct json_object *o;
	const char *text;
	size_t len;
	int fd = -1, saved;
	enum tg_rc rc = TG_OK;

	if (dir == NULL || dir[0] == '\0')
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "no spool directory configured");
	if (e->request_id == NULL || !safe_name(e->request_id))
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "request id unfit for a spool file name");
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", dir,
	                     e->request_id) >= sizeof(tmp) ||
	    (size_t)snprintf(final, sizeof(final), "%s/%s" SUFFIX, dir,
	                     e->request_id) >= sizeof(final))
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "spool directory path too long");
	if (tg_make_dirs(dir) != 0)
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "spool directory %s: %s", dir,
		                  strerror(errno));

	o = to_json(acct, e, r);
	text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN,
	                                         &len);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || tg_write_all(fd, text, len) != 0 ||
	    tg_write_all(fd, "\n", 1) != 0 || fsync(fd) != 0) {
		saved = errno;
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "spool write %s: %s", tmp, strerror(saved));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		saved = errno;
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "spool write %s: %s", tmp, strerror(saved));
		goto out;
	}
	fd = -1;
	if (rename(tmp, final) != 0) {
		saved = errno;
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "spool rename %s: %s", final, strerror(saved));
		goto out;
	}
	if (tg_fsync_dir(dir) != 0) {
		/* Not durable: take it back, so that a failure reported to the
		 * client is not a charge replayed later. */
		saved = errno;
		unlink(final);
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "spool fsync %s: %s", dir, strerror(saved));
		goto out;
	}
out:
	if (fd >= 0)
		close(fd);
	if (rc != TG_OK)
		unlink(tmp);
	json_object_put(o);
	return rc;
}

bool
tg_spool_maybe_pending(const char *dir)
{
	struct stat st;

	if (dir == NULL || stat(dir, &st) != 0)
		return false;
	return !spool_empty_known ||
	       st.st_mtim.tv_sec != spool_empty_mtime.tv_sec ||
	       st.st_mtim.tv_nsec != spool_empty_mtime.tv_nsec;
}

static const char *
get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static bool
get_money(struct json_object *o, const char *key, tg_money *out)
{
	const char *s = get_str(o, key);

	return s != NULL && tg_money_parse(s, out);
}

static int64_t
get_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	return json_object_get_int64(v);
}

static bool
get_bool(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) &&
	       json_object_get_boolean(v);
}

/*
 * Remember dir as empty if it is: the mtime is read before the count and
 * checked after it, so a file spooled meanwhile is not missed.
 */
static void
note_empty(const char *dir)
{
	struct stat st1, st2;
	long pending, failed;

	spool_empty_known = false;
	if (stat(dir, &st1) != 0 || !tg_spool_count(dir, &pending, &failed) ||
	    pending != 0 || stat(dir, &st2) != 0)
		return;
	/* Directory times come from a coarse clock: a file renamed in within
	 * the same tick would leave the mtime as it is.  Only a directory
	 * quiet for a while is remembered as empty. */
	if (st2.st_mtim.tv_sec + 2 > time(NULL))
		return;
	if (st1.st_mtim.tv_sec == st2.st_mtim.tv_sec &&
	    st1.st_mtim.tv_nsec == st2.st_mtim.tv_nsec) {
		spool_empty_mtime = st2.st_mtim;
		spool_empty_known = true;
	}
}

/* Read a whole spool file (NULL when it cannot be, or is too large). */
static char *
read_file(int dirfd, const char *name, size_t *len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	size_t n = 0;
	struct stat st;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || st.st_size < 0 ||
	    st.st_size > SPOOL_FILE_MAX)
		goto out;
	buf = tg_xmalloc((size_t)st.st_size + 1);
	while (n < (size_t)st.st_size) {
		ssize_t got = read(fd, buf + n, (size_t)st.st_size - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	buf[n] = '\0';
	*len = n;
out:
	close(fd);
	return buf;
}

char *
tg_spool_encode(const struct tg_ledger_account *acct,
                const struct tg_ledger_entry *e, const struct tg_reservation *r,
                size_t *len)
{
	struct json_object *o = to_json(acct, e, r);
	const char *text;
	char *out;

	text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN,
	                                         len);
	out = tg_xmalloc(*len + 1);
	memcpy(out, text, *len + 1);
	json_object_put(o);
	return out;
}

void
tg_spool_record_free(struct tg_spool_record *rec)
{
	json_object_put(rec->o);
	rec->o = NULL;
}

enum tg_rc
tg_spool_decode(const char *text, const struct tg_alerting *alerts,
                struct tg_spool_record *rec, struct tg_err *err)
{
	struct json_object *o, *a, *row, *h, *tags;
	const char **names = rec->names;
	struct tg_ledger_account acct;
	struct tg_ledger_entry e;
	struct tg_reservation r;

	memset(rec, 0, sizeof(*rec));
	names = rec->names;
	o = json_tokener_parse(text);
	if (o == NULL || !json_object_object_get_ex(o, "account", &a) ||
	    !json_object_object_get_ex(o, "entry", &row) ||
	    !json_object_is_type(row, json_type_object)) {
		json_object_put(o);
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "malformed spool file");
	}
	memset(&acct, 0, sizeof(acct));
	memset(&e, 0, sizeof(e));
	memset(&r, 0, sizeof(r));
	acct.user_id = get_str(a, "user_id");
	acct.budget_id = get_str(a, "budget_id");
	acct.budget_duration = get_str(a, "budget_duration");
	acct.key_token = get_str(a, "key_token");
	acct.key_alias = get_str(a, "key_alias");
	acct.key_budget_duration = get_str(a, "key_budget_duration");
	acct.alerts = alerts;
	e.request_id = get_str(row, "request_id");
	e.end_user = get_str(row, "end_user");
	e.model = get_str(row, "model");
	e.model_id = get_str(row, "model_id");
	e.api_key_hash = get_str(row, "api_key");
	e.call_type = get_str(row, "call_type");
	e.api_base = get_str(row, "api_base");
	e.success = get_bool(row, "success");
	e.prompt_tokens = get_int(row, "prompt_tokens");
	e.completion_tokens = get_int(row, "completion_tokens");
	e.total_tokens = get_int(row, "total_tokens");
	e.start_us = get_int(row, "start_us");
	e.end_us = get_int(row, "end_us");
	e.metadata = get_str(row, "metadata");
	if (json_object_object_get_ex(row, "tags", &tags)) {
		if (!json_object_is_type(tags, json_type_array) ||
		    json_object_array_length(tags) > TG_TAG_MAX) {
			json_object_put(o);
			return tg_err_set(err, TG_ERR_INTERNAL, NULL,
			                  "malformed spool file");
		}
		for (size_t i = 0; i < json_object_array_length(tags); i++) {
			struct json_object *t =
			        json_object_array_get_idx(tags, i);

			if (!json_object_is_type(t, json_type_string)) {
				json_object_put(o);
				return tg_err_set(err, TG_ERR_INTERNAL, NULL,
				                  "malformed spool file");
			}
			names[e.ntags++] = json_object_get_string(t);
		}
		e.tags = names;
	}
	if (e.request_id == NULL || !get_money(row, "spend", &e.spend)) {
		json_object_put(o);
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "malformed spool file");
	}
	if (json_object_object_get_ex(o, "hold", &h) &&
	    json_object_is_type(h, json_type_object)) {
		const char *rid = get_str(h, "request_id");
		const char *uid = get_str(h, "user_id");

		if (rid == NULL || uid == NULL ||
		    !get_money(h, "amount", &r.amount)) {
			json_object_put(o);
			return tg_err_set(err, TG_ERR_INTERNAL, NULL,
			                  "malformed spool file");
		}
		r.held = true;
		r.budgeted = get_bool(h, "budgeted");
		r.key_budgeted = get_bool(h, "key_budgeted");
		r.model_accounts = (unsigned)get_int(h, "model_accounts") &
		                   (TG_HOLD_MODEL(TG_ACCOUNT_CUSTOMER) |
		                    TG_HOLD_MODEL(TG_ACCOUNT_KEY));
		tg_strlcpy(r.request_id, sizeof(r.request_id), rid);
		tg_strlcpy(r.lease_id, sizeof(r.lease_id),
		           get_str(h, "lease_id"));
		tg_strlcpy(r.user_id, sizeof(r.user_id), uid);
		tg_strlcpy(r.key_token, sizeof(r.key_token),
		           get_str(h, "key_token"));
		r.tags_unknown = get_bool(h, "tags_unknown");
		if (json_object_object_get_ex(h, "tags", &tags) &&
		    !tg_ledger_tags_parse(json_object_to_json_string_ext(
		                                  tags, JSON_C_TO_STRING_PLAIN),
		                          &r)) {
			json_object_put(o);
			return tg_err_set(err, TG_ERR_INTERNAL, NULL,
			                  "malformed spool file");
		}
	}
	rec->o = o;
	rec->acct = acct;
	rec->e = e;
	rec->r = r;
	if (rec->e.ntags > 0)
		rec->e.tags = rec->names;
	return TG_OK;
}

/*
 * Settle one spooled file.  TG_OK: settled (or settled before).
 * TG_ERR_DB with tg_db_unavailable(): try again later.  Anything else: the
 * file cannot be settled as it is.
 */
static enum tg_rc
replay_one(struct tg_db *db, const struct tg_alerting *alerts, const char *text,
           struct tg_err *err)
{
	struct tg_spool_record rec;
	enum tg_rc rc;

	if ((rc = tg_spool_decode(text, alerts, &rec, err)) != TG_OK)
		return rc;
	rc = tg_ledger_settle(db, &rec.acct, &rec.e, &rec.r, NULL, err);
	tg_spool_record_free(&rec);
	return rc;
}

enum tg_rc
tg_spool_replay(struct tg_db *db, const char *dir,
                const struct tg_alerting *alerts, int64_t budget_us,
                int *replayed, struct tg_err *err)
{
	char lockpath[4200];
	int64_t deadline = tg_now_us() + budget_us;
	struct stat st;
	struct dirent *de;
	DIR *d = NULL;
	int lockfd = -1, dirfd_ = -1, count = 0;
	bool left = false;
	enum tg_rc rc = TG_OK;

	if (dir == NULL || stat(dir, &st) != 0)
		goto out; /* nothing was ever spooled here */
	if ((size_t)snprintf(lockpath, sizeof(lockpath), "%s/.lock", dir) >=
	    sizeof(lockpath))
		goto out;
	lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lockfd < 0) {
		tg_log_warn("spool %s: cannot open the lock: %s", dir,
		            strerror(errno));
		goto out;
	}
	if (flock(lockfd, LOCK_EX | LOCK_NB) != 0)
		goto out; /* another process is replaying */
	d = opendir(dir);
	if (d == NULL)
		goto out;
	dirfd_ = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		char *text;
		size_t len = 0;
		struct tg_err ferr;
		enum tg_rc frc;

		if (de->d_name[0] == '.' || !ends_with(de->d_name, SUFFIX))
			continue;
		if (count > 0 && tg_now_us() >= deadline) {
			left = true;
			break;
		}
		text = read_file(dirfd_, de->d_name, &len);
		if (text == NULL) {
			tg_log_error("spool %s/%s: cannot read it: %s", dir,
			             de->d_name, strerror(errno));
			left = true;
			continue;
		}
		tg_err_clear(&ferr);
		frc = replay_one(db, alerts, text, &ferr);
		free(text);
		if (frc == TG_ERR_DB && tg_db_unavailable(db)) {
			*err = ferr;
			rc = TG_ERR_DB;
			left = true;
			break;
		}
		if (frc != TG_OK) {
			char failed[600];

			snprintf(failed, sizeof(failed), "%.*s" FAILED_SUFFIX,
			         (int)(strlen(de->d_name) - strlen(SUFFIX)),
			         de->d_name);
			tg_log_error("spool %s/%s cannot be settled (%s); "
			             "kept as %s for the operator",
			             dir, de->d_name, ferr.message, failed);
			if (renameat(dirfd_, de->d_name, dirfd_, failed) != 0)
				left = true;
			continue;
		}
		if (unlinkat(dirfd_, de->d_name, 0) != 0) {
			/* Settled, and a replay of it again is a no-op. */
			left = true;
			continue;
		}
		count++;
	}
	if (count > 0)
		fsync(dirfd_);
	if (!left)
		note_empty(dir);
out:
	if (d != NULL)
		closedir(d);
	if (lockfd >= 0)
		close(lockfd); /* releases the flock */
	if (replayed != NULL)
		*replayed = count;
	return rc;
}

bool
tg_spool_count(const char *dir, long *pending, long *failed)
{
	struct dirent *de;
	DIR *d;

	*pending = *failed = 0;
	if (dir == NULL)
		return true;
	d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (ends_with(de->d_name, FAILED_SUFFIX))
			(*failed)++;
		else if (ends_with(de->d_name, SUFFIX))
			(*pending)++;
	}
	closedir(d);
	return true;
}
