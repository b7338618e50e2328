/* wisp-trace-stats - summarises a wisp scheduler trace (the Chrome Trace
 * Event JSON that wisp_trace_write and WISP_TRACE=path produce), one row per
 * track: polls and their time, the longest poll, time parked, spawns, wakes
 * and steals.  It also checks that poll and parked spans are balanced.
 *
 * usage: wisp-trace-stats TRACE.json
 * Open the same file in Perfetto (ui.perfetto.dev) or chrome://tracing to
 * see the timeline. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TRACKS 4097

struct track {
    char name[32];
    unsigned long polls, spawns, wakes, steals, unbalanced;
    double poll_us, max_poll_us, parked_us;
    double poll_begin, park_begin;
    int in_poll, parked, seen;
};

static struct track tracks[MAX_TRACKS];

static int field_double(const char *line, const char *key, double *out)
{
    const char *p = strstr(line, key);
    return p && sscanf(p + strlen(key), "%lf", out) == 1;
}

static void account(struct track *t, const char *line, double ts)
{
    int begin = strstr(line, "\"ph\":\"B\"") != NULL, end = strstr(line, "\"ph\":\"E\"") != NULL;
    if (strstr(line, "\"name\":\"poll\"")) {
        if (begin) {
            t->unbalanced += t->in_poll;
            t->in_poll = 1;
            t->poll_begin = ts;
            t->polls++;
        } else if (end) {
            if (!t->in_poll) {
                t->unbalanced++;
                return;
            }
            double d = ts - t->poll_begin;
            t->poll_us += d;
            if (d > t->max_poll_us)
                t->max_poll_us = d;
            t->in_poll = 0;
        }
    } else if (strstr(line, "\"name\":\"parked\"")) {
        if (begin) {
            t->unbalanced += t->parked;
            t->parked = 1;
            t->park_begin = ts;
        } else if (end) {
            if (!t->parked) {
                t->unbalanced++;
                return;
            }
            t->parked_us += ts - t->park_begin;
            t->parked = 0;
        }
    } else if (strstr(line, "\"name\":\"spawn\"")) {
        t->spawns++;
    } else if (strstr(line, "\"name\":\"wake\"")) {
        t->wakes++;
    } else if (strstr(line, "\"name\":\"steal\"")) {
        t->steals++;
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: wisp-trace-stats TRACE.json\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    char line[1024];
    unsigned long events = 0;
    while (fgets(line, sizeof(line), f)) {
        double tid_d, ts = 0;
        if (!field_double(line, "\"tid\":", &tid_d) || tid_d < 0 || tid_d >= MAX_TRACKS)
            continue;
        struct track *t = &tracks[(unsigned)tid_d];
        t->seen = 1;
        if (strstr(line, "\"thread_name\"")) {
            const char *n = strstr(line, "\"args\":{\"name\":\"");
            if (n)
                sscanf(n + 16, "%31[^\"]", t->name);
            continue;
        }
        events++;
        if (field_double(line, "\"ts\":", &ts))
            account(t, line, ts);
    }
    fclose(f);
    printf("%-16s %10s %12s %12s %12s %9s %9s %8s %s\n", "track", "polls", "poll_ms", "max_poll_us",
           "parked_ms", "spawns", "wakes", "steals", "balanced");
    unsigned long bad = 0;
    for (unsigned i = 0; i < MAX_TRACKS; i++) {
        struct track *t = &tracks[i];
        if (!t->seen)
            continue;
        unsigned long unbalanced = t->unbalanced + (unsigned long)t->in_poll + (unsigned long)t->parked;
        bad += unbalanced;
        printf("%-16s %10lu %12.3f %12.1f %12.3f %9lu %9lu %8lu %s\n",
               t->name[0] ? t->name : "?", t->polls, t->poll_us / 1e3, t->max_poll_us,
               t->parked_us / 1e3, t->spawns, t->wakes, t->steals, unbalanced ? "NO" : "yes");
    }
    printf("%lu events\n", events);
    return bad ? 1 : 0;
}
