/* Where a DecodeError happened, noted on the exception as the decode
 * unwinds: the item's index in the page, the record class, the field and
 * its wire path (custlist.errors.DecodeError renders them).  Error paths
 * only: nothing here runs while a page decodes well. */
#ifndef CL_WHERE_H
#define CL_WHERE_H

#include "common.h"

/* The value of wire key `key` failed; `slot`: the record slot it fills
 * (-1 for a nested object flattened into the record). */
void cl_where_key(cl_state *st, PyObject *key, Py_ssize_t slot);
/* Element `i` of an array failed. */
void cl_where_index(cl_state *st, Py_ssize_t i);
/* A record of class `cls` failed. */
void cl_where_record(cl_state *st, PyTypeObject *cls);
/* Required slot `slot` was absent or null. */
void cl_where_missing(cl_state *st, Py_ssize_t slot);
/* Arrow output: a record of the class named `name` failed. */
void cl_where_record_name(cl_state *st, const char *name);
/* Arrow output: the value of wire key (s, n) for column `column` (NULL:
 * a nested object flattened into the row) failed. */
void cl_where_column(cl_state *st, const char *s, size_t n, const char *column);

#endif
