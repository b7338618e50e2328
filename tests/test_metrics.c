/* test_metrics.c - runtime metrics add up (polls >= tasks, spawned =
 * completed + cancelled once everything ended, per-worker sums = totals,
 * versioned size handling), and tracing writes valid Chrome Trace JSON with
 * balanced begin/end events per worker, through the API and WISP_TRACE. */
#include "helpers.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a workload: remote parents each spawn two yielding children -------- */

struct child {
    int yields;
};

static wisp_poll_t child_poll(void *f, wisp_context_t *cx, void **out)
{
    struct child *c = f;
    if (c->yields-- > 0)
        return wisp_yield(cx);
    *out = NULL;
    return WISP_READY;
}

struct parent {
    wisp_runtime_t *rt;
    wisp_join_t *a, *b;
    int phase;
};

static wisp_poll_t parent_poll(void *f, wisp_context_t *cx, void **out)
{
    struct parent *p = f;
    int st;
    void *v;
    if (p->phase == 0) {
        struct child c = { 3 };
        ck_assert_int_eq(wisp_spawn(p->rt, child_poll, &c, sizeof(c), NULL, &p->a), 0);
        ck_assert_int_eq(wisp_spawn(p->rt, child_poll, &c, sizeof(c), NULL, &p->b), 0);
        p->phase = 1;
    }
    if (p->phase == 1) {
        if (wisp_join_poll(p->a, cx, &st, &v) == WISP_PENDING)
            return WISP_PENDING;
        p->phase = 2;
    }
    if (wisp_join_poll(p->b, cx, &st, &v) == WISP_PENDING)
        return WISP_PENDING;
    *out = NULL;
    return WISP_READY;
}

static void run_parents(wisp_runtime_t *rt, int n)
{
    wisp_join_t **j = calloc((size_t)n, sizeof(*j));
    for (int i = 0; i < n; i++) {
        struct parent p = { rt, NULL, NULL, 0 };
        ck_assert_int_eq(wisp_spawn(rt, parent_poll, &p, sizeof(p), NULL, &j[i]), 0);
    }
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(wisp_join(j[i], NULL), 0);
    free(j);
}

static wisp_runtime_metrics_t read_metrics(wisp_runtime_t *rt, wisp_worker_metrics_t *per, unsigned n)
{
    wisp_runtime_metrics_t m = { .size = sizeof(m), .per_worker = per, .per_worker_len = n };
    ck_assert_int_eq(wisp_runtime_metrics(rt, &m), 0);
    return m;
}

START_TEST(metrics_add_up)
{
    wisp_runtime_t *rt = rt_new(2);
    enum { N = 500 };
    run_parents(rt, N);
    usleep(20000); /* workers finish their bookkeeping and park */
    wisp_worker_metrics_t per[2];
    wisp_runtime_metrics_t m = read_metrics(rt, per, 2);
    ck_assert_uint_eq(m.version, WISP_METRICS_VERSION);
    ck_assert_uint_eq(m.workers, 2);
    ck_assert_uint_eq(m.remote_spawns, N);
    ck_assert_uint_eq(m.total.spawns, 2 * N);
    ck_assert_uint_eq(m.total.completed, 3 * N);
    ck_assert_uint_eq(m.total.cancelled + m.remote_cancelled, 0);
    ck_assert_uint_eq(m.live_tasks, 0);
    ck_assert_uint_eq(m.injector_depth, 0);
    /* every task polled at least once; children polled 4 times each */
    ck_assert_uint_ge(m.total.polls, 3 * N + 2 * N * 3);
    ck_assert_uint_ge(m.total.wakes, 2 * N * 3); /* the children's yields */
    /* everything that entered the injector left it */
    ck_assert_uint_eq(m.total.injector_pops, m.remote_spawns + m.remote_wakes + m.total.overflows);
    ck_assert_uint_le(m.total.steals, m.total.steal_attempts);
    ck_assert_uint_ge(m.total.tasks_stolen, m.total.steals);
    ck_assert_uint_ge(m.total.parks, 1);
    ck_assert_uint_gt(m.total.busy_ns, 0);
    /* per-worker rows add up to the total */
    const uint64_t *t = (const uint64_t *)&m.total;
    for (size_t f = 0; f < sizeof(m.total) / sizeof(uint64_t); f++)
        ck_assert_uint_eq(((uint64_t *)&per[0])[f] + ((uint64_t *)&per[1])[f], t[f]);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

START_TEST(metrics_count_cancellations)
{
    wisp_runtime_t *rt = rt_new(2);
    enum { K = 100 };
    struct signal s;
    signal_init(&s);
    wisp_join_t *j[K];
    for (int i = 0; i < K; i++) {
        struct signal_future f = { &s, NULL };
        ck_assert_int_eq(wisp_spawn(rt, signal_future_poll, &f, sizeof(f), NULL, &j[i]), 0);
    }
    wait_for(&s.polls, K, 10);
    wisp_runtime_metrics_t m = read_metrics(rt, NULL, 0);
    ck_assert_uint_eq(m.live_tasks, K);
    for (int i = 0; i < K; i++) {
        while (!wisp_join_is_finished(j[i])) { /* idle: abort closes it here */
            wisp_join_abort(j[i]);
            usleep(100);
        }
        ck_assert_int_eq(wisp_join(j[i], NULL), -ECANCELED);
    }
    m = read_metrics(rt, NULL, 0);
    ck_assert_uint_eq(m.remote_spawns, K);
    ck_assert_uint_eq(m.total.cancelled + m.remote_cancelled, K);
    ck_assert_uint_eq(m.live_tasks, 0);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    signal_destroy(&s);
}
END_TEST

START_TEST(metrics_versioned_size)
{
    wisp_runtime_t *rt = rt_new(1);
    ck_assert_int_eq(wisp_runtime_metrics(rt, NULL), -EINVAL);
    ck_assert_int_eq(wisp_runtime_metrics(NULL, &(wisp_runtime_metrics_t){ .size = sizeof(wisp_runtime_metrics_t) }), -EINVAL);
    wisp_runtime_metrics_t m = { .size = 8 };
    ck_assert_int_eq(wisp_runtime_metrics(rt, &m), -EINVAL);
    /* a caller compiled with a larger struct: nothing past our size is written */
    struct {
        wisp_runtime_metrics_t m;
        uint64_t future_field;
    } big;
    memset(&big, 0xAB, sizeof(big));
    big.m.size = sizeof(big);
    big.m.per_worker = NULL;
    big.m.per_worker_len = 0;
    ck_assert_int_eq(wisp_runtime_metrics(rt, &big.m), 0);
    ck_assert_uint_eq(big.m.workers, 1);
    ck_assert_uint_eq(big.future_field, UINT64_C(0xABABABABABABABAB));
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- a minimal JSON validator ------------------------------------------- */

static const char *json_value(const char *p);

static const char *json_ws(const char *p)
{
    while (*p && isspace((unsigned char)*p))
        p++;
    return p;
}

static const char *json_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    for (; *p && *p != '"'; p++) {
        if ((unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\' && !*++p)
            return NULL;
    }
    return *p == '"' ? p + 1 : NULL;
}

static const char *json_number(const char *p)
{
    char *end;
    strtod(p, &end);
    return end == p ? NULL : end;
}

static const char *json_seq(const char *p, char close, int object)
{
    p = json_ws(p + 1);
    if (*p == close)
        return p + 1;
    for (;;) {
        if (object) {
            if (!(p = json_string(json_ws(p))))
                return NULL;
            p = json_ws(p);
            if (*p++ != ':')
                return NULL;
        }
        if (!(p = json_value(p)))
            return NULL;
        p = json_ws(p);
        if (*p == close)
            return p + 1;
        if (*p++ != ',')
            return NULL;
    }
}

static const char *json_value(const char *p)
{
    p = json_ws(p);
    switch (*p) {
    case '{': return json_seq(p, '}', 1);
    case '[': return json_seq(p, ']', 0);
    case '"': return json_string(p);
    case 't': return strncmp(p, "true", 4) ? NULL : p + 4;
    case 'f': return strncmp(p, "false", 5) ? NULL : p + 5;
    case 'n': return strncmp(p, "null", 4) ? NULL : p + 4;
    default: return json_number(p);
    }
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, f), n);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* Valid JSON; per tid, poll and parked spans are balanced and well
 * nested; every worker track is named. */
static void check_trace(const char *path, unsigned workers)
{
    char *buf = slurp(path);
    const char *end = json_value(buf);
    ck_assert_msg(end && *json_ws(end) == 0, "trace is not valid JSON");
    long open_poll[64] = { 0 }, open_park[64] = { 0 }, polls = 0;
    int named[64] = { 0 };
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned tid;
        char *t = strstr(line, "\"tid\":");
        if (!t || sscanf(t, "\"tid\":%u", &tid) != 1 || tid >= 64)
            continue;
        int is_poll = strstr(line, "\"name\":\"poll\"") != NULL;
        int is_park = strstr(line, "\"name\":\"parked\"") != NULL;
        long *open = is_poll ? open_poll : is_park ? open_park : NULL;
        if (strstr(line, "\"thread_name\""))
            named[tid] = 1;
        if (!open)
            continue;
        if (strstr(line, "\"ph\":\"B\"")) {
            ck_assert_int_eq(open[tid], 0); /* no nesting of the same span */
            ck_assert_int_eq(open_poll[tid] + open_park[tid], 0); /* polls and parks never overlap */
            open[tid]++;
            polls += is_poll;
        } else if (strstr(line, "\"ph\":\"E\"")) {
            ck_assert_int_eq(open[tid], 1);
            open[tid]--;
        }
    }
    for (unsigned i = 0; i < 64; i++) {
        ck_assert_int_eq(open_poll[i], 0);
        ck_assert_int_eq(open_park[i], 0);
    }
    for (unsigned i = 0; i <= workers; i++)
        ck_assert(named[i]);
    ck_assert_int_gt(polls, 0);
    free(buf);
}

START_TEST(trace_api_writes_balanced_chrome_json)
{
    char path[] = "/tmp/wisp-trace-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    wisp_runtime_t *rt = rt_new(2);
    ck_assert_int_eq(wisp_trace_write(rt, path), -ENODATA);
    ck_assert_int_eq(wisp_trace_start(NULL, 0), -EINVAL);
    ck_assert_int_eq(wisp_trace_start(rt, 1024), 0);
    ck_assert_int_eq(wisp_trace_start(rt, 1024), -EALREADY);
    run_parents(rt, 200); /* more events than the ring holds: it wraps */
    ck_assert_int_eq(wisp_trace_write(rt, path), 0);
    check_trace(path, 2);
    ck_assert_int_eq(wisp_trace_write(rt, "/nonexistent-dir/trace.json"), -ENOENT);
    /* stop, start again: a fresh recording in the same rings */
    ck_assert_int_eq(wisp_trace_stop(rt), 0);
    ck_assert_int_eq(wisp_trace_start(rt, 0), 0);
    run_parents(rt, 5);
    ck_assert_int_eq(wisp_trace_write(rt, path), 0);
    check_trace(path, 2);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    unlink(path);
}
END_TEST

START_TEST(trace_from_environment)
{
    char path[] = "/tmp/wisp-trace-env-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    setenv("WISP_TRACE", path, 1);
    wisp_runtime_t *rt = rt_new(3);
    unsetenv("WISP_TRACE");
    run_parents(rt, 20);
    setenv("WISP_TRACE", path, 1);
    ck_assert_int_eq(wisp_runtime_free(rt), 0); /* writes the file */
    unsetenv("WISP_TRACE");
    check_trace(path, 3);
    unlink(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, metrics_add_up);
    tcase_add_test(tc, metrics_count_cancellations);
    tcase_add_test(tc, metrics_versioned_size);
    tcase_add_test(tc, trace_api_writes_balanced_chrome_json);
    tcase_add_test(tc, trace_from_environment);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
