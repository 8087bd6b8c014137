/* The next page's position, worked out on the fetch thread: where a page
 * keeps its cursor, has-more flag, next link and items (the envelope's wire
 * paths), read straight from the received bytes; the next URL built from
 * it and held to the client's origin; the loop guard's set of positions
 * already followed.  No Python here: it all runs without the GIL.
 *
 * Reading is cautious: a value is taken only when it is plain (a JSON
 * string of printable ASCII, true/false/null, an array), found once, on a
 * well-formed path.  Anything else is "not sure", and the pager's own
 * reading, on the consumer's thread, decides (and raises its errors). */
#ifndef CL_POSITION_H
#define CL_POSITION_H

#include "shape.h"
#include <stddef.h>
#include <stdint.h>

/* The envelope slots the fetch thread reads (a subset of pager.h's). */
enum { CL_POS_ITEMS, CL_POS_CURSOR, CL_POS_HAS_MORE, CL_POS_NEXT, CL_POS_TOTAL,
       CL_POS_TOTAL_PAGES, CL_POS_NSLOTS };

#define CL_POS_MAX_PATHS 32        /* wire paths over all slots */
#define CL_POS_MAX_KEYS 8          /* keys in one path */
#define CL_POS_MAX_VALUE 65536     /* bytes of a cursor or link taken here */

typedef struct {
    int slot;
    int nkeys;
    char *keys[CL_POS_MAX_KEYS];   /* malloc'd, NUL-terminated */
    size_t lens[CL_POS_MAX_KEYS];
} cl_pos_path;

typedef struct {
    int npaths;
    cl_pos_path paths[CL_POS_MAX_PATHS];
    int count;                     /* count the items (else only whether there are any) */
} cl_pos_paths;

void cl_pos_paths_free(cl_pos_paths *ps);

/* What a page says, as far as read here.  `found` per slot: 0 absent,
 * 1 present; `kind` of a present value: 's' string (in str, malloc'd),
 * 'i' a whole number of at most 18 digits (in num), 't' true, 'f' false,
 * 'n' null, '[' an array (the items: bytes [items_at, items_end) of the
 * body) (`empty` says whether it
 * has no element; `count`, when the paths ask for it, how many it has, by
 * their brackets, as the pager counts them). */
typedef struct {
    int found[CL_POS_NSLOTS];
    char kind[CL_POS_NSLOTS];
    char *str[CL_POS_NSLOTS];
    size_t len[CL_POS_NSLOTS];
    long long num[CL_POS_NSLOTS];
    size_t items_at, items_end;
    int empty;
    long long count;               /* items, when counted (-1 otherwise) */
} cl_pos_page;

/* Read the slots of `paths` from the body.  0 when every value was read
 * plainly, -1 when not sure (the caller then leaves the page to the
 * consumer).  cl_pos_page_free() in both cases. */
int cl_pos_read(const cl_pos_paths *paths, const char *buf, size_t len, const cl_shape *shape,
                cl_pos_page *out);
void cl_pos_page_free(cl_pos_page *pg);

/* An origin, as libcurl's URL parser gives its parts (curl_free'd), and
 * the start of the URL it was read from up to its path's first "/", as
 * libcurl gave it back ("scheme://authority/", malloc'd; NULL if none). */
typedef struct {
    char *scheme, *host, *port;
    char *prefix;
    size_t prefix_len;
} cl_pos_origin;

void cl_pos_origin_free(cl_pos_origin *o);
/* `href` resolved against `base` (may be NULL): the absolute URL (curl_free
 * it) and its origin in *o, or NULL if unparsable. */
char *cl_pos_resolve(const char *base, const char *href, cl_pos_origin *o);
int cl_pos_same_origin(const cl_pos_origin *a, const cl_pos_origin *b);
/* cl_pos_resolve's answer without libcurl's parser, for the plain case
 * only: `base` is NULL or starts with o's prefix and is plain itself,
 * `href` is absolute and starts with o's prefix, or is a path ("/..." but
 * not "//...") and there is a base, and the rest is plain (no dot segment, no "//" in the path, no empty query,
 * no fragment, %XX escapes only (upper-case hex), no byte outside the URL's own characters,
 * not over CL_POS_PLAIN_MAX bytes).  Such a URL resolves to itself (or to
 * the prefix and the path), on origin `o`: the malloc'd URL, or NULL when
 * not plain (the caller then asks cl_pos_resolve). */
#define CL_POS_PLAIN_MAX 8192
char *cl_pos_resolve_plain(const cl_pos_origin *o, const char *base, const char *href);
/* `s` (n bytes) percent-encoded but for the unreserved characters, into a
 * malloc'd string; NULL when out of memory. */
char *cl_pos_encode(const char *s, size_t n);

/* The loop guard: a set of 128-bit fingerprints of positions. */
typedef struct {
    uint64_t *slots;               /* pairs; (0, 0) is empty */
    size_t cap, used;
} cl_pos_set;

/* 1 if the position (n bytes) was in the set, else adds it and returns 0;
 * -1 out of memory. */
int cl_pos_set_add(cl_pos_set *s, const char *pos, size_t n);
void cl_pos_set_free(cl_pos_set *s);

#endif
