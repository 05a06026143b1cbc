/*
 * upstream_mock: the mock/ provider's answers (see upstream_mock.c).
 */
#ifndef TG_UPSTREAM_MOCK_H
#define TG_UPSTREAM_MOCK_H

#include <stddef.h>

#include "config.h"
#include "upstream.h"

/*
 * The mock answer to rq for deployment d, in the shape of rq's API (its SSE
 * stream when the body says "stream": true): the text is mock_response, or
 * an echo of the last user input, usage is counted from the texts (ceil of
 * bytes / 4), and the text is cut so that the output never exceeds the
 * request's bound.  A body that is not a JSON object is answered 400; a
 * request for a stored object 404 (the mock keeps nothing).  *r is
 * written whole (free it as any answer).
 */
void tg_upstream_mock(const struct tg_deployment *d,
                      const struct tg_upstream_request *rq,
                      struct tg_upstream_response *r);

#endif
