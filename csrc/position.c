/* The next page's position read on the fetch thread; see position.h. */
#include "position.h"
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

/* ---- reading the envelope ------------------------------------------------ */

typedef struct {
    const cl_pos_paths *ps;
    const char *base, *end;
    const cl_shape *shape;
    cl_pos_page *out;
    uint64_t visited[CL_POS_MAX_KEYS];   /* paths stepped into at each level */
} walk_ctx;

static const char *
ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at '"': past the closing quote, or NULL. */
static const char *
skip_string(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '"')
            return p + 1;
        if (*p == '\\' && ++p >= e)
            return NULL;
    }
    return NULL;
}

/* Past the value at p, or NULL.  Structures recorded in the shape are
 * stepped over at once; the rest is scanned by brackets and strings. */
static const char *
skip_value(const walk_ctx *c, const char *p)
{
    const char *e = c->end;
    if (p >= e)
        return NULL;
    if (*p == '"')
        return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        const cl_span *sp = c->shape ? cl_shape_find(c->shape, (size_t)(p - c->base)) : NULL;
        if (sp != NULL)
            return c->base + sp->close + 1;
        char stack[64];
        int depth = 0;
        for (; p < e; p++) {
            char ch = *p;
            if (ch == '"') {
                if ((p = skip_string(p, e)) == NULL)
                    return NULL;
                p--;
            }
            else if (ch == '{' || ch == '[') {
                if (depth == (int)sizeof stack)
                    return NULL;               /* deep: not ours to judge */
                stack[depth++] = ch == '{' ? '}' : ']';
            }
            else if (ch == '}' || ch == ']') {
                if (depth == 0 || stack[--depth] != ch)
                    return NULL;
                if (depth == 0)
                    return p + 1;
            }
        }
        return NULL;
    }
    const char *s = p;
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t'
           && *p != '\n' && *p != '\r')
        p++;
    return p > s ? p : NULL;
}

static int
literal(const char *p, const char *e, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(e - p) < n || memcmp(p, word, n) != 0)
        return 0;
    p += n;
    return p == e || *p == ',' || *p == '}' || *p == ']' || *p == ' ' || *p == '\t'
        || *p == '\n' || *p == '\r';
}

static int
hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* A JSON string of printable ASCII (escapes of printable ASCII allowed)
 * into a malloc'd copy; -1 for anything else. */
static int
take_string(const char *p, const char *e, char **out, size_t *n)
{
    const char *q = skip_string(p, e);
    if (q == NULL || (size_t)(q - p) > CL_POS_MAX_VALUE)
        return -1;
    char *s = malloc((size_t)(q - p)), *o = s;
    if (s == NULL)
        return -1;
    for (p++; p < q - 1; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch < 0x20 || ch >= 0x7F)
            goto fail;
        if (ch != '\\') {
            *o++ = (char)ch;
            continue;
        }
        ch = (unsigned char)*++p;
        if (ch == '"' || ch == '\\' || ch == '/')
            *o++ = (char)ch;
        else if (ch == 'u' && q - 1 - p > 4) {
            int v = 0;
            for (int i = 1; i <= 4; i++) {
                int h = hexval(p[i]);
                if (h < 0)
                    goto fail;
                v = v * 16 + h;
            }
            if (v < 0x20 || v >= 0x7F)
                goto fail;
            *o++ = (char)v;
            p += 4;
        }
        else
            goto fail;
    }
    *o = '\0';
    *out = s;
    *n = (size_t)(o - s);
    return 0;
fail:
    free(s);
    return -1;
}

/* The elements of the array at p ('['), into the page's count. */
static int
count_items(walk_ctx *c, const char *p)
{
    const char *e = c->end;
    long long n = 0;
    p = ws(p + 1, e);
    if (p < e && *p == ']') {
        c->out->count = 0;
        return 0;
    }
    for (;;) {
        if ((p = skip_value(c, p)) == NULL)
            return -1;
        n++;
        p = ws(p, e);
        if (p < e && *p == ',') {
            p = ws(p + 1, e);
            continue;
        }
        if (p < e && *p == ']') {
            c->out->count = n;
            return 0;
        }
        return -1;
    }
}

/* The value at p is slot `slot`'s: read it plainly, or -1. */
static int
take_value(walk_ctx *c, int slot, const char *p)
{
    cl_pos_page *pg = c->out;
    if (pg->found[slot])
        return -1;                     /* twice (alternatives, duplicates) */
    pg->found[slot] = 1;
    if (*p == '"') {
        pg->kind[slot] = 's';
        return take_string(p, c->end, &pg->str[slot], &pg->len[slot]);
    }
    if (literal(p, c->end, "null")) {
        pg->kind[slot] = 'n';
        if (slot == CL_POS_ITEMS) {
            pg->empty = 1;
            pg->count = 0;
        }
        return 0;
    }
    if (literal(p, c->end, "true") || literal(p, c->end, "false")) {
        pg->kind[slot] = *p;
        return 0;
    }
    if (*p == '[' && slot == CL_POS_ITEMS) {
        const char *after = skip_value(c, p);
        if (after == NULL)
            return -1;
        pg->kind[slot] = '[';
        pg->items_at = (size_t)(p - c->base);
        pg->items_end = (size_t)(after - c->base);
        pg->empty = *ws(p + 1, c->end) == ']';
        return c->ps->count ? count_items(c, p) : 0;
    }
    if ((*p == '-' || (*p >= '0' && *p <= '9')) && slot != CL_POS_ITEMS) {
        const char *q = p + (*p == '-');
        long long v = 0;
        int digits = 0;
        while (q < c->end && *q >= '0' && *q <= '9' && digits < 19) {
            v = v * 10 + (*q++ - '0');
            digits++;
        }
        if (digits == 0 || digits > 18 || (digits > 1 && q[-digits] == '0')
            || !literal(q, c->end, ""))
            return -1;                 /* a fraction, an exponent, too long: not plain */
        pg->kind[slot] = 'i';
        pg->num[slot] = *p == '-' ? -v : v;
        return 0;
    }
    return -1;
}

/* The object at p ('{'), the paths of `mask` matched to `level` keys. */
static const char *
walk_object(walk_ctx *c, const char *p, int level, uint64_t mask)
{
    const char *e = c->end;
    p = ws(p + 1, e);
    if (p < e && *p == '}')
        return p + 1;
    for (;;) {
        if (p >= e || *p != '"')
            return NULL;
        const char *k = p + 1, *q = skip_string(p, e);
        if (q == NULL)
            return NULL;
        size_t klen = (size_t)(q - 1 - k);
        int escaped = memchr(k, '\\', klen) != NULL;
        p = ws(q, e);
        if (p >= e || *p != ':')
            return NULL;
        p = ws(p + 1, e);
        if (p >= e)
            return NULL;
        uint64_t sub = 0;
        for (int i = 0; i < c->ps->npaths; i++) {
            const cl_pos_path *pa = &c->ps->paths[i];
            if (!(mask >> i & 1) || pa->lens[level] != klen || memcmp(pa->keys[level], k, klen))
                continue;
            if (level + 1 == pa->nkeys) {
                if (take_value(c, pa->slot, p) < 0)
                    return NULL;
            }
            else
                sub |= (uint64_t)1 << i;
        }
        if (escaped)                   /* might be a key looked for, written otherwise */
            return NULL;
        const char *after;
        if (sub != 0) {
            if (*p != '{' || (c->visited[level] & sub) != 0)
                return NULL;           /* not an object, or a key seen twice */
            c->visited[level] |= sub;
            after = walk_object(c, p, level + 1, sub);
        }
        else
            after = skip_value(c, p);
        if (after == NULL)
            return NULL;
        p = ws(after, e);
        if (p < e && *p == ',') {
            p = ws(p + 1, e);
            continue;
        }
        if (p < e && *p == '}')
            return p + 1;
        return NULL;
    }
}

int
cl_pos_read(const cl_pos_paths *ps, const char *buf, size_t len, const cl_shape *shape,
            cl_pos_page *out)
{
    memset(out, 0, sizeof *out);
    out->count = -1;
    if (buf == NULL || ps->npaths < 1 || ps->npaths > 64)
        return -1;
    walk_ctx c = {.ps = ps, .base = buf, .end = buf + len, .shape = shape, .out = out};
    const char *p = buf;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    p = ws(p, c.end);
    if (p >= c.end || *p != '{')
        return -1;
    uint64_t all = ps->npaths == 64 ? ~(uint64_t)0 : ((uint64_t)1 << ps->npaths) - 1;
    p = walk_object(&c, p, 0, all);
    if (p == NULL || ws(p, c.end) != c.end)
        return -1;
    return 0;
}

void
cl_pos_page_free(cl_pos_page *pg)
{
    for (int i = 0; i < CL_POS_NSLOTS; i++) {
        free(pg->str[i]);
        pg->str[i] = NULL;
    }
}

void
cl_pos_paths_free(cl_pos_paths *ps)
{
    for (int i = 0; i < ps->npaths; i++)
        for (int k = 0; k < ps->paths[i].nkeys; k++)
            free(ps->paths[i].keys[k]);
    ps->npaths = 0;
}

/* ---- URLs -------------------------------------------------------------- */

void
cl_pos_origin_free(cl_pos_origin *o)
{
    curl_free(o->scheme);
    curl_free(o->host);
    curl_free(o->port);
    free(o->prefix);
    memset(o, 0, sizeof *o);
}

/* "scheme://authority/" of a URL libcurl gave back, into o (none when the
 * URL has no path, or out of memory: the plain path is then never taken). */
static void
set_prefix(cl_pos_origin *o, const char *full)
{
    const char *a = strstr(full, "://"), *slash;
    if (a == NULL || (slash = strchr(a + 3, '/')) == NULL
        || memchr(a + 3, '?', (size_t)(slash - a - 3)) != NULL
        || memchr(a + 3, '#', (size_t)(slash - a - 3)) != NULL)
        return;
    o->prefix_len = (size_t)(slash + 1 - full);
    if ((o->prefix = malloc(o->prefix_len + 1)) == NULL) {
        o->prefix_len = 0;
        return;
    }
    memcpy(o->prefix, full, o->prefix_len);
    o->prefix[o->prefix_len] = '\0';
}

char *
cl_pos_resolve(const char *base, const char *href, cl_pos_origin *o)
{
    CURLU *u = curl_url();
    char *full = NULL;
    memset(o, 0, sizeof *o);
    if (u == NULL)
        return NULL;
    if ((base != NULL && curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK)
        || curl_url_set(u, CURLUPART_URL, href, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_SCHEME, &o->scheme, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_HOST, &o->host, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_PORT, &o->port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        curl_free(full);
        cl_pos_origin_free(o);
        full = NULL;
    }
    else
        set_prefix(o, full);
    curl_url_cleanup(u);
    return full;
}

/* The bytes a plain URL may hold after its prefix: unreserved, sub-delims,
 * ":", "@", "/", "?" and "%" (checked for two hex digits). */
static int
url_plain_byte(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
        || (ch != 0 && strchr("-._~!$&'()*+,;=:@/?%", ch) != NULL);
}

/* Upper case only: libcurl 8 spells the escapes of a reference it resolves
 * against a base in upper case ("%2f" comes back as "%2F"). */
static int
hex_digit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* `r`, what follows the prefix's "/", is plain (cl_pos_resolve_plain). */
static int
plain_rest(const char *r)
{
    int query = 0;
    const char *p = r;
    if (*p == '/' || *p == '.')            /* "//" or a dot segment first */
        return 0;
    for (; *p != '\0'; p++) {
        unsigned char ch = (unsigned char)*p;
        if (p - r >= CL_POS_PLAIN_MAX || !url_plain_byte(ch))
            return 0;
        if (ch == '%') {
            if (!hex_digit(p[1]) || !hex_digit(p[2]))
                return 0;
            if (!query && p[1] == '2' && p[2] == 'E')
                return 0;                  /* an escaped dot in the path */
        }
        else if (ch == '?')
            query = 1;
        else if (ch == '/' && !query && (p[1] == '/' || p[1] == '.'))
            return 0;
    }
    return p == r || p[-1] != '?';         /* an empty query libcurl may drop */
}

char *
cl_pos_resolve_plain(const cl_pos_origin *o, const char *base, const char *href)
{
    const char *rest;
    size_t n = o->prefix_len;
    if (o->prefix == NULL)
        return NULL;
    /* a base libcurl would take as it stands (it parses the base first,
     * and fails the href with it) */
    if (base != NULL && (strncmp(base, o->prefix, n) != 0 || !plain_rest(base + n)))
        return NULL;
    if (strncmp(href, o->prefix, n) == 0)
        rest = href + n;
    else if (href[0] == '/' && href[1] != '/' && base != NULL)
        rest = href + 1;
    else
        return NULL;
    if (!plain_rest(rest))
        return NULL;
    size_t m = strlen(rest);
    char *url = malloc(n + m + 1);
    if (url != NULL) {
        memcpy(url, o->prefix, n);
        memcpy(url + n, rest, m + 1);
    }
    return url;
}

int
cl_pos_same_origin(const cl_pos_origin *a, const cl_pos_origin *b)
{
    return strcasecmp(a->scheme, b->scheme) == 0 && strcasecmp(a->host, b->host) == 0
        && strcmp(a->port, b->port) == 0;
}

char *
cl_pos_encode(const char *c, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    char *enc = malloc(3 * n + 1), *o = enc;
    if (enc == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)c[i];
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
            || ch == '-' || ch == '.' || ch == '_' || ch == '~')
            *o++ = (char)ch;
        else {
            *o++ = '%';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        }
    }
    *o = '\0';
    return enc;
}

/* ---- the loop guard ------------------------------------------------------ */

/* The fingerprints are keyed by a random number drawn once per process, so
 * that a server cannot choose positions whose fingerprints collide (a false
 * loop error, or a slow set).  The same key serves the fetch thread and the
 * consumer, which compare their reading of one listing. */
static uint64_t fp_key[2];
static pthread_once_t fp_once = PTHREAD_ONCE_INIT;

static void
fp_key_init(void)
{
    uint64_t k[2] = {0, 0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, k, sizeof k) != (ssize_t)sizeof k) {
        /* no /dev/urandom (a bare chroot): the clock and the address of
         * this function, which varies with ASLR, rather than no key */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)&fp_key_init;
        k[1] = (uint64_t)ts.tv_sec * 0xBF58476D1CE4E5B9ULL ^ (uint64_t)getpid();
    }
    if (fd >= 0)
        close(fd);
    fp_key[0] = k[0];
    fp_key[1] = k[1];
}

static void
fingerprint(const char *s, size_t n, uint64_t *a, uint64_t *b)
{
    pthread_once(&fp_once, fp_key_init);
    uint64_t h1 = 14695981039346656037ULL ^ fp_key[0], h2 = 0x9E3779B97F4A7C15ULL ^ fp_key[1];
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        h1 = (h1 ^ ch) * 1099511628211ULL;
        h2 = (h2 + ch) * 0xBF58476D1CE4E5B9ULL;
        h2 ^= h2 >> 31;
    }
    h2 ^= (uint64_t)n;
    if (h1 == 0 && h2 == 0)
        h2 = 1;                        /* (0, 0) marks a free slot */
    *a = h1;
    *b = h2;
}

static int
set_put(uint64_t *slots, size_t cap, uint64_t a, uint64_t b)
{
    size_t i = (size_t)(a ^ (b >> 7)) & (cap - 1);
    for (;;) {
        uint64_t *s = slots + 2 * i;
        if (s[0] == 0 && s[1] == 0) {
            s[0] = a;
            s[1] = b;
            return 0;
        }
        if (s[0] == a && s[1] == b)
            return 1;
        i = (i + 1) & (cap - 1);
    }
}

int
cl_pos_set_add(cl_pos_set *s, const char *pos, size_t n)
{
    uint64_t a, b;
    fingerprint(pos, n, &a, &b);
    if (2 * (s->used + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        uint64_t *slots = calloc(cap, 2 * sizeof *slots);
        if (slots == NULL)
            return -1;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[2 * i] != 0 || s->slots[2 * i + 1] != 0)
                set_put(slots, cap, s->slots[2 * i], s->slots[2 * i + 1]);
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    int seen = set_put(s->slots, s->cap, a, b);
    s->used += !seen;
    return seen;
}

void
cl_pos_set_free(cl_pos_set *s)
{
    free(s->slots);
    memset(s, 0, sizeof *s);
}
