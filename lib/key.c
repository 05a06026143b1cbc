/*
 * key: virtual keys (SPEC 13); see key.h.
 *
 * A call with a virtual key costs one more query than one with the master
 * key: the key's row joined with its budget, by the token's primary key
 * (plus, when a budget period has ended, the reset and a reread, as for
 * customers).  Expiry is judged by the database's clock, the one clock
 * every web node shares.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "account.h"
#include "customer.h"
#include "fields.h"
#include "jsonx.h"
#include "key.h"
#include "period.h"
#include "util.h"

/* The last second a DATETIME column holds: 9999-12-31 23:59:59 UTC. */
#define DATETIME_MAX 253402300799LL

#define KEY_NCOLUMNS 16

/* The key and its budget; the budget columns start at KEY_NCOLUMNS. */
#define LOAD_COLUMNS                                                           \
	"k.token, k.key_name, k.key_alias, k.expires, k.models, k.metadata,"   \
	" k.blocked, k.spend, k.reserved, k.spend_reset_at, k.budget_id,"      \
	" k.created_at, k.created_by, k.updated_at,"                           \
	" (k.expires IS NOT NULL AND k.expires <= UTC_TIMESTAMP(6)),"          \
	" DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %T'), " TG_BUDGET_COLUMNS
#define LOAD_FROM                                                              \
	" FROM api_keys k LEFT JOIN budgets b ON b.budget_id = k.budget_id"
/* And the aliases (sql/013), after the budget's columns. */
#define LOAD_ALIASES   ", k.aliases"
#define ALIASES_COLUMN (KEY_NCOLUMNS + TG_BUDGET_NCOLUMNS)
/* 1054: no such column (a schema before sql/013). */
#define NO_ALIASES_YET(db) (tg_db_errno(db) == 1054)

void
tg_key_new_secret(char out[TG_KEY_NEW_LEN])
{
	unsigned char r[TG_KEY_RANDOM_BYTES];

	tg_random_bytes(r, sizeof(r));
	memcpy(out, "sk-", 3);
	tg_base64url(r, sizeof(r), out + 3);
}

bool
tg_key_valid_chosen(const char *key)
{
	size_t n = strlen(key);

	if (n <= 3 || n > TG_KEY_MAX || strncmp(key, "sk-", 3) != 0)
		return false;
	for (size_t i = 3; i < n; i++)
		if ((unsigned char)key[i] <= 0x20 ||
		    (unsigned char)key[i] >= 0x7f)
			return false;
	return true;
}

void
tg_key_name(const char *key, char out[TG_KEY_NAME_LEN])
{
	size_t n = strlen(key);

	snprintf(out, TG_KEY_NAME_LEN, "sk-...%s", n > 4 ? key + n - 4 : key);
}

bool
tg_key_token_of(const char *v, char out[65])
{
	size_t n = strlen(v);

	if (strncmp(v, "sk-", 3) == 0) {
		tg_sha256_hex(v, n, out);
		return true;
	}
	if (n != 64)
		return false;
	for (size_t i = 0; i < 64; i++) {
		if (tg_hexval((unsigned char)v[i]) < 0)
			return false;
		out[i] = (char)tolower((unsigned char)v[i]);
	}
	out[64] = '\0';
	return true;
}

bool
tg_key_allows_model(const struct tg_key *k, const char *model)
{
	size_t n = k->models != NULL ? json_object_array_length(k->models) : 0;

	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++) {
		const char *m = json_object_get_string(
		        json_object_array_get_idx(k->models, i));
		if (m != NULL && (strcmp(m, model) == 0 ||
		                  strcmp(m, "all-proxy-models") == 0))
			return true;
	}
	return false;
}

enum tg_rc
tg_key_check_models(struct json_object *models, struct tg_err *err)
{
	if (!json_object_is_type(models, json_type_array))
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "models",
		                  "models must be a list of model names");
	for (size_t i = 0; i < json_object_array_length(models); i++) {
		struct json_object *e = json_object_array_get_idx(models, i);
		if (!json_object_is_type(e, json_type_string) ||
		    !tg_id_valid(json_object_get_string(e),
		                 (size_t)json_object_get_string_len(e)) ||
		    memchr(json_object_get_string(e), '\0',
		           (size_t)json_object_get_string_len(e)) != NULL)
			return tg_err_set(
			        err, TG_ERR_UNPROCESSABLE, "models",
			        "models must be a list of model names");
	}
	return TG_OK;
}

const char *
tg_key_model_of(const struct tg_key *k, const char *model)
{
	struct json_object *v;

	if (k != NULL && k->aliases != NULL && model != NULL &&
	    json_object_object_get_ex(k->aliases, model, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return model;
}

static bool
model_name_ok(const char *s, size_t n)
{
	return tg_id_valid(s, n) && memchr(s, '\0', n) == NULL;
}

enum tg_rc
tg_key_check_aliases(struct json_object *aliases, struct tg_err *err)
{
	size_t n = 0;

	if (!json_object_is_type(aliases, json_type_object))
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "aliases",
		                  "aliases must be an object of model names: "
		                  "{\"<alias>\": \"<model_name>\"}");
	json_object_object_foreach(aliases, name, v)
	{
		if (++n > TG_KEY_MAX_ALIASES)
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, "aliases",
			                  "aliases holds at most %d names",
			                  TG_KEY_MAX_ALIASES);
		if (!model_name_ok(name, strlen(name)) ||
		    !json_object_is_type(v, json_type_string) ||
		    !model_name_ok(json_object_get_string(v),
		                   (size_t)json_object_get_string_len(v)))
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, "aliases",
			                  "aliases must be an object of model "
			                  "names: {\"<alias>\": "
			                  "\"<model_name>\"}");
	}
	return TG_OK;
}

/* Write a key's aliases (sql/013): NULL or an empty object clears them. */
static enum tg_rc
store_aliases(struct tg_db *db, const char *token, struct json_object *aliases,
              struct tg_err *err)
{
	struct tg_db_param params[2];
	enum tg_rc rc;

	params[0] = json_object_object_length(aliases) > 0
	                    ? tg_db_str(json_object_to_json_string_ext(
	                              aliases, JSON_C_TO_STRING_PLAIN))
	                    : tg_db_null();
	params[1] = tg_db_str(token);
	rc = tg_db_run(db, "UPDATE api_keys SET aliases = ? WHERE token = ?",
	               params, 2, NULL, err);
	if (rc == TG_ERR_DB && NO_ALIASES_YET(db))
		return tg_err_set(err, TG_ERR_INTERNAL, "aliases",
		                  "aliases need the schema of sql/013: run "
		                  "tollgate-migrate");
	return rc;
}

/* ---- reading ---- */

static char *
dup_or_null(const char *s)
{
	return s != NULL ? tg_xstrdup(s) : NULL;
}

static bool
parse_time(const char *s, struct tg_opt_time *out)
{
	out->set = false;
	out->v = 0;
	if (s == NULL)
		return true;
	out->set = tg_time_parse_sql(s, &out->v);
	return out->set;
}

/* Row row of res (LOAD_COLUMNS) into *out; false if malformed. */
static bool
parse_row(const struct tg_db_result *res, size_t row, struct tg_key *out)
{
	struct tg_key k;
	struct tg_opt_time created, updated;
	const char *token = tg_db_cell(res, row, 0);
	const char *models = tg_db_cell(res, row, 4);
	const char *spend = tg_db_cell(res, row, 7);
	const char *reserved = tg_db_cell(res, row, 8);

	memset(&k, 0, sizeof(k));
	if (token == NULL || strlen(token) != 64 || spend == NULL ||
	    !tg_money_parse(spend, &k.spend) || reserved == NULL ||
	    !tg_money_parse(reserved, &k.reserved) ||
	    !parse_time(tg_db_cell(res, row, 3), &k.expires) ||
	    !parse_time(tg_db_cell(res, row, 9), &k.spend_reset_at) ||
	    !parse_time(tg_db_cell(res, row, 11), &created) ||
	    !parse_time(tg_db_cell(res, row, 13), &updated) || models == NULL)
		return false;
	k.models = json_tokener_parse(models);
	if (!json_object_is_type(k.models, json_type_array)) {
		json_object_put(k.models);
		return false;
	}
	memcpy(k.token, token, 65);
	k.key_name = tg_xstrdup(
	        tg_db_cell(res, row, 1) != NULL ? tg_db_cell(res, row, 1) : "");
	k.key_alias = dup_or_null(tg_db_cell(res, row, 2));
	k.metadata = dup_or_null(tg_db_cell(res, row, 5));
	k.blocked = tg_db_cell(res, row, 6) != NULL &&
	            strcmp(tg_db_cell(res, row, 6), "0") != 0;
	k.budget_id = dup_or_null(tg_db_cell(res, row, 10));
	k.created_at = created.v;
	k.created_by = dup_or_null(tg_db_cell(res, row, 12));
	k.updated_at = updated.v;
	k.expired = tg_db_cell(res, row, 14) != NULL &&
	            strcmp(tg_db_cell(res, row, 14), "1") == 0;
	k.has_budget = tg_budget_from_row(res, row, KEY_NCOLUMNS, &k.budget);
	if (res->ncols > ALIASES_COLUMN &&
	    tg_db_cell(res, row, ALIASES_COLUMN) != NULL) {
		k.aliases = json_tokener_parse(
		        tg_db_cell(res, row, ALIASES_COLUMN));
		if (!json_object_is_type(k.aliases, json_type_object)) {
			tg_key_free(&k);
			return false;
		}
	}
	*out = k;
	return true;
}

/* A SELECT of LOAD_COLUMNS with the aliases (at "%s" in sql), and without
 * them on a schema before sql/013. */
static enum tg_rc
exec_load(struct tg_db *db, const char *with, const char *without,
          const struct tg_db_param *params, size_t n, struct tg_db_result *res,
          struct tg_err *err)
{
	enum tg_rc rc = tg_db_exec(db, with, params, n, res, err);

	if (rc == TG_ERR_DB && NO_ALIASES_YET(db)) {
		tg_err_clear(err);
		rc = tg_db_exec(db, without, params, n, res, err);
	}
	return rc;
}

/* Load token's key; *found false (and *out untouched) when there is none.
 * now_s (may be NULL) gets the database's time. */
static enum tg_rc
load(struct tg_db *db, const char *token, bool *found, struct tg_key *out,
     char now_s[20], struct tg_err *err)
{
	struct tg_db_param param = tg_db_str(token);
	struct tg_db_result res;
	enum tg_rc rc;

	rc = exec_load(db,
	               "SELECT " LOAD_COLUMNS LOAD_ALIASES LOAD_FROM
	               " WHERE k.token = ?",
	               "SELECT " LOAD_COLUMNS LOAD_FROM " WHERE k.token = ?",
	               &param, 1, &res, err);
	if (rc != TG_OK)
		return rc;
	*found = res.nrows > 0;
	if (*found && !parse_row(&res, 0, out))
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "malformed key row in the database");
	else if (*found && now_s != NULL)
		tg_strlcpy(now_s, 20, tg_db_cell(&res, 0, 15));
	tg_db_result_free(&res);
	return rc;
}

/* A key being read by tg_account_load(). */
struct reader {
	const char *token;
	char *now_s; /* the database's clock at the read (may be NULL) */
	struct tg_key k;
	bool have; /* k holds a row */
};

static enum tg_rc
read_key(struct tg_db *db, void *varg, bool *found, struct tg_account_row *row,
         struct tg_err *err)
{
	struct reader *r = varg;
	enum tg_rc rc;

	if (r->have)
		tg_key_free(&r->k);
	r->have = false;
	rc = load(db, r->token, found, &r->k, r->now_s, err);
	if (rc != TG_OK || !*found)
		return rc;
	r->have = true;
	row->id = r->k.token;
	row->budget = r->k.has_budget ? &r->k.budget : NULL;
	row->spend_reset_at = &r->k.spend_reset_at;
	return TG_OK;
}

/* The key as it is now (tg_account_load(); a key's budget is its own and
 * keeps its budget_reset_at); *found as load's. */
static enum tg_rc
load_current(struct tg_db *db, const char *token, bool *found,
             struct tg_key *out, char now_s[20], struct tg_err *err)
{
	struct reader r;
	enum tg_rc rc;

	memset(&r, 0, sizeof(r));
	r.token = token;
	r.now_s = now_s;
	rc = tg_account_load(db, TG_ACCOUNT_KEY, read_key, &r, false, found,
	                     err);
	if (rc != TG_OK || !*found) {
		if (r.have)
			tg_key_free(&r.k);
		return rc;
	}
	*out = r.k;
	return TG_OK;
}

static enum tg_rc
not_found(const char *token, struct tg_err *err)
{
	return tg_err_set(err, TG_ERR_NOT_FOUND, "key",
	                  "Key=%s does not exist in db", token);
}

enum tg_rc
tg_key_get(struct tg_db *db, const char *token, struct tg_key *out,
           struct tg_err *err)
{
	bool found = false;
	enum tg_rc rc;

	rc = load_current(db, token, &found, out, NULL, err);
	if (rc == TG_OK && !found)
		rc = not_found(token, err);
	return rc;
}

enum tg_rc
tg_key_authenticate(struct tg_db *db, const char *presented, struct tg_key *out,
                    struct tg_err *err)
{
	struct tg_key k;
	char token[65], now_s[20] = "", exp_s[21], now_iso[21];
	time_t now = 0;
	bool found = false;
	enum tg_rc rc;

	/*
	 * The key is looked up by its SHA-256, never compared: the index
	 * lookup's timing can tell at most about a hash of a guess.
	 */
	tg_sha256_hex(presented, strlen(presented), token);
	rc = load_current(db, token, &found, &k, now_s, err);
	if (rc != TG_OK)
		return rc;
	if (!found)
		return tg_err_set(err, TG_ERR_AUTH, NULL,
		                  "Authentication Error, Invalid proxy server "
		                  "token passed.");
	if (k.blocked)
		rc = tg_err_set(err, TG_ERR_AUTH, NULL,
		                "Authentication Error, Key is blocked. Update "
		                "via `/key/unblock` if you're admin.");
	else if (k.expired) {
		tg_time_iso8601(k.expires.v, exp_s);
		if (!tg_time_parse_sql(now_s, &now))
			now = time(NULL);
		tg_time_iso8601(now, now_iso);
		rc = tg_err_set(
		        err, TG_ERR_AUTH, NULL,
		        "Authentication Error - Expired Key. Key Expiry "
		        "time %s and current time %s",
		        exp_s, now_iso);
	}
	if (rc != TG_OK) {
		tg_key_free(&k);
		return rc;
	}
	*out = k;
	return TG_OK;
}

/* ---- writing ---- */

/*
 * The expiry of duration from now: *months and *seconds for the INSERT or
 * UPDATE (UTC_TIMESTAMP + INTERVAL months MONTH + INTERVAL seconds SECOND).
 * TG_ERR_UNPROCESSABLE when it would end past what a DATETIME holds.
 */
static enum tg_rc
expiry_span(const char *duration, long *months, long long *seconds,
            struct tg_err *err)
{
	struct tg_period p;
	long long longest;

	if (!tg_period_parse(duration, &p))
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "duration",
		                  "Invalid duration: %s", duration);
	tg_period_span(&p, months, seconds);
	/* A month is at most 31 days; n <= 1e9 keeps this in range. */
	longest = (long long)*months * 31 * 86400 + *seconds;
	if (longest > DATETIME_MAX - (long long)time(NULL))
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "duration",
		                  "duration=%s ends after the year 9999",
		                  duration);
	return TG_OK;
}

/* The first period's end for a budget with budget_duration (NULL: none). */
static bool
first_reset(const char *budget_duration, char out[20])
{
	struct tg_period p;

	if (budget_duration == NULL || !tg_period_parse(budget_duration, &p))
		return false;
	tg_time_sql(tg_period_next(&p, time(NULL)), out);
	return true;
}

static enum tg_rc
alias_taken(const char *alias, struct tg_err *err)
{
	return tg_err_set(err, TG_ERR_CONFLICT, "key_alias",
	                  "Unique key aliases across all keys are required. "
	                  "Key alias '%s' already exists.",
	                  alias != NULL ? alias : "");
}

/* A duplicate key on api_keys: the token's, or else the alias's. */
static enum tg_rc
which_conflict(struct tg_db *db, const char *token, const char *alias,
               struct tg_err *err)
{
	struct tg_db_param param = tg_db_str(token);
	struct tg_db_result res;
	bool key_exists;
	enum tg_rc rc;

	rc = tg_db_exec(db, "SELECT 1 FROM api_keys WHERE token = ?", &param, 1,
	                &res, err);
	if (rc != TG_OK)
		return rc;
	key_exists = res.nrows > 0;
	tg_db_result_free(&res);
	if (key_exists)
		return tg_err_set(err, TG_ERR_CONFLICT, "key",
		                  "This key already exists. Pass a new key, or "
		                  "none to have one generated.");
	return alias_taken(alias, err);
}

struct create_arg {
	const struct tg_key_input *in;
	const char *created_by;
	char token[65];
	char key_name[TG_KEY_NAME_LEN];
	char budget_id[37];
	const char *models;
	long months;
	long long seconds;
};

static enum tg_rc
create_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct create_arg *a = varg;
	const struct tg_key_input *in = a->in;
	struct tg_db_param params[14];
	char reset_s[20];
	bool has_reset = first_reset(in->budget.budget_duration, reset_s);
	enum tg_rc rc;

	rc = tg_budget_insert(db, a->budget_id, &in->budget, a->created_by,
	                      TG_ACCOUNT_KEY, a->token, err);
	if (rc != TG_OK)
		return rc;
	params[0] = tg_db_str(a->token);
	params[1] = tg_db_str(a->key_name);
	params[2] = tg_db_str(in->key_alias);
	params[3] = tg_db_int(in->duration != NULL);
	params[4] = tg_db_int(a->months);
	params[5] = tg_db_int(a->seconds);
	params[6] = tg_db_str(a->models);
	params[7] = tg_db_str(in->metadata);
	params[8] = tg_db_int(in->blocked ? 1 : 0);
	params[9] = tg_db_str(a->budget_id);
	params[10] = has_reset ? tg_db_str(reset_s) : tg_db_null();
	params[11] = tg_db_str(a->created_by);
	params[12] = tg_db_str(a->created_by);
	rc = tg_db_run(db,
	               "INSERT INTO api_keys (token, key_name, key_alias,"
	               " expires, models, metadata, blocked, budget_id,"
	               " spend_reset_at, created_at, created_by, updated_at,"
	               " updated_by) VALUES (?, ?, ?, IF(?, UTC_TIMESTAMP(6)"
	               " + INTERVAL ? MONTH + INTERVAL ? SECOND, NULL),"
	               " ?, ?, ?, ?, ?, UTC_TIMESTAMP(6), ?,"
	               " UTC_TIMESTAMP(6), ?)",
	               params, 13, NULL, err);
	if (rc == TG_ERR_CONFLICT)
		return which_conflict(db, a->token, in->key_alias, err);
	if (rc == TG_OK && in->aliases != NULL &&
	    json_object_object_length(in->aliases) > 0)
		rc = store_aliases(db, a->token, in->aliases, err);
	return rc;
}

static const char *
models_text(struct json_object *models)
{
	return models != NULL ? json_object_to_json_string_ext(
	                                models, JSON_C_TO_STRING_PLAIN)
	                      : "[]";
}

enum tg_rc
tg_key_create(struct tg_db *db, const struct tg_key_input *in,
              const char *created_by, struct tg_key *out, struct tg_err *err)
{
	struct create_arg arg;
	enum tg_rc rc;

	memset(&arg, 0, sizeof(arg));
	arg.in = in;
	arg.created_by = created_by;
	if (in->duration != NULL &&
	    (rc = expiry_span(in->duration, &arg.months, &arg.seconds, err)) !=
	            TG_OK)
		return rc;
	tg_sha256_hex(in->key, strlen(in->key), arg.token);
	tg_key_name(in->key, arg.key_name);
	tg_uuid_new(arg.budget_id);
	arg.models = models_text(in->models);
	rc = tg_db_txn(db, create_txn, &arg, err);
	if (rc != TG_OK)
		return rc;
	return tg_key_get(db, arg.token, out, err);
}

struct update_arg {
	const struct tg_key_update *in;
	const char *updated_by;
	const char *models;
	long months;
	long long seconds;
};

static struct tg_db_param
opt_str_value(struct tg_opt_str o)
{
	return o.set ? tg_db_str(o.v) : tg_db_null();
}

static enum tg_rc
update_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct update_arg *a = varg;
	const struct tg_key_update *in = a->in;
	struct tg_db_param params[14];
	struct tg_db_result res;
	struct tg_budget_input empty;
	char *budget_id = NULL, new_budget[37];
	enum tg_rc rc;

	params[0] = tg_db_str(in->token);
	rc = tg_db_exec(db,
	                "SELECT budget_id FROM api_keys WHERE token = ?"
	                " FOR UPDATE",
	                params, 1, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 0) {
		tg_db_result_free(&res);
		return not_found(in->token, err);
	}
	budget_id = dup_or_null(tg_db_cell(&res, 0, 0));
	tg_db_result_free(&res);

	if (tg_budget_input_first(&in->budget) != TG_BUDGET_NFIELDS) {
		if (budget_id == NULL) {
			/* Its budget was deleted (/budget/delete): a new one.
			 */
			memset(&empty, 0, sizeof(empty));
			tg_uuid_new(new_budget);
			rc = tg_budget_insert(db, new_budget, &empty,
			                      a->updated_by, TG_ACCOUNT_KEY,
			                      in->token, err);
			if (rc != TG_OK)
				goto out;
			params[0] = tg_db_str(new_budget);
			params[1] = tg_db_str(in->token);
			rc = tg_db_run(db,
			               "UPDATE api_keys SET budget_id = ?"
			               " WHERE token = ?",
			               params, 2, NULL, err);
			if (rc != TG_OK)
				goto out;
			budget_id = tg_xstrdup(new_budget);
		}
		/* A new budget_duration moves the key's next reset too. */
		rc = tg_budget_apply(db, budget_id, &in->budget, a->updated_by,
		                     NULL, err);
		if (rc != TG_OK)
			goto out;
	}
	params[0] = tg_db_int(in->key_alias.set);
	params[1] = opt_str_value(in->key_alias);
	params[2] = tg_db_int(in->duration.set);
	params[3] = tg_db_int(in->duration.v != NULL);
	params[4] = tg_db_int(a->months);
	params[5] = tg_db_int(a->seconds);
	params[6] = tg_db_int(in->models != NULL);
	params[7] = tg_db_str(a->models);
	params[8] = tg_db_int(in->metadata.set);
	params[9] = opt_str_value(in->metadata);
	params[10] = tg_db_int(in->blocked_set);
	params[11] = tg_db_int(in->blocked_set && in->blocked);
	params[12] = tg_db_str(a->updated_by);
	params[13] = tg_db_str(in->token);
	rc = tg_db_run(db,
	               "UPDATE api_keys SET key_alias = IF(?, ?, key_alias),"
	               " expires = IF(?, IF(?, UTC_TIMESTAMP(6)"
	               " + INTERVAL ? MONTH + INTERVAL ? SECOND, NULL),"
	               " expires), models = IF(?, ?, models),"
	               " metadata = IF(?, ?, metadata),"
	               " blocked = IF(?, ?, blocked),"
	               " updated_at = UTC_TIMESTAMP(6), updated_by = ?"
	               " WHERE token = ?",
	               params, 14, NULL, err);
	if (rc == TG_ERR_CONFLICT)
		rc = alias_taken(in->key_alias.v, err);
	if (rc == TG_OK && in->aliases != NULL)
		rc = store_aliases(db, in->token, in->aliases, err);
out:
	free(budget_id);
	return rc;
}

enum tg_rc
tg_key_update(struct tg_db *db, const struct tg_key_update *in,
              const char *updated_by, struct tg_key *out, struct tg_err *err)
{
	struct update_arg arg;
	enum tg_rc rc;

	memset(&arg, 0, sizeof(arg));
	arg.in = in;
	arg.updated_by = updated_by;
	arg.models = in->models != NULL ? models_text(in->models) : NULL;
	if (in->duration.v != NULL &&
	    (rc = expiry_span(in->duration.v, &arg.months, &arg.seconds,
	                      err)) != TG_OK)
		return rc;
	rc = tg_db_txn(db, update_txn, &arg, err);
	if (rc != TG_OK)
		return rc;
	return tg_key_get(db, in->token, out, err);
}

/* The tokens of keys (keys or tokens) as a new JSON array; entries that
 * are neither go into bad. */
static struct json_object *
tokens_of(struct json_object *keys, struct json_object *bad)
{
	struct json_object *tokens = json_object_new_array();

	for (size_t i = 0; i < json_object_array_length(keys); i++) {
		struct json_object *e = json_object_array_get_idx(keys, i);
		char token[65];

		if (tg_key_token_of(json_object_get_string(e), token))
			json_object_array_add(tokens,
			                      json_object_new_string(token));
		else
			json_object_array_add(bad, json_object_get(e));
	}
	return tokens;
}

struct delete_arg {
	struct json_object *tokens;
};

static enum tg_rc
delete_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct delete_arg *a = varg;
	size_t n = json_object_array_length(a->tokens);
	struct json_object *missing = json_object_new_array();
	struct tg_db_param param;
	struct tg_db_result res;
	enum tg_rc rc = TG_OK;

	for (size_t i = 0; i < n && rc == TG_OK; i++) {
		param = tg_db_str(json_object_get_string(
		        json_object_array_get_idx(a->tokens, i)));
		rc = tg_db_exec(db,
		                "SELECT 1 FROM api_keys WHERE token = ?"
		                " FOR UPDATE",
		                &param, 1, &res, err);
		if (rc != TG_OK)
			break;
		if (res.nrows == 0)
			json_object_array_add(
			        missing,
			        json_object_get(json_object_array_get_idx(
			                a->tokens, i)));
		tg_db_result_free(&res);
	}
	if (rc == TG_OK && json_object_array_length(missing) > 0) {
		char *text = tg_customer_ids_text(missing);
		rc = tg_err_set(err, TG_ERR_NOT_FOUND, "keys",
		                "Key(s) not found in db: token=%s", text);
		free(text);
	}
	json_object_put(missing);
	for (size_t i = 0; i < n && rc == TG_OK; i++) {
		param = tg_db_str(json_object_get_string(
		        json_object_array_get_idx(a->tokens, i)));
		rc = tg_db_run(db, "DELETE FROM api_keys WHERE token = ?",
		               &param, 1, NULL, err);
		/* Its budget had no other user; the ledger keeps its rows.
		 * A hold in flight finds no key to charge: its customer is
		 * still charged. */
		if (rc == TG_OK)
			rc = tg_db_run(db,
			               "DELETE FROM budgets"
			               " WHERE private_for_key = ?",
			               &param, 1, NULL, err);
		if (rc == TG_OK)
			rc = tg_account_forget(db, TG_ACCOUNT_KEY, param.str,
			                       param.len, err);
	}
	return rc;
}

enum tg_rc
tg_key_delete(struct tg_db *db, struct json_object *keys, struct tg_err *err)
{
	struct json_object *bad = json_object_new_array();
	struct delete_arg arg;
	enum tg_rc rc;

	arg.tokens = tokens_of(keys, bad);
	if (json_object_array_length(bad) > 0) {
		char *text = tg_customer_ids_text(bad);
		rc = tg_err_set(err, TG_ERR_NOT_FOUND, "keys",
		                "Key(s) not found in db: %s (neither a key nor "
		                "a token)",
		                text);
		free(text);
	} else {
		rc = tg_db_txn(db, delete_txn, &arg, err);
	}
	json_object_put(bad);
	json_object_put(arg.tokens);
	return rc;
}

enum tg_rc
tg_key_set_blocked(struct tg_db *db, const char *token, bool blocked,
                   struct tg_key *out, struct tg_err *err)
{
	struct tg_db_param params[2];
	enum tg_rc rc;

	params[0] = tg_db_int(blocked ? 1 : 0);
	params[1] = tg_db_str(token);
	rc = tg_db_run(db,
	               "UPDATE api_keys SET blocked = ?,"
	               " updated_at = UTC_TIMESTAMP(6) WHERE token = ?",
	               params, 2, NULL, err);
	if (rc != TG_OK)
		return rc;
	return tg_key_get(db, token, out, err);
}

/* ---- listing and output ---- */

enum tg_rc
tg_key_list(struct tg_db *db, const struct tg_key_filter *f,
            struct json_object **out, struct tg_err *err)
{
	struct tg_db_param params[4];
	struct tg_db_result res;
	struct json_object *o, *keys;
	int64_t total = 0, offset;
	enum tg_rc rc;

	if (f->page < 1 || f->page_size < 1 ||
	    f->page - 1 > INT64_MAX / f->page_size)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "page",
		                  "page is out of range");
	offset = (f->page - 1) * f->page_size;
	params[0] = tg_db_str(f->key_alias);
	params[1] = tg_db_str(f->key_alias);
	rc = tg_db_exec(db,
	                "SELECT COUNT(*) FROM api_keys"
	                " WHERE (? IS NULL OR key_alias = ?)",
	                params, 2, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 1 && tg_db_cell(&res, 0, 0) != NULL)
		total = strtoll(tg_db_cell(&res, 0, 0), NULL, 10);
	tg_db_result_free(&res);
	params[2] = tg_db_int(f->page_size);
	params[3] = tg_db_int(offset);
#define LIST_WHERE                                                             \
	" WHERE (? IS NULL OR k.key_alias = ?)"                                \
	" ORDER BY k.created_at DESC, k.token LIMIT ? OFFSET ?"
	rc = exec_load(db,
	               "SELECT " LOAD_COLUMNS LOAD_ALIASES LOAD_FROM LIST_WHERE,
	               "SELECT " LOAD_COLUMNS LOAD_FROM LIST_WHERE, params, 4,
	               &res, err);
#undef LIST_WHERE
	if (rc != TG_OK)
		return rc;
	keys = json_object_new_array();
	for (size_t i = 0; i < res.nrows; i++) {
		struct tg_key k;

		if (!parse_row(&res, i, &k)) {
			rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
			                "malformed key row in the database");
			break;
		}
		json_object_array_add(
		        keys, f->full ? tg_key_to_json(&k)
		                      : json_object_new_string(k.token));
		tg_key_free(&k);
	}
	tg_db_result_free(&res);
	if (rc != TG_OK) {
		json_object_put(keys);
		return rc;
	}
	o = json_object_new_object();
	json_object_object_add(o, "keys", keys);
	json_object_object_add(o, "total_count", json_object_new_int64(total));
	json_object_object_add(o, "current_page",
	                       json_object_new_int64(f->page));
	json_object_object_add(
	        o, "total_pages",
	        json_object_new_int64((total + f->page_size - 1) /
	                              f->page_size));
	*out = o;
	return TG_OK;
}

static struct json_object *
opt_time_json(const struct tg_opt_time *t)
{
	char buf[21];

	if (!t->set)
		return NULL;
	tg_time_iso8601(t->v, buf);
	return json_object_new_string(buf);
}

static struct json_object *
opt_money_json(bool has, const struct tg_opt_money *m)
{
	return has && m->set ? tg_json_money(m->v) : NULL;
}

static struct json_object *
opt_i64_json(bool has, const struct tg_opt_i64 *v)
{
	return has && v->set ? json_object_new_int64(v->v) : NULL;
}

static struct json_object *
json_text(const char *text)
{
	return text != NULL ? json_tokener_parse(text) : NULL;
}

struct json_object *
tg_key_to_json(const struct tg_key *k)
{
	struct json_object *o = json_object_new_object();
	const struct tg_budget *b = &k->budget;
	bool hb = k->has_budget;
	struct tg_opt_time created = {true, k->created_at};
	struct tg_opt_time updated = {true, k->updated_at};
	tg_money spend = k->spend;

	/* An ended period reads as 0, as the key's next call will find it. */
	if (hb && b->budget_duration != NULL && k->spend_reset_at.set &&
	    k->spend_reset_at.v <= time(NULL))
		spend = 0;
	json_object_object_add(o, "key_name", tg_json_str(k->key_name));
	json_object_object_add(o, "key_alias", tg_json_str(k->key_alias));
	json_object_object_add(o, "token", json_object_new_string(k->token));
	json_object_object_add(o, "spend", tg_json_money(spend));
	json_object_object_add(o, "max_budget",
	                       opt_money_json(hb, &b->max_budget));
	json_object_object_add(o, "soft_budget",
	                       opt_money_json(hb, &b->soft_budget));
	json_object_object_add(o, "expires", opt_time_json(&k->expires));
	json_object_object_add(o, "models", json_object_get(k->models));
	json_object_object_add(o, "aliases",
	                       k->aliases != NULL ? json_object_get(k->aliases)
	                                          : json_object_new_object());
	json_object_object_add(o, "tpm_limit", opt_i64_json(hb, &b->tpm_limit));
	json_object_object_add(o, "rpm_limit", opt_i64_json(hb, &b->rpm_limit));
	json_object_object_add(o, "max_parallel_requests",
	                       opt_i64_json(hb, &b->max_parallel_requests));
	json_object_object_add(o, "budget_duration",
	                       tg_json_str(hb ? b->budget_duration : NULL));
	/* LiteLLM's name for when the key's spend resets. */
	json_object_object_add(o, "budget_reset_at",
	                       opt_time_json(&k->spend_reset_at));
	json_object_object_add(o, "model_max_budget",
	                       json_text(hb ? b->model_max_budget : NULL));
	json_object_object_add(o, "metadata", json_text(k->metadata));
	json_object_object_add(o, "blocked",
	                       json_object_new_boolean(k->blocked));
	json_object_object_add(o, "user_id", NULL);
	json_object_object_add(o, "team_id", NULL);
	json_object_object_add(o, "created_at", opt_time_json(&created));
	json_object_object_add(o, "created_by", tg_json_str(k->created_by));
	json_object_object_add(o, "updated_at", opt_time_json(&updated));
	json_object_object_add(o, "reserved", tg_json_money(k->reserved));
	json_object_object_add(o, "spend_reset_at",
	                       opt_time_json(&k->spend_reset_at));
	return o;
}

struct tg_account
tg_key_account(const struct tg_key *k)
{
	struct tg_account a = {TG_ACCOUNT_KEY, k->token, NULL,
	                       NULL,           k->spend, k->key_alias};

	if (k->has_budget)
		a.budget = &k->budget;
	return a;
}

void
tg_key_free(struct tg_key *k)
{
	if (k == NULL)
		return;
	free(k->key_name);
	free(k->key_alias);
	json_object_put(k->models);
	json_object_put(k->aliases);
	free(k->metadata);
	free(k->budget_id);
	free(k->created_by);
	tg_budget_free(&k->budget);
	memset(k, 0, sizeof(*k));
}
