/* debug.h - assertions of internal invariants.  In a WISP_DEBUG build
 * (sanitizer and Debug builds) a failed one prints where and aborts; in
 * every other build it compiles to nothing and its condition is not
 * evaluated.  Never used on a caller's input: bad input gets an error. */
#ifndef WISP_DEBUG_H
#define WISP_DEBUG_H

#include <wisp/config.h>

#if WISP_DEBUG
_Noreturn void wisp__assert_fail(const char *cond, const char *file, int line);
#define WISP_ASSERT(cond) ((cond) ? (void)0 : wisp__assert_fail(#cond, __FILE__, __LINE__))
#else
#define WISP_ASSERT(cond) ((void)0)
#endif

#endif /* WISP_DEBUG_H */
