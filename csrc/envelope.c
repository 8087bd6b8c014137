/* What a page must hold that its description names: a page without its
 * items key, or without the next cursor or link where it must give one, is
 * an error naming the key looked for and the keys the page has there (the
 * usual cause: a misspelt key in the description), never a short listing.
 * Only error paths run here: nothing is looked at on a well-formed page. */
#include "envelope.h"
#include "json.h"
#include <string.h>

#define CL_KEYS_SHOWN 20          /* keys named in a message, at most */

/* The wire paths (tuples of keys) the page schema reads into `slot`. */
PyObject *
cl_envelope_paths(cl_schema *page, int slot)
{
    PyObject *spec = page->spec, *out = NULL, *fields;
    if (spec == NULL || !PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 4
        || !PyTuple_Check(fields = PyTuple_GET_ITEM(spec, 3)))
        return PyTuple_New(0);
    if ((out = PyList_New(0)) == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++) {
        PyObject *f = PyTuple_GET_ITEM(fields, i);
        if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) != 3)
            continue;
        PyObject *s = PyTuple_GET_ITEM(f, 1);
        if (PyLong_Check(s) && PyLong_AsLong(s) == slot
            && PyList_Append(out, PyTuple_GET_ITEM(f, 0)) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    Py_SETREF(out, PyList_AsTuple(out));
    return out;
}

/* The keys of the object at the cursor, as strs; `want` (may be NULL): a
 * key whose object value is stepped into afterwards, its '{' put in *into. */
static PyObject *
object_keys(cl_dec *d, PyObject *want, const char **into)
{
    PyObject *keys = PyList_New(0), *k = NULL;
    cl_str key;
    int first = 1, rc;
    *into = NULL;
    if (keys == NULL)
        return NULL;
    d->p++;
    while ((rc = cl_obj_next(d, &first, &key)) == 1) {
        Py_ssize_t n = key.len;
        const char *b = key.s;
        if (key.escaped) {
            if (cl_unescape(d, &key, &n) < 0)
                goto fail;
            b = d->scratch;
        }
        if ((k = PyUnicode_DecodeUTF8(b, n, "replace")) == NULL || PyList_Append(keys, k) < 0)
            goto fail;
        if (want != NULL && *d->p == '{' && PyUnicode_Compare(k, want) == 0)
            *into = d->p;
        Py_CLEAR(k);
        if (cl_skip_value(d) < 0)
            goto fail;
    }
    if (rc == 0)
        return keys;
fail:
    Py_XDECREF(k);
    Py_DECREF(keys);
    return NULL;
}

/* The keys where `path` stops in the body: those of the deepest object
 * it leads to; *depth: how many of its keys led there. */
static PyObject *
keys_along(cl_state *st, const char *buf, size_t len, int max_depth, PyObject *path,
           Py_ssize_t *depth)
{
    cl_dec d;
    PyObject *keys = NULL;
    const char *into = NULL;
    cl_dec_init(&d, st, buf, len, max_depth);
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        d.p += 3;
    cl_skip_ws(&d);
    *depth = 0;
    if (d.p >= d.end || *d.p != '{') {
        keys = PyList_New(0);
        goto done;
    }
    for (;;) {
        Py_ssize_t n = PyTuple_GET_SIZE(path);
        PyObject *want = *depth + 1 < n ? PyTuple_GET_ITEM(path, *depth) : NULL;
        keys = object_keys(&d, want, &into);
        if (keys == NULL || into == NULL)
            break;
        Py_CLEAR(keys);
        d.p = into;
        ++*depth;
    }
done:
    cl_dec_free(&d);
    return keys;
}

static PyObject *
dotted(PyObject *path)
{
    PyObject *dot = PyUnicode_FromString(".");
    PyObject *s = dot == NULL ? NULL : PyUnicode_Join(dot, path);
    Py_XDECREF(dot);
    return s;
}

static PyObject *
missing_key_class(void)
{
    PyObject *mod = PyImport_ImportModule("custlist.errors");
    PyObject *cls = mod == NULL ? NULL : PyObject_GetAttrString(mod, "MissingKeyError");
    Py_XDECREF(mod);
    return cls;
}

int
cl_envelope_missing(cl_state *st, const char *buf, size_t len, int max_depth, PyObject *paths,
                    const char *why)
{
    PyObject *names = NULL, *keys = NULL, *shown = NULL, *sep = NULL, *list = NULL;
    PyObject *where = NULL, *msg = NULL, *cls = NULL, *exc = NULL, *best = NULL;
    Py_ssize_t best_depth = -1, n = PyTuple_GET_SIZE(paths);
    if ((names = PyList_New(0)) == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *path = PyTuple_GET_ITEM(paths, i), *name = dotted(path);
        Py_ssize_t depth;
        if (name == NULL || PyList_Append(names, name) < 0) {
            Py_XDECREF(name);
            goto fail;
        }
        Py_DECREF(name);
        PyObject *k = keys_along(st, buf, len, max_depth, path, &depth);
        if (k == NULL)
            goto fail;
        if (depth > best_depth) {
            Py_XSETREF(keys, k);
            best_depth = depth;
            best = path;
        }
        else
            Py_DECREF(k);
    }
    if (keys == NULL && (keys = PyList_New(0)) == NULL)
        goto fail;
    Py_ssize_t nk = PyList_GET_SIZE(keys);
    if ((sep = PyUnicode_FromString(", ")) == NULL
        || (shown = PyList_GetSlice(keys, 0, nk < CL_KEYS_SHOWN ? nk : CL_KEYS_SHOWN)) == NULL
        || (list = PyUnicode_Join(sep, shown)) == NULL)
        goto fail;
    if (best_depth > 0) {
        PyObject *head = PyTuple_GetSlice(best, 0, best_depth);
        PyObject *d = head == NULL ? NULL : dotted(head);
        Py_XDECREF(head);
        where = d == NULL ? NULL : PyUnicode_FromFormat("keys of '%U'", d);
        Py_XDECREF(d);
    }
    else
        where = PyUnicode_FromString(nk ? "keys" : "no keys");
    if (where == NULL)
        goto fail;
    if (n == 1)
        msg = PyUnicode_FromFormat("'%U' not in the page%s (%U%s%U%s)",
                                   PyList_GET_ITEM(names, 0), why, where, nk ? ": " : "", list,
                                   nk > CL_KEYS_SHOWN ? ", ..." : "");
    else {
        PyObject *q = PyUnicode_FromString("', '");
        PyObject *alts = q == NULL ? NULL : PyUnicode_Join(q, names);
        Py_XDECREF(q);
        msg = alts == NULL ? NULL
            : PyUnicode_FromFormat("none of '%U' in the page%s (%U%s%U%s)", alts, why, where,
                                   nk ? ": " : "", list, nk > CL_KEYS_SHOWN ? ", ..." : "");
        Py_XDECREF(alts);
    }
    if (msg == NULL || (cls = missing_key_class()) == NULL)
        goto fail;
    Py_SETREF(names, PyList_AsTuple(names));
    Py_SETREF(keys, names == NULL ? NULL : PyList_AsTuple(keys));
    if (keys == NULL)
        goto fail;
    exc = PyObject_CallFunctionObjArgs(cls, msg, names, keys, NULL);
    if (exc != NULL)
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
fail:
    Py_XDECREF(names);
    Py_XDECREF(keys);
    Py_XDECREF(shown);
    Py_XDECREF(sep);
    Py_XDECREF(list);
    Py_XDECREF(where);
    Py_XDECREF(msg);
    Py_XDECREF(cls);
    Py_XDECREF(exc);
    return -1;
}

int
cl_envelope_short(Py_ssize_t received, long long total, PyObject *url)
{
    PyObject *mod = PyImport_ImportModule("custlist.errors"), *cls = NULL, *msg = NULL;
    PyObject *exc = NULL, *where = url != NULL ? cl_public_url(url) : NULL;
    if (mod == NULL || (cls = PyObject_GetAttrString(mod, "IncompleteListingError")) == NULL
        || (url != NULL && where == NULL))
        goto fail;
    if (where == NULL && (where = PyUnicode_FromString("")) == NULL)
        goto fail;
    msg = PyUnicode_FromFormat(
        "the listing ended after %zd records, but its pages state a total of %lld%s%U%s: "
        "the server stopped early, records were added while listing, or the description "
        "does not match its pages (the records received were delivered; the checkpoint "
        "resumes after them)",
        received, total, url != NULL ? " (last page: " : "", where, url != NULL ? ")" : "");
    if (msg == NULL)
        goto fail;
    exc = PyObject_CallFunction(cls, "OnL", msg, received, total);
    if (exc != NULL)
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
fail:
    Py_XDECREF(mod);
    Py_XDECREF(cls);
    Py_XDECREF(msg);
    Py_XDECREF(exc);
    Py_XDECREF(where);
    return -1;
}
