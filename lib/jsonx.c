/*
 * jsonx: shared JSON values (see jsonx.h).
 */
#include <stdlib.h>

#include "jsonx.h"

struct json_object *
tg_json_money(tg_money m)
{
	char text[TG_MONEY_STRLEN];

	tg_money_format(m, text, sizeof(text));
	/* The double is only json-c's idea of the value; the text printed is
	 * the exact one. */
	return json_object_new_double_s(strtod(text, NULL), text);
}

struct json_object *
tg_json_str(const char *s)
{
	return s != NULL ? json_object_new_string(s) : NULL;
}
