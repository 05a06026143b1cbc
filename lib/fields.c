/*
 * fields: the validators behind every endpoint's field table.
 *
 * Numbers are taken from their JSON text, never through a double, so
 * "max_budget": 0.1 is exactly 0.1 USD and "max_budget": "0" (the seed's
 * form) is accepted like 0.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fields.h"
#include "money.h"
#include "period.h"
#include "util.h"

#define ID_MAX 255

bool
tg_id_valid(const char *s, size_t len)
{
	return s != NULL && len >= 1 && len <= ID_MAX && tg_utf8_valid(s, len);
}

/* The text of a number or numeric string value, or NULL. */
static const char *
number_text(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_int:
	case json_type_double:
	case json_type_string: return json_object_get_string(v);
	case json_type_null:
	case json_type_boolean:
	case json_type_object:
	case json_type_array: return NULL;
	}
	return NULL;
}

/* A short printable rendering of a bad value for messages. */
static void
received(struct json_object *v, char *buf, size_t len)
{
	const char *s = json_object_get_type(v) == json_type_string
	                        ? json_object_get_string(v)
	                        : json_object_to_json_string_ext(
	                                  v, JSON_C_TO_STRING_PLAIN);
	size_t n = strlen(s);

	if (n > 64)
		snprintf(buf, len, "%.64s...", s);
	else
		snprintf(buf, len, "%s", s);
}

static enum tg_rc
check_string(const struct tg_field *f, struct json_object *v,
             struct tg_value *out, struct tg_err *err)
{
	if (!json_object_is_type(v, json_type_string))
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, f->name,
		                  "%s must be a string", f->name);
	out->str = json_object_get_string(v);
	out->len = (size_t)json_object_get_string_len(v);
	if (!tg_utf8_valid(out->str, out->len) ||
	    memchr(out->str, '\0', out->len) != NULL)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, f->name,
		                  "%s must be valid UTF-8 text", f->name);
	return TG_OK;
}

/* OpenAI's words for the type of a value in its "Invalid type" errors. */
static const char *
type_phrase(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null: return "null";
	case json_type_boolean: return "a boolean";
	case json_type_int: return "an integer";
	case json_type_double: return "a decimal";
	case json_type_string: return "a string";
	case json_type_object: return "an object";
	case json_type_array: return "an array";
	}
	return "a value";
}

/* Whether v is present and not JSON null. */
static bool
member(struct json_object *obj, const char *key, struct json_object **v)
{
	return json_object_object_get_ex(obj, key, v) && *v != NULL;
}

/*
 * The shape of chat messages (OpenAI's): each an object with a string
 * "role"; "content" absent, null (an assistant message with tool_calls), a
 * string, or an array of parts, each an object with a string "type".  What
 * a role or part type means is the upstream's to judge; this only keeps
 * values that no upstream takes from being forwarded (or counted).
 */
static enum tg_rc
check_messages(const struct tg_field *f, struct json_object *v,
               struct tg_err *err)
{
	struct json_object *bad;
	char where[64];
	size_t n;

	if (!json_object_is_type(v, json_type_array) ||
	    json_object_array_length(v) == 0)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, f->name,
		                  "%s must be a non-empty array", f->name);
	n = json_object_array_length(v);
	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(v, i);
		struct json_object *role, *content;

		snprintf(where, sizeof(where), "%s[%zu]", f->name, i);
		bad = m;
		if (!json_object_is_type(m, json_type_object))
			goto not_object;
		snprintf(where, sizeof(where), "%s[%zu].role", f->name, i);
		if (!member(m, "role", &role))
			goto missing;
		if (!json_object_is_type(role, json_type_string))
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, where,
			                  "Invalid type for '%s': expected a "
			                  "string, but got %s instead.",
			                  where, type_phrase(role));
		if (!member(m, "content", &content) ||
		    json_object_is_type(content, json_type_string))
			continue;
		snprintf(where, sizeof(where), "%s[%zu].content", f->name, i);
		if (!json_object_is_type(content, json_type_array))
			return tg_err_set(
			        err, TG_ERR_UNPROCESSABLE, where,
			        "Invalid type for '%s': expected one "
			        "of a string or array of objects, but "
			        "got %s instead.",
			        where, type_phrase(content));
		for (size_t j = 0; j < json_object_array_length(content); j++) {
			struct json_object *part =
			        json_object_array_get_idx(content, j);
			struct json_object *type;

			snprintf(where, sizeof(where), "%s[%zu].content[%zu]",
			         f->name, i, j);
			bad = part;
			if (!json_object_is_type(part, json_type_object))
				goto not_object;
			snprintf(where, sizeof(where),
			         "%s[%zu].content[%zu].type", f->name, i, j);
			if (!member(part, "type", &type))
				goto missing;
			if (!json_object_is_type(type, json_type_string))
				return tg_err_set(
				        err, TG_ERR_UNPROCESSABLE, where,
				        "Invalid type for '%s': expected a "
				        "string, but got %s instead.",
				        where, type_phrase(type));
		}
	}
	return TG_OK;

not_object:
	return tg_err_set(err, TG_ERR_UNPROCESSABLE, where,
	                  "Invalid type for '%s': expected an object, but got "
	                  "%s instead.",
	                  where, type_phrase(bad));
missing:
	return tg_err_set(err, TG_ERR_UNPROCESSABLE, where,
	                  "Missing required parameter: '%s'.", where);
}

/* A token of a prompt: an integer 0..TG_FIELD_TOKENS_MAX. */
static bool
is_token(struct json_object *v)
{
	int64_t t;

	if (!json_object_is_type(v, json_type_int))
		return false;
	t = json_object_get_int64(v);
	return t >= 0 && t <= TG_FIELD_TOKENS_MAX;
}

/*
 * A prompt of the embeddings and completions APIs (OpenAI's four shapes);
 * *bound gets the bytes of its text plus its tokens: a BPE token covers at
 * least one byte of text, so the sum bounds the tokens the upstream reads.
 */
static enum tg_rc
check_prompt(const struct tg_field *f, struct json_object *v, int64_t *bound,
             struct tg_err *err)
{
	enum { TEXTS, TOKENS, TOKEN_ARRAYS } kind;
	struct json_object *first;
	char where[64];
	size_t n;

	*bound = 0;
	if (json_object_is_type(v, json_type_string)) {
		*bound = json_object_get_string_len(v);
		return TG_OK;
	}
	if (!json_object_is_type(v, json_type_array) ||
	    (n = json_object_array_length(v)) == 0)
		return tg_err_set(
		        err, TG_ERR_UNPROCESSABLE, f->name,
		        "Invalid type for '%s': expected a string, or a "
		        "non-empty array of strings, of tokens or of "
		        "token arrays",
		        f->name);
	first = json_object_array_get_idx(v, 0);
	kind = json_object_is_type(first, json_type_string)  ? TEXTS
	       : json_object_is_type(first, json_type_array) ? TOKEN_ARRAYS
	                                                     : TOKENS;
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);
		bool fine = false;

		switch (kind) {
		case TEXTS:
			if ((fine = json_object_is_type(e, json_type_string)))
				*bound += json_object_get_string_len(e);
			break;
		case TOKENS:
			if ((fine = is_token(e)))
				*bound += 1;
			break;
		case TOKEN_ARRAYS:
			fine = json_object_is_type(e, json_type_array) &&
			       json_object_array_length(e) > 0;
			for (size_t j = 0;
			     fine && j < json_object_array_length(e); j++)
				fine = is_token(
				        json_object_array_get_idx(e, j));
			if (fine)
				*bound += (int64_t)json_object_array_length(e);
			break;
		}
		if (fine)
			continue;
		snprintf(where, sizeof(where), "%s[%zu]", f->name, i);
		return tg_err_set(
		        err, TG_ERR_UNPROCESSABLE, where,
		        "Invalid value for '%s': each element must be "
		        "of the first one's kind (a string, a token "
		        "from 0 to %d, or a non-empty array of tokens)",
		        where, TG_FIELD_TOKENS_MAX);
	}
	return TG_OK;
}

/* A Responses API input: a string, or items (objects). */
static enum tg_rc
check_input(const struct tg_field *f, struct json_object *v, struct tg_err *err)
{
	char where[64];

	if (json_object_is_type(v, json_type_string))
		return TG_OK;
	if (!json_object_is_type(v, json_type_array))
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, f->name,
		                  "Invalid type for '%s': expected one of a "
		                  "string or array of input items, but got %s "
		                  "instead.",
		                  f->name, type_phrase(v));
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		struct json_object *item = json_object_array_get_idx(v, i);
		struct json_object *m;

		snprintf(where, sizeof(where), "%s[%zu]", f->name, i);
		if (!json_object_is_type(item, json_type_object))
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, where,
			                  "Invalid type for '%s': expected an "
			                  "object, but got %s instead.",
			                  where, type_phrase(item));
		for (int k = 0; k < 2; k++) {
			const char *key = k == 0 ? "type" : "role";

			if (!member(item, key, &m) ||
			    json_object_is_type(m, json_type_string))
				continue;
			snprintf(where, sizeof(where), "%s[%zu].%s", f->name, i,
			         key);
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, where,
			                  "Invalid type for '%s': expected a "
			                  "string, but got %s instead.",
			                  where, type_phrase(m));
		}
	}
	return TG_OK;
}

static enum tg_rc
check_value(const struct tg_field *f, struct json_object *v,
            struct tg_value *out, struct tg_err *err)
{
	char shown[80];
	const char *text;
	enum tg_rc rc;
	struct tg_period period;
	time_t t;

	switch (f->kind) {
	case TG_FIELD_ID:
		/* A number is an id too: it becomes its decimal string. */
		if (json_object_is_type(v, json_type_int)) {
			out->str = json_object_get_string(v);
			out->len = strlen(out->str);
			return TG_OK;
		}
		if ((rc = check_string(f, v, out, err)) != TG_OK)
			return rc;
		if (!tg_id_valid(out->str, out->len))
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, f->name,
			                  "%s must be 1 to 255 bytes of valid "
			                  "UTF-8",
			                  f->name);
		return TG_OK;
	case TG_FIELD_STRING: return check_string(f, v, out, err);
	case TG_FIELD_MONEY:
		text = number_text(v);
		if (text == NULL || !tg_money_parse(text, &out->num) ||
		    out->num < 0) {
			received(v, shown, sizeof(shown));
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, f->name,
			                  "%s must be a non-negative finite "
			                  "number. Received: %s",
			                  f->name, shown);
		}
		return TG_OK;
	case TG_FIELD_COUNT:
		text = number_text(v);
		if (text == NULL || !tg_decimal_parse(text, 0, &out->num) ||
		    out->num < 0) {
			received(v, shown, sizeof(shown));
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, f->name,
			                  "%s must be a non-negative integer. "
			                  "Received: %s",
			                  f->name, shown);
		}
		return TG_OK;
	case TG_FIELD_TOKENS:
		/* Any exact spelling of an integer, as for COUNT ("5", 5.0,
		 * 5e0); " 5", 5.5 and 0 are refused. */
		text = number_text(v);
		if (text == NULL || !tg_decimal_parse(text, 0, &out->num) ||
		    out->num < 1 || out->num > TG_FIELD_TOKENS_MAX) {
			received(v, shown, sizeof(shown));
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, f->name,
			                  "%s must be an integer from 1 to %d. "
			                  "Received: %s",
			                  f->name, TG_FIELD_TOKENS_MAX, shown);
		}
		return TG_OK;
	case TG_FIELD_MESSAGES:
		if ((rc = check_messages(f, v, err)) != TG_OK)
			return rc;
		out->json = v;
		return TG_OK;
	case TG_FIELD_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, f->name,
			                  "%s must be true or false", f->name);
		out->num = json_object_get_boolean(v) ? 1 : 0;
		return TG_OK;
	case TG_FIELD_DURATION:
		if (!json_object_is_type(v, json_type_string) ||
		    !tg_period_parse(json_object_get_string(v), &period)) {
			received(v, shown, sizeof(shown));
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, f->name,
			                  "%s must look like 30s, 30m, 30h, "
			                  "30d, 1w or 1mo. Received: %s",
			                  f->name, shown);
		}
		out->str = json_object_get_string(v);
		out->len = strlen(out->str);
		return TG_OK;
	case TG_FIELD_REGION:
		if (!json_object_is_type(v, json_type_string) ||
		    (strcmp(json_object_get_string(v), "eu") != 0 &&
		     strcmp(json_object_get_string(v), "us") != 0)) {
			received(v, shown, sizeof(shown));
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, f->name,
			                  "%s must be \"eu\" or \"us\". "
			                  "Received: %s",
			                  f->name, shown);
		}
		out->str = json_object_get_string(v);
		out->len = 2;
		return TG_OK;
	case TG_FIELD_OBJECT:
		if (!json_object_is_type(v, json_type_object))
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, f->name,
			                  "%s must be a JSON object", f->name);
		out->json = v;
		return TG_OK;
	case TG_FIELD_PROMPT:
		if ((rc = check_prompt(f, v, &out->num, err)) != TG_OK)
			return rc;
		out->json = v;
		return TG_OK;
	case TG_FIELD_INPUT:
		if ((rc = check_input(f, v, err)) != TG_OK)
			return rc;
		out->json = v;
		return TG_OK;
	case TG_FIELD_ARRAY:
		if (!json_object_is_type(v, json_type_array))
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, f->name,
			                  "%s must be a list", f->name);
		out->json = v;
		return TG_OK;
	case TG_FIELD_ID_LIST:
		if (!json_object_is_type(v, json_type_array) ||
		    json_object_array_length(v) == 0)
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, f->name,
			                  "%s must be a non-empty list of ids",
			                  f->name);
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			struct json_object *e = json_object_array_get_idx(v, i);
			if (!json_object_is_type(e, json_type_string) ||
			    !tg_id_valid(json_object_get_string(e),
			                 (size_t)json_object_get_string_len(e)))
				return tg_err_set(
				        err, TG_ERR_UNPROCESSABLE, f->name,
				        "%s must be a non-empty list of "
				        "ids",
				        f->name);
		}
		out->json = v;
		return TG_OK;
	case TG_FIELD_TIME:
		if (!json_object_is_type(v, json_type_string) ||
		    !tg_time_parse_iso8601(json_object_get_string(v), &t)) {
			received(v, shown, sizeof(shown));
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, f->name,
			                  "%s must be an ISO 8601 time. "
			                  "Received: %s",
			                  f->name, shown);
		}
		out->num = (int64_t)t;
		return TG_OK;
	}
	return tg_err_set(err, TG_ERR_INTERNAL, f->name, "unknown field kind");
}

enum tg_rc
tg_fields_from_json(const struct tg_field *fields, size_t n,
                    struct json_object *obj, struct tg_value *out,
                    struct tg_err *err)
{
	enum tg_rc rc = TG_OK;
	struct tg_value *vals = tg_xcalloc(n ? n : 1, sizeof(*vals));

	for (size_t i = 0; i < n; i++) {
		struct json_object *v = NULL;
		bool present =
		        json_object_object_get_ex(obj, fields[i].name, &v);

		if (present && v == NULL) {
			vals[i].null = true;
		} else if (present) {
			rc = check_value(&fields[i], v, &vals[i], err);
			if (rc != TG_OK)
				goto out;
			vals[i].given = true;
			/* The upstream gets the bound the estimate used: an
			 * upstream may ignore "5" where it honours 5. */
			if (fields[i].kind == TG_FIELD_TOKENS &&
			    !json_object_is_type(v, json_type_int))
				json_object_object_add(
				        obj, fields[i].name,
				        json_object_new_int64(vals[i].num));
		}
		if ((fields[i].flags & TG_FIELD_REQUIRED) && !vals[i].given) {
			rc = tg_err_set(
			        err, TG_ERR_UNPROCESSABLE, fields[i].name,
			        "Missing required field: %s", fields[i].name);
			goto out;
		}
	}
	memcpy(out, vals, n * sizeof(*vals));
out:
	free(vals);
	return rc;
}

/* Percent-decode s[0..len) into dst (NUL-terminated); '+' is a space. */
static size_t
url_decode(const char *s, size_t len, char *dst)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '+') {
			dst[o++] = ' ';
		} else if (s[i] == '%' && i + 2 < len &&
		           tg_hexval((unsigned char)s[i + 1]) >= 0 &&
		           tg_hexval((unsigned char)s[i + 2]) >= 0) {
			dst[o++] =
			        (char)(tg_hexval((unsigned char)s[i + 1]) * 16 +
			               tg_hexval((unsigned char)s[i + 2]));
			i += 2;
		} else {
			dst[o++] = s[i];
		}
	}
	dst[o] = '\0';
	return o;
}

enum tg_rc
tg_fields_from_query(const struct tg_field *fields, size_t n, const char *query,
                     struct tg_value *out, char **storage, struct tg_err *err)
{
	struct json_object *obj = json_object_new_object();
	enum tg_rc rc;
	const char *p = query ? query : "";
	size_t qlen = strlen(p);
	char *buf = tg_xmalloc(qlen + 1);
	char *copy = tg_xmalloc(qlen * 2 + 2);
	size_t used = 0;

	/* Decode each pair; values become JSON strings so one validator
	 * table serves bodies and queries alike. */
	while (*p != '\0') {
		const char *amp = strchr(p, '&');
		size_t plen = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', plen);
		size_t klen = eq ? (size_t)(eq - p) : plen;
		char *key = copy + used;
		size_t kdec = url_decode(p, klen, key);
		size_t vdec;

		used += kdec + 1;
		vdec = eq ? url_decode(eq + 1, plen - klen - 1, buf) : 0;
		if (!eq)
			buf[0] = '\0';
		/* A name with a NUL in it is no name a field has: not the
		 * one before its NUL (end_user_id%00zz is not end_user_id). */
		if (memchr(key, '\0', kdec) == NULL &&
		    !json_object_object_get_ex(obj, key, NULL))
			json_object_object_add(
			        obj, key,
			        json_object_new_string_len(buf, (int)vdec));
		p += plen;
		if (*p == '&')
			p++;
	}
	free(buf);
	free(copy);
	/* A query's true or false is a word: the ones FastAPI takes. */
	for (size_t i = 0; i < n; i++) {
		static const char *const yes[] = {"true", "1", "yes", "on"};
		static const char *const no[] = {"false", "0", "no", "off"};
		struct json_object *v;
		const char *w;

		if (fields[i].kind != TG_FIELD_BOOL ||
		    !json_object_object_get_ex(obj, fields[i].name, &v))
			continue;
		w = json_object_get_string(v);
		for (size_t k = 0; k < 4; k++) {
			if (strcasecmp(w, yes[k]) == 0)
				json_object_object_add(
				        obj, fields[i].name,
				        json_object_new_boolean(1));
			else if (strcasecmp(w, no[k]) == 0)
				json_object_object_add(
				        obj, fields[i].name,
				        json_object_new_boolean(0));
			else
				continue;
			break;
		}
	}

	rc = tg_fields_from_json(fields, n, obj, out, err);
	if (rc == TG_OK) {
		/* The values borrow from obj: keep it alive through *storage
		 * by copying the strings into one block the caller frees. */
		size_t total = 0;
		char *block, *q;

		for (size_t i = 0; i < n; i++)
			if (out[i].str)
				total += out[i].len + 1;
		block = q = tg_xmalloc(total ? total : 1);
		for (size_t i = 0; i < n; i++) {
			if (!out[i].str)
				continue;
			memcpy(q, out[i].str, out[i].len);
			q[out[i].len] = '\0';
			out[i].str = q;
			q += out[i].len + 1;
			out[i].json = NULL;
		}
		*storage = block;
	}
	json_object_put(obj);
	return rc;
}
