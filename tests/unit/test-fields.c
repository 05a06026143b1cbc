/*
 * test-fields: the validators behind every endpoint's field table.
 */
#include <stdlib.h>
#include <string.h>

#include "fields.h"
#include "money.h"
#include "../tap.h"

static const struct tg_field table[] = {
        {"user_id", TG_FIELD_ID, TG_FIELD_REQUIRED},
        {"max_budget", TG_FIELD_MONEY, 0},
        {"tpm_limit", TG_FIELD_COUNT, 0},
        {"blocked", TG_FIELD_BOOL, 0},
        {"budget_duration", TG_FIELD_DURATION, 0},
        {"allowed_model_region", TG_FIELD_REGION, 0},
        {"model_max_budget", TG_FIELD_OBJECT, 0},
        {"user_ids", TG_FIELD_ID_LIST, 0},
        {"budget_reset_at", TG_FIELD_TIME, 0},
        {"budgets", TG_FIELD_ARRAY, 0},
};
#define NF (sizeof(table) / sizeof(table[0]))

struct row {
	int line;
	const char *json;
	enum tg_rc rc;
	const char *param; /* on failure */
	int field;         /* on success: which field to check, -1 none */
	long long num;
	const char *str;
};

#define R(...)                                                                 \
	{                                                                      \
		__LINE__, __VA_ARGS__                                          \
	}

static const struct row rows[] = {
        R("{\"user_id\":\"a\"}", TG_OK, NULL, 0, 0, "a"),
        R("{\"user_id\":42}", TG_OK, NULL, 0, 0, "42"),
        R("{}", TG_ERR_UNPROCESSABLE, "user_id", -1, 0, NULL),
        R("{\"user_id\":null}", TG_ERR_UNPROCESSABLE, "user_id", -1, 0, NULL),
        R("{\"user_id\":\"\"}", TG_ERR_UNPROCESSABLE, "user_id", -1, 0, NULL),
        R("{\"user_id\":true}", TG_ERR_UNPROCESSABLE, "user_id", -1, 0, NULL),
        R("{\"user_id\":\"x'; DROP TABLE customers;--\"}", TG_OK, NULL, 0, 0,
          "x'; DROP TABLE customers;--"),
        R("{\"user_id\":\"a\",\"max_budget\":\"0\"}", TG_OK, NULL, 1, 0, NULL),
        R("{\"user_id\":\"a\",\"max_budget\":4}", TG_OK, NULL, 1, 40000000000LL,
          NULL),
        R("{\"user_id\":\"a\",\"max_budget\":0.1}", TG_OK, NULL, 1,
          1000000000LL, NULL),
        R("{\"user_id\":\"a\",\"max_budget\":\"0.001413\"}", TG_OK, NULL, 1,
          14130000LL, NULL),
        R("{\"user_id\":\"a\",\"max_budget\":1e-3}", TG_OK, NULL, 1, 10000000LL,
          NULL),
        R("{\"user_id\":\"a\",\"max_budget\":-1}", TG_ERR_UNPROCESSABLE,
          "max_budget", -1, 0, NULL),
        R("{\"user_id\":\"a\",\"max_budget\":\"abc\"}", TG_ERR_UNPROCESSABLE,
          "max_budget", -1, 0, NULL),
        R("{\"user_id\":\"a\",\"max_budget\":true}", TG_ERR_UNPROCESSABLE,
          "max_budget", -1, 0, NULL),
        R("{\"user_id\":\"a\",\"max_budget\":[1]}", TG_ERR_UNPROCESSABLE,
          "max_budget", -1, 0, NULL),
        R("{\"user_id\":\"a\",\"max_budget\":null}", TG_OK, NULL, -1, 0, NULL),
        R("{\"user_id\":\"a\",\"tpm_limit\":\"100\"}", TG_OK, NULL, 2, 100,
          NULL),
        R("{\"user_id\":\"a\",\"tpm_limit\":1.5}", TG_ERR_UNPROCESSABLE,
          "tpm_limit", -1, 0, NULL),
        R("{\"user_id\":\"a\",\"tpm_limit\":-3}", TG_ERR_UNPROCESSABLE,
          "tpm_limit", -1, 0, NULL),
        R("{\"user_id\":\"a\",\"blocked\":false}", TG_OK, NULL, 3, 0, NULL),
        R("{\"user_id\":\"a\",\"blocked\":true}", TG_OK, NULL, 3, 1, NULL),
        R("{\"user_id\":\"a\",\"blocked\":\"true\"}", TG_ERR_UNPROCESSABLE,
          "blocked", -1, 0, NULL),
        R("{\"user_id\":\"a\",\"budget_duration\":\"30d\"}", TG_OK, NULL, 4, 0,
          "30d"),
        R("{\"user_id\":\"a\",\"budget_duration\":\"1mo\"}", TG_OK, NULL, 4, 0,
          "1mo"),
        R("{\"user_id\":\"a\",\"budget_duration\":\"30 days\"}",
          TG_ERR_UNPROCESSABLE, "budget_duration", -1, 0, NULL),
        R("{\"user_id\":\"a\",\"budget_duration\":\"0d\"}",
          TG_ERR_UNPROCESSABLE, "budget_duration", -1, 0, NULL),
        R("{\"user_id\":\"a\",\"allowed_model_region\":\"eu\"}", TG_OK, NULL, 5,
          0, "eu"),
        R("{\"user_id\":\"a\",\"allowed_model_region\":\"asia\"}",
          TG_ERR_UNPROCESSABLE, "allowed_model_region", -1, 0, NULL),
        R("{\"user_id\":\"a\",\"model_max_budget\":{\"gpt-4\":1}}", TG_OK, NULL,
          -1, 0, NULL),
        R("{\"user_id\":\"a\",\"model_max_budget\":\"x\"}",
          TG_ERR_UNPROCESSABLE, "model_max_budget", -1, 0, NULL),
        R("{\"user_id\":\"a\",\"user_ids\":[\"a\",\"b\"]}", TG_OK, NULL, -1, 0,
          NULL),
        R("{\"user_id\":\"a\",\"user_ids\":[]}", TG_ERR_UNPROCESSABLE,
          "user_ids", -1, 0, NULL),
        R("{\"user_id\":\"a\",\"user_ids\":[\"a\",3]}", TG_ERR_UNPROCESSABLE,
          "user_ids", -1, 0, NULL),
        R("{\"user_id\":\"a\",\"budget_reset_at\":\"2026-12-01T00:00:00Z\"}",
          TG_OK, NULL, 8, 1796083200LL, NULL),
        R("{\"user_id\":\"a\",\"budget_reset_at\":\"tomorrow\"}",
          TG_ERR_UNPROCESSABLE, "budget_reset_at", -1, 0, NULL),
        R("{\"user_id\":\"a\",\"unknown\":[1,2,3]}", TG_OK, NULL, -1, 0, NULL),
        R("{\"user_id\":\"a\",\"budgets\":[]}", TG_OK, NULL, -1, 0, NULL),
        R("{\"user_id\":\"a\",\"budgets\":[1,\"x\"]}", TG_OK, NULL, -1, 0,
          NULL),
        R("{\"user_id\":\"a\",\"budgets\":\"x\"}", TG_ERR_UNPROCESSABLE,
          "budgets", -1, 0, NULL),
        R("{\"user_id\":\"a\",\"budgets\":{}}", TG_ERR_UNPROCESSABLE, "budgets",
          -1, 0, NULL),
};

static void
test_ids(void)
{
	char longid[300];

	memset(longid, 'x', sizeof(longid));
	ok(tg_id_valid(longid, 255), "255-byte id is valid");
	ok(!tg_id_valid(longid, 256), "256-byte id is refused");
	ok(!tg_id_valid("", 0), "empty id is refused");
	ok(!tg_id_valid("\xff\xfe", 2), "invalid UTF-8 id is refused");
	ok(tg_id_valid("caf\xc3\xa9", 5), "UTF-8 id is valid");
	ok(tg_id_valid("ABC", 3) && tg_id_valid("abc", 3),
	   "ids are byte strings (case is kept)");
}

static void
test_query(void)
{
	static const struct tg_field q[] = {
	        {"end_user_id", TG_FIELD_ID, TG_FIELD_REQUIRED},
	};
	struct tg_value v[1];
	struct tg_err err;
	char *storage = NULL;

	tg_err_clear(&err);
	is_int(TG_OK,
	       tg_fields_from_query(q, 1, "end_user_id=ishaan%203&x=1", v,
	                            &storage, &err),
	       "query parsed");
	is_string("ishaan 3", v[0].str, "query value percent-decoded");
	free(storage);
	storage = NULL;
	is_int(TG_ERR_UNPROCESSABLE,
	       tg_fields_from_query(q, 1, "other=1", v, &storage, &err),
	       "missing query parameter is 422");
	is_string("end_user_id", err.param, "param names the parameter");
	is_int(TG_ERR_UNPROCESSABLE,
	       tg_fields_from_query(q, 1, "end_user_id=", v, &storage, &err),
	       "empty query parameter is 422");
	is_int(TG_OK,
	       tg_fields_from_query(q, 1, "end_user_id=a+b", v, &storage, &err),
	       "plus decodes");
	is_string("a b", v[0].str, "plus is a space");
	free(storage);
	storage = NULL;
	/* A name is matched byte for byte: a NUL, or any byte, after a
	 * known name makes another name, which is not the known one. */
	is_int(TG_ERR_UNPROCESSABLE,
	       tg_fields_from_query(q, 1, "end_user_id%00zz=smoke1", v,
	                            &storage, &err),
	       "end_user_id%%00zz is not end_user_id");
	is_string("end_user_id", err.param, "... so end_user_id is missing");
	is_int(TG_ERR_UNPROCESSABLE,
	       tg_fields_from_query(q, 1, "end_user_id%00=smoke1", v, &storage,
	                            &err),
	       "end_user_id%%00 is not end_user_id");
	is_int(TG_ERR_UNPROCESSABLE,
	       tg_fields_from_query(q, 1, "end_user_id%20=smoke1", v, &storage,
	                            &err),
	       "end_user_id%%20 is not end_user_id");
	is_int(TG_OK,
	       tg_fields_from_query(q, 1, "end_user_id%00zz=x&end_user_id=y", v,
	                            &storage, &err),
	       "the real name beside one with a NUL");
	is_string("y", v[0].str, "... gives its own value");
	free(storage);
}

/* A query's booleans are words (GET /spend/logs?summarize=true). */
static void
test_query_bool(void)
{
	static const struct tg_field q[] = {
	        {"summarize", TG_FIELD_BOOL, 0},
	};
	static const struct {
		const char *query;
		enum tg_rc rc;
		int64_t num;
	} words[] = {
	        {"summarize=true", TG_OK, 1},
	        {"summarize=True", TG_OK, 1},
	        {"summarize=1", TG_OK, 1},
	        {"summarize=yes", TG_OK, 1},
	        {"summarize=on", TG_OK, 1},
	        {"summarize=false", TG_OK, 0},
	        {"summarize=FALSE", TG_OK, 0},
	        {"summarize=0", TG_OK, 0},
	        {"summarize=no", TG_OK, 0},
	        {"summarize=off", TG_OK, 0},
	        {"summarize=", TG_ERR_UNPROCESSABLE, 0},
	        {"summarize=truth", TG_ERR_UNPROCESSABLE, 0},
	        {"summarize=2", TG_ERR_UNPROCESSABLE, 0},
	};
	struct tg_value v[1];
	struct tg_err err;

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		char *storage = NULL;
		enum tg_rc rc;

		tg_err_clear(&err);
		rc = tg_fields_from_query(q, 1, words[i].query, v, &storage,
		                          &err);
		is_int(words[i].rc, rc, "%s: %s", words[i].query,
		       rc == TG_OK ? "parsed" : err.message);
		if (rc == TG_OK && words[i].rc == TG_OK)
			is_int(words[i].num, v[0].num, "%s: its value",
			       words[i].query);
		free(storage);
	}
}

/* ---- token bounds and chat messages (SPEC 4.3, issue 6) ----------------- */

static const struct tg_field chat_table[] = {
        {"max_tokens", TG_FIELD_TOKENS, 0},
        {"messages", TG_FIELD_MESSAGES, 0},
};

struct chat_row {
	int line;
	const char *json;
	enum tg_rc rc;
	const char *param;   /* on failure */
	const char *message; /* on failure: the exact message, or NULL */
	const char *after;   /* on success: obj as JSON text afterwards */
};

#define M "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
#define BAD_TOKENS(v)                                                          \
	"max_tokens must be an integer from 1 to 2147483647. Received: " v

static const struct chat_row chat_rows[] = {
        /* Every exact spelling of an integer becomes the JSON integer. */
        R("{\"max_tokens\":1}", TG_OK, NULL, NULL, "{\"max_tokens\":1}"),
        R("{\"max_tokens\":\"1\"}", TG_OK, NULL, NULL, "{\"max_tokens\":1}"),
        R("{\"max_tokens\":1.0}", TG_OK, NULL, NULL, "{\"max_tokens\":1}"),
        R("{\"max_tokens\":\"1e3\"}", TG_OK, NULL, NULL,
          "{\"max_tokens\":1000}"),
        R("{\"max_tokens\":1.5e1}", TG_OK, NULL, NULL, "{\"max_tokens\":15}"),
        R("{\"max_tokens\":\"+7\",\"x\":1}", TG_OK, NULL, NULL,
          "{\"max_tokens\":7,\"x\":1}"),
        R("{\"max_tokens\":2147483647}", TG_OK, NULL, NULL,
          "{\"max_tokens\":2147483647}"),
        R("{\"max_tokens\":\"2147483647\"}", TG_OK, NULL, NULL,
          "{\"max_tokens\":2147483647}"),
        R("{\"max_tokens\":null}", TG_OK, NULL, NULL, "{\"max_tokens\":null}"),
        /* Refused: not an integer, below 1, above the ceiling. */
        R("{\"max_tokens\":\" 1\"}", TG_ERR_UNPROCESSABLE, "max_tokens",
          BAD_TOKENS(" 1"), NULL),
        R("{\"max_tokens\":\"1 \"}", TG_ERR_UNPROCESSABLE, "max_tokens", NULL,
          NULL),
        R("{\"max_tokens\":1.5}", TG_ERR_UNPROCESSABLE, "max_tokens",
          BAD_TOKENS("1.5"), NULL),
        R("{\"max_tokens\":0}", TG_ERR_UNPROCESSABLE, "max_tokens",
          BAD_TOKENS("0"), NULL),
        R("{\"max_tokens\":\"0\"}", TG_ERR_UNPROCESSABLE, "max_tokens", NULL,
          NULL),
        R("{\"max_tokens\":\"-0\"}", TG_ERR_UNPROCESSABLE, "max_tokens", NULL,
          NULL),
        R("{\"max_tokens\":-1}", TG_ERR_UNPROCESSABLE, "max_tokens",
          BAD_TOKENS("-1"), NULL),
        R("{\"max_tokens\":2147483648}", TG_ERR_UNPROCESSABLE, "max_tokens",
          BAD_TOKENS("2147483648"), NULL),
        R("{\"max_tokens\":1.6e15}", TG_ERR_UNPROCESSABLE, "max_tokens",
          BAD_TOKENS("1.6e15"), NULL),
        R("{\"max_tokens\":\"1600000000000000\"}", TG_ERR_UNPROCESSABLE,
          "max_tokens", BAD_TOKENS("1600000000000000"), NULL),
        R("{\"max_tokens\":1e300}", TG_ERR_UNPROCESSABLE, "max_tokens",
          BAD_TOKENS("1e300"), NULL),
        R("{\"max_tokens\":99999999999999999999999}", TG_ERR_UNPROCESSABLE,
          "max_tokens", NULL, NULL),
        R("{\"max_tokens\":\"\"}", TG_ERR_UNPROCESSABLE, "max_tokens", NULL,
          NULL),
        R("{\"max_tokens\":\"0x10\"}", TG_ERR_UNPROCESSABLE, "max_tokens", NULL,
          NULL),
        R("{\"max_tokens\":true}", TG_ERR_UNPROCESSABLE, "max_tokens", NULL,
          NULL),
        R("{\"max_tokens\":[5]}", TG_ERR_UNPROCESSABLE, "max_tokens", NULL,
          NULL),

        /* Messages: the shapes OpenAI accepts pass unchanged. */
        R("{" M "}", TG_OK, NULL, NULL, "{" M "}"),
        R("{\"messages\":[{\"role\":\"assistant\",\"content\":null,"
          "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\"}]},"
          "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"4\"}]}",
          TG_OK, NULL, NULL, NULL),
        R("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[]}]}", TG_OK,
          NULL, NULL, NULL),
        R("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
          "\"text\",\"text\":\"a\"},{\"type\":\"image_url\",\"image_url\":"
          "{\"url\":\"u\"}}]}]}",
          TG_OK, NULL, NULL, NULL),
        R("{\"messages\":[{\"role\":\"user\",\"content\":[]}]}", TG_OK, NULL,
          NULL, NULL),
        R("{\"messages\":null}", TG_OK, NULL, NULL, NULL),
        /* Refused, with OpenAI's words and the element as param. */
        R("{\"messages\":[]}", TG_ERR_UNPROCESSABLE, "messages",
          "messages must be a non-empty array", NULL),
        R("{\"messages\":\"hi\"}", TG_ERR_UNPROCESSABLE, "messages", NULL,
          NULL),
        R("{\"messages\":[1]}", TG_ERR_UNPROCESSABLE, "messages[0]",
          "Invalid type for 'messages[0]': expected an object, but got an "
          "integer instead.",
          NULL),
        R("{\"messages\":[null]}", TG_ERR_UNPROCESSABLE, "messages[0]",
          "Invalid type for 'messages[0]': expected an object, but got null "
          "instead.",
          NULL),
        R("{\"messages\":[[]]}", TG_ERR_UNPROCESSABLE, "messages[0]",
          "Invalid type for 'messages[0]': expected an object, but got an "
          "array instead.",
          NULL),
        R("{\"messages\":[{}]}", TG_ERR_UNPROCESSABLE, "messages[0].role",
          "Missing required parameter: 'messages[0].role'.", NULL),
        R("{\"messages\":[{\"role\":null,\"content\":\"x\"}]}",
          TG_ERR_UNPROCESSABLE, "messages[0].role", NULL, NULL),
        R("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":1}]}",
          TG_ERR_UNPROCESSABLE, "messages[1].role",
          "Invalid type for 'messages[1].role': expected a string, but got "
          "an integer instead.",
          NULL),
        R("{\"messages\":[{\"role\":\"user\",\"content\":5}]}",
          TG_ERR_UNPROCESSABLE, "messages[0].content",
          "Invalid type for 'messages[0].content': expected one of a string "
          "or array of objects, but got an integer instead.",
          NULL),
        R("{\"messages\":[{\"role\":\"user\",\"content\":{\"x\":1}}]}",
          TG_ERR_UNPROCESSABLE, "messages[0].content",
          "Invalid type for 'messages[0].content': expected one of a string "
          "or array of objects, but got an object instead.",
          NULL),
        R("{\"messages\":[{\"role\":\"user\",\"content\":true}]}",
          TG_ERR_UNPROCESSABLE, "messages[0].content", NULL, NULL),
        R("{\"messages\":[{\"role\":\"user\",\"content\":[1]}]}",
          TG_ERR_UNPROCESSABLE, "messages[0].content[0]",
          "Invalid type for 'messages[0].content[0]': expected an object, "
          "but got an integer instead.",
          NULL),
        R("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
          "\"text\",\"text\":\"a\"},{\"text\":\"b\"}]}]}",
          TG_ERR_UNPROCESSABLE, "messages[0].content[1].type",
          "Missing required parameter: 'messages[0].content[1].type'.", NULL),
        R("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":2}]}]}",
          TG_ERR_UNPROCESSABLE, "messages[0].content[0].type",
          "Invalid type for 'messages[0].content[0].type': expected a "
          "string, but got an integer instead.",
          NULL),
};

static void
test_chat_fields(void)
{
	enum { N = sizeof(chat_table) / sizeof(chat_table[0]) };

	for (size_t i = 0; i < sizeof(chat_rows) / sizeof(chat_rows[0]); i++) {
		const struct chat_row *r = &chat_rows[i];
		struct json_object *obj = json_tokener_parse(r->json);
		struct tg_value vals[N];
		struct tg_err err;
		enum tg_rc rc;

		tg_err_clear(&err);
		rc = tg_fields_from_json(chat_table, N, obj, vals, &err);
		if (!tap_ok(rc == r->rc, __FILE__, r->line, "%s -> %s", r->json,
		            tg_rc_str(r->rc)))
			diag("got %s: %s", tg_rc_str(rc), err.message);
		if (rc != TG_OK && r->param != NULL)
			tap_ok(strcmp(err.param, r->param) == 0, __FILE__,
			       r->line, "param is %s (got %s)", r->param,
			       err.param);
		if (rc != TG_OK && r->message != NULL)
			tap_ok(strcmp(err.message, r->message) == 0, __FILE__,
			       r->line, "message is \"%s\" (got \"%s\")",
			       r->message, err.message);
		if (rc == TG_OK && r->after != NULL) {
			const char *got = json_object_to_json_string_ext(
			        obj, JSON_C_TO_STRING_PLAIN);
			tap_ok(strcmp(got, r->after) == 0, __FILE__, r->line,
			       "body afterwards %s (got %s)", r->after, got);
		}
		json_object_put(obj);
	}
}

/* ---- prompts (embeddings, completions) and Responses inputs ----------- */

static const struct tg_field llm_table[] = {
        {"input", TG_FIELD_PROMPT, 0},
        {"items", TG_FIELD_INPUT, 0},
};

static void
test_prompt_and_input(void)
{
	static const struct {
		int line;
		const char *json;
		enum tg_rc rc;
		const char *param; /* on failure */
		long long bound;   /* on success: input's bound */
	} llm_rows[] = {
	        R("{\"input\":\"h\u00e9llo\"}", TG_OK, NULL, 6),
	        R("{\"input\":\"\"}", TG_OK, NULL, 0),
	        R("{\"input\":[\"ab\",\"c\"]}", TG_OK, NULL, 3),
	        R("{\"input\":[1,2,3]}", TG_OK, NULL, 3),
	        R("{\"input\":[0,2147483647]}", TG_OK, NULL, 2),
	        R("{\"input\":[[1,2],[3]]}", TG_OK, NULL, 3),
	        R("{\"input\":[]}", TG_ERR_UNPROCESSABLE, "input", 0),
	        R("{\"input\":5}", TG_ERR_UNPROCESSABLE, "input", 0),
	        R("{\"input\":{\"a\":1}}", TG_ERR_UNPROCESSABLE, "input", 0),
	        R("{\"input\":[\"a\",1]}", TG_ERR_UNPROCESSABLE, "input[1]", 0),
	        R("{\"input\":[1,\"a\"]}", TG_ERR_UNPROCESSABLE, "input[1]", 0),
	        R("{\"input\":[1,-1]}", TG_ERR_UNPROCESSABLE, "input[1]", 0),
	        R("{\"input\":[2147483648]}", TG_ERR_UNPROCESSABLE, "input[0]",
	          0),
	        R("{\"input\":[1.5]}", TG_ERR_UNPROCESSABLE, "input[0]", 0),
	        R("{\"input\":[[1],[]]}", TG_ERR_UNPROCESSABLE, "input[1]", 0),
	        R("{\"input\":[[1],[\"a\"]]}", TG_ERR_UNPROCESSABLE, "input[1]",
	          0),
	        R("{\"input\":[[1],2]}", TG_ERR_UNPROCESSABLE, "input[1]", 0),
	        R("{\"input\":[true]}", TG_ERR_UNPROCESSABLE, "input[0]", 0),
	        R("{\"items\":\"hi\"}", TG_OK, NULL, -1),
	        R("{\"items\":[]}", TG_OK, NULL, -1),
	        R("{\"items\":[{\"role\":\"user\",\"content\":\"x\"},"
	          "{\"type\":\"function_call_output\",\"call_id\":\"c\"}]}",
	          TG_OK, NULL, -1),
	        R("{\"items\":5}", TG_ERR_UNPROCESSABLE, "items", -1),
	        R("{\"items\":[\"x\"]}", TG_ERR_UNPROCESSABLE, "items[0]", -1),
	        R("{\"items\":[{\"type\":1}]}", TG_ERR_UNPROCESSABLE,
	          "items[0].type", -1),
	        R("{\"items\":[{\"role\":[]}]}", TG_ERR_UNPROCESSABLE,
	          "items[0].role", -1),
	};

	for (size_t i = 0; i < sizeof(llm_rows) / sizeof(llm_rows[0]); i++) {
		struct json_object *obj = json_tokener_parse(llm_rows[i].json);
		struct tg_value out[2];
		struct tg_err err;
		enum tg_rc rc;

		tg_err_clear(&err);
		rc = tg_fields_from_json(llm_table, 2, obj, out, &err);
		if (llm_rows[i].rc != TG_OK)
			tap_ok(rc == llm_rows[i].rc &&
			               strcmp(err.param, llm_rows[i].param) ==
			                       0,
			       __FILE__, llm_rows[i].line,
			       "%s: refused, param %s (%s)", llm_rows[i].json,
			       llm_rows[i].param, err.message);
		else
			tap_ok(rc == TG_OK && (llm_rows[i].bound < 0 ||
			                       out[0].num == llm_rows[i].bound),
			       __FILE__, llm_rows[i].line,
			       "%s: taken, bound %lld (%s)", llm_rows[i].json,
			       llm_rows[i].bound, err.message);
		json_object_put(obj);
	}
}

int
main(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct json_object *obj = json_tokener_parse(r->json);
		struct tg_value vals[NF];
		struct tg_err err;
		enum tg_rc rc;

		tg_err_clear(&err);
		rc = tg_fields_from_json(table, NF, obj, vals, &err);
		if (!tap_ok(rc == r->rc, __FILE__, r->line, "%s -> %s", r->json,
		            tg_rc_str(r->rc)))
			diag("got %s: %s", tg_rc_str(rc), err.message);
		if (rc != TG_OK && r->param != NULL)
			tap_ok(strcmp(err.param, r->param) == 0, __FILE__,
			       r->line, "param is %s (got %s)", r->param,
			       err.param);
		if (rc == TG_OK && r->field >= 0) {
			if (r->str != NULL)
				tap_ok(vals[r->field].str != NULL &&
				               strcmp(vals[r->field].str,
				                      r->str) == 0,
				       __FILE__, r->line, "value is %s",
				       r->str);
			else
				tap_ok(vals[r->field].num == r->num, __FILE__,
				       r->line, "value is %lld (got %lld)",
				       r->num, (long long)vals[r->field].num);
		}
		json_object_put(obj);
	}
	{
		struct json_object *obj = json_tokener_parse(
		        "{\"user_id\":\"a\",\"max_budget\":\"-1\"}");
		struct tg_value vals[NF];
		struct tg_err err;
		tg_fields_from_json(table, NF, obj, vals, &err);
		is_string("max_budget must be a non-negative finite number. "
		          "Received: -1",
		          err.message, "max_budget message as SPEC 8 says");
		json_object_put(obj);
	}
	test_ids();
	test_query();
	test_query_bool();
	test_chat_fields();
	test_prompt_and_input();
	return done_testing();
}
