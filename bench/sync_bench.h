/* sync_bench.h - the workloads of sync_bench.c, for wisp_bench.c's table. */
#ifndef WISP_SYNC_BENCH_H
#define WISP_SYNC_BENCH_H

#include <wisp/wisp.h>

double bench_ping_pong(wisp_runtime_t *rt, long n, long *ops);
double bench_ping_pong_rounds(wisp_runtime_t *rt, long n, long *ops);
double bench_chan_mpsc(wisp_runtime_t *rt, long n, long *ops);
double bench_mutex_contended(wisp_runtime_t *rt, long n, long *ops);

#endif
