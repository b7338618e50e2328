/* test_state_table.c - every (state, event) pair the task state word allows,
 * driven through task_state.h's transitions single-threaded, checked against
 * this file's own table of what each must do: the new word, whether it is
 * stored, and the action.  Pairs the word does not allow are refused by
 * ts_allowed (and, in a WISP_DEBUG build, abort through the assertion).
 * The helpers that apply transitions (ts_update, the fetch-ops) must agree
 * with the pure functions. */
#include "helpers.h"

#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "task_state.h"

#define SCHED TASK_SCHEDULED
#define RUN TASK_RUNNING
#define COMP TASK_COMPLETED
#define CLOS TASK_CLOSED
#define FIN TASK_FINISHED
#define HAND TASK_HANDLE
#define REG TASK_REGISTERED
#define AWH TASK_AW_HAS
#define DONE (COMP | CLOS | FIN)

/* ---- this test's table ------------------------------------------------------ */

/* A row applies to states with (s & mask) == value; the first match wins.
 * The new word is s | set & ~clear with the count moved by refs (REFS_ARG:
 * minus the event's reference argument).  DROP: DEALLOC if the count
 * reaches zero, else NOTHING. */
#define REFS_ARG 100
#define DROP 100

struct row {
    uint64_t mask, value;
    uint64_t set, clear;
    int refs;
    int store;
    int action;
};

#define END { 0, 0, 0, 0, 0, -1, 0 }

static const struct row to_running[] = {
    { CLOS, CLOS, RUN, SCHED, 0, 1, TS_CLOSE },
    { 0, 0, RUN, SCHED, 0, 1, TS_POLL },
    END };
static const struct row to_idle[] = {
    { CLOS, CLOS, 0, 0, 0, 0, TS_CLOSE },
    { SCHED, SCHED, 0, RUN, 0, 1, TS_REQUEUE },
    { 0, 0, 0, RUN, -1, 1, TS_IDLE },
    END };
/* FINISH: the completed bit decides COMPLETED vs CLOSED (two tables). */
static const struct row finish_ok[] = {
    { AWH | CLOS, AWH | CLOS, FIN, RUN | SCHED, 0, 1, TS_NOTIFY },
    { AWH, AWH, FIN | COMP, RUN | SCHED, 0, 1, TS_NOTIFY },
    { CLOS, CLOS, FIN, RUN | SCHED, REFS_ARG, 1, DROP },
    { 0, 0, FIN | COMP, RUN | SCHED, REFS_ARG, 1, DROP },
    END };
static const struct row finish_closed[] = {
    { AWH, AWH, FIN | CLOS, RUN | SCHED, 0, 1, TS_NOTIFY },
    { 0, 0, FIN | CLOS, RUN | SCHED, REFS_ARG, 1, DROP },
    END };
static const struct row wake_by_ref[] = {
    { COMP, COMP, 0, 0, 0, 0, TS_NOTHING },
    { CLOS, CLOS, 0, 0, 0, 0, TS_NOTHING },
    { FIN, FIN, 0, 0, 0, 0, TS_NOTHING },
    { SCHED, SCHED, 0, 0, 0, 1, TS_NOTHING },
    { RUN, RUN, SCHED, 0, 0, 1, TS_NOTHING },
    { 0, 0, SCHED, 0, 1, 1, TS_SCHEDULE },
    END };
static const struct row wake[] = {
    { COMP, COMP, 0, 0, -1, 1, DROP },
    { CLOS, CLOS, 0, 0, -1, 1, DROP },
    { FIN, FIN, 0, 0, -1, 1, DROP },
    { SCHED, SCHED, 0, 0, -1, 1, TS_NOTHING },
    { RUN, RUN, SCHED, 0, -1, 1, TS_NOTHING },
    { 0, 0, SCHED, 0, 0, 1, TS_SCHEDULE },
    END };
static const struct row abort_[] = {
    { HAND, 0, 0, 0, 0, 0, TS_MISUSE },
    { COMP, COMP, 0, 0, 0, 0, TS_NOTHING },
    { CLOS, CLOS, 0, 0, 0, 0, TS_NOTHING },
    { FIN, FIN, 0, 0, 0, 0, TS_NOTHING },
    { RUN, RUN, CLOS, 0, 0, 1, TS_NOTHING },
    { SCHED, SCHED, CLOS, 0, 0, 1, TS_NOTHING },
    { 0, 0, CLOS | RUN, 0, 0, 1, TS_CLOSE },
    END };
static const struct row claim_idle[] = {
    { SCHED, SCHED, 0, 0, 0, 0, TS_BUSY },
    { RUN, RUN, 0, 0, 0, 0, TS_BUSY },
    { COMP, COMP, 0, 0, 0, 0, TS_BUSY },
    { CLOS, CLOS, 0, 0, 0, 0, TS_BUSY },
    { FIN, FIN, 0, 0, 0, 0, TS_BUSY },
    { 0, 0, CLOS | RUN, 0, 0, 1, TS_CLOSE },
    END };
static const struct row close_queued[] = {
    { 0, 0, CLOS | RUN, 0, 0, 1, TS_CLOSE },
    END };
static const struct row register_[] = { /* the shard is added separately */
    { 0, 0, REG, 0, 1, 1, TS_NOTHING },
    END };
static const struct row ref_inc[] = {
    { 0, 0, 0, 0, 1, 1, TS_NOTHING },
    END };
static const struct row ref_dec[] = {
    { 0, 0, 0, 0, REFS_ARG, 1, DROP },
    END };
static const struct row release_handle[] = {
    { HAND, 0, 0, 0, 0, 0, TS_MISUSE },
    { 0, 0, 0, HAND, -1, 1, DROP },
    END };
/* Which pairs the word allows (the "from" column), written out again. */
static bool spec_allowed(enum ts_event ev, uint64_t s, uint64_t arg)
{
    uint64_t refs = task_refs(s);
    bool sched = s & SCHED, run = s & RUN, fin = s & FIN;
    /* holders the bits stand for: queue or poller, registry, handle */
    uint64_t held = (sched || (run && !(s & CLOS))) + ((s & REG) && !fin) + !!(s & HAND);
    switch (ev) {
    case TS_TO_RUNNING: return sched && !run && !fin;
    case TS_CLOSE_QUEUED: return sched && !run && !fin;
    case TS_TO_IDLE: return run && (s & REG) && !fin;
    case TS_FINISH: return run && !fin && refs >= (arg >> 1);
    case TS_WAKE_BY_REF: return refs >= 1;
    case TS_WAKE: return refs > held;
    case TS_ABORT: return refs >= 1;
    case TS_CLAIM_IDLE: return (s & REG) != 0;
    case TS_REGISTER: return run && !(s & REG) && !fin && refs >= 1;
    case TS_REF_INC: return refs >= 1;
    case TS_REF_DEC: return arg >= 1 && refs >= held + arg;
    case TS_RELEASE_HANDLE: return true;
    default: return false;
    }
}

static const struct row *spec_rows(enum ts_event ev, uint64_t arg)
{
    switch (ev) {
    case TS_TO_RUNNING: return to_running;
    case TS_TO_IDLE: return to_idle;
    case TS_FINISH: return arg & 1 ? finish_ok : finish_closed;
    case TS_WAKE_BY_REF: return wake_by_ref;
    case TS_WAKE: return wake;
    case TS_ABORT: return abort_;
    case TS_CLAIM_IDLE: return claim_idle;
    case TS_CLOSE_QUEUED: return close_queued;
    case TS_REGISTER: return register_;
    case TS_REF_INC: return ref_inc;
    case TS_REF_DEC: return ref_dec;
    case TS_RELEASE_HANDLE: return release_handle;
    default: return NULL;
    }
}

static uint64_t arg_refs(enum ts_event ev, uint64_t arg)
{
    return ev == TS_FINISH ? arg >> 1 : arg;
}

/* The expected step for an allowed pair. */
static struct ts_step spec(enum ts_event ev, uint64_t s, uint64_t arg)
{
    const struct row *r = spec_rows(ev, arg);
    for (; r->store >= 0; r++) {
        if ((s & r->mask) != r->value)
            continue;
        uint64_t next = (s | r->set) & ~r->clear;
        int64_t refs = (int64_t)task_refs(s);
        refs += r->refs == REFS_ARG ? -(int64_t)arg_refs(ev, arg) : r->refs;
        if (ev == TS_REGISTER)
            next |= arg << TASK_SHARD_SHIFT;
        next = (next & ((UINT64_C(1) << TASK_REF_SHIFT) - 1)) | (uint64_t)refs << TASK_REF_SHIFT;
        int action = r->action == DROP ? (refs ? TS_NOTHING : TS_DEALLOC) : r->action;
        if (!r->store)
            next = s;
        return (struct ts_step){ s, next, (enum ts_action)action, r->store != 0 };
    }
    ck_abort_msg("no row for event %d on %#lx", ev, (unsigned long)s);
    return (struct ts_step){ 0, 0, 0, 0 };
}

/* ---- the states and arguments the test drives --------------------------------- */

#define UNITS ((uint64_t)5 << TASK_UNITS_SHIFT)

static uint64_t make_state(unsigned flags, unsigned refs)
{
    uint64_t s = flags | UNITS | (uint64_t)refs << TASK_REF_SHIFT;
    if (flags & REG)
        s |= (uint64_t)3 << TASK_SHARD_SHIFT;
    return s;
}

static int event_args(enum ts_event ev, uint64_t args[4])
{
    switch (ev) {
    case TS_FINISH:
        args[0] = TS_FINISH_ARG(1, 1);
        args[1] = TS_FINISH_ARG(1, 2);
        args[2] = TS_FINISH_ARG(0, 1);
        args[3] = TS_FINISH_ARG(0, 2);
        return 4;
    case TS_REGISTER: args[0] = 7; return 1;
    case TS_REF_DEC: args[0] = 1; args[1] = 2; return 2;
    default: args[0] = 0; return 1;
    }
}

START_TEST(every_allowed_pair_matches_the_table)
{
    long checked = 0, refused = 0, valid_states = 0;
    for (unsigned flags = 0; flags <= TASK_FLAGS; flags++) {
        for (unsigned refs = 1; refs <= 5; refs++) {
            uint64_t s = make_state(flags, refs);
            if (!ts_valid(s))
                continue;
            valid_states++;
            for (int ev = 0; ev < TS_EVENTS; ev++) {
                uint64_t args[4];
                int nargs = event_args((enum ts_event)ev, args);
                for (int a = 0; a < nargs; a++) {
                    bool allowed = spec_allowed((enum ts_event)ev, s, args[a]);
                    ck_assert_msg(ts_allowed((enum ts_event)ev, s, args[a]) == allowed,
                                  "ts_allowed(%d, %#lx, %lu) disagrees with the table", ev,
                                  (unsigned long)s, (unsigned long)args[a]);
                    if (!allowed) {
                        refused++;
                        continue;
                    }
                    struct ts_step got = ts_transition((enum ts_event)ev, s, args[a]);
                    struct ts_step want = spec((enum ts_event)ev, s, args[a]);
                    ck_assert_msg(got.store == want.store && got.action == want.action &&
                                      (!want.store || got.next == want.next),
                                  "event %d on %#lx (arg %lu): got next %#lx store %d action %d, "
                                  "want next %#lx store %d action %d",
                                  ev, (unsigned long)s, (unsigned long)args[a],
                                  (unsigned long)got.next, got.store, got.action,
                                  (unsigned long)want.next, want.store, want.action);
                    /* The word stays one anyone may see, unless it died. */
                    if (got.store && got.action != TS_DEALLOC)
                        ck_assert_msg(ts_valid(got.next), "event %d on %#lx made %#lx", ev,
                                      (unsigned long)s, (unsigned long)got.next);
                    /* The size and (unless listing) the shard bits survive. */
                    ck_assert_uint_eq(got.next & (TASK_UNITS_MAX << TASK_UNITS_SHIFT), UNITS);
                    checked++;
                }
            }
        }
    }
    /* Not vacuous: the invariants leave many states and most pairs allowed. */
    ck_assert_int_gt(valid_states, 200);
    ck_assert_int_gt(checked, 3000);
    ck_assert_int_gt(refused, 1000);
}
END_TEST

/* ts_update and the fetch-ops produce what the pure functions say. */
START_TEST(helpers_apply_the_pure_functions)
{
    _Atomic uint64_t word;
    uint64_t s = make_state(SCHED | HAND, 2);
    atomic_init(&word, s);
    struct ts_step st = ts_update(&word, ts_to_running, 0, memory_order_acquire);
    ck_assert_int_eq(st.action, TS_POLL);
    ck_assert_uint_eq(st.prev, s);
    ck_assert_uint_eq(atomic_load(&word), ts_to_running(s, 0).next);
    ts_ref_inc(&word); /* a waker clone: beyond the run reference and the handle */
    ck_assert_uint_eq(task_refs(atomic_load(&word)), 3);
    st = ts_ref_dec(&word, 1);
    ck_assert_int_eq(st.action, TS_NOTHING);
    ck_assert_uint_eq(task_refs(atomic_load(&word)), 2);
    /* a step that stores nothing leaves the word alone */
    atomic_store(&word, make_state(FIN | COMP, 1));
    st = ts_update(&word, ts_abort, 0, memory_order_acq_rel);
    ck_assert(!st.store);
    ck_assert_int_eq(st.action, TS_MISUSE); /* no handle */
    ck_assert_uint_eq(atomic_load(&word), make_state(FIN | COMP, 1));
    atomic_store(&word, make_state(0, 1));
    st = ts_ref_dec(&word, 1);
    ck_assert_int_eq(st.action, TS_DEALLOC);
    ck_assert_uint_eq(st.next, make_state(0, 0));
}
END_TEST

/* A pair the word does not allow: in a debug build it trips the assertion
 * (an internal invariant, so it aborts); in a release build the check is
 * compiled out and the pure function just computes. */
START_TEST(disallowed_pairs_assert_only_in_debug_builds)
{
    int tried = 0;
    for (int ev = 0; ev < TS_EVENTS; ev++) {
        int per_event = 0;
        for (unsigned flags = 0; flags <= TASK_FLAGS && per_event < 2; flags++) {
            uint64_t s = make_state(flags, 1);
            uint64_t args[4];
            event_args((enum ts_event)ev, args);
            if (!ts_valid(s) || ts_allowed((enum ts_event)ev, s, args[0]))
                continue;
            pid_t pid = fork();
            ck_assert_int_ge(pid, 0);
            if (pid == 0) {
                /* the report on stderr is expected: silence it */
                if (!freopen("/dev/null", "w", stderr))
                    _exit(3);
                ts_transition((enum ts_event)ev, s, args[0]);
                _exit(0);
            }
            int status;
            ck_assert_int_eq(waitpid(pid, &status, 0), pid);
            if (WISP_DEBUG)
                ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                              "event %d on %#lx did not assert", ev, (unsigned long)s);
            else
                ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                              "event %d on %#lx: a release build checked it", ev, (unsigned long)s);
            per_event++;
            tried++;
        }
    }
    ck_assert_int_gt(tried, 10);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("state_table");
    TCase *tc = tcase_create("state_table");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, every_allowed_pair_matches_the_table);
    tcase_add_test(tc, helpers_apply_the_pure_functions);
    tcase_add_test(tc, disallowed_pairs_assert_only_in_debug_builds);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
