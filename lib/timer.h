/* timer.h - timers: a hierarchical timing wheel per worker, and the entries
 * that sleep futures embed.  The wheel's protocol (levels, cascading, locking,
 * firing) is at the top of timer.c.
 *
 * Owns: struct timer_wheel and the link fields, deadline and state of every
 * struct timer_entry armed in it.  Touches the entry's atomic waker (takes
 * it out when the entry fires) and, when an entry is armed from another
 * thread ahead of the owner's sleep, the owner's parking driver. */
#ifndef WISP_TIMER_H
#define WISP_TIMER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "atomic_waker.h"
#include "driver.h"
#include "lock.h"

#define WHEEL_LEVELS 6
#define WHEEL_SLOT_BITS 6
#define WHEEL_SLOTS (1u << WHEEL_SLOT_BITS)
/* The farthest a deadline can be: 64^6 ms, about 2.2 years; later ones are
 * clamped to it (and simply fire then). */
#define WHEEL_MAX_MS ((UINT64_C(1) << (WHEEL_LEVELS * WHEEL_SLOT_BITS)) - 1)
#define TIMER_NEVER UINT64_MAX

/* DETACHED: its runtime was freed while it was armed; it never fires. */
enum timer_state { TIMER_UNARMED, TIMER_ARMED, TIMER_FIRED, TIMER_DETACHED };

/* Embedded in a sleep future.  The link fields and `wheel` belong to the
 * wheel (under its lock) while ARMED. */
struct timer_entry {
    struct timer_entry *next, *prev;
    struct timer_wheel *wheel;     /* armed in (set once, by the arming thread) */
    uint64_t deadline;             /* wheel ms */
    _Atomic uint32_t state;        /* enum timer_state */
    uint8_t level, slot;
    struct atomic_waker waker;
};

struct timer_wheel {
    struct wisp__lock lock;
    uint64_t epoch_ns;             /* CLOCK_MONOTONIC of ms 0 */
    uint64_t elapsed;              /* ms the wheel has advanced to */
    uint64_t occupied[WHEEL_LEVELS];
    struct timer_entry *slots[WHEEL_LEVELS][WHEEL_SLOTS];
    uint64_t armed;                /* entries in the wheel */
    /* The earliest slot the wheel holds, in ms (TIMER_NEVER: none): read by
     * the owner without the lock to skip advancing when nothing is due. */
    _Atomic uint64_t next_ms;
    /* What the owner sleeps until (ms), set under the lock before it parks;
     * an entry armed earlier from another thread unparks it. */
    uint64_t owner_wakes_at;
    struct wisp__driver *owner;    /* its worker's driver */
};

void wisp__timer_wheel_init(struct timer_wheel *w, uint64_t epoch_ns, struct wisp__driver *owner);
/* Shutdown: every entry still armed is detached (it will never fire and
 * its drop touches no wheel).  Call with no thread arming any more. */
void wisp__timer_wheel_detach_all(struct timer_wheel *w);

static inline uint64_t timer_ms(const struct timer_wheel *w, uint64_t ns)
{
    return ns <= w->epoch_ns ? 0 : (ns - w->epoch_ns) / 1000000u;
}

/* ---- entries (any thread) ---------------------------------------------------- */

static inline void timer_entry_init(struct timer_entry *e)
{
    e->next = e->prev = NULL;
    e->wheel = NULL;
    e->deadline = 0;
    atomic_init(&e->state, TIMER_UNARMED);
    atomic_waker_init(&e->waker);
}

/* Arms e in w to fire at deadline_ns (rounded up to the next ms: never
 * early).  e must be UNARMED.  A deadline already past fires at once. */
void wisp__timer_arm(struct timer_wheel *w, struct timer_entry *e, uint64_t deadline_ns);
/* Disarms e if armed (O(1), takes e's wheel's lock; from any thread). */
void wisp__timer_cancel(struct timer_entry *e);

/* ---- the owner ------------------------------------------------------------------ */

/* Fires every entry due at now_ns; returns how many fired. */
unsigned wisp__timer_advance(struct timer_wheel *w, uint64_t now_ns);
/* Cheap check (no lock) whether anything is due at now_ns. */
static inline bool timer_due(struct timer_wheel *w, uint64_t now_ns)
{
    /* relaxed: a hint; advance decides under the lock. */
    uint64_t next = atomic_load_explicit(&w->next_ms, memory_order_relaxed);
    return next != TIMER_NEVER && timer_ms(w, now_ns) >= next;
}
/* The owner is about to park: the deadline (ns) to wake at for the
 * earliest timer, or DRIVER_FOREVER; recorded for arms from elsewhere. */
uint64_t wisp__timer_park_deadline(struct timer_wheel *w);
/* The owner is awake again: arms from elsewhere need not unpark it. */
void wisp__timer_unparked(struct timer_wheel *w);

#endif /* WISP_TIMER_H */
