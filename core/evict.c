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
 * Victims: CLOCK (pager.policy = "clock", the default), a hand over the
 * region giving each page a second chance through a reference bit set
 * when a fault maps it; or FIFO ("fifo"), the pages in the order faults
 * mapped them. Chosen by measurement (fault_bench -s: a 64 MiB set
 * through a 16 MiB limit, 2 runs): on a hot set (9 touches in 10 to 12
 * MiB) that the cache has settled on, CLOCK took 5% fewer faults
 * (3635-3650 against 3828-3830 a pass) and ran 1.12x the touches/s; on
 * the first pass after a random scan, 0.6% more (4829-4853 against
 * 4790-4802); uniform random and sequential scans fault the same, CLOCK
 * at 1.04-1.12x the touches/s with half FIFO's p99 (its bit is one
 * atomic store, where FIFO's ring takes a lock that faults and the
 * evictor share). The only access information here is the fault that
 * maps a page (no idle-page tracking in this kernel, PAGEMAP_SCAN
 * reports writes, not reads, and re-arming access faults costs a TLB
 * flush per page). Tried and dropped: a CLOCK variant that kept pages
 * re-faulted within a lap of their eviction for three laps (5048-5080
 * faults on the first pass), and 2Q (pages back within local_limit
 * evictions of their own kept in a protected FIFO of 3/4 of the limit):
 * with a hot set as large as that FIFO, each promotion pushes a hot page
 * out to probation, where it dies before its next touch and comes back
 * promoted in turn (5821 faults on the first pass). CLOCK costs 1 byte
 * per region page, FIFO 5.
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

/* A page between its local drop and the home's answer to our EVICT. */
struct evicting {
	struct evicting *next;
	uint64_t page;
	bool excl;
	uint8_t data[PM_PAGE_SIZE];
};

static void fifo_push(struct pm_node *n, uint64_t page);

static uint64_t margin(const struct pm_node *n)
{
	uint64_t m = n->limit_pages / 8;

	return m > 512 ? 512 : m ? m : 1;
}

void evict_note_install(struct pm_node *n, uint64_t page)
{
	uint64_t r = __atomic_add_fetch(&n->resident, 1, __ATOMIC_RELAXED);

	if (n->fifo)
		fifo_push(n, page);
	else if (n->ref)
		__atomic_store_n(&n->ref[page], 1, __ATOMIC_RELAXED);

	if (n->limit_pages && r > n->limit_pages - margin(n) / 2) {
		pthread_mutex_lock(&n->ev_lock);
		pthread_cond_signal(&n->ev_cv);
		pthread_mutex_unlock(&n->ev_lock);
	}
}

void evict_note_drop(struct pm_node *n)
{
	__atomic_sub_fetch(&n->resident, 1, __ATOMIC_RELAXED);
}

/* Home is this node: drop our copy into the store, under dlock+llock. */
static bool evict_local(struct pm_node *n, uint64_t page)
{
	struct dir_entry *e = coh_dir_entry(n, page);
	bool done = false;
	uint8_t s;

	pthread_mutex_lock(dlock_of(n, page));
	if (e->busy) {
		pthread_mutex_unlock(dlock_of(n, page));
		return false;
	}
	pthread_mutex_lock(llock_of(n, page));
	s = n->lstate[page];
	if ((s & LS_MASK) != LS_INVALID && !(s & ~LS_MASK)) {
		if ((s & LS_MASK) == LS_EXCL) {
			pager_drop(n, page, coh_store_page(n, page));
			e->zero = 0;
			e->stale = 0;
			e->state = DIR_UNOWNED;
			STAT_ADD(n, writebacks, 1);
		} else {
			/* The store may be behind our copy (coh.c). */
			pager_drop(n, page, e->stale ? coh_store_page(n, page)
						     : NULL);
			e->stale = 0;
			e->sharers &= ~(1ull << n->id);
			if (!e->sharers)
				e->state = DIR_UNOWNED;
		}
		n->lstate[page] = LS_INVALID;
		done = true;
	}
	pthread_mutex_unlock(llock_of(n, page));
	pthread_mutex_unlock(dlock_of(n, page));
	return done;
}

static bool evict_remote(struct pm_node *n, uint64_t page,
			 struct evicting *ev)
{
	struct pm_proto_req rq = {
		.op = PM_OP_EVICT, .from = (uint16_t)n->id, .page = page,
	};
	struct pm_proto_rep rp;
	struct evicting **pp;
	uint8_t s;
	int r;

	pthread_mutex_lock(llock_of(n, page));
	s = n->lstate[page];
	if ((s & LS_MASK) == LS_INVALID || (s & ~LS_MASK)) {
		pthread_mutex_unlock(llock_of(n, page));
		return false;
	}
	ev->page = page;
	ev->excl = (s & LS_MASK) == LS_EXCL;
	pager_drop(n, page, ev->data);
	n->lstate[page] = LS_INVALID | LF_EVICTING;
	pthread_mutex_lock(&n->dfr_lock);
	ev->next = n->evicting;
	n->evicting = ev;
	pthread_mutex_unlock(&n->dfr_lock);
	pthread_mutex_unlock(llock_of(n, page));

	rq.flags = ev->excl ? PM_RQ_DIRTY : 0;
	r = node_call_payload(n, page_home(n, page), &rq, &rp,
			      ev->excl ? ev->data : NULL,
			      ev->excl ? PM_PAGE_SIZE : 0);
	if (r)
		node_peer_failed(n, page_home(n, page), r);
	else if (ev->excl)
		STAT_ADD(n, writebacks, 1);

	pthread_mutex_lock(llock_of(n, page));
	pthread_mutex_lock(&n->dfr_lock);
	for (pp = &n->evicting; *pp; pp = &(*pp)->next)
		if (*pp == ev) {
			*pp = ev->next;
			break;
		}
	pthread_mutex_unlock(&n->dfr_lock);
	n->lstate[page] &= ~(LF_EVICTING | LF_WAITED);
	pthread_mutex_unlock(llock_of(n, page));
	/* Threads that faulted on it meanwhile were left waiting. */
	pager_wake(n, page);
	return true;
}

bool evict_answer_action(struct pm_node *n, uint64_t page, bool *found,
			 struct pm_proto_rep *rp, void *buf)
{
	struct evicting *ev;
	bool data = false;

	pthread_mutex_lock(&n->dfr_lock);
	for (ev = n->evicting; ev; ev = ev->next)
		if (ev->page == page)
			break;
	if (ev) {
		/* Not kept; an exclusive copy's data goes back whatever the
		 * action, since the home may hold nothing newer. */
		rp->flags = PM_RP_NOT_HELD;
		if (ev->excl) {
			memcpy(buf, ev->data, PM_PAGE_SIZE);
			rp->flags |= PM_RP_DATA;
			data = true;
		}
	}
	*found = ev != NULL;
	pthread_mutex_unlock(&n->dfr_lock);
	return data;
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

	r = node_call_payload(n, home, &rq, &rp, pages,
			      count * (uint32_t)sizeof(uint64_t));
	if (r)
		node_peer_failed(n, home, r);
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
		n->lstate[b->pages[i]] = LS_INVALID | LF_EVICTING;
		evict_note_drop(n);
		pthread_mutex_unlock(llock_of(n, b->pages[i]));
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

		pthread_mutex_lock(llock_of(n, page));
		waited = n->lstate[page] & LF_WAITED;
		n->lstate[page] &= ~(LF_EVICTING | LF_WAITED);
		pthread_mutex_unlock(llock_of(n, page));
		if (waited)
			pager_wake(n, page);
	}
	b->count = 0;
}

/* Lock page into the batch if it still is a plain read-only copy. */
static bool clean_take(struct pm_node *n, struct clean_batch *b,
		       uint64_t page)
{
	if (pthread_mutex_trylock(llock_of(n, page)))
		return false;
	if (n->lstate[page] != LS_SHARED) {
		pthread_mutex_unlock(llock_of(n, page));
		return false;
	}
	b->pages[b->count++] = page;
	return true;
}

/* FIFO: pages in the order they were mapped, each at most once. */
static void fifo_push(struct pm_node *n, uint64_t page)
{
	pthread_mutex_lock(&n->fifo_lock);
	if (!n->fifo_in[page]) {
		n->fifo_in[page] = 1;
		n->fifo[n->fifo_tail++ % n->npages] = (uint32_t)page;
	}
	pthread_mutex_unlock(&n->fifo_lock);
}

/* The oldest page, or false when none is queued. */
static bool fifo_pop(struct pm_node *n, uint64_t *page)
{
	bool got = false;

	pthread_mutex_lock(&n->fifo_lock);
	if (n->fifo_head != n->fifo_tail) {
		*page = n->fifo[n->fifo_head++ % n->npages];
		n->fifo_in[*page] = 0;
		got = true;
	}
	pthread_mutex_unlock(&n->fifo_lock);
	return got;
}

/* The next victim to try: CLOCK (second chance) or FIFO. */
static bool next_victim(struct pm_node *n, uint64_t *page, uint8_t *s)
{
	if (n->fifo) {
		if (!fifo_pop(n, page))
			return false;
		*s = __atomic_load_n(&n->lstate[*page], __ATOMIC_RELAXED);
		if ((*s & LS_MASK) != LS_INVALID && (*s & ~LS_MASK))
			fifo_push(n, *page);	/* busy now: later */
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
	int done = 0;
	uint8_t s;

	if (!ev || !b) {
		free(ev);
		free(b);
		return 0;
	}
	b->count = 0;
	while (done + b->count < want && scanned++ < 2 * n->npages &&
	       next_victim(n, &page, &s)) {
		if ((s & LS_MASK) == LS_INVALID || (s & ~LS_MASK))
			continue;
		if (page_home(n, page) != n->id && s == LS_SHARED) {
			if (!clean_take(n, b, page) && n->fifo)
				fifo_push(n, page);	/* still resident */
			if (b->count == CLEAN_BATCH) {
				done += b->count;
				clean_flush(n, b);
			}
			continue;
		}
		/* These lock without trylock: no batch locks held then. */
		done += b->count;
		clean_flush(n, b);
		if (page_home(n, page) == n->id ? evict_local(n, page)
						: evict_remote(n, page, ev)) {
			done++;
			STAT_ADD(n, evictions, 1);
		} else if (n->fifo) {
			fifo_push(n, page);
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

	pthread_mutex_lock(&n->ev_lock);
	while (!n->ev_stop) {
		uint64_t r = __atomic_load_n(&n->resident, __ATOMIC_RELAXED);

		if (r <= high) {
			pthread_cond_wait(&n->ev_cv, &n->ev_lock);
			continue;
		}
		pthread_mutex_unlock(&n->ev_lock);
		while (__atomic_load_n(&n->resident, __ATOMIC_RELAXED) > low &&
		       !__atomic_load_n(&n->ev_stop, __ATOMIC_RELAXED))
			if (!evict_some(n, 64))
				break;	/* nothing evictable right now */
		pthread_mutex_lock(&n->ev_lock);
	}
	pthread_mutex_unlock(&n->ev_lock);
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
	if (!strcmp(n->cfg.evict_policy, "fifo")) {
		if (n->npages > UINT32_MAX)
			return -EOVERFLOW;
		pthread_mutex_init(&n->fifo_lock, NULL);
		n->fifo_in = calloc(n->npages, 1);
		n->fifo = calloc(n->npages, sizeof(*n->fifo));
		if (!n->fifo_in || !n->fifo)
			return -ENOMEM;
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

void evict_stop(struct pm_node *n)
{
	if (n->ev_started) {
		pthread_mutex_lock(&n->ev_lock);
		n->ev_stop = true;
		pthread_cond_broadcast(&n->ev_cv);
		pthread_mutex_unlock(&n->ev_lock);
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
	free(n->fifo);
	free(n->fifo_in);
	n->fifo = NULL;
	n->fifo_in = NULL;
	if (n->ev_pidfd_open)
		close(n->ev_pidfd);
	n->ev_pidfd_open = false;
}
