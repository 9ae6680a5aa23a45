// SPDX-License-Identifier: MIT
/*
 * Debug-build checks of the engine (PM_DEBUG, on in `make asan`): the lock
 * order of lock.h, through a per-thread record of held locks, and the
 * legal transitions of state.h. A violation aborts with what was wrong:
 * a test that trips it fails at the bug, not at its consequence.
 */
#ifdef PM_DEBUG
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node.h"

/* The longest run of page locks (home.c takes up to 256 pages, dlock
 * and llock each, ahead of a scan), and a few more. */
#define LK_MAX_HELD 600

static __thread struct {
	const pthread_mutex_t *m;
	enum lk_rank r;
} held[LK_MAX_HELD];
static __thread int nheld;

void lk_fatal(const char *fmt, ...)
{
	static const char pre[] = "pagemesh: engine check failed: ";
	char line[512];
	va_list ap;
	int k;

	memcpy(line, pre, sizeof(pre) - 1);
	va_start(ap, fmt);
	k = vsnprintf(line + sizeof(pre) - 1, sizeof(line) - sizeof(pre) - 1,
		      fmt, ap);
	va_end(ap);
	k = k < 0 ? 0 : k + (int)sizeof(pre) - 1;
	if (k > (int)sizeof(line) - 2)
		k = sizeof(line) - 2;
	line[k++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)k) < 0)
		abort();
	abort();
}

static void lk_record(pthread_mutex_t *m, enum lk_rank r)
{
	if (nheld == LK_MAX_HELD)
		lk_fatal("a thread holds more than %d locks", LK_MAX_HELD);
	held[nheld].m = m;
	held[nheld++].r = r;
}

void lk_lock(pthread_mutex_t *m, enum lk_rank r)
{
	for (int i = 0; i < nheld; i++) {
		/* Page locks of one kind nest in page order (lock.h). */
		bool same_stripes = held[i].r == r &&
				    (r == LK_DLOCK || r == LK_LLOCK);

		if (held[i].m == m)
			lk_fatal("lock of rank %d taken twice", r);
		if (held[i].r > r || (held[i].r == r && !same_stripes))
			lk_fatal("lock of rank %d taken while holding rank %d (lock.h has the order)",
				 r, held[i].r);
	}
	pthread_mutex_lock(m);
	lk_record(m, r);
}

bool lk_trylock(pthread_mutex_t *m, enum lk_rank r)
{
	if (pthread_mutex_trylock(m))
		return false;
	lk_record(m, r);
	return true;
}

void lk_unlock(pthread_mutex_t *m)
{
	for (int i = nheld - 1; i >= 0; i--)
		if (held[i].m == m) {
			held[i] = held[--nheld];
			pthread_mutex_unlock(m);
			return;
		}
	lk_fatal("unlock of a lock this thread does not hold");
}

bool lk_held(const pthread_mutex_t *m)
{
	for (int i = 0; i < nheld; i++)
		if (held[i].m == m)
			return true;
	return false;
}

/* Why the change old -> s of a page's local state is illegal, or NULL. */
static const char *ls_illegal(uint8_t old, uint8_t s)
{
	uint8_t om = old & LS_MASK, nm = s & LS_MASK;
	uint8_t of = old & ~LS_MASK, nf = s & ~LS_MASK;

	if (nm == LS_MASK)
		return "no such mapping";
	if ((nf & (LF_ACTED | LF_REFUSE)) && !(nf & LF_FETCHING))
		return "ACTED or REFUSE without FETCHING";
	if ((nf & LF_FETCHING) && (nf & LF_EVICTING))
		return "FETCHING and EVICTING at once";
	if ((nf & LF_WAITED) && !(nf & LF_EVICTING))
		return "WAITED without EVICTING";
	if ((nf & LF_EVICTING) && nm != LS_INVALID)
		return "EVICTING on a mapped page";
	if ((nf & LF_FETCHING) && !(of & LF_FETCHING) && of)
		return "a fetch started on a page with flags";
	if ((nf & LF_FETCHING) && !(of & LF_FETCHING) && nm != om)
		return "a fetch started while the mapping changed";
	if ((nf & LF_EVICTING) && !(of & LF_EVICTING) &&
	    (of || om == LS_INVALID))
		return "an eviction of a page that is not a plain copy";
	if (nm > om && !(of & LF_FETCHING))
		return "a mapping granted without a fetch in flight";
	return NULL;
}

void ls_check(struct pm_node *n, uint64_t page, uint8_t old, uint8_t s)
{
	const char *why;

	if (page >= n->npages)
		lk_fatal("lstate of page %llu beyond the region's %llu",
			 (unsigned long long)page,
			 (unsigned long long)n->npages);
	if (!lk_held(llock_of(n, page)))
		lk_fatal("page %llu: local state %#x -> %#x without its llock",
			 (unsigned long long)page, old, s);
	why = ls_illegal(old, s);
	if (why)
		lk_fatal("page %llu: local state %#x -> %#x: %s",
			 (unsigned long long)page, old, s, why);
}

void dir_check(struct pm_node *n, uint64_t page, const struct dir_entry *e,
	       uint8_t state, uint16_t owner, uint64_t sharers)
{
	const char *why = NULL;

	if (!lk_held(dlock_of(n, page)) && !e->busy)
		why = "neither its dlock held nor the entry busy";
	else if (state > DIR_EXCL)
		why = "no such state";
	else if (state == DIR_SHARED && !sharers)
		why = "SHARED with no sharer";
	else if (state != DIR_SHARED && sharers)
		why = "sharers outside SHARED";
	else if (state == DIR_EXCL && owner >= n->nodes)
		why = "EXCL by no node";
	else if (e->lost && state != DIR_UNOWNED)
		why = "a lost page held";
	if (why)
		lk_fatal("page %llu: directory %u/%u/%#llx -> %u/%u/%#llx: %s",
			 (unsigned long long)page, e->state, e->owner,
			 (unsigned long long)e->sharers, state, owner,
			 (unsigned long long)sharers, why);
}
#endif
