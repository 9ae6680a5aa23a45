// SPDX-License-Identifier: MIT
/*
 * The pager: the region under userfaultfd (missing + write-protect), and
 * fault threads that each carry one fault from the uffd read to the wake on
 * their own (a hand-off to another thread costs ~100 us on these machines).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "node.h"

/* Newer than the uapi headers of Debian 12; the running kernel has it. */
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 10)
#endif
#ifndef UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
	__u64 mode;
	__s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

static const uint8_t zero_page[PM_PAGE_SIZE] __attribute__((aligned(4096)));
static bool have_poison;

static struct uffdio_range page_range(struct pm_node *n, uint64_t page)
{
	return (struct uffdio_range){
		.start = (uintptr_t)page_addr(n, page),
		.len = PM_PAGE_SIZE,
	};
}

/* Wake the threads waiting on len bytes at addr (any registered pages). */
static void wake_at(struct pm_node *n, uint64_t addr, uint64_t len)
{
	struct uffdio_range r = {
		.start = addr & ~(uint64_t)(PM_PAGE_SIZE - 1),
		.len = len,
	};

	if (ioctl(n->uffd, UFFDIO_WAKE, &r) && errno != ENOENT)
		pm_warn("page at %#llx: UFFDIO_WAKE: %s",
			(unsigned long long)r.start, strerror(errno));
}

void pager_wake(struct pm_node *n, uint64_t page)
{
	pager_wake_run(n, page, 1);
}

void pager_wake_run(struct pm_node *n, uint64_t first, uint64_t count)
{
	wake_at(n, (uintptr_t)page_addr(n, first), count * PM_PAGE_SIZE);
}

int pager_wp(struct pm_node *n, uint64_t first, uint64_t count, bool on)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)page_addr(n, first),
			   .len = count * PM_PAGE_SIZE },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	if (ioctl(n->uffd, UFFDIO_WRITEPROTECT, &wp)) {
		pm_err("pages %llu+%llu: UFFDIO_WRITEPROTECT(%s): %s",
		       (unsigned long long)first, (unsigned long long)count,
		       on ? "on" : "off", strerror(errno));
		return -errno;
	}
	return 0;
}

/*
 * Map a granted page. Called with the page's llock held and the page not
 * mapped (lstate INVALID) unless this is an upgrade of a shared copy
 * (excl, no data, not zero). Wakes the threads waiting on it.
 */
int pager_install(struct pm_node *n, uint64_t page, int ls_new,
		  const void *data, bool zero)
{
	uint8_t ls_old = n->lstate[page] & LS_MASK;
	struct uffdio_copy cp;
	int r;

	if (ls_new == LS_EXCL && !data && !zero) {
		/* Upgrade: we hold the current data read-only. */
		if (ls_old != LS_SHARED) {
			pm_err("page %llu: upgrade grant without a copy",
			       (unsigned long long)page);
			return -EPROTO;
		}
		return pager_wp(n, page, 1, false); /* also wakes */
	}
	if (ls_old != LS_INVALID) {
		/* A fresh copy over a stale one: drop ours first. */
		if (madvise(page_addr(n, page), PM_PAGE_SIZE, MADV_DONTNEED))
			return -errno;
		evict_note_drop(n);
	}
	evict_note_install(n, page);
	/*
	 * Never UFFDIO_ZEROPAGE: a writer's retry would COW the zero page,
	 * replacing a present PTE, and that TLB flush costs ~40 us on these
	 * VMs, ten times copying 4 KiB of zeros into a PTE that was empty. A
	 * reader gets a write-protected copy for another reason too: a write
	 * to the zero page would COW without any fault.
	 */
	cp = (struct uffdio_copy){
		.dst = (uintptr_t)page_addr(n, page),
		.src = (uintptr_t)(data ? data : zero_page),
		.len = PM_PAGE_SIZE,
		.mode = ls_new == LS_SHARED ? UFFDIO_COPY_MODE_WP : 0,
	};
	if (!ioctl(n->uffd, UFFDIO_COPY, &cp))
		return 0;
	if (errno != EEXIST)
		goto fail;
	pager_wake(n, page);
	return 0;
fail:
	r = -errno;
	evict_note_drop(n);
	pm_err("page %llu: installing %s copy: %s", (unsigned long long)page,
	       ls_new == LS_EXCL ? "exclusive" : "shared", strerror(-r));
	return r;
}

void pager_protect(struct pm_node *n, uint64_t page, void *copy_out)
{
	if ((n->lstate[page] & LS_MASK) == LS_EXCL)
		pager_wp(n, page, 1, true);
	if (copy_out)
		memcpy(copy_out, page_addr(n, page), PM_PAGE_SIZE);
}

void pager_drop_quiet(struct pm_node *n, uint64_t page, void *copy_out)
{
	/* Stop local writers first so the copy is the final data. */
	pager_protect(n, page, copy_out);
	if (madvise(page_addr(n, page), PM_PAGE_SIZE, MADV_DONTNEED))
		pm_err("page %llu: MADV_DONTNEED: %s",
		       (unsigned long long)page, strerror(errno));
	evict_note_drop(n);
}

void pager_drop(struct pm_node *n, uint64_t page, void *copy_out)
{
	pager_drop_quiet(n, page, copy_out);
	/* Threads blocked on our write-protect refault and ask again. */
	pager_wake(n, page);
}

/*
 * Taking a page away from the home (a recall for another node's write):
 * UFFDIO_MOVE of the mapped page into a bounce slot is one TLB flush, where
 * write-protect, copy, MADV_DONTNEED are two, plus the first touch of the
 * store page, all before the grant could leave. Slots are emptied all at
 * once when used up (one full flush per PM_BOUNCE_PAGES recalls).
 */
void *pager_move_out(struct pm_node *n, uint64_t page)
{
	struct uffdio_move mv = {
		.src = (uintptr_t)page_addr(n, page), .len = PM_PAGE_SIZE,
	};
	uint8_t *slot = NULL;

	if (!n->bounce_ok)
		return NULL;
	pthread_mutex_lock(&n->bounce_lock);
	if (n->bounce_next == PM_BOUNCE_PAGES && !n->bounce_busy) {
		if (madvise(n->bounce, PM_BOUNCE_PAGES * PM_PAGE_SIZE,
			    MADV_DONTNEED))
			pm_err("bounce slots: MADV_DONTNEED: %s",
			       strerror(errno));
		else
			n->bounce_next = 0;
	}
	if (n->bounce_next < PM_BOUNCE_PAGES) {
		slot = n->bounce + n->bounce_next++ * PM_PAGE_SIZE;
		n->bounce_busy++;
	}
	pthread_mutex_unlock(&n->bounce_lock);
	if (!slot)
		return NULL;
	mv.dst = (uintptr_t)slot;
	if (ioctl(n->uffd, UFFDIO_MOVE, &mv) || mv.move != PM_PAGE_SIZE) {
		/* EBUSY: the page is shared (a fork) or pinned. */
		pm_dbg("page %llu: UFFDIO_MOVE: %s", (unsigned long long)page,
		       strerror(errno));
		pager_bounce_done(n);
		return NULL;
	}
	evict_note_drop(n);
	/* Threads blocked on our write-protect refault and ask again. */
	pager_wake(n, page);
	return slot;
}

void pager_bounce_done(struct pm_node *n)
{
	pthread_mutex_lock(&n->bounce_lock);
	n->bounce_busy--;
	pthread_mutex_unlock(&n->bounce_lock);
}

/*
 * The page cannot be had: the faulting thread gets SIGBUS, never a hang.
 * Kernels before 6.6 have no UFFDIO_POISON (Debian 12's 6.1): there the
 * page is made inaccessible and the thread woken, so its retry ends in
 * SIGSEGV at that address instead of waiting forever.
 */
static void pager_poison(struct pm_node *n, uint64_t page, int err)
{
	struct uffdio_poison p = { .range = page_range(n, page) };

	STAT_ADD(n, poisoned, 1);
	pm_err("page %llu (home node %d): %s; the faulting thread gets %s",
	       (unsigned long long)page, page_home(n, page),
	       err == -EIO ? "its data was lost with a dead node"
			   : strerror(-err),
	       have_poison ? "SIGBUS" : "SIGSEGV (no UFFDIO_POISON before Linux 6.6)");
	if (have_poison && !ioctl(n->uffd, UFFDIO_POISON, &p))
		return;
	if (have_poison)
		pm_err("page %llu: UFFDIO_POISON: %s; making it inaccessible",
		       (unsigned long long)page, strerror(errno));
	if (mprotect(page_addr(n, page), PM_PAGE_SIZE, PROT_NONE))
		pm_err("page %llu: mprotect PROT_NONE: %s; its faulting thread stays blocked",
		       (unsigned long long)page, strerror(errno));
	pager_wake(n, page);
}

/* Take pending actions for page off the deferred list (llock held). */
static struct deferred *take_deferred(struct pm_node *n, uint64_t page)
{
	struct deferred *d, **pp, *out = NULL;

	pthread_mutex_lock(&n->dfr_lock);
	for (pp = &n->deferred; (d = *pp);) {
		if (d->page == page) {
			*pp = d->next;
			d->next = out;
			out = d;
		} else {
			pp = &d->next;
		}
	}
	pthread_mutex_unlock(&n->dfr_lock);
	return out;
}

/*
 * Answer actions that arrived while our fetch was in flight: they are
 * about the grant we just received (or failed to), which we drop.
 */
static void answer_deferred(struct pm_node *n, struct deferred *d,
			    const struct pm_proto_rep *grant, const void *data,
			    bool got)
{
	while (d) {
		struct deferred *next = d->next;
		struct pm_proto_rep rp = {
			.op = d->op, .from = (uint16_t)n->id, .page = d->page,
		};
		const void *pl = NULL;

		if (!got) {
			rp.flags = PM_RP_NOT_HELD;
		} else if (d->op != PM_OP_INVAL || (grant->flags & PM_RP_EXCL)) {
			/* The data, and that we keep no copy of it. */
			rp.flags = (grant->flags & (PM_RP_DATA | PM_RP_ZERO)) |
				   PM_RP_NOT_HELD;
			pl = (grant->flags & PM_RP_DATA) ? data : NULL;
		}
		if (pl)
			STAT_ADD(n, pages_sent, 1);
		node_reply(n, d->tidx, d->conn_id, d->req_id, 0, &rp, pl,
			   pl ? PM_PAGE_SIZE : 0);
		free(d);
		d = next;
	}
}

/*
 * A prefetched page's share of a grant (or of a failed call): install it
 * unless something made it stale, answer what was deferred on it, clear
 * its fetch, wake whoever waits on it.
 */
static void finish_extra(struct pm_node *n, uint64_t q, bool granted,
			 bool excl, bool zero, const uint8_t *data)
{
	struct pm_proto_rep g = {
		.flags = (excl ? PM_RP_EXCL : 0) |
			 (zero ? PM_RP_ZERO : PM_RP_DATA),
	};
	bool installed = false;
	struct deferred *d;

	pthread_mutex_lock(llock_of(n, q));
	d = take_deferred(n, q);
	if (granted && !d && !(n->lstate[q] & LF_STALE) &&
	    !pager_install(n, q, excl ? LS_EXCL : LS_SHARED,
			   zero ? NULL : data, zero)) {
		n->lstate[q] = excl ? LS_EXCL : LS_SHARED;
		installed = true;
		STAT_ADD(n, prefetched, 1);
		if (!zero)
			STAT_ADD(n, pages_received, 1);
	}
	n->lstate[q] &= ~(LF_FETCHING | LF_ACTED | LF_STALE);
	pthread_mutex_unlock(llock_of(n, q));
	answer_deferred(n, d, &g, data, granted);
	if (!installed)
		pager_wake(n, q);
}

/*
 * The common case of a scan: the primary and every extra page granted
 * with data, nothing stale or deferred on any of them. Then the whole
 * run goes in with one UFFDIO_COPY (its data is contiguous in buf).
 * Returns false, having changed nothing, when the run does not qualify.
 */
static bool install_run(struct pm_node *n, uint64_t page, int nextra,
			const struct pm_proto_rep *rp, const uint8_t *buf)
{
	uint16_t mask = (uint16_t)((1u << nextra) - 1);
	bool excl = rp->flags & PM_RP_EXCL, ok = true;
	struct uffdio_copy cp;
	int i;

	if (!(rp->flags & PM_RP_DATA) || rp->extra != mask || rp->extra_zero)
		return false;
	for (i = 0; i <= nextra; i++)
		pthread_mutex_lock(llock_of(n, page + i));
	pthread_mutex_lock(&n->dfr_lock);
	for (struct deferred *d = n->deferred; d && ok; d = d->next)
		ok = d->page < page || d->page > page + nextra;
	pthread_mutex_unlock(&n->dfr_lock);
	for (i = 0; i <= nextra && ok; i++)
		ok = n->lstate[page + i] == LF_FETCHING;
	if (ok) {
		cp = (struct uffdio_copy){
			.dst = (uintptr_t)page_addr(n, page),
			.src = (uintptr_t)buf,
			.len = (uint64_t)(nextra + 1) * PM_PAGE_SIZE,
			.mode = excl ? 0 : UFFDIO_COPY_MODE_WP,
		};
		ok = !ioctl(n->uffd, UFFDIO_COPY, &cp) &&
		     cp.copy == (int64_t)cp.len;
		if (!ok)
			pm_dbg("page %llu: run of %d: UFFDIO_COPY copied %lld: %s",
			       (unsigned long long)page, nextra + 1,
			       (long long)cp.copy, strerror(errno));
	}
	if (ok) {
		for (i = 0; i <= nextra; i++) {
			n->lstate[page + i] = excl ? LS_EXCL : LS_SHARED;
			evict_note_install(n, page + i);
		}
		STAT_ADD(n, faults_remote, 1);
		STAT_ADD(n, prefetched, nextra);
		STAT_ADD(n, pages_received, nextra + 1);
	}
	for (i = nextra; i >= 0; i--)
		pthread_mutex_unlock(llock_of(n, page + i));
	return ok;
}

static void fault_remote(struct pm_node *n, uint64_t page, uint8_t op,
			 uint8_t flags, int nextra)
{
	uint8_t buf[PM_PAYLOAD_MAX] __attribute__((aligned(4096)));
	struct pm_proto_req rq = {
		.op = op, .flags = flags, .from = (uint16_t)n->id,
		.arg = (uint32_t)nextra, .page = page,
	};
	struct pm_proto_rep rp = { 0 };
	uint16_t mask = (uint16_t)((1u << nextra) - 1);
	struct deferred *d;
	uint32_t plen = sizeof(buf), want;
	bool excl, installed = false;
	uint8_t s;
	int r;

	r = node_call(n, page_home(n, page), &rq, &rp, buf, &plen);
	want = ((rp.flags & PM_RP_DATA) ? PM_PAGE_SIZE : 0) +
	       PM_PAGE_SIZE * (uint32_t)__builtin_popcount(rp.extra &
							   ~rp.extra_zero);
	if (!r && (rp.op != op || rp.page != page || (rp.extra & ~mask) ||
		   (rp.extra_zero & ~rp.extra) || plen != want ||
		   ((rp.flags & PM_RP_DATA) && (rp.flags & PM_RP_ZERO)))) {
		pm_err("page %llu: malformed grant from node %d (op %u flags %#x extra %#x/%#x payload %u)",
		       (unsigned long long)page, page_home(n, page), rp.op,
		       rp.flags, rp.extra, rp.extra_zero, plen);
		r = -EPROTO;
	}
	excl = rp.flags & PM_RP_EXCL;

	if (!r && nextra && install_run(n, page, nextra, &rp, buf)) {
		pager_wake(n, page);	/* anyone waiting on the extras */
		return;
	}

	/*
	 * Which grants are stale (coh.c has the invariant): an upgrade
	 * after home acted on the copy it upgrades; any grant that deferred
	 * actions are about (they are answered from it below). A full grant
	 * after an action on an old copy is newer than that action: keep
	 * it, or the directory would name us holder of nothing.
	 */
	pthread_mutex_lock(llock_of(n, page));
	d = take_deferred(n, page);
	s = n->lstate[page];
	if (!r && !d && !(s & LF_STALE) &&
	    !((s & LF_ACTED) && !(rp.flags & (PM_RP_DATA | PM_RP_ZERO)))) {
		bool data = rp.flags & PM_RP_DATA, zero = rp.flags & PM_RP_ZERO;

		if (!pager_install(n, page, excl ? LS_EXCL : LS_SHARED,
				   data ? buf : NULL, zero)) {
			n->lstate[page] = excl ? LS_EXCL : LS_SHARED;
			installed = true;
			if (data) {
				STAT_ADD(n, faults_remote, 1);
				STAT_ADD(n, pages_received, 1);
			} else if (zero) {
				STAT_ADD(n, faults_zero, 1);
			}
		}
	}
	pm_dbg("page %llu: grant op %u flags %#x extra %#x r %d state %#x deferred %d -> %s",
	       (unsigned long long)page, op, rp.flags, rp.extra, r, s,
	       d != NULL, installed ? "installed" : "dropped");
	n->lstate[page] &= ~(LF_FETCHING | LF_ACTED | LF_STALE);
	pthread_mutex_unlock(llock_of(n, page));
	answer_deferred(n, d, &rp, buf, !r);

	uint32_t off = (rp.flags & PM_RP_DATA) ? PM_PAGE_SIZE : 0;

	for (int i = 0; i < nextra; i++) {
		bool granted = !r && (rp.extra & (1u << i));
		bool zero = rp.extra_zero & (1u << i);

		finish_extra(n, page + 1 + i, granted, excl, zero, buf + off);
		if (granted && !zero)
			off += PM_PAGE_SIZE;
	}

	/* Home unreachable, or the page's data died with a node. */
	if (node_conn_error(r) || r == -EIO) {
		node_peer_failed(n, page_home(n, page), r);
		pager_poison(n, page, r);
		return;
	}
	if (r)
		pm_err("page %llu: request to home node %d failed: %s",
		       (unsigned long long)page, page_home(n, page),
		       strerror(-r));
	if (!installed)
		pager_wake(n, page);	/* retry: refault and ask again */
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
			pthread_mutex_lock(llock_of(n, q));
			if (n->lstate[q] != LS_INVALID) {
				pthread_mutex_unlock(llock_of(n, q));
				break;
			}
			n->lstate[q] = LF_FETCHING;
			pthread_mutex_unlock(llock_of(n, q));
			k++;
		}
	}
	__atomic_store_n(&n->seq_next, page + 1 + k, __ATOMIC_RELAXED);
	return k;
}

static void handle_fault(struct pm_node *n, uint64_t addr, uint64_t fflags)
{
	int64_t t0 = pm_now_ns();
	uint64_t page;
	uint8_t s, op, flags = 0;

	if (addr < (uintptr_t)n->region ||
	    addr >= (uintptr_t)n->region + n->len) {
		struct uffdio_copy cp = {
			.dst = addr & ~(uint64_t)(PM_PAGE_SIZE - 1),
			.src = (uintptr_t)zero_page, .len = PM_PAGE_SIZE,
		};

		/* Only bounce slots are registered besides the region, and
		 * nothing reads an empty one; if it happens, zeros, no hang. */
		pm_err("fault at %#llx outside the region",
		       (unsigned long long)addr);
		if (n->bounce && addr - (uintptr_t)n->bounce <
				 PM_BOUNCE_PAGES * PM_PAGE_SIZE &&
		    ioctl(n->uffd, UFFDIO_COPY, &cp) && errno == EEXIST)
			wake_at(n, cp.dst, PM_PAGE_SIZE);
		return;
	}
	page = (addr - (uintptr_t)n->region) / PM_PAGE_SIZE;

	pthread_mutex_lock(llock_of(n, page));
	s = n->lstate[page];
	if (s & (LF_FETCHING | LF_EVICTING)) {
		/* The fetch or eviction in flight wakes every thread
		 * waiting on it when it ends. */
		if (s & LF_EVICTING)
			n->lstate[page] |= LF_WAITED;
		pthread_mutex_unlock(llock_of(n, page));
		return;
	}
	if (fflags & UFFD_PAGEFAULT_FLAG_WP) {
		if ((s & LS_MASK) != LS_SHARED) {
			/* Upgraded or dropped since: just retry. */
			pthread_mutex_unlock(llock_of(n, page));
			pager_wake(n, page);
			return;
		}
		op = PM_OP_WRITE;
		flags = PM_RQ_HAS_COPY;
		STAT_ADD(n, faults_wp, 1);
	} else {
		if ((s & LS_MASK) != LS_INVALID) {
			pthread_mutex_unlock(llock_of(n, page));
			pager_wake(n, page);
			return;
		}
		op = (fflags & UFFD_PAGEFAULT_FLAG_WRITE) ? PM_OP_WRITE
							  : PM_OP_READ;
	}
	n->lstate[page] = (s & LS_MASK) | LF_FETCHING;
	pthread_mutex_unlock(llock_of(n, page));
	if (n->limit_pages && (s & LS_MASK) == LS_INVALID)
		evict_make_room(n, 1 + n->prefetch);
	pm_dbg("page %llu: fault %#llx state %#x -> request op %u flags %#x",
	       (unsigned long long)page, (unsigned long long)fflags, s, op,
	       flags);

	if (page_home(n, page) == n->id) {
		int r = coh_local_fault(n, page, op, flags);

		if (r)
			pager_poison(n, page, r);
	} else {
		fault_remote(n, page, op, flags,
			     n->prefetch && !(flags & PM_RQ_HAS_COPY)
				     ? plan_prefetch(n, page) : 0);
	}
	STAT_ADD(n, faults_total, 1);
	stats_record_fault(n, (uint64_t)(pm_now_ns() - t0));
}

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

int pager_start(struct pm_node *n)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_PAGEFAULT_FLAG_WP,
	};
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)n->region, .len = n->len },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	const uint64_t need = (1ull << _UFFDIO_COPY) |
			      (1ull << _UFFDIO_WAKE) |
			      (1ull << _UFFDIO_WRITEPROTECT);
	int i, r;

	n->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (n->uffd < 0) {
		r = -errno;
		pm_err("userfaultfd: %s%s", strerror(errno),
		       errno == EPERM ? " (needs root, CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1)" : "");
		return r;
	}
	/* Ask for POISON (6.6+: bounded failure) and MOVE (6.8+: cheaper
	 * recalls) when the kernel has them; UFFDIO_API can be tried once
	 * per uffd, so each lesser set gets a fresh one. */
	static const uint64_t extra[] = {
		UFFD_FEATURE_POISON | UFFD_FEATURE_MOVE, UFFD_FEATURE_POISON, 0,
	};
	for (i = 0;; i++) {
		api = (struct uffdio_api){
			.api = UFFD_API,
			.features = UFFD_FEATURE_PAGEFAULT_FLAG_WP | extra[i],
		};
		if (!ioctl(n->uffd, UFFDIO_API, &api))
			break;
		r = -errno;
		close(n->uffd);
		n->uffd = -1;
		if (!extra[i]) {
			pm_err("UFFDIO_API: %s (write-protect support needed)",
			       strerror(-r));
			return r;
		}
		n->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
		if (n->uffd < 0) {
			r = -errno;
			pm_err("userfaultfd: %s", strerror(errno));
			return r;
		}
	}
	have_poison = api.features & UFFD_FEATURE_POISON;
	if (ioctl(n->uffd, UFFDIO_REGISTER, &reg)) {
		r = -errno;
		pm_err("UFFDIO_REGISTER (missing+wp) of %zu bytes: %s", n->len,
		       strerror(errno));
		return r;
	}
	if ((reg.ioctls & need) != need) {
		pm_err("userfaultfd lacks COPY/WAKE/WRITEPROTECT for this region");
		return -ENOTSUP;
	}
	if ((api.features & UFFD_FEATURE_MOVE) && n->bounce) {
		struct uffdio_register breg = {
			.range = { .start = (uintptr_t)n->bounce,
				   .len = PM_BOUNCE_PAGES * PM_PAGE_SIZE },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		/* UFFDIO_MOVE needs its destination registered with us. */
		if (ioctl(n->uffd, UFFDIO_REGISTER, &breg))
			pm_dbg("bounce slots: UFFDIO_REGISTER: %s; recalls copy",
			       strerror(errno));
		else
			n->bounce_ok = true;
	}
	n->stop_efd = eventfd(0, EFD_CLOEXEC);
	if (n->stop_efd < 0)
		return -errno;
	n->fault_threads = calloc(n->nthreads, sizeof(pthread_t));
	n->fault_args = calloc(n->nthreads, sizeof(struct fault_thread_arg));
	if (!n->fault_threads || !n->fault_args)
		return -ENOMEM;
	for (i = 0; i < n->nthreads; i++) {
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

void pager_stop(struct pm_node *n)
{
	uint64_t one = 1;
	int i;

	if (n->stop_efd >= 0 && n->fault_threads) {
		if (write(n->stop_efd, &one, sizeof(one)) != sizeof(one))
			pm_err("pager: cannot signal fault threads: %s",
			       strerror(errno));
		for (i = 0; i < n->nthreads; i++)
			pthread_join(n->fault_threads[i], NULL);
	}
	free(n->fault_threads);
	free(n->fault_args);
	n->fault_threads = NULL;
	n->fault_args = NULL;
	if (n->stop_efd >= 0)
		close(n->stop_efd);
	n->bounce_ok = false;
	if (n->uffd >= 0)
		close(n->uffd);
	n->stop_efd = n->uffd = -1;
}
