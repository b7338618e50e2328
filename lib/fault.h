/* fault.h - fault injection for the test sweep (tests/test_faults.c).
 *
 * The library built for that test (target wisp_faulty, with
 * WISP_FAULT_INJECTION=1) asks here before every allocation, thread
 * creation and mutex initialisation whether to fail it, and after every
 * futex wait whether to report a signal.  Every other build compiles each
 * question to a constant false: no code, no cost.
 *
 * Owns: in the faulty build, the global plan (which call fails) and the
 * call counters (fault.c).  Touches nothing else. */
#ifndef WISP_FAULT_H
#define WISP_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#ifndef WISP_FAULT_INJECTION
#define WISP_FAULT_INJECTION 0
#endif

enum fault_site {
    FAULT_ALLOC,       /* every heap allocation of lib/ */
    FAULT_THREAD,      /* pthread_create */
    FAULT_MUTEX,       /* pthread_mutex_init */
    FAULT_FUTEX_EINTR, /* a futex wait returns as if a signal came */
    FAULT_SITES
};

#if WISP_FAULT_INJECTION
/* true: fail this call (see wisp__fault_plan in fault.c). */
bool wisp__fault_hit(enum fault_site site);
/* The live allocations of lib/ (alloc.h counts them): a sweep run must end
 * with none left. */
void wisp__fault_count_alloc(void *p);
void wisp__fault_count_free(void *p);
/* The test's control: from now on, fail call number nth (counting from 1)
 * at site, and every later one if persist; nth 0 disables the site.  The
 * site's counters restart. */
void wisp__fault_plan(enum fault_site site, uint64_t nth, bool persist);
uint64_t wisp__fault_calls(enum fault_site site); /* calls since the plan */
uint64_t wisp__fault_hits(enum fault_site site);  /* calls failed since */
long wisp__fault_live(void);                      /* live allocations */
#define fault_alloc() wisp__fault_hit(FAULT_ALLOC)
#define fault_thread() wisp__fault_hit(FAULT_THREAD)
#define fault_mutex() wisp__fault_hit(FAULT_MUTEX)
#define fault_futex_eintr() wisp__fault_hit(FAULT_FUTEX_EINTR)
#define fault_count_alloc(p) wisp__fault_count_alloc(p)
#define fault_count_free(p) wisp__fault_count_free(p)
#else
#define fault_alloc() false
#define fault_thread() false
#define fault_mutex() false
#define fault_futex_eintr() false
#define fault_count_alloc(p) ((void)(p))
#define fault_count_free(p) ((void)(p))
#endif

#endif /* WISP_FAULT_H */
