// SPDX-License-Identifier: MIT
/*
 * The fault threads: each carries one fault from the uffd read to the wake
 * on its own (a hand-off to another thread costs ~100 us on these
 * machines). In the order a fault travels: fault_thread reads the message,
 * handle_fault looks at the page's local state and marks the fetch,
 * plan_prefetch adds the next pages of a scan, and the request goes to the
 * home: home_local_fault (home.c) for pages homed here, else fault_remote
 * over the transport, whose grant holder_land_grant (holder.c) installs.
 */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "node.h"

static void *fault_thread(void *arg);
static void handle_fault(struct pm_node *n, uint64_t addr, uint64_t fflags);
static int plan_prefetch(struct pm_node *n, uint64_t page);
static void fault_remote(struct pm_node *n, uint64_t page, uint8_t op,
			 uint8_t flags, int nextra);
static void fault_fail(struct pm_node *n, uint64_t page, int err);

struct fault_thread_arg {
	struct pm_node *n;
	int idx;
};

/*
 * Each fault thread waits in its own epoll set, where the uffd is
 * EPOLLEXCLUSIVE: a fault wakes one thread, not all of them (poll() would
 * wake every one, and on two cores the losers' wake-ups, which only find
 * EAGAIN, take the CPU the fault's own path needs).
 */
static int fault_wait_setup(struct pm_node *n)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE };
	int ep = epoll_create1(EPOLL_CLOEXEC), err;

	if (ep < 0)
		return -errno;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, n->uffd, &ev))
		goto fail;
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u32 = 1 };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, n->stop_efd, &ev))
		goto fail;
	return ep;
fail:
	err = -errno;
	close(ep);
	return err;
}

int fault_start(struct pm_node *n)
{
	int r;

	r = uffd_open(n);
	if (r)
		return r;
	n->stop_efd = eventfd(0, EFD_CLOEXEC);
	if (n->stop_efd < 0)
		return -errno;
	n->fault_threads = calloc(n->nthreads, sizeof(pthread_t));
	n->fault_args = calloc(n->nthreads, sizeof(struct fault_thread_arg));
	if (!n->fault_threads || !n->fault_args)
		return -ENOMEM;
	for (int i = 0; i < n->nthreads; i++) {
		struct fault_thread_arg *fa =
			(struct fault_thread_arg *)n->fault_args + i;

		fa->n = n;
		fa->idx = i;
		r = pthread_create(&n->fault_threads[i], NULL, fault_thread,
				   fa);
		if (r) {
			n->nthreads = i;
			return -r;
		}
	}
	return 0;
}

void fault_stop(struct pm_node *n)
{
	uint64_t one = 1;

	if (n->stop_efd >= 0 && n->fault_threads) {
		if (write(n->stop_efd, &one, sizeof(one)) != sizeof(one))
			pm_err("pager: cannot signal fault threads: %s",
			       strerror(errno));
		for (int i = 0; i < n->nthreads; i++)
			pthread_join(n->fault_threads[i], NULL);
	}
	free(n->fault_threads);
	free(n->fault_args);
	n->fault_threads = NULL;
	n->fault_args = NULL;
	if (n->stop_efd >= 0)
		close(n->stop_efd);
	n->stop_efd = -1;
	uffd_close(n);
}

static void *fault_thread(void *arg)
{
	struct fault_thread_arg *fa = arg;
	struct pm_node *n = fa->n;
	struct epoll_event ev[2];
	struct uffd_msg msg;
	int ep = fault_wait_setup(n), k;
	bool stop = false;
	ssize_t r;

	if (ep < 0) {
		pm_err("pager: epoll for fault thread %d: %s", fa->idx,
		       strerror(-ep));
		return NULL;
	}
	node_fault_thread = true;
	pm_log_use(&n->log);
	while (!stop) {
		k = epoll_wait(ep, ev, 2, -1);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			pm_err("pager: epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < k; i++)
			stop |= ev[i].data.u32 == 1;
		if (stop)
			break;
		r = read(n->uffd, &msg, sizeof(msg));
		if (r < 0) {
			/* Another fault thread took it: benign. */
			if (errno == EAGAIN || errno == EINTR)
				continue;
			pm_err("pager: read uffd: %s", strerror(errno));
			break;
		}
		if (r != sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		handle_fault(n, msg.arg.pagefault.address,
			     msg.arg.pagefault.flags);
	}
	close(ep);
	return NULL;
}

static void handle_fault(struct pm_node *n, uint64_t addr, uint64_t fflags)
{
	int64_t t0 = pm_now_ns();
	uint64_t page;
	uint8_t s, op, flags = 0;

	if (addr < (uintptr_t)n->region ||
	    addr >= (uintptr_t)n->region + n->len) {
		/* Only bounce slots are registered besides the region, and
		 * nothing reads an empty one; if it happens, zeros, no hang. */
		pm_err("fault at %#llx outside the region",
		       (unsigned long long)addr);
		if (n->bounce && addr - (uintptr_t)n->bounce <
				 PM_BOUNCE_PAGES * PM_PAGE_SIZE)
			uffd_bounce_fill(n, addr);
		return;
	}
	page = (addr - (uintptr_t)n->region) / PM_PAGE_SIZE;

	lk_lock(llock_of(n, page), LK_LLOCK);
	s = n->lstate[page];
	if (s & (LF_FETCHING | LF_EVICTING)) {
		/* The fetch or eviction in flight wakes every thread
		 * waiting on it when it ends. */
		if (s & LF_EVICTING)
			ls_set(n, page, s | LF_WAITED);
		lk_unlock(llock_of(n, page));
		return;
	}
	if (fflags & UFFD_PAGEFAULT_FLAG_WP) {
		if ((s & LS_MASK) != LS_SHARED) {
			/* Upgraded or dropped since: just retry. */
			lk_unlock(llock_of(n, page));
			uffd_wake(n, page, 1);
			return;
		}
		op = PM_OP_WRITE;
		flags = PM_RQ_HAS_COPY;
		STAT_ADD(n, faults_wp, 1);
	} else {
		if ((s & LS_MASK) != LS_INVALID) {
			lk_unlock(llock_of(n, page));
			uffd_wake(n, page, 1);
			return;
		}
		op = (fflags & UFFD_PAGEFAULT_FLAG_WRITE) ? PM_OP_WRITE
							  : PM_OP_READ;
	}
	ls_set(n, page, (s & LS_MASK) | LF_FETCHING);
	lk_unlock(llock_of(n, page));
	if (n->limit_pages && (s & LS_MASK) == LS_INVALID)
		evict_make_room(n, 1 + n->prefetch);
	pm_dbg("page %llu: fault %#llx state %#x -> request op %u flags %#x",
	       (unsigned long long)page, (unsigned long long)fflags, s, op,
	       flags);

	if (page_home(n, page) == n->id) {
		int r = home_local_fault(n, page, op, flags);

		if (r)
			fault_fail(n, page, r);
	} else {
		fault_remote(n, page, op, flags,
			     n->prefetch && !(flags & PM_RQ_HAS_COPY)
				     ? plan_prefetch(n, page) : 0);
	}
	STAT_ADD(n, faults_total, 1);
	stats_record_fault(n, (uint64_t)(pm_now_ns() - t0));
}

/*
 * A fault that continues a scan asks for the next pages too (up to
 * pager.prefetch, same home, each not mapped and not being fetched);
 * they are marked as being fetched before the request leaves.
 */
static int plan_prefetch(struct pm_node *n, uint64_t page)
{
	int home = page_home(n, page), k = 0;

	if (__atomic_load_n(&n->seq_next, __ATOMIC_RELAXED) == page) {
		for (int i = 1; i <= n->prefetch; i++) {
			uint64_t q = page + i;

			if (q >= n->npages || page_home(n, q) != home)
				break;
			lk_lock(llock_of(n, q), LK_LLOCK);
			if (n->lstate[q] != LS_INVALID) {
				lk_unlock(llock_of(n, q));
				break;
			}
			ls_set(n, q, LF_FETCHING);
			lk_unlock(llock_of(n, q));
			k++;
		}
	}
	__atomic_store_n(&n->seq_next, page + 1 + k, __ATOMIC_RELAXED);
	return k;
}

/*
 * Is rp (with plen bytes of payload) a grant that can answer request rq?
 * NULL, or what is wrong with it. A home never sends anything else, so a
 * failure here is a broken or hostile peer, never installed.
 */
static const char *grant_check(const struct pm_proto_req *rq,
			       const struct pm_proto_rep *rp, uint32_t plen)
{
	uint16_t mask = (uint16_t)((1u << rq->arg) - 1);
	bool data = rp->flags & PM_RP_DATA, zero = rp->flags & PM_RP_ZERO;
	bool excl = rp->flags & PM_RP_EXCL;
	uint32_t want;

	want = (data ? PM_PAGE_SIZE : 0) +
	       PM_PAGE_SIZE * (uint32_t)__builtin_popcount(rp->extra &
							   ~rp->extra_zero);
	if (rp->op != rq->op || rp->page != rq->page)
		return "a grant for another request";
	if (rp->flags & ~(PM_RP_DATA | PM_RP_ZERO | PM_RP_EXCL))
		return "flags no grant carries";
	if (data && zero)
		return "both data and zero";
	if ((rp->extra & ~mask) || (rp->extra_zero & ~rp->extra))
		return "extra pages not asked for";
	if (plen != want)
		return "a payload that does not match its flags";
	/* Exclusive is allowed: a migratory page (home.c). */
	if (rq->op == PM_OP_READ && !(data || zero))
		return "a read grant without its page";
	if (rq->op == PM_OP_WRITE && !excl)
		return "a write grant that is not exclusive";
	if (rq->op == PM_OP_WRITE && !(rq->flags & PM_RQ_HAS_COPY) &&
	    !(data || zero))
		return "an exclusive grant without the page";
	return NULL;
}

/*
 * Ask the home for page (and nextra pages after it) until it answers, it
 * is declared dead, or it keeps failing. A request that ran out of time
 * is a slow reply, not a death: only the failure detector (detect.c) says
 * a peer is dead, and then faults on its pages fail at once. A request
 * abandoned at its deadline may still have been granted, and its grant is
 * then never installed: an action about it finds the fetch in flight and
 * is answered "not held" at once (holder.c), so the home never waits for
 * us while our next try waits behind it.
 */
#define FAULT_MAX_ERRORS 5	/* answers that are errors, then SIGBUS */
#define FAULT_MAX_REFUSED 50	/* refused as unauthenticated, then SIGBUS */

static void fault_remote(struct pm_node *n, uint64_t page, uint8_t op,
			 uint8_t flags, int nextra)
{
	uint8_t buf[PM_PAYLOAD_MAX] __attribute__((aligned(4096)));
	struct pm_proto_req rq = {
		.op = op, .flags = flags, .from = (uint16_t)n->id,
		.arg = (uint32_t)nextra, .page = page,
	};
	int home = page_home(n, page), errors = 0, tries = 0, refused = 0;
	int pin = -1;	/* the fault connection every try goes on */
	/* A try waits a quarter of the detector's timeout at most, so a
	 * fault on a home declared dead meanwhile ends soon after. */
	int wait_ms = n->failure_ms / 4 > 100 ? n->failure_ms / 4 : 100;
	struct pm_proto_rep rp;
	const char *bad = NULL;
	uint32_t plen;
	bool installed;
	int r;

	for (;; tries++) {
		if (node_peer_dead(n, home)) {
			r = -EHOSTDOWN;
			break;
		}
		rp = (struct pm_proto_rep){ 0 };
		plen = sizeof(buf);
		r = node_call_ms(n, home, &rq, &rp, buf, &plen,
				 wait_ms < n->timeout_ms ? wait_ms : n->timeout_ms,
				 &pin);
		if (!r && (bad = grant_check(&rq, &rp, plen)))
			r = -EPROTO;
		if (!r || r == -EIO || node_closing(n))
			break;
		/* -EACCES: the home restarted and our redialled connection
		 * lost a race with its re-authentication; it settles. */
		if (r == -EACCES && ++refused < FAULT_MAX_REFUSED)
			continue;
		/* -EAGAIN: the home is starting (node.c: serving). */
		if (!node_conn_error(r) && r != -EACCES && r != -EAGAIN &&
		    ++errors >= FAULT_MAX_ERRORS)
			break;
		if (tries == 0)
			pm_warn("page %llu: request to home node %d: %s%s%s; trying again",
				(unsigned long long)page, home, strerror(-r),
				bad ? ": " : "", bad ? bad : "");
		/* 1, 2, 4 .. 64 ms: a home that answers errors is not
		 * hammered, one that is slow is asked again soon. */
		node_backoff(tries);
	}
	installed = holder_land_grant(n, page, nextra, r, &rp, buf);
	if (r) {
		if (tries > 0 || r == -EIO || r == -EHOSTDOWN || bad)
			pm_err("page %llu: request to home node %d failed after %d tries: %s%s%s",
			       (unsigned long long)page, home, tries + 1,
			       strerror(-r), bad ? ": " : "",
			       bad ? bad : "");
		fault_fail(n, page, r);
		return;
	}
	if (!installed)
		uffd_wake(n, page, 1);	/* retry: refault and ask again */
}

/* The page cannot be had: its faulting threads fail (SIGBUS). */
static void fault_fail(struct pm_node *n, uint64_t page, int err)
{
	uint8_t s;

	/*
	 * Only an unmapped page is poisoned: a read-only copy whose upgrade
	 * failed goes first (the home still lists us, which is harmless),
	 * or UFFDIO_POISON would find it mapped (EEXIST) and its fallback
	 * would leave a page that later actions copy from; one that another
	 * fault is fetching again is left to that fetch.
	 */
	lk_lock(llock_of(n, page), LK_LLOCK);
	s = n->lstate[page];
	if (s & (LF_FETCHING | LF_EVICTING)) {
		lk_unlock(llock_of(n, page));
		uffd_wake(n, page, 1);
		return;
	}
	if ((s & LS_MASK) != LS_INVALID) {
		uffd_drop(n, page, (s & LS_MASK) == LS_EXCL, NULL);
		ls_set(n, page, LS_INVALID);
	}
	uffd_poison(n, page);
	lk_unlock(llock_of(n, page));
	STAT_ADD(n, poisoned, 1);
	pm_err("page %llu (home node %d): %s; the faulting thread gets %s",
	       (unsigned long long)page, page_home(n, page),
	       err == -EIO ? "its data was lost with a dead node"
			   : strerror(-err),
	       n->have_poison ? "SIGBUS" : "SIGSEGV (no UFFDIO_POISON before Linux 6.6)");
}
