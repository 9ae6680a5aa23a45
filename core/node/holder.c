// SPDX-License-Identifier: MIT
/*
 * This node's copies of pages: grants from homes land here (installed, or
 * dropped when an action about them arrived meanwhile), and actions from
 * homes (invalidate, recall, downgrade) are applied here. The states are
 * in state.h; the directory's side of each exchange is in home.c.
 *
 * What the races rest on: a node answers "not held" only for a copy it
 * never wrote, and every page's latest data is in the home's store unless
 * an exclusive holder has written it, so "not held" loses nothing. An
 * action that finds no copy but a fetch in flight is about a grant that
 * has not landed (this try's, or an abandoned try's): it is answered "not
 * held" at once and whatever grant lands next is dropped (LF_REFUSE), so
 * no node maps a copy the home was told it does not have. Answering at
 * once matters: the grant may be queued at the home behind the very
 * transaction that is waiting for this answer.
 */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "node.h"

/* A page between its local drop and the home's answer to our EVICT. */
void holder_evicting_add(struct pm_node *n, struct evicting *ev)
{
	lk_lock(&n->evicting_lock, LK_EVICTING);
	ev->next = n->evicting;
	n->evicting = ev;
	lk_unlock(&n->evicting_lock);
}

void holder_evicting_remove(struct pm_node *n, struct evicting *ev)
{
	lk_lock(&n->evicting_lock, LK_EVICTING);
	for (struct evicting **pp = &n->evicting; *pp; pp = &(*pp)->next)
		if (*pp == ev) {
			*pp = ev->next;
			break;
		}
	lk_unlock(&n->evicting_lock);
}

/*
 * An action for a page we are evicting: the home may still list us as its
 * holder, and must not wait for our EVICT, which is queued behind the
 * action's transaction. Answered from the data in flight. Returns whether
 * buf is the payload; *found whether the page was being evicted.
 */
static bool evicting_answer(struct pm_node *n, uint64_t page, bool *found,
			    struct pm_proto_rep *rp, void *buf)
{
	struct evicting *ev;
	bool data = false;

	lk_lock(&n->evicting_lock, LK_EVICTING);
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
	lk_unlock(&n->evicting_lock);
	return data;
}

int holder_install(struct pm_node *n, uint64_t page, int ls_new,
		   const void *data, bool zero)
{
	uint8_t s = n->lstate[page], ls_old = s & LS_MASK;
	int r;

	if (ls_new == LS_EXCL && !data && !zero) {
		/* Upgrade: we hold the current data read-only. */
		if (ls_old != LS_SHARED) {
			pm_err("page %llu: upgrade grant without a copy",
			       (unsigned long long)page);
			r = -EPROTO;
			goto fail;
		}
		r = uffd_wp(n, page, 1, false); /* also wakes */
		if (r)
			goto fail;
		ls_set(n, page, LS_EXCL);
		return 0;
	}
	if (ls_old != LS_INVALID) {
		/* A fresh copy over a stale one: drop ours first. */
		r = uffd_unmap(n, page, 1);
		if (r)
			goto fail;
		ls_old = LS_INVALID;
	}
	/*
	 * Never UFFDIO_ZEROPAGE: a writer's retry would COW the zero page,
	 * replacing a present PTE, and that TLB flush costs ~40 us on these
	 * VMs, ten times copying 4 KiB of zeros into a PTE that was empty. A
	 * reader gets a write-protected copy for another reason too: a write
	 * to the zero page would COW without any fault.
	 */
	r = uffd_copy(n, page, 1, data ? data : uffd_zero_page,
		      ls_new == LS_SHARED);
	if (r && r != -EEXIST) {
		pm_err("page %llu: installing %s copy: %s",
		       (unsigned long long)page,
		       ls_new == LS_EXCL ? "exclusive" : "shared",
		       strerror(-r));
		goto fail;
	}
	ls_set(n, page, (uint8_t)ls_new);
	return 0;
fail:
	ls_set(n, page, ls_old);
	return r;
}

/*
 * A prefetched page's share of a grant (or of a failed call): install it
 * unless an action refused it, clear its fetch, wake whoever waits on it.
 */
static void finish_extra(struct pm_node *n, uint64_t q, bool granted,
			 bool excl, bool zero, const uint8_t *data)
{
	bool installed = false;

	lk_lock(llock_of(n, q), LK_LLOCK);
	if (granted && !(n->lstate[q] & LF_REFUSE) &&
	    !holder_install(n, q, excl ? LS_EXCL : LS_SHARED,
			    zero ? NULL : data, zero)) {
		installed = true;
		STAT_ADD(n, prefetched, 1);
		if (!zero)
			STAT_ADD(n, pages_received, 1);
	} else {
		ls_fetch_done(n, q);
	}
	lk_unlock(llock_of(n, q));
	if (!installed)
		uffd_wake(n, q, 1);
}

/*
 * The common case of a scan: the primary and every extra page granted
 * with data, no action refused on any of them. Then the whole
 * run goes in with one UFFDIO_COPY (its data is contiguous in buf).
 * Returns false, having changed nothing, when the run does not qualify.
 */
static bool install_run(struct pm_node *n, uint64_t page, int nextra,
			const struct pm_proto_rep *rp, const uint8_t *buf)
{
	uint16_t mask = (uint16_t)((1u << nextra) - 1);
	bool excl = rp->flags & PM_RP_EXCL, ok = true;
	int i;

	if (!(rp->flags & PM_RP_DATA) || rp->extra != mask || rp->extra_zero)
		return false;
	for (i = 0; i <= nextra; i++)
		lk_lock(llock_of(n, page + i), LK_LLOCK);
	for (i = 0; i <= nextra && ok; i++)
		ok = n->lstate[page + i] == LF_FETCHING;
	if (ok)
		ok = !uffd_copy(n, page, (uint64_t)nextra + 1, buf, !excl);
	if (ok) {
		for (i = 0; i <= nextra; i++)
			ls_set(n, page + i, excl ? LS_EXCL : LS_SHARED);
		STAT_ADD(n, faults_remote, 1);
		STAT_ADD(n, prefetched, nextra);
		STAT_ADD(n, pages_received, nextra + 1);
	}
	for (i = nextra; i >= 0; i--)
		lk_unlock(llock_of(n, page + i));
	return ok;
}

bool holder_land_grant(struct pm_node *n, uint64_t page, int nextra, int r,
		       const struct pm_proto_rep *rp, const uint8_t *buf)
{
	bool excl = rp->flags & PM_RP_EXCL, installed = false;
	uint8_t s;

	/*
	 * A grant that lands after our lease from its home ran out may be
	 * older than a write the home let happen since it declared us dead
	 * (a reply held up by a partition): dropped, like a refused one.
	 * Dropping an unwritten grant is always safe (DESIGN.md, rule 4).
	 */
	if (!r && !node_lease_held(n, page_home(n, page))) {
		pm_warn("page %llu: grant from node %d landed after the lease on its pages ran out: dropped",
			(unsigned long long)page, page_home(n, page));
		r = -ETIMEDOUT;
	}
	if (!r && nextra && install_run(n, page, nextra, rp, buf)) {
		uffd_wake(n, page, 1);	/* anyone waiting on the extras */
		return true;
	}

	/*
	 * Which grants are stale (the file header has why): any grant an
	 * action found in flight, whether it was answered "not held"
	 * (LF_REFUSE) or took the read-only copy an upgrade was for
	 * (LF_ACTED). Even a full grant then: it may have left the home
	 * before the action did, an earlier try of ours having made us
	 * owner already, and the action is about it. Dropped, it was never
	 * written, so the home's store still has its data.
	 */
	lk_lock(llock_of(n, page), LK_LLOCK);
	s = n->lstate[page];
	if (!r && !(s & (LF_REFUSE | LF_ACTED))) {
		bool data = rp->flags & PM_RP_DATA;
		bool zero = rp->flags & PM_RP_ZERO;

		if (!holder_install(n, page, excl ? LS_EXCL : LS_SHARED,
				    data ? buf : NULL, zero)) {
			installed = true;
			if (data) {
				STAT_ADD(n, faults_remote, 1);
				STAT_ADD(n, pages_received, 1);
			} else if (zero) {
				STAT_ADD(n, faults_zero, 1);
			}
		}
	}
	if (!installed)
		ls_fetch_done(n, page);
	pm_dbg("page %llu: grant flags %#x extra %#x r %d state %#x -> %s",
	       (unsigned long long)page, rp->flags, rp->extra, r, s,
	       installed ? "installed" : "dropped");
	lk_unlock(llock_of(n, page));

	uint32_t off = (rp->flags & PM_RP_DATA) ? PM_PAGE_SIZE : 0;

	for (int i = 0; i < nextra; i++) {
		bool granted = !r && (rp->extra & (1u << i));
		bool zero = rp->extra_zero & (1u << i);

		finish_extra(n, page + 1 + i, granted, excl, zero, buf + off);
		if (granted && !zero)
			off += PM_PAGE_SIZE;
	}
	return installed;
}

bool holder_apply(struct pm_node *n, uint64_t page, uint8_t op,
		  struct pm_proto_rep *rp, void *buf)
{
	uint8_t s = n->lstate[page];
	uint8_t ls = s & LS_MASK;
	bool data = ls == LS_EXCL || op != PM_OP_INVAL;

	/* Keeping a read-only copy needs a lease on its home's pages: past
	 * ours, a downgrade gives the data and the copy too ("not held"
	 * with data). */
	bool keep = op == PM_OP_DOWNGRADE &&
		    node_lease_held(n, page_home(n, page));

	if (s & LF_FETCHING)
		s |= LF_ACTED;	/* an upgrade in flight is out of date now */
	if (keep) {
		uffd_protect(n, page, ls == LS_EXCL, buf);
		ls_set(n, page, LS_SHARED | (s & ~LS_MASK));
		STAT_ADD(n, downgrades_received, 1);
	} else {
		uffd_drop(n, page, ls == LS_EXCL, data ? buf : NULL);
		ls_set(n, page, LS_INVALID | (s & ~LS_MASK));
		/* Threads blocked on our write-protect refault and ask. */
		uffd_wake(n, page, 1);
		STAT_ADD(n, invalidations_received, 1);
	}
	rp->flags = data ? PM_RP_DATA : 0;
	if (op == PM_OP_DOWNGRADE && !keep)
		rp->flags |= PM_RP_NOT_HELD;
	return data;
}

void holder_remote_action(struct pm_node *n, int tidx,
			  const struct pm_request *req,
			  const struct pm_proto_req *rq)
{
	uint8_t buf[PM_PAGE_SIZE] __attribute__((aligned(64)));
	struct pm_proto_rep rp = {
		.op = rq->op, .from = (uint16_t)n->id, .page = rq->page,
	};
	uint64_t page = rq->page;
	bool data = false, found;
	uint8_t s;

	if (page_home(n, page) != rq->from) {
		pm_warn("peer %s (node %u): %s for page %llu whose home is node %d; refused",
			req->peer, rq->from,
			rq->op == PM_OP_INVAL ? "invalidate" : "recall",
			(unsigned long long)page, page_home(n, page));
		node_reply(n, rq->from, tidx, req->conn_id, req->req_id, -EPROTO, &rp,
			   NULL, 0);
		return;
	}
	lk_lock(llock_of(n, page), LK_LLOCK);
	s = n->lstate[page];
	pm_dbg("page %llu: action %u from home, state %#x",
	       (unsigned long long)page, rq->op, s);
	if ((s & LS_MASK) == LS_INVALID && (s & LF_EVICTING)) {
		data = evicting_answer(n, page, &found, &rp, buf);
		if (!found)
			rp.flags = PM_RP_NOT_HELD;
	} else if ((s & LS_MASK) == LS_INVALID) {
		/* About a grant that has not landed: refuse it when it
		 * does (the file header has why this answers at once). */
		if (s & LF_FETCHING)
			ls_set(n, page, s | LF_REFUSE);
		rp.flags = PM_RP_NOT_HELD;
	} else {
		data = holder_apply(n, page, rq->op, &rp, buf);
	}
	lk_unlock(llock_of(n, page));
	if (data)
		STAT_ADD(n, pages_sent, 1);
	node_reply(n, rq->from, tidx, req->conn_id, req->req_id, 0, &rp,
		   data ? buf : NULL, data ? PM_PAGE_SIZE : 0);
}

/*
 * Drop this node's copies of home's pages: read-only ones (all == false),
 * or every copy. Pages with a fetch or an eviction in flight are settled
 * by their own call. Counts what went into *shared and *excl.
 */
static void drop_copies_of(struct pm_node *n, int home, bool all,
			   uint64_t *shared, uint64_t *excl)
{
	uint64_t first = (uint64_t)home * n->per_home;
	uint64_t end = first + n->per_home < n->npages ? first + n->per_home
						       : n->npages;

	*shared = *excl = 0;
	for (uint64_t page = first; page < end; page++) {
		uint8_t s;

		lk_lock(llock_of(n, page), LK_LLOCK);
		s = n->lstate[page];
		if (s == LS_SHARED || (all && s == LS_EXCL)) {
			uffd_drop(n, page, s == LS_EXCL, NULL);
			ls_set(n, page, LS_INVALID);
			(*(s == LS_EXCL ? excl : shared))++;
		}
		lk_unlock(llock_of(n, page));
	}
	if (*shared + *excl)
		uffd_wake(n, first, end - first);
}

void holder_home_restarted(struct pm_node *n, int home)
{
	uint64_t shared, excl;

	drop_copies_of(n, home, true, &shared, &excl);
	if (excl)
		pm_err("node %d restarted: dropped %llu read-only and %llu exclusive copies of its pages; the exclusive ones' data is lost (it has no home to go back to)",
		       home, (unsigned long long)shared,
		       (unsigned long long)excl);
	else
		pm_info("node %d restarted: dropped %llu read-only copies of its pages",
			home, (unsigned long long)shared);
}

void holder_lease_lapsed(struct pm_node *n, int home)
{
	uint64_t dropped, excl;

	/* Only plain read-only copies: an exclusive one is nobody else's
	 * to write (the home marks it lost if it gives up on us). */
	drop_copies_of(n, home, false, &dropped, &excl);
	pm_log(dropped ? PM_LOG_ERROR : PM_LOG_INFO,
	       "no answer from home node %d for 3/4 of cluster.failure_timeout_ms: dropped %llu read-only copies of its pages, which it may let others write once it declares this node dead",
	       home, (unsigned long long)dropped);
}
