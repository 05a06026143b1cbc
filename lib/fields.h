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
	TG_FIELD_TOKENS,   /* a token bound: integer 1..TG_FIELD_TOKENS_MAX
	                      -> num; the body's value becomes that integer */
	TG_FIELD_MESSAGES, /* chat messages: a non-empty array of objects
	                      with a string role -> json */
	TG_FIELD_ARRAY,    /* a JSON array, possibly empty -> json (the
	                      handler checks its elements) */
	TG_FIELD_PROMPT,   /* text to embed or complete: a string, a
	                      non-empty array of strings, of token integers
	                      (0..TG_FIELD_TOKENS_MAX) or of non-empty arrays
	                      of them -> json, num = its bound (bytes of its
	                      text plus its tokens) */
	TG_FIELD_INPUT,    /* a Responses input: a string, or an array of
	                      items, each an object whose "type" and "role",
	                      when present, are strings -> json */
};

/*
 * The largest token bound accepted.  Some upstream servers (llama.cpp) read
 * the bound into a 32-bit int (a larger one could wrap), no model writes
 * 2^31 tokens, and with it the budget estimate (SPEC 4.3) of any price up to
 * 0.42 USD per token fits the ledger's int64 amounts.
 */
#define TG_FIELD_TOKENS_MAX INT32_MAX

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
 * A wrong type or range: TG_ERR_UNPROCESSABLE with param = the field (for
 * MESSAGES the element: "messages[2].content"); a missing required field:
 * TG_ERR_UNPROCESSABLE "Missing required field: <name>".  out is fully
 * written only on success.  A TOKENS value given in another spelling ("5",
 * 5.0, "5e0") is replaced in obj by the JSON integer, so that what is
 * forwarded is the number that was validated.
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

/*
 * Whether s (len bytes) is an acceptable id (SPEC 1): 1..255 bytes of valid
 * UTF-8.  Control characters are ordinary characters of an id, served end
 * to end (README "Customer ids": the lighttpd template lets them through
 * percent-encoded); NUL is refused by every caller (a string field, chat's
 * customer id), so no id holds one.
 */
bool tg_id_valid(const char *s, size_t len);

#endif
