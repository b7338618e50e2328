/* debug.c - the failure path of WISP_ASSERT (debug.h). */
#include "debug.h"

#include <stdio.h>
#include <stdlib.h>

#if WISP_DEBUG
void wisp__assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "wisp: internal invariant violated at %s:%d: %s\n", file, line, cond);
    abort();
}

_Thread_local const void *wisp__debug_polling;

void wisp__misuse(const char *what)
{
    fprintf(stderr, "wisp: misuse: %s\n", what);
    abort();
}
#endif
