/*
 * models: GET /models and /v1/models, the model names clients may send
 * (SPEC 8), in the OpenAI list shape the SDKs parse.  A virtual key sees
 * only the models it may call (SPEC 13).
 */
#include <string.h>

#include "app.h"

/* OpenAI's SDKs require "created"; LiteLLM answers with this constant. */
#define MODEL_CREATED 1677610602

static enum tg_rc
handle(struct tg_req *req, struct tg_err *err)
{
	const struct tg_config *cfg = tg_req_config(req);
	const struct tg_key *key = tg_req_key(req);
	struct json_object *list = json_object_new_object();
	struct json_object *data = json_object_new_array();

	(void)err;
	for (size_t i = 0; i < cfg->ndeployments; i++) {
		const struct tg_deployment *d = &cfg->deployments[i];
		struct json_object *m;
		bool seen = false;

		/* Several deployments may share a name: list it once. */
		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(cfg->deployments[j].model_name,
			              d->model_name) == 0;
		if (seen ||
		    (key != NULL && !tg_key_allows_model(key, d->model_name)))
			continue;
		m = json_object_new_object();
		json_object_object_add(m, "id",
		                       json_object_new_string(d->model_name));
		json_object_object_add(m, "object",
		                       json_object_new_string("model"));
		json_object_object_add(m, "created",
		                       json_object_new_int(MODEL_CREATED));
		json_object_object_add(
		        m, "owned_by",
		        json_object_new_string(tg_provider_name(d->provider)));
		json_object_array_add(data, m);
	}
	json_object_object_add(list, "object", json_object_new_string("list"));
	json_object_object_add(list, "data", data);
	tg_req_respond_json(req, 200, list);
	return TG_OK;
}

#define ROUTE(path)                                                            \
	{                                                                      \
		path, "GET", TG_AUTH_MASTER | TG_AUTH_KEY, TG_BODY_NONE, NULL, \
		        0, handle                                              \
	}

static const struct tg_route routes[] = {
        ROUTE("/models"),
        ROUTE("/v1/models"),
};

static const struct tg_program program = {.name = "models",
                                          .routes = routes,
                                          .nroutes = sizeof(routes) /
                                                     sizeof(routes[0])};

int
main(void)
{
	return tg_app_main(&program);
}
