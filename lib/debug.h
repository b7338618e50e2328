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

/* Misuse of the API that is documented as undefined and caught only in
 * the debug build (wisp/sync.h: unlocking a mutex not held, releasing
 * permits never acquired): prints what and aborts.  In other builds the
 * condition is not evaluated. */
#if WISP_DEBUG
_Noreturn void wisp__misuse(const char *what);
#define WISP_CHECK_USE(cond, what) ((cond) ? (void)0 : wisp__misuse(what))
/* The task being polled on this thread (task.c sets it around each poll),
 * or NULL: who holds a mutex, for the check above. */
extern _Thread_local const void *wisp__debug_polling;
#else
#define WISP_CHECK_USE(cond, what) ((void)0)
#endif

#endif /* WISP_DEBUG_H */
