/*
 * fields: declarative validation of request fields (kcgi's kvalid idea).
 *
 * Each endpoint declares a table of the fields it reads; the front line
 * checks every given field against its kind before the handler runs, so a
 * handler only ever sees values that are well-formed.  Unknown fields are
 * left alone (ignored on management endpoints, passed through on LLM ones).
 */
#ifndef TG_FIELDS_H
#define TG_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "err.h"

enum tg_field_kind {
	TG_FIELD_ID,     /* 1..255 bytes of valid UTF-8 */
	TG_FIELD_STRING, /* any string (valid UTF-8) */
	TG_FIELD_MONEY,  /* non-negative finite number or numeric string -> num
	                    (1e-10 USD) */
	TG_FIELD_COUNT,  /* non-negative integer or numeric string -> num */
	TG_FIELD_BOOL,   /* true / false -> num 1 / 0 */
	TG_FIELD_DURATION, /* "<N>s|m|h|d|w|mo" */
	TG_FIELD_REGION,   /* "eu" or "us" */
	TG_FIELD_OBJECT,   /* a JSON object -> json */
	TG_FIELD_ID_LIST,  /* a non-empty array of ids -> json */
	TG_FIELD_TIME,     /* ISO 8601 UTC -> num (Unix seconds) */
};

#define TG_FIELD_REQUIRED 0x1u

struct tg_field {
	const char *name;
	enum tg_field_kind kind;
	unsigned flags;
};

/* A validated value.  Pointers borrow from the parsed body / query. */
struct tg_value {
	bool given;      /* present and not null */
	bool null;       /* present as JSON null */
	const char *str; /* ID, STRING, DURATION, REGION: the text */
	size_t len;
	int64_t num;              /* MONEY, COUNT, BOOL, TIME */
	struct json_object *json; /* OBJECT, ID_LIST: borrowed */
};

/*
 * Validate obj (a JSON object) against fields[0..n) into out[0..n).
 * A wrong type or range: TG_ERR_UNPROCESSABLE with param = the field; a
 * missing required field: TG_ERR_UNPROCESSABLE "Missing required field:
 * <name>".  out is fully written only on success.
 */
enum tg_rc tg_fields_from_json(const struct tg_field *fields, size_t n,
                               struct json_object *obj, struct tg_value *out,
                               struct tg_err *err);

/*
 * The same for a URL query string ("a=1&b=x%20y").  Decoded values are
 * kept in *storage (malloc'd, the caller frees it after using out).
 */
enum tg_rc tg_fields_from_query(const struct tg_field *fields, size_t n,
                                const char *query, struct tg_value *out,
                                char **storage, struct tg_err *err);

/* Whether s (len bytes) is an acceptable id (SPEC 1). */
bool tg_id_valid(const char *s, size_t len);

#endif
