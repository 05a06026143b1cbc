/*
 * pricing_priv: what lib/pricing.c (an entry's prices, a request's cost)
 * and lib/price_table.c (the file of every entry) share.  Not for other
 * modules.
 */
#ifndef TG_PRICING_PRIV_H
#define TG_PRICING_PRIV_H

#include <stdbool.h>

#include <json-c/json.h>

#include "pricing.h"

/*
 * Fill *out from one entry of the file.  False when the entry has no usable
 * per-token input and output price (image, audio, per-second models, or a
 * figure that is not an exact decimal; an embedding model without an
 * output price has 0): such entries are skipped.
 */
bool tg_price_entry_from_json(struct json_object *entry,
                              struct tg_price_entry *out);

#endif
