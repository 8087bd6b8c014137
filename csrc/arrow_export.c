/* Arrow output: a built column tree handed over through the Arrow C Data
 * interface: the arrays (the builders' buffers move into them, freed by the
 * consumer through the release callbacks) and the schema. */
#include "arrow_cols.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hand the bytes over (never NULL: consumers may not accept a missing
 * buffer) and leave the builder empty. */
static void *
buf_take(abuf *b)
{
    void *p = b->p != NULL ? b->p : calloc(1, 16);
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- exporting arrays ----------------------------------------------------- */

typedef struct {
    void *bufs[3];
    const void *ptrs[3];
    int nkids;
    struct ArrowArray *kid_store;
    struct ArrowArray **kids;
    struct ArrowArray *dict;
} xarray;

static void
xarray_release(struct ArrowArray *a)
{
    xarray *x = a->private_data;
    for (int i = 0; i < x->nkids; i++)
        if (x->kid_store[i].release != NULL)
            x->kid_store[i].release(&x->kid_store[i]);
    if (x->dict != NULL && x->dict->release != NULL)
        x->dict->release(x->dict);
    free(x->dict);
    for (int i = 0; i < 3; i++)
        free(x->bufs[i]);
    free(x->kid_store);
    free(x->kids);
    free(x);
    a->release = NULL;
}

static int64_t
count_nulls(const acol *c)
{
    int64_t ones = 0, full = c->length >> 3;
    for (int64_t i = 0; i < full; i++)
        ones += __builtin_popcount(c->valid.p[i]);
    if (c->length & 7)
        ones += __builtin_popcount(c->valid.p[full] & ((1u << (c->length & 7)) - 1));
    return c->length - ones;
}

/* Move the builder's buffers into `out` (a releasable array even when this
 * fails part-way: the caller releases it). */
int
cl_acol_export_array(acol *c, struct ArrowArray *out, int top)
{
    memset(out, 0, sizeof *out);
    xarray *x = calloc(1, sizeof *x);
    if (x == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    out->length = c->length;
    out->null_count = top ? 0 : count_nulls(c);
    out->private_data = x;
    out->release = xarray_release;
    out->buffers = x->ptrs;
    int nb = 0;
    if (top) {
        x->bufs[nb++] = NULL;
        free(buf_take(&c->valid));
    }
    else
        x->bufs[nb++] = buf_take(&c->valid);
    switch (c->kind) {
    case A_STR: case A_DECSTR: case A_ANY:
        x->bufs[nb++] = buf_take(&c->offs);
        x->bufs[nb++] = buf_take(&c->data);
        break;
    case A_LIST:
        x->bufs[nb++] = buf_take(&c->offs);
        break;
    case A_STRUCT:
        break;
    default:
        x->bufs[nb++] = buf_take(&c->data);
        break;
    }
    out->n_buffers = nb;
    for (int i = 0; i < nb; i++) {
        if (x->bufs[i] == NULL && !(top && i == 0)) {
            PyErr_NoMemory();
            return -1;
        }
        x->ptrs[i] = x->bufs[i];
    }
    if (c->nchild > 0) {
        x->kid_store = calloc(c->nchild, sizeof *x->kid_store);
        x->kids = calloc(c->nchild, sizeof *x->kids);
        if (x->kid_store == NULL || x->kids == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        x->nkids = c->nchild;
        out->n_children = c->nchild;
        out->children = x->kids;
        for (int i = 0; i < c->nchild; i++) {
            x->kids[i] = &x->kid_store[i];
            if (cl_acol_export_array(c->child[i], &x->kid_store[i], 0) < 0)
                return -1;
        }
    }
    if (c->kind == A_ENUM) {
        if ((x->dict = calloc(1, sizeof *x->dict)) == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        out->dictionary = x->dict;
        if (cl_acol_export_array(c->dict, x->dict, 0) < 0)
            return -1;
    }
    return 0;
}

/* ---- exporting the schema ------------------------------------------------- */

typedef struct {
    char *format, *name;
    int nkids;
    struct ArrowSchema *kid_store;
    struct ArrowSchema **kids;
    struct ArrowSchema *dict;
} xschema;

static void
xschema_release(struct ArrowSchema *s)
{
    xschema *x = s->private_data;
    for (int i = 0; i < x->nkids; i++)
        if (x->kid_store[i].release != NULL)
            x->kid_store[i].release(&x->kid_store[i]);
    if (x->dict != NULL && x->dict->release != NULL)
        x->dict->release(x->dict);
    free(x->dict);
    free(x->kid_store);
    free(x->kids);
    free(x->format);
    free(x->name);
    free(x);
    s->release = NULL;
}

/* No Python here: the consumer may ask from any thread.  0 or ENOMEM. */
int
cl_acol_export_schema(const acol *c, struct ArrowSchema *out, int top)
{
    char fmt[32];
    memset(out, 0, sizeof *out);
    xschema *x = calloc(1, sizeof *x);
    if (x == NULL)
        return ENOMEM;
    out->private_data = x;
    out->release = xschema_release;
    switch (c->kind) {
    case A_STR: case A_DECSTR: case A_ANY: strcpy(fmt, "u"); break;
    case A_INT: strcpy(fmt, "l"); break;
    case A_FLOAT: strcpy(fmt, "g"); break;
    case A_BOOL: strcpy(fmt, "b"); break;
    case A_DEC: snprintf(fmt, sizeof fmt, "d:%d,%d", c->precision, c->scale); break;
    case A_TS: strcpy(fmt, "tsu:UTC"); break;
    case A_ENUM: strcpy(fmt, "i"); break;
    case A_LIST: strcpy(fmt, "+l"); break;
    default: strcpy(fmt, "+s"); break;
    }
    x->format = strdup(fmt);
    x->name = strdup(top ? "" : c->name);
    if (x->format == NULL || x->name == NULL)
        return ENOMEM;
    out->format = x->format;
    out->name = x->name;
    out->flags = top ? 0 : ARROW_FLAG_NULLABLE;
    if (c->nchild > 0) {
        x->kid_store = calloc(c->nchild, sizeof *x->kid_store);
        x->kids = calloc(c->nchild, sizeof *x->kids);
        if (x->kid_store == NULL || x->kids == NULL)
            return ENOMEM;
        x->nkids = c->nchild;
        out->n_children = c->nchild;
        out->children = x->kids;
        for (int i = 0; i < c->nchild; i++) {
            x->kids[i] = &x->kid_store[i];
            if (cl_acol_export_schema(c->child[i], &x->kid_store[i], 0) != 0)
                return ENOMEM;
        }
    }
    if (c->kind == A_ENUM) {
        if ((x->dict = calloc(1, sizeof *x->dict)) == NULL)
            return ENOMEM;
        out->dictionary = x->dict;
        if (cl_acol_export_schema(c->dict, x->dict, 0) != 0)
            return ENOMEM;
        x->dict->flags = 0;
    }
    return 0;
}
