// SPDX-License-Identifier: MIT
/*
 * The home giving its own pages up ahead of a scan: when another node reads
 * or writes the pages the home wrote in order, the next ones are
 * write-protected (read) or handed back to the store (write) in one call
 * each, so the scan's later faults find nothing to undo. Called from
 * home.c's act_on with the page's dlock and llock held; the run's pages are
 * only taken by trylock (lock.h: no cycle).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "node.h"

/*
 * Write-protecting a page costs a TLB flush, and on these VMs (a PVM guest)
 * each page flushed costs ~35-45 us while a flush of more than 33 pages
 * (the kernel's tlb_single_page_flush_ceiling) is one full flush of ~80-100
 * us. So when another node reads the home's own written pages in sequence,
 * the home write-protects the run ahead of it in one call: the next reads
 * find the page shared and pay no flush. A run shorter than this gains
 * nothing (each of its pages is flushed on its own), so it is not taken.
 */
#define DG_AHEAD_MIN 34
/* 64 pages cost ~110 us (1.7 us a page), 256 ~145 us (0.6 us a page),
 * measured on the bench; < PM_NLOCKS / 2, and trylocks: no lock cycle. */
#define DG_AHEAD_MAX 256

/* Is q a page this home holds exclusively, idle, that it may downgrade?
 * Locks its dlock and llock when so (trylock: the caller holds others). */
static bool dg_take(struct pm_node *n, uint64_t q)
{
	struct dir_entry *e = dir_of(n, q);

	if (!lk_trylock(dlock_of(n, q), LK_DLOCK))
		return false;
	if (e->busy || e->lost || e->bounce || e->state != DIR_EXCL ||
	    e->owner != n->id || !lk_trylock(llock_of(n, q), LK_LLOCK)) {
		lk_unlock(dlock_of(n, q));
		return false;
	}
	if (n->lstate[q] != LS_EXCL) {
		lk_unlock(llock_of(n, q));
		lk_unlock(dlock_of(n, q));
		return false;
	}
	return true;
}

/* Release the pages dg_take took, from end - 1 down to first. */
static void dg_release(struct pm_node *n, uint64_t first, uint64_t end)
{
	for (uint64_t q = end; q-- > first;) {
		lk_unlock(llock_of(n, q));
		lk_unlock(dlock_of(n, q));
	}
}

/* Take the run of pages from first that dg_take allows, at most max; the
 * end of the run, or first (nothing held) when it is shorter than min. */
static uint64_t dg_take_run(struct pm_node *n, uint64_t first, uint64_t max,
			    uint64_t min)
{
	uint64_t end = first, last = n->home_first + n->home_count;

	while (end < last && end - first < max && dg_take(n, end))
		end++;
	if (end - first < min) {
		dg_release(n, first, end);
		return first;
	}
	return end;
}

/*
 * The home's own exclusive copy of page becomes the data others read
 * (dlock and llock held, the page mapped exclusively here). When `who`
 * read the page before this one, it is scanning: the home's exclusive
 * pages after this one are write-protected with it in one call
 * (DG_AHEAD_MIN has why).
 */
void home_downgrade_own(struct pm_node *n, uint64_t page, int who)
{
	struct dir_entry *e = dir_of(n, page), *prev;
	uint64_t end = page + 1;

	prev = page > n->home_first ? dir_of(n, page - 1) : NULL;
	/* The run counts this page too (DG_AHEAD_MIN, DG_AHEAD_MAX). */
	if (who != n->id && n->lstate[page] == LS_EXCL && prev &&
	    prev->state == DIR_SHARED && (prev->sharers & (1ull << who)))
		end = dg_take_run(n, page + 1, DG_AHEAD_MAX - 1,
				  DG_AHEAD_MIN - 1);
	STAT_ADD(n, downgrades_received, 1);
	if (end == page + 1) {
		uffd_protect(n, page, true, NULL);
		ls_set(n, page, LS_SHARED | (n->lstate[page] & ~LS_MASK));
		goto out;
	}
	/* Flags were ruled out above: page is plain LS_EXCL. */
	uffd_wp(n, page, end - page, true);
	ls_set(n, page, LS_SHARED);
	for (uint64_t q = end; q-- > page + 1;) {
		struct dir_entry *x = dir_of(n, q);

		ls_set(n, q, LS_SHARED);
		dir_set(n, q, DIR_SHARED, 0, 1ull << n->id);
		x->written = 1;
		x->store_behind = 1;
		lk_unlock(llock_of(n, q));
		lk_unlock(dlock_of(n, q));
	}
	STAT_ADD(n, downgrades_ahead, end - page - 1);
out:
	e->written = 1;
	e->store_behind = 1;
}

/*
 * The write analogue of downgrade_own's run. Another node writing the
 * home's own pages in sequence takes each from the home with a recall, and
 * each recall unmaps one page: one TLB flush, ~35-45 us here and far more
 * when the home's threads run on both CPUs (a cross-CPU shootdown). So when
 * `who` was granted the page before this one exclusively, the home's
 * exclusive pages after it are given up in one go: write-protected (one
 * flush), copied into the store, unmapped (one more flush). Their entries
 * then have no holder and their data in the store, and the writer's next
 * faults are granted from there with nothing to undo. Called with page's
 * dlock and llock held; pages are only taken by trylock (no lock cycle).
 */
#define RC_AHEAD_MAX 128

void home_recall_ahead(struct pm_node *n, uint64_t page, int who)
{
	uint64_t first = page + 1, end;
	struct dir_entry *prev;
	size_t len;

	prev = page > n->home_first ? dir_of(n, page - 1) : NULL;
	if (who == n->id || !prev || prev->state != DIR_EXCL ||
	    prev->owner != who)
		return;
	end = dg_take_run(n, first, RC_AHEAD_MAX, DG_AHEAD_MIN);
	if (end == first)
		return;
	len = (end - first) * PM_PAGE_SIZE;
	if (uffd_wp(n, first, end - first, true)) {
		dg_release(n, first, end);
		return;
	}
	/* One call instead of a fault per fresh store page. */
	(void)madvise(store_of(n, first), len, MADV_POPULATE_WRITE);
	for (uint64_t q = first; q < end; q++)
		memcpy(store_of(n, q), page_addr(n, q), PM_PAGE_SIZE);
	if (uffd_unmap(n, first, end - first)) {
		uffd_wp(n, first, end - first, false);
		dg_release(n, first, end);
		return;
	}
	for (uint64_t q = first; q < end; q++) {
		struct dir_entry *x = dir_of(n, q);

		ls_set(n, q, LS_INVALID);
		x->written = 1;
		x->store_behind = 0;
		dir_set(n, q, DIR_UNOWNED, 0, 0);
	}
	dg_release(n, first, end);
	/* Local threads that met the write-protect refault and ask. */
	uffd_wake(n, first, end - first);
	STAT_ADD(n, recalls_ahead, end - first);
}
