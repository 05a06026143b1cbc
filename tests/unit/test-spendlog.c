/*
 * test-spendlog: the pure helpers of the lifecycle and report endpoints:
 * report date bounds and comma id lists (lib/spendlog.c), the id list of
 * a /customer/delete message (lib/customer.c), and the budget field run
 * read back into a tg_budget_input (lib/budget.c).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tap.h"
#include "budget.h"
#include "customer.h"
#include "fields.h"
#include "spendlog.h"
#include "util.h"

#define ROW __LINE__

struct bound_row {
	int line;
	const char *in;
	bool end;
	bool ok;
	const char *want; /* ISO 8601 */
};

static const struct bound_row bound_rows[] = {
        {ROW, "2026-03-01", false, true, "2026-03-01T00:00:00Z"},
        {ROW, "2026-03-01", true, true, "2026-03-02T00:00:00Z"},
        {ROW, "2026-12-31", true, true, "2027-01-01T00:00:00Z"},
        {ROW, "2028-02-29", false, true, "2028-02-29T00:00:00Z"},
        {ROW, "2026-03-01T10:20:30Z", false, true, "2026-03-01T10:20:30Z"},
        {ROW, "2026-03-01T10:20:30Z", true, true, "2026-03-01T10:20:31Z"},
        {ROW, "2026-02-30", false, false, NULL},
        {ROW, "2026-13-01", false, false, NULL},
        {ROW, "2026-3-1", false, false, NULL},
        {ROW, "2026/03/01", false, false, NULL},
        {ROW, "03/01/2026", true, false, NULL},
        {ROW, "yesterday", false, false, NULL},
        {ROW, "", false, false, NULL},
        {ROW, "2026-03-01x", false, false, NULL},
};

struct split_row {
	int line;
	const char *in;
	size_t max;
	bool ok;
	size_t n;
	const char *joined; /* the ids joined by "|" */
};

static const struct split_row split_rows[] = {
        {ROW, "a", 10, true, 1, "a"},
        {ROW, "a,b,c", 10, true, 3, "a|b|c"},
        {ROW, ",a,,b,", 10, true, 2, "a|b"},
        {ROW, "", 10, true, 0, ""},
        {ROW, ",", 10, true, 0, ""},
        {ROW, "a b,é", 10, true, 2, "a b|é"},
        {ROW, "a,b,c", 2, false, 0, NULL},
        {ROW, "a,\xff", 10, false, 0, NULL},
};

static void
test_bounds(void)
{
	for (size_t i = 0; i < sizeof(bound_rows) / sizeof(bound_rows[0]);
	     i++) {
		const struct bound_row *r = &bound_rows[i];
		time_t got = 42, want = 0;
		bool ok = tg_spendlog_parse_bound(r->in, r->end, &got);
		if (r->ok) {
			tg_time_parse_iso8601(r->want, &want);
			tap_ok(ok && got == want, __FILE__, r->line,
			       "bound %s (%s) = %s", r->in,
			       r->end ? "end" : "start", r->want);
		} else {
			tap_ok(!ok && got == 42, __FILE__, r->line,
			       "bound %s refused, output untouched", r->in);
		}
	}
	ok(!tg_spendlog_parse_bound(NULL, false, &(time_t){0}),
	   "bound NULL refused");
}

static void
test_split(void)
{
	for (size_t i = 0; i < sizeof(split_rows) / sizeof(split_rows[0]);
	     i++) {
		const struct split_row *r = &split_rows[i];
		char **ids = NULL, joined[256] = "";
		size_t n = 99;
		bool ok = tg_spendlog_split_ids(r->in, r->max, &ids, &n);
		if (!r->ok) {
			tap_ok(!ok && n == 99, __FILE__, r->line,
			       "split \"%s\" refused", r->in);
			continue;
		}
		for (size_t k = 0; ok && k < n; k++) {
			if (k > 0)
				strcat(joined, "|");
			strcat(joined, ids[k]);
		}
		tap_ok(ok && n == r->n && strcmp(joined, r->joined) == 0,
		       __FILE__, r->line, "split \"%s\" = %s", r->in,
		       r->joined);
		tg_spendlog_ids_free(ids, n);
	}
	{
		/* 256 bytes: one too many for an id. */
		char big[300];
		char **ids = NULL;
		size_t n = 0;
		memset(big, 'x', 256);
		big[256] = '\0';
		ok(!tg_spendlog_split_ids(big, 10, &ids, &n),
		   "split: an id of 256 bytes refused");
		big[255] = '\0';
		ok(tg_spendlog_split_ids(big, 10, &ids, &n) && n == 1,
		   "split: an id of 255 bytes accepted");
		tg_spendlog_ids_free(ids, n);
	}
}

static void
test_ids_text(void)
{
	static const struct {
		int line;
		const char *json;
		const char *want;
	} rows[] = {
	        {ROW, "[\"a\"]", "['a']"},
	        {ROW, "[\"a\",\"b\"]", "['a', 'b']"},
	        {ROW, "[\"it's\",\"back\\\\slash\"]",
	         "['it\\'s', 'back\\\\slash']"},
	        {ROW, "[]", "[]"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct json_object *a = json_tokener_parse(rows[i].json);
		char *got = tg_customer_ids_text(a);
		tap_ok(strcmp(got, rows[i].want) == 0, __FILE__, rows[i].line,
		       "ids text %s = %s (got %s)", rows[i].json, rows[i].want,
		       got);
		free(got);
		json_object_put(a);
	}
}

static void
test_budget_input(void)
{
	static const struct tg_field table[] = {
	        {"budget_id", TG_FIELD_ID, 0},
	        TG_BUDGET_FIELDS,
	};
	struct tg_value vals[1 + TG_BUDGET_NFIELDS];
	struct tg_budget_input in;
	struct tg_err err;
	struct json_object *body = json_tokener_parse(
	        "{\"budget_id\":\"t\",\"max_budget\":\"0\",\"tpm_limit\":0,"
	        "\"soft_budget\":null,\"budget_duration\":\"30d\","
	        "\"model_max_budget\":{\"m\":1},"
	        "\"budget_reset_at\":\"2026-01-02T03:04:05Z\"}");
	time_t reset;

	ok(tg_fields_from_json(table, 1 + TG_BUDGET_NFIELDS, body, vals,
	                       &err) == TG_OK,
	   "budget fields validate");
	tg_budget_input_from_values(&vals[1], &in);
	ok(in.max_budget.set && in.max_budget.v == 0, "max_budget \"0\" set");
	ok(in.tpm_limit.set && in.tpm_limit.v == 0, "tpm_limit 0 set");
	ok(!in.rpm_limit.set && !in.max_parallel_requests.set,
	   "absent fields unset");
	ok(!in.soft_budget.set && in.cleared == (1u << TG_BUDGET_F_SOFT_BUDGET),
	   "soft_budget null: cleared, nothing else");
	ok(in.budget_duration != NULL && strcmp(in.budget_duration, "30d") == 0,
	   "budget_duration");
	ok(in.model_max_budget != NULL &&
	           strcmp(in.model_max_budget, "{\"m\":1}") == 0,
	   "model_max_budget as JSON text");
	tg_time_parse_iso8601("2026-01-02T03:04:05Z", &reset);
	ok(in.budget_reset_at.set && in.budget_reset_at.v == reset,
	   "budget_reset_at");
	ok(tg_budget_input_first(&in) == TG_BUDGET_F_MAX_BUDGET,
	   "first field given: max_budget");
	ok(tg_budget_input_any(&in), "any: true");
	for (unsigned f = 0; f < TG_BUDGET_NFIELDS; f++)
		ok(strcmp(tg_budget_field_name((enum tg_budget_field)f),
		          table[1 + f].name) == 0,
		   "field %u is named as in TG_BUDGET_FIELDS (%s)", f,
		   table[1 + f].name);
	json_object_put(body);

	body = json_tokener_parse("{\"budget_id\":\"t\",\"rpm_limit\":null}");
	ok(tg_fields_from_json(table, 1 + TG_BUDGET_NFIELDS, body, vals,
	                       &err) == TG_OK,
	   "only a null field validates");
	tg_budget_input_from_values(&vals[1], &in);
	ok(!tg_budget_input_any(&in) &&
	           tg_budget_input_first(&in) == TG_BUDGET_F_RPM_LIMIT,
	   "a cleared field counts for first, not for any");
	json_object_put(body);

	body = json_tokener_parse("{\"budget_id\":\"t\"}");
	ok(tg_fields_from_json(table, 1 + TG_BUDGET_NFIELDS, body, vals,
	                       &err) == TG_OK,
	   "no budget field validates");
	tg_budget_input_from_values(&vals[1], &in);
	ok(tg_budget_input_first(&in) == TG_BUDGET_NFIELDS && in.cleared == 0,
	   "no budget field: none first, none cleared");
	json_object_put(body);
}

int
main(void)
{
	test_bounds();
	test_split();
	test_ids_text();
	test_budget_input();
	return done_testing();
}
