/*
 * tag_routes: the /tag/ routes (see tag_routes.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "customer.h"
#include "key.h"
#include "tag.h"
#include "tag_routes.h"
#include "util.h"

/* /tag/new and /tag/update (where null clears). */
const struct tg_field tg_tag_routes_fields[TG_TAG_ROUTES_NFIELDS] = {
        {"name", TG_FIELD_ID, TG_FIELD_REQUIRED},
        {"description", TG_FIELD_STRING, 0},
        {"models", TG_FIELD_ARRAY, 0},
        {"blocked", TG_FIELD_BOOL, 0},
        {"budget_id", TG_FIELD_ID, 0},
        TG_BUDGET_FIELDS,
};
enum { F_NAME, F_DESCRIPTION, F_MODELS, F_BLOCKED, F_BUDGET_ID, F_BUDGET };

const struct tg_field tg_tag_routes_info_fields[1] = {
        {"names", TG_FIELD_ID_LIST, TG_FIELD_REQUIRED},
};

const struct tg_field tg_tag_routes_delete_fields[1] = {
        {"name", TG_FIELD_ID, TG_FIELD_REQUIRED},
};

/* The fields of /tag/new and /tag/update into *in. */
static enum tg_rc
input(struct tg_req *req, struct tg_tag_input *in, struct tg_err *err)
{
	const struct tg_value *models = tg_req_field(req, F_MODELS);
	const struct tg_value *desc = tg_req_field(req, F_DESCRIPTION);
	enum tg_rc rc;

	memset(in, 0, sizeof(*in));
	in->name = tg_req_str(req, F_NAME);
	in->description = tg_req_str(req, F_DESCRIPTION);
	in->description_set = desc->given || desc->null;
	if (models->given) {
		if ((rc = tg_key_check_models(models->json, err)) != TG_OK)
			return rc;
		in->models = models->json;
		in->models_set = true;
	} else if (models->null) {
		in->models_set = true; /* NULL: any model again */
	}
	in->blocked_set = tg_req_field(req, F_BLOCKED)->given;
	in->blocked = tg_req_field(req, F_BLOCKED)->num != 0;
	in->budget_id = tg_req_str(req, F_BUDGET_ID);
	tg_budget_input_from_values(tg_req_field(req, F_BUDGET), &in->budget);
	return TG_OK;
}

/* {"message": "Tag <name> <done> successfully", "tag": {...}}. */
static void
respond_tag(struct tg_req *req, const char *done, struct tg_tag *t)
{
	struct json_object *o = json_object_new_object();
	char *message;
	size_t len = strlen(t->name) + strlen(done) + 32;

	message = tg_xmalloc(len);
	snprintf(message, len, "Tag %s %s successfully", t->name, done);
	json_object_object_add(o, "message", json_object_new_string(message));
	json_object_object_add(o, "tag", tg_tag_to_json(t));
	free(message);
	tg_tag_free(t);
	tg_req_respond_json(req, 200, o);
}

/* /tag/new and /tag/update: the body's fields, written by write, and the
 * tag as it then is. */
static enum tg_rc
write_tag(struct tg_req *req,
          enum tg_rc (*write)(struct tg_db *, const struct tg_tag_input *,
                              const char *, struct tg_tag *, struct tg_err *),
          const char *done, struct tg_err *err)
{
	struct tg_tag_input in;
	struct tg_tag t;
	struct tg_db *db;
	enum tg_rc rc;

	if ((rc = input(req, &in, err)) != TG_OK)
		return rc;
	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	if ((rc = write(db, &in, "master_key", &t, err)) != TG_OK)
		return rc;
	respond_tag(req, done, &t);
	return TG_OK;
}

enum tg_rc
tg_tag_routes_new(struct tg_req *req, struct tg_err *err)
{
	return write_tag(req, tg_tag_create, "created", err);
}

enum tg_rc
tg_tag_routes_update(struct tg_req *req, struct tg_err *err)
{
	return write_tag(req, tg_tag_update, "updated", err);
}

/* {"<name>": {...}, ...} of the names asked for; LiteLLM's 404 naming
 * the missing ones when any is. */
enum tg_rc
tg_tag_routes_info(struct tg_req *req, struct tg_err *err)
{
	struct json_object *names = tg_req_field(req, 0)->json;
	struct json_object *o, *missing;
	struct tg_db *db;
	enum tg_rc rc;

	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	o = json_object_new_object();
	missing = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(names) && rc == TG_OK;
	     i++) {
		const char *name = json_object_get_string(
		        json_object_array_get_idx(names, i));
		struct tg_tag t;

		rc = tg_tag_get(db, name, &t, err);
		if (rc == TG_ERR_NOT_FOUND) {
			tg_err_clear(err);
			json_object_array_add(missing,
			                      json_object_new_string(name));
			rc = TG_OK;
			continue;
		}
		if (rc == TG_OK) {
			json_object_object_add(o, name, tg_tag_to_json(&t));
			tg_tag_free(&t);
		}
	}
	if (rc == TG_OK && json_object_array_length(missing) > 0) {
		char *text = tg_customer_ids_text(missing);

		rc = tg_err_set(err, TG_ERR_NOT_FOUND, "names",
		                "Tags not found: %s", text);
		free(text);
	}
	json_object_put(missing);
	if (rc != TG_OK) {
		json_object_put(o);
		return rc;
	}
	tg_req_respond_json(req, 200, o);
	return TG_OK;
}

enum tg_rc
tg_tag_routes_delete(struct tg_req *req, struct tg_err *err)
{
	const char *name = tg_req_str(req, 0);
	struct json_object *o;
	struct tg_db *db;
	char *message;
	size_t len = strlen(name) + 32;
	enum tg_rc rc;

	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	if ((rc = tg_tag_delete(db, name, err)) != TG_OK)
		return rc;
	message = tg_xmalloc(len);
	snprintf(message, len, "Tag %s deleted successfully", name);
	o = json_object_new_object();
	json_object_object_add(o, "message", json_object_new_string(message));
	free(message);
	tg_req_respond_json(req, 200, o);
	return TG_OK;
}

enum tg_rc
tg_tag_routes_list(struct tg_req *req, struct tg_err *err)
{
	struct json_object *arr;
	struct tg_db *db;
	enum tg_rc rc;

	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	if ((rc = tg_tag_list(db, &arr, err)) != TG_OK)
		return rc;
	tg_req_respond_json(req, 200, arr);
	return TG_OK;
}
