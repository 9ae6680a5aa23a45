// SPDX-License-Identifier: MIT
/*
 * Bounded local cache (pager.local_limit): keep at most that much of the
 * region mapped here. A background thread evicts in batches when the
 * resident count passes a high watermark, so a fault rarely waits; a fault
 * that finds no room evicts for itself.
 *
 * Eviction drops the page here first (write-protect, copy, MADV_DONTNEED),
 * then tells the home: an exclusive copy goes back alone (EVICT with its
 * data); read-only copies, whose data the home has, are listed many to a
 * message, which the home answers without waiting for busy pages.
 * Until the home has answered, an action for the page is answered from the
 * data in flight: the home may still list us as its holder, and it must not
 * wait for our EVICT, which is queued behind that action's transaction.
 *
 * Victims (pager.policy): "2q", the default, keeps two FIFO rings. A page
 * starts on probation; one that faults again within limit/8 evictions of
 * its own eviction was in use when it went, and goes to the protected
 * ring, which holds up to 3/4 of the limit and hands its oldest back to
 * probation when over. Victims come from probation. So a hot set up to
 * 3/4 of the limit stays mapped while scans and cold pages stream through
 * probation. "fifo" is one ring in mapping order; "clock" a hand over the
 * region giving a second chance to pages mapped since its last pass.
 * The only access information here is the fault that maps a page (no
 * idle-page tracking in this kernel, PAGEMAP_SCAN reports writes, not
 * reads, and re-arming access faults costs a TLB flush per page), so the
 * re-fault distance is what tells a used page from a passing one.
 * Chosen by measurement (fault_bench -s: 64 MiB through a 16 MiB limit,
 * faults per pass of 16384 touches; 2q / fifo / clock): hot set of 12
 * MiB, first pass after a random scan 3574 / 4765 / 4847, settled 2447 /
 * 3816 / 3625 (1.5x FIFO's touches/s); sequential 14010 / 14562 / 14699;
 * uniform random 12691 / 12542 / 12563. The shares come from
 * bench/evict_sim.py, which replays the bench's touches through these
 * policies within 3% of the real counts (--sweep): for hot sets of 1/2
 * to 5/4 of the limit, 3/4 and limit/8 take fewer faults than FIFO and
 * CLOCK on both hot rows. Longer distances trade the first pass for the
 * settled ones (at limit/2, settled up to a third fewer faults but the
 * first pass worse than FIFO: pages of the random scan get promoted and
 * crowd the hot set out); shorter ones the reverse, by less; a 7/8 share
 * helps some hot-set sizes and hurts others. Tried and dropped: a CLOCK
 * that kept re-faulted pages for three laps (5048-5080 faults on the
 * first hot pass). 2q costs 13 bytes per region page, fifo 5, clock 1.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "node.h"

static void fifo_mapped(struct pm_node *n, uint64_t page);

static uint64_t margin(const struct pm_node *n)
{
	uint64_t m = n->limit_pages / 8;

	return m > 512 ? 512 : m ? m : 1;
}

void evict_note_install(struct pm_node *n, uint64_t page)
{
	uint64_t r = __atomic_add_fetch(&n->resident, 1, __ATOMIC_RELAXED);

	if (n->fifo_in)
		fifo_mapped(n, page);
	else if (n->ref)
		__atomic_store_n(&n->ref[page], 1, __ATOMIC_RELAXED);

	if (n->limit_pages && r > n->limit_pages - margin(n) / 2) {
		lk_lock(&n->ev_lock, LK_EV);
		pthread_cond_signal(&n->ev_cv);
		lk_unlock(&n->ev_lock);
	}
}

void evict_note_drop(struct pm_node *n)
{
	__atomic_sub_fetch(&n->resident, 1, __ATOMIC_RELAXED);
}

static bool evict_remote(struct pm_node *n, uint64_t page,
			 struct evicting *ev)
{
	struct pm_proto_req rq = {
		.op = PM_OP_EVICT, .from = (uint16_t)n->id, .page = page,
	};
	struct pm_proto_rep rp;
	uint8_t s;
	int r;

	lk_lock(llock_of(n, page), LK_LLOCK);
	s = n->lstate[page];
	if ((s & LS_MASK) == LS_INVALID || (s & ~LS_MASK)) {
		lk_unlock(llock_of(n, page));
		return false;
	}
	ev->page = page;
	ev->excl = (s & LS_MASK) == LS_EXCL;
	uffd_drop(n, page, ev->excl, ev->data);
	uffd_wake(n, page, 1);
	ls_set(n, page, LS_INVALID | LF_EVICTING);
	holder_evicting_add(n, ev);
	lk_unlock(llock_of(n, page));

	rq.flags = ev->excl ? PM_RQ_DIRTY : 0;
	/* Sent again while the home lives: a second EVICT finds nothing. */
	r = node_call_alive(n, page_home(n, page), &rq,
			    ev->excl ? ev->data : NULL,
			    ev->excl ? PM_PAGE_SIZE : 0, &rp, NULL, NULL, true);
	if (r && ev->excl)
		pm_err("page %llu: written back to home node %d: %s; its data is lost",
		       (unsigned long long)page, page_home(n, page),
		       strerror(-r));
	else if (ev->excl)
		STAT_ADD(n, writebacks, 1);

	lk_lock(llock_of(n, page), LK_LLOCK);
	holder_evicting_remove(n, ev);
	ls_set(n, page, n->lstate[page] & ~(LF_EVICTING | LF_WAITED));
	lk_unlock(llock_of(n, page));
	/* Threads that faulted on it meanwhile were left waiting. */
	uffd_wake(n, page, 1);
	return true;
}

/*
 * Read-only copies homed elsewhere, chosen as victims and locked (llock,
 * by trylock: the batch never waits for a lock while it holds others).
 * They go with one process_madvise(): the kernel gathers the TLB flush of
 * every range into one, and on these VMs each page of a flush costs
 * ~5-45 us while a flush of more than 33 pages is one full flush (~80 us).
 * Their homes hear in one list each (the home has their data; only its
 * directory cares). Until a home has answered, each page stays
 * LF_EVICTING, so a fault on it waits: a new grant must not reach the
 * home before the list that takes us out of the page's sharers.
 */
#define CLEAN_BATCH 64

/* "2q": the protected ring's share of the limit, and how many evictions
 * after its own a page may come back and count as in use (chosen with
 * bench/evict_sim.py and fault_bench -s; the file header has the numbers). */
#define TWOQ_PROTECTED(n) ((n)->limit_pages - (n)->limit_pages / 4)
#define TWOQ_DISTANCE(n) ((n)->limit_pages / 8)

struct clean_batch {
	int count;
	uint64_t pages[CLEAN_BATCH];
	uint64_t list[CLEAN_BATCH];	/* one home's part, for the message */
	struct iovec iov[CLEAN_BATCH];
};

static void clean_send(struct pm_node *n, int home, const uint64_t *pages,
		       uint32_t count)
{
	struct pm_proto_req rq = {
		.op = PM_OP_EVICT, .flags = PM_RQ_CLEAN_LIST,
		.from = (uint16_t)n->id, .arg = count, .page = pages[0],
	};
	struct pm_proto_rep rp;
	int r;

	/* A clean copy's home has its data: a failure loses nothing. */
	r = node_call_alive(n, home, &rq, pages,
			    count * (uint32_t)sizeof(uint64_t), &rp, NULL, NULL,
			    true);
	if (r)
		pm_dbg("clean evictions to node %d: %s", home, strerror(-r));
}

/* Drop the batch here, tell each home, then let faults on it proceed. */
static void clean_flush(struct pm_node *n, struct clean_batch *b)
{
	size_t total = 0;
	int niov = 0, i;
	ssize_t r = -1;

	if (!b->count)
		return;
	/* Ascending, so neighbours merge into one range. */
	for (i = 1; i < b->count; i++)
		for (int k = i; k > 0 && b->pages[k - 1] > b->pages[k]; k--) {
			uint64_t x = b->pages[k];

			b->pages[k] = b->pages[k - 1];
			b->pages[k - 1] = x;
		}
	for (i = 0; i < b->count; i++) {
		uint8_t *a = page_addr(n, b->pages[i]);

		if (niov && (uint8_t *)b->iov[niov - 1].iov_base +
					    b->iov[niov - 1].iov_len == a) {
			b->iov[niov - 1].iov_len += PM_PAGE_SIZE;
		} else {
			b->iov[niov].iov_base = a;
			b->iov[niov++].iov_len = PM_PAGE_SIZE;
		}
		total += PM_PAGE_SIZE;
	}
	if (n->ev_pidfd_open)
		r = syscall(SYS_process_madvise, n->ev_pidfd, b->iov,
			    (size_t)niov, MADV_DONTNEED, 0);
	if (r != (ssize_t)total) {
		/* Older kernel, or a partial answer: one call per range
		 * (again on a dropped range is harmless: we hold its locks,
		 * nothing was installed there). */
		for (i = 0; i < niov; i++)
			if (madvise(b->iov[i].iov_base, b->iov[i].iov_len,
				    MADV_DONTNEED))
				pm_err("pages at %p+%zu: MADV_DONTNEED: %s",
				       b->iov[i].iov_base, b->iov[i].iov_len,
				       strerror(errno));
	}
	for (i = b->count - 1; i >= 0; i--) {
		ls_set(n, b->pages[i], LS_INVALID | LF_EVICTING);
		lk_unlock(llock_of(n, b->pages[i]));
	}
	STAT_ADD(n, evictions, (uint64_t)b->count);
	/* One list per home, pages in ascending order. */
	for (i = 0; i < b->count;) {
		int home = page_home(n, b->pages[i]);
		uint32_t c = 0;

		while (i < b->count && page_home(n, b->pages[i]) == home)
			b->list[c++] = b->pages[i++];
		clean_send(n, home, b->list, c);
	}
	for (i = 0; i < b->count; i++) {
		uint64_t page = b->pages[i];
		bool waited;

		lk_lock(llock_of(n, page), LK_LLOCK);
		waited = n->lstate[page] & LF_WAITED;
		ls_set(n, page, n->lstate[page] & ~(LF_EVICTING | LF_WAITED));
		lk_unlock(llock_of(n, page));
		if (waited)
			uffd_wake(n, page, 1);
	}
	b->count = 0;
}

/* Lock page into the batch if it still is a plain read-only copy. */
static bool clean_take(struct pm_node *n, struct clean_batch *b,
		       uint64_t page)
{
	if (!lk_trylock(llock_of(n, page), LK_LLOCK))
		return false;
	if (n->lstate[page] != LS_SHARED) {
		lk_unlock(llock_of(n, page));
		return false;
	}
	b->pages[b->count++] = page;
	return true;
}

/* Queue page on ring q (0: FIFO or probation, 1: protected), once. */
static void fq_push_locked(struct pm_node *n, uint64_t page, int q)
{
	if (n->fifo_in[page])
		return;
	n->fifo_in[page] = (uint8_t)(1 + q);
	n->fq[q].ring[n->fq[q].tail++ % n->npages] = (uint32_t)page;
}

static bool fq_pop_locked(struct pm_node *n, int q, uint64_t *page)
{
	if (n->fq[q].head == n->fq[q].tail)
		return false;
	*page = n->fq[q].ring[n->fq[q].head++ % n->npages];
	n->fifo_in[*page] = 0;
	return true;
}

/*
 * A page was mapped. Under "2q" a page back within TWOQ_DISTANCE
 * evictions of its own was in use when it went: it is protected. Any
 * other, and every page under "fifo", starts on probation.
 */
static void fifo_mapped(struct pm_node *n, uint64_t page)
{
	int q = 0;

	lk_lock(&n->fifo_lock, LK_FIFO);
	if (n->two_q && n->ev_stamp[page]) {
		q = (uint32_t)(n->ev_clock - n->ev_stamp[page]) <=
		    TWOQ_DISTANCE(n);
		n->ev_stamp[page] = 0;
	}
	fq_push_locked(n, page, q);
	lk_unlock(&n->fifo_lock);
}

/* A victim that could not go now (busy, or locked): back on its ring. */
static void fifo_requeue(struct pm_node *n, uint64_t page, int q)
{
	lk_lock(&n->fifo_lock, LK_FIFO);
	fq_push_locked(n, page, q);
	lk_unlock(&n->fifo_lock);
}

/* page left this node by eviction: "2q" remembers when. */
static void fifo_evicted(struct pm_node *n, uint64_t page)
{
	if (!n->two_q)
		return;
	lk_lock(&n->fifo_lock, LK_FIFO);
	if (!++n->ev_clock)
		n->ev_clock = 1;
	n->ev_stamp[page] = n->ev_clock;
	lk_unlock(&n->fifo_lock);
}

/*
 * The oldest page on probation, or false when none is queued. Under "2q"
 * the protected ring first hands its oldest down to probation while it
 * holds more than TWOQ_PROTECTED; only an empty probation ring gives up
 * a protected page directly.
 */
static bool fifo_pop(struct pm_node *n, uint64_t *page, int *q)
{
	uint64_t x;
	bool got;

	lk_lock(&n->fifo_lock, LK_FIFO);
	while (n->two_q &&
	       n->fq[1].tail - n->fq[1].head > TWOQ_PROTECTED(n) &&
	       fq_pop_locked(n, 1, &x))
		fq_push_locked(n, x, 0);
	*q = 0;
	got = fq_pop_locked(n, 0, page);
	if (!got && n->two_q) {
		*q = 1;
		got = fq_pop_locked(n, 1, page);
	}
	lk_unlock(&n->fifo_lock);
	return got;
}

/* The next victim to try: 2Q or FIFO (from ring *q), or CLOCK (second
 * chance). */
static bool next_victim(struct pm_node *n, uint64_t *page, uint8_t *s,
			int *q)
{
	if (n->fifo_in) {
		if (!fifo_pop(n, page, q))
			return false;
		*s = __atomic_load_n(&n->lstate[*page], __ATOMIC_RELAXED);
		if ((*s & LS_MASK) != LS_INVALID && (*s & ~LS_MASK))
			fifo_requeue(n, *page, *q);	/* busy now: later */
		return true;
	}
	*page = __atomic_fetch_add(&n->clock_hand, 1, __ATOMIC_RELAXED) %
		n->npages;
	*s = __atomic_load_n(&n->lstate[*page], __ATOMIC_RELAXED);
	if ((*s & LS_MASK) != LS_INVALID && !(*s & ~LS_MASK) &&
	    __atomic_exchange_n(&n->ref[*page], 0, __ATOMIC_RELAXED))
		*s = LS_INVALID;	/* second chance: not this time */
	return true;
}

/* Evict up to want pages chosen by the policy; returns how many went. */
static int evict_some(struct pm_node *n, int want)
{
	struct evicting *ev = malloc(sizeof(*ev));
	struct clean_batch *b = malloc(sizeof(*b));
	uint64_t scanned = 0, page;
	int done = 0, q = 0;
	uint8_t s;

	if (!ev || !b) {
		free(ev);
		free(b);
		return 0;
	}
	b->count = 0;
	while (done + b->count < want && scanned++ < 2 * n->npages &&
	       next_victim(n, &page, &s, &q)) {
		if ((s & LS_MASK) == LS_INVALID || (s & ~LS_MASK))
			continue;
		if (page_home(n, page) != n->id && s == LS_SHARED) {
			if (clean_take(n, b, page))
				fifo_evicted(n, page);
			else if (n->fifo_in)
				fifo_requeue(n, page, q); /* still mapped */
			if (b->count == CLEAN_BATCH) {
				done += b->count;
				clean_flush(n, b);
			}
			continue;
		}
		/* These lock without trylock: no batch locks held then. */
		done += b->count;
		clean_flush(n, b);
		if (page_home(n, page) == n->id ? home_evict_own(n, page)
						: evict_remote(n, page, ev)) {
			done++;
			STAT_ADD(n, evictions, 1);
			fifo_evicted(n, page);
		} else if (n->fifo_in) {
			fifo_requeue(n, page, q);
		}
	}
	done += b->count;
	clean_flush(n, b);
	free(ev);
	free(b);
	return done;
}

void evict_make_room(struct pm_node *n, int pages)
{
	uint64_t r = __atomic_load_n(&n->resident, __ATOMIC_RELAXED);

	if (!n->limit_pages || r + (uint64_t)pages <= n->limit_pages)
		return;
	evict_some(n, (int)(r + pages - n->limit_pages));
}

static void *evict_thread(void *arg)
{
	struct pm_node *n = arg;
	uint64_t high = n->limit_pages - margin(n) / 2;
	uint64_t low = n->limit_pages - margin(n);

	pm_log_use(&n->log);
	lk_lock(&n->ev_lock, LK_EV);
	while (!n->ev_stop) {
		uint64_t r = __atomic_load_n(&n->resident, __ATOMIC_RELAXED);

		if (r <= high) {
			pthread_cond_wait(&n->ev_cv, &n->ev_lock);
			continue;
		}
		lk_unlock(&n->ev_lock);
		while (__atomic_load_n(&n->resident, __ATOMIC_RELAXED) > low &&
		       !__atomic_load_n(&n->ev_stop, __ATOMIC_RELAXED))
			if (!evict_some(n, 64))
				break;	/* nothing evictable right now */
		lk_lock(&n->ev_lock, LK_EV);
	}
	lk_unlock(&n->ev_lock);
	return NULL;
}

int evict_start(struct pm_node *n)
{
	int r;

	pthread_mutex_init(&n->ev_lock, NULL);
	pthread_cond_init(&n->ev_cv, NULL);
	n->limit_pages = n->cfg.local_limit / PM_PAGE_SIZE;
	if (!n->limit_pages)
		return 0;
	if (n->limit_pages < 2 * (uint64_t)(n->prefetch + 1) + 2) {
		pm_err("pager.local_limit of %llu pages is too small (prefetch %d needs at least %d)",
		       (unsigned long long)n->limit_pages, n->prefetch,
		       2 * (n->prefetch + 1) + 2);
		return -EINVAL;
	}
	if (strcmp(n->cfg.evict_policy, "clock")) {
		if (n->npages > UINT32_MAX)
			return -EOVERFLOW;
		pthread_mutex_init(&n->fifo_lock, NULL);
		n->two_q = !strcmp(n->cfg.evict_policy, "2q");
		n->fifo_in = calloc(n->npages, 1);
		if (!n->fifo_in)
			return -ENOMEM;
		for (int q = 0; q < 1 + n->two_q; q++) {
			n->fq[q].ring = calloc(n->npages, sizeof(uint32_t));
			if (!n->fq[q].ring)
				return -ENOMEM;
		}
		if (n->two_q) {
			n->ev_stamp = calloc(n->npages, sizeof(uint32_t));
			if (!n->ev_stamp)
				return -ENOMEM;
		}
	} else {
		n->ref = calloc(n->npages, 1);
		if (!n->ref)
			return -ENOMEM;
	}
	/* For process_madvise(); without it, one madvise() per range. */
	n->ev_pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	n->ev_pidfd_open = n->ev_pidfd >= 0;
	if (!n->ev_pidfd_open)
		pm_dbg("pidfd_open: %s; evictions use madvise per range",
		       strerror(errno));
	r = pthread_create(&n->ev_thread, NULL, evict_thread, n);
	if (r)
		return -r;
	n->ev_started = true;
	return 0;
}

int64_t evict_writeback_all(struct pm_node *n)
{
	struct evicting *ev = malloc(sizeof(*ev));
	uint64_t before = __atomic_load_n(&n->st.c[PM_C_writebacks],
					  __ATOMIC_RELAXED);
	uint64_t tried = 0, done;

	if (!ev)
		return -ENOMEM;
	for (uint64_t page = 0; page < n->npages; page++) {
		/* A plain byte read: the state only says whether to try;
		 * evict_remote checks it again under the page's lock. */
		if (page_home(n, page) == n->id ||
		    __atomic_load_n(&n->lstate[page], __ATOMIC_RELAXED) !=
			    LS_EXCL)
			continue;
		if (evict_remote(n, page, ev))
			tried++;
	}
	free(ev);
	done = __atomic_load_n(&n->st.c[PM_C_writebacks], __ATOMIC_RELAXED) -
	       before;
	if (tried)
		pm_log(done == tried ? PM_LOG_INFO : PM_LOG_ERROR,
		       "leaving: wrote %llu exclusive page(s) back to their homes, %llu of them lost",
		       (unsigned long long)done,
		       (unsigned long long)(tried - done));
	return (int64_t)(tried - done);
}

void evict_stop(struct pm_node *n)
{
	if (n->ev_started) {
		lk_lock(&n->ev_lock, LK_EV);
		n->ev_stop = true;
		pthread_cond_broadcast(&n->ev_cv);
		lk_unlock(&n->ev_lock);
		pthread_join(n->ev_thread, NULL);
		n->ev_started = false;
	}
}

/* After the fault threads have stopped: they set reference bits. */
void evict_free(struct pm_node *n)
{
	evict_stop(n);
	free(n->ref);
	n->ref = NULL;
	for (int q = 0; q < 2; q++) {
		free(n->fq[q].ring);
		n->fq[q].ring = NULL;
	}
	free(n->fifo_in);
	free(n->ev_stamp);
	n->fifo_in = NULL;
	n->ev_stamp = NULL;
	if (n->ev_pidfd_open)
		close(n->ev_pidfd);
	n->ev_pidfd_open = false;
}
