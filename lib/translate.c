/*
 * translate: which translation serves a route on a provider (see
 * translate.h).
 */
#include <stddef.h>

#include "translate.h"

static const struct tg_translation *const translations[] = {
        &tg_translate_chat_to_messages,
        &tg_translate_messages_to_chat,
};

bool
tg_translate_route(enum tg_api client, enum tg_provider p,
                   enum tg_api *upstream, const struct tg_translation **tr)
{
	*tr = NULL;
	*upstream = client;
	if (tg_provider_serves(p, client))
		return true;
	for (size_t i = 0; i < sizeof(translations) / sizeof(translations[0]);
	     i++)
		if (translations[i]->client == client &&
		    tg_provider_serves(p, translations[i]->upstream)) {
			*tr = translations[i];
			*upstream = translations[i]->upstream;
			return true;
		}
	return false;
}
