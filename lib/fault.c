/* fault.c - the fault-injection plan of the wisp_faulty library (fault.h).
 * Built only into that library; tests/test_faults.c drives it.
 *
 * Owns: the plan and the per-site call counters (process-wide atomics:
 * faults are injected on whatever thread makes the call). */
#include "fault.h"

#include <stdatomic.h>


struct fault_site_state {
    _Atomic uint64_t calls; /* calls at this site since the plan was set */
    _Atomic uint64_t nth;   /* fail the nth call (1-based); 0: never */
    _Atomic bool persist;   /* and every call after it */
    _Atomic uint64_t hits;  /* calls failed */
};

static struct fault_site_state sites[FAULT_SITES];
static _Atomic long live_allocations;

void wisp__fault_plan(enum fault_site site, uint64_t nth, bool persist)
{
    struct fault_site_state *s = &sites[site];
    /* seq_cst: the plan is set while the library is quiescent (between
     * runs); the strongest order keeps the test simple to reason about. */
    atomic_store(&s->nth, 0);
    atomic_store(&s->calls, 0);
    atomic_store(&s->hits, 0);
    atomic_store(&s->persist, persist);
    atomic_store(&s->nth, nth);
}

uint64_t wisp__fault_calls(enum fault_site site)
{
    return atomic_load(&sites[site].calls);
}

uint64_t wisp__fault_hits(enum fault_site site)
{
    return atomic_load(&sites[site].hits);
}

long wisp__fault_live(void)
{
    return atomic_load(&live_allocations);
}

void wisp__fault_count_alloc(void *p)
{
    /* relaxed: a counter read once the library is quiescent. */
    if (p)
        atomic_fetch_add_explicit(&live_allocations, 1, memory_order_relaxed);
}

void wisp__fault_count_free(void *p)
{
    if (p)
        atomic_fetch_sub_explicit(&live_allocations, 1, memory_order_relaxed);
}

bool wisp__fault_hit(enum fault_site site)
{
    struct fault_site_state *s = &sites[site];
    /* relaxed: counters; which call fails is decided by the count alone. */
    uint64_t nth = atomic_load_explicit(&s->nth, memory_order_relaxed);
    if (!nth)
        return false;
    uint64_t n = atomic_fetch_add_explicit(&s->calls, 1, memory_order_relaxed) + 1;
    bool fail = n == nth || (n > nth && atomic_load_explicit(&s->persist, memory_order_relaxed));
    if (fail)
        atomic_fetch_add_explicit(&s->hits, 1, memory_order_relaxed);
    return fail;
}
