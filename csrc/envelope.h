/* Errors for a page that does not hold what its description names. */
#ifndef CL_ENVELOPE_H
#define CL_ENVELOPE_H

#include "common.h"
#include "decode.h"
#include "errors.h"

/* The wire paths (tuples of keys) a page schema reads into `slot`. */
PyObject *cl_envelope_paths(cl_schema *page, int slot);

/* Raise MissingKeyError: none of `paths` (tuples of keys) is in the page
 * `buf`; the message names them and the keys the page has where the
 * nearest one stops; `why` ("" or "; ...") is said after "not in the
 * page".  Returns -1. */
int cl_envelope_missing(cl_state *st, const char *buf, size_t len, int max_depth,
                        PyObject *paths, const char *why);

/* Raise IncompleteListingError: the listing ended after `received`
 * records of `total`; `url` (may be NULL) the last page's.  Returns -1. */
int cl_envelope_short(Py_ssize_t received, long long total, PyObject *url);

#endif
