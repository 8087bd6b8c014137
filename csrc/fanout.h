/* _core.FanOut, the Python face of a shared driver; see fanout.c. */
#ifndef CL_FANOUT_H
#define CL_FANOUT_H

#include "common.h"

/* Adds _core.FanOut to the module. */
int cl_fanout_register(PyObject *module, cl_state *st);

#endif
