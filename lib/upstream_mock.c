/*
 * upstream_mock: the mock/ provider (SPEC 7), which answers locally, without
 * network, in the shape the real API would, with usage counted from the
 * text: demos and offline trials are priced and charged like any other
 * model.  lib/upstream.c calls it where it would call the network.
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
 * array of parts, appended to buf (NULL: only counted).  Returns the bytes.
 */
static size_t
content_text(struct json_object *content, char **buf, size_t *blen)
{
	size_t total = 0, i, n;

	if (json_object_is_type(content, json_type_string)) {
		n = (size_t)json_object_get_string_len(content);
		if (buf) {
			*buf = tg_xrealloc(*buf, *blen + n + 1);
			memcpy(*buf + *blen, json_object_get_string(content),
			       n);
			*blen += n;
			(*buf)[*blen] = '\0';
		}
		return n;
	}
	if (!json_object_is_type(content, json_type_array))
		return 0;
	for (i = 0; i < json_object_array_length(content); i++) {
		struct json_object *part, *text;

		part = json_object_array_get_idx(content, i);
		if (json_object_object_get_ex(part, "text", &text))
			total += content_text(text, buf, blen);
	}
	return total;
}

static void
add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static struct json_object *
mock_usage(int64_t prompt, int64_t completion)
{
	struct json_object *u = json_object_new_object();

	json_object_object_add(u, "prompt_tokens",
	                       json_object_new_int64(prompt));
	json_object_object_add(u, "completion_tokens",
	                       json_object_new_int64(completion));
	json_object_object_add(u, "total_tokens",
	                       json_object_new_int64(prompt + completion));
	return u;
}

/* One chat.completion.chunk of a mock stream, as "data: ...\n\n". */
static void
mock_chunk(char **out, size_t *olen, const char *id, int64_t created,
           const char *model, struct json_object *delta,
           const char *finish_reason, struct json_object *usage)
{
	struct json_object *c = json_object_new_object();
	struct json_object *choices = json_object_new_array();
	const char *text;
	size_t n;

	add_str(c, "id", id);
	add_str(c, "object", "chat.completion.chunk");
	json_object_object_add(c, "created", json_object_new_int64(created));
	add_str(c, "model", model);
	if (delta != NULL) {
		struct json_object *ch = json_object_new_object();

		json_object_object_add(ch, "index", json_object_new_int(0));
		json_object_object_add(ch, "delta", delta);
		json_object_object_add(
		        ch, "finish_reason",
		        finish_reason ? json_object_new_string(finish_reason)
		                      : NULL);
		json_object_array_add(choices, ch);
	}
	json_object_object_add(c, "choices", choices);
	if (usage != NULL)
		json_object_object_add(c, "usage", usage);
	text = json_object_to_json_string_length(
	        c, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	*out = tg_xrealloc(*out, *olen + n + 9);
	memcpy(*out + *olen, "data: ", 6);
	memcpy(*out + *olen + 6, text, n);
	memcpy(*out + *olen + 6 + n, "\n\n", 3);
	*olen += n + 8;
	json_object_put(c);
}

void
tg_upstream_mock(const struct tg_deployment *d, const char *body,
                 size_t body_len, struct tg_upstream_response *r)
{
	struct json_object *req = tg_json_parse(body, body_len);
	struct json_object *messages, *v, *resp = NULL;
	char *echo = NULL, *answer = NULL;
	const char *model = d->upstream_model ? d->upstream_model : "mock";
	size_t echo_len = 0, prompt_bytes = 0, alen, i;
	int64_t limit = -1, completion;
	bool stream = false, include_usage = false, cut = false;
	char uuid[37], id[48];
	int64_t created = (int64_t)time(NULL);

	memset(r, 0, sizeof(*r));
	snprintf(r->api_base, sizeof(r->api_base), "mock");
	if (req == NULL || !json_object_is_type(req, json_type_object)) {
		static const char bad[] =
		        "{\"error\":{\"message\":\"mock: request body is not a "
		        "JSON object\",\"type\":\"invalid_request_error\","
		        "\"param\":null,\"code\":\"400\"}}";

		r->status = 400;
		r->body = tg_xstrdup(bad);
		r->body_len = sizeof(bad) - 1;
		r->content_type = tg_xstrdup("application/json");
		goto out;
	}
	if (json_object_object_get_ex(req, "model", &v) &&
	    json_object_is_type(v, json_type_string))
		model = json_object_get_string(v);
	if (json_object_object_get_ex(req, "messages", &messages) &&
	    json_object_is_type(messages, json_type_array)) {
		for (i = 0; i < json_object_array_length(messages); i++) {
			struct json_object *m, *role, *content;

			m = json_object_array_get_idx(messages, i);
			if (!json_object_object_get_ex(m, "content", &content))
				continue;
			prompt_bytes += content_text(content, NULL, NULL);
			if (json_object_object_get_ex(m, "role", &role) &&
			    json_object_is_type(role, json_type_string) &&
			    strcmp(json_object_get_string(role), "user") == 0) {
				free(echo);
				echo = NULL;
				echo_len = 0;
				content_text(content, &echo, &echo_len);
			}
		}
	}
	if ((json_object_object_get_ex(req, "max_completion_tokens", &v) ||
	     json_object_object_get_ex(req, "max_tokens", &v)) &&
	    json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) >= 0)
		limit = json_object_get_int64(v);
	if (json_object_object_get_ex(req, "stream", &v) &&
	    json_object_is_type(v, json_type_boolean))
		stream = json_object_get_boolean(v);
	if (json_object_object_get_ex(req, "stream_options", &v) &&
	    json_object_object_get_ex(v, "include_usage", &v) &&
	    json_object_is_type(v, json_type_boolean))
		include_usage = json_object_get_boolean(v);

	answer = tg_xstrdup(d->mock_response ? d->mock_response
	                    : echo           ? echo
	                                     : "");
	alen = strlen(answer);
	completion = mock_tokens(alen);
	if (limit >= 0 && completion > limit) {
		/* Cut at limit*4 bytes, on a UTF-8 character boundary. */
		size_t keep = (size_t)limit * 4;

		while (keep > 0 && ((unsigned char)answer[keep] & 0xc0) == 0x80)
			keep--;
		answer[keep] = '\0';
		alen = keep;
		completion = alen == 0 ? 0 : mock_tokens(alen);
		if (completion > limit)
			completion = limit;
		cut = true;
	}

	tg_uuid_new(uuid);
	snprintf(id, sizeof(id), "chatcmpl-%s", uuid);
	r->status = 200;
	if (stream) {
		struct json_object *delta;
		char *out = NULL;
		size_t olen = 0;

		delta = json_object_new_object();
		add_str(delta, "role", "assistant");
		add_str(delta, "content", "");
		mock_chunk(&out, &olen, id, created, model, delta, NULL, NULL);
		if (alen > 0) {
			delta = json_object_new_object();
			add_str(delta, "content", answer);
			mock_chunk(&out, &olen, id, created, model, delta, NULL,
			           NULL);
		}
		mock_chunk(&out, &olen, id, created, model,
		           json_object_new_object(), cut ? "length" : "stop",
		           NULL);
		if (include_usage)
			mock_chunk(&out, &olen, id, created, model, NULL, NULL,
			           mock_usage(mock_tokens(prompt_bytes),
			                      completion));
		out = tg_xrealloc(out, olen + 15);
		memcpy(out + olen, "data: [DONE]\n\n", 15);
		olen += 14;
		r->body = out;
		r->body_len = olen;
		r->content_type = tg_xstrdup("text/event-stream");
	} else {
		struct json_object *choices, *choice, *msg;
		const char *text;
		size_t n;

		resp = json_object_new_object();
		add_str(resp, "id", id);
		add_str(resp, "object", "chat.completion");
		json_object_object_add(resp, "created",
		                       json_object_new_int64(created));
		add_str(resp, "model", model);
		choices = json_object_new_array();
		choice = json_object_new_object();
		msg = json_object_new_object();
		json_object_object_add(choice, "index", json_object_new_int(0));
		add_str(msg, "role", "assistant");
		add_str(msg, "content", answer);
		json_object_object_add(choice, "message", msg);
		add_str(choice, "finish_reason", cut ? "length" : "stop");
		json_object_array_add(choices, choice);
		json_object_object_add(resp, "choices", choices);
		json_object_object_add(
		        resp, "usage",
		        mock_usage(mock_tokens(prompt_bytes), completion));
		text = json_object_to_json_string_length(
		        resp,
		        JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
		        &n);
		r->body = tg_xstrndup(text, n);
		r->body_len = n;
		r->content_type = tg_xstrdup("application/json");
	}
out:
	json_object_put(resp);
	json_object_put(req);
	free(echo);
	free(answer);
}
