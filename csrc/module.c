/* custlist._core: module initialisation (multi-phase, per-module state). */
#include "common.h"
#include "decode.h"
#include "request.h"
#include "worker.h"
#include "fanout.h"
#include "ratelimit.h"
#include "token.h"
#include "shape.h"
#include "position.h"
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>

static cl_state *
get_state(PyObject *module)
{
    return (cl_state *)PyModule_GetState(module);
}

static int
import_attr(PyObject **out, const char *module, const char *name)
{
    PyObject *m = PyImport_ImportModule(module);
    if (m == NULL)
        return -1;
    *out = PyObject_GetAttrString(m, name);
    Py_DECREF(m);
    return *out == NULL ? -1 : 0;
}

static int
load_errors(cl_state *st)
{
    const char *mod = "custlist.errors";
    return import_attr(&st->DecodeError, mod, "DecodeError")
        || import_attr(&st->TransportError, mod, "TransportError")
        || import_attr(&st->TimeoutError, mod, "RequestTimeoutError")
        || import_attr(&st->TooLargeError, mod, "ResponseTooLargeError")
        || import_attr(&st->PagingError, mod, "PagingError")
        || import_attr(&st->PagingLoopError, mod, "PagingLoopError")
        || import_attr(&st->UnsafeURLError, mod, "UnsafeURLError")
        || import_attr(&st->ClosedError, mod, "PagerClosedError") ? -1 : 0;
}

/* libcurl's global set-up, once per process whatever the number of module
 * instances (sub-interpreters, reloads); it is never undone while a module
 * instance could still use it. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void
curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* At interpreter exit (atexit runs after the non-daemon threads are joined)
 * and at module free: stop every fetch thread still running, so that none
 * is inside libcurl or OpenSSL while the process tears them down.  A pager
 * still iterated by a daemon thread then raises PagerClosedError. */
static PyObject *
stop_workers(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    cl_registry_stop_all(&get_state(module)->workers);
    Py_RETURN_NONE;
}

/* The shape feed's builds, for the test that compares them: a body fed as
 * it would arrive, `chunk` bytes at a time, through one build. */
static const char *const shape_names[] = {"plain", "avx2"};

static PyObject *
shape_variants(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    PyObject *names = PyList_New(0);
    int have = cl_shape_variants();
    for (int v = CL_SHAPE_PLAIN; names != NULL && v <= CL_SHAPE_WIDE; v++) {
        if (!((have >> v) & 1))
            continue;
        PyObject *name = PyUnicode_FromString(shape_names[v]);
        if (name == NULL || PyList_Append(names, name) < 0)
            Py_CLEAR(names);
        Py_XDECREF(name);
    }
    return names;
}

static PyObject *
shape_spans(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer body = {0};
    Py_ssize_t chunk;
    const char *name;
    PyObject *spans = NULL, *res = NULL;
    cl_shape s;
    int variant = -1;
    if (!PyArg_ParseTuple(args, "y*ns:_shape_spans", &body, &chunk, &name))
        return NULL;
    for (int v = CL_SHAPE_PLAIN; v <= CL_SHAPE_WIDE; v++)
        if (strcmp(name, shape_names[v]) == 0 && ((cl_shape_variants() >> v) & 1))
            variant = v;
    if (variant < 0) {
        PyErr_Format(PyExc_ValueError, "_shape_spans: no build %R on this machine", args);
        goto fail;
    }
    if (chunk < 1) {
        PyErr_SetString(PyExc_ValueError, "_shape_spans: chunk must be at least 1");
        goto fail;
    }
    cl_shape_reset(&s);
    for (Py_ssize_t n = chunk; n < body.len; n += chunk)
        cl_shape_feed_as(&s, body.buf, (size_t)n, 0, variant);
    cl_shape_feed_as(&s, body.buf, (size_t)body.len, 1, variant);
    if ((spans = PyList_New(s.n)) == NULL)
        goto fail;
    for (int i = 0; i < s.n; i++) {
        PyObject *t = Py_BuildValue("(nnl)", (Py_ssize_t)s.spans[i].open,
                                    (Py_ssize_t)s.spans[i].close, s.spans[i].peak);
        if (t == NULL)
            goto fail;
        PyList_SET_ITEM(spans, i, t);
    }
    if (PyList_Sort(spans) < 0)
        goto fail;
    res = Py_BuildValue("(Oi)", spans, s.broken);
fail:
    Py_XDECREF(spans);
    PyBuffer_Release(&body);
    return res;
}

static int
register_atexit(PyObject *module)
{
    PyObject *atexit = NULL, *fn = NULL, *r = NULL;
    if ((atexit = PyImport_ImportModule("atexit")) == NULL
        || (fn = PyObject_GetAttrString(module, "_stop_workers")) == NULL)
        goto fail;
    r = PyObject_CallMethod(atexit, "register", "O", fn);
fail:
    Py_XDECREF(atexit);
    Py_XDECREF(fn);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static int
load_logger(cl_state *st)
{
    PyObject *logging = PyImport_ImportModule("logging");
    if (logging == NULL)
        return -1;
    /* A library's logger gets a NullHandler: with logging not configured,
     * retries are not printed to stderr by logging's last-resort handler. */
    PyObject *null = NULL, *r = NULL;
    st->logger = PyObject_CallMethod(logging, "getLogger", "s", "custlist");
    if (st->logger != NULL && (null = PyObject_CallMethod(logging, "NullHandler", NULL)) != NULL)
        r = PyObject_CallMethod(st->logger, "addHandler", "O", null);
    Py_DECREF(logging);
    Py_XDECREF(null);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static int
core_exec(PyObject *module)
{
    cl_state *st = get_state(module);
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_result != CURLE_OK) {
        PyErr_SetString(PyExc_ImportError, "libcurl failed to initialise");
        return -1;
    }
    st->dt = (PyDateTime_CAPI *)PyCapsule_Import(PyDateTime_CAPSULE_NAME, 0);
    if (st->dt == NULL)
        return -1;
    st->utc = Py_NewRef(st->dt->TimeZone_UTC);
    if (import_attr(&st->Decimal, "decimal", "Decimal") < 0 || load_errors(st) < 0
        || load_logger(st) < 0 || register_atexit(module) < 0)
        return -1;
    if (cl_record_register(module, st) < 0 || cl_schema_register(module, st) < 0
        || cl_pager_register(module, st) < 0 || cl_request_register(module) < 0
        || cl_fanout_register(module, st) < 0 || cl_ratelimit_register(module, st) < 0
        || cl_token_register(module) < 0)
        return -1;
    curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    return PyModule_AddStringConstant(module, "libcurl_version", v->version);
}

static int
core_traverse(PyObject *module, visitproc visit, void *arg)
{
    cl_state *st = get_state(module);
    Py_VISIT(st->RecordType);
    Py_VISIT(st->SlotType);
    Py_VISIT(st->SchemaType);
    Py_VISIT(st->PagerType);
    Py_VISIT(st->DecodeError);
    Py_VISIT(st->TransportError);
    Py_VISIT(st->TimeoutError);
    Py_VISIT(st->TooLargeError);
    Py_VISIT(st->PagingError);
    Py_VISIT(st->PagingLoopError);
    Py_VISIT(st->UnsafeURLError);
    Py_VISIT(st->ClosedError);
    Py_VISIT(st->logger);
    Py_VISIT(st->Decimal);
    Py_VISIT(st->utc);
    return 0;
}

static int
core_clear(PyObject *module)
{
    cl_state *st = get_state(module);
    Py_CLEAR(st->RecordType);
    Py_CLEAR(st->SlotType);
    Py_CLEAR(st->SchemaType);
    Py_CLEAR(st->PagerType);
    Py_CLEAR(st->DecodeError);
    Py_CLEAR(st->TransportError);
    Py_CLEAR(st->TimeoutError);
    Py_CLEAR(st->TooLargeError);
    Py_CLEAR(st->PagingError);
    Py_CLEAR(st->PagingLoopError);
    Py_CLEAR(st->UnsafeURLError);
    Py_CLEAR(st->ClosedError);
    Py_CLEAR(st->logger);
    Py_CLEAR(st->Decimal);
    Py_CLEAR(st->utc);
    return 0;
}

static void
core_free(void *module)
{
    cl_registry_stop_all(&get_state((PyObject *)module)->workers);
    core_clear((PyObject *)module);
}

/* decode_page(page_schema, item_schema, body, max_depth=64)
 *   -> (items tuple, envelope slots tuple); no HTTP involved. */
static PyObject *
decode_page(PyObject *module, PyObject *args)
{
    cl_state *st = get_state(module);
    PyObject *page, *item, *res = NULL, *items = NULL, *slots[8] = {NULL};
    Py_buffer buf;
    int max_depth = CL_DEFAULT_MAX_DEPTH;
    if (!PyArg_ParseTuple(args, "O!O!y*|i:decode_page", st->SchemaType, &page,
                          st->SchemaType, &item, &buf, &max_depth))
        return NULL;
    cl_schema *ps = (cl_schema *)page;
    if (ps->nslots < 1 || ps->nslots > 8) {
        PyErr_SetString(PyExc_ValueError, "page schema must have 1 to 8 slots");
        goto done;
    }
    if (cl_decode_page(ps, (cl_schema *)item, buf.buf, buf.len, max_depth, PY_SSIZE_T_MAX,
                       slots) < 0)
        goto done;
    if (slots[0] == NULL || slots[0] == Py_None)
        items = PyTuple_New(0);
    else if (PyTuple_Check(slots[0]))
        items = Py_NewRef(slots[0]);           /* decoded in the envelope pass */
    else {
        /* a deferred items field: the offset of the array in the body */
        Py_ssize_t off = PyLong_CheckExact(slots[0]) ? PyLong_AsSsize_t(slots[0]) : -1;
        if (off == -1 && PyErr_Occurred())
            goto done;
        if (off < 0 || off >= buf.len) {
            PyErr_SetString(PyExc_ValueError,
                            "decode_page: the page schema's first slot must defer its items");
            goto done;
        }
        items = cl_decode_items((cl_schema *)item, buf.buf, buf.len, off, max_depth,
                                PY_SSIZE_T_MAX);
    }
    if (items == NULL)
        goto done;
    PyObject *t = PyTuple_New(ps->nslots);
    if (t == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < ps->nslots; i++)
        PyTuple_SET_ITEM(t, i, Py_NewRef(i == 0 ? items : slots[i] ? slots[i] : Py_None));
    res = PyTuple_Pack(2, items, t);
    Py_DECREF(t);
done:
    for (int i = 0; i < 8; i++)
        Py_XDECREF(slots[i]);
    Py_XDECREF(items);
    PyBuffer_Release(&buf);
    return res;
}

/* The fetch thread's two ways to a next URL, for the test that holds them
 * equal: `href` against `base` (None: none) on the origin of the URL
 * `origin`, by the plain path (None when not plain) and by libcurl's
 * parser (None when unparsable), and whether libcurl's is on that origin. */
static PyObject *
resolve_url(PyObject *Py_UNUSED(module), PyObject *args)
{
    const char *origin, *base, *href;
    cl_pos_origin o = {0}, got = {0};
    char *full = NULL, *plain = NULL;
    PyObject *res = NULL;
    if (!PyArg_ParseTuple(args, "szs:_resolve_url", &origin, &base, &href))
        return NULL;
    if ((full = cl_pos_resolve(NULL, origin, &o)) == NULL) {
        PyErr_SetString(PyExc_ValueError, "_resolve_url: the origin does not parse");
        goto fail;
    }
    curl_free(full);
    plain = cl_pos_resolve_plain(&o, base, href);
    full = cl_pos_resolve(base, href, &got);
    res = Py_BuildValue("(zzO)", plain, full,
                        full != NULL && cl_pos_same_origin(&got, &o) ? Py_True : Py_False);
fail:
    free(plain);
    curl_free(full);
    cl_pos_origin_free(&got);
    cl_pos_origin_free(&o);
    return res;
}

static PyMethodDef core_methods[] = {
    {"decode_page", decode_page, METH_VARARGS,
     "decode_page(page_schema, item_schema, body, max_depth=64) -> (items, slots)"},
    {"_stop_workers", stop_workers, METH_NOARGS,
     "Stop every fetch thread (run at interpreter exit)."},
    {"_shape_variants", shape_variants, METH_NOARGS,
     "The builds of the shape feed this machine runs."},
    {"_shape_spans", shape_spans, METH_VARARGS,
     "_shape_spans(body, chunk, build) -> (spans, broken): a body's shape, fed chunk bytes at a time."},
    {"_resolve_url", resolve_url, METH_VARARGS,
     "_resolve_url(origin, base, href) -> (plain, curl, same_origin): a next URL both ways."},
    {NULL, NULL, 0, NULL},
};

/* The engine keeps all of its state per module (curl_global_init excepted,
 * which is process-wide and once-guarded): sub-interpreters sharing the GIL
 * are fine.  On free-threaded CPython it runs without the GIL: pagers and
 * fan-outs are entered in critical sections, the decoder's shared memory of
 * keys and value policies is read and written atomically, and the registry
 * of fetch threads has a lock (common.h, scan.h, worker.c). */
static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED},
#endif
#if defined(Py_GIL_DISABLED)
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#elif PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef core_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "custlist._core",
    .m_doc = "The custlist engine: libcurl transfers, JSON decoding, records, paging.",
    .m_size = sizeof(cl_state),
    .m_methods = core_methods,
    .m_slots = core_slots,
    .m_traverse = core_traverse,
    .m_clear = core_clear,
    .m_free = core_free,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    return PyModuleDef_Init(&core_def);
}
