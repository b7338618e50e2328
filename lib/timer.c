/* timer.c - a hierarchical timing wheel per worker (see timer.h).
 *
 * Owns: struct timer_wheel, and the link fields, level/slot and state of
 * the entries armed in it.
 *
 * THE WHEEL
 *
 * Six levels of 64 slots; a slot of level L spans 64^L ms, so level 0
 * holds the next 64 ms at 1 ms resolution and level 5 reaches 64^6 ms
 * (about 2.2 years).  An entry due at `deadline` goes to the level of the
 * highest bit in which deadline and `elapsed` differ (six bits per level),
 * into slot (deadline >> 6L) & 63; each slot is a doubly linked list, and a
 * bitmap per level says which slots are non-empty.  So:
 *   - arm and cancel are O(1): link or unlink, set or clear a bit;
 *   - the earliest slot is found in O(levels) with one rotate and one
 *     count-trailing-zeros per level (the lowest non-empty level holds the
 *     earliest entries: a level-L entry differs from `elapsed` in a higher
 *     bit than any entry below it);
 *   - advancing to `now` takes the earliest slot while it starts at or
 *     before now: at level 0 its entries fire; above, they are due no
 *     earlier than the slot's start, so they move down (cascade) to the
 *     level their deadline now calls for.  Each entry cascades at most once
 *     per level: O(levels) per entry over its life, O(1) amortised.
 *   - memory is the entries themselves (embedded in the futures) plus 3 KiB
 *     of slot heads per wheel: a million timers cost no allocation at all.
 *
 * Why one wheel per worker, with a lock.  Tokio's single wheel behind one
 * mutex per runtime is its known contention point (tokio#6504); per-worker
 * wheels (its open proposal, tokio#7341) keep each worker on its own lock,
 * which no other thread takes unless it cancels (drops) a sleep armed on
 * this worker, or arms one from outside the pool.  Those are O(1) under
 * this wheel's lock: no global lock anywhere.  The lock is the futex mutex
 * of lock.h; uncontended it is one atomic operation each way.
 *
 * Firing.  advance() unlinks due entries under the lock, sets them FIRED
 * (release) and takes each one's waker out of its atomic waker into a local
 * batch; after unlocking it wakes the batch.  It never touches an entry after
 * unlocking, so a future dropped on another thread right after (whose cancel
 * takes the lock, finds FIRED and unlinks nothing) can free it at once.  A
 * poll registers its waker and then reads the state (acquire): either it
 * sees FIRED, or its registration came first and the take wakes it.
 *
 * Parking.  Before it parks, the owner asks for the deadline of the
 * earliest slot (park_deadline) and records it in owner_wakes_at; an entry
 * armed from another thread ahead of that unparks it (after unlocking), so
 * it recomputes.  Both sides hold the lock, so an arm either sees the
 * recorded deadline or the owner's computation sees the new entry. */
#include "timer.h"

#include <string.h>

#include "clock.h"

/* Wakers taken under the lock and woken after it, at most this many at a
 * time (then the lock is taken again for the rest). */
#define FIRE_BATCH 32

void wisp__timer_wheel_init(struct timer_wheel *w, uint64_t epoch_ns, struct wisp__driver *owner)
{
    memset(w, 0, sizeof(*w));
    lock_init(&w->lock);
    w->epoch_ns = epoch_ns;
    atomic_init(&w->next_ms, TIMER_NEVER);
    w->owner = owner;
}

/* The level of the highest bit in which elapsed and deadline differ.  A
 * deadline less than WHEEL_MAX_MS ahead can still differ above level 5 (it
 * crosses a 64^6 boundary): it goes to level 5, whose slot then lies in
 * the next turn of that level, which next_expiration accounts for. */
static unsigned level_for(uint64_t elapsed, uint64_t deadline)
{
    uint64_t masked = (elapsed ^ deadline) | (WHEEL_SLOTS - 1);
    if (masked >= WHEEL_MAX_MS)
        masked = WHEEL_MAX_MS - 1;
    unsigned significant = 63u - (unsigned)__builtin_clzll(masked);
    return significant / WHEEL_SLOT_BITS;
}

static void slot_link(struct timer_wheel *w, struct timer_entry *e)
{
    unsigned level = level_for(w->elapsed, e->deadline);
    unsigned slot = (unsigned)(e->deadline >> (level * WHEEL_SLOT_BITS)) & (WHEEL_SLOTS - 1);
    struct timer_entry **head = &w->slots[level][slot];
    e->level = (uint8_t)level;
    e->slot = (uint8_t)slot;
    e->prev = NULL;
    e->next = *head;
    if (*head)
        (*head)->prev = e;
    *head = e;
    w->occupied[level] |= UINT64_C(1) << slot;
}

static void slot_unlink(struct timer_wheel *w, struct timer_entry *e)
{
    struct timer_entry **head = &w->slots[e->level][e->slot];
    if (e->prev)
        e->prev->next = e->next;
    else
        *head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    if (!*head)
        w->occupied[e->level] &= ~(UINT64_C(1) << e->slot);
    e->next = e->prev = NULL;
}

/* The start (ms) of the earliest non-empty slot, TIMER_NEVER if none; its
 * level and slot in *level, *slot. */
static uint64_t next_expiration(const struct timer_wheel *w, unsigned *level, unsigned *slot)
{
    for (unsigned l = 0; l < WHEEL_LEVELS; l++) {
        uint64_t occupied = w->occupied[l];
        if (!occupied)
            continue;
        unsigned shift = l * WHEEL_SLOT_BITS;
        /* Search from the current slot on (level 0: its entries are due
         * now), or from the one after it (above level 0: a slot at or
         * before the current one holds entries of the level's next turn,
         * put there by level_for's clamp, so the current slot comes last). */
        unsigned from = ((unsigned)(w->elapsed >> shift) + (l > 0)) & (WHEEL_SLOTS - 1);
        uint64_t rotated = from ? (occupied >> from) | (occupied << (64 - from)) : occupied;
        unsigned s = ((unsigned)__builtin_ctzll(rotated) + from) & (WHEEL_SLOTS - 1);
        uint64_t slot_range = UINT64_C(1) << shift;
        uint64_t level_range = slot_range << WHEEL_SLOT_BITS;
        uint64_t start = (w->elapsed & ~(level_range - 1)) + s * slot_range;
        if (l > 0 && start <= w->elapsed)
            start += level_range;
        *level = l;
        *slot = s;
        return start;
    }
    return TIMER_NEVER;
}

static void update_next(struct timer_wheel *w)
{
    unsigned level, slot;
    /* relaxed: a hint for the owner (timer_due); the lock orders the rest. */
    atomic_store_explicit(&w->next_ms, next_expiration(w, &level, &slot), memory_order_relaxed);
}

static uint64_t deadline_ms(const struct timer_wheel *w, uint64_t ns)
{
    if (ns <= w->epoch_ns)
        return 0;
    uint64_t rel = ns - w->epoch_ns;
    uint64_t ms = rel / 1000000u + (rel % 1000000u != 0); /* round up: never early */
    return ms;
}

void wisp__timer_arm(struct timer_wheel *w, struct timer_entry *e, uint64_t deadline_ns)
{
    bool unpark = false;
    lock_acquire(&w->lock);
    uint64_t ms = deadline_ms(w, deadline_ns);
    e->wheel = w;
    if (ms <= w->elapsed) {
        /* Due already: fired without entering the wheel.  release: pairs
         * with the poller's acquire load of the state. */
        atomic_store_explicit(&e->state, TIMER_FIRED, memory_order_release);
        lock_release(&w->lock);
        return;
    }
    if (ms - w->elapsed > WHEEL_MAX_MS)
        ms = w->elapsed + WHEEL_MAX_MS;
    e->deadline = ms;
    /* relaxed: the lock orders it with advance and cancel; the poller's
     * acquire of FIRED is what matters to it. */
    atomic_store_explicit(&e->state, TIMER_ARMED, memory_order_relaxed);
    slot_link(w, e);
    w->armed++;
    update_next(w);
    if (ms < w->owner_wakes_at) { /* the owner sleeps past this deadline */
        w->owner_wakes_at = ms;
        unpark = true;
    }
    lock_release(&w->lock);
    if (unpark && w->owner)
        driver_unpark(w->owner);
}

void wisp__timer_cancel(struct timer_entry *e)
{
    struct timer_wheel *w = e->wheel;
    if (!w)
        return;
    lock_acquire(&w->lock);
    /* relaxed: under the lock, which advance holds when it fires. */
    if (atomic_load_explicit(&e->state, memory_order_relaxed) == TIMER_ARMED) {
        slot_unlink(w, e);
        w->armed--;
        atomic_store_explicit(&e->state, TIMER_UNARMED, memory_order_relaxed);
        update_next(w);
    }
    lock_release(&w->lock);
    e->wheel = NULL;
}

unsigned wisp__timer_advance(struct timer_wheel *w, uint64_t now_ns)
{
    uint64_t now = timer_ms(w, now_ns);
    unsigned fired = 0;
    wisp_waker_t batch[FIRE_BATCH];
    for (;;) {
        unsigned n = 0;
        lock_acquire(&w->lock);
        unsigned level, slot;
        uint64_t start;
        while (n < FIRE_BATCH && (start = next_expiration(w, &level, &slot)) <= now) {
            w->elapsed = start;
            struct timer_entry *e = w->slots[level][slot];
            w->slots[level][slot] = NULL;
            w->occupied[level] &= ~(UINT64_C(1) << slot);
            while (e) {
                struct timer_entry *next = e->next;
                e->next = e->prev = NULL;
                if (e->deadline <= w->elapsed && n < FIRE_BATCH) {
                    w->armed--;
                    /* release: pairs with the poller's acquire of FIRED. */
                    atomic_store_explicit(&e->state, TIMER_FIRED, memory_order_release);
                    batch[n++] = wisp__atomic_waker_take(&e->waker);
                } else {
                    slot_link(w, e); /* cascade down, or keep for the next batch */
                }
                e = next;
            }
        }
        if (n < FIRE_BATCH && now > w->elapsed)
            w->elapsed = now;
        update_next(w);
        lock_release(&w->lock);
        for (unsigned i = 0; i < n; i++)
            wisp_waker_wake(&batch[i]);
        fired += n;
        if (n < FIRE_BATCH)
            return fired;
    }
}

uint64_t wisp__timer_park_deadline(struct timer_wheel *w)
{
    lock_acquire(&w->lock);
    unsigned level, slot;
    uint64_t next = next_expiration(w, &level, &slot);
    w->owner_wakes_at = next;
    lock_release(&w->lock);
    if (next == TIMER_NEVER)
        return DRIVER_FOREVER;
    return w->epoch_ns + next * 1000000u;
}

void wisp__timer_unparked(struct timer_wheel *w)
{
    lock_acquire(&w->lock);
    w->owner_wakes_at = 0;
    lock_release(&w->lock);
}

void wisp__timer_wheel_detach_all(struct timer_wheel *w)
{
    lock_acquire(&w->lock);
    for (unsigned l = 0; l < WHEEL_LEVELS; l++) {
        for (unsigned s = 0; s < WHEEL_SLOTS; s++) {
            struct timer_entry *e = w->slots[l][s];
            while (e) {
                struct timer_entry *next = e->next;
                e->next = e->prev = NULL;
                e->wheel = NULL;
                /* release: a later poll (the future outliving its runtime)
                 * reads it with acquire and reports -ESHUTDOWN. */
                atomic_store_explicit(&e->state, TIMER_DETACHED, memory_order_release);
                wisp__atomic_waker_wake(&e->waker);
                e = next;
            }
            w->slots[l][s] = NULL;
        }
        w->occupied[l] = 0;
    }
    w->armed = 0;
    atomic_store_explicit(&w->next_ms, TIMER_NEVER, memory_order_relaxed);
    lock_release(&w->lock);
}
