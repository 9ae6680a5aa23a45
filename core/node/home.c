// SPDX-License-Identifier: MIT
/*
 * The home side of coherence (the protocol is in DESIGN.md beside this
 * file, the states in state.h): the directory, which serialises requests
 * per page, and the transactions that change it: a request arrives
 * (home_request, or home_local_fault for this node's own faults), runs
 * inline when it needs no other node, else on a worker, asks the holders
 * to act (act_on), updates the entry and delivers the grant.
 * Single writer / many readers, invalidation based.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "node.h"

/* The bounce slot holding the entry's data (e->bounce set). */
static uint8_t *bounce_slot(struct pm_node *n, const struct dir_entry *e)
{
	return n->bounce + (e->bounce - 1) * PM_PAGE_SIZE;
}

/*
 * Where a grant's data is: a bounce slot, the store, or while the store is
 * behind the home's own copy, write-protected and mapped (serving from it
 * spares copying into a store page; the first touch of one costs ~65 us on
 * these VMs). Callers hold the entry (dlock or busy), so that copy stays
 * put meanwhile.
 */
static const uint8_t *data_of(struct pm_node *n, struct dir_entry *e,
			      uint64_t page)
{
	if (e->bounce)
		return bounce_slot(n, e);
	return e->store_behind ? page_addr(n, page) : store_of(n, page);
}

/*
 * A recall moved the home's copy into a bounce slot (uffd_move_out) and
 * the grant has left: now the store gets the data, off the requester's
 * path (entry still held).
 */
static void bounce_settle(struct pm_node *n, struct dir_entry *e,
			  uint64_t page)
{
	if (!e->bounce)
		return;
	memcpy(store_of(n, page), bounce_slot(n, e), PM_PAGE_SIZE);
	uffd_bounce_done(n);
	e->bounce = 0;
}

/* Append t to the queue head/tail (its lock held). */
static void txn_append(struct txn **head, struct txn **tail, struct txn *t)
{
	t->next = NULL;
	if (*tail)
		(*tail)->next = t;
	else
		*head = t;
	*tail = t;
}

/* Queue t behind the entry's transaction (dlock held, entry busy). */
static void dir_enqueue(struct pm_node *n, struct dir_entry *e,
			struct txn *t)
{
	txn_append(&e->qhead, &e->qtail, t);
	__atomic_add_fetch(&n->dir_queued, 1, __ATOMIC_RELAXED);
}

/* The rest reads in the order a request travels: it arrives, runs
 * (inline or on a worker), asks holders to act, and its grant leaves. */
static void evict_list(struct pm_node *n, int tidx,
		       const struct pm_request *req,
		       const struct pm_proto_req *rq);
static bool needs_remote(struct pm_node *n, const struct dir_entry *e,
			 const struct txn *t);
static void queue_work(struct pm_node *n, struct txn *t);
static void txn_run(struct pm_node *n, struct txn *t);
static void txn_finish(struct pm_node *n, uint64_t page);
static void complete_local(struct pm_node *n, struct txn *t, int r);
static uint8_t txn_execute(struct pm_node *n, struct dir_entry *e,
			   const struct txn *t);
static bool act_on(struct pm_node *n, uint64_t page, int who, uint8_t op,
		   int reader);
static int txn_deliver(struct pm_node *n, struct txn *t, uint8_t gflags);
static int txn_deliver_grant(struct pm_node *n, struct txn *t, uint8_t gflags);
static void grant_extras(struct pm_node *n, const struct txn *t,
			 struct pm_proto_rep *rp, uint8_t *buf, uint32_t *off);

/* A READ, WRITE or EVICT from another node, on its receive thread. */
void home_request(struct pm_node *n, int tidx, const struct pm_request *req,
		  const struct pm_proto_req *rq)
{
	struct txn local = {
		.page = rq->page, .from = rq->from, .op = rq->op,
		.flags = rq->flags, .tidx = tidx, .conn_id = req->conn_id,
		.req_id = req->req_id,
		.nextra = rq->op == PM_OP_EVICT ? 0 : (uint8_t)rq->arg,
		.data = req->payload_len ? (uint8_t *)req->payload : NULL,
	};
	struct dir_entry *e;
	struct txn *t;

	if (rq->op == PM_OP_EVICT && (rq->flags & PM_RQ_CLEAN_LIST)) {
		evict_list(n, tidx, req, rq);
		return;
	}
	if (rq->page < n->home_first ||
	    rq->page - n->home_first >= n->home_count ||
	    rq->arg > PM_PREFETCH_MAX ||
	    rq->page - n->home_first + rq->arg >= n->home_count) {
		struct pm_proto_rep rp = { .op = rq->op, .page = rq->page };

		pm_warn("peer %s (node %u): request for page %llu (+%u), not homed here; refused",
			req->peer, rq->from, (unsigned long long)rq->page,
			rq->arg);
		node_reply(n, rq->from, tidx, req->conn_id, req->req_id, -EPROTO, &rp,
			   NULL, 0);
		return;
	}
	if (rq->op != PM_OP_EVICT &&
	    !__atomic_load_n(&n->serving, __ATOMIC_ACQUIRE)) {
		/* Still starting: it may yet learn its store is lost. */
		struct pm_proto_rep rp = { .op = rq->op, .page = rq->page };

		node_reply(n, rq->from, tidx, req->conn_id, req->req_id,
			   -EAGAIN, &rp, NULL, 0);
		return;
	}
	e = dir_of(n, rq->page);
	lk_lock(dlock_of(n, rq->page), LK_DLOCK);
	if (!e->busy && !needs_remote(n, e, &local)) {
		/* Fast path, inline on the receive thread: no hand-off. */
		txn_deliver(n, &local, txn_execute(n, e, &local));
		lk_unlock(dlock_of(n, rq->page));
		return;
	}
	/* Queued: it outlives the request, so does its page. */
	t = malloc(sizeof(*t) + (local.data ? PM_PAGE_SIZE : 0));
	if (!t) {
		struct pm_proto_rep rp = { .op = rq->op, .page = rq->page };

		lk_unlock(dlock_of(n, rq->page));
		node_reply(n, rq->from, tidx, req->conn_id, req->req_id, -ENOMEM, &rp,
			   NULL, 0);
		return;
	}
	*t = local;
	if (local.data) {
		t->data = (uint8_t *)(t + 1);
		memcpy(t->data, local.data, PM_PAGE_SIZE);
	}
	if (e->busy) {
		dir_enqueue(n, e, t);
		lk_unlock(dlock_of(n, rq->page));
		return;
	}
	e->busy = 1;
	lk_unlock(dlock_of(n, rq->page));
	queue_work(n, t);
}

/*
 * Clean copies a node dropped: take it out of each page's sharers. The
 * answer does not wait for busy pages (their removal is queued): a copy
 * the home has the data of needs no more care.
 */
static void evict_list(struct pm_node *n, int tidx,
		       const struct pm_request *req,
		       const struct pm_proto_req *rq)
{
	struct pm_proto_rep rp = { .op = rq->op, .from = (uint16_t)n->id };
	const uint8_t *pl = req->payload;

	for (uint32_t i = 0; i < rq->arg; i++) {
		struct txn t = {
			.from = rq->from, .op = PM_OP_EVICT, .noreply = true,
		};
		struct dir_entry *e;

		memcpy(&t.page, pl + i * sizeof(uint64_t), sizeof(t.page));
		if (t.page < n->home_first ||
		    t.page - n->home_first >= n->home_count) {
			pm_warn("peer %s (node %u): eviction of page %llu, not homed here; ignored",
				req->peer, rq->from,
				(unsigned long long)t.page);
			continue;
		}
		e = dir_of(n, t.page);
		lk_lock(dlock_of(n, t.page), LK_DLOCK);
		if (!e->busy) {
			txn_execute(n, e, &t);
		} else {
			struct txn *q = malloc(sizeof(*q));

			if (q) {
				*q = t;
				dir_enqueue(n, e, q);
			}
		}
		lk_unlock(dlock_of(n, t.page));
	}
	node_reply(n, rq->from, tidx, req->conn_id, req->req_id, 0, &rp, NULL, 0);
}

int home_local_fault(struct pm_node *n, uint64_t page, uint8_t op,
		     uint8_t flags)
{
	struct txn t = {
		.page = page, .from = n->id, .op = op, .flags = flags,
		.local = true,
	};
	struct dir_entry *e = dir_of(n, page);
	int r;

	lk_lock(dlock_of(n, page), LK_DLOCK);
	if (e->busy) {
		dir_enqueue(n, e, &t);
		lk_unlock(dlock_of(n, page));
		lk_lock(&n->txn_lock, LK_TXN);
		while (!t.done)
			pthread_cond_wait(&n->txn_cv, &n->txn_lock);
		lk_unlock(&n->txn_lock);
		return t.result;
	}
	if (!needs_remote(n, e, &t)) {
		r = txn_deliver(n, &t, txn_execute(n, e, &t));
		lk_unlock(dlock_of(n, page));
		return r;
	}
	e->busy = 1;
	lk_unlock(dlock_of(n, page));
	r = txn_deliver(n, &t, txn_execute(n, e, &t));
	txn_finish(n, page);
	return r;
}

/*
 * Migratory sharing: a page that one node after another reads and then at
 * once writes (a lock, a counter, a queue's head) costs a read fault, a
 * write-protect fault and an upgrade per hand-off. Once the directory has
 * seen its sole reader upgrade, a read of it is granted exclusive:
 * one fault and one round trip. A holder that gives such a copy back
 * unwritten (its data equals the store's) ends it: readers that never
 * write share again. Not for prefetched pages (one grant has one mode).
 */
static bool read_excl(const struct pm_node *n, const struct dir_entry *e,
		      const struct txn *t)
{
	return t->op == PM_OP_READ && e->migratory && n->cfg.migratory &&
	       !t->extra && !t->nextra;
}

/* Does t need actions by other nodes over the network? (dlock held) */
static bool needs_remote(struct pm_node *n, const struct dir_entry *e,
			 const struct txn *t)
{
	uint64_t others;

	if (e->state == DIR_EXCL)
		return e->owner != n->id &&
		       (e->owner != t->from ||
			(t->op == PM_OP_READ && !read_excl(n, e, t)));
	if (e->state == DIR_SHARED &&
	    (t->op == PM_OP_WRITE || read_excl(n, e, t))) {
		others = e->sharers & ~(1ull << t->from) & ~(1ull << n->id);
		return others != 0;
	}
	return false;
}

static void queue_work(struct pm_node *n, struct txn *t)
{
	pm_dbg("page %llu: queued for a worker (op %u from node %d)",
	       (unsigned long long)t->page, t->op, t->from);
	lk_lock(&n->wq_lock, LK_WQ);
	txn_append(&n->wq_head, &n->wq_tail, t);
	pthread_cond_signal(&n->wq_cv);
	lk_unlock(&n->wq_lock);
}

static void *worker(void *arg)
{
	struct pm_node *n = arg;
	struct txn *t;

	pm_log_use(&n->log);
	for (;;) {
		lk_lock(&n->wq_lock, LK_WQ);
		while (!n->wq_head && !n->stopping)
			pthread_cond_wait(&n->wq_cv, &n->wq_lock);
		t = n->wq_head;
		if (t) {
			n->wq_head = t->next;
			if (!n->wq_head)
				n->wq_tail = NULL;
		}
		lk_unlock(&n->wq_lock);
		if (!t)
			return NULL;
		txn_run(n, t);
	}
}

/* Run a transaction on a thread that may wait on the network. */
static void txn_run(struct pm_node *n, struct txn *t)
{
	struct dir_entry *e = dir_of(n, t->page);
	uint64_t page = t->page;
	int r;

	r = txn_deliver(n, t, txn_execute(n, e, t));
	if (t->local)
		complete_local(n, t, r);
	else
		free(t);
	txn_finish(n, page);
}

/* The transaction on page ended: start the next queued one, or idle. */
static void txn_finish(struct pm_node *n, uint64_t page)
{
	struct dir_entry *e = dir_of(n, page);
	struct txn *next;

	lk_lock(dlock_of(n, page), LK_DLOCK);
	next = e->qhead;
	if (next) {
		e->qhead = next->next;
		if (!e->qhead)
			e->qtail = NULL;
		__atomic_sub_fetch(&n->dir_queued, 1, __ATOMIC_RELAXED);
	} else {
		e->busy = 0;
	}
	lk_unlock(dlock_of(n, page));
	if (next)
		queue_work(n, next);
}

static void complete_local(struct pm_node *n, struct txn *t, int r)
{
	lk_lock(&n->txn_lock, LK_TXN);
	t->result = r;
	t->done = true;
	pthread_cond_broadcast(&n->txn_cv);
	lk_unlock(&n->txn_lock);
}

/*
 * Run t's transaction: actions, then the directory update. The entry is
 * busy or its dlock held, so nothing else changes it or the store.
 * Returns the grant flags.
 */
static uint8_t txn_execute(struct pm_node *n, struct dir_entry *e,
			   const struct txn *t)
{
	uint64_t me = 1ull << t->from;
	bool had_copy;

	pm_dbg("page %llu: home: op %u flags %#x from %d; dir state %u owner %u sharers %#llx",
	       (unsigned long long)t->page, t->op, t->flags, t->from, e->state,
	       e->owner, (unsigned long long)e->sharers);
	if (e->lost)
		return PM_RP_LOST;
	if (t->op == PM_OP_EVICT) {
		/* Only what the directory still gives it: an action may have
		 * taken the copy already (answered from the data in flight). */
		if (e->state == DIR_EXCL && e->owner == t->from) {
			if (t->data) {
				memcpy(store_of(n, t->page), t->data,
				       PM_PAGE_SIZE);
				e->written = 1;
				e->store_behind = 0;
			}
			dir_set(n, t->page, DIR_UNOWNED, 0, 0);
		} else if (e->state == DIR_SHARED) {
			dir_drop_sharer(n, t->page, t->from);
		}
		return 0;
	}

	if (t->op == PM_OP_READ && !read_excl(n, e, t)) {
		uint64_t sharers = e->state == DIR_SHARED ? e->sharers : 0;

		/*
		 * A read from the node named owner is a retry after it
		 * dropped its grant unwritten, or a try abandoned at its
		 * deadline arriving after a later one's grant was installed
		 * and written. Only that node knows which, so it is asked:
		 * data, or "not held". (Granting the store as it stands
		 * would serve the old value to every later reader.)
		 */
		if (e->state == DIR_EXCL &&
		    (e->owner != t->from || t->from != n->id)) {
			int owner = e->owner;
			bool kept = act_on(n, t->page, owner, PM_OP_DOWNGRADE,
					   t->from);

			if (e->lost)
				return PM_RP_LOST;
			sharers = kept ? 1ull << owner : 0;
		}
		/* UNOWNED, or the owner itself lost its copy: only us. */
		dir_set(n, t->page, DIR_SHARED, 0, sharers | me);
		return e->written ? PM_RP_DATA : PM_RP_ZERO;
	}

	had_copy = (t->flags & PM_RQ_HAS_COPY) && e->state == DIR_SHARED &&
		   (e->sharers & me);
	/* Its sole reader upgrades: the next reader will write too. */
	if (had_copy && !(e->sharers & ~(me | (1ull << n->id))))
		e->migratory = 1;
	if (e->state == DIR_SHARED) {
		for (int i = 0; i < n->nodes; i++)
			if (i != t->from && (e->sharers & (1ull << i)))
				act_on(n, t->page, i, PM_OP_INVAL, t->from);
	} else if (e->state == DIR_EXCL && e->owner != t->from) {
		act_on(n, t->page, e->owner, PM_OP_RECALL, t->from);
		if (e->lost)
			return PM_RP_LOST;
	}
	dir_set(n, t->page, DIR_EXCL, (uint16_t)t->from, 0);
	if (had_copy)
		return PM_RP_EXCL;
	return PM_RP_EXCL | (e->written ? PM_RP_DATA : PM_RP_ZERO);
}

/*
 * Ask node `who` to act on page; its data, if any, lands in the store.
 * Returns whether `who` still holds a copy afterwards (a downgraded one).
 * `reader` is the node the action is for (home_downgrade_own looks at it).
 */
static bool act_on(struct pm_node *n, uint64_t page, int who, uint8_t op,
		   int reader)
{
	struct dir_entry *e = dir_of(n, page);
	struct pm_proto_rep rp = { 0 };
	uint8_t *st = store_of(n, page);
	uint32_t plen = PM_PAGE_SIZE;
	int r;

	if (who == n->id) {
		uint8_t *slot;
		bool held;

		lk_lock(llock_of(n, page), LK_LLOCK);
		held = (n->lstate[page] & LS_MASK) != LS_INVALID;
		if (held && op == PM_OP_DOWNGRADE &&
		    (n->lstate[page] & LS_MASK) == LS_EXCL) {
			/* Our copy becomes the data others read: no copy. */
			home_downgrade_own(n, page, reader);
		} else if (held && reader != n->id &&
			   (op == PM_OP_RECALL ||
			    (op == PM_OP_INVAL && e->store_behind)) &&
			   (slot = uffd_move_out(n, page))) {
			/* The data goes out from the slot; bounce_settle
			 * fills the store after the grant has left. */
			uint8_t s = n->lstate[page];

			if (s & LF_FETCHING)
				s |= LF_ACTED;
			ls_set(n, page, LS_INVALID | (s & ~LS_MASK));
			STAT_ADD(n, invalidations_received, 1);
			e->bounce = (uint8_t)(1 + (slot - n->bounce) /
						      PM_PAGE_SIZE);
			e->written = 1;
			e->store_behind = 0;
			if (op == PM_OP_RECALL)
				home_recall_ahead(n, page, reader);
		} else if (held &&
			   holder_apply(n, page,
					op == PM_OP_INVAL && e->store_behind ?
						PM_OP_RECALL : op,
					&rp, st)) {
			/* Dropping the copy the store was behind: keep it. */
			e->written = 1;
			e->store_behind = 0;
		}
		lk_unlock(llock_of(n, page));
		return held && op == PM_OP_DOWNGRADE;
	}
	struct pm_proto_req rq = {
		.op = op, .from = (uint16_t)n->id, .page = page,
	};

	uint8_t buf[PM_PAGE_SIZE] __attribute__((aligned(64)));

	/*
	 * Into a bounce buffer: a call that fails half-way must not leave a
	 * torn page in the store. The holder may be slow or paused: it is
	 * waited for until the failure detector says it is dead, never
	 * given up on earlier, since it may still be using its copy. An
	 * invalidation can be sent twice; a recall or downgrade cannot (a
	 * second would find the copy gone, its data in the first answer).
	 */
	STAT_ADD(n, invalidations_sent, 1);
	r = node_call_alive(n, who, &rq, NULL, 0, &rp, buf, &plen,
			    op == PM_OP_INVAL);
	if (r) {
		/* A sharer's copy can go: the home has the data. An exclusive
		 * holder took the only current copy with it. */
		if (op != PM_OP_INVAL) {
			dir_lose(n, page);
			pm_err("page %llu: its only copy was on node %d, %s (%s): lost; faults on it get SIGBUS",
			       (unsigned long long)page, who,
			       r == -EHOSTDOWN ? "declared dead"
					       : "which never answered",
			       strerror(-r));
		}
		return false;
	}
	if (rp.flags & PM_RP_DATA) {
		if (plen != PM_PAGE_SIZE) {
			pm_err("page %llu: node %d returned %u bytes, not a page",
			       (unsigned long long)page, who, plen);
			return false;
		}
		/* Given back as it was granted: whoever read it did not
		 * write it, so the page is not migratory (any more). */
		if (e->migratory && op != PM_OP_INVAL && e->written &&
		    !e->store_behind && !e->bounce && !memcmp(st, buf, PM_PAGE_SIZE))
			e->migratory = 0;
		memcpy(st, buf, PM_PAGE_SIZE);
		STAT_ADD(n, pages_received, 1);
		e->written = 1;
		e->store_behind = 0;
	}
	/* NOT_HELD with data: answered from a grant it then dropped, or
	 * past its lease. An answer that came after the detector declared
	 * the holder dead keeps no sharer: its copies are forgotten. */
	return op == PM_OP_DOWNGRADE && !(rp.flags & PM_RP_NOT_HELD) &&
	       !node_peer_dead(n, who);
}

static int txn_deliver(struct pm_node *n, struct txn *t, uint8_t gflags)
{
	int r = txn_deliver_grant(n, t, gflags);

	bounce_settle(n, dir_of(n, t->page), t->page);
	return r;
}

/* Hand the grant to the requester. */
static int txn_deliver_grant(struct pm_node *n, struct txn *t, uint8_t gflags)
{
	struct pm_proto_rep rp = {
		.op = t->op, .flags = gflags, .from = (uint16_t)n->id,
		.page = t->page,
	};
	bool data = gflags & PM_RP_DATA;
	const uint8_t *st = data_of(n, dir_of(n, t->page), t->page);
	int r;

	if (t->op == PM_OP_EVICT && t->noreply)
		return 0;
	if (t->op == PM_OP_EVICT)
		return node_reply(n, t->from, t->tidx, t->conn_id, t->req_id,
				  (gflags & PM_RP_LOST) ? -EIO : 0, &rp, NULL,
				  0);
	if (gflags & PM_RP_LOST) {
		if (!t->local)
			return node_reply(n, t->from, t->tidx, t->conn_id, t->req_id,
					  -EIO, &rp, NULL, 0);
		lk_lock(llock_of(n, t->page), LK_LLOCK);
		ls_fetch_done(n, t->page);
		lk_unlock(llock_of(n, t->page));
		return -EIO;
	}
	if (!t->local) {
		STAT_ADD(n, requests_served, 1);
		if (data)
			STAT_ADD(n, pages_sent, 1);
		if (t->nextra) {
			uint8_t buf[PM_PAYLOAD_MAX] __attribute__((aligned(64)));
			uint32_t off = 0;

			if (data) {
				memcpy(buf, st, PM_PAGE_SIZE);
				off = PM_PAGE_SIZE;
			}
			grant_extras(n, t, &rp, buf, &off);
			return node_reply(n, t->from, t->tidx, t->conn_id, t->req_id, 0,
					  &rp, buf, off);
		}
		return node_reply(n, t->from, t->tidx, t->conn_id, t->req_id, 0, &rp,
				  data ? st : NULL, data ? PM_PAGE_SIZE : 0);
	}
	lk_lock(llock_of(n, t->page), LK_LLOCK);
	/* This node's own fault: install as its requester side does. */
	r = holder_install(n, t->page,
			   (gflags & PM_RP_EXCL) ? LS_EXCL : LS_SHARED,
			   data ? st : NULL, gflags & PM_RP_ZERO);
	lk_unlock(llock_of(n, t->page));
	if (r)
		uffd_wake(n, t->page, 1);
	else if (data)
		STAT_ADD(n, faults_local, 1);
	else if (gflags & PM_RP_ZERO)
		STAT_ADD(n, faults_zero, 1);
	return r;
}

/*
 * Prefetch: grant the pages after t's too, each that can be granted at
 * once (entry idle, no other node to ask), appending their data to buf
 * at *off. Takes one more dlock at a time, in ascending page order.
 */
static void grant_extras(struct pm_node *n, const struct txn *t,
			 struct pm_proto_rep *rp, uint8_t *buf, uint32_t *off)
{
	for (int i = 0; i < t->nextra; i++) {
		struct txn x = {
			.page = t->page + 1 + i, .from = t->from, .op = t->op,
			.extra = true,
		};
		struct dir_entry *e = dir_of(n, x.page);
		uint8_t g;

		lk_lock(dlock_of(n, x.page), LK_DLOCK);
		if (e->busy || e->lost || needs_remote(n, e, &x)) {
			lk_unlock(dlock_of(n, x.page));
			continue;
		}
		g = txn_execute(n, e, &x);
		rp->extra |= (uint16_t)(1u << i);
		if (g & PM_RP_ZERO) {
			rp->extra_zero |= (uint16_t)(1u << i);
		} else {
			memcpy(buf + *off, data_of(n, e, x.page), PM_PAGE_SIZE);
			*off += PM_PAGE_SIZE;
			STAT_ADD(n, pages_sent, 1);
		}
		bounce_settle(n, e, x.page);
		lk_unlock(dlock_of(n, x.page));
	}
}

void home_forget_node(struct pm_node *n, int who)
{
	uint64_t bit = 1ull << who, lost = 0, busy = 0;

	for (uint64_t i = 0; i < n->home_count; i++) {
		uint64_t page = n->home_first + i;
		struct dir_entry *e = &n->dir[i];

		lk_lock(dlock_of(n, page), LK_DLOCK);
		if (e->busy) {
			/* Its transaction meets the failure itself. */
			busy++;
		} else if (e->state == DIR_EXCL && e->owner == who) {
			dir_lose(n, page);
			lost++;
		} else if (e->state == DIR_SHARED && (e->sharers & bit)) {
			dir_drop_sharer(n, page, who);
		}
		lk_unlock(dlock_of(n, page));
	}
	if (lost)
		pm_err("node %d's copies forgotten: %llu page(s) it held exclusively are lost (faults on them get SIGBUS)",
		       who, (unsigned long long)lost);
}

void home_lose_all(struct pm_node *n, int who, uint64_t earlier)
{
	uint64_t lost = 0;

	for (uint64_t i = 0; i < n->home_count; i++) {
		uint64_t page = n->home_first + i;

		lk_lock(dlock_of(n, page), LK_DLOCK);
		if (!n->dir[i].busy && !n->dir[i].lost) {
			dir_lose(n, page);
			lost++;
		}
		lk_unlock(dlock_of(n, page));
	}
	pm_err("this node rejoined a running cluster (node %d knew its earlier incarnation %#llx): the %llu pages homed here were lost with that run's memory; faults on them get SIGBUS",
	       who, (unsigned long long)earlier, (unsigned long long)lost);
}

bool home_evict_own(struct pm_node *n, uint64_t page)
{
	struct dir_entry *e = dir_of(n, page);
	bool done = false;
	uint8_t s;

	lk_lock(dlock_of(n, page), LK_DLOCK);
	if (e->busy) {
		lk_unlock(dlock_of(n, page));
		return false;
	}
	lk_lock(llock_of(n, page), LK_LLOCK);
	s = n->lstate[page];
	if ((s & LS_MASK) != LS_INVALID && !(s & ~LS_MASK)) {
		bool excl = (s & LS_MASK) == LS_EXCL;

		/* The store may be behind our copy: then it takes it. */
		uffd_drop(n, page, excl,
			  excl || e->store_behind ? store_of(n, page) : NULL);
		uffd_wake(n, page, 1);
		ls_set(n, page, LS_INVALID);
		if (excl || e->store_behind)
			e->written = 1;
		e->store_behind = 0;
		if (excl) {
			dir_set(n, page, DIR_UNOWNED, 0, 0);
			STAT_ADD(n, writebacks, 1);
		} else {
			dir_drop_sharer(n, page, n->id);
		}
		done = true;
	}
	lk_unlock(llock_of(n, page));
	lk_unlock(dlock_of(n, page));
	return done;
}

int home_workers_start(struct pm_node *n)
{
	int r;

	for (n->nworkers = 0; n->nworkers < 2; n->nworkers++) {
		r = pthread_create(&n->workers[n->nworkers], NULL, worker, n);
		if (r)
			return -r;
	}
	return 0;
}

void home_workers_stop(struct pm_node *n)
{
	lk_lock(&n->wq_lock, LK_WQ);
	n->stopping = true;
	pthread_cond_broadcast(&n->wq_cv);
	lk_unlock(&n->wq_lock);
	for (int i = 0; i < n->nworkers; i++)
		pthread_join(n->workers[i], NULL);
	n->nworkers = 0;
}

int home_init(struct pm_node *n)
{
	size_t slen = n->home_count * PM_PAGE_SIZE;

	n->dir = calloc(n->home_count ? n->home_count : 1, sizeof(*n->dir));
	if (!n->dir)
		return -ENOMEM;
	pthread_mutex_init(&n->bounce_lock, NULL);
	/* Without it recalls copy (uffd_move_out): not fatal. */
	n->bounce = mmap(NULL, PM_BOUNCE_PAGES * PM_PAGE_SIZE,
			 PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (n->bounce == MAP_FAILED)
		n->bounce = NULL;
	else
		madvise(n->bounce, PM_BOUNCE_PAGES * PM_PAGE_SIZE,
			MADV_NOHUGEPAGE);
	if (!slen)
		return 0;
	/* Untouched store pages cost nothing until data arrives. */
	n->store = mmap(NULL, slen, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (n->store == MAP_FAILED) {
		n->store = NULL;
		return -errno;
	}
	return 0;
}

void home_fini(struct pm_node *n)
{
	struct txn *t;

	if (n->store)
		munmap(n->store, n->home_count * PM_PAGE_SIZE);
	n->store = NULL;
	/* Here, not in fault_stop: receive threads may recall until the
	 * plugins are closed. */
	if (n->bounce)
		munmap(n->bounce, PM_BOUNCE_PAGES * PM_PAGE_SIZE);
	n->bounce = NULL;
	/* Only when some entry has a queue: reading every entry would
	 * touch the whole table (100 s for a 1 TiB region). */
	for (uint64_t i = 0; n->dir && n->dir_queued && i < n->home_count;
	     i++) {
		struct txn *t = n->dir[i].qhead;

		while (t) {
			struct txn *next = t->next;

			if (!t->local)
				free(t);
			t = next;
		}
	}
	free(n->dir);
	n->dir = NULL;
	/* Queued after the workers stopped: refused, never run. */
	while ((t = n->wq_head)) {
		n->wq_head = t->next;
		if (!t->local)
			free(t);
	}
	n->wq_tail = NULL;
}
