/* select.c - select and join_all over any futures (wisp/sync.h).
 *
 * Owns: the wisp_select_t and wisp_join_all_t state.  Touches: the
 * caller's branch array (a finished or dropped branch gets poll NULL).
 *
 * select polls its live branches in turn (from a start that moves on by
 * one each poll unless BIASED) and stops at the first READY: so at most
 * one branch completes, and the branches polled before it in that pass
 * returned PENDING, having taken nothing (wisp's futures complete only by
 * returning READY).  It then drops every other branch at once, which is
 * where their cancellation rules apply (a receive gives its claim on a
 * message to the next receiver, a lock passes its turn on). */
#include <errno.h>

#include <wisp/sync.h>

#include "util.h"

/* Where a select starts: a per-thread counter, so that a select made
 * afresh each round (the usual loop) does not favour branch 0. */
static WISP_TLS size_t select_seed;

static void branch_drop(wisp_branch_t *b)
{
    if (b->poll && b->drop)
        b->drop(b->future);
    b->poll = NULL;
    b->drop = NULL;
}

int wisp_select_init(wisp_select_t *s, wisp_branch_t *branches, size_t n, unsigned flags)
{
    if (!s || (n && !branches) || (flags & ~WISP_SELECT_BIASED))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!branches[i].poll)
            return -EINVAL;
    s->branches = branches;
    s->n = n;
    s->start = n ? select_seed++ % n : 0;
    s->winner = -1;
    s->flags = flags;
    s->output = NULL;
    return 0;
}

wisp_poll_t wisp_select_poll(void *ps, wisp_context_t *cx, void **output)
{
    wisp_select_t *s = ps;
    if (s->winner >= 0 || s->n == 0) {
        if (output)
            *output = s->output;
        return WISP_READY;
    }
    size_t start = s->flags & WISP_SELECT_BIASED ? 0 : s->start;
    if (!(s->flags & WISP_SELECT_BIASED) && ++s->start == s->n)
        s->start = 0;
    for (size_t k = 0; k < s->n; k++) {
        size_t i = start + k < s->n ? start + k : start + k - s->n;
        wisp_branch_t *b = &s->branches[i];
        if (!b->poll)
            continue;
        void *out = NULL;
        if (b->poll(b->future, cx, &out) == WISP_PENDING)
            continue;
        s->winner = (long)i;
        s->output = out;
        for (size_t j = 0; j < s->n; j++)
            if (j != i)
                branch_drop(&s->branches[j]);
        if (output)
            *output = out;
        return WISP_READY;
    }
    return WISP_PENDING;
}

long wisp_select_winner(const wisp_select_t *s)
{
    return s ? s->winner : -1;
}

void wisp_select_drop(void *ps)
{
    wisp_select_t *s = ps;
    for (size_t i = 0; i < s->n; i++)
        branch_drop(&s->branches[i]);
}

int wisp_join_all_init(wisp_join_all_t *j, wisp_branch_t *branches, void **outputs, size_t n)
{
    if (!j || (n && (!branches || !outputs)))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!branches[i].poll)
            return -EINVAL;
    j->branches = branches;
    j->outputs = outputs;
    j->n = n;
    j->remaining = n;
    return 0;
}

wisp_poll_t wisp_join_all_poll(void *pj, wisp_context_t *cx, void **output)
{
    wisp_join_all_t *j = pj;
    for (size_t i = 0; i < j->n && j->remaining; i++) {
        wisp_branch_t *b = &j->branches[i];
        if (!b->poll)
            continue;
        void *out = NULL;
        if (b->poll(b->future, cx, &out) == WISP_PENDING)
            continue;
        j->outputs[i] = out;
        branch_drop(b);
        j->remaining--;
    }
    if (j->remaining)
        return WISP_PENDING;
    if (output)
        *output = NULL;
    return WISP_READY;
}

void wisp_join_all_drop(void *pj)
{
    wisp_join_all_t *j = pj;
    for (size_t i = 0; i < j->n; i++)
        branch_drop(&j->branches[i]);
}
