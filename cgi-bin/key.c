/*
 * key: the virtual key routes (SPEC 13), in LiteLLM's shapes:
 * /key/generate, info, update, delete, list, block, unblock.  All are the
 * master key's, except /key/info, which a virtual key may call about
 * itself.
 *
 * One program for the resource (see cgi-bin/customer.c).
 */
#include <stddef.h>
#include <string.h>

#include "app.h"
#include "budget.h"
#include "key.h"

#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

static const struct tg_field generate_fields[] = {
        {"key", TG_FIELD_STRING, 0},        {"key_alias", TG_FIELD_ID, 0},
        {"duration", TG_FIELD_DURATION, 0}, {"models", TG_FIELD_ARRAY, 0},
        {"metadata", TG_FIELD_OBJECT, 0},   {"blocked", TG_FIELD_BOOL, 0},
        {"aliases", TG_FIELD_OBJECT, 0},    TG_BUDGET_FIELDS,
};
enum {
	F_KEY,
	F_ALIAS,
	F_DURATION,
	F_MODELS,
	F_METADATA,
	F_BLOCKED,
	F_ALIASES,
	F_BUDGET /* the TG_BUDGET_FIELDS run */
};

static struct tg_opt_str
opt_str(struct tg_req *req, size_t i)
{
	const struct tg_value *v = tg_req_field(req, i);
	struct tg_opt_str o = {v->given || v->null, v->given ? v->str : NULL};
	return o;
}

static const char *
object_text(struct tg_req *req, size_t i)
{
	const struct tg_value *v = tg_req_field(req, i);

	return v->given ? json_object_to_json_string_ext(v->json,
	                                                 JSON_C_TO_STRING_PLAIN)
	                : NULL;
}

/* The token a request names its key by (field i), or 404. */
static enum tg_rc
token_field(struct tg_req *req, size_t i, char token[65], struct tg_err *err)
{
	const char *v = tg_req_str(req, i);

	if (v == NULL || !tg_key_token_of(v, token))
		return tg_err_set(err, TG_ERR_NOT_FOUND, "key",
		                  "Key=%s does not exist in db",
		                  v != NULL ? v : "");
	return TG_OK;
}

/* Answer with key k when rc says it was loaded (and free it). */
static enum tg_rc
respond_key(struct tg_req *req, enum tg_rc rc, struct tg_key *k)
{
	if (rc != TG_OK)
		return rc;
	tg_req_respond_json(req, 200, tg_key_to_json(k));
	tg_key_free(k);
	return TG_OK;
}

static enum tg_rc
handle_generate(struct tg_req *req, struct tg_err *err)
{
	struct tg_key_input in;
	struct json_object *o, *info;
	struct tg_key k;
	struct tg_db *db;
	char secret[TG_KEY_NEW_LEN];
	const char *master = tg_req_config(req)->master_key;
	enum tg_rc rc;

	memset(&in, 0, sizeof(in));
	in.key = tg_req_str(req, F_KEY);
	if (in.key == NULL) {
		tg_key_new_secret(secret);
		in.key = secret;
	} else if (!tg_key_valid_chosen(in.key)) {
		return tg_err_set(
		        err, TG_ERR_UNPROCESSABLE, "key",
		        "Invalid key format. A virtual key must start "
		        "with 'sk-' and be at most %d visible ASCII "
		        "characters.",
		        TG_KEY_MAX);
	} else if (strcmp(in.key, master) == 0) {
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "key",
		                  "A virtual key cannot be the master key.");
	}
	in.key_alias = tg_req_str(req, F_ALIAS);
	in.duration = tg_req_str(req, F_DURATION);
	if (tg_req_field(req, F_MODELS)->given) {
		in.models = tg_req_field(req, F_MODELS)->json;
		if ((rc = tg_key_check_models(in.models, err)) != TG_OK)
			return rc;
	}
	if (tg_req_field(req, F_ALIASES)->given) {
		in.aliases = tg_req_field(req, F_ALIASES)->json;
		if ((rc = tg_key_check_aliases(in.aliases, err)) != TG_OK)
			return rc;
	}
	in.metadata = object_text(req, F_METADATA);
	in.blocked = tg_req_field(req, F_BLOCKED)->given &&
	             tg_req_field(req, F_BLOCKED)->num != 0;
	tg_budget_input_from_values(tg_req_field(req, F_BUDGET), &in.budget);
	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	if ((rc = tg_key_create(db, &in, "master_key", &k, err)) != TG_OK)
		return rc;
	/* The only answer that shows the key: it is not stored. */
	o = json_object_new_object();
	json_object_object_add(o, "key", json_object_new_string(in.key));
	info = tg_key_to_json(&k);
	json_object_object_foreach(info, name, value)
	{
		json_object_object_add(o, name, json_object_get(value));
	}
	json_object_put(info);
	tg_key_free(&k);
	tg_req_respond_json(req, 200, o);
	return TG_OK;
}

static const struct tg_field info_fields[] = {
        {"key", TG_FIELD_STRING, 0},
};

/*
 * /key/info?key=<key or token>: a virtual key may ask about itself only,
 * and without the parameter it is the key that asks.
 */
static enum tg_rc
handle_info(struct tg_req *req, struct tg_err *err)
{
	const struct tg_key *self = tg_req_key(req);
	struct json_object *o, *info, *ms = NULL;
	struct tg_key k;
	struct tg_db *db;
	char token[65];
	enum tg_rc rc;

	if (tg_req_str(req, 0) != NULL) {
		if ((rc = token_field(req, 0, token, err)) != TG_OK)
			return rc;
	} else if (self != NULL) {
		memcpy(token, self->token, sizeof(token));
	} else {
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "key",
		                  "Missing required field: key");
	}
	if (self != NULL && strcmp(token, self->token) != 0)
		return tg_err_set(err, TG_ERR_FORBIDDEN, "key",
		                  "A virtual key may only ask /key/info about "
		                  "itself.");
	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	if ((rc = tg_key_get(db, token, &k, err)) != TG_OK)
		return rc;
	rc = tg_account_model_spend(db, TG_ACCOUNT_KEY, k.token, &ms, err);
	if (rc != TG_OK) {
		tg_key_free(&k);
		return rc;
	}
	o = json_object_new_object();
	json_object_object_add(o, "key", json_object_new_string(k.token));
	info = tg_key_to_json(&k);
	json_object_object_add(info, "model_spend", ms);
	json_object_object_add(o, "info", info);
	tg_key_free(&k);
	tg_req_respond_json(req, 200, o);
	return TG_OK;
}

/* /key/update: key (key or token) + the fields of /key/generate but key;
 * null clears (models null: every model again). */
static const struct tg_field update_fields[] = {
        {"key", TG_FIELD_STRING, TG_FIELD_REQUIRED},
        {"key_alias", TG_FIELD_ID, 0},
        {"duration", TG_FIELD_DURATION, 0},
        {"models", TG_FIELD_ARRAY, 0},
        {"metadata", TG_FIELD_OBJECT, 0},
        {"blocked", TG_FIELD_BOOL, 0},
        {"aliases", TG_FIELD_OBJECT, 0},
        TG_BUDGET_FIELDS,
};

static enum tg_rc
handle_update(struct tg_req *req, struct tg_err *err)
{
	struct tg_key_update in;
	struct json_object *all_models = NULL, *no_aliases = NULL;
	struct tg_key k;
	struct tg_db *db;
	const struct tg_value *meta = tg_req_field(req, F_METADATA);
	enum tg_rc rc;

	memset(&in, 0, sizeof(in));
	if ((rc = token_field(req, F_KEY, in.token, err)) != TG_OK)
		return rc;
	in.key_alias = opt_str(req, F_ALIAS);
	in.duration = opt_str(req, F_DURATION);
	if (tg_req_field(req, F_MODELS)->given) {
		in.models = tg_req_field(req, F_MODELS)->json;
		if ((rc = tg_key_check_models(in.models, err)) != TG_OK)
			return rc;
	} else if (tg_req_field(req, F_MODELS)->null) {
		in.models = all_models = json_object_new_array(); /* [] */
	}
	/* aliases null: none any more. */
	if (tg_req_field(req, F_ALIASES)->given) {
		in.aliases = tg_req_field(req, F_ALIASES)->json;
		if ((rc = tg_key_check_aliases(in.aliases, err)) != TG_OK) {
			json_object_put(all_models);
			return rc;
		}
	} else if (tg_req_field(req, F_ALIASES)->null) {
		in.aliases = no_aliases = json_object_new_object(); /* {} */
	}
	in.metadata.set = meta->given || meta->null;
	in.metadata.v = object_text(req, F_METADATA);
	in.blocked_set = tg_req_field(req, F_BLOCKED)->given;
	in.blocked = tg_req_field(req, F_BLOCKED)->num != 0;
	tg_budget_input_from_values(tg_req_field(req, F_BUDGET), &in.budget);
	if ((rc = tg_req_db(req, &db, err)) == TG_OK)
		rc = tg_key_update(db, &in, "master_key", &k, err);
	json_object_put(all_models);
	json_object_put(no_aliases);
	return respond_key(req, rc, &k);
}

/* /key/delete {"keys": [...]}: all or nothing, as /customer/delete. */
static const struct tg_field delete_fields[] = {
        {"keys", TG_FIELD_ID_LIST, TG_FIELD_REQUIRED},
};

static enum tg_rc
handle_delete(struct tg_req *req, struct tg_err *err)
{
	struct json_object *keys = tg_req_field(req, 0)->json;
	struct json_object *o;
	struct tg_db *db;
	enum tg_rc rc;

	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	if ((rc = tg_key_delete(db, keys, err)) != TG_OK)
		return rc;
	o = json_object_new_object();
	json_object_object_add(o, "deleted_keys", json_object_get(keys));
	tg_req_respond_json(req, 200, o);
	return TG_OK;
}

/* /key/block, /key/unblock {"key": ...}: the key as it now is. */
static const struct tg_field block_fields[] = {
        {"key", TG_FIELD_STRING, TG_FIELD_REQUIRED},
};

static enum tg_rc
set_blocked(struct tg_req *req, bool blocked, struct tg_err *err)
{
	struct tg_key k;
	struct tg_db *db;
	char token[65];
	enum tg_rc rc;

	if ((rc = token_field(req, 0, token, err)) != TG_OK)
		return rc;
	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	rc = tg_key_set_blocked(db, token, blocked, &k, err);
	return respond_key(req, rc, &k);
}

static enum tg_rc
handle_block(struct tg_req *req, struct tg_err *err)
{
	return set_blocked(req, true, err);
}

static enum tg_rc
handle_unblock(struct tg_req *req, struct tg_err *err)
{
	return set_blocked(req, false, err);
}

/* GET /key/list?page=&page_size=&key_alias=&return_full_object= */
static const struct tg_field list_fields[] = {
        {"page", TG_FIELD_COUNT, 0},
        {"page_size", TG_FIELD_COUNT, 0},
        {"key_alias", TG_FIELD_ID, 0},
        {"return_full_object", TG_FIELD_STRING, 0}, /* "true" / "false" */
};

static enum tg_rc
handle_list(struct tg_req *req, struct tg_err *err)
{
	const struct tg_value *page = tg_req_field(req, 0);
	const struct tg_value *size = tg_req_field(req, 1);
	const char *full = tg_req_str(req, 3);
	struct tg_key_filter f = {NULL, 1, TG_KEY_PAGE_SIZE, false};
	struct json_object *o;
	struct tg_db *db;
	enum tg_rc rc;

	if (page->given && page->num < 1)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "page",
		                  "page must be an integer >= 1");
	if (size->given && (size->num < 1 || size->num > TG_KEY_PAGE_SIZE_MAX))
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "page_size",
		                  "page_size must be an integer from 1 to %d",
		                  TG_KEY_PAGE_SIZE_MAX);
	if (full != NULL && strcmp(full, "true") != 0 &&
	    strcmp(full, "false") != 0)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE,
		                  "return_full_object",
		                  "return_full_object must be true or false");
	if (page->given)
		f.page = page->num;
	if (size->given)
		f.page_size = size->num;
	f.key_alias = tg_req_str(req, 2);
	f.full = full != NULL && strcmp(full, "true") == 0;
	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	if ((rc = tg_key_list(db, &f, &o, err)) != TG_OK)
		return rc;
	tg_req_respond_json(req, 200, o);
	return TG_OK;
}

#define ROUTE(path, method, auth, body, fields, handler)                       \
	{                                                                      \
		"/key/" path, method, auth, body, fields, NFIELDS(fields),     \
		        handler                                                \
	}

static const struct tg_route routes[] = {
        ROUTE("generate", "POST", TG_AUTH_MASTER, TG_BODY_MGMT, generate_fields,
              handle_generate),
        ROUTE("info", "GET", TG_AUTH_MASTER | TG_AUTH_KEY, TG_BODY_NONE,
              info_fields, handle_info),
        ROUTE("update", "POST", TG_AUTH_MASTER, TG_BODY_MGMT, update_fields,
              handle_update),
        ROUTE("delete", "POST", TG_AUTH_MASTER, TG_BODY_MGMT, delete_fields,
              handle_delete),
        ROUTE("block", "POST", TG_AUTH_MASTER, TG_BODY_MGMT, block_fields,
              handle_block),
        ROUTE("unblock", "POST", TG_AUTH_MASTER, TG_BODY_MGMT, block_fields,
              handle_unblock),
        ROUTE("list", "GET", TG_AUTH_MASTER, TG_BODY_NONE, list_fields,
              handle_list),
};

static const struct tg_program program = {
        .name = "key", .routes = routes, .nroutes = NFIELDS(routes)};

int
main(void)
{
	return tg_app_main(&program);
}
