/* test_config.c - wisp_runtime_config_t grows without breaking anyone:
 * the compound literal and NULL keep working; a program built against the
 * first header (the struct had only `workers`) passes its size and nothing
 * past it is read; one built against a newer header may pass fields this
 * library does not know only as zeros; every field is honoured. */
#include "helpers.h"

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

START_TEST(literal_and_null_work)
{
    wisp_runtime_t *rt;
    ck_assert_int_eq(wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .workers = 2 }), 0);
    ck_assert_uint_eq(wisp_runtime_workers(rt), 2);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    ck_assert_int_eq(wisp_runtime_new(&rt, NULL), 0);
    ck_assert_uint_ge(wisp_runtime_workers(rt), 1);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    /* a designated initializer of several fields goes through the macro */
    ck_assert_int_eq(wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .workers = 1, .queue_capacity = 8 }), 0);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* The first layout: `workers` alone, followed here by garbage that an old
 * program's memory might hold. */
START_TEST(first_layout_reads_workers_only)
{
    struct { unsigned workers; unsigned char garbage[60]; } old;
    memset(&old, 0xA5, sizeof(old));
    old.workers = 3;
    wisp_runtime_t *rt;
    ck_assert_int_eq(wisp_runtime_new_sized(&rt, (const wisp_runtime_config_t *)&old, sizeof(unsigned)), 0);
    ck_assert_uint_eq(wisp_runtime_workers(rt), 3);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    /* the function itself (through a pointer, as an old binary calls it) */
    int (*fn)(wisp_runtime_t **, const wisp_runtime_config_t *) = wisp_runtime_new;
    ck_assert_int_eq(fn(&rt, (const wisp_runtime_config_t *)&old), 0);
    ck_assert_uint_eq(wisp_runtime_workers(rt), 3);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    /* too small to hold even `workers` */
    ck_assert_int_eq(wisp_runtime_new_sized(&rt, (const wisp_runtime_config_t *)&old, 2), -EINVAL);
}
END_TEST

/* A newer header's struct: what this library knows, then more fields. */
struct newer_config {
    wisp_runtime_config_t known;
    uint64_t future_field;
};

START_TEST(newer_layout_needs_unknown_fields_zero)
{
    wisp_runtime_t *rt;
    struct newer_config c = { .known = { .workers = 2 } };
    ck_assert_int_eq(wisp_runtime_new_sized(&rt, &c.known, sizeof(c)), 0);
    ck_assert_uint_eq(wisp_runtime_workers(rt), 2);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    c.future_field = 1; /* asks for something this library cannot do */
    rt = (wisp_runtime_t *)0x1;
    ck_assert_int_eq(wisp_runtime_new_sized(&rt, &c.known, sizeof(c)), -EINVAL);
    ck_assert_ptr_null(rt);
}
END_TEST

START_TEST(bad_fields_refused)
{
    wisp_runtime_t *rt;
    ck_assert_int_eq(wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .queue_capacity = 3 }), -EINVAL);
    ck_assert_int_eq(wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .queue_capacity = 1 }), -EINVAL);
    ck_assert_int_eq(wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .queue_capacity = 1u << 30 }), -EINVAL);
    ck_assert_int_eq(wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .stack_size = 100 }), -EINVAL);
    ck_assert_int_eq(wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .cpus = 3 }), -EINVAL);
    ck_assert_int_eq(wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .io = 3 }), -EINVAL);
    ck_assert_int_eq(wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .ring_entries = 65536 }), -EINVAL);
}
END_TEST

/* ---- the fields do what they say ----------------------------------------------- */

struct probe {
    _Atomic size_t stack;
    _Atomic long done;
};

static wisp_poll_t probe_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx, (void)out;
    struct probe *p = *(struct probe **)f;
    pthread_attr_t attr;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstacksize(&attr, &size);
        pthread_attr_destroy(&attr);
    }
    atomic_store(&p->stack, size);
    atomic_store(&p->done, 1);
    return WISP_READY;
}

static int count_threads_named(const char *prefix)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        char path[300], name[64] = "";
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fgets(name, sizeof(name), f) && !strncmp(name, prefix, strlen(prefix)))
                n++;
            fclose(f);
        }
    }
    if (d)
        closedir(d);
    return n;
}

/* Each worker reports the CPUs it may run on. */
struct affinity_probe {
    _Atomic int ncpus[2];
    _Atomic int cpu[2];
    _Atomic long done;
};

static wisp_poll_t affinity_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx, (void)out;
    struct affinity_probe *p = *(struct affinity_probe **)f;
    int i = wisp_worker_index();
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        atomic_store(&p->ncpus[i], CPU_COUNT(&set));
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &set)) {
                atomic_store(&p->cpu[i], c);
                break;
            }
    }
    /* hold this worker until the other one ran the other probe */
    atomic_fetch_add(&p->done, 1);
    while (atomic_load(&p->done) < 2)
        sched_yield();
    return WISP_READY;
}

/* Runs the probe on both workers: the first probe holds its worker until
 * the second has run, so the second runs on the other worker. */
static void probe_affinity(unsigned cpus, struct affinity_probe *p)
{
    wisp_runtime_t *rt;
    ck_assert_int_eq(wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .workers = 2, .cpus = cpus }), 0);
    atomic_store(&p->done, 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(wisp_spawn(rt, affinity_poll, &p, sizeof(p), NULL, NULL), 0);
    wait_for(&p->done, 2, 10);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}

START_TEST(cpus_spread_pin_or_leave_workers)
{
    cpu_set_t mine;
    ck_assert_int_eq(sched_getaffinity(0, sizeof(mine), &mine), 0);
    int ncpus = CPU_COUNT(&mine);
    struct affinity_probe p = { 0 }, *pp = &p;
    probe_affinity(WISP_CPUS_SPREAD, pp); /* placed, then given the whole mask back */
    ck_assert_int_eq(atomic_load(&p.ncpus[0]), ncpus);
    ck_assert_int_eq(atomic_load(&p.ncpus[1]), ncpus);
    probe_affinity(WISP_CPUS_OS, pp);
    ck_assert_int_eq(atomic_load(&p.ncpus[0]), ncpus);
    probe_affinity(WISP_CPUS_PIN, pp);
    if (ncpus >= 2) { /* one CPU each, distinct */
        ck_assert_int_eq(atomic_load(&p.ncpus[0]), 1);
        ck_assert_int_eq(atomic_load(&p.ncpus[1]), 1);
        ck_assert_int_ne(atomic_load(&p.cpu[0]), atomic_load(&p.cpu[1]));
    } else {
        ck_assert_int_eq(atomic_load(&p.ncpus[0]), ncpus);
    }
}
END_TEST

START_TEST(stack_size_and_thread_names_apply)
{
    wisp_runtime_t *rt;
    size_t want = 4u << 20;
    ck_assert_int_eq(wisp_runtime_new(&rt, &(wisp_runtime_config_t){
                         .workers = 2, .stack_size = want, .thread_name = "cfgtest" }),
                     0);
    struct probe p = { 0, 0 }, *pp = &p;
    ck_assert_int_eq(wisp_spawn(rt, probe_poll, &pp, sizeof(pp), NULL, NULL), 0);
    wait_for(&p.done, 1, 10);
    ck_assert_uint_ge(atomic_load(&p.stack), want);
    ck_assert_int_eq(count_threads_named("cfgtest-"), 2);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    /* the default name */
    ck_assert_int_eq(wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .workers = 1 }), 0);
    ck_assert_int_ge(count_threads_named("wisp-0"), 1);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, literal_and_null_work);
    tcase_add_test(tc, first_layout_reads_workers_only);
    tcase_add_test(tc, newer_layout_needs_unknown_fields_zero);
    tcase_add_test(tc, bad_fields_refused);
    tcase_add_test(tc, stack_size_and_thread_names_apply);
    tcase_add_test(tc, cpus_spread_pin_or_leave_workers);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
