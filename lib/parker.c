/* parker.c - parking outside threads (see parker.h) on the futex driver.
 *
 * Owns: struct wisp__parker and the thread-local join parker.  Touches
 * nothing else. */
#include "parker.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "alloc.h"
#include "driver.h"
#include "util.h"

/* ---- wisp_block_on's parker: heap, reference-counted ---------------------- */

struct wisp__parker {
    struct futex_driver driver;
    _Atomic uint32_t refs;
};

static const wisp_waker_vtable_t parker_vtable;

struct wisp__parker *wisp__parker_new(void)
{
    struct wisp__parker *p = alloc_zeroed(1, sizeof(*p), 0);
    if (p) {
        wisp__futex_driver_init(&p->driver);
        atomic_init(&p->refs, 1);
    }
    return p;
}

wisp_waker_t wisp__parker_waker(struct wisp__parker *p)
{
    return (wisp_waker_t){ p, &parker_vtable };
}

int wisp__parker_park(struct wisp__parker *p, uint64_t deadline_ns)
{
    return driver_park(&p->driver.base, deadline_ns);
}

void wisp__parker_release(struct wisp__parker *p)
{
    /* acq_rel: the last releaser acquires all others' writes before free. */
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        alloc_free(p);
}

static wisp_waker_t parker_clone_fn(const void *data)
{
    struct wisp__parker *p = (struct wisp__parker *)data;
    /* relaxed: the caller's reference keeps p alive, as in Arc::clone. */
    if (atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed) >= UINT32_MAX - 1)
        abort();
    return wisp__parker_waker(p);
}

static void parker_wake_by_ref_fn(const void *data)
{
    driver_unpark(&((struct wisp__parker *)data)->driver.base);
}

static void parker_wake_fn(const void *data)
{
    parker_wake_by_ref_fn(data);
    wisp__parker_release((struct wisp__parker *)data);
}

static void parker_drop_fn(const void *data)
{
    wisp__parker_release((struct wisp__parker *)data);
}

static const wisp_waker_vtable_t parker_vtable = {
    parker_clone_fn, parker_wake_fn, parker_wake_by_ref_fn, parker_drop_fn,
};

/* ---- wisp_join's parker: one per thread, counted clones --------------------- */

struct join_parker {
    struct futex_driver driver;
    /* Clones of this thread's join waker not yet woken or dropped.  Each
     * waker function's decrement is its last access to this memory (after
     * the unpark), so at zero the thread owns the parker alone again. */
    _Atomic uint32_t clones;
};

static WISP_TLS struct join_parker join_parker; /* zeroed: initialised on first use */

static const wisp_waker_vtable_t join_vtable;

static struct join_parker *join_parker_get(void)
{
    struct join_parker *jp = &join_parker;
    if (!jp->driver.base.ops)
        wisp__futex_driver_init(&jp->driver);
    return jp;
}

wisp_waker_t wisp__join_waker(void)
{
    return (wisp_waker_t){ join_parker_get(), &join_vtable };
}

void wisp__join_park(void)
{
    driver_park(&join_parker_get()->driver.base, DRIVER_FOREVER);
}

void wisp__join_quiesce(void)
{
    /* acquire: pairs with the release decrement of the last clone, so its
     * unpark is complete before we return.  A clone being woken is between
     * its unpark and its decrement: a few instructions, yield meanwhile. */
    while (atomic_load_explicit(&join_parker.clones, memory_order_acquire))
        sched_yield();
}

static wisp_waker_t join_clone_fn(const void *data)
{
    struct join_parker *jp = (struct join_parker *)data;
    /* relaxed: the thread that owns jp is in wisp_join, holding the waker
     * this is cloned from; it waits for the count in wisp__join_quiesce. */
    atomic_fetch_add_explicit(&jp->clones, 1, memory_order_relaxed);
    return (wisp_waker_t){ jp, &join_vtable };
}

static void join_wake_by_ref_fn(const void *data)
{
    driver_unpark(&((struct join_parker *)data)->driver.base);
}

static void join_drop_fn(const void *data)
{
    /* release: our last access; pairs with the acquire in quiesce. */
    atomic_fetch_sub_explicit(&((struct join_parker *)data)->clones, 1, memory_order_release);
}

static void join_wake_fn(const void *data)
{
    join_wake_by_ref_fn(data);
    join_drop_fn(data);
}

static const wisp_waker_vtable_t join_vtable = {
    join_clone_fn, join_wake_fn, join_wake_by_ref_fn, join_drop_fn,
};
