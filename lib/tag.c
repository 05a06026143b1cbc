/*
 * tag: tags as accounts (see tag.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "fields.h"
#include "jsonx.h"
#include "tag.h"
#include "util.h"

#define TAG_COLUMNS                                                            \
	"t.tag_name, t.description, t.models, t.blocked, t.spend,"             \
	" t.reserved, t.budget_id, t.budget_private, t.spend_reset_at,"        \
	" t.created_at, t.created_by, t.updated_at, "                          \
	"t.updated_by, " TG_BUDGET_COLUMNS
#define TAG_NCOLUMNS 13
#define TAG_FROM     " FROM tags t LEFT JOIN budgets b ON b.budget_id = t.budget_id"

/* 1146: no such table (a schema before sql/011). */
static bool
no_table(const struct tg_db *db)
{
	return tg_db_errno(db) == 1146;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? tg_xstrdup(s) : NULL;
}

/* Row row of res (TAG_COLUMNS) into *out; false when malformed. */
static bool
parse_row(const struct tg_db_result *res, size_t row, struct tg_tag *out)
{
	struct tg_tag t;
	const char *spend = tg_db_cell(res, row, 4);
	const char *reserved = tg_db_cell(res, row, 5);
	const char *reset = tg_db_cell(res, row, 8);
	const char *created = tg_db_cell(res, row, 9);
	const char *updated = tg_db_cell(res, row, 11);

	memset(&t, 0, sizeof(t));
	if (tg_db_cell(res, row, 0) == NULL || spend == NULL ||
	    !tg_money_parse(spend, &t.spend) || reserved == NULL ||
	    !tg_money_parse(reserved, &t.reserved) ||
	    (reset != NULL && !tg_time_parse_sql(reset, &t.spend_reset_at.v)) ||
	    created == NULL || !tg_time_parse_sql(created, &t.created_at) ||
	    updated == NULL || !tg_time_parse_sql(updated, &t.updated_at))
		return false;
	t.spend_reset_at.set = reset != NULL;
	t.has_budget = tg_budget_from_row(res, row, TAG_NCOLUMNS, &t.budget);
	t.name = tg_xstrdup(tg_db_cell(res, row, 0));
	t.description = dup_or_null(tg_db_cell(res, row, 1));
	t.models = dup_or_null(tg_db_cell(res, row, 2));
	t.blocked = tg_db_cell(res, row, 3) != NULL &&
	            strcmp(tg_db_cell(res, row, 3), "0") != 0;
	t.budget_id = dup_or_null(tg_db_cell(res, row, 6));
	t.budget_private = tg_db_cell(res, row, 7) != NULL &&
	                   strcmp(tg_db_cell(res, row, 7), "0") != 0;
	t.created_by = dup_or_null(tg_db_cell(res, row, 10));
	t.updated_by = dup_or_null(tg_db_cell(res, row, 12));
	*out = t;
	return true;
}

/* ---- the tags of a call ---- */

/* Add the n bytes at s to names (once), checked. */
static enum tg_rc
add_name(const char *where, const char *s, size_t n,
         const char *names[TG_TAG_MAX], size_t *count, struct tg_err *err)
{
	if (n == 0 || n > 255 || !tg_id_valid(s, n) || memchr(s, '\0', n))
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, where,
		                  "each tag must be 1 to 255 bytes of valid "
		                  "UTF-8");
	for (size_t i = 0; i < *count; i++)
		if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0)
			return TG_OK;
	if (*count == TG_TAG_MAX)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, where,
		                  "a request may name at most %d tags",
		                  TG_TAG_MAX);
	names[(*count)++] = s;
	return TG_OK;
}

enum tg_rc
tg_tag_names(struct json_object *body, const char *header, char *buf,
             size_t buflen, const char *names[TG_TAG_MAX], size_t *n,
             struct tg_err *err)
{
	struct json_object *meta, *tags;
	enum tg_rc rc;

	*n = 0;
	if (body != NULL &&
	    json_object_object_get_ex(body, "metadata", &meta) &&
	    json_object_is_type(meta, json_type_object) &&
	    json_object_object_get_ex(meta, "tags", &tags) &&
	    !json_object_is_type(tags, json_type_null)) {
		if (!json_object_is_type(tags, json_type_array))
			return tg_err_set(err, TG_ERR_UNPROCESSABLE,
			                  "metadata.tags",
			                  "metadata.tags must be a list of "
			                  "strings");
		for (size_t i = 0; i < json_object_array_length(tags); i++) {
			struct json_object *e =
			        json_object_array_get_idx(tags, i);

			if (!json_object_is_type(e, json_type_string))
				return tg_err_set(
				        err, TG_ERR_UNPROCESSABLE,
				        "metadata.tags",
				        "metadata.tags must be a list "
				        "of strings");
			rc = add_name("metadata.tags",
			              json_object_get_string(e),
			              (size_t)json_object_get_string_len(e),
			              names, n, err);
			if (rc != TG_OK)
				return rc;
		}
	}
	if (header == NULL)
		return TG_OK;
	if (strlen(header) >= buflen)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "x-litellm-tags",
		                  "x-litellm-tags is too long");
	tg_strlcpy(buf, buflen, header);
	for (char *p = buf; *p != '\0';) {
		char *end = strchr(p, ',');
		char *next = end != NULL ? end + 1 : p + strlen(p);
		char *last;

		if (end != NULL)
			*end = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		last = p + strlen(p);
		while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
			*--last = '\0';
		if (*p != '\0' && (rc = add_name("x-litellm-tags", p, strlen(p),
		                                 names, n, err)) != TG_OK)
			return rc;
		p = next;
	}
	return TG_OK;
}

/* ---- reading ---- */

/* The tags of names[0..n) that exist, as stored, into out[0..*nout). */
static enum tg_rc
load_rows(struct tg_db *db, const char *const *names, size_t n,
          struct tg_tag *out, size_t *nout, struct tg_err *err)
{
	struct tg_db_param params[TG_TAG_MAX];
	struct tg_db_result res;
	char sql[sizeof("SELECT " TAG_COLUMNS TAG_FROM) + 64 + 3 * TG_TAG_MAX];
	size_t len;
	enum tg_rc rc;

	*nout = 0;
	if (n == 0)
		return TG_OK;
	if (n > TG_TAG_MAX)
		n = TG_TAG_MAX;
	len = (size_t)snprintf(sql, sizeof(sql),
	                       "SELECT " TAG_COLUMNS TAG_FROM
	                       " WHERE t.tag_name IN (?");
	for (size_t i = 0; i < n; i++) {
		params[i] = tg_db_str(names[i]);
		if (i > 0)
			len += (size_t)snprintf(sql + len, sizeof(sql) - len,
			                        ", ?");
	}
	snprintf(sql + len, sizeof(sql) - len, ") ORDER BY t.tag_name");
	rc = tg_db_exec(db, sql, params, n, &res, err);
	if (rc == TG_ERR_DB && no_table(db)) {
		tg_err_clear(err);
		return TG_OK;
	}
	if (rc != TG_OK)
		return rc;
	for (size_t i = 0; i < res.nrows && rc == TG_OK; i++) {
		if (!parse_row(&res, i, &out[*nout]))
			rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
			                "malformed tag row in the database");
		else
			(*nout)++;
	}
	tg_db_result_free(&res);
	if (rc != TG_OK) {
		for (size_t i = 0; i < *nout; i++)
			tg_tag_free(&out[i]);
		*nout = 0;
	}
	return rc;
}

/* A tag being read by tg_account_load(): first as the batch read it, then
 * read again alone. */
struct reader {
	struct tg_tag *t;
	bool read; /* *t has been given once */
};

static enum tg_rc
read_tag(struct tg_db *db, void *varg, bool *found, struct tg_account_row *row,
         struct tg_err *err)
{
	struct reader *r = varg;
	const char *one[1];
	struct tg_tag again;
	size_t got = 0;
	enum tg_rc rc;

	*found = true;
	if (r->read) {
		/* Deleted meanwhile: as it was, with nothing spent (its
		 * charges go nowhere). */
		one[0] = r->t->name;
		rc = load_rows(db, one, 1, &again, &got, err);
		if (rc != TG_OK)
			return rc;
		if (got == 1) {
			tg_tag_free(r->t);
			*r->t = again;
		}
	}
	r->read = true;
	row->id = r->t->name;
	row->budget = r->t->has_budget ? &r->t->budget : NULL;
	row->spend_reset_at = &r->t->spend_reset_at;
	return TG_OK;
}

enum tg_rc
tg_tag_load(struct tg_db *db, const char *const *names, size_t n,
            struct tg_tag *out, size_t *nout, struct tg_err *err)
{
	enum tg_rc rc;

	rc = load_rows(db, names, n, out, nout, err);
	for (size_t i = 0; i < *nout && rc == TG_OK; i++) {
		struct reader r = {&out[i], false};
		bool found = false;

		rc = tg_account_load(db, TG_ACCOUNT_TAG, read_tag, &r, true,
		                     &found, err);
	}
	if (rc != TG_OK) {
		for (size_t i = 0; i < *nout; i++)
			tg_tag_free(&out[i]);
		*nout = 0;
	}
	return rc;
}

enum tg_rc
tg_tag_get(struct tg_db *db, const char *name, struct tg_tag *out,
           struct tg_err *err)
{
	size_t got = 0;
	enum tg_rc rc;

	rc = tg_tag_load(db, &name, 1, out, &got, err);
	if (rc == TG_OK && got == 0)
		rc = tg_err_set(err, TG_ERR_NOT_FOUND, "name",
		                "Tag %s not found", name);
	return rc;
}

enum tg_rc
tg_tag_list(struct tg_db *db, struct json_object **out, struct tg_err *err)
{
	struct tg_db_result res;
	struct json_object *arr;
	time_t now = time(NULL);
	enum tg_rc rc;

	rc = tg_db_exec(db,
	                "SELECT " TAG_COLUMNS TAG_FROM " ORDER BY t.tag_name",
	                NULL, 0, &res, err);
	if (rc == TG_ERR_DB && no_table(db)) {
		tg_err_clear(err);
		*out = json_object_new_array();
		return TG_OK;
	}
	if (rc != TG_OK)
		return rc;
	arr = json_object_new_array();
	for (size_t i = 0; i < res.nrows && rc == TG_OK; i++) {
		struct tg_tag t;

		if (!parse_row(&res, i, &t)) {
			rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
			                "malformed tag row in the database");
			break;
		}
		/* An ended period reads as 0 (its reset is applied by the
		 * tag's next call). */
		if (t.has_budget && t.budget.budget_duration != NULL &&
		    t.spend_reset_at.set && t.spend_reset_at.v <= now)
			t.spend = 0;
		json_object_array_add(arr, tg_tag_to_json(&t));
		tg_tag_free(&t);
	}
	tg_db_result_free(&res);
	if (rc != TG_OK) {
		json_object_put(arr);
		return rc;
	}
	*out = arr;
	return TG_OK;
}

/* ---- writing ---- */

static enum tg_rc
both_error(const struct tg_budget_input *b, struct tg_err *err)
{
	return tg_err_set(err, TG_ERR_UNPROCESSABLE,
	                  tg_budget_field_name(tg_budget_input_first(b)),
	                  "Set either 'max_budget' or 'budget_id', not both.");
}

static enum tg_rc
unknown_budget(const char *budget_id, struct tg_err *err)
{
	return tg_err_set(err, TG_ERR_BAD_REQUEST, "budget_id",
	                  "Budget id=%s does not exist in db",
	                  budget_id != NULL ? budget_id : "");
}

/* The models array as stored (caller frees), or NULL for none given. */
static char *
models_text(const struct tg_tag_input *in)
{
	if (!in->models_set || in->models == NULL)
		return NULL;
	return tg_xstrdup(json_object_to_json_string_ext(
	        in->models, JSON_C_TO_STRING_PLAIN));
}

struct write_arg {
	const struct tg_tag_input *in;
	const char *by;
	char *models;
};

static enum tg_rc
create_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct write_arg *a = varg;
	const struct tg_tag_input *in = a->in;
	const char *budget_id = in->budget_id;
	char own[37];
	struct tg_db_param params[8];
	enum tg_rc rc;

	own[0] = '\0';
	if (tg_budget_input_any(&in->budget)) {
		tg_uuid_new(own);
		rc = tg_budget_insert(db, own, &in->budget, a->by,
		                      TG_ACCOUNT_TAG, in->name, err);
		if (rc != TG_OK)
			return rc;
		budget_id = own;
	}
	params[0] = tg_db_str(in->name);
	params[1] = tg_db_str(in->description);
	params[2] = tg_db_str(a->models);
	params[3] = tg_db_int(in->blocked_set && in->blocked ? 1 : 0);
	params[4] = tg_db_str(budget_id);
	params[5] = tg_db_int(own[0] != '\0' ? 1 : 0);
	params[6] = tg_db_str(a->by);
	params[7] = tg_db_str(a->by);
	rc = tg_db_run(db,
	               "INSERT INTO tags (tag_name, description, models,"
	               " blocked, budget_id, budget_private, created_at,"
	               " created_by, updated_at, updated_by) VALUES"
	               " (?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6), ?,"
	               " UTC_TIMESTAMP(6), ?)",
	               params, 8, NULL, err);
	if (rc == TG_ERR_CONFLICT)
		return tg_err_set(err, TG_ERR_CONFLICT, "name",
		                  "Tag %s already exists", in->name);
	if (rc == TG_ERR_DB && tg_db_missing_parent(db))
		return unknown_budget(in->budget_id, err);
	return rc;
}

enum tg_rc
tg_tag_create(struct tg_db *db, const struct tg_tag_input *in,
              const char *created_by, struct tg_tag *out, struct tg_err *err)
{
	struct write_arg arg = {in, created_by, NULL};
	enum tg_rc rc;

	if (in->budget_id != NULL && tg_budget_input_any(&in->budget))
		return both_error(&in->budget, err);
	arg.models = models_text(in);
	rc = tg_db_txn(db, create_txn, &arg, err);
	free(arg.models);
	if (rc != TG_OK)
		return rc;
	return tg_tag_get(db, in->name, out, err);
}

static enum tg_rc
update_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct write_arg *a = varg;
	const struct tg_tag_input *in = a->in;
	struct tg_db_param params[12];
	struct tg_db_result res;
	char *old_budget = NULL, own[37];
	bool was_private = false;
	const char *budget_id = NULL;
	bool move = false, made = false;
	enum tg_rc rc;

	params[0] = tg_db_str(in->name);
	rc = tg_db_exec(db,
	                "SELECT budget_id, budget_private FROM tags"
	                " WHERE tag_name = ? FOR UPDATE",
	                params, 1, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 0) {
		tg_db_result_free(&res);
		return tg_err_set(err, TG_ERR_NOT_FOUND, "name",
		                  "Tag %s not found", in->name);
	}
	old_budget = dup_or_null(tg_db_cell(&res, 0, 0));
	was_private = old_budget != NULL && tg_db_cell(&res, 0, 1) != NULL &&
	              strcmp(tg_db_cell(&res, 0, 1), "0") != 0;
	tg_db_result_free(&res);

	if (in->budget_id != NULL) {
		/* Onto a shared budget: its own goes. */
		budget_id = in->budget_id;
		move = true;
	} else if (tg_budget_input_any(&in->budget) ||
	           in->budget.cleared != 0) {
		if (!was_private) {
			/* Its own budget now, a copy of its shared one (the
			 * tier changes only through /budget/update). */
			rc = tg_budget_copy(db, old_budget, a->by,
			                    TG_ACCOUNT_TAG, in->name, own, err);
			if (rc != TG_OK)
				goto out;
			budget_id = own;
			move = made = true;
		}
		rc = tg_budget_apply(db, was_private ? old_budget : own,
		                     &in->budget, a->by, NULL, err);
		if (rc != TG_OK)
			goto out;
	}
	params[0] = tg_db_int(in->description_set);
	params[1] = tg_db_str(in->description);
	params[2] = tg_db_int(in->models_set);
	params[3] = tg_db_str(a->models);
	params[4] = tg_db_int(in->blocked_set);
	params[5] = tg_db_int(in->blocked ? 1 : 0);
	params[6] = tg_db_int(move);
	params[7] = tg_db_str(budget_id);
	params[8] = tg_db_int(move);
	params[9] = tg_db_int(made ? 1 : 0);
	params[10] = tg_db_str(a->by);
	params[11] = tg_db_str(in->name);
	rc = tg_db_run(db,
	               "UPDATE tags SET description = IF(?, ?, description),"
	               " models = IF(?, ?, models),"
	               " blocked = IF(?, ?, blocked),"
	               " budget_id = IF(?, ?, budget_id),"
	               " budget_private = IF(?, ?, budget_private),"
	               " updated_at = UTC_TIMESTAMP(6), updated_by = ?"
	               " WHERE tag_name = ?",
	               params, 12, NULL, err);
	if (rc == TG_ERR_DB && tg_db_missing_parent(db)) {
		rc = unknown_budget(in->budget_id, err);
		goto out;
	}
	if (rc == TG_OK && move && was_private) {
		params[0] = tg_db_str(old_budget);
		rc = tg_db_run(db, "DELETE FROM budgets WHERE budget_id = ?",
		               params, 1, NULL, err);
	}
out:
	free(old_budget);
	return rc;
}

enum tg_rc
tg_tag_update(struct tg_db *db, const struct tg_tag_input *in,
              const char *updated_by, struct tg_tag *out, struct tg_err *err)
{
	struct write_arg arg = {in, updated_by, NULL};
	enum tg_rc rc;

	if (in->budget_id != NULL &&
	    (tg_budget_input_any(&in->budget) || in->budget.cleared != 0))
		return both_error(&in->budget, err);
	arg.models = models_text(in);
	rc = tg_db_txn(db, update_txn, &arg, err);
	free(arg.models);
	if (rc != TG_OK)
		return rc;
	return tg_tag_get(db, in->name, out, err);
}

static enum tg_rc
delete_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	const char *name = varg;
	struct tg_db_param param = tg_db_str(name);
	struct tg_db_result res;
	char *own = NULL;
	uint64_t deleted = 0;
	enum tg_rc rc;

	rc = tg_db_exec(db,
	                "SELECT IF(budget_private, budget_id, NULL) FROM tags"
	                " WHERE tag_name = ? FOR UPDATE",
	                &param, 1, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 1)
		own = dup_or_null(tg_db_cell(&res, 0, 0));
	tg_db_result_free(&res);
	rc = tg_db_run(db, "DELETE FROM tags WHERE tag_name = ?", &param, 1,
	               &deleted, err);
	if (rc == TG_OK && deleted == 0)
		rc = tg_err_set(err, TG_ERR_NOT_FOUND, "name",
		                "Tag %s not found", name);
	if (rc == TG_OK && own != NULL) {
		param = tg_db_str(own);
		rc = tg_db_run(db, "DELETE FROM budgets WHERE budget_id = ?",
		               &param, 1, NULL, err);
	}
	if (rc == TG_OK)
		rc = tg_account_forget(db, TG_ACCOUNT_TAG, name, strlen(name),
		                       err);
	free(own);
	return rc;
}

enum tg_rc
tg_tag_delete(struct tg_db *db, const char *name, struct tg_err *err)
{
	return tg_db_txn(db, delete_txn, (void *)name, err);
}

/* ---- answers ---- */

bool
tg_tag_allows_model(const struct tg_tag *t, const char *model)
{
	struct json_object *arr;
	bool ok = true;

	if (t->models == NULL || model == NULL)
		return true;
	arr = json_tokener_parse(t->models);
	if (json_object_is_type(arr, json_type_array) &&
	    json_object_array_length(arr) > 0) {
		ok = false;
		for (size_t i = 0; i < json_object_array_length(arr) && !ok;
		     i++) {
			struct json_object *e =
			        json_object_array_get_idx(arr, i);

			ok = json_object_is_type(e, json_type_string) &&
			     strcmp(json_object_get_string(e), model) == 0;
		}
	}
	json_object_put(arr);
	return ok;
}

struct json_object *
tg_tag_to_json(const struct tg_tag *t)
{
	struct json_object *o = json_object_new_object();
	struct json_object *models = NULL;
	char when[21];

	if (t->models != NULL)
		models = json_tokener_parse(t->models);
	if (!json_object_is_type(models, json_type_array)) {
		json_object_put(models);
		models = json_object_new_array();
	}
	json_object_object_add(o, "name", tg_json_str(t->name));
	json_object_object_add(o, "description", tg_json_str(t->description));
	json_object_object_add(o, "models", models);
	/* LiteLLM maps model ids to names here; a model of tollgate's config
	 * is its name. */
	json_object_object_add(o, "model_info", json_object_new_object());
	tg_time_iso8601(t->created_at, when);
	json_object_object_add(o, "created_at", json_object_new_string(when));
	tg_time_iso8601(t->updated_at, when);
	json_object_object_add(o, "updated_at", json_object_new_string(when));
	json_object_object_add(o, "created_by", tg_json_str(t->created_by));
	json_object_object_add(o, "updated_by", tg_json_str(t->updated_by));
	json_object_object_add(o, "blocked",
	                       json_object_new_boolean(t->blocked));
	json_object_object_add(o, "spend", tg_json_money(t->spend));
	json_object_object_add(o, "reserved", tg_json_money(t->reserved));
	if (t->spend_reset_at.set) {
		tg_time_iso8601(t->spend_reset_at.v, when);
		json_object_object_add(o, "spend_reset_at",
		                       json_object_new_string(when));
	} else {
		json_object_object_add(o, "spend_reset_at", NULL);
	}
	json_object_object_add(o, "budget_id", tg_json_str(t->budget_id));
	json_object_object_add(o, "litellm_budget_table",
	                       t->has_budget ? tg_budget_to_json(&t->budget)
	                                     : NULL);
	return o;
}

struct tg_account
tg_tag_account(const struct tg_tag *t)
{
	struct tg_account a = {TG_ACCOUNT_TAG, t->name,  NULL,
	                       NULL,           t->spend, NULL};

	if (t->has_budget)
		a.budget = &t->budget;
	return a;
}

void
tg_tag_free(struct tg_tag *t)
{
	if (t == NULL)
		return;
	free(t->name);
	free(t->description);
	free(t->models);
	free(t->budget_id);
	free(t->created_by);
	free(t->updated_by);
	tg_budget_free(&t->budget);
	memset(t, 0, sizeof(*t));
}
