/* parker.h - parking outside threads: the wakers wisp_block_on and
 * wisp_join hand to the futures they wait on, and the futex driver
 * (driver.h) each parks on.
 *
 * Owns: struct wisp__parker (heap, reference-counted: the futures
 * wisp_block_on polls may keep clones of its waker for as long as they
 * like), and each thread's join parker (thread-local, no allocation:
 * wisp_join's waker is cloned only into the awaited task's awaiter slot,
 * and wisp_join returns only once no clone of it is left). */
#ifndef WISP_PARKER_H
#define WISP_PARKER_H

#include <stdint.h>

#include <wisp/future.h>

struct wisp__parker;

struct wisp__parker *wisp__parker_new(void);      /* NULL: out of memory */
wisp_waker_t wisp__parker_waker(struct wisp__parker *p); /* borrowed: do not drop */
/* Returns after a wake (possibly an earlier one, or spuriously) or at the
 * deadline (driver.h); the caller re-checks its condition. */
int wisp__parker_park(struct wisp__parker *p, uint64_t deadline_ns);
void wisp__parker_release(struct wisp__parker *p); /* the creator's reference */

/* The calling thread's join parker: its waker (borrowed), parking on it,
 * and waiting until every clone of its waker has been woken or dropped
 * (then nothing will touch the parker again, and the thread may exit). */
wisp_waker_t wisp__join_waker(void);
void wisp__join_park(void);
void wisp__join_quiesce(void);

#endif /* WISP_PARKER_H */
