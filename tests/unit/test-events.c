/*
 * test-events: the webhook bodies of SPEC 9 (lib/events.c): the seed's
 * field set and order, exact money, nulls, the event messages, the
 * Slack text, and the events of virtual keys.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "../tap.h"
#include "events.h"

/* The seed's spend_tracked payload, as its documentation prints it. */
static const char seed_body[] =
        "{\"spend\":0.001112,\"max_budget\":null,\"token\":"
        "\"88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b\","
        "\"customer_id\":\"krrish12\",\"user_id\":null,\"team_id\":null,"
        "\"user_email\":null,\"key_alias\":null,"
        "\"projected_exceeded_date\":null,\"projected_spend\":null,"
        "\"event\":\"spend_tracked\",\"event_group\":\"customer\","
        "\"event_message\":\"Customer spend tracked. Customer=krrish12, "
        "spend=0.001112\"}";

static void
test_spend_tracked(void)
{
	struct tg_event_info ev;
	char *body;

	memset(&ev, 0, sizeof(ev));
	ev.event = TG_EVENT_SPEND_TRACKED;
	ev.customer_id = "krrish12";
	ev.token = "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243"
	           "fe6b4b";
	ev.spend = 11120000; /* 0.001112 */
	body = tg_event_webhook_body(&ev);
	is_string(seed_body, body,
	          "spend_tracked: the seed's payload, "
	          "byte for byte");
	free(body);

	/* Money is printed exactly, however many digits it has. */
	ev.spend = 1;
	ev.has_max_budget = true;
	ev.max_budget = 40000000000LL; /* 4 */
	ev.token = NULL;
	body = tg_event_webhook_body(&ev);
	ok(strstr(body, "\"spend\":0.0000000001,") != NULL,
	   "spend of 1e-10 printed exactly: %s", body);
	ok(strstr(body, "\"max_budget\":4,") != NULL, "max_budget 4");
	ok(strstr(body, "\"token\":null") != NULL, "no key: token null");
	ok(strstr(body, "spend=0.0000000001\"") != NULL,
	   "the message's spend is exact too");
	free(body);
}

static void
test_ids_escaped(void)
{
	struct tg_event_info ev;
	struct json_object *o, *v;
	char *body;

	memset(&ev, 0, sizeof(ev));
	ev.event = TG_EVENT_SPEND_TRACKED;
	ev.customer_id = "a \"b\"\\\n\xc3\xa9";
	ev.spend = 10;
	body = tg_event_webhook_body(&ev);
	o = json_tokener_parse(body);
	ok(o != NULL, "a customer id with quotes, a backslash, a newline and "
	              "UTF-8 gives valid JSON");
	ok(o != NULL && json_object_object_get_ex(o, "customer_id", &v) &&
	           strcmp(json_object_get_string(v), ev.customer_id) == 0,
	   "customer_id round-trips");
	json_object_put(o);
	free(body);
}

static void
test_budget_alerts(void)
{
	struct tg_event_info ev;
	struct json_object *o, *v;
	char *body;

	memset(&ev, 0, sizeof(ev));
	ev.event = TG_EVENT_THRESHOLD_CROSSED;
	ev.customer_id = "alice";
	ev.spend = 34000000000LL; /* 3.4 */
	ev.has_max_budget = true;
	ev.max_budget = 40000000000LL;
	ev.percent = 85;
	body = tg_event_webhook_body(&ev);
	o = json_tokener_parse(body);
	ok(o != NULL && json_object_object_length(o) == 13,
	   "threshold_crossed has the seed's 13 fields");
	ok(o && json_object_object_get_ex(o, "event", &v) &&
	           strcmp(json_object_get_string(v), "threshold_crossed") == 0,
	   "event threshold_crossed");
	ok(o && json_object_object_get_ex(o, "event_message", &v) &&
	           strcmp(json_object_get_string(v),
	                  "Customer spend reached 85% of max_budget. "
	                  "Customer=alice, spend=3.4, max_budget=4") == 0,
	   "threshold message names the percentage and both amounts");
	json_object_put(o);
	free(body);

	ev.event = TG_EVENT_BUDGET_CROSSED;
	body = tg_event_webhook_body(&ev);
	ok(strstr(body, "\"event\":\"budget_crossed\"") != NULL &&
	           strstr(body, "Customer budget crossed. Customer=alice") !=
	                   NULL,
	   "budget_crossed");
	free(body);
	ev.refused = true;
	body = tg_event_webhook_body(&ev);
	ok(strstr(body, "Customer budget crossed: a request was refused for "
	                "its budget. Customer=alice, spend=3.4, "
	                "max_budget=4") != NULL,
	   "budget_crossed by a refusal says so: %s", body);
	free(body);
	ev.refused = false;

	ev.event = TG_EVENT_SOFT_BUDGET_CROSSED;
	ev.soft_budget = 30000000000LL;
	body = tg_event_webhook_body(&ev);
	ok(strstr(body, "soft_budget=3\"") != NULL,
	   "soft_budget_crossed names the soft budget: %s", body);
	free(body);

	body = tg_event_slack_body(&ev);
	o = json_tokener_parse(body);
	ok(o != NULL && json_object_object_length(o) == 1 &&
	           json_object_object_get_ex(o, "text", &v) &&
	           strstr(json_object_get_string(v),
	                  "Customer soft budget crossed. Customer=alice") !=
	                   NULL,
	   "Slack body is {\"text\": ...} with the message: %s", body);
	json_object_put(o);
	free(body);
}

/* Virtual keys (SPEC 13): the key's alias and token on a customer's
 * event; a key's own alerts in event_group "key", customer_id null. */
static void
test_key_events(void)
{
	static const char token[] = "2c5549fa148401b85e6ae73612bd7322a4b3d839"
	                            "019f0d0e724b78adee47a2bc";
	struct tg_event_info ev;
	struct json_object *o, *v;
	char *body;

	memset(&ev, 0, sizeof(ev));
	ev.event = TG_EVENT_SPEND_TRACKED;
	ev.customer_id = "krrish12";
	ev.token = token;
	ev.key_alias = "app-one";
	ev.spend = 10;
	body = tg_event_webhook_body(&ev);
	o = json_tokener_parse(body);
	ok(o && json_object_object_get_ex(o, "key_alias", &v) &&
	           strcmp(json_object_get_string(v), "app-one") == 0,
	   "spend_tracked of a key's call: key_alias is the key's");
	ok(o && json_object_object_get_ex(o, "event_group", &v) &&
	           strcmp(json_object_get_string(v), "customer") == 0,
	   "and event_group stays customer");
	json_object_put(o);
	free(body);

	ev.group = TG_ACCOUNT_KEY;
	ev.customer_id = "ignored";
	ev.event = TG_EVENT_THRESHOLD_CROSSED;
	ev.percent = 95;
	ev.spend = 38000000000LL;
	ev.has_max_budget = true;
	ev.max_budget = 40000000000LL;
	body = tg_event_webhook_body(&ev);
	o = json_tokener_parse(body);
	ok(o != NULL && json_object_object_length(o) == 13,
	   "a key's alert has the seed's 13 fields");
	ok(o && json_object_object_get_ex(o, "event_group", &v) &&
	           strcmp(json_object_get_string(v), "key") == 0,
	   "event_group key");
	ok(o && json_object_object_get_ex(o, "customer_id", &v) && v == NULL,
	   "customer_id null");
	ok(o && json_object_object_get_ex(o, "token", &v) &&
	           strcmp(json_object_get_string(v), token) == 0,
	   "token: the key's");
	ok(o && json_object_object_get_ex(o, "event_message", &v) &&
	           strcmp(json_object_get_string(v),
	                  "Key spend reached 95% of max_budget. Key=app-one, "
	                  "spend=3.8, max_budget=4") == 0,
	   "the message names the key by its alias: %s", body);
	json_object_put(o);
	free(body);
	ev.key_alias = NULL;
	ev.event = TG_EVENT_BUDGET_CROSSED;
	body = tg_event_webhook_body(&ev);
	ok(strstr(body, "Key budget crossed. Key=2c5549fa") != NULL,
	   "without an alias, by its token: %s", body);
	free(body);
}

int
main(void)
{
	test_spend_tracked();
	test_ids_escaped();
	test_budget_alerts();
	test_key_events();
	is_string("soft_budget_crossed",
	          tg_event_name(TG_EVENT_SOFT_BUDGET_CROSSED), "event names");
	done_testing();
}
