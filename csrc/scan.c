/* The scanning layer both sinks share (see scan.h): what of it is not
 * inlined into their loops.  The key maps' index and memory, the
 * discriminator look-ahead, and the ISO-8601 reader. */
#include "scan.h"
#include <stdlib.h>

/* ---- key maps ------------------------------------------------------------ */

int
cl_keymap_index(cl_keymap *km)
{
    size_t size = 8;
    while (size < (size_t)km->n * 2)
        size *= 2;
    cl_keymap_drop_index(km);
    /* malloc: a key map may be freed without the GIL (Arrow's builders) */
    if ((km->index = calloc(size, sizeof(int32_t))) == NULL
        || (km->preds = calloc((size_t)km->n + 2, sizeof(cl_pred))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    km->mask = size - 1;
    for (Py_ssize_t i = 0; i < km->n + 2; i++)
        km->preds[i].len = -1;
#ifdef Py_GIL_DISABLED
    km->seq = 0;
#endif
    for (Py_ssize_t i = 0; i < km->n; i++) {
        const cl_word *w = &km->ents[i].key;
        size_t h = key_hash(w->len, w->head, w->head2) & km->mask;
        while (km->index[h] != 0)
            h = (h + 1) & km->mask;
        km->index[h] = (int32_t)(i + 1);
        if (km->ents[i].group != NULL && cl_keymap_index(km->ents[i].group) < 0)
            return -1;
    }
    return 0;
}

void
cl_keymap_drop_index(cl_keymap *km)
{
    free(km->index);
    free(km->preds);
    km->index = NULL;
    km->preds = NULL;
    km->mask = 0;
}

/* ---- the discriminator look-ahead ----------------------------------------- */

int
cl_find_tag(cl_dec *d, const char *tag, Py_ssize_t taglen, int first_only, int validate,
            cl_str *out)
{
    const char *at = d->p, *b;
    int depth = d->depth, first = 1, found = 0, rc;
    Py_ssize_t len;
    cl_str key;
    out->s = NULL;
    d->p++;
    while ((rc = cl_obj_next(d, &first, &key)) == 1) {
        if (key.escaped ? str_bytes(d, &key, &b, &len) < 0 : (b = key.s, len = key.len, 0))
            return -1;
        int is_tag = len == taglen && memcmp(b, tag, (size_t)len) == 0;
        if (is_tag) {
            found = 1;
            out->s = NULL;
        }
        if (is_tag && *d->p == '"')
            rc = cl_scan_string(d, out);
        else if (is_tag && first_only)
            rc = 0;
        else if (!validate && (*d->p == '[' || *d->p == '{'))
            rc = cl_skip_structure(d);
        else
            rc = cl_skip_value(d);
        if (rc < 0)
            return -1;
        if (is_tag && first_only)
            break;
    }
    d->p = at;
    d->depth = depth;
    return rc < 0 ? -1 : found;
}

/* ---- ISO-8601 timestamps --------------------------------------------------- */

static int
fixed_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int
days_in_month(long long y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return dm[m - 1] + (m == 2 && leap);
}

/* The time after its seconds (or after the minutes when it has none), at
 * s: range checks, a fraction, a leap second, the zone; f->y, m and day are
 * set already. */
static int
iso_time_rest(const char *s, const char *e, int hh, int mi, int ss, cl_iso *f)
{
    int us = 0, off = 0, leap = 0;
    if (hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss > 60)
        return -1;
    if (s < e && (*s == '.' || *s == ',')) {
        int nd = 0;
        for (s++; s < e && *s >= '0' && *s <= '9'; s++, nd++)
            if (nd < 6)
                us = us * 10 + (*s - '0');
        if (nd == 0)
            return -1;
        for (; nd < 6; nd++)
            us *= 10;
    }
    if (ss == 60) {                        /* leap second: clamp */
        ss = 59;
        us = 999999;
        leap = 1;
    }
    if (s < e && (*s == 'Z' || *s == 'z'))
        s++;
    else if (s < e && (*s == '+' || *s == '-')) {
        int sign = *s == '-' ? -1 : 1, oh, om;
        if (e - s == 6 && s[3] == ':')
            oh = fixed_digits(s + 1, 2), om = fixed_digits(s + 4, 2);
        else if (e - s == 5)
            oh = fixed_digits(s + 1, 2), om = fixed_digits(s + 3, 2);
        else if (e - s == 3)
            oh = fixed_digits(s + 1, 2), om = 0;
        else
            return -1;
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        off = sign * (oh * 3600 + om * 60);
        s = e;
    }
    if (s != e)
        return -1;
    if (leap && ((hh * 60 + mi - off / 60) % 1440 + 1440) % 1440 != 1439)
        return -1;                         /* not 23:59 UTC: no leap second there */
    f->hh = hh;
    f->mi = mi;
    f->ss = ss;
    f->us = us;
    f->off = off;
    return 0;
}

/* Whether every byte of w that `mask` keeps is an ASCII digit: its high
 * nibble is 3 and adding 6 keeps it so (a digit never carries). */
static inline int
digits_in(uint64_t w, uint64_t mask)
{
    const uint64_t nib = 0xF0F0F0F0F0F0F0F0ULL & mask, zeros = 0x3030303030303030ULL & mask;
    return (w & nib) == zeros && ((w + 0x0606060606060606ULL) & nib) == zeros;
}

#define DIGIT(c) ((c) - '0')

int
cl_parse_iso_fields(const char *s, Py_ssize_t n, cl_iso *f)
{
    const char *e = s + n;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* The usual spelling, "YYYY-MM-DDTHH:MM:SS" and whatever follows, read
     * sixteen bytes at a time; anything else takes the general reading
     * below, which gives the same answer for this spelling too. */
    if (n >= 19) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + 8, 8);
        if (digits_in(a, 0x00FFFF00FFFFFFFFULL) && digits_in(b, 0xFFFF00FFFF00FFFFULL)
            && s[4] == '-' && s[7] == '-' && (s[10] == 'T' || s[10] == 't' || s[10] == ' ')
            && s[13] == ':' && s[16] == ':' && (unsigned)DIGIT(s[17]) < 10
            && (unsigned)DIGIT(s[18]) < 10) {
            int y = DIGIT(s[0]) * 1000 + DIGIT(s[1]) * 100 + DIGIT(s[2]) * 10 + DIGIT(s[3]);
            int m = DIGIT(s[5]) * 10 + DIGIT(s[6]), day = DIGIT(s[8]) * 10 + DIGIT(s[9]);
            if (y < 1 || m < 1 || m > 12 || day < 1 || day > days_in_month(y, m))
                return -1;
            f->y = y;
            f->m = m;
            f->day = day;
            return iso_time_rest(s + 19, e, DIGIT(s[11]) * 10 + DIGIT(s[12]),
                                 DIGIT(s[14]) * 10 + DIGIT(s[15]),
                                 DIGIT(s[17]) * 10 + DIGIT(s[18]), f);
        }
    }
#endif
    if (n < 10 || s[4] != '-' || s[7] != '-')
        return -1;
    int y = fixed_digits(s, 4), m = fixed_digits(s + 5, 2), day = fixed_digits(s + 8, 2);
    if (y < 1 || m < 1 || m > 12 || day < 1 || day > days_in_month(y, m))
        return -1;
    f->y = y;
    f->m = m;
    f->day = day;
    s += 10;
    if (s == e) {                          /* a date alone: midnight UTC */
        f->hh = f->mi = f->ss = f->us = f->off = 0;
        return 0;
    }
    int hh, mi, ss = 0;
    if ((*s != 'T' && *s != 't' && *s != ' ') || e - s < 6 || s[3] != ':')
        return -1;
    hh = fixed_digits(s + 1, 2);
    mi = fixed_digits(s + 4, 2);
    s += 6;
    if (s < e && *s == ':') {
        if (e - s < 3 || (ss = fixed_digits(s + 1, 2)) < 0)
            return -1;
        s += 3;
    }
    else if (s < e && (*s == '.' || *s == ','))
        return -1;                         /* a fraction of a minute */
    return iso_time_rest(s, e, hh, mi, ss, f);
}
