/*
 * upstream_mock: the mock/ provider (SPEC 7), which answers locally, without
 * network, in the shape the real API would, with usage counted from the
 * text: demos and offline trials are priced and charged like any other
 * model.  lib/upstream.c calls it where it would call the network.
 *
 * Every API is answered the same way: the input texts are gathered (the
 * last user text is the echo), the answer is mock_response or that echo,
 * cut to the request's output bound, and the usage is ceil(bytes / 4)
 * tokens of each.  Only the shapes differ, one writer per API below.
 */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "jsonx.h"
#include "upstream_mock.h"
#include "util.h"

/* Tokens of a text as the mock counts them: ceil(bytes / 4), at least 1. */
static int64_t
mock_tokens(size_t bytes)
{
	int64_t t = (int64_t)((bytes + 3) / 4);

	return t < 1 ? 1 : t;
}

/*
 * Text of a message's content: a string, or the "text" of each part of an
 * array of parts, appended to b (NULL: only counted).  Returns the bytes.
 */
static size_t
content_text(struct json_object *content, struct tg_buf *b)
{
	size_t total = 0, n;

	if (json_object_is_type(content, json_type_string)) {
		n = (size_t)json_object_get_string_len(content);
		if (b != NULL)
			tg_buf_add(b, json_object_get_string(content), n);
		return n;
	}
	if (!json_object_is_type(content, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(content); i++) {
		struct json_object *part, *text;

		part = json_object_array_get_idx(content, i);
		if (json_object_object_get_ex(part, "text", &text))
			total += content_text(text, b);
	}
	return total;
}

/*
 * What the mock reads of a request: the bytes of its input texts (the
 * prompt), the last user text (the echo), the output bound (-1: none),
 * and whether it streams.
 */
struct input {
	size_t prompt_bytes;
	struct tg_buf echo;
	int64_t limit;
	bool stream, include_usage;
	const char *model;
};

static bool
is_role(struct json_object *item, const char *role)
{
	struct json_object *v;

	return json_object_object_get_ex(item, "role", &v) &&
	       json_object_is_type(v, json_type_string) &&
	       strcmp(json_object_get_string(v), role) == 0;
}

/* The messages of a chat request, or the items of a Responses input: each
 * one's content is counted, and the last user one is the echo. */
static void
read_items(struct json_object *items, struct input *in)
{
	for (size_t i = 0; i < json_object_array_length(items); i++) {
		struct json_object *m = json_object_array_get_idx(items, i);
		struct json_object *content;

		if (!json_object_object_get_ex(m, "content", &content))
			continue;
		in->prompt_bytes += content_text(content, NULL);
		if (is_role(m, "user")) {
			in->echo.len = 0;
			if (in->echo.p != NULL)
				in->echo.p[0] = '\0';
			content_text(content, &in->echo);
		}
	}
}

/* A prompt (completions) or an embedding input: a string, strings, tokens
 * or arrays of tokens, counted into the prompt; the echo is the first
 * string. */
static void
read_prompt(struct json_object *v, struct input *in)
{
	if (json_object_is_type(v, json_type_string)) {
		in->prompt_bytes += (size_t)json_object_get_string_len(v);
		if (in->echo.p == NULL)
			content_text(v, &in->echo);
		return;
	}
	if (!json_object_is_type(v, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		struct json_object *e = json_object_array_get_idx(v, i);

		if (json_object_is_type(e, json_type_int))
			in->prompt_bytes += 4; /* a token */
		else
			read_prompt(e, in);
	}
}

static int64_t
int_member(struct json_object *o, const char *key, int64_t dflt)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) >= 0)
		return json_object_get_int64(v);
	return dflt;
}

static void
read_input(enum tg_api api, struct json_object *req, struct input *in)
{
	struct json_object *v;

	if (json_object_object_get_ex(req, "model", &v) &&
	    json_object_is_type(v, json_type_string))
		in->model = json_object_get_string(v);
	in->limit = -1;
	switch (api) {
	case TG_API_CHAT:
		if (json_object_object_get_ex(req, "messages", &v) &&
		    json_object_is_type(v, json_type_array))
			read_items(v, in);
		in->limit = int_member(req, "max_completion_tokens", -1);
		if (in->limit < 0)
			in->limit = int_member(req, "max_tokens", -1);
		break;
	case TG_API_RESPONSES:
		if (json_object_object_get_ex(req, "instructions", &v))
			in->prompt_bytes += content_text(v, NULL);
		if (json_object_object_get_ex(req, "input", &v)) {
			if (json_object_is_type(v, json_type_array)) {
				read_items(v, in);
			} else {
				in->prompt_bytes += content_text(v, NULL);
				content_text(v, &in->echo);
			}
		}
		in->limit = int_member(req, "max_output_tokens", -1);
		break;
	case TG_API_EMBEDDINGS:
		if (json_object_object_get_ex(req, "input", &v))
			read_prompt(v, in);
		break;
	case TG_API_COMPLETIONS:
		if (json_object_object_get_ex(req, "prompt", &v))
			read_prompt(v, in);
		in->limit = int_member(req, "max_tokens", 16);
		break;
	case TG_API_MESSAGES:
		if (json_object_object_get_ex(req, "system", &v))
			in->prompt_bytes += content_text(v, NULL);
		if (json_object_object_get_ex(req, "messages", &v) &&
		    json_object_is_type(v, json_type_array))
			read_items(v, in);
		in->limit = int_member(req, "max_tokens", -1);
		break;
	case TG_API_COUNT: break;
	}
	if (json_object_object_get_ex(req, "stream", &v) &&
	    json_object_is_type(v, json_type_boolean))
		in->stream = json_object_get_boolean(v);
	if (json_object_object_get_ex(req, "stream_options", &v) &&
	    json_object_object_get_ex(v, "include_usage", &v) &&
	    json_object_is_type(v, json_type_boolean))
		in->include_usage = json_object_get_boolean(v);
}

/*
 * The answer text, cut at limit*4 bytes (on a UTF-8 character boundary)
 * so that its tokens stay within limit; *tokens its count, *cut whether
 * it was cut.
 */
static char *
answer_text(const struct tg_deployment *d, const struct input *in,
            int64_t *tokens, bool *cut)
{
	char *answer = tg_xstrdup(d->mock_response ? d->mock_response
	                          : in->echo.p     ? in->echo.p
	                                           : "");
	size_t alen = strlen(answer);

	*tokens = mock_tokens(alen);
	*cut = false;
	if (in->limit >= 0 && *tokens > in->limit) {
		size_t keep = (size_t)in->limit * 4;

		while (keep > 0 && ((unsigned char)answer[keep] & 0xc0) == 0x80)
			keep--;
		answer[keep] = '\0';
		*tokens = keep == 0 ? 0 : mock_tokens(keep);
		if (*tokens > in->limit)
			*tokens = in->limit;
		*cut = true;
	}
	return answer;
}

static void
add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static void
add_int(struct json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

static struct json_object *
mock_usage(int64_t prompt, int64_t completion)
{
	struct json_object *u = json_object_new_object();

	add_int(u, "prompt_tokens", prompt);
	add_int(u, "completion_tokens", completion);
	add_int(u, "total_tokens", prompt + completion);
	return u;
}

static const char *
json_text(struct json_object *o, size_t *n)
{
	return json_object_to_json_string_length(
	        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, n);
}

/* Append o to b as one event ("event: <name>\n" first unless NULL), and
 * drop the reference. */
static void
add_event(struct tg_buf *b, const char *name, struct json_object *o)
{
	size_t n;
	const char *text = json_text(o, &n);

	if (name != NULL) {
		tg_buf_add(b, "event: ", 7);
		tg_buf_add(b, name, strlen(name));
		tg_buf_add(b, "\n", 1);
	}
	tg_buf_add(b, "data: ", 6);
	tg_buf_add(b, text, n);
	tg_buf_add(b, "\n\n", 2);
	json_object_put(o);
}

/* A whole JSON answer. */
static void
answer_json(struct tg_upstream_response *r, struct json_object *o)
{
	size_t n;
	const char *text = json_text(o, &n);

	r->status = 200;
	r->body = tg_xstrndup(text, n);
	r->body_len = n;
	r->content_type = tg_xstrdup("application/json");
	json_object_put(o);
}

static void
answer_stream(struct tg_upstream_response *r, struct tg_buf *b)
{
	r->status = 200;
	r->body = b->p;
	r->body_len = b->len;
	r->content_type = tg_xstrdup("text/event-stream");
	b->p = NULL;
}

static void
answer_error(struct tg_upstream_response *r, int status, const char *message)
{
	struct json_object *o = json_object_new_object();
	struct json_object *e = json_object_new_object();
	char code[8];

	snprintf(code, sizeof(code), "%d", status);
	add_str(e, "message", message);
	add_str(e, "type", "invalid_request_error");
	json_object_object_add(e, "param", NULL);
	add_str(e, "code", code);
	json_object_object_add(o, "error", e);
	answer_json(r, o);
	r->status = status;
}

/* ---- chat completions and legacy completions ---- */

/* One chunk of a choices stream (chat.completion.chunk or text_completion)
 * as "data: ...\n\n"; delta (chat) or text (completions). */
static void
choices_chunk(struct tg_buf *b, enum tg_api api, const char *id,
              int64_t created, const char *model, struct json_object *delta,
              const char *text, const char *finish_reason,
              struct json_object *usage)
{
	struct json_object *c = json_object_new_object();
	struct json_object *choices = json_object_new_array();

	add_str(c, "id", id);
	add_str(c, "object",
	        api == TG_API_CHAT ? "chat.completion.chunk"
	                           : "text_completion");
	add_int(c, "created", created);
	add_str(c, "model", model);
	if (delta != NULL || text != NULL) {
		struct json_object *ch = json_object_new_object();

		if (api == TG_API_CHAT) {
			json_object_object_add(ch, "index",
			                       json_object_new_int(0));
			json_object_object_add(ch, "delta", delta);
		} else {
			add_str(ch, "text", text);
			json_object_object_add(ch, "index",
			                       json_object_new_int(0));
			json_object_object_add(ch, "logprobs", NULL);
		}
		json_object_object_add(
		        ch, "finish_reason",
		        finish_reason ? json_object_new_string(finish_reason)
		                      : NULL);
		json_object_array_add(choices, ch);
	}
	json_object_object_add(c, "choices", choices);
	if (usage != NULL)
		json_object_object_add(c, "usage", usage);
	add_event(b, NULL, c);
}

static void
stream_choices(enum tg_api api, const struct input *in, const char *id,
               const char *answer, int64_t completion, const char *finish,
               struct tg_upstream_response *r)
{
	int64_t created = (int64_t)time(NULL);
	struct tg_buf b = {NULL, 0};
	struct json_object *delta;
	bool chat = api == TG_API_CHAT;

	if (chat) {
		delta = json_object_new_object();
		add_str(delta, "role", "assistant");
		add_str(delta, "content", "");
		choices_chunk(&b, api, id, created, in->model, delta, NULL,
		              NULL, NULL);
	}
	if (answer[0] != '\0') {
		delta = NULL;
		if (chat) {
			delta = json_object_new_object();
			add_str(delta, "content", answer);
		}
		choices_chunk(&b, api, id, created, in->model, delta, answer,
		              NULL, NULL);
	}
	choices_chunk(&b, api, id, created, in->model,
	              chat ? json_object_new_object() : NULL, "", finish, NULL);
	if (in->include_usage)
		choices_chunk(
		        &b, api, id, created, in->model, NULL, NULL, NULL,
		        mock_usage(mock_tokens(in->prompt_bytes), completion));
	tg_buf_add(&b, "data: [DONE]\n\n", 14);
	answer_stream(r, &b);
}

static void
mock_choices(enum tg_api api, const struct input *in, const char *answer,
             int64_t completion, bool cut, struct tg_upstream_response *r)
{
	const char *finish = cut ? "length" : "stop";
	struct json_object *resp, *choices, *choice;
	char uuid[37], id[48];

	tg_uuid_new(uuid);
	snprintf(id, sizeof(id), "%s-%s",
	         api == TG_API_CHAT ? "chatcmpl" : "cmpl", uuid);
	if (in->stream) {
		stream_choices(api, in, id, answer, completion, finish, r);
		return;
	}
	resp = json_object_new_object();
	choices = json_object_new_array();
	choice = json_object_new_object();
	add_str(resp, "id", id);
	add_str(resp, "object",
	        api == TG_API_CHAT ? "chat.completion" : "text_completion");
	add_int(resp, "created", (int64_t)time(NULL));
	add_str(resp, "model", in->model);
	json_object_object_add(choice, "index", json_object_new_int(0));
	if (api == TG_API_CHAT) {
		struct json_object *msg = json_object_new_object();

		add_str(msg, "role", "assistant");
		add_str(msg, "content", answer);
		json_object_object_add(choice, "message", msg);
	} else {
		add_str(choice, "text", answer);
		json_object_object_add(choice, "logprobs", NULL);
	}
	add_str(choice, "finish_reason", finish);
	json_object_array_add(choices, choice);
	json_object_object_add(resp, "choices", choices);
	json_object_object_add(
	        resp, "usage",
	        mock_usage(mock_tokens(in->prompt_bytes), completion));
	answer_json(r, resp);
}

/* ---- the Responses API ---- */

static struct json_object *
response_usage(int64_t input, int64_t output)
{
	struct json_object *u = json_object_new_object();
	struct json_object *in = json_object_new_object();
	struct json_object *out = json_object_new_object();

	add_int(u, "input_tokens", input);
	add_int(in, "cached_tokens", 0);
	json_object_object_add(u, "input_tokens_details", in);
	add_int(u, "output_tokens", output);
	add_int(out, "reasoning_tokens", 0);
	json_object_object_add(u, "output_tokens_details", out);
	add_int(u, "total_tokens", input + output);
	return u;
}

/* The assistant message item of an answer. */
static struct json_object *
message_item(const char *id, const char *text, const char *status)
{
	struct json_object *item = json_object_new_object();
	struct json_object *content = json_object_new_array();
	struct json_object *part = json_object_new_object();

	add_str(item, "type", "message");
	add_str(item, "id", id);
	add_str(item, "status", status);
	add_str(item, "role", "assistant");
	add_str(part, "type", "output_text");
	add_str(part, "text", text);
	json_object_object_add(part, "annotations", json_object_new_array());
	json_object_array_add(content, part);
	json_object_object_add(item, "content", content);
	return item;
}

/* The response object: in_progress without its output (the stream's
 * first event), or done. */
static struct json_object *
response_object(const char *id, const char *msg_id, const struct input *in,
                const char *answer, int64_t prompt, int64_t completion,
                bool cut, bool done)
{
	struct json_object *o = json_object_new_object();
	struct json_object *output = json_object_new_array();

	add_str(o, "id", id);
	add_str(o, "object", "response");
	add_int(o, "created_at", (int64_t)time(NULL));
	add_str(o, "status",
	        !done ? "in_progress"
	        : cut ? "incomplete"
	              : "completed");
	add_str(o, "model", in->model);
	if (done && cut) {
		struct json_object *why = json_object_new_object();

		add_str(why, "reason", "max_output_tokens");
		json_object_object_add(o, "incomplete_details", why);
	} else {
		json_object_object_add(o, "incomplete_details", NULL);
	}
	if (done)
		json_object_array_add(
		        output, message_item(msg_id, answer, "completed"));
	json_object_object_add(o, "output", output);
	json_object_object_add(
	        o, "usage", done ? response_usage(prompt, completion) : NULL);
	return o;
}

/* One event of a Responses stream: {"type", "sequence_number", ...}. */
static struct json_object *
response_event(const char *type, int *seq)
{
	struct json_object *e = json_object_new_object();

	add_str(e, "type", type);
	add_int(e, "sequence_number", (*seq)++);
	return e;
}

/* An output_text event of the message item's one part: key is the text. */
static void
text_event(struct tg_buf *b, const char *type, int *seq, const char *msg_id,
           const char *key, const char *text)
{
	struct json_object *e = response_event(type, seq);

	add_str(e, "item_id", msg_id);
	add_int(e, "output_index", 0);
	add_int(e, "content_index", 0);
	add_str(e, key, text);
	add_event(b, type, e);
}

static void
mock_response(const struct input *in, const char *answer, int64_t completion,
              bool cut, struct tg_upstream_response *r)
{
	int64_t prompt = mock_tokens(in->prompt_bytes);
	char uuid[37], id[48], msg_id[48];
	struct json_object *e, *item, *part;
	struct tg_buf b = {NULL, 0};
	int seq = 0;

	tg_uuid_new(uuid);
	snprintf(id, sizeof(id), "resp_mock_%s", uuid);
	snprintf(msg_id, sizeof(msg_id), "msg_mock_%s", uuid);
	if (!in->stream) {
		answer_json(r, response_object(id, msg_id, in, answer, prompt,
		                               completion, cut, true));
		return;
	}
	e = response_event("response.created", &seq);
	json_object_object_add(e, "response",
	                       response_object(id, msg_id, in, answer, prompt,
	                                       completion, cut, false));
	add_event(&b, "response.created", e);
	e = response_event("response.output_item.added", &seq);
	add_int(e, "output_index", 0);
	item = message_item(msg_id, "", "in_progress");
	json_object_object_add(item, "content", json_object_new_array());
	json_object_object_add(e, "item", item);
	add_event(&b, "response.output_item.added", e);
	if (answer[0] != '\0')
		text_event(&b, "response.output_text.delta", &seq, msg_id,
		           "delta", answer);
	text_event(&b, "response.output_text.done", &seq, msg_id, "text",
	           answer);
	e = response_event("response.output_item.done", &seq);
	add_int(e, "output_index", 0);
	json_object_object_add(e, "item",
	                       message_item(msg_id, answer, "completed"));
	add_event(&b, "response.output_item.done", e);
	e = response_event(cut ? "response.incomplete" : "response.completed",
	                   &seq);
	part = response_object(id, msg_id, in, answer, prompt, completion, cut,
	                       true);
	json_object_object_add(e, "response", part);
	add_event(&b, cut ? "response.incomplete" : "response.completed", e);
	answer_stream(r, &b);
}

/* ---- Anthropic's Messages API ---- */

static struct json_object *
message_usage(int64_t prompt, int64_t completion)
{
	struct json_object *u = json_object_new_object();

	add_int(u, "input_tokens", prompt);
	add_int(u, "cache_creation_input_tokens", 0);
	add_int(u, "cache_read_input_tokens", 0);
	add_int(u, "output_tokens", completion);
	return u;
}

/* A message object: its content one text block (none while a stream
 * begins). */
static struct json_object *
message_object(const char *id, const struct input *in, const char *answer,
               const char *stop_reason, struct json_object *usage)
{
	struct json_object *o = json_object_new_object();
	struct json_object *content = json_object_new_array();

	add_str(o, "id", id);
	add_str(o, "type", "message");
	add_str(o, "role", "assistant");
	add_str(o, "model", in->model);
	if (answer != NULL) {
		struct json_object *block = json_object_new_object();

		add_str(block, "type", "text");
		add_str(block, "text", answer);
		json_object_array_add(content, block);
	}
	json_object_object_add(o, "content", content);
	json_object_object_add(o, "stop_reason",
	                       stop_reason ? json_object_new_string(stop_reason)
	                                   : NULL);
	json_object_object_add(o, "stop_sequence", NULL);
	json_object_object_add(o, "usage", usage);
	return o;
}

static void
mock_message(const struct input *in, const char *answer, int64_t completion,
             bool cut, struct tg_upstream_response *r)
{
	int64_t prompt = mock_tokens(in->prompt_bytes);
	const char *stop = cut ? "max_tokens" : "end_turn";
	struct json_object *e, *part, *u;
	struct tg_buf b = {NULL, 0};
	char uuid[37], id[48];

	tg_uuid_new(uuid);
	snprintf(id, sizeof(id), "msg_mock_%s", uuid);
	if (!in->stream) {
		answer_json(r,
		            message_object(id, in, answer, stop,
		                           message_usage(prompt, completion)));
		return;
	}
	/* message_start carries the input side; message_delta the
	 * cumulative counts at the end. */
	e = json_object_new_object();
	add_str(e, "type", "message_start");
	json_object_object_add(
	        e, "message",
	        message_object(id, in, NULL, NULL, message_usage(prompt, 1)));
	add_event(&b, "message_start", e);
	e = json_object_new_object();
	add_str(e, "type", "content_block_start");
	add_int(e, "index", 0);
	part = json_object_new_object();
	add_str(part, "type", "text");
	add_str(part, "text", "");
	json_object_object_add(e, "content_block", part);
	add_event(&b, "content_block_start", e);
	if (answer[0] != '\0') {
		e = json_object_new_object();
		add_str(e, "type", "content_block_delta");
		add_int(e, "index", 0);
		part = json_object_new_object();
		add_str(part, "type", "text_delta");
		add_str(part, "text", answer);
		json_object_object_add(e, "delta", part);
		add_event(&b, "content_block_delta", e);
	}
	e = json_object_new_object();
	add_str(e, "type", "content_block_stop");
	add_int(e, "index", 0);
	add_event(&b, "content_block_stop", e);
	e = json_object_new_object();
	add_str(e, "type", "message_delta");
	part = json_object_new_object();
	add_str(part, "stop_reason", stop);
	json_object_object_add(part, "stop_sequence", NULL);
	json_object_object_add(e, "delta", part);
	u = message_usage(prompt, completion);
	json_object_object_add(e, "usage", u);
	add_event(&b, "message_delta", e);
	e = json_object_new_object();
	add_str(e, "type", "message_stop");
	add_event(&b, "message_stop", e);
	answer_stream(r, &b);
}

/* ---- embeddings ---- */

/* A deterministic vector of dims floats for text: bytes of its SHA-256,
 * spread over [-1, 1). */
static void
vector_of(const char *text, size_t len, int64_t dims, struct json_object *data,
          bool base64, size_t index)
{
	unsigned char digest[32];
	struct json_object *e = json_object_new_object();
	float *v = tg_xmalloc((size_t)dims * sizeof(float));

	tg_sha256(text, len, digest);
	for (int64_t i = 0; i < dims; i++)
		v[i] = ((float)digest[i % 32] - 128.0f) / 128.0f;
	add_str(e, "object", "embedding");
	add_int(e, "index", (int64_t)index);
	if (base64) {
		/* Little-endian float32s, as OpenAI sends them. */
		size_t n = (size_t)dims * sizeof(float);
		char *out = tg_xmalloc((n + 2) / 3 * 4 + 1);

		tg_base64(v, n, out);
		add_str(e, "embedding", out);
		free(out);
	} else {
		struct json_object *arr = json_object_new_array();

		for (int64_t i = 0; i < dims; i++)
			json_object_array_add(arr,
			                      json_object_new_double(v[i]));
		json_object_object_add(e, "embedding", arr);
	}
	json_object_array_add(data, e);
	free(v);
}

static void
mock_embeddings(struct json_object *req, const struct input *in,
                struct tg_upstream_response *r)
{
	struct json_object *o = json_object_new_object();
	struct json_object *data = json_object_new_array();
	struct json_object *input = NULL, *v, *u;
	int64_t dims = int_member(req, "dimensions", 8), tokens = 0;
	bool base64 = json_object_object_get_ex(req, "encoding_format", &v) &&
	              json_object_is_type(v, json_type_string) &&
	              strcmp(json_object_get_string(v), "base64") == 0;
	bool many;
	size_t n;

	if (dims < 1 || dims > 4096)
		dims = 8;
	json_object_object_get_ex(req, "input", &input);
	/* One vector per string or per array of tokens: an array of those
	 * is many inputs, a string or a flat array of tokens one. */
	many = json_object_is_type(input, json_type_array) &&
	       json_object_array_length(input) > 0 &&
	       !json_object_is_type(json_object_array_get_idx(input, 0),
	                            json_type_int);
	n = many ? json_object_array_length(input) : 1;
	for (size_t i = 0; i < n; i++) {
		struct json_object *one =
		        many ? json_object_array_get_idx(input, i) : input;
		const char *text;
		size_t len;

		if (json_object_is_type(one, json_type_string)) {
			text = json_object_get_string(one);
			len = (size_t)json_object_get_string_len(one);
			tokens += mock_tokens(len);
		} else {
			text = json_text(one, &len);
			if (json_object_is_type(one, json_type_array))
				tokens +=
				        (int64_t)json_object_array_length(one);
		}
		vector_of(text, len, dims, data, base64, i);
	}
	add_str(o, "object", "list");
	json_object_object_add(o, "data", data);
	add_str(o, "model", in->model);
	u = json_object_new_object();
	add_int(u, "prompt_tokens", tokens);
	add_int(u, "total_tokens", tokens);
	json_object_object_add(o, "usage", u);
	answer_json(r, o);
}

void
tg_upstream_mock(const struct tg_deployment *d,
                 const struct tg_upstream_request *rq,
                 struct tg_upstream_response *r)
{
	struct json_object *req = NULL;
	struct input in;
	char *answer = NULL;
	int64_t completion = 0;
	bool cut = false;

	memset(r, 0, sizeof(*r));
	memset(&in, 0, sizeof(in));
	snprintf(r->api_base, sizeof(r->api_base), "mock");
	if (rq->method != NULL && strcmp(rq->method, "POST") != 0) {
		answer_error(r, 404, "mock: the mock provider stores nothing");
		return;
	}
	if (rq->subpath != NULL) {
		answer_error(r, 404, "mock: the mock provider stores nothing");
		return;
	}
	req = rq->body != NULL ? tg_json_parse(rq->body, rq->body_len) : NULL;
	if (req == NULL || !json_object_is_type(req, json_type_object)) {
		answer_error(r, 400, "mock: request body is not a JSON object");
		goto out;
	}
	in.model = d->upstream_model ? d->upstream_model : "mock";
	read_input(rq->api, req, &in);
	if (rq->api != TG_API_EMBEDDINGS)
		answer = answer_text(d, &in, &completion, &cut);
	switch (rq->api) {
	case TG_API_CHAT:
	case TG_API_COMPLETIONS:
		mock_choices(rq->api, &in, answer, completion, cut, r);
		break;
	case TG_API_RESPONSES:
		mock_response(&in, answer, completion, cut, r);
		break;
	case TG_API_EMBEDDINGS: mock_embeddings(req, &in, r); break;
	case TG_API_MESSAGES:
		mock_message(&in, answer, completion, cut, r);
		break;
	case TG_API_COUNT: answer_error(r, 404, "mock: no such API"); break;
	}
out:
	json_object_put(req);
	free(in.echo.p);
	free(answer);
}
