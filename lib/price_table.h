/*
 * price_table: the price file as a table (tg_pricing_load/find/free in
 * lib/pricing.h), its compiled index, and the identity of a file.
 *
 * Why an index: LiteLLM's whole map is 1.6 MB of JSON, and a program run as
 * plain CGI loads its config, and so resolves its prices, on every call.
 * The index, a file beside the price file (<file>.idx), maps each model
 * name to the bytes of its entry in the JSON text; with it a load parses
 * only the entries the config asks for.  It records the identity of the
 * JSON file it was made from (size, modification time in ns, inode), so an
 * index left behind by an edit or a copy is told apart and ignored: the
 * file is then parsed whole, as without an index (correct, only slower).
 *
 * The format (version 1; every integer little-endian, whatever the
 * machine):
 *
 *   0   magic "TGPRIDX\n"          8 bytes
 *   8   version (1)                u32
 *   12  header size (64)           u32
 *   16  JSON file size             u64
 *   24  JSON mtime, seconds        i64
 *   32  JSON mtime, nanoseconds    u32
 *   36  entry count                u32
 *   40  JSON inode                 u64
 *   48  size of the names          u32
 *   52  0                          u32
 *   56  checksum                   u64 (of every other byte)
 *   64  entries, sorted by name (bytes compared unsigned), 16 bytes each:
 *       name offset, name length (into the names), member offset, member
 *       length (into the JSON file)           u32 each
 *   ..  the names, each followed by a NUL
 *
 * The checksum (not cryptographic: it tells a damaged or cut file from a
 * whole one, in microseconds) starts at 0x9e3779b97f4a7c15 xor the file's
 * size and takes the bytes before it, then those after the header, 8 at
 * a time as little-endian words w (the last one zero-padded):
 * h = (h ^ w) * 0xff51afd7ed558ccd; h ^= h >> 32.
 *
 * A member is a top-level "name": {...} of the JSON text, key included:
 * a lookup parses it as the object {"name": {...}} and checks that the key
 * is the name it looked for, so an index that does not fit its file never
 * prices a model with another model's entry.  Names whose value is not an
 * object, and "sample_spec", are left out; of a name given twice, the last
 * (as json-c keeps it).  The file's size is exactly what its header says,
 * and every offset is checked against the bounds before use.
 */
#ifndef TG_PRICE_TABLE_H
#define TG_PRICE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "pricing.h"

/* The identity of a file at one moment: a change of any field means the
 * file changed (was replaced, edited, or removed). */
struct tg_file_stamp {
	bool present; /* false: the file could not be stat()ed */
	uint64_t dev, ino;
	int64_t size;
	int64_t mtime_s;
	long mtime_ns;
};

/* stat(path) into *out (present false when it fails). */
void tg_file_stamp_get(const char *path, struct tg_file_stamp *out);
/* Whether a and b are the same file in the same state (two absent files
 * are the same). */
bool tg_file_stamp_eq(const struct tg_file_stamp *a,
                      const struct tg_file_stamp *b);

/* The identity of the price file p was read from, as it was opened. */
void tg_pricing_stamp(const struct tg_pricing *p, struct tg_file_stamp *out);

/* Whether p answers from the index (false: the file was parsed whole). */
bool tg_pricing_uses_index(const struct tg_pricing *p);

/*
 * data[0..len) as a new file beside path (its name: path with a random
 * suffix, malloc'd), written whole and fsync()ed, with path's permissions
 * when keep_mode and path exists; NULL with err (TG_ERR_INTERNAL, the
 * path and the reason) when it cannot be, and nothing left behind.  The
 * caller renames it over path, then calls tg_pricing_sync_dir(path).
 */
char *tg_pricing_write_beside(const char *path, const void *data, size_t len,
                              bool keep_mode, struct tg_err *err);

/* fsync() the directory of path, so that a rename into it lasts. */
void tg_pricing_sync_dir(const char *path);

/* The index of price file path: path with ".idx" appended (malloc'd). */
char *tg_pricing_index_path(const char *path);

/*
 * Make the index of the price file json_path and write it to idx_path
 * (NULL: tg_pricing_index_path(json_path)): a new file beside it, written
 * whole, fsync()ed and renamed over idx_path, so a reader sees the old
 * index or the new one, never a part.  The price file must load as
 * tg_pricing_load() loads it (TG_ERR_CONFIG with its message if not);
 * write errors are TG_ERR_INTERNAL with the path and the reason.
 */
enum tg_rc tg_pricing_index_write(const char *json_path, const char *idx_path,
                                  struct tg_err *err);

/*
 * Make the index bytes m[0..len) (len >= 64) claim the identity of the
 * file json_path as it is now, and the checksum of what they hold: for
 * tests and the fuzzer, which write indexes by hand.  False when
 * json_path cannot be stat()ed or len is too short.
 */
bool tg_pricing_index_seal(unsigned char *m, size_t len, const char *json_path);

enum tg_index_state {
	TG_INDEX_VALID,   /* it fits the file: loads use it */
	TG_INDEX_MISSING, /* no <file>.idx */
	TG_INDEX_STALE,   /* made from another file, or before a change */
	TG_INDEX_CORRUPT, /* not an index, another version, or damaged */
};

/*
 * The state of json_path's index, checked through: header, checksum,
 * identity, and then every entry's bounds, order and member (each parsed
 * and its key compared).  why (whylen bytes, may be NULL) says what is
 * wrong in words.
 */
enum tg_index_state tg_pricing_index_check(const char *json_path, char *why,
                                           size_t whylen);

#endif
