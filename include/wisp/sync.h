/* wisp/sync.h - tasks talking to tasks: an atomic waker; channels
 * (oneshot, MPSC bounded and unbounded, MPMC bounded, broadcast, watch);
 * notify, mutex, rwlock, semaphore, barrier, wait group; select and
 * join_all.  (A timeout around any future is wisp_timeout_t, wisp/time.h.)
 *
 * FUTURES.  Every operation that may wait is a future you embed in your own
 * (or spawn directly: the *_poll and *_drop functions have the wisp_poll_fn
 * and wisp_drop_fn shapes):
 *
 *   wisp_chan_recv_init(&f->recv, f->rx);      // nothing happens yet
 *   ...
 *   if (wisp_chan_recv_poll(&f->recv, cx, &msg) == WISP_PENDING) return WISP_PENDING;
 *   int st = wisp_chan_recv_status(&f->recv); // 0: msg is a message; -EPIPE: closed
 *
 * Once polled a future may be queued inside its primitive (an intrusive
 * FIFO of waiters): from its first poll to its drop it must not move in
 * memory, and it must be dropped (its *_drop) before its memory is reused,
 * whether it completed or not.  Dropping a completed future, or one never
 * polled, is allowed and cheap.  A future may be polled again after READY:
 * it stays READY with the same status, but a message is handed out once
 * (a receive polled again gives NULL).  Initialising does not wait: use
 * the try_ forms for an answer now.
 *
 * WAITERS ARE SERVED IN FIFO ORDER.  A waiter queued first is served first
 * (a lock, permits, a channel slot, a message), and a newcomer does not
 * barge past queued waiters (a try_ form fails while others wait), so no
 * waiter starves while others keep acquiring.  The mutex alone lets a
 * newcomer take a lock just released before the woken head waiter runs
 * (as Go's sync.Mutex: a task that unlocks and locks again in a loop does
 * not become a convoy of task switches); a head waiter that has waited
 * 1 ms gets the lock handed to it, before any newcomer.
 *
 * CANCELLATION.  Dropping a future before it completes is always allowed;
 * what it gives up is stated at each operation.  In short: a receive
 * dropped before READY loses no message (it took none); a send dropped
 * before READY did not send (its message is still yours); a lock, permit
 * or notification handed to a waiter dropped before it saw it is passed on
 * to the next waiter, never lost.  select never loses a message: at most
 * one branch completes per select, and the others took nothing.
 *
 * MESSAGES are pointer-sized values (void *): a pointer to your object, or
 * an integer cast with (void *)(uintptr_t).  A channel owns a message from
 * a successful send until a receive returns it; messages still queued when
 * the channel is freed are passed to the drop_msg function given at
 * creation (NULL: nothing to do).  Broadcast and watch hand one message to
 * many receivers: they take a clone_msg function too (a reference count
 * increment, say; NULL: the value is copied as is).
 *
 * HANDLES AND THREADS.  Every handle and primitive may be used from any
 * thread, from poll functions or outside threads (a future is polled from
 * wisp_block_on there); an MPSC receiver, a broadcast or watch receiver
 * and a oneshot's ends by one thread at a time (their owner's).  A
 * channel's handles are counted: each clone must be dropped once; the
 * channel is freed with its last handle.  A future uses the handle it was
 * made with: drop the future before that handle.  Primitives (mutex, ...)
 * live in your memory: init, use, destroy once no future of theirs is
 * alive (a wait group may be destroyed as soon as a wait completed: the
 * last done() touches it no more after that).
 *
 * STATUS CODES.  0 or a negative errno: -EINVAL for NULL arguments or a
 * capacity 0 where it is not allowed, -ENOMEM, -EAGAIN (a try_ form that
 * would wait), -EPIPE (the other side of a channel is gone, or the channel
 * was closed: "closed" below), -EOVERFLOW (a broadcast receiver fell
 * behind and missed messages).
 *
 * MISUSE (unlocking a mutex this task does not hold, releasing more permits
 * than were acquired, polling a future from two tasks, moving a polled
 * future, using a dropped handle) is undefined; the debug build
 * (WISP_DEBUG: the sanitizer and Debug builds) catches the first two and
 * aborts with a message. */
#ifndef WISP_SYNC_H
#define WISP_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wisp/future.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== atomic waker =========================================================== */

/* One registered waker that any thread can wake, with no lock (the
 * AtomicWaker pattern).  One thread at a time registers (the future's
 * poller); any number of threads wake.  A wake with nothing registered is
 * not remembered: the waiter registers, then re-checks the condition it
 * waits for, so an event published before the wake is never missed:
 *
 *   wisp_atomic_waker_register(&s->aw, wisp_context_waker(cx));
 *   if (!atomic_load(&s->ready)) return WISP_PENDING;
 *
 * and the other side sets ready, then calls wisp_atomic_waker_wake. */
typedef struct wisp_atomic_waker {
    uintptr_t opaque[3];
} wisp_atomic_waker_t;

#define WISP_ATOMIC_WAKER_INIT { { 0, 0, 0 } }

WISP_API void wisp_atomic_waker_init(wisp_atomic_waker_t *aw);
/* Stores a clone of w (replacing the one registered before, unless it wakes
 * the same task); if a wake runs concurrently, w is woken. */
WISP_API void wisp_atomic_waker_register(wisp_atomic_waker_t *aw, const wisp_waker_t *w);
/* Wakes and removes the registered waker, if any. */
WISP_API void wisp_atomic_waker_wake(wisp_atomic_waker_t *aw);
/* Removes the registered waker and returns it (empty if none) for the
 * caller to wake later, e.g. after releasing a lock of its own. */
WISP_API wisp_waker_t wisp_atomic_waker_take(wisp_atomic_waker_t *aw);
/* Drops the registered waker; aw must not be used by any thread after. */
WISP_API void wisp_atomic_waker_destroy(wisp_atomic_waker_t *aw);

/* ==== oneshot ================================================================ */

/* One message, once, from one sender to one receiver.  Both handles refer
 * to one allocation, freed when both are dropped. */
typedef struct wisp_oneshot_tx wisp_oneshot_tx_t;
typedef struct wisp_oneshot_rx wisp_oneshot_rx_t;

/* -EINVAL (NULL tx or rx), -ENOMEM. */
WISP_API int wisp_oneshot_new(wisp_oneshot_tx_t **tx, wisp_oneshot_rx_t **rx,
                              wisp_drop_fn drop_msg);
/* Sends msg and drops the sender (in every case: tx is gone after the
 * call).  0, or -EPIPE when the receiver was dropped or closed first: msg
 * was not sent and is still yours.  -EINVAL for NULL tx. */
WISP_API int wisp_oneshot_send(wisp_oneshot_tx_t *tx, void *msg);
/* Drops the sender without sending: the receiver gets -EPIPE. */
WISP_API void wisp_oneshot_tx_drop(wisp_oneshot_tx_t *tx);
/* True once the receiver is dropped or closed (a send would fail). */
WISP_API bool wisp_oneshot_tx_is_closed(const wisp_oneshot_tx_t *tx);
/* READY once the receiver is dropped or closed (Tokio's closed()). */
WISP_API wisp_poll_t wisp_oneshot_tx_poll_closed(wisp_oneshot_tx_t *tx, wisp_context_t *cx);

/* The receiver is its own future (a oneshot has one receive): READY with
 * *status 0 and *msg the message, or *status -EPIPE (the sender was dropped
 * without sending, or the receiver closed first).  Either pointer may be
 * NULL (a message not taken is then dropped with drop_msg).  After READY
 * the receiver is still to be dropped; polled again it reports -EPIPE
 * (nothing more will come).  Cancellation: stopping to poll
 * loses nothing; a message that arrives stays in the channel until the
 * receiver is dropped. */
WISP_API wisp_poll_t wisp_oneshot_recv_poll(wisp_oneshot_rx_t *rx, wisp_context_t *cx, int *status,
                                            void **msg);
/* 0 and *msg, -EAGAIN (nothing sent yet), -EPIPE. */
WISP_API int wisp_oneshot_try_recv(wisp_oneshot_rx_t *rx, void **msg);
/* Refuses a later send (it gets -EPIPE); a message sent already can still
 * be received. */
WISP_API void wisp_oneshot_rx_close(wisp_oneshot_rx_t *rx);
/* Drops the receiver (and with drop_msg a message sent and not received). */
WISP_API void wisp_oneshot_rx_drop(wisp_oneshot_rx_t *rx);

/* ==== channels: MPSC (bounded, unbounded) and MPMC (bounded) ================= */

/* A queue of messages in FIFO order.  Handles: senders and receivers,
 * counted.  An MPSC channel has one receiver handle (wisp_chan_rx_clone
 * refuses); an MPMC channel's receivers may be cloned and each message goes
 * to exactly one of them.  Bounded channels hold at most capacity messages
 * (>= 1); a sender that finds the channel full waits for a slot, in FIFO
 * order.  Unbounded channels grow (send fails only with -ENOMEM).
 *
 * Closing: when the last sender is dropped, receivers get the messages
 * still queued, then -EPIPE.  When the last receiver is dropped, or a
 * receiver calls wisp_chan_close, senders get -EPIPE at once (queued
 * messages are dropped with drop_msg when the channel is freed, or can
 * still be received after wisp_chan_close). */
typedef struct wisp_chan_tx wisp_chan_tx_t;
typedef struct wisp_chan_rx wisp_chan_rx_t;

/* -EINVAL (NULL handle pointer, capacity 0 or over 2^31), -ENOMEM. */
WISP_API int wisp_mpsc_new(wisp_chan_tx_t **tx, wisp_chan_rx_t **rx, size_t capacity,
                           wisp_drop_fn drop_msg);
WISP_API int wisp_mpsc_unbounded_new(wisp_chan_tx_t **tx, wisp_chan_rx_t **rx,
                                     wisp_drop_fn drop_msg);
WISP_API int wisp_mpmc_new(wisp_chan_tx_t **tx, wisp_chan_rx_t **rx, size_t capacity,
                           wisp_drop_fn drop_msg);

/* Another handle on the same channel (the same pointer, counted); NULL for
 * a NULL handle, and for an MPSC receiver. */
WISP_API wisp_chan_tx_t *wisp_chan_tx_clone(wisp_chan_tx_t *tx);
WISP_API wisp_chan_rx_t *wisp_chan_rx_clone(wisp_chan_rx_t *rx);
WISP_API void wisp_chan_tx_drop(wisp_chan_tx_t *tx);
WISP_API void wisp_chan_rx_drop(wisp_chan_rx_t *rx);
/* Closes the channel for sending (senders get -EPIPE; waiting ones are
 * woken); receivers still get what is queued, then -EPIPE. */
WISP_API void wisp_chan_close(wisp_chan_rx_t *rx);
WISP_API bool wisp_chan_is_closed(const wisp_chan_tx_t *tx);
/* Messages queued now (a snapshot). */
WISP_API size_t wisp_chan_len(const wisp_chan_rx_t *rx);

/* 0: sent.  -EAGAIN: full (or senders are queued for a slot: they go
 * first), -EPIPE: closed, -ENOMEM (unbounded); on error msg is yours. */
WISP_API int wisp_chan_try_send(wisp_chan_tx_t *tx, void *msg);
/* 0 and *msg, -EAGAIN (empty), -EPIPE (empty and every sender gone, or
 * closed). */
WISP_API int wisp_chan_try_recv(wisp_chan_rx_t *rx, void **msg);

/* A send that waits for a slot.  READY with *output (may be NULL) set to
 * (void *)(intptr_t)status: 0 sent; -EPIPE closed, -ENOMEM (unbounded):
 * not sent, msg is yours.  Cancellation: dropped before READY, the message
 * was not sent and is yours; a slot granted to it passes to the next
 * waiting sender. */
typedef struct wisp_chan_send {
    uint64_t opaque[10];
} wisp_chan_send_t;
WISP_API void wisp_chan_send_init(wisp_chan_send_t *f, wisp_chan_tx_t *tx, void *msg);
WISP_API wisp_poll_t wisp_chan_send_poll(void *f, wisp_context_t *cx, void **output);
WISP_API void wisp_chan_send_drop(void *f);

/* A receive.  READY with *output (may be NULL) the message, and
 * wisp_chan_recv_status 0; or status -EPIPE (closed and empty; *output
 * NULL).  Cancellation: dropped before READY, it took no message (a
 * message it was woken for is left to the next receiver). */
typedef struct wisp_chan_recv {
    uint64_t opaque[10];
} wisp_chan_recv_t;
WISP_API void wisp_chan_recv_init(wisp_chan_recv_t *f, wisp_chan_rx_t *rx);
WISP_API wisp_poll_t wisp_chan_recv_poll(void *f, wisp_context_t *cx, void **output);
WISP_API int wisp_chan_recv_status(const wisp_chan_recv_t *f);
WISP_API void wisp_chan_recv_drop(void *f);

/* ==== broadcast ============================================================== */

/* Every receiver gets every message sent after it subscribed, in order.
 * The channel keeps the last capacity messages; a receiver that falls
 * further behind gets -EOVERFLOW once (with the count missed in
 * wisp_bcast_recv_missed) and goes on from the oldest message kept.
 * Sending never waits.  A receive returns a clone (clone_msg) of the
 * message; the channel drops its own copy (drop_msg) when the message is
 * overwritten or the channel freed.  Senders are counted as for chan;
 * each receiver is its own handle, made by subscribe. */
typedef struct wisp_bcast_tx wisp_bcast_tx_t;
typedef struct wisp_bcast_rx wisp_bcast_rx_t;
typedef void *(*wisp_clone_fn)(void *msg);

/* -EINVAL (NULL, capacity 0 or over 2^31), -ENOMEM.  *rx: a first
 * receiver (rx may be NULL: none yet). */
WISP_API int wisp_bcast_new(wisp_bcast_tx_t **tx, wisp_bcast_rx_t **rx, size_t capacity,
                            wisp_clone_fn clone_msg, wisp_drop_fn drop_msg);
/* A new receiver that sees messages sent from now on; -EINVAL, -ENOMEM. */
WISP_API int wisp_bcast_subscribe(wisp_bcast_tx_t *tx, wisp_bcast_rx_t **rx);
WISP_API wisp_bcast_tx_t *wisp_bcast_tx_clone(wisp_bcast_tx_t *tx);
WISP_API void wisp_bcast_tx_drop(wisp_bcast_tx_t *tx);
WISP_API void wisp_bcast_rx_drop(wisp_bcast_rx_t *rx);
/* Sends msg to every receiver there is now (the channel owns it from
 * here: drop_msg frees it later).  0 and *receivers (may be NULL) the
 * count reached; -EPIPE when there is no receiver (msg is yours). */
WISP_API int wisp_bcast_send(wisp_bcast_tx_t *tx, void *msg, size_t *receivers);
/* 0 and *msg (a clone: yours), -EAGAIN, -EOVERFLOW (missed some), -EPIPE
 * (every sender gone and nothing left to receive). */
WISP_API int wisp_bcast_try_recv(wisp_bcast_rx_t *rx, void **msg);
/* The messages missed at the latest -EOVERFLOW. */
WISP_API uint64_t wisp_bcast_recv_missed(const wisp_bcast_rx_t *rx);

/* A receive on one receiver: READY with *output the message (a clone) and
 * status 0, or status -EOVERFLOW / -EPIPE as try_recv.  Cancellation:
 * dropped before READY it took nothing; the message stays for its next
 * receive. */
typedef struct wisp_bcast_recv {
    uint64_t opaque[10];
} wisp_bcast_recv_t;
WISP_API void wisp_bcast_recv_init(wisp_bcast_recv_t *f, wisp_bcast_rx_t *rx);
WISP_API wisp_poll_t wisp_bcast_recv_poll(void *f, wisp_context_t *cx, void **output);
WISP_API int wisp_bcast_recv_status(const wisp_bcast_recv_t *f);
WISP_API void wisp_bcast_recv_drop(void *f);

/* ==== watch ================================================================== */

/* One value, replaced by the sender; receivers see the latest one and wait
 * for changes (not for every value: values replaced before a receiver
 * looked are skipped).  One sender; receivers are separate handles. */
typedef struct wisp_watch_tx wisp_watch_tx_t;
typedef struct wisp_watch_rx wisp_watch_rx_t;

/* The initial value is owned by the channel.  -EINVAL, -ENOMEM. */
WISP_API int wisp_watch_new(wisp_watch_tx_t **tx, wisp_watch_rx_t **rx, void *initial,
                            wisp_clone_fn clone_msg, wisp_drop_fn drop_msg);
/* Replaces the value (the old one dropped with drop_msg) and wakes the
 * receivers waiting for a change.  0, or -EPIPE when every receiver is
 * gone (value is yours). */
WISP_API int wisp_watch_send(wisp_watch_tx_t *tx, void *value);
WISP_API int wisp_watch_subscribe(wisp_watch_tx_t *tx, wisp_watch_rx_t **rx);
/* A second receiver that has seen what rx has seen; -EINVAL, -ENOMEM. */
WISP_API int wisp_watch_rx_clone(wisp_watch_rx_t *rx, wisp_watch_rx_t **out);
WISP_API void wisp_watch_tx_drop(wisp_watch_tx_t *tx);
WISP_API void wisp_watch_rx_drop(wisp_watch_rx_t *rx);
/* A clone of the current value; marks it seen by this receiver. */
WISP_API void *wisp_watch_borrow(wisp_watch_rx_t *rx);
/* True if the value changed since this receiver last borrowed it. */
WISP_API bool wisp_watch_has_changed(const wisp_watch_rx_t *rx);

/* Waits until the value changes from the one this receiver saw last:
 * READY with *output (void *)(intptr_t)0 (borrow the new value), or -EPIPE
 * when the sender was dropped (no further change can come).
 * Cancellation: nothing is consumed. */
typedef struct wisp_watch_changed {
    uint64_t opaque[10];
} wisp_watch_changed_t;
WISP_API void wisp_watch_changed_init(wisp_watch_changed_t *f, wisp_watch_rx_t *rx);
WISP_API wisp_poll_t wisp_watch_changed_poll(void *f, wisp_context_t *cx, void **output);
WISP_API void wisp_watch_changed_drop(void *f);

/* ==== notify ================================================================= */

/* Wakes waiting tasks.  notify_one wakes the longest waiting one, or, with
 * none waiting, stores one permit that the next wait consumes at once;
 * notify_waiters wakes every task waiting now and stores nothing. */
typedef struct wisp_notify {
    uint64_t opaque[6];
} wisp_notify_t;
WISP_API void wisp_notify_init(wisp_notify_t *n);
WISP_API void wisp_notify_destroy(wisp_notify_t *n);
WISP_API void wisp_notify_one(wisp_notify_t *n);
WISP_API void wisp_notify_waiters(wisp_notify_t *n);

/* READY with *output NULL once notified.  It counts as waiting from its
 * first poll on (for notify_waiters too).  Cancellation: a notify_one
 * handed to it and not seen is passed on to the next waiter (or stored). */
typedef struct wisp_notified {
    uint64_t opaque[10];
} wisp_notified_t;
WISP_API void wisp_notified_init(wisp_notified_t *f, wisp_notify_t *n);
WISP_API wisp_poll_t wisp_notified_poll(void *f, wisp_context_t *cx, void **output);
WISP_API void wisp_notified_drop(void *f);

/* ==== semaphore ============================================================== */

/* Counting permits, FIFO: a waiter for k permits blocks later waiters even
 * when fewer than k would satisfy them. */
typedef struct wisp_semaphore {
    uint64_t opaque[8];
} wisp_semaphore_t;

#define WISP_SEMAPHORE_MAX ((size_t)1 << 30)

/* -EINVAL: permits over WISP_SEMAPHORE_MAX. */
WISP_API int wisp_semaphore_init(wisp_semaphore_t *s, size_t permits);
WISP_API void wisp_semaphore_destroy(wisp_semaphore_t *s);
/* 0, -EAGAIN (not enough, or waiters queued first), -EPIPE (closed),
 * -EINVAL (n 0 or over the maximum). */
WISP_API int wisp_semaphore_try_acquire(wisp_semaphore_t *s, size_t n);
/* Gives back n permits acquired before (more than were acquired: caught in
 * the debug build). */
WISP_API void wisp_semaphore_release(wisp_semaphore_t *s, size_t n);
/* Adds n new permits (the total is capped at WISP_SEMAPHORE_MAX). */
WISP_API void wisp_semaphore_add_permits(wisp_semaphore_t *s, size_t n);
/* Permits nobody holds (a snapshot; those kept for the head waiter count). */
WISP_API size_t wisp_semaphore_available(const wisp_semaphore_t *s);
/* Closes: waiting and later acquires fail with -EPIPE. */
WISP_API void wisp_semaphore_close(wisp_semaphore_t *s);

/* READY with *output (void *)(intptr_t)status: 0 (the n permits are yours:
 * release them), -EPIPE (closed), -EINVAL (n 0 or over the maximum).
 * Cancellation: permits assigned to it before the drop pass to the next
 * waiters. */
typedef struct wisp_acquire {
    uint64_t opaque[10];
} wisp_acquire_t;
WISP_API void wisp_acquire_init(wisp_acquire_t *f, wisp_semaphore_t *s, size_t n);
WISP_API wisp_poll_t wisp_acquire_poll(void *f, wisp_context_t *cx, void **output);
WISP_API void wisp_acquire_drop(void *f);

/* ==== mutex ================================================================== */

/* An async mutex: the lock may be held across polls (and awaits); unlock
 * from the task (or outside thread) that locked it.  Waiters are served in
 * FIFO order; a newcomer may take the lock between an unlock and the
 * woken waiter's poll, unless a waiter has waited 1 ms (see above). */
typedef struct wisp_mutex {
    wisp_semaphore_t sem;
    uint64_t debug_holder;
} wisp_mutex_t;
WISP_API void wisp_mutex_init(wisp_mutex_t *m);
WISP_API void wisp_mutex_destroy(wisp_mutex_t *m);
/* 0 (locked: yours), -EAGAIN. */
WISP_API int wisp_mutex_try_lock(wisp_mutex_t *m);
WISP_API void wisp_mutex_unlock(wisp_mutex_t *m);

/* READY with *output NULL once the lock is yours.  Cancellation: a lock
 * handed to it before the drop passes to the next waiter. */
typedef struct wisp_mutex_lock {
    wisp_acquire_t acq;
} wisp_mutex_lock_t;
WISP_API void wisp_mutex_lock_init(wisp_mutex_lock_t *f, wisp_mutex_t *m);
WISP_API wisp_poll_t wisp_mutex_lock_poll(void *f, wisp_context_t *cx, void **output);
WISP_API void wisp_mutex_lock_drop(void *f);

/* ==== rwlock ================================================================= */

/* Many readers or one writer, FIFO: a queued writer blocks later readers
 * (no writer starvation).  At most WISP_RWLOCK_MAX_READERS readers. */
typedef struct wisp_rwlock {
    wisp_semaphore_t sem;
} wisp_rwlock_t;
#define WISP_RWLOCK_MAX_READERS ((size_t)1 << 29)
WISP_API void wisp_rwlock_init(wisp_rwlock_t *l);
WISP_API void wisp_rwlock_destroy(wisp_rwlock_t *l);
WISP_API int wisp_rwlock_try_read(wisp_rwlock_t *l);
WISP_API int wisp_rwlock_try_write(wisp_rwlock_t *l);
WISP_API void wisp_rwlock_read_unlock(wisp_rwlock_t *l);
WISP_API void wisp_rwlock_write_unlock(wisp_rwlock_t *l);

/* READY with *output NULL once the read or write lock is yours.
 * Cancellation: as the mutex's. */
typedef struct wisp_rwlock_lock {
    wisp_acquire_t acq;
} wisp_rwlock_lock_t;
WISP_API void wisp_rwlock_read_init(wisp_rwlock_lock_t *f, wisp_rwlock_t *l);
WISP_API void wisp_rwlock_write_init(wisp_rwlock_lock_t *f, wisp_rwlock_t *l);
WISP_API wisp_poll_t wisp_rwlock_lock_poll(void *f, wisp_context_t *cx, void **output);
WISP_API void wisp_rwlock_lock_drop(void *f);

/* ==== barrier ================================================================ */

/* n tasks wait until all n arrived; then all are released and the barrier
 * is reused for the next n.  One of each group is the leader. */
typedef struct wisp_barrier {
    uint64_t opaque[8];
} wisp_barrier_t;
/* -EINVAL for n 0. */
WISP_API int wisp_barrier_init(wisp_barrier_t *b, size_t n);
WISP_API void wisp_barrier_destroy(wisp_barrier_t *b);

/* Arrives at the first poll.  READY with *output (void *)(intptr_t)1 for
 * the leader (the last to arrive), 0 for the others.  Cancellation: a task
 * dropped after arriving stays counted (as Go's and Tokio's: the group
 * still needs n arrivals; dropping never releases the others early). */
typedef struct wisp_barrier_wait {
    uint64_t opaque[10];
} wisp_barrier_wait_t;
WISP_API void wisp_barrier_wait_init(wisp_barrier_wait_t *f, wisp_barrier_t *b);
WISP_API wisp_poll_t wisp_barrier_wait_poll(void *f, wisp_context_t *cx, void **output);
WISP_API void wisp_barrier_wait_drop(void *f);

/* ==== wait group ============================================================= */

/* Go's sync.WaitGroup: add before starting work, done when it ends; wait
 * completes when the count is back to zero. */
typedef struct wisp_waitgroup {
    uint64_t opaque[6];
} wisp_waitgroup_t;
WISP_API void wisp_waitgroup_init(wisp_waitgroup_t *wg);
WISP_API void wisp_waitgroup_destroy(wisp_waitgroup_t *wg);
/* Adds delta (may be negative); the count going below zero is caught in
 * the debug build. */
WISP_API void wisp_waitgroup_add(wisp_waitgroup_t *wg, int64_t delta);
WISP_API void wisp_waitgroup_done(wisp_waitgroup_t *wg);
WISP_API int64_t wisp_waitgroup_count(const wisp_waitgroup_t *wg);

/* READY with *output NULL when the count is zero.  Cancellation: nothing
 * to give up. */
typedef struct wisp_waitgroup_wait {
    uint64_t opaque[10];
} wisp_waitgroup_wait_t;
WISP_API void wisp_waitgroup_wait_init(wisp_waitgroup_wait_t *f, wisp_waitgroup_t *wg);
WISP_API wisp_poll_t wisp_waitgroup_wait_poll(void *f, wisp_context_t *cx, void **output);
WISP_API void wisp_waitgroup_wait_drop(void *f);

/* ==== select and join_all ===================================================== */

/* A branch: a future, its poll function and its drop function (may be
 * NULL). */
typedef struct wisp_branch {
    wisp_poll_fn poll;
    wisp_drop_fn drop;
    void *future;
} wisp_branch_t;

/* select: polls the branches (from a rotating start, so none is favoured)
 * until one is READY; that one wins: *output is its output and
 * wisp_select_winner its index; every other branch is dropped at once (its
 * drop function: cancellation as that future states; wisp's receives lose
 * no message) and marked by setting its poll to NULL.  The winner is
 * dropped by wisp_select_drop.  Branches are yours (the array must outlive
 * the select); at most one completes. */
typedef struct wisp_select {
    wisp_branch_t *branches;
    size_t n;
    size_t start;
    long winner;
    unsigned flags;
    void *output;       /* the winner's */
} wisp_select_t;
#define WISP_SELECT_BIASED 1u /* poll in array order every time */
/* -EINVAL: NULL branches with n > 0, or a branch without poll. */
WISP_API int wisp_select_init(wisp_select_t *s, wisp_branch_t *branches, size_t n, unsigned flags);
/* READY with the winner's output; with n == 0, READY at once, winner -1. */
WISP_API wisp_poll_t wisp_select_poll(void *s, wisp_context_t *cx, void **output);
WISP_API long wisp_select_winner(const wisp_select_t *s);
/* Drops every branch not dropped yet (all of them if none won). */
WISP_API void wisp_select_drop(void *s);

/* join_all: polls every branch until all are READY; outputs[i] gets branch
 * i's output (outputs has n entries).  Each branch is dropped as soon as it
 * completes, and marked done by setting its poll to NULL; wisp_join_all_drop
 * drops the rest.  READY with *output NULL. */
typedef struct wisp_join_all {
    wisp_branch_t *branches;
    void **outputs;
    size_t n;
    size_t remaining;
} wisp_join_all_t;
/* -EINVAL: NULL arrays with n > 0, or a branch without poll. */
WISP_API int wisp_join_all_init(wisp_join_all_t *j, wisp_branch_t *branches, void **outputs,
                                size_t n);
WISP_API wisp_poll_t wisp_join_all_poll(void *j, wisp_context_t *cx, void **output);
WISP_API void wisp_join_all_drop(void *j);

#ifdef __cplusplus
}
#endif

#endif /* WISP_SYNC_H */
