/*
 * jsonx: the JSON values every answer builds the same way (json-c).
 *
 * Money is printed as the shortest exact decimal (SPEC 1): json-c keeps the
 * text given here and prints it as is, so no binary floating point comes
 * between the ledger's value and the client.
 */
#ifndef TG_JSONX_H
#define TG_JSONX_H

#include <json-c/json.h>

#include "money.h"

/* A JSON number whose text is the exact shortest decimal of m (new ref). */
struct json_object *tg_json_money(tg_money m);

/* A JSON string of s, or NULL (JSON null) when s is NULL (new ref). */
struct json_object *tg_json_str(const char *s);

#endif
