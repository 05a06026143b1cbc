/*
 * translate_anthropic: a chat completion served by an anthropic/
 * deployment (the Messages API).
 *
 * The request: system (and developer) messages become "system"; a user
 * message's text and images (data: URLs, http(s) URLs) become content
 * blocks; an assistant's tool_calls become tool_use blocks and the "tool"
 * messages that answer them tool_result blocks of a user message; tools,
 * tool_choice, stop, temperature, top_p and stream map to their Anthropic
 * names; max_tokens is the hold's output bound (the API requires one);
 * "user" becomes metadata.user_id.  Other fields have no Anthropic
 * meaning and are left out.
 *
 * The answer: a chat.completion (or chat.completion.chunks, ending with
 * the finish_reason and, when asked, the usage) whose usage counts every
 * input token in prompt_tokens, the cache reads in
 * prompt_tokens_details.cached_tokens, and names the cache writes and
 * reads as Anthropic does; end_turn and stop_sequence -> stop, max_tokens
 * -> length, tool_use -> tool_calls, refusal -> content_filter.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "jsonx.h"
#include "relay.h"
#include "translate.h"
#include "util.h"

/* Tokens of Anthropic's tool use prompt, as lib/api_messages.c counts. */
#define TOOLS_OVERHEAD 1024

static const char *
str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

static void
add(struct json_object *o, const char *key, struct json_object *v)
{
	json_object_object_add(o, key, v);
}

/* A copy of member key of from into to, when present. */
static void
copy(struct json_object *to, struct json_object *from, const char *key,
     const char *as)
{
	struct json_object *v;

	if (json_object_object_get_ex(from, key, &v) && v != NULL)
		add(to, as, json_object_get(v));
}

/* ---- the request ---- */

/* The text of a message's content: a string, or its text parts joined. */
static void
text_of(struct json_object *content, struct tg_buf *b)
{
	if (json_object_is_type(content, json_type_string)) {
		tg_buf_add(b, json_object_get_string(content),
		           (size_t)json_object_get_string_len(content));
		return;
	}
	for (size_t i = 0; json_object_is_type(content, json_type_array) &&
	                   i < json_object_array_length(content);
	     i++) {
		struct json_object *part =
		        json_object_array_get_idx(content, i);
		const char *t = str(part, "text");

		if (t != NULL)
			tg_buf_add(b, t, strlen(t));
	}
}

/* An image block for an image_url part's URL: a data: URL's media type
 * and base64 data, or the URL itself; NULL when it is neither. */
static struct json_object *
image_block(const char *url)
{
	struct json_object *block, *source;
	const char *semi, *comma;

	source = json_object_new_object();
	if (strncmp(url, "data:", 5) == 0) {
		semi = strstr(url, ";base64,");
		comma = semi != NULL ? semi + 7 : NULL;
		if (semi == NULL || semi == url + 5) {
			json_object_put(source);
			return NULL;
		}
		add(source, "type", json_object_new_string("base64"));
		add(source, "media_type",
		    json_object_new_string_len(url + 5, (int)(semi - url - 5)));
		add(source, "data", json_object_new_string(comma + 1));
	} else if (strncmp(url, "https://", 8) == 0 ||
	           strncmp(url, "http://", 7) == 0) {
		add(source, "type", json_object_new_string("url"));
		add(source, "url", json_object_new_string(url));
	} else {
		json_object_put(source);
		return NULL;
	}
	block = json_object_new_object();
	add(block, "type", json_object_new_string("image"));
	add(block, "source", source);
	return block;
}

static const char *
image_url(struct json_object *part)
{
	struct json_object *iu;

	if (!json_object_object_get_ex(part, "image_url", &iu))
		return NULL;
	if (json_object_is_type(iu, json_type_string))
		return json_object_get_string(iu);
	return str(iu, "url");
}

/* A user message's content as blocks (a string stays a string). */
static struct json_object *
user_content(struct json_object *content)
{
	struct json_object *blocks;

	if (!json_object_is_type(content, json_type_array))
		return json_object_new_string(
		        content != NULL ? json_object_get_string(content) : "");
	blocks = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(content); i++) {
		struct json_object *part =
		        json_object_array_get_idx(content, i);
		const char *type = str(part, "type"), *url;
		struct json_object *b;

		if (type != NULL && strcmp(type, "text") == 0) {
			b = json_object_new_object();
			add(b, "type", json_object_new_string("text"));
			copy(b, part, "text", "text");
			json_object_array_add(blocks, b);
		} else if (type != NULL && strcmp(type, "image_url") == 0 &&
		           (url = image_url(part)) != NULL &&
		           (b = image_block(url)) != NULL) {
			json_object_array_add(blocks, b);
		}
	}
	return blocks;
}

/* An assistant message's blocks: its text, then a tool_use per tool call. */
static struct json_object *
assistant_content(struct json_object *m)
{
	struct json_object *blocks = json_object_new_array(), *content, *calls;
	struct tg_buf text = {NULL, 0};

	if (json_object_object_get_ex(m, "content", &content))
		text_of(content, &text);
	if (text.len > 0) {
		struct json_object *b = json_object_new_object();

		add(b, "type", json_object_new_string("text"));
		add(b, "text",
		    json_object_new_string_len(text.p, (int)text.len));
		json_object_array_add(blocks, b);
	}
	tg_buf_free(&text);
	if (!json_object_object_get_ex(m, "tool_calls", &calls) ||
	    !json_object_is_type(calls, json_type_array))
		return blocks;
	for (size_t i = 0; i < json_object_array_length(calls); i++) {
		struct json_object *call = json_object_array_get_idx(calls, i);
		struct json_object *fn, *b = json_object_new_object(), *input;
		const char *args;

		json_object_object_get_ex(call, "function", &fn);
		args = str(fn, "arguments");
		input = args != NULL ? tg_json_parse(args, strlen(args)) : NULL;
		if (!json_object_is_type(input, json_type_object)) {
			json_object_put(input);
			input = json_object_new_object();
		}
		add(b, "type", json_object_new_string("tool_use"));
		copy(b, call, "id", "id");
		copy(b, fn, "name", "name");
		add(b, "input", input);
		json_object_array_add(blocks, b);
	}
	return blocks;
}

/* A "tool" message as a tool_result block. */
static struct json_object *
tool_result(struct json_object *m)
{
	struct json_object *b = json_object_new_object(), *content;
	struct tg_buf text = {NULL, 0};

	if (json_object_object_get_ex(m, "content", &content))
		text_of(content, &text);
	add(b, "type", json_object_new_string("tool_result"));
	copy(b, m, "tool_call_id", "tool_use_id");
	add(b, "content",
	    json_object_new_string_len(text.p ? text.p : "", (int)text.len));
	tg_buf_free(&text);
	return b;
}

/* Append block to the last message when it is the user's with blocks
 * (tool results answering one turn go together), else as a new one. */
static void
add_user_block(struct json_object *out, struct json_object *block)
{
	size_t n = json_object_array_length(out);
	struct json_object *last =
	        n > 0 ? json_object_array_get_idx(out, n - 1) : NULL;
	struct json_object *content, *m;
	const char *role = last != NULL ? str(last, "role") : NULL;

	if (role != NULL && strcmp(role, "user") == 0 &&
	    json_object_object_get_ex(last, "content", &content) &&
	    json_object_is_type(content, json_type_array)) {
		json_object_array_add(content, block);
		return;
	}
	m = json_object_new_object();
	add(m, "role", json_object_new_string("user"));
	content = json_object_new_array();
	json_object_array_add(content, block);
	add(m, "content", content);
	json_object_array_add(out, m);
}

static struct json_object *
tools_of(struct json_object *tools)
{
	struct json_object *out = json_object_new_array();

	for (size_t i = 0; i < json_object_array_length(tools); i++) {
		struct json_object *t = json_object_array_get_idx(tools, i);
		struct json_object *fn, *o = json_object_new_object();

		if (!json_object_object_get_ex(t, "function", &fn))
			fn = t;
		copy(o, fn, "name", "name");
		copy(o, fn, "description", "description");
		if (json_object_object_get_ex(fn, "parameters", NULL))
			copy(o, fn, "parameters", "input_schema");
		else
			add(o, "input_schema",
			    json_tokener_parse("{\"type\":\"object\"}"));
		json_object_array_add(out, o);
	}
	return out;
}

static struct json_object *
tool_choice_of(struct json_object *tc)
{
	struct json_object *o = json_object_new_object(), *fn;
	const char *s = json_object_get_string(tc);

	if (json_object_is_type(tc, json_type_string)) {
		add(o, "type",
		    json_object_new_string(strcmp(s, "required") == 0 ? "any"
		                           : strcmp(s, "none") == 0   ? "none"
		                                                    : "auto"));
		return o;
	}
	add(o, "type", json_object_new_string("tool"));
	if (json_object_object_get_ex(tc, "function", &fn))
		copy(o, fn, "name", "name");
	return o;
}

static struct json_object *
request(struct json_object *body, int64_t output_bound, bool streamed)
{
	struct json_object *out = json_object_new_object();
	struct json_object *msgs = json_object_new_array(), *messages, *v;
	struct tg_buf system = {NULL, 0};

	json_object_object_get_ex(body, "messages", &messages);
	for (size_t i = 0; json_object_is_type(messages, json_type_array) &&
	                   i < json_object_array_length(messages);
	     i++) {
		struct json_object *m = json_object_array_get_idx(messages, i);
		struct json_object *content = NULL, *o;
		const char *role = str(m, "role");

		json_object_object_get_ex(m, "content", &content);
		if (role == NULL)
			continue;
		if (strcmp(role, "system") == 0 ||
		    strcmp(role, "developer") == 0) {
			if (system.len > 0)
				tg_buf_add(&system, "\n\n", 2);
			text_of(content, &system);
		} else if (strcmp(role, "tool") == 0) {
			add_user_block(msgs, tool_result(m));
		} else if (strcmp(role, "assistant") == 0) {
			struct json_object *blocks = assistant_content(m);

			if (json_object_array_length(blocks) == 0) {
				json_object_put(blocks);
				continue;
			}
			o = json_object_new_object();
			add(o, "role", json_object_new_string("assistant"));
			add(o, "content", blocks);
			json_object_array_add(msgs, o);
		} else {
			o = json_object_new_object();
			add(o, "role", json_object_new_string("user"));
			add(o, "content", user_content(content));
			json_object_array_add(msgs, o);
		}
	}
	add(out, "model", json_object_new_string(""));
	add(out, "max_tokens", json_object_new_int64(output_bound));
	if (system.len > 0)
		add(out, "system",
		    json_object_new_string_len(system.p, (int)system.len));
	tg_buf_free(&system);
	add(out, "messages", msgs);
	if (json_object_object_get_ex(body, "tools", &v) &&
	    json_object_is_type(v, json_type_array) &&
	    json_object_array_length(v) > 0)
		add(out, "tools", tools_of(v));
	if (json_object_object_get_ex(body, "tool_choice", &v) && v != NULL &&
	    json_object_object_get_ex(out, "tools", NULL))
		add(out, "tool_choice", tool_choice_of(v));
	if (json_object_object_get_ex(body, "stop", &v) && v != NULL) {
		struct json_object *stops = json_object_new_array();

		if (json_object_is_type(v, json_type_array))
			for (size_t i = 0; i < json_object_array_length(v); i++)
				json_object_array_add(
				        stops,
				        json_object_get(
				                json_object_array_get_idx(v,
				                                          i)));
		else
			json_object_array_add(stops, json_object_get(v));
		add(out, "stop_sequences", stops);
	}
	copy(out, body, "temperature", "temperature");
	copy(out, body, "top_p", "top_p");
	if (str(body, "user") != NULL) {
		struct json_object *meta = json_object_new_object();

		copy(meta, body, "user", "user_id");
		add(out, "metadata", meta);
	}
	if (streamed)
		add(out, "stream", json_object_new_boolean(1));
	return out;
}

static enum tg_rc
check(const struct tg_req *req, struct tg_err *err)
{
	struct json_object *body = tg_req_json(req), *messages, *v;
	char where[96];

	if (json_object_object_get_ex(body, "n", &v) &&
	    json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) > 1)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "n",
		                  "n > 1 is not supported by anthropic/ "
		                  "deployments (one choice per call)");
	json_object_object_get_ex(body, "messages", &messages);
	for (size_t i = 0; json_object_is_type(messages, json_type_array) &&
	                   i < json_object_array_length(messages);
	     i++) {
		struct json_object *m = json_object_array_get_idx(messages, i);
		struct json_object *content, *calls;

		if (json_object_object_get_ex(m, "content", &content) &&
		    json_object_is_type(content, json_type_array))
			for (size_t j = 0;
			     j < json_object_array_length(content); j++) {
				struct json_object *part =
				        json_object_array_get_idx(content, j);
				const char *type = str(part, "type");
				const char *url = image_url(part);
				struct json_object *b;

				if (type == NULL || strcmp(type, "image_url"))
					continue;
				b = url != NULL ? image_block(url) : NULL;
				if (b != NULL) {
					json_object_put(b);
					continue;
				}
				snprintf(where, sizeof(where),
				         "messages[%zu].content[%zu]", i, j);
				return tg_err_set(
				        err, TG_ERR_BAD_REQUEST, where,
				        "%s: an image for an anthropic/ "
				        "deployment is a data: URL with "
				        "base64 data or an http(s) URL",
				        where);
			}
		if (!json_object_object_get_ex(m, "tool_calls", &calls) ||
		    !json_object_is_type(calls, json_type_array))
			continue;
		for (size_t j = 0; j < json_object_array_length(calls); j++) {
			struct json_object *fn, *call, *parsed;
			const char *args;
			bool ok;

			call = json_object_array_get_idx(calls, j);
			json_object_object_get_ex(call, "function", &fn);
			args = str(fn, "arguments");
			parsed =
			        args ? tg_json_parse(args, strlen(args)) : NULL;
			ok = args == NULL ||
			     json_object_is_type(parsed, json_type_object);
			json_object_put(parsed);
			if (ok)
				continue;
			snprintf(where, sizeof(where),
			         "messages[%zu].tool_calls[%zu].function."
			         "arguments",
			         i, j);
			return tg_err_set(err, TG_ERR_BAD_REQUEST, where,
			                  "%s must be a JSON object for an "
			                  "anthropic/ deployment",
			                  where);
		}
	}
	return TG_OK;
}

static int64_t
prompt_overhead(const struct tg_req *req)
{
	struct json_object *tools;

	return json_object_object_get_ex(tg_req_json(req), "tools", &tools) &&
	                       json_object_is_type(tools, json_type_array) &&
	                       json_object_array_length(tools) > 0
	               ? TOOLS_OVERHEAD
	               : 0;
}

/* ---- the answer ---- */

static const char *
finish_reason(const char *stop)
{
	if (stop == NULL || stop[0] == '\0')
		return "stop";
	if (strcmp(stop, "max_tokens") == 0 ||
	    strcmp(stop, "model_context_window_exceeded") == 0)
		return "length";
	if (strcmp(stop, "tool_use") == 0)
		return "tool_calls";
	if (strcmp(stop, "refusal") == 0)
		return "content_filter";
	return "stop";
}

/* A chat usage object for u. */
static struct json_object *
chat_usage(const struct tg_usage *u)
{
	struct json_object *o = json_object_new_object();
	struct json_object *details = json_object_new_object();

	add(o, "prompt_tokens", json_object_new_int64(u->prompt_tokens));
	add(o, "completion_tokens",
	    json_object_new_int64(u->completion_tokens));
	add(o, "total_tokens", json_object_new_int64(u->total_tokens));
	add(details, "cached_tokens", json_object_new_int64(u->cached_tokens));
	add(o, "prompt_tokens_details", details);
	add(o, "cache_creation_input_tokens",
	    json_object_new_int64(u->cache_write_tokens +
	                          u->cache_write_1h_tokens));
	add(o, "cache_read_input_tokens",
	    json_object_new_int64(u->cached_tokens));
	return o;
}

static struct json_object *
answer(const char *body, size_t len)
{
	struct json_object *msg = tg_json_parse(body, len), *content, *usage;
	struct json_object *out, *choice, *message, *calls, *choices;
	struct tg_buf text = {NULL, 0}, thinking = {NULL, 0};
	struct tg_usage u;

	if (!json_object_is_type(msg, json_type_object)) {
		json_object_put(msg);
		return NULL;
	}
	calls = json_object_new_array();
	if (json_object_object_get_ex(msg, "content", &content) &&
	    json_object_is_type(content, json_type_array))
		for (size_t i = 0; i < json_object_array_length(content); i++) {
			struct json_object *b =
			        json_object_array_get_idx(content, i);
			const char *type = str(b, "type");

			if (type == NULL)
				continue;
			if (strcmp(type, "text") == 0 && str(b, "text"))
				tg_buf_add(&text, str(b, "text"),
				           strlen(str(b, "text")));
			else if (strcmp(type, "thinking") == 0 &&
			         str(b, "thinking"))
				tg_buf_add(&thinking, str(b, "thinking"),
				           strlen(str(b, "thinking")));
			else if (strcmp(type, "tool_use") == 0) {
				struct json_object *call, *fn, *input;

				call = json_object_new_object();
				fn = json_object_new_object();
				copy(call, b, "id", "id");
				add(call, "type",
				    json_object_new_string("function"));
				copy(fn, b, "name", "name");
				json_object_object_get_ex(b, "input", &input);
				add(fn, "arguments",
				    json_object_new_string(
				            input ? json_object_to_json_string_ext(
				                            input,
				                            JSON_C_TO_STRING_PLAIN)
				                  : "{}"));
				add(call, "function", fn);
				json_object_array_add(calls, call);
			}
		}
	out = json_object_new_object();
	copy(out, msg, "id", "id");
	add(out, "object", json_object_new_string("chat.completion"));
	add(out, "created", json_object_new_int64((int64_t)time(NULL)));
	copy(out, msg, "model", "model");
	message = json_object_new_object();
	add(message, "role", json_object_new_string("assistant"));
	add(message, "content",
	    text.len > 0 || json_object_array_length(calls) == 0
	            ? json_object_new_string_len(text.p ? text.p : "",
	                                         (int)text.len)
	            : NULL);
	if (thinking.len > 0)
		add(message, "reasoning_content",
		    json_object_new_string_len(thinking.p, (int)thinking.len));
	if (json_object_array_length(calls) > 0)
		add(message, "tool_calls", calls);
	else
		json_object_put(calls);
	choice = json_object_new_object();
	add(choice, "index", json_object_new_int(0));
	add(choice, "message", message);
	add(choice, "finish_reason",
	    json_object_new_string(finish_reason(str(msg, "stop_reason"))));
	choices = json_object_new_array();
	json_object_array_add(choices, choice);
	add(out, "choices", choices);
	memset(&u, 0, sizeof(u));
	if (json_object_object_get_ex(msg, "usage", &usage) &&
	    tg_api_anthropic_usage(usage, &u))
		add(out, "usage", chat_usage(&u));
	tg_buf_free(&text);
	tg_buf_free(&thinking);
	json_object_put(msg);
	return out;
}

/* ---- the stream ---- */

/* A chat.completion.chunk with one choice whose delta is delta (taken). */
static void
chunk(struct tg_relay *r, struct json_object *delta, const char *finish)
{
	struct json_object *o = json_object_new_object();
	struct json_object *choices = json_object_new_array();
	struct json_object *choice = json_object_new_object();

	add(o, "id", json_object_new_string(r->tx.id));
	add(o, "object", json_object_new_string("chat.completion.chunk"));
	add(o, "created", json_object_new_int64(r->tx.created));
	add(o, "model", json_object_new_string(r->tx.model));
	add(choice, "index", json_object_new_int(0));
	add(choice, "delta", delta);
	add(choice, "finish_reason",
	    finish ? json_object_new_string(finish) : NULL);
	json_object_array_add(choices, choice);
	add(o, "choices", choices);
	tg_relay_write_json(r, NULL, o);
	json_object_put(o);
}

/* The first chunk (the assistant's role), once. */
static void
begin(struct tg_relay *r)
{
	struct json_object *delta;

	if (r->tx.begun)
		return;
	r->tx.begun = true;
	if (r->tx.created == 0)
		r->tx.created = (int64_t)time(NULL);
	delta = json_object_new_object();
	add(delta, "role", json_object_new_string("assistant"));
	add(delta, "content", json_object_new_string(""));
	chunk(r, delta, NULL);
}

/* A delta of the tool call of content block index. */
static void
tool_delta(struct tg_relay *r, int tool, const char *id, const char *name,
           const char *args)
{
	struct json_object *delta = json_object_new_object();
	struct json_object *calls = json_object_new_array();
	struct json_object *call = json_object_new_object();
	struct json_object *fn = json_object_new_object();

	add(call, "index", json_object_new_int(tool));
	if (id != NULL) {
		add(call, "id", json_object_new_string(id));
		add(call, "type", json_object_new_string("function"));
	}
	if (name != NULL)
		add(fn, "name", json_object_new_string(name));
	add(fn, "arguments", json_object_new_string(args));
	add(call, "function", fn);
	json_object_array_add(calls, call);
	add(delta, "tool_calls", calls);
	chunk(r, delta, NULL);
}

static int
block_index(struct json_object *obj)
{
	struct json_object *v;
	int64_t i;

	if (!json_object_object_get_ex(obj, "index", &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	i = json_object_get_int64(v);
	return i >= 0 && i < TG_RELAY_BLOCKS ? (int)i : -1;
}

static void
stream_event(struct tg_relay *r, const struct tg_sse_event *ev,
             struct json_object *obj)
{
	struct json_object *v, *e;
	const char *type;
	int i;

	(void)ev;
	if (obj == NULL || (type = str(obj, "type")) == NULL)
		return;
	if (strcmp(type, "message_start") == 0) {
		if (json_object_object_get_ex(obj, "message", &v)) {
			snprintf(r->tx.id, sizeof(r->tx.id), "%s",
			         str(v, "id") ? str(v, "id") : "");
			snprintf(r->tx.model, sizeof(r->tx.model), "%s",
			         str(v, "model") ? str(v, "model") : "");
		}
		begin(r);
	} else if (strcmp(type, "content_block_start") == 0) {
		begin(r);
		i = block_index(obj);
		if (i < 0 ||
		    !json_object_object_get_ex(obj, "content_block", &v))
			return;
		r->tx.tool[i] = -1;
		if (str(v, "type") && strcmp(str(v, "type"), "tool_use") == 0) {
			r->tx.tool[i] = r->tx.ntools++;
			tool_delta(r, r->tx.tool[i], str(v, "id"),
			           str(v, "name"), "");
		}
	} else if (strcmp(type, "content_block_delta") == 0) {
		const char *dt, *text;
		struct json_object *delta;

		begin(r);
		i = block_index(obj);
		if (!json_object_object_get_ex(obj, "delta", &v) ||
		    (dt = str(v, "type")) == NULL)
			return;
		if (strcmp(dt, "text_delta") == 0 &&
		    (text = str(v, "text")) != NULL) {
			delta = json_object_new_object();
			add(delta, "content", json_object_new_string(text));
			chunk(r, delta, NULL);
		} else if (strcmp(dt, "thinking_delta") == 0 &&
		           (text = str(v, "thinking")) != NULL) {
			delta = json_object_new_object();
			add(delta, "reasoning_content",
			    json_object_new_string(text));
			chunk(r, delta, NULL);
		} else if (strcmp(dt, "input_json_delta") == 0 && i >= 0 &&
		           r->tx.tool[i] >= 0 &&
		           (text = str(v, "partial_json")) != NULL) {
			tool_delta(r, r->tx.tool[i], NULL, NULL, text);
		}
	} else if (strcmp(type, "message_delta") == 0) {
		if (json_object_object_get_ex(obj, "delta", &v) &&
		    str(v, "stop_reason") != NULL)
			snprintf(r->tx.stop, sizeof(r->tx.stop), "%s",
			         str(v, "stop_reason"));
	} else if (strcmp(type, "error") == 0) {
		/* Chat's error event: the upstream's words. */
		struct json_object *o = json_object_new_object();
		struct json_object *inner = json_object_new_object();

		json_object_object_get_ex(obj, "error", &e);
		add(inner, "message",
		    json_object_new_string(str(e, "message")
		                                   ? str(e, "message")
		                                   : "upstream error"));
		add(inner, "type",
		    json_object_new_string(str(e, "type") ? str(e, "type")
		                                          : "api_error"));
		add(o, "error", inner);
		tg_relay_write_json(r, NULL, o);
		json_object_put(o);
	}
}

static void
stream_finish(struct tg_relay *r)
{
	begin(r);
	chunk(r, json_object_new_object(), finish_reason(r->tx.stop));
	if (r->usage_asked && r->answer.u.present) {
		struct json_object *o = json_object_new_object();
		struct json_object *usage = chat_usage(&r->answer.u);
		struct tg_err ignored;
		tg_money cost;

		tg_err_clear(&ignored);
		if (tg_pricing_cost(&r->d->price, &r->answer.u, &cost,
		                    &ignored) == TG_OK)
			add(usage, "cost", tg_json_money(cost));
		add(o, "id", json_object_new_string(r->tx.id));
		add(o, "object",
		    json_object_new_string("chat.completion.chunk"));
		add(o, "created", json_object_new_int64(r->tx.created));
		add(o, "model", json_object_new_string(r->tx.model));
		add(o, "choices", json_object_new_array());
		add(o, "usage", usage);
		tg_relay_write_json(r, NULL, o);
		json_object_put(o);
	}
}

const struct tg_translation tg_translate_chat_to_messages = {
        .client = TG_API_CHAT,
        .upstream = TG_API_MESSAGES,
        .check = check,
        .prompt_overhead = prompt_overhead,
        .request = request,
        .answer = answer,
        .event = stream_event,
        .finish = stream_finish,
};
