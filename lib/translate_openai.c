/*
 * translate_openai: a Messages API call (Claude Code, the Anthropic SDKs)
 * served by an OpenAI-format deployment (chat completions: a GPT, DeepSeek
 * or vLLM model).
 *
 * The request: "system" becomes a system message; text blocks become
 * text parts, image blocks image_url parts (a data: URL for base64 data);
 * tool_use blocks an assistant's tool_calls, tool_result blocks "tool"
 * messages; tools, tool_choice, stop_sequences, temperature, top_p and
 * stream map to chat's names (a stream asks for its usage); max_tokens
 * stays; metadata.user_id becomes "user".  Thinking blocks and fields
 * without a chat meaning are left out; server tools (web search, code
 * execution), documents and file sources cannot be served (400).
 *
 * The answer: a message (or the Messages API's events: message_start,
 * content_block_start/_delta/_stop per text or tool_use block,
 * message_delta with the stop reason and usage, message_stop) whose usage
 * gives the cached part of the prompt as cache_read_input_tokens and the
 * rest as input_tokens; stop -> end_turn, length -> max_tokens,
 * tool_calls -> tool_use, content_filter -> refusal.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "jsonx.h"
#include "relay.h"
#include "translate.h"
#include "util.h"

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

static void
copy(struct json_object *to, struct json_object *from, const char *key,
     const char *as)
{
	struct json_object *v;

	if (json_object_object_get_ex(from, key, &v) && v != NULL)
		add(to, as, json_object_get(v));
}

/* ---- the request ---- */

/* The text of a content: a string, or its text blocks joined. */
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
		const char *t =
		        str(json_object_array_get_idx(content, i), "text");

		if (t != NULL)
			tg_buf_add(b, t, strlen(t));
	}
}

/* An image block as an image_url part, or NULL (a source chat cannot
 * name). */
static struct json_object *
image_part(struct json_object *block)
{
	struct json_object *src, *part, *iu;
	const char *type;
	struct tg_buf url = {NULL, 0};

	if (!json_object_object_get_ex(block, "source", &src) ||
	    (type = str(src, "type")) == NULL)
		return NULL;
	if (strcmp(type, "base64") == 0 && str(src, "media_type") &&
	    str(src, "data")) {
		tg_buf_add(&url, "data:", 5);
		tg_buf_add(&url, str(src, "media_type"),
		           strlen(str(src, "media_type")));
		tg_buf_add(&url, ";base64,", 8);
		tg_buf_add(&url, str(src, "data"), strlen(str(src, "data")));
	} else if (strcmp(type, "url") == 0 && str(src, "url")) {
		tg_buf_add(&url, str(src, "url"), strlen(str(src, "url")));
	} else {
		return NULL;
	}
	part = json_object_new_object();
	iu = json_object_new_object();
	add(iu, "url", json_object_new_string_len(url.p, (int)url.len));
	add(part, "type", json_object_new_string("image_url"));
	add(part, "image_url", iu);
	tg_buf_free(&url);
	return part;
}

/*
 * The chat messages of one Anthropic message into out: a user's tool
 * results first, as "tool" messages, then the rest of its content; an
 * assistant's text and its tool_use blocks as tool_calls.
 */
static void
messages_of(struct json_object *m, struct json_object *out)
{
	const char *role = str(m, "role");
	struct json_object *content = NULL, *parts, *calls, *o;
	bool assistant = role != NULL && strcmp(role, "assistant") == 0;
	struct tg_buf text = {NULL, 0};

	json_object_object_get_ex(m, "content", &content);
	o = json_object_new_object();
	add(o, "role",
	    json_object_new_string(assistant ? "assistant" : "user"));
	if (!json_object_is_type(content, json_type_array)) {
		copy(o, m, "content", "content");
		json_object_array_add(out, o);
		return;
	}
	parts = json_object_new_array();
	calls = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(content); i++) {
		struct json_object *b = json_object_array_get_idx(content, i);
		const char *type = str(b, "type");
		struct json_object *p;

		if (type == NULL)
			continue;
		if (strcmp(type, "text") == 0 && str(b, "text") != NULL) {
			if (assistant) {
				tg_buf_add(&text, str(b, "text"),
				           strlen(str(b, "text")));
				continue;
			}
			p = json_object_new_object();
			add(p, "type", json_object_new_string("text"));
			copy(p, b, "text", "text");
			json_object_array_add(parts, p);
		} else if (strcmp(type, "image") == 0 &&
		           (p = image_part(b)) != NULL) {
			json_object_array_add(parts, p);
		} else if (strcmp(type, "tool_use") == 0) {
			struct json_object *call = json_object_new_object();
			struct json_object *fn = json_object_new_object(), *in;

			copy(call, b, "id", "id");
			add(call, "type", json_object_new_string("function"));
			copy(fn, b, "name", "name");
			json_object_object_get_ex(b, "input", &in);
			add(fn, "arguments",
			    json_object_new_string(
			            in ? json_object_to_json_string_ext(
			                         in, JSON_C_TO_STRING_PLAIN)
			               : "{}"));
			add(call, "function", fn);
			json_object_array_add(calls, call);
		} else if (strcmp(type, "tool_result") == 0) {
			struct json_object *tool = json_object_new_object();
			struct json_object *rc = NULL;
			struct tg_buf result = {NULL, 0};

			json_object_object_get_ex(b, "content", &rc);
			text_of(rc, &result);
			add(tool, "role", json_object_new_string("tool"));
			copy(tool, b, "tool_use_id", "tool_call_id");
			add(tool, "content",
			    json_object_new_string_len(result.p ? result.p : "",
			                               (int)result.len));
			tg_buf_free(&result);
			json_object_array_add(out, tool);
		}
	}
	if (assistant) {
		add(o, "content",
		    text.len > 0
		            ? json_object_new_string_len(text.p, (int)text.len)
		            : NULL);
		json_object_put(parts);
		parts = NULL;
	} else {
		add(o, "content", parts);
	}
	tg_buf_free(&text);
	if (json_object_array_length(calls) > 0)
		add(o, "tool_calls", calls);
	else
		json_object_put(calls);
	/* A user message of tool results only: the "tool" messages are it. */
	if (parts != NULL && json_object_array_length(parts) == 0) {
		json_object_put(o);
		return;
	}
	json_object_array_add(out, o);
}

static struct json_object *
request(struct json_object *body, int64_t output_bound, bool streamed)
{
	struct json_object *out = json_object_new_object();
	struct json_object *msgs = json_object_new_array(), *v, *meta;

	add(out, "model", json_object_new_string(""));
	if (json_object_object_get_ex(body, "system", &v) && v != NULL) {
		struct json_object *sys = json_object_new_object();
		struct tg_buf text = {NULL, 0};

		text_of(v, &text);
		add(sys, "role", json_object_new_string("system"));
		add(sys, "content",
		    json_object_new_string_len(text.p ? text.p : "",
		                               (int)text.len));
		tg_buf_free(&text);
		json_object_array_add(msgs, sys);
	}
	if (json_object_object_get_ex(body, "messages", &v) &&
	    json_object_is_type(v, json_type_array))
		for (size_t i = 0; i < json_object_array_length(v); i++)
			messages_of(json_object_array_get_idx(v, i), msgs);
	add(out, "messages", msgs);
	add(out, "max_tokens", json_object_new_int64(output_bound));
	if (json_object_object_get_ex(body, "tools", &v) &&
	    json_object_is_type(v, json_type_array) &&
	    json_object_array_length(v) > 0) {
		struct json_object *tools = json_object_new_array();

		for (size_t i = 0; i < json_object_array_length(v); i++) {
			struct json_object *t = json_object_array_get_idx(v, i);
			struct json_object *o = json_object_new_object();
			struct json_object *fn = json_object_new_object();

			copy(fn, t, "name", "name");
			copy(fn, t, "description", "description");
			copy(fn, t, "input_schema", "parameters");
			add(o, "type", json_object_new_string("function"));
			add(o, "function", fn);
			json_object_array_add(tools, o);
		}
		add(out, "tools", tools);
		if (json_object_object_get_ex(body, "tool_choice", &v) &&
		    str(v, "type") != NULL) {
			const char *t = str(v, "type");

			if (strcmp(t, "tool") == 0) {
				struct json_object *tc =
				        json_object_new_object();
				struct json_object *fn =
				        json_object_new_object();

				add(tc, "type",
				    json_object_new_string("function"));
				copy(fn, v, "name", "name");
				add(tc, "function", fn);
				add(out, "tool_choice", tc);
			} else {
				add(out, "tool_choice",
				    json_object_new_string(
				            strcmp(t, "any") == 0 ? "required"
				            : strcmp(t, "none") == 0 ? "none"
				                                     : "auto"));
			}
		}
	}
	copy(out, body, "stop_sequences", "stop");
	copy(out, body, "temperature", "temperature");
	copy(out, body, "top_p", "top_p");
	if (json_object_object_get_ex(body, "metadata", &meta))
		copy(out, meta, "user_id", "user");
	if (streamed) {
		struct json_object *opts = json_object_new_object();

		add(out, "stream", json_object_new_boolean(1));
		add(opts, "include_usage", json_object_new_boolean(1));
		add(out, "stream_options", opts);
	}
	return out;
}

static enum tg_rc
check(const struct tg_req *req, struct tg_err *err)
{
	struct json_object *body = tg_req_json(req), *tools, *messages;
	char where[64];

	if (json_object_object_get_ex(body, "tools", &tools) &&
	    json_object_is_type(tools, json_type_array))
		for (size_t i = 0; i < json_object_array_length(tools); i++) {
			const char *type = str(
			        json_object_array_get_idx(tools, i), "type");

			if (type == NULL || strcmp(type, "custom") == 0)
				continue;
			snprintf(where, sizeof(where), "tools.%zu", i);
			return tg_err_set(
			        err, TG_ERR_BAD_REQUEST, where,
			        "%s: the server tool '%s' runs only on "
			        "anthropic/ deployments",
			        where, type);
		}
	json_object_object_get_ex(body, "messages", &messages);
	for (size_t i = 0; json_object_is_type(messages, json_type_array) &&
	                   i < json_object_array_length(messages);
	     i++) {
		struct json_object *content;

		if (!json_object_object_get_ex(
		            json_object_array_get_idx(messages, i), "content",
		            &content) ||
		    !json_object_is_type(content, json_type_array))
			continue;
		for (size_t j = 0; j < json_object_array_length(content); j++) {
			struct json_object *b = json_object_array_get_idx(
			                           content, j),
			                   *p;
			const char *type = str(b, "type");
			bool ok = true;

			if (type != NULL && strcmp(type, "image") == 0) {
				p = image_part(b);
				ok = p != NULL;
				json_object_put(p);
			} else if (type != NULL &&
			           strcmp(type, "document") == 0) {
				ok = false;
			}
			if (ok)
				continue;
			snprintf(where, sizeof(where),
			         "messages.%zu.content.%zu", i, j);
			return tg_err_set(
			        err, TG_ERR_BAD_REQUEST, where,
			        "%s: this %s block cannot be sent to "
			        "an OpenAI-format deployment (images: "
			        "base64 data or a URL)",
			        where, type);
		}
	}
	return TG_OK;
}

/* ---- the answer ---- */

static const char *
stop_reason(const char *finish)
{
	if (finish == NULL || finish[0] == '\0' || strcmp(finish, "stop") == 0)
		return "end_turn";
	if (strcmp(finish, "length") == 0)
		return "max_tokens";
	if (strcmp(finish, "tool_calls") == 0 ||
	    strcmp(finish, "function_call") == 0)
		return "tool_use";
	if (strcmp(finish, "content_filter") == 0)
		return "refusal";
	return "end_turn";
}

/* Anthropic's usage for u: the cached part of the prompt apart. */
static struct json_object *
message_usage(const struct tg_usage *u)
{
	struct json_object *o = json_object_new_object();

	add(o, "input_tokens",
	    json_object_new_int64(u->prompt_tokens - u->cached_tokens));
	add(o, "cache_creation_input_tokens", json_object_new_int64(0));
	add(o, "cache_read_input_tokens",
	    json_object_new_int64(u->cached_tokens));
	add(o, "output_tokens", json_object_new_int64(u->completion_tokens));
	return o;
}

/* A tool_use block for a chat tool call (arguments parsed, else {}). */
static struct json_object *
tool_use(struct json_object *call)
{
	struct json_object *b = json_object_new_object(), *fn, *input;
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
	return b;
}

static struct json_object *
answer(const char *body, size_t len)
{
	struct json_object *cc = tg_json_parse(body, len), *choices, *choice;
	struct json_object *msg = NULL, *out, *content, *calls, *usage, *b;
	struct tg_usage u;
	const char *text;

	if (!json_object_is_type(cc, json_type_object) ||
	    !json_object_object_get_ex(cc, "choices", &choices) ||
	    !json_object_is_type(choices, json_type_array) ||
	    json_object_array_length(choices) == 0) {
		json_object_put(cc);
		return NULL;
	}
	choice = json_object_array_get_idx(choices, 0);
	json_object_object_get_ex(choice, "message", &msg);
	out = json_object_new_object();
	copy(out, cc, "id", "id");
	add(out, "type", json_object_new_string("message"));
	add(out, "role", json_object_new_string("assistant"));
	copy(out, cc, "model", "model");
	content = json_object_new_array();
	if ((text = str(msg, "content")) != NULL && text[0] != '\0') {
		b = json_object_new_object();
		add(b, "type", json_object_new_string("text"));
		add(b, "text", json_object_new_string(text));
		json_object_array_add(content, b);
	}
	if (json_object_object_get_ex(msg, "tool_calls", &calls) &&
	    json_object_is_type(calls, json_type_array))
		for (size_t i = 0; i < json_object_array_length(calls); i++)
			json_object_array_add(
			        content,
			        tool_use(json_object_array_get_idx(calls, i)));
	add(out, "content", content);
	add(out, "stop_reason",
	    json_object_new_string(stop_reason(str(choice, "finish_reason"))));
	add(out, "stop_sequence", NULL);
	memset(&u, 0, sizeof(u));
	if (json_object_object_get_ex(cc, "usage", &usage) &&
	    tg_api_usage(usage, &tg_usage_chat, &u))
		add(out, "usage", message_usage(&u));
	json_object_put(cc);
	return out;
}

/* ---- the stream ---- */

/* An event object, its type first. */
static struct json_object *
event_of(const char *type)
{
	struct json_object *o = json_object_new_object();

	add(o, "type", json_object_new_string(type));
	return o;
}

/* Write o (taken) as the event named by its type. */
static void
emit(struct tg_relay *r, struct json_object *o)
{
	tg_relay_write_json(r, str(o, "type"), o);
	json_object_put(o);
}

/* message_start, once. */
static void
begin(struct tg_relay *r)
{
	struct json_object *o, *msg;
	struct tg_usage none;

	if (r->tx.begun)
		return;
	r->tx.begun = true;
	memset(&none, 0, sizeof(none));
	msg = json_object_new_object();
	add(msg, "id", json_object_new_string(r->tx.id));
	add(msg, "type", json_object_new_string("message"));
	add(msg, "role", json_object_new_string("assistant"));
	add(msg, "model", json_object_new_string(r->tx.model));
	add(msg, "content", json_object_new_array());
	add(msg, "stop_reason", NULL);
	add(msg, "stop_sequence", NULL);
	add(msg, "usage", message_usage(&none));
	o = event_of("message_start");
	add(o, "message", msg);
	emit(r, o);
}

static void
close_block(struct tg_relay *r)
{
	struct json_object *o;

	if (r->tx.open < 0)
		return;
	o = event_of("content_block_stop");
	add(o, "index", json_object_new_int(r->tx.open));
	emit(r, o);
	r->tx.open = -1;
}

/* Open a new block (cb taken): its index. */
static int
open_block(struct tg_relay *r, struct json_object *cb, int tool)
{
	struct json_object *o;
	int i;

	close_block(r);
	i = r->tx.nblocks++;
	o = event_of("content_block_start");
	add(o, "index", json_object_new_int(i));
	add(o, "content_block", cb);
	emit(r, o);
	r->tx.open = i;
	if (i < TG_RELAY_BLOCKS)
		r->tx.tool[i] = tool;
	return i;
}

static void
delta(struct tg_relay *r, const char *type, const char *key, const char *text)
{
	struct json_object *o = event_of("content_block_delta");
	struct json_object *d = json_object_new_object();

	add(d, "type", json_object_new_string(type));
	add(d, key, json_object_new_string(text));
	add(o, "index", json_object_new_int(r->tx.open));
	add(o, "delta", d);
	emit(r, o);
}

static void
text_delta(struct tg_relay *r, const char *text)
{
	if (r->tx.open < 0 || r->tx.open >= TG_RELAY_BLOCKS ||
	    r->tx.tool[r->tx.open] >= 0) {
		struct json_object *cb = json_object_new_object();

		add(cb, "type", json_object_new_string("text"));
		add(cb, "text", json_object_new_string(""));
		open_block(r, cb, -1);
	}
	delta(r, "text_delta", "text", text);
}

static void
tool_calls_delta(struct tg_relay *r, struct json_object *calls)
{
	for (size_t i = 0; i < json_object_array_length(calls); i++) {
		struct json_object *call = json_object_array_get_idx(calls, i);
		struct json_object *v, *fn = NULL;
		int64_t idx = 0;
		const char *args;

		if (json_object_object_get_ex(call, "index", &v) &&
		    json_object_is_type(v, json_type_int))
			idx = json_object_get_int64(v);
		json_object_object_get_ex(call, "function", &fn);
		/* A new call: a new tool_use block. */
		if (r->tx.open < 0 || r->tx.open >= TG_RELAY_BLOCKS ||
		    r->tx.tool[r->tx.open] != (int)idx) {
			struct json_object *cb = json_object_new_object();

			add(cb, "type", json_object_new_string("tool_use"));
			add(cb, "id",
			    json_object_new_string(
			            str(call, "id") ? str(call, "id") : ""));
			add(cb, "name",
			    json_object_new_string(
			            str(fn, "name") ? str(fn, "name") : ""));
			add(cb, "input", json_object_new_object());
			open_block(r, cb, (int)idx);
		}
		if ((args = str(fn, "arguments")) != NULL && args[0] != '\0')
			delta(r, "input_json_delta", "partial_json", args);
	}
}

static void
stream_event(struct tg_relay *r, const struct tg_sse_event *ev,
             struct json_object *obj)
{
	struct json_object *choices, *choice, *d, *v, *e;
	const char *text;

	if (ev->done || obj == NULL)
		return;
	if (json_object_object_get_ex(obj, "error", &e) && e != NULL) {
		struct json_object *o = event_of("error");
		struct json_object *inner = json_object_new_object();

		add(inner, "type", json_object_new_string("api_error"));
		add(inner, "message",
		    json_object_new_string(str(e, "message")
		                                   ? str(e, "message")
		                                   : "upstream error"));
		add(o, "error", inner);
		emit(r, o);
		return;
	}
	if (!r->tx.begun) {
		snprintf(r->tx.id, sizeof(r->tx.id), "%s",
		         str(obj, "id") ? str(obj, "id") : "");
		snprintf(r->tx.model, sizeof(r->tx.model), "%s",
		         str(obj, "model") ? str(obj, "model") : "");
		begin(r);
	}
	if (!json_object_object_get_ex(obj, "choices", &choices) ||
	    !json_object_is_type(choices, json_type_array) ||
	    json_object_array_length(choices) == 0)
		return;
	choice = json_object_array_get_idx(choices, 0);
	if (json_object_object_get_ex(choice, "delta", &d)) {
		if ((text = str(d, "content")) != NULL && text[0] != '\0')
			text_delta(r, text);
		if (json_object_object_get_ex(d, "tool_calls", &v) &&
		    json_object_is_type(v, json_type_array))
			tool_calls_delta(r, v);
	}
	if ((text = str(choice, "finish_reason")) != NULL)
		snprintf(r->tx.stop, sizeof(r->tx.stop), "%s", text);
}

static void
stream_finish(struct tg_relay *r)
{
	struct json_object *o, *d;

	begin(r);
	close_block(r);
	o = event_of("message_delta");
	d = json_object_new_object();
	add(d, "stop_reason", json_object_new_string(stop_reason(r->tx.stop)));
	add(d, "stop_sequence", NULL);
	add(o, "delta", d);
	add(o, "usage", message_usage(&r->answer.u));
	emit(r, o);
	emit(r, event_of("message_stop"));
}

const struct tg_translation tg_translate_messages_to_chat = {
        .client = TG_API_MESSAGES,
        .upstream = TG_API_CHAT,
        .check = check,
        .prompt_overhead = NULL,
        .request = request,
        .answer = answer,
        .event = stream_event,
        .finish = stream_finish,
};
