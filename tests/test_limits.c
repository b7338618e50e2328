/* test_limits.c - running out of memory and threads (RLIMIT_AS): runtime
 * creation and spawn fail with their documented errors, leaving nothing
 * running and nothing spawned.  Skipped in sanitizer builds, which reserve
 * huge address ranges. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static _Atomic long drops;

static void count_drop(void *f)
{
    (void)f;
    atomic_fetch_add(&drops, 1);
}

static wisp_poll_t ready_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)f;
    (void)cx;
    *out = NULL;
    return WISP_READY;
}

/* ---- running out of memory and threads ---------------------------------- */

static void limit_address_space(size_t extra)
{
    struct rlimit rl;
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    ck_assert_int_eq(fscanf(f, "%lu", &pages), 1);
    fclose(f);
    rl.rlim_cur = rl.rlim_max = pages * 4096 + extra;
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
}

START_TEST(out_of_threads_leaves_nothing_running)
{
    /* Each thread needs an 8 MiB stack: 64 MiB of room cannot hold 1000. */
    int threads_before = process_threads();
    limit_address_space(64u << 20);
    wisp_runtime_t *rt = (wisp_runtime_t *)0x1;
    wisp_runtime_config_t cfg = { .workers = 1000 };
    int rc = wisp_runtime_new(&rt, &cfg);
    ck_assert_msg(rc == -EAGAIN || rc == -ENOMEM, "rc %d", rc);
    ck_assert_ptr_null(rt);
    ck_assert_int_eq(process_threads(), threads_before);
}
END_TEST

START_TEST(out_of_memory_spawn_fails_cleanly)
{
    wisp_runtime_t *rt = rt_new(1);
    limit_address_space(256u << 20);
    size_t big = 4u << 20;
    char *payload = calloc(1, big);
    ck_assert_ptr_nonnull(payload);
    atomic_store(&drops, 0);
    long ok = 0;
    int rc = 0;
    wisp_join_t *joins[1024];
    for (long i = 0; i < 1024; i++) {
        rc = wisp_spawn(rt, ready_poll, payload, big, count_drop, &joins[i]);
        if (rc)
            break;
        ok++;
    }
    ck_assert_int_eq(rc, -ENOMEM);
    ck_assert_int_lt(ok, 1024);
    for (long i = 0; i < ok; i++)
        ck_assert_int_eq(wisp_join(joins[i], NULL), 0);
    ck_assert_int_eq(atomic_load(&drops), ok); /* only the spawned ones */
    free(payload);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

int main(void)
{
    if (WISP_TEST_SANITIZED)
        return skip_suite("a sanitizer build reserves more address space than RLIMIT_AS allows");
    Suite *s = suite_create("limits");
    TCase *tc = tcase_create("limits");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, out_of_threads_leaves_nothing_running);
    tcase_add_test(tc, out_of_memory_spawn_fails_cleanly);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
