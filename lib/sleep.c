/* sleep.c - the timer futures of wisp/time.h: sleep, interval, timeout.
 *
 * Owns: the layout behind wisp_sleep_t (a timer entry and its deadline).
 * Touches: the wheel of the worker that first polls a sleep (timer.c owns
 * the wheel's protocol). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <wisp/time.h>

#include "clock.h"
#include "runtime.h"
#include "timer.h"

struct sleep_impl {
    struct timer_entry entry;
    uint64_t deadline_ns;
};

_Static_assert(sizeof(struct sleep_impl) <= sizeof(wisp_sleep_t), "wisp_sleep_t too small");
_Static_assert(_Alignof(struct sleep_impl) <= _Alignof(wisp_sleep_t), "wisp_sleep_t alignment");

uint64_t wisp_now_ns(void)
{
    return clock_now_ns();
}

void wisp_sleep_until_init(wisp_sleep_t *s, uint64_t deadline_ns)
{
    struct sleep_impl *si = (struct sleep_impl *)s;
    timer_entry_init(&si->entry);
    si->deadline_ns = deadline_ns;
}

void wisp_sleep_init(wisp_sleep_t *s, uint64_t duration_ns)
{
    uint64_t now = clock_now_ns();
    uint64_t deadline = duration_ns > UINT64_MAX - now ? UINT64_MAX : now + duration_ns;
    wisp_sleep_until_init(s, deadline);
}

uint64_t wisp_sleep_deadline(const wisp_sleep_t *s)
{
    return ((const struct sleep_impl *)s)->deadline_ns;
}

/* The wheel a sleep polled here arms in: the polling worker's own, else
 * (wisp_block_on) one of the block_on runtime's workers'. */
static struct timer_wheel *sleep_wheel(const void *key)
{
    struct worker *w = wisp__worker_current();
    if (w)
        return &w->timers;
    struct wisp_runtime *rt = wisp_runtime_current();
    if (!rt)
        return NULL;
    uintptr_t h = (uintptr_t)key >> 6;
    return &rt->workers[h % rt->nworkers]->timers;
}

static wisp_poll_t sleep_ready(void **output, intptr_t status)
{
    if (output)
        *output = (void *)status;
    return WISP_READY;
}

wisp_poll_t wisp_sleep_poll(void *p, wisp_context_t *cx, void **output)
{
    struct sleep_impl *si = p;
    struct timer_entry *e = &si->entry;
    /* acquire: pairs with the release store of FIRED (or DETACHED) by the
     * wheel's owner, so what happened before the firing is visible. */
    uint32_t st = atomic_load_explicit(&e->state, memory_order_acquire);
    if (st == TIMER_FIRED)
        return sleep_ready(output, 0);
    if (st == TIMER_DETACHED)
        return sleep_ready(output, -ESHUTDOWN);
    const wisp_waker_t *waker = wisp_context_waker(cx);
    if (st == TIMER_UNARMED) {
        if (clock_now_ns() >= si->deadline_ns) /* due before it was ever armed */
            return sleep_ready(output, 0);
        struct timer_wheel *wheel = sleep_wheel(si);
        if (!wheel)
            return sleep_ready(output, -ENXIO);
        /* Register first: arm may fire it at once, from under the lock. */
        if (waker)
            wisp__atomic_waker_register(&e->waker, waker);
        wisp__timer_arm(wheel, e, si->deadline_ns);
    } else if (waker) {
        wisp__atomic_waker_register(&e->waker, waker);
    }
    /* acquire: as above; registering first means a firing after this load
     * finds our waker (atomic_waker.h). */
    st = atomic_load_explicit(&e->state, memory_order_acquire);
    if (st == TIMER_FIRED)
        return sleep_ready(output, 0);
    if (st == TIMER_DETACHED)
        return sleep_ready(output, -ESHUTDOWN);
    return WISP_PENDING;
}

void wisp_sleep_drop(void *p)
{
    struct sleep_impl *si = p;
    wisp__timer_cancel(&si->entry);
    wisp__atomic_waker_destroy(&si->entry.waker);
    si->entry.waker = (struct atomic_waker){ 0 };
    atomic_init(&si->entry.state, TIMER_UNARMED);
}

void wisp_sleep_reset(wisp_sleep_t *s, uint64_t deadline_ns)
{
    struct sleep_impl *si = (struct sleep_impl *)s;
    wisp__timer_cancel(&si->entry);
    /* relaxed: the entry is out of every wheel; only its poller uses it. */
    atomic_store_explicit(&si->entry.state, TIMER_UNARMED, memory_order_relaxed);
    si->deadline_ns = deadline_ns;
}

/* ---- interval ---------------------------------------------------------------- */

int wisp_interval_init(wisp_interval_t *it, uint64_t period_ns)
{
    if (!it || !period_ns)
        return -EINVAL;
    it->period_ns = period_ns;
    it->ticks = 0;
    wisp_sleep_init(&it->sleep, period_ns);
    return 0;
}

wisp_poll_t wisp_interval_poll(void *p, wisp_context_t *cx, void **output)
{
    wisp_interval_t *it = p;
    void *status;
    if (wisp_sleep_poll(&it->sleep, cx, &status) == WISP_PENDING)
        return WISP_PENDING;
    if (status) {
        if (output)
            *output = status;
        return WISP_READY;
    }
    /* The next tick: one period on, or the first boundary after now if
     * the task fell behind (missed ticks are skipped, not bunched). */
    uint64_t deadline = wisp_sleep_deadline(&it->sleep), now = clock_now_ns();
    uint64_t next = deadline + it->period_ns;
    if (next <= now)
        next = now + it->period_ns - (now - deadline) % it->period_ns;
    wisp_sleep_reset(&it->sleep, next);
    it->ticks++;
    if (output)
        *output = (void *)(uintptr_t)it->ticks;
    return WISP_READY;
}

void wisp_interval_drop(void *p)
{
    wisp_sleep_drop(&((wisp_interval_t *)p)->sleep);
}

/* ---- timeout ---------------------------------------------------------------------- */

void wisp_timeout_init(wisp_timeout_t *t, uint64_t duration_ns, wisp_poll_fn poll, void *future)
{
    wisp_sleep_init(&t->sleep, duration_ns);
    t->poll = poll;
    t->future = future;
}

wisp_poll_t wisp_timeout_poll(wisp_timeout_t *t, wisp_context_t *cx, int *status, void **output)
{
    void *out = NULL;
    if (t->poll(t->future, cx, &out) == WISP_READY) {
        if (status)
            *status = 0;
        if (output)
            *output = out;
        return WISP_READY;
    }
    void *st;
    if (wisp_sleep_poll(&t->sleep, cx, &st) == WISP_PENDING)
        return WISP_PENDING;
    if (status)
        *status = st ? (int)(intptr_t)st : -ETIMEDOUT;
    if (output)
        *output = NULL;
    return WISP_READY;
}

void wisp_timeout_drop(wisp_timeout_t *t)
{
    wisp_sleep_drop(&t->sleep);
}
