/* test_trace.c - tracing writes valid Chrome Trace JSON with balanced
 * begin/end events per worker, through the API and WISP_TRACE.  Skipped in
 * a build without tracing. */
#include "helpers.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    if (!WISP_TRACING)
        return skip_suite("built with WISP_TRACING=OFF");
    Suite *s = suite_create("trace");
    TCase *tc = tcase_create("trace");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, trace_api_writes_balanced_chrome_json);
    tcase_add_test(tc, trace_from_environment);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
