/* parker.h - a thread-parking waker: waking it unparks the thread that
 * parks on it.  Used by wisp_block_on and wisp_join on outside threads.
 *
 * Owns: struct parker (heap, reference-counted so clones of its waker may
 * outlive the call that made it). */
#ifndef WISP_PARKER_H
#define WISP_PARKER_H

#include <wisp/future.h>

struct parker;

struct parker *wisp__parker_new(void);          /* NULL: out of memory */
wisp_waker_t wisp__parker_waker(struct parker *p); /* borrowed: do not drop */
void wisp__parker_park(struct parker *p);       /* returns after a wake (possibly an earlier one) */
void wisp__parker_release(struct parker *p);    /* the creator's reference */

#endif /* WISP_PARKER_H */
