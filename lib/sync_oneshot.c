/* sync_oneshot.c - the oneshot channel (wisp/sync.h).
 *
 * Owns: struct oneshot, its two handles (the same pointer) and its state
 * word.  Touches: the two atomic wakers inside it.
 *
 * Protocol.  state holds SENT (the message is in msg), TX_DONE (the
 * sender is gone: sent or dropped), RX_CLOSED (the receiver closed or was
 * dropped: a send fails) and RX_TAKEN (the receiver took the message or
 * saw the end; receiver-private, kept here for its repeated polls).  Each
 * side changes it with one RMW: the sender CASes in SENT|TX_DONE only if
 * RX_CLOSED is clear (else TX_DONE alone, and the message stays the
 * caller's), so a message is either delivered or returned, never both; the
 * receiver's close is a fetch_or.  The message is written before the
 * release CAS and read after an acquire load that saw SENT.  Wakeups go
 * through the atomic wakers (register, then re-check state: atomic_waker.c
 * states why nothing is lost).  Lifetime: refs counts the two handles; a
 * side that wakes the other does so before dropping its reference, so the
 * other side cannot free the oneshot under the wake. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <wisp/sync.h>

#include "alloc.h"
#include "atomic_waker.h"

#define OS_SENT 1u
#define OS_TX_DONE 2u
#define OS_RX_CLOSED 4u
#define OS_RX_TAKEN 8u

struct oneshot {
    _Atomic uint32_t state;
    _Atomic uint32_t refs;
    void *msg;
    wisp_drop_fn drop_msg;
    struct atomic_waker rx_waker; /* the receiver waiting for a message */
    struct atomic_waker tx_waker; /* the sender waiting for the close */
};

int wisp_oneshot_new(wisp_oneshot_tx_t **tx, wisp_oneshot_rx_t **rx, wisp_drop_fn drop_msg)
{
    if (!tx || !rx)
        return -EINVAL;
    *tx = NULL;
    *rx = NULL;
    struct oneshot *o = alloc_task(sizeof(*o));
    if (!o)
        return -ENOMEM;
    atomic_init(&o->state, 0);
    atomic_init(&o->refs, 2);
    o->msg = NULL;
    o->drop_msg = drop_msg;
    atomic_waker_init(&o->rx_waker);
    atomic_waker_init(&o->tx_waker);
    *tx = (wisp_oneshot_tx_t *)o;
    *rx = (wisp_oneshot_rx_t *)o;
    return 0;
}

static void oneshot_unref(struct oneshot *o)
{
    /* acq_rel: release our last accesses; acquire the other side's before
     * freeing. */
    if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* acquire: pairs with the sender's release (a message never taken). */
    uint32_t s = atomic_load_explicit(&o->state, memory_order_acquire);
    if ((s & OS_SENT) && !(s & OS_RX_TAKEN) && o->drop_msg)
        o->drop_msg(o->msg);
    wisp__atomic_waker_destroy(&o->rx_waker);
    wisp__atomic_waker_destroy(&o->tx_waker);
    free_task(o, sizeof(*o));
}

/* The sender's end: SENT|TX_DONE if sending and the receiver is there,
 * else TX_DONE.  Returns the state before. */
static uint32_t tx_finish(struct oneshot *o, bool sending)
{
    /* relaxed: the CAS orders. */
    uint32_t s = atomic_load_explicit(&o->state, memory_order_relaxed);
    for (;;) {
        uint32_t n = s | OS_TX_DONE;
        if (sending && !(s & OS_RX_CLOSED))
            n |= OS_SENT;
        /* acq_rel: release publishes msg to the receiver's acquire load;
         * acquire for the receiver's close. */
        if (atomic_compare_exchange_weak_explicit(&o->state, &s, n, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return s;
    }
}

int wisp_oneshot_send(wisp_oneshot_tx_t *tx, void *msg)
{
    struct oneshot *o = (struct oneshot *)tx;
    if (!o)
        return -EINVAL;
    o->msg = msg; /* only the sender writes it, before SENT */
    uint32_t s = tx_finish(o, true);
    int r = (s & OS_RX_CLOSED) ? -EPIPE : 0;
    if (r == 0)
        wisp__atomic_waker_wake(&o->rx_waker);
    oneshot_unref(o);
    return r;
}

void wisp_oneshot_tx_drop(wisp_oneshot_tx_t *tx)
{
    struct oneshot *o = (struct oneshot *)tx;
    if (!o)
        return;
    uint32_t s = tx_finish(o, false);
    if (!(s & OS_RX_CLOSED))
        wisp__atomic_waker_wake(&o->rx_waker);
    oneshot_unref(o);
}

bool wisp_oneshot_tx_is_closed(const wisp_oneshot_tx_t *tx)
{
    struct oneshot *o = (struct oneshot *)tx;
    /* acquire: pairs with the receiver's release close. */
    return !o || (atomic_load_explicit(&o->state, memory_order_acquire) & OS_RX_CLOSED);
}

wisp_poll_t wisp_oneshot_tx_poll_closed(wisp_oneshot_tx_t *tx, wisp_context_t *cx)
{
    struct oneshot *o = (struct oneshot *)tx;
    if (!o || wisp_oneshot_tx_is_closed(tx))
        return WISP_READY;
    const wisp_waker_t *w = wisp_context_waker(cx);
    if (w)
        wisp__atomic_waker_register(&o->tx_waker, w);
    return wisp_oneshot_tx_is_closed(tx) ? WISP_READY : WISP_PENDING;
}

/* The receiver's view: 1 message ready, -EPIPE over, 0 nothing yet. */
static int rx_check(struct oneshot *o, void **msg)
{
    /* acquire: pairs with the sender's release CAS (msg). */
    uint32_t s = atomic_load_explicit(&o->state, memory_order_acquire);
    if (s & OS_RX_TAKEN)
        return -EPIPE;
    if (s & OS_SENT) {
        void *m = o->msg;
        /* relaxed: RX_TAKEN is ours alone; unref orders it for the free. */
        atomic_fetch_or_explicit(&o->state, OS_RX_TAKEN, memory_order_relaxed);
        if (msg)
            *msg = m;
        else if (o->drop_msg)
            o->drop_msg(m);
        return 1;
    }
    if (s & (OS_TX_DONE | OS_RX_CLOSED)) {
        atomic_fetch_or_explicit(&o->state, OS_RX_TAKEN, memory_order_relaxed);
        return -EPIPE;
    }
    return 0;
}

wisp_poll_t wisp_oneshot_recv_poll(wisp_oneshot_rx_t *rx, wisp_context_t *cx, int *status,
                                   void **msg)
{
    struct oneshot *o = (struct oneshot *)rx;
    int r = -EINVAL;
    if (msg)
        *msg = NULL;
    if (o) {
        r = rx_check(o, msg);
        if (r == 0) {
            const wisp_waker_t *w = wisp_context_waker(cx);
            if (w)
                wisp__atomic_waker_register(&o->rx_waker, w);
            r = rx_check(o, msg);
            if (r == 0)
                return WISP_PENDING;
        }
    }
    if (status)
        *status = r == 1 ? 0 : r;
    return WISP_READY;
}

int wisp_oneshot_try_recv(wisp_oneshot_rx_t *rx, void **msg)
{
    struct oneshot *o = (struct oneshot *)rx;
    if (!o || !msg)
        return -EINVAL;
    int r = rx_check(o, msg);
    return r == 1 ? 0 : r == 0 ? -EAGAIN : r;
}

void wisp_oneshot_rx_close(wisp_oneshot_rx_t *rx)
{
    struct oneshot *o = (struct oneshot *)rx;
    if (!o)
        return;
    /* acq_rel: release to the sender's CAS; acquire its message. */
    uint32_t s = atomic_fetch_or_explicit(&o->state, OS_RX_CLOSED, memory_order_acq_rel);
    if (!(s & (OS_RX_CLOSED | OS_TX_DONE)))
        wisp__atomic_waker_wake(&o->tx_waker);
}

void wisp_oneshot_rx_drop(wisp_oneshot_rx_t *rx)
{
    struct oneshot *o = (struct oneshot *)rx;
    if (!o)
        return;
    wisp_oneshot_rx_close(rx);
    oneshot_unref(o);
}
