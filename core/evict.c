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
 * Victims: CLOCK over the region with a reference bit per page set when a
 * fault maps it (this kernel has no idle-page tracking to say more).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "node.h"

/* A page between its local drop and the home's answer to our EVICT. */
struct evicting {
	struct evicting *next;
	uint64_t page;
	bool excl;
	uint8_t data[PM_PAGE_SIZE];
};

static uint64_t margin(const struct pm_node *n)
{
	uint64_t m = n->limit_pages / 8;

	return m > 512 ? 512 : m ? m : 1;
}

void evict_note_install(struct pm_node *n)
{
	uint64_t r = __atomic_add_fetch(&n->resident, 1, __ATOMIC_RELAXED);

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
	n->lstate[page] &= ~LF_EVICTING;
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

/* Read-only copies dropped here whose home is not told yet: one message
 * for all of them (the home has their data; only its directory cares). */
struct clean_list {
	int home;
	uint32_t count;
	uint64_t pages[PM_EVICT_LIST_MAX];
};

static void clean_flush(struct pm_node *n, struct clean_list *cl)
{
	struct pm_proto_req rq = {
		.op = PM_OP_EVICT, .flags = PM_RQ_CLEAN_LIST,
		.from = (uint16_t)n->id, .arg = cl->count,
		.page = cl->count ? cl->pages[0] : 0,
	};
	struct pm_proto_rep rp;
	int r;

	if (!cl->count)
		return;
	r = node_call_payload(n, cl->home, &rq, &rp, cl->pages,
			      cl->count * (uint32_t)sizeof(uint64_t));
	if (r)
		node_peer_failed(n, cl->home, r);
	cl->count = 0;
}

#define RUN_MAX 64	/* < PM_NLOCKS / 2: ascending page locks cannot cycle */

/*
 * Drop read-only copies homed elsewhere: page and the unreferenced,
 * read-only pages after it with the same home, with one MADV_DONTNEED
 * (each call costs a TLB shootdown); the home hears in a list. Returns
 * how many were dropped.
 */
static int evict_clean_run(struct pm_node *n, uint64_t page,
			   struct clean_list *cl)
{
	int home = page_home(n, page), len = 1, i;

	while (len < RUN_MAX && page + len < n->npages &&
	       page_home(n, page + len) == home &&
	       __atomic_load_n(&n->lstate[page + len], __ATOMIC_RELAXED) ==
		       LS_SHARED &&
	       !__atomic_load_n(&n->ref[page + len], __ATOMIC_RELAXED))
		len++;
	for (i = 0; i < len; i++)
		pthread_mutex_lock(llock_of(n, page + i));
	/* Keep the prefix that is still a plain read-only copy. */
	for (i = 0; i < len && n->lstate[page + i] == LS_SHARED; i++)
		;
	for (int k = len - 1; k >= i; k--)
		pthread_mutex_unlock(llock_of(n, page + k));
	len = i;
	if (len && madvise(page_addr(n, page), (size_t)len * PM_PAGE_SIZE,
			   MADV_DONTNEED))
		pm_err("pages %llu+%d: MADV_DONTNEED: %s",
		       (unsigned long long)page, len, strerror(errno));
	for (i = len - 1; i >= 0; i--) {
		n->lstate[page + i] = LS_INVALID;
		evict_note_drop(n);
		pthread_mutex_unlock(llock_of(n, page + i));
	}
	for (i = 0; i < len; i++) {
		if (cl->count && (cl->home != home ||
				  cl->count == PM_EVICT_LIST_MAX))
			clean_flush(n, cl);
		cl->home = home;
		cl->pages[cl->count++] = page + i;
	}
	if (len > 1)
		__atomic_fetch_add(&n->clock_hand, (uint64_t)len - 1,
				   __ATOMIC_RELAXED);
	return len;
}

/* Evict up to want pages chosen by the clock; returns how many went. */
static int evict_some(struct pm_node *n, int want)
{
	struct evicting *ev = malloc(sizeof(*ev));
	struct clean_list *cl = malloc(sizeof(*cl));
	uint64_t scanned = 0;
	int done = 0;

	if (!ev || !cl) {
		free(ev);
		free(cl);
		return 0;
	}
	cl->count = 0;
	while (done < want && scanned < 2 * n->npages) {
		uint64_t page = __atomic_fetch_add(&n->clock_hand, 1,
						   __ATOMIC_RELAXED) %
				n->npages;
		uint8_t s = __atomic_load_n(&n->lstate[page],
					    __ATOMIC_RELAXED);

		scanned++;
		if ((s & LS_MASK) == LS_INVALID || (s & ~LS_MASK))
			continue;
		if (__atomic_exchange_n(&n->ref[page], 0, __ATOMIC_RELAXED))
			continue;	/* second chance */
		if (page_home(n, page) != n->id && s == LS_SHARED) {
			int k = evict_clean_run(n, page, cl);

			done += k;
			STAT_ADD(n, evictions, (uint64_t)k);
		} else if (page_home(n, page) == n->id ? evict_local(n, page)
				: evict_remote(n, page, ev)) {
			done++;
			STAT_ADD(n, evictions, 1);
		}
	}
	clean_flush(n, cl);
	free(ev);
	free(cl);
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
	n->ref = calloc(n->npages, 1);
	if (!n->ref)
		return -ENOMEM;
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
}
