/* The pager's side of the fetch thread's chain of requests (chain.h): the
 * chain set up from the pager's description, when the fetch thread can
 * send the listing's requests itself.  The rest (taking its pages,
 * dropping what it did ahead) is pager_request.c's; an event loop takes
 * them through pager_aio.c. */
#include "pager.h"
#include "envelope.h"
#include "token.h"
#include <stdlib.h>
#include <string.h>

/* The wire paths of a page slot, into the fetch thread's table. */
static int
chain_paths(cl_pager *p, cl_pos_paths *ps, int slot, int pos_slot)
{
    PyObject *paths = cl_envelope_paths(p->page_schema, slot);
    int rc = 0;
    if (paths == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(paths) && rc == 0; i++) {
        PyObject *path = PyTuple_GET_ITEM(paths, i);
        cl_pos_path *pa = &ps->paths[ps->npaths];
        if (!PyTuple_Check(path) || PyTuple_GET_SIZE(path) < 1
            || PyTuple_GET_SIZE(path) > CL_POS_MAX_KEYS || ps->npaths == CL_POS_MAX_PATHS) {
            rc = 1;                    /* not for the fetch thread */
            break;
        }
        memset(pa, 0, sizeof *pa);
        pa->slot = pos_slot;
        ps->npaths++;
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(path); k++) {
            Py_ssize_t n;
            const char *key = PyUnicode_Check(PyTuple_GET_ITEM(path, k))
                ? PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(path, k), &n) : NULL;
            if (key == NULL) {
                rc = PyErr_Occurred() ? -1 : 1;
                break;
            }
            if ((pa->keys[k] = malloc((size_t)n + 1)) == NULL) {
                PyErr_NoMemory();
                rc = -1;
                break;
            }
            memcpy(pa->keys[k], key, (size_t)n + 1);
            pa->lens[k] = (size_t)n;
            pa->nkeys++;
        }
    }
    Py_DECREF(paths);
    return rc;
}

static char *
utf8_copy(PyObject *s)
{
    const char *u = s != NULL ? PyUnicode_AsUTF8(s) : NULL;
    char *c = u != NULL ? strdup(u) : NULL;
    if (c == NULL && !PyErr_Occurred())
        PyErr_NoMemory();
    return c;
}

/* The chain of requests on the fetch thread (chain.h), where the fetch
 * thread can do all a request needs: the two-pass decode (prefetch) and
 * credentials that never change (none, or a fixed token).  Offset and page
 * numbers, and max_items, have it count each page's items, as the pager
 * does.  Otherwise the consumer sends each request. */
int
cl_pager_init_chain(cl_pager *p, int auth_static)
{
    if (!p->prefetch || (p->auth != Py_None && !auth_static))
        return 0;
    cl_chain *c = calloc(1, sizeof *c);
    if (c == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    static const int modes[] = {[MODE_CURSOR] = CL_CHAIN_CURSOR, [MODE_HREF] = CL_CHAIN_HREF,
                                [MODE_OFFSET] = CL_CHAIN_OFFSET, [MODE_PAGE] = CL_CHAIN_PAGE,
                                [MODE_LINK] = CL_CHAIN_LINK};
    int numbered = p->mode == MODE_OFFSET || p->mode == MODE_PAGE;
    c->mode = modes[p->mode];
    c->first_page = p->first_page;
    c->at = c->asked = -1;
    c->origin = &p->origin;
    c->max_pages = p->max_pages;
    c->max_empty_run = CL_MAX_EMPTY_RUN;
    c->page_size = p->page_size;
    c->max_items = p->max_items >= 0;
    c->paths.count = c->max_items || numbered;
    c->budget = p->max_items;
    int rc = chain_paths(p, &c->paths, P_ITEMS, CL_POS_ITEMS);
    if (rc == 0)
        rc = chain_paths(p, &c->paths, P_CURSOR, CL_POS_CURSOR);
    if (rc == 0)
        rc = chain_paths(p, &c->paths, P_HAS_MORE, CL_POS_HAS_MORE);
    if (rc == 0)
        rc = chain_paths(p, &c->paths, P_NEXT, CL_POS_NEXT);
    if (rc == 0 && numbered)
        rc = chain_paths(p, &c->paths, P_TOTAL, CL_POS_TOTAL);
    if (rc == 0 && numbered)
        rc = chain_paths(p, &c->paths, P_TOTAL_PAGES, CL_POS_TOTAL_PAGES);
    if (rc == 0 && (p->mode == MODE_CURSOR || numbered)
        && ((c->base_url = utf8_copy(p->base_url)) == NULL
            || (c->cursor_param = utf8_copy(p->cursor_param)) == NULL
            || (p->size_param != NULL && (c->size_param = utf8_copy(p->size_param)) == NULL)))
        rc = -1;
    if (rc != 0) {
        cl_chain_free(c);
        return rc < 0 ? -1 : 0;
    }
    p->worker.chain = c;
    p->chain_on = 1;
    return 0;
}

/* The client's token cell (token.h): the chain sends its token, and a
 * 401 renews it once for every listing of the client.  Before the pager's
 * first request, once. */
int
cl_pager_attach_token(PyObject *self, struct cl_token *t)
{
    cl_pager *p = (cl_pager *)self;
    if (p->token != NULL || p->closed || p->pages > 0 || p->in_flight) {
        PyErr_SetString(PyExc_ValueError, "a token cell is attached to a pager before it "
                        "fetches, once");
        return -1;
    }
    p->token = cl_token_ref(t);
    if (p->chain_on && p->worker_ready) {
        pthread_mutex_lock(&p->worker.mu);
        p->worker.chain->token = cl_token_ref(t);
        p->worker.chain->gen = 0;
        pthread_mutex_unlock(&p->worker.mu);
    }
    return 0;
}
