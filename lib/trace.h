/* trace.h - scheduler tracing: per-worker rings of events, written out as
 * Chrome Trace Event JSON (trace.c).
 *
 * Owns: struct trace_state (the rings, the clock calibration) hanging off
 * the runtime, and the runtime's tracing flag.  A worker records into its
 * own ring only; outside threads share one ring under a mutex.  When not
 * recording, each event site costs one relaxed load of the flag; built with
 * WISP_TRACING=OFF, nothing.  Where sys/sdt.h is available each site is also
 * a USDT probe (provider wisp: poll_begin, poll_end, spawn, wake, steal,
 * park, unpark; arguments: worker index or -1, then the event's two
 * values), a nop until perf or bpftrace attaches. */
#ifndef WISP_TRACE_INTERNAL_H
#define WISP_TRACE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <wisp/config.h>

#include "util.h"

struct wisp_runtime;
struct worker;

enum trace_type {
    TRACE_POLL_BEGIN, /* a: task */
    TRACE_POLL_END,   /* a: task, b: 1 ready / 0 pending */
    TRACE_SPAWN,      /* a: task, b: target worker or -1 (injector) */
    TRACE_WAKE,       /* a: task, b: target worker or -1 (injector) */
    TRACE_STEAL,      /* a: victim worker, b: tasks taken */
    TRACE_PARK,
    TRACE_UNPARK,
};

void wisp__trace_record_slow(struct wisp_runtime *rt, struct worker *w, enum trace_type type,
                       uint64_t a, int64_t b);

#if WISP_USDT
#include <sys/sdt.h>
/* type is a constant at every call site, so one probe remains per site. */
static inline void trace_usdt(enum trace_type type, int worker, uint64_t a, int64_t b)
{
    switch (type) {
    case TRACE_POLL_BEGIN: DTRACE_PROBE2(wisp, poll_begin, worker, a); break;
    case TRACE_POLL_END: DTRACE_PROBE3(wisp, poll_end, worker, a, b); break;
    case TRACE_SPAWN: DTRACE_PROBE3(wisp, spawn, worker, a, b); break;
    case TRACE_WAKE: DTRACE_PROBE3(wisp, wake, worker, a, b); break;
    case TRACE_STEAL: DTRACE_PROBE3(wisp, steal, worker, a, b); break;
    case TRACE_PARK: DTRACE_PROBE1(wisp, park, worker); break;
    case TRACE_UNPARK: DTRACE_PROBE1(wisp, unpark, worker); break;
    }
}
#else
static inline void trace_usdt(enum trace_type type, int worker, uint64_t a, int64_t b)
{
    (void)type, (void)worker, (void)a, (void)b;
}
#endif

/* Records an event from w (NULL: an outside thread) if rt is recording. */
static inline void trace_event(struct wisp_runtime *rt, _Atomic bool *recording,
                               struct worker *w, enum trace_type type, uint64_t a, int64_t b)
{
#if WISP_TRACING
    /* relaxed: a hint; wisp__trace_record_slow acquires the rings. */
    if (unlikely(atomic_load_explicit(recording, memory_order_relaxed)))
        wisp__trace_record_slow(rt, w, type, a, b);
#else
    (void)rt, (void)recording, (void)w, (void)type, (void)a, (void)b;
#endif
}

/* Runtime life cycle: created starts tracing if WISP_TRACE=path is set;
 * flush (the workers joined) writes that file; destroy frees the rings. */
void wisp__trace_runtime_created(struct wisp_runtime *rt);
void wisp__trace_runtime_flush(struct wisp_runtime *rt);
void wisp__trace_runtime_destroy(struct wisp_runtime *rt);

#endif /* WISP_TRACE_INTERNAL_H */
