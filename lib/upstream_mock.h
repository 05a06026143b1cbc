/*
 * upstream_mock: the mock/ provider's answers (see upstream_mock.c).
 */
#ifndef TG_UPSTREAM_MOCK_H
#define TG_UPSTREAM_MOCK_H

#include <stddef.h>

#include "config.h"
#include "upstream.h"

/*
 * The mock answer to body for deployment d: mock_response, or an echo of
 * the last user message, in the OpenAI chat.completion shape (or its SSE
 * stream when "stream": true).  Usage is counted from the text and the
 * answer is cut so that completion_tokens never exceeds
 * max_completion_tokens/max_tokens.  A body that is not a JSON object is
 * answered 400.  *r is written whole (free it as any answer).
 */
void tg_upstream_mock(const struct tg_deployment *d, const char *body,
                      size_t body_len, struct tg_upstream_response *r);

#endif
