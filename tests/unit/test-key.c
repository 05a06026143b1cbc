/*
 * test-key: the pure helpers of virtual keys (lib/key.c): the shape and
 * randomness of generated keys, key_name, chosen keys, the token a request
 * names a key by, and the model check.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "../tap.h"
#include "key.h"
#include "util.h"

#define ROW __LINE__

static bool
url_safe(const char *s)
{
	for (; *s != '\0'; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return false;
	return true;
}

static void
test_new_secret(void)
{
	char a[TG_KEY_NEW_LEN], b[TG_KEY_NEW_LEN];
	bool shape = true, distinct = true;
	unsigned seen_dash = 0, seen_underscore = 0;

	for (int i = 0; i < 2000; i++) {
		tg_key_new_secret(a);
		tg_key_new_secret(b);
		shape &= strncmp(a, "sk-", 3) == 0 && strlen(a) == 25 &&
		         url_safe(a + 3) && tg_key_valid_chosen(a);
		distinct &= strcmp(a, b) != 0;
		seen_dash += strchr(a + 3, '-') != NULL;
		seen_underscore += strchr(a + 3, '_') != NULL;
	}
	ok(shape, "a new key is sk- + 22 URL-safe characters (128 bits)");
	ok(distinct, "2000 pairs of new keys all differ");
	ok(seen_dash > 0 && seen_underscore > 0,
	   "the whole alphabet is used (- %u times, _ %u times)", seen_dash,
	   seen_underscore);
	is_int(26, TG_KEY_NEW_LEN, "TG_KEY_NEW_LEN holds sk-, 22 and a NUL");
}

static const struct name_row {
	int line;
	const char *key, *name;
} name_rows[] = {
        {ROW, "sk-xb7kyP9nnDeMlz8aiOysBQ", "sk-...ysBQ"},
        {ROW, "sk-1234", "sk-...1234"},
        {ROW, "sk-1", "sk-...sk-1"},
        {ROW, "sk-", "sk-...sk-"},
};

static const struct chosen_row {
	int line;
	const char *key;
	bool valid;
} chosen_rows[] = {
        {ROW, "sk-my-chosen-key-0001", true},
        {ROW, "sk-a", true},
        {ROW, "sk-", false},
        {ROW, "my-key", false},
        {ROW, "SK-abc", false},
        {ROW, "sk-with space", false},
        {ROW, "sk-tab\there", false},
        {ROW, "sk-\xc3\xa9", false},
        {ROW, "sk-del\x7f", false},
};

static void
test_name_and_chosen(void)
{
	char name[TG_KEY_NAME_LEN], big[300];

	for (size_t i = 0; i < sizeof(name_rows) / sizeof(name_rows[0]); i++) {
		tg_key_name(name_rows[i].key, name);
		is_string(name_rows[i].name, name, "key_name of %s (line %d)",
		          name_rows[i].key, name_rows[i].line);
	}
	for (size_t i = 0; i < sizeof(chosen_rows) / sizeof(chosen_rows[0]);
	     i++)
		ok(tg_key_valid_chosen(chosen_rows[i].key) ==
		           chosen_rows[i].valid,
		   "chosen key %s: %s (line %d)", chosen_rows[i].key,
		   chosen_rows[i].valid ? "valid" : "refused",
		   chosen_rows[i].line);
	memset(big, 'a', sizeof(big));
	memcpy(big, "sk-", 3);
	big[TG_KEY_MAX] = '\0';
	ok(tg_key_valid_chosen(big), "a chosen key of %d characters",
	   TG_KEY_MAX);
	big[TG_KEY_MAX] = 'a';
	big[TG_KEY_MAX + 1] = '\0';
	ok(!tg_key_valid_chosen(big), "one more is refused");
}

static void
test_token_of(void)
{
	static const char token[] =
	        "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df7"
	        "78539800c9f1243fe6b4b";
	char out[65], upper[65];

	ok(tg_key_token_of("sk-1234", out) && strcmp(out, token) == 0,
	   "a key names its SHA-256");
	ok(tg_key_token_of(token, out) && strcmp(out, token) == 0,
	   "a token names itself");
	for (size_t i = 0; i < 64; i++)
		upper[i] = (char)(token[i] >= 'a' ? token[i] - 32 : token[i]);
	upper[64] = '\0';
	ok(tg_key_token_of(upper, out) && strcmp(out, token) == 0,
	   "a token in upper case, in lower case");
	ok(!tg_key_token_of("my-key", out), "neither a key nor a token");
	ok(!tg_key_token_of(token + 1, out), "63 hex digits are no token");
	upper[10] = 'g';
	ok(!tg_key_token_of(upper, out), "a non-hex digit is no token");
}

static void
test_models(void)
{
	struct tg_key k;

	memset(&k, 0, sizeof(k));
	ok(tg_key_allows_model(&k, "any"), "no models list: every model");
	k.models = json_tokener_parse("[]");
	ok(tg_key_allows_model(&k, "any"), "models []: every model");
	json_object_put(k.models);
	k.models = json_tokener_parse("[\"fake-gpt\", \"gpt-4o\"]");
	ok(tg_key_allows_model(&k, "gpt-4o"), "a listed model");
	ok(!tg_key_allows_model(&k, "gpt-4"), "not a prefix of one");
	ok(!tg_key_allows_model(&k, "GPT-4o"), "names are case-sensitive");
	json_object_put(k.models);
	k.models = json_tokener_parse("[\"all-proxy-models\"]");
	ok(tg_key_allows_model(&k, "anything"), "all-proxy-models: every one");
	json_object_put(k.models);
}

static void
test_check_models(void)
{
	static const struct {
		int line;
		const char *json;
		bool valid;
	} rows[] = {
	        {ROW, "[]", true},
	        {ROW, "[\"fake-gpt\", \"x\"]", true},
	        {ROW, "[5]", false},
	        {ROW, "[\"\"]", false},
	        {ROW, "[null]", false},
	        {ROW, "[[\"a\"]]", false},
	        {ROW, "\"fake-gpt\"", false},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct json_object *m = json_tokener_parse(rows[i].json);
		struct tg_err err;

		tg_err_clear(&err);
		ok((tg_key_check_models(m, &err) == TG_OK) == rows[i].valid &&
		           (rows[i].valid || strcmp(err.param, "models") == 0),
		   "models %s: %s (line %d)", rows[i].json,
		   rows[i].valid ? "valid" : "422 models", rows[i].line);
		json_object_put(m);
	}
}

int
main(void)
{
	test_new_secret();
	test_name_and_chosen();
	test_token_of();
	test_models();
	test_check_models();
	return done_testing();
}
