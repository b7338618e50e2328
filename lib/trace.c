/* trace.c - recording scheduling events and writing them as Chrome Trace
 * Event JSON (see trace.h).
 *
 * Each worker has a ring of the latest events.  An event is four 64-bit
 * atomics written relaxed by the ring's owner, then published by a release
 * store of the ring's head; the writer reads the head with acquire.  After
 * wisp_trace_stop at most one event per worker can still be in flight: it
 * lands in the slot after the head, which is the oldest one when the ring
 * is full, so the writer skips that slot.  Timestamps come from the TSC
 * where there is one (a few ns), calibrated against CLOCK_MONOTONIC. */
#include "trace.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include <wisp/metrics.h>

#include "alloc.h"
#include "clock.h"
#include "fault.h"
#include "runtime.h"

#if WISP_TRACING

#define DEFAULT_EVENTS 65536
/* Trace timestamps are microseconds (Chrome's unit), with ns precision. */

struct trace_slot {
    _Atomic uint64_t tsc, type, a, b;
};

struct trace_ring {
    _Alignas(WISP_CACHE_LINE) _Atomic uint64_t head; /* events ever recorded */
    struct trace_slot *slots;
    uint64_t mask;
    uint64_t start;            /* head when the current recording started */
};

struct trace_state {
    unsigned nrings;           /* workers, then one for outside threads */
    struct trace_ring *rings;
    pthread_mutex_t outside_lock;
    uint64_t tsc0, ns0;        /* calibration at start */
};

static uint64_t ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __rdtsc();
#else
    return clock_now_ns();
#endif
}

static void ring_record(struct trace_ring *r, enum trace_type type, uint64_t a, int64_t b)
{
    /* relaxed: only this ring's writer stores head. */
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    struct trace_slot *s = &r->slots[h & r->mask];
    /* relaxed: published by the release store of head below. */
    atomic_store_explicit(&s->tsc, ticks(), memory_order_relaxed);
    atomic_store_explicit(&s->type, (uint64_t)type, memory_order_relaxed);
    atomic_store_explicit(&s->a, a, memory_order_relaxed);
    atomic_store_explicit(&s->b, (uint64_t)b, memory_order_relaxed);
    /* release: pairs with the writer's acquire load of head. */
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
}

void wisp__trace_record_slow(struct wisp_runtime *rt, struct worker *w, enum trace_type type,
                       uint64_t a, int64_t b)
{
    /* acquire: pairs with the release store in wisp_trace_start. */
    struct trace_state *ts = atomic_load_explicit(&rt->trace, memory_order_acquire);
    if (!ts)
        return;
    if (w) {
        ring_record(&ts->rings[w->index], type, a, b);
        return;
    }
    pthread_mutex_lock(&ts->outside_lock);
    ring_record(&ts->rings[ts->nrings - 1], type, a, b);
    pthread_mutex_unlock(&ts->outside_lock);
}

static void trace_calibrate(struct trace_state *ts)
{
    ts->tsc0 = ticks();
    ts->ns0 = clock_now_ns();
}

static void trace_state_free(struct trace_state *ts)
{
    if (!ts)
        return;
    for (unsigned i = 0; i < ts->nrings; i++)
        alloc_free(ts->rings[i].slots);
    alloc_free(ts->rings);
    pthread_mutex_destroy(&ts->outside_lock);
    alloc_free(ts);
}

static struct trace_state *trace_state_new(unsigned nworkers, size_t events)
{
    size_t cap = 1;
    while (cap < events)
        cap <<= 1;
    struct trace_state *ts = alloc_zeroed(1, sizeof(*ts), 0);
    if (!ts)
        return NULL;
    ts->nrings = nworkers + 1;
    ts->rings = alloc_zeroed(ts->nrings, sizeof(*ts->rings), _Alignof(struct trace_ring));
    if (!ts->rings || fault_mutex() || pthread_mutex_init(&ts->outside_lock, NULL)) {
        alloc_free(ts->rings);
        alloc_free(ts);
        return NULL;
    }
    for (unsigned i = 0; i < ts->nrings; i++) {
        struct trace_ring *r = &ts->rings[i];
        atomic_init(&r->head, 0);
        r->start = 0;
        r->mask = cap - 1;
        r->slots = alloc_zeroed(cap, sizeof(*r->slots), 0);
        if (!r->slots) {
            ts->nrings = i + 1;
            trace_state_free(ts);
            return NULL;
        }
    }
    trace_calibrate(ts);
    return ts;
}

int wisp_trace_start(wisp_runtime_t *rt, size_t events_per_worker)
{
    if (!rt || events_per_worker > (SIZE_MAX >> 8))
        return -EINVAL;
    pthread_mutex_lock(&rt->trace_lock);
    int err = 0;
    /* relaxed: trace_lock orders the flag with the state it guards. */
    struct trace_state *ts = atomic_load_explicit(&rt->trace, memory_order_relaxed);
    if (atomic_load_explicit(&rt->tracing, memory_order_relaxed)) {
        err = -EALREADY;
    } else if (ts) {
        /* The rings stay (their size is the first start's): mark where the
         * new recording begins rather than rewinding heads other threads
         * write.  acquire: pairs with ring_record's release of head. */
        for (unsigned i = 0; i < ts->nrings; i++)
            ts->rings[i].start = atomic_load_explicit(&ts->rings[i].head, memory_order_acquire);
        trace_calibrate(ts);
    } else {
        ts = trace_state_new(rt->nworkers, events_per_worker ? events_per_worker : DEFAULT_EVENTS);
        if (!ts)
            err = -ENOMEM;
        else
            /* release: pairs with the acquire in wisp__trace_record_slow. */
            atomic_store_explicit(&rt->trace, ts, memory_order_release);
    }
    if (!err)
        /* relaxed: recorders then load the state with acquire. */
        atomic_store_explicit(&rt->tracing, true, memory_order_relaxed);
    pthread_mutex_unlock(&rt->trace_lock);
    return err;
}

int wisp_trace_stop(wisp_runtime_t *rt)
{
    if (!rt)
        return -EINVAL;
    /* relaxed: stopping is best effort for events already under way. */
    atomic_store_explicit(&rt->tracing, false, memory_order_relaxed);
    return 0;
}

/* ---- writing Chrome Trace Event JSON ------------------------------------- */

struct writer {
    FILE *f;
    bool first;
    double ns_per_tick;
    uint64_t tsc0;
};

static double event_us(const struct writer *wr, uint64_t tsc)
{
    return (double)(int64_t)(tsc - wr->tsc0) * wr->ns_per_tick / 1000.0;
}

static void emit(struct writer *wr, const char *fmt_body)
{
    fprintf(wr->f, "%s\n%s", wr->first ? "" : ",", fmt_body);
    wr->first = false;
}

static void emit_span(struct writer *wr, const char *name, char ph, unsigned tid, double us,
                      const char *args)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "{\"name\":\"%s\",\"ph\":\"%c\",\"ts\":%.3f,\"pid\":1,\"tid\":%u%s%s}",
             name, ph, us, tid, args ? ",\"args\":" : "", args ? args : "");
    emit(wr, buf);
}

static void emit_thread_name(struct writer *wr, unsigned tid, const char *name)
{
    char buf[160];
    snprintf(buf, sizeof(buf),
             "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%u,\"args\":{\"name\":\"%s\"}}",
             tid, name);
    emit(wr, buf);
}

/* One ring's events, oldest first.  Spans (poll, parked) are kept
 * balanced: an end whose begin fell out of the ring is dropped, and a begin
 * still open at the end is closed at the ring's last timestamp. */
static void write_ring(struct writer *wr, struct trace_ring *r, unsigned tid)
{
    /* acquire: pairs with ring_record's release store of head. */
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t first = r->start;
    if (head - first > r->mask) /* wrapped: skip the slot a late event may be filling */
        first = head - r->mask;
    bool in_poll = false, parked = false;
    double last_us = 0;
    char args[96];
    for (uint64_t i = first; i < head; i++) {
        struct trace_slot *s = &r->slots[i & r->mask];
        /* relaxed: published by the acquire load of head above. */
        double us = event_us(wr, atomic_load_explicit(&s->tsc, memory_order_relaxed));
        uint64_t type = atomic_load_explicit(&s->type, memory_order_relaxed);
        uint64_t a = atomic_load_explicit(&s->a, memory_order_relaxed);
        int64_t b = (int64_t)atomic_load_explicit(&s->b, memory_order_relaxed);
        last_us = us;
        switch (type) {
        case TRACE_POLL_BEGIN:
            if (in_poll) /* unbalanced in the ring: close the earlier one */
                emit_span(wr, "poll", 'E', tid, us, NULL);
            snprintf(args, sizeof(args), "{\"task\":\"0x%" PRIx64 "\"}", a);
            emit_span(wr, "poll", 'B', tid, us, args);
            in_poll = true;
            break;
        case TRACE_POLL_END:
            if (!in_poll)
                break;
            snprintf(args, sizeof(args), "{\"task\":\"0x%" PRIx64 "\",\"result\":\"%s\"}", a,
                     b ? "ready" : "pending");
            emit_span(wr, "poll", 'E', tid, us, args);
            in_poll = false;
            break;
        case TRACE_PARK:
            if (!parked)
                emit_span(wr, "parked", 'B', tid, us, NULL);
            parked = true;
            break;
        case TRACE_UNPARK:
            if (parked)
                emit_span(wr, "parked", 'E', tid, us, NULL);
            parked = false;
            break;
        case TRACE_SPAWN:
        case TRACE_WAKE: {
            char buf[256];
            snprintf(buf, sizeof(buf),
                     "{\"name\":\"%s\",\"ph\":\"i\",\"s\":\"t\",\"ts\":%.3f,\"pid\":1,\"tid\":%u,"
                     "\"args\":{\"task\":\"0x%" PRIx64 "\",\"target\":%" PRId64 "}}",
                     type == TRACE_SPAWN ? "spawn" : "wake", us, tid, a, b);
            emit(wr, buf);
            break;
        }
        case TRACE_STEAL: {
            char buf[256];
            snprintf(buf, sizeof(buf),
                     "{\"name\":\"steal\",\"ph\":\"i\",\"s\":\"t\",\"ts\":%.3f,\"pid\":1,\"tid\":%u,"
                     "\"args\":{\"victim\":%" PRIu64 ",\"tasks\":%" PRId64 "}}",
                     us, tid, a, b);
            emit(wr, buf);
            break;
        }
        }
    }
    if (in_poll)
        emit_span(wr, "poll", 'E', tid, last_us, NULL);
    if (parked)
        emit_span(wr, "parked", 'E', tid, last_us, NULL);
}

int wisp_trace_write(wisp_runtime_t *rt, const char *path)
{
    if (!rt || !path)
        return -EINVAL;
    wisp_trace_stop(rt);
    pthread_mutex_lock(&rt->trace_lock);
    /* relaxed: trace_lock orders it with wisp_trace_start. */
    struct trace_state *ts = atomic_load_explicit(&rt->trace, memory_order_relaxed);
    int err = 0;
    FILE *f = ts ? fopen(path, "w") : NULL;
    if (!ts)
        err = -ENODATA;
    else if (!f)
        err = -errno;
    if (!err) {
        uint64_t tsc1 = ticks(), ns1 = clock_now_ns();
        struct writer wr = { f, true, 1.0, ts->tsc0 };
        if (tsc1 > ts->tsc0 && ns1 > ts->ns0)
            wr.ns_per_tick = (double)(ns1 - ts->ns0) / (double)(tsc1 - ts->tsc0);
        fputs("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[", f);
        char name[32];
        for (unsigned i = 0; i < ts->nrings; i++) {
            if (i + 1 < ts->nrings)
                snprintf(name, sizeof(name), "worker %u", i);
            else
                snprintf(name, sizeof(name), "outside threads");
            emit_thread_name(&wr, i, name);
        }
        for (unsigned i = 0; i < ts->nrings; i++)
            write_ring(&wr, &ts->rings[i], i);
        fputs("\n]}\n", f);
        if (ferror(f))
            err = -EIO;
        if (fclose(f) != 0 && !err)
            err = -errno;
    }
    pthread_mutex_unlock(&rt->trace_lock);
    return err;
}

/* ---- runtime life cycle ------------------------------------------------------ */

void wisp__trace_runtime_created(struct wisp_runtime *rt)
{
    const char *path = getenv("WISP_TRACE");
    if (path && *path && wisp_trace_start(rt, 0) != 0)
        fprintf(stderr, "wisp: WISP_TRACE: cannot start tracing\n");
}

void wisp__trace_runtime_flush(struct wisp_runtime *rt)
{
    const char *path = getenv("WISP_TRACE");
    /* relaxed: the workers are joined. */
    if (path && *path && atomic_load_explicit(&rt->trace, memory_order_relaxed)) {
        int err = wisp_trace_write(rt, path);
        if (err)
            fprintf(stderr, "wisp: WISP_TRACE=%s: %s\n", path, strerror(-err));
    }
}

void wisp__trace_runtime_destroy(struct wisp_runtime *rt)
{
    /* relaxed: the workers are joined. */
    trace_state_free(atomic_load_explicit(&rt->trace, memory_order_relaxed));
}

#else /* built with WISP_TRACING=OFF: the API says so */

void wisp__trace_record_slow(struct wisp_runtime *rt, struct worker *w, enum trace_type type,
                       uint64_t a, int64_t b)
{
    (void)rt, (void)w, (void)type, (void)a, (void)b;
}

int wisp_trace_start(wisp_runtime_t *rt, size_t events_per_worker)
{
    (void)events_per_worker;
    return rt ? -ENOTSUP : -EINVAL;
}

int wisp_trace_stop(wisp_runtime_t *rt)
{
    return rt ? -ENOTSUP : -EINVAL;
}

int wisp_trace_write(wisp_runtime_t *rt, const char *path)
{
    return rt && path ? -ENOTSUP : -EINVAL;
}

void wisp__trace_runtime_created(struct wisp_runtime *rt)
{
    (void)rt;
}

void wisp__trace_runtime_flush(struct wisp_runtime *rt)
{
    (void)rt;
}

void wisp__trace_runtime_destroy(struct wisp_runtime *rt)
{
    (void)rt;
}

#endif
