/* SPDX-License-Identifier: MIT */
/*
 * A node's internal state and the calls between the engine's files. The
 * page state machine is in state.h, the lock order in lock.h. A fault
 * travels, file by file:
 *
 *   fault.c    a fault thread reads the uffd message, plans a prefetch,
 *              asks the home: home.c for pages homed here, else
 *   peer.c     node_call() through the transport plugin to the home, whose
 *   dispatch.c on_request() checks the message and hands it to
 *   home.c     the directory: run the transaction (asking holders to act
 *              through peer.c, or holder.c for the home's own copy), then
 *              reply with the grant (peer.c node_reply()); back on the
 *              requester,
 *   holder.c   the grant is installed (or dropped, when an action about
 *              it arrived meanwhile) and actions from homes are applied to
 *              this node's copies, through
 *   uffd.c     the userfaultfd primitives: copy, write-protect, drop,
 *              move, wake, poison. It calls nothing above it.
 *
 * Calls go down that list only (fault -> home -> holder -> uffd; evict.c,
 * the bounded cache, uses home, holder and uffd), never back up.
 */
#ifndef PM_NODE_H
#define PM_NODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <pagemesh/pagemesh.h>
#include <pagemesh/transport.h>

#include "cfg.h"
#include "counters.h"
#include "loader.h"
#include "log.h"
#include "lock.h"
#include "proto.h"
#include "state.h"

#define PM_NLOCKS 1024	/* striped page locks */
#define PM_MAX_FAULT_THREADS 64	/* pager.threads at most */
#define PM_BOUNCE_PAGES 64	/* > 33: emptied with one full TLB flush */

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
	bool extra;		/* a prefetched page of another's request */
	bool local;
	/* remote */
	int tidx;
	uint64_t conn_id, req_id;
	/* local: the waiting fault thread */
	bool done;
	int result;
};

/* A page between its local drop and the home's answer to our EVICT
 * (evict.c); actions meanwhile are answered from it (holder.c). */
struct evicting {
	struct evicting *next;
	uint64_t page;
	bool excl;
	uint8_t data[PM_PAGE_SIZE];
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
	uint8_t fbusy[PM_MAX_FAULT_THREADS];	/* fconn[k] carries a call
						 * (atomic exchange) */
	char last_err[512];		/* why the last connect failed */
};

struct listener_ctx {
	struct pm_node *node;
	int tidx;
};

struct node_stats {
	uint64_t c[PM_NCOUNTERS];	/* counters.h: STAT_ADD(n, name, v) */
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
	struct pm_logger log;		/* this node's lines (log.h) */
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
	uint64_t dir_queued;		/* txns waiting in entries' queues */
	uint8_t *lstate;		/* one per region page (state.h),
					 * under llock; ls_set() changes it */
	pthread_mutex_t llock[PM_NLOCKS];	/* lstate, by page */
	pthread_mutex_t dlock[PM_NLOCKS];	/* dir entries, by page */
	pthread_mutex_t evicting_lock;	/* evicting */

	/* bounded local cache (evict.c) */
	uint64_t limit_pages;		/* pager.local_limit, 0 = none */
	uint64_t resident;		/* pages mapped here: ls_set() counts
					 * them (atomic) */
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
	struct evicting *evicting;	/* under evicting_lock */
	pthread_mutex_t ev_lock;	/* ev_cv, ev_stop */
	pthread_cond_t ev_cv;
	pthread_t ev_thread;
	bool ev_stop, ev_started;

	/* recalls from the home's own copy (pager_move_out) */
	uint8_t *bounce;		/* PM_BOUNCE_PAGES slots */
	bool bounce_ok;			/* registered: UFFDIO_MOVE works */
	int bounce_next, bounce_busy;	/* under bounce_lock */
	pthread_mutex_t bounce_lock;

	/* pager */
	uint64_t seq_next;		/* a fault here continues a scan
					 * (racy hint: atomics, no lock) */
	int prefetch;			/* pager.prefetch */
	int uffd;
	bool have_poison;		/* UFFDIO_POISON works on this uffd */
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
	/* Relaxed atomics, no lock: flags and words whose readers act on
	 * any recent value. */
	bool peer_dead[CFG_MAX_NODES];	/* declared dead by the detector;
					 * until it calls again */
	int64_t heard_ns[CFG_MAX_NODES];	/* last reply or request from
						 * it (pm_now_ns) */
	bool closing;			/* node_free has begun */
	bool serving;			/* atomic: home requests are served
					 * (after start-up's handshakes) */
	int rejoin_by;			/* atomic: a peer that knew an earlier
					 * incarnation of this node, or -1 */
	uint64_t rejoin_inc;		/* ... and that incarnation */
	uint64_t fenced_inc[CFG_MAX_NODES];	/* incarnation declared dead:
						 * refused (dispatch.c) */
	bool fenced_told[CFG_MAX_NODES];	/* its refusal was logged */
	uint64_t answer_inc[CFG_MAX_NODES];	/* incarnation that answered
						 * our last ping there */
	int64_t answer_ns[CFG_MAX_NODES];	/* and when */
	int64_t claim_ns[CFG_MAX_NODES];	/* another incarnation claims
						 * the id since (dispatch.c) */
	bool det_poke[CFG_MAX_NODES];		/* ping it now (det_lock) */
	int64_t lease_until[CFG_MAX_NODES];	/* our copies of its pages
						 * may be read until then */
	bool lease_lapsed[CFG_MAX_NODES];	/* and were dropped after */
	bool leaving;			/* past the final barrier */
	uint64_t peer_inc[CFG_MAX_NODES];	/* incarnation seen in HELLO */
	uint64_t incarnation;		/* ours: random per start */

	/* home workers: run transactions that must wait on the network */
	pthread_mutex_t wq_lock;	/* wq_*, stopping */
	pthread_cond_t wq_cv;
	struct txn *wq_head, *wq_tail;
	pthread_t workers[2];
	int nworkers;
	bool stopping;

	/* local waiters on busy pages */
	pthread_mutex_t txn_lock;	/* txn.done, txn.result */
	pthread_cond_t txn_cv;

	/* barrier (served by node 0) */
	pthread_mutex_t bar_lock;	/* bar_* */
	pthread_cond_t bar_cv;
	uint32_t bar_gen;		/* my next barrier generation */
	uint32_t bar_serve_gen;		/* node 0: generation being gathered */
	uint32_t bar_done_gen;		/* node 0: last completed generation */
	bool bar_arrived[CFG_MAX_NODES];	/* node 0: in bar_serve_gen */
	bool bar_server[CFG_MAX_NODES];	/* node 0: only serves (`pagemesh
					 * node`): counts as arrived at
					 * every generation after its first */
	bool server_only;		/* this node is run by `pagemesh node`:
					 * no barrier after start-up's */
	struct {
		int tidx;
		uint64_t conn_id, req_id;
	} bar_waiters[CFG_MAX_NODES];	/* by node id */

	struct node_stats st;

	/* failure detector (detect.c) and the watchdog (fence.c) */
	int failure_ms;			/* cluster.failure_timeout_ms */
	struct fence_shared *fence;	/* NULL: cluster.fence "off" */
	int fence_pid;
	pthread_t ticker;
	bool ticker_started;
	pthread_mutex_t det_lock;	/* det_stop */
	pthread_cond_t det_cv;
	bool det_stop;
	int ndet;			/* watcher threads started */
	pthread_t det_threads[CFG_MAX_NODES];

	struct coord *coord;		/* NULL: static peers */
	struct auth *auth;		/* peer authentication (auth.c) */
	struct metrics *metrics;	/* NULL: metrics.listen unset */
};

/* Count v more of a counter of counters.h, or of another node_stats
 * field (STAT_ADD_AT: hist[i], tr[t].errors, ...). */
#define STAT_ADD(n, name, v) \
	__atomic_fetch_add(&(n)->st.c[PM_C_##name], (v), __ATOMIC_RELAXED)
#define STAT_ADD_AT(n, field, v) \
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

/*
 * The one way to change a page's local state (llock held): checked in
 * debug builds (state.h has the rules), and the count of mapped pages
 * follows the mapping. A relaxed atomic store, since the eviction scan
 * and the stats read lstate without the lock.
 */
void evict_note_install(struct pm_node *n, uint64_t page);
void evict_note_drop(struct pm_node *n);

static inline void ls_set(struct pm_node *n, uint64_t page, uint8_t s)
{
	uint8_t old = n->lstate[page];

#ifdef PM_DEBUG
	ls_check(n, page, old, s);
#endif
	__atomic_store_n(&n->lstate[page], s, __ATOMIC_RELAXED);
	if ((old & LS_MASK) == LS_INVALID && (s & LS_MASK) != LS_INVALID)
		evict_note_install(n, page);
	else if ((old & LS_MASK) != LS_INVALID && (s & LS_MASK) == LS_INVALID)
		evict_note_drop(n);
}

/* Clear a finished fetch's flags, keeping the mapping. */
static inline void ls_fetch_done(struct pm_node *n, uint64_t page)
{
	ls_set(n, page, n->lstate[page] & ~LF_FETCH_FLAGS);
}

static inline struct dir_entry *dir_of(struct pm_node *n, uint64_t page)
{
	return &n->dir[page - n->home_first];
}

static inline uint8_t *store_of(struct pm_node *n, uint64_t page)
{
	return n->store + (page - n->home_first) * PM_PAGE_SIZE;
}

static inline bool page_homed_here(const struct pm_node *n, uint64_t page)
{
	return page >= n->home_first && page - n->home_first < n->home_count;
}

/* The one way to change who holds a page (dlock held, or the entry busy
 * and owned by the caller's transaction). */
static inline void dir_set(struct pm_node *n, uint64_t page, uint8_t state,
			   uint16_t owner, uint64_t sharers)
{
	struct dir_entry *e = dir_of(n, page);

#ifdef PM_DEBUG
	dir_check(n, page, e, state, owner, sharers);
#endif
	e->state = state;
	e->owner = state == DIR_EXCL ? owner : 0;
	e->sharers = sharers;
}

/* Node `who` no longer holds its shared copy. */
static inline void dir_drop_sharer(struct pm_node *n, uint64_t page, int who)
{
	uint64_t left = dir_of(n, page)->sharers & ~(1ull << who);

	dir_set(n, page, left ? DIR_SHARED : DIR_UNOWNED, 0, left);
}

/* Its only copy is gone: no holder, faults on it fail. */
static inline void dir_lose(struct pm_node *n, uint64_t page)
{
	dir_set(n, page, DIR_UNOWNED, 0, 0);
	dir_of(n, page)->lost = 1;
}

/* ---- node.c: start-up, teardown ---------------------------------------- */
int node_fail(char *err, size_t errlen, int code, int *codep,
	      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void node_free(struct pm_node *n);
/* pm_node_start_ex for `pagemesh node`: a node that only serves. Its
 * start-up barrier tells node 0 so (PM_RQ_SERVER_ONLY), and the barriers
 * of the API programs beside it, pm_node_stop's too, count it as arrived
 * from then on. */
struct pm_node *node_start_server(const char *config_path, char *err,
				  size_t errlen, int *code);

/* ---- peer.c: outgoing calls, replies, peers' health --------------------- */
/* Set in fault threads: their calls take a fault connection (node_call). */
extern __thread bool node_fault_thread;
int node_call(struct pm_node *n, int peer, const struct pm_proto_req *rq,
	      struct pm_proto_rep *rp, void *payload, uint32_t *payload_len);
/*
 * A call whose answer the caller needs for as long as the peer lives: a
 * slow or lost answer is waited for (resend: the request can be sent
 * again, and is, after pager.timeout_ms) until it comes or the failure
 * detector declares the peer dead (-EHOSTDOWN at once from then on).
 * Without resend, one wait of NODE_ONCE_WAIT_FT x
 * cluster.failure_timeout_ms: an answer that comes after the detector
 * declared the peer dead is still taken (the data of a recall is final).
 */
#define NODE_ONCE_WAIT_FT 4
int node_call_alive(struct pm_node *n, int peer,
		    const struct pm_proto_req *rq, const void *rq_payload,
		    uint32_t rq_len, struct pm_proto_rep *rp, void *payload,
		    uint32_t *payload_len, bool resend);
/* node_call waiting at most wait_ms, on a fault thread's connection:
 * *pin -1 picks a free one and sets it; a later call with it set goes
 * on the same connection (a fault's tries, in order at the home). */
int node_call_ms(struct pm_node *n, int peer, const struct pm_proto_req *rq,
		 struct pm_proto_rep *rp, void *payload, uint32_t *payload_len,
		 int wait_ms, int *pin);
/* node_call with a request payload (EVICT's page). */
int node_call_payload(struct pm_node *n, int peer,
		      const struct pm_proto_req *rq, struct pm_proto_rep *rp,
		      const void *payload, uint32_t payload_len);
/* A call on a given connection (the barrier's, a handshake's). */
int node_call_on(struct pm_node *n, int peer, struct pm_tconn *c,
		 const struct pm_msg *m, struct pm_msg *r, int64_t deadline);
/* Answer request req_id from node `peer` (for its byte count; -1 when
 * unknown) on incoming connection conn_id of transport tidx. */
int node_reply(struct pm_node *n, int peer, int tidx, uint64_t conn_id,
	       uint64_t req_id, int status, const struct pm_proto_rep *rp,
	       const void *payload, uint32_t payload_len);
/* A reply with only a status (an error, mostly). */
void node_reply_status(struct pm_node *n, int peer, int tidx,
		       const struct pm_request *req, int status);
/* Is r a call error that means no answer came (slow or unreachable)? */
bool node_conn_error(int r);
bool node_peer_dead(struct pm_node *n, int peer);
/* A reply or a request from peer arrived: it is alive. */
void node_heard(struct pm_node *n, int peer);
/* A call to peer sent at sent_ns was answered: our lease on its pages
 * runs 3/4 of cluster.failure_timeout_ms from then (DESIGN.md). */
void node_lease_renew(struct pm_node *n, int peer, int64_t sent_ns);
/* May this node map copies of home's pages now (its lease runs)? Checked
 * under the page's lock before a copy is mapped read-only: the watcher
 * marks a lease lapsed before it drops the copies it covered. */
bool node_lease_held(struct pm_node *n, int home);
/* Sleep a little before try number `tries` again (1 ms doubling to 64). */
void node_backoff(int tries);
static inline bool node_closing(struct pm_node *n)
{
	return __atomic_load_n(&n->closing, __ATOMIC_RELAXED);
}

/* ---- detect.c: the failure detector -------------------------------------- */
/* One watcher per peer: pings it when it has been quiet, declares it dead
 * when it has not been heard from for cluster.failure_timeout_ms. */
int detect_start(struct pm_node *n);
void detect_stop(struct pm_node *n);
/* Ping peer now, whatever its last sign of life. */
void detect_poke(struct pm_node *n, int peer);
/* Declare peer dead (once): count, log why, forget what it held. */
void detect_declare_dead(struct pm_node *n, int peer, const char *why);

/* ---- fence.c: the watchdog that kills this node when it stopped -------- */
/* Fork the watchdog (cluster.fence "kill") and start the thread whose
 * ticks it watches; before the node's other threads and its region. */
int fence_start(struct pm_node *n);
void fence_stop(struct pm_node *n);
/* Dial every peer and shake hands, until cluster.startup_timeout_ms. */
int node_connect_peers(struct pm_node *n, char *err, size_t errlen,
		       int *code);
void node_disconnect_peers(struct pm_node *n);

/* ---- dispatch.c: incoming messages -------------------------------------- */
void node_on_request(void *arg, const struct pm_request *req);
void node_on_close(void *arg, uint64_t conn_id);

/* ---- barrier.c ----------------------------------------------------------- */
/* Node 0: a BARRIER request arrived. */
void barrier_request(struct pm_node *n, int tidx,
		     const struct pm_request *req,
		     const struct pm_proto_req *rq);

/* ---- stats.c ------------------------------------------------------------ */
void stats_record_fault(struct pm_node *n, uint64_t ns);
/* /metrics' fill callback (metrics.h). */
struct metrics_extra;
int stats_metrics_fill(void *arg, struct pm_stats *st,
		       struct metrics_extra *x);

/* ---- fault.c: the fault threads ----------------------------------------- */
int fault_start(struct pm_node *n);
void fault_stop(struct pm_node *n);

/* ---- home.c: the directory and its transactions ------------------------- */
int home_init(struct pm_node *n);
void home_fini(struct pm_node *n);
int home_workers_start(struct pm_node *n);
void home_workers_stop(struct pm_node *n);
/* A READ, WRITE or EVICT from another node. */
void home_request(struct pm_node *n, int tidx, const struct pm_request *req,
		  const struct pm_proto_req *rq);
/* This node's own fault on a page it is home for: runs the transaction
 * and installs the page. 0 or -errno. */
int home_local_fault(struct pm_node *n, uint64_t page, uint8_t op,
		     uint8_t flags);
/* Node `who` restarted (new incarnation) or was declared dead: pages it
 * held exclusively are lost, its shared copies leave the directory. */
void home_forget_node(struct pm_node *n, int who);
/* This node rejoined a running cluster (`who` knew an earlier incarnation
 * of it): every page homed here is lost with that run's memory. */
void home_lose_all(struct pm_node *n, int who, uint64_t earlier);
/* Eviction of the home's own copy of page into its store; false when the
 * entry is busy or the copy is not a plain one. */
bool home_evict_own(struct pm_node *n, uint64_t page);

/* ---- home_ahead.c: runs given up ahead of a scan (dlock, llock held) -- */
/* The home's own exclusive copy of page becomes the data `who` reads; the
 * home's exclusive pages after it too, when `who` is scanning. */
void home_downgrade_own(struct pm_node *n, uint64_t page, int who);
/* `who` writes the home's pages in order: give the next ones up too. */
void home_recall_ahead(struct pm_node *n, uint64_t page, int who);

/* ---- holder.c: this node's copies --------------------------------------- */
/* Map a granted page (llock held; the page not mapped unless this is an
 * upgrade of a shared copy: excl, no data, not zero). Wakes waiters. */
int holder_install(struct pm_node *n, uint64_t page, int ls_new,
		   const void *data, bool zero);
/* A grant (or a failed call, r) for a fetch of page and nextra pages
 * after it arrived: install what no action refused, clear the fetches,
 * wake. Returns whether page was installed. */
bool holder_land_grant(struct pm_node *n, uint64_t page, int nextra, int r,
		       const struct pm_proto_rep *rp, const uint8_t *buf);
/* An INVAL, RECALL or DOWNGRADE from page's home. */
void holder_remote_action(struct pm_node *n, int tidx,
			  const struct pm_request *req,
			  const struct pm_proto_req *rq);
/* Apply op to our copy (llock held, copy present): fills rp and, when the
 * page's data must go back, buf. Returns whether buf is the payload. */
bool holder_apply(struct pm_node *n, uint64_t page, uint8_t op,
		  struct pm_proto_rep *rp, void *buf);
void holder_evicting_add(struct pm_node *n, struct evicting *ev);
/* Our lease on home's pages lapsed: drop every read-only copy of them
 * (once the home declares us dead, others may write them). */
void holder_lease_lapsed(struct pm_node *n, int home);
/* Home restarted (a new incarnation): drop every copy of its pages, before
 * it may serve them again (DESIGN.md, "A home that comes back"). */
void holder_home_restarted(struct pm_node *n, int home);
void holder_evicting_remove(struct pm_node *n, struct evicting *ev);

/* ---- evict.c: the bounded cache ----------------------------------------- */
int evict_start(struct pm_node *n);
void evict_stop(struct pm_node *n);
/* Write every exclusive copy of another home's page back to it (a node
 * leaving while the others go on). Returns how many could not be: their
 * data is lost. Nothing may fault on the region meanwhile. */
int64_t evict_writeback_all(struct pm_node *n);
void evict_free(struct pm_node *n);
/* Before a fault maps `pages` pages: evict until they fit the limit. */
void evict_make_room(struct pm_node *n, int pages);

/* ---- uffd.c: the userfaultfd primitives, no policy ---------------------- */
extern const uint8_t uffd_zero_page[PM_PAGE_SIZE];
/* Open the uffd, register the region (missing + wp) and the bounce slots. */
int uffd_open(struct pm_node *n);
void uffd_close(struct pm_node *n);
/* Copy count pages of src to page..; wp: map them write-protected. 0,
 * -EEXIST when a page is there already (waiters woken), or -errno. */
int uffd_copy(struct pm_node *n, uint64_t page, uint64_t count,
	      const void *src, bool wp);
/* Write-protect (on) or unprotect count pages from first; -errno, logged. */
int uffd_wp(struct pm_node *n, uint64_t first, uint64_t count, bool on);
/* Unmap count pages from first (MADV_DONTNEED); -errno, logged. */
int uffd_unmap(struct pm_node *n, uint64_t first, uint64_t count);
/* Take our copy away: write-protect it first when writable (so the copy
 * is final), copy it to copy_out (may be NULL), unmap it. */
void uffd_drop(struct pm_node *n, uint64_t page, bool writable,
	       void *copy_out);
/* Make a writable copy read-only, copying it to copy_out (may be NULL). */
void uffd_protect(struct pm_node *n, uint64_t page, bool writable,
		  void *copy_out);
/* Move our copy of page into a bounce slot with one TLB flush; NULL when
 * that cannot be done (copy instead). uffd_bounce_done() when its data
 * is no longer needed (slots are reused all at once, when none is). */
void *uffd_move_out(struct pm_node *n, uint64_t page);
void uffd_bounce_done(struct pm_node *n);
/* A fault in an empty bounce slot: zeros, so nothing hangs. */
void uffd_bounce_fill(struct pm_node *n, uint64_t addr);
void uffd_wake(struct pm_node *n, uint64_t first, uint64_t count);
/* Fail the faulting threads of page (SIGBUS, or SIGSEGV before 6.6). */
void uffd_poison(struct pm_node *n, uint64_t page);

#endif
