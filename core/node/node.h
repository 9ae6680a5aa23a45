/* SPDX-License-Identifier: MIT */
/* A node's internal state, shared by node.c (start-up, peers, barrier),
 * coh.c (home directory and coherence actions) and pager.c (userfaultfd). */
#ifndef PM_NODE_H
#define PM_NODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <pagemesh/pagemesh.h>
#include <pagemesh/transport.h>

#include "cfg.h"
#include "loader.h"
#include "proto.h"

#define PM_NLOCKS 1024	/* striped page locks */
#define PM_MAX_FAULT_THREADS 64	/* pager.threads at most */
#define PM_BOUNCE_PAGES 64	/* > 33: emptied with one full TLB flush */

/* Node-local page state (lstate[]): low bits the mapping, high bits flags. */
enum {
	LS_INVALID = 0,		/* not mapped here */
	LS_SHARED = 1,		/* mapped read-only (uffd-wp) */
	LS_EXCL = 2,		/* mapped writable */
	LS_MASK = 3,
	LF_FETCHING = 0x10,	/* a request to home is in flight */
	LF_ACTED = 0x20,	/* home acted on our old copy while we were
				 * upgrading: an upgrade grant is stale */
	LF_STALE = 0x40,	/* whatever grant is in flight is stale */
	LF_EVICTING = 0x80,	/* dropped here, home not yet told (evict.c) */
	LF_WAITED = 0x08,	/* a fault found it LF_EVICTING: wake it */
};

/* Directory state at home. */
enum { DIR_UNOWNED = 0, DIR_SHARED = 1, DIR_EXCL = 2 };

struct txn;

struct dir_entry {
	uint8_t state;		/* DIR_* */
	uint8_t zero;		/* never written anywhere: store is zeros */
	uint8_t busy;		/* a transaction owns the entry */
	uint8_t lost;		/* its only copy died with its holder */
	uint8_t stale;		/* the store is behind: the current data is
				 * the home's own mapped copy (this node is a
				 * sharer, or the owner) or another owner's */
	uint8_t bounce;		/* 1 + slot: the data is in that bounce slot
				 * until the grant is delivered */
	uint16_t owner;		/* DIR_EXCL */
	uint64_t sharers;	/* DIR_SHARED: bit per node */
	struct txn *qhead, *qtail;	/* requests waiting for !busy */
};

/* A request at home: from a remote node (answered with reply()) or from
 * this node's own fault thread (local; installed in place). */
struct txn {
	struct txn *next;
	uint64_t page;
	int from;
	uint8_t op;		/* PM_OP_READ / PM_OP_WRITE */
	uint8_t flags;		/* PM_RQ_* */
	uint8_t nextra;		/* prefetch: pages after `page` wanted too */
	uint8_t *data;		/* EVICT of an exclusive copy: its page */
	bool noreply;		/* part of a clean-eviction list */
	bool local;
	/* remote */
	int tidx;
	uint64_t conn_id, req_id;
	/* local: the waiting fault thread */
	bool done;
	int result;
};

/* An action from home that arrived while our own fetch was in flight:
 * answered by the fault thread when the grant lands. */
struct deferred {
	struct deferred *next;
	uint64_t page;
	uint8_t op;
	int tidx;
	uint64_t conn_id, req_id;
};

struct peer {
	int id;
	int tidx;			/* plugin used to reach it, -1 none */
	char endpoint[PM_ENDPOINT_MAX];
	struct pm_tconn *conn;		/* outgoing, NULL until connected:
					 * the one for every other thread */
	/* As many more as fault threads. A fault's call takes the first
	 * one no other call is on (node_call), so each caller reads its own
	 * replies (no reply costs a wake-up of another thread), and faults
	 * one at a time all go through fconn[0]. */
	struct pm_tconn *fconn[PM_MAX_FAULT_THREADS];
	uint8_t fbusy[PM_MAX_FAULT_THREADS];	/* fconn[k] carries a call */
	char last_err[512];		/* why the last connect failed */
};

struct listener_ctx {
	struct pm_node *node;
	int tidx;
};

struct node_stats {
	uint64_t faults_zero, faults_local, faults_remote, faults_wp;
	uint64_t faults_total, pages_sent, pages_received;
	uint64_t inval_sent, inval_received, downgrades_received;
	uint64_t requests_served, bytes_sent, bytes_received;
	uint64_t poisoned, peer_failures, prefetched;
	uint64_t evictions, writebacks;
	uint64_t downgrades_ahead;	/* own pages protected ahead of a scan */
	uint64_t recalls_ahead;		/* own pages given up ahead of a writer */
	uint64_t fault_sum_ns;
	uint64_t hist[PM_HIST_BUCKETS];
	/* for /metrics */
	struct {
		uint64_t bytes_sent, bytes_received;
		uint64_t msgs_sent, msgs_received, errors;
	} tr[CFG_MAX_TRANSPORTS];
	struct {
		uint64_t bytes_sent, bytes_received;
	} peer[CFG_MAX_NODES];
	uint64_t op_sent[PM_OP_MAX], op_received[PM_OP_MAX];
};

struct pm_node {
	struct cfg cfg;
	int id, nodes;
	int timeout_ms;

	uint8_t *region;
	size_t len;
	uint64_t npages;
	uint64_t per_home;		/* pages per home (block split) */
	uint64_t home_first, home_count;	/* pages homed here */
	uint8_t *store;			/* home copies of homed pages */
	struct dir_entry *dir;		/* one per homed page */
	uint8_t *lstate;		/* one per region page */
	pthread_mutex_t llock[PM_NLOCKS];	/* lstate, deferred */
	pthread_mutex_t dlock[PM_NLOCKS];	/* dir entries */
	struct deferred *deferred;	/* under dfr_lock */
	pthread_mutex_t dfr_lock;

	/* bounded local cache (evict.c) */
	uint64_t limit_pages;		/* pager.local_limit, 0 = none */
	uint64_t resident;		/* pages mapped here */
	uint8_t *ref;			/* clock reference bit per page */
	uint64_t clock_hand;
	/* pager.policy "2q" and "fifo": pages in the order they were
	 * mapped, rings of npages entries, under fifo_lock. "fifo" uses
	 * fq[0] only; "2q" keeps pages that came back soon after their
	 * eviction in fq[1] (protected), the rest in fq[0] (probation). */
	struct {
		uint32_t *ring;
		uint64_t head, tail;
	} fq[2];
	uint8_t *fifo_in;		/* per page: 0, or 1 + its ring */
	uint32_t *ev_stamp;		/* "2q": ev_clock when evicted, or 0 */
	uint32_t ev_clock;		/* "2q": evictions so far (wraps) */
	bool two_q;
	pthread_mutex_t fifo_lock;
	int ev_pidfd;			/* our own pidfd: process_madvise */
	bool ev_pidfd_open;
	struct evicting *evicting;	/* under dfr_lock */
	pthread_mutex_t ev_lock;
	pthread_cond_t ev_cv;
	pthread_t ev_thread;
	bool ev_stop, ev_started;

	/* recalls from the home's own copy (pager_move_out) */
	uint8_t *bounce;		/* PM_BOUNCE_PAGES slots */
	bool bounce_ok;			/* registered: UFFDIO_MOVE works */
	int bounce_next, bounce_busy;	/* under bounce_lock */
	pthread_mutex_t bounce_lock;

	/* pager */
	uint64_t seq_next;		/* a fault here continues a scan */
	int prefetch;			/* pager.prefetch */
	int uffd;
	int stop_efd;
	int nthreads;
	pthread_t *fault_threads;
	void *fault_args;

	/* transports */
	struct pm_plugin plugins[CFG_MAX_TRANSPORTS];
	struct listener_ctx lctx[CFG_MAX_TRANSPORTS];
	int nplugins;
	bool listening[CFG_MAX_TRANSPORTS];
	struct peer peers[CFG_MAX_NODES];	/* indexed by node id */
	bool peer_dead[CFG_MAX_NODES];	/* failed; skipped until it calls */
	bool leaving;			/* past the final barrier */
	uint64_t peer_inc[CFG_MAX_NODES];	/* incarnation seen in HELLO */
	uint64_t incarnation;		/* ours: random per start */

	/* home workers: run transactions that must wait on the network */
	pthread_mutex_t wq_lock;
	pthread_cond_t wq_cv;
	struct txn *wq_head, *wq_tail;
	pthread_t workers[2];
	int nworkers;
	bool stopping;

	/* local waiters on busy pages */
	pthread_mutex_t txn_lock;
	pthread_cond_t txn_cv;

	/* barrier (served by node 0) */
	pthread_mutex_t bar_lock;
	pthread_cond_t bar_cv;
	uint32_t bar_gen;		/* my next barrier generation */
	uint32_t bar_serve_gen;		/* node 0: generation being gathered */
	uint32_t bar_done_gen;		/* node 0: last completed generation */
	int bar_count;			/* node 0: arrived in bar_serve_gen */
	bool bar_arrived[CFG_MAX_NODES];
	struct {
		int tidx;
		uint64_t conn_id, req_id;
	} bar_waiters[CFG_MAX_NODES];	/* by node id */

	struct node_stats st;

	struct coord *coord;		/* NULL: static peers */
	struct auth *auth;		/* peer authentication (auth.c) */
	struct metrics *metrics;	/* NULL: metrics.listen unset */
};

#define STAT_ADD(n, field, v) \
	__atomic_fetch_add(&(n)->st.field, (v), __ATOMIC_RELAXED)

static inline int page_home(const struct pm_node *n, uint64_t page)
{
	return (int)(page / n->per_home);
}

static inline void *page_addr(const struct pm_node *n, uint64_t page)
{
	return n->region + page * PM_PAGE_SIZE;
}

static inline pthread_mutex_t *llock_of(struct pm_node *n, uint64_t page)
{
	return &n->llock[page % PM_NLOCKS];
}

static inline pthread_mutex_t *dlock_of(struct pm_node *n, uint64_t page)
{
	return &n->dlock[page % PM_NLOCKS];
}

/* node.c */
/* Set in fault threads: their calls take a fault connection (node_call). */
extern __thread bool node_fault_thread;
int node_call(struct pm_node *n, int peer, const struct pm_proto_req *rq,
	      struct pm_proto_rep *rp, void *payload, uint32_t *payload_len);
/* node_call with a request payload (EVICT's page). */
int node_call_payload(struct pm_node *n, int peer,
		      const struct pm_proto_req *rq, struct pm_proto_rep *rp,
		      const void *payload, uint32_t payload_len);
int node_reply(struct pm_node *n, int tidx, uint64_t conn_id,
	       uint64_t req_id, int status, const struct pm_proto_rep *rp,
	       const void *payload, uint32_t payload_len);

/* Is r a call error that means the peer is unreachable? */
bool node_conn_error(int r);
/* A peer failed (call error r): mark it dead, count and log it once. */
void node_peer_failed(struct pm_node *n, int peer, int r);
bool node_peer_dead(struct pm_node *n, int peer);

/* coh.c: home side */
/* Node `who` restarted (new incarnation) or was declared dead: pages it
 * held exclusively are lost, its shared copies leave the directory. */
void coh_forget_node(struct pm_node *n, int who);
int coh_init(struct pm_node *n);
void coh_fini(struct pm_node *n);
void coh_remote_request(struct pm_node *n, int tidx,
			const struct pm_request *req,
			const struct pm_proto_req *rq);
void coh_workers_stop(struct pm_node *n);
int coh_workers_start(struct pm_node *n);
/* This node's own fault on a page it is home for: runs the transaction
 * and installs the page. 0 or -errno. */
int coh_local_fault(struct pm_node *n, uint64_t page, uint8_t op,
		    uint8_t flags);
/* coh.c: node side, an action from home */
void coh_action(struct pm_node *n, int tidx, const struct pm_request *req,
		const struct pm_proto_req *rq);

/* evict.c */
int evict_start(struct pm_node *n);
void evict_stop(struct pm_node *n);
void evict_free(struct pm_node *n);
/* A page was mapped here (for the count and the replacement policy). */
void evict_note_install(struct pm_node *n, uint64_t page);
void evict_note_drop(struct pm_node *n);
/* Before a fault maps `pages` pages: evict until they fit the limit. */
void evict_make_room(struct pm_node *n, int pages);
/* An action for a page being evicted: fill rp (and buf); *found says
 * whether it was. Returns whether buf is the payload. */
bool evict_answer_action(struct pm_node *n, uint64_t page, bool *found,
			 struct pm_proto_rep *rp, void *buf);

/* coh.c internals evict.c needs */
struct dir_entry *coh_dir_entry(struct pm_node *n, uint64_t page);
uint8_t *coh_store_page(struct pm_node *n, uint64_t page);

/* pager.c */
int pager_start(struct pm_node *n);
void pager_stop(struct pm_node *n);
/* Install a grant for page (called with llock held). */
int pager_install(struct pm_node *n, uint64_t page, int lstate_new,
		  const void *data, bool zero);
/* Drop our copy: write-protect, optionally copy out, DONTNEED, wake. */
void pager_drop(struct pm_node *n, uint64_t page, void *copy_out);
/* The same without the wake: a thread blocked on the page has a fault
 * message queued, whose handling wakes it (eviction needs no more). */
void pager_drop_quiet(struct pm_node *n, uint64_t page, void *copy_out);
/* Take our mapped copy of page away into a bounce slot with one TLB
 * flush (llock held); NULL when that cannot be done (copy instead). */
void *pager_move_out(struct pm_node *n, uint64_t page);
/* The data of a slot pager_move_out() gave is no longer needed (slots
 * are reused all at once, when none is). */
void pager_bounce_done(struct pm_node *n);
/* Make our exclusive copy read-only, optionally copy it out. */
void pager_protect(struct pm_node *n, uint64_t page, void *copy_out);
void pager_wake(struct pm_node *n, uint64_t page);
void pager_wake_run(struct pm_node *n, uint64_t first, uint64_t count);
/* Write-protect (on) or unprotect count pages from first; -errno, logged. */
int pager_wp(struct pm_node *n, uint64_t first, uint64_t count, bool on);
void stats_record_fault(struct pm_node *n, uint64_t ns);

#endif
