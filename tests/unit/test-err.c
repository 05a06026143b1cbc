/*
 * test-err: error messages (lib/err.c).  A message goes into the JSON
 * envelope, so whatever it quotes and wherever it is cut, it must be valid
 * UTF-8 (found by tests/fuzz/fuzz-front: "GET /\xa0" was answered with a
 * 404 whose JSON was not UTF-8).
 */
#include <stdbool.h>
#include <string.h>

#include "../tap.h"
#include "err.h"
#include "util.h"

#define ROW __LINE__

static const struct row {
	int line;
	const char *in;   /* formatted with "%s" */
	const char *want; /* the message */
} rows[] = {
        {ROW, "Not Found: /plain", "Not Found: /plain"},
        {ROW, "Not Found: /\xa0", "Not Found: /?"},
        {ROW, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x91\x88",
         "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x91\x88"},
        {ROW, "overlong \xc0\xaf", "overlong ??"},
        {ROW, "surrogate \xed\xa0\x80", "surrogate ???"},
        {ROW, "above U+10FFFF \xf4\x90\x80\x80", "above U+10FFFF ????"},
        {ROW, "cut \xe2\x82", "cut ??"},
        {ROW, "lone continuation \x80x", "lone continuation ?x"},
        {ROW, "\xff\xfe", "??"},
};

int
main(void)
{
	struct tg_err err;
	char longer[2000];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];

		tg_err_clear(&err);
		tg_err_set(&err, TG_ERR_NOT_FOUND, NULL, "%s", r->in);
		tap_ok(strcmp(err.message, r->want) == 0, __FILE__, r->line,
		       "message \"%s\"", r->want);
	}

	/* Cut by the end of the buffer in the middle of a character. */
	memset(longer, 'a', sizeof(longer));
	memcpy(longer + sizeof(err.message) - 3, "\xf0\x9f\x91\x88", 4);
	longer[sizeof(longer) - 1] = '\0';
	tg_err_set(&err, TG_ERR_BAD_REQUEST, NULL, "%s", longer);
	ok(strlen(err.message) == sizeof(err.message) - 1,
	   "a long message is cut to the buffer");
	ok(tg_utf8_valid(err.message, strlen(err.message)),
	   "and is valid UTF-8 where a character was cut");
	ok(strcmp(err.message + sizeof(err.message) - 4, "a??") == 0,
	   "the cut character's bytes became '?'");
	return done_testing();
}
