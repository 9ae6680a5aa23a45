// SPDX-License-Identifier: MIT
/*
 * A node: config-driven start-up (transports, region, pager, peers), the
 * dispatch of incoming protocol messages, the cluster barrier, statistics,
 * and the `pagemesh node` command.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "cli.h"
#include "coord.h"
#include "log.h"
#include "metrics.h"
#include "node.h"

/* Transports this core knows by name even when their plugin is not built. */
static const char *const known_transports[] = { "rdma", "io_uring-tcp", "tcp" };

static int fail(char *err, size_t errlen, int code, int *codep,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(char *err, size_t errlen, int code, int *codep,
		const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (codep)
		*codep = code;
	return -1;
}

/* ---- statistics --------------------------------------------------------- */

uint64_t pm_hist_bound_ns(int i)
{
	if (i < 0)
		return 0;
	if (i >= PM_HIST_BUCKETS - 1)
		return UINT64_MAX;
	return ((1ull << (PM_HIST_MIN_SHIFT + i / PM_HIST_SUB)) *
		(PM_HIST_SUB + i % PM_HIST_SUB + 1)) / PM_HIST_SUB;
}

static int hist_index(uint64_t ns)
{
	int p, q, i;

	if (ns <= (1ull << PM_HIST_MIN_SHIFT))
		return 0;
	p = 63 - __builtin_clzll(ns);
	q = (int)(((ns - (1ull << p)) * PM_HIST_SUB) >> p);
	i = (p - PM_HIST_MIN_SHIFT) * PM_HIST_SUB + q;
	return i < PM_HIST_BUCKETS - 1 ? i : PM_HIST_BUCKETS - 1;
}

void stats_record_fault(struct pm_node *n, uint64_t ns)
{
	STAT_ADD(n, hist[hist_index(ns)], 1);
	STAT_ADD(n, fault_sum_ns, ns);
}

static uint64_t hist_percentile(const uint64_t *h, double pct)
{
	uint64_t total = 0, acc = 0, want;
	int i;

	for (i = 0; i < PM_HIST_BUCKETS; i++)
		total += h[i];
	if (!total)
		return 0;
	want = (uint64_t)(total * pct / 100.0);
	if (want < 1)
		want = 1;
	for (i = 0; i < PM_HIST_BUCKETS; i++) {
		acc += h[i];
		if (acc >= want)
			return pm_hist_bound_ns(i);
	}
	return pm_hist_bound_ns(PM_HIST_BUCKETS - 1);
}

#define LOAD(f) __atomic_load_n(&n->st.f, __ATOMIC_RELAXED)

int pm_node_stats(struct pm_node *n, struct pm_stats *o)
{
	uint64_t resident = 0;

	if (!n || !o)
		return -EINVAL;
	memset(o, 0, sizeof(*o));
	o->faults_zero = LOAD(faults_zero);
	o->faults_local = LOAD(faults_local);
	o->faults_remote = LOAD(faults_remote);
	o->faults_wp = LOAD(faults_wp);
	o->faults_total = LOAD(faults_total);
	o->pages_sent = LOAD(pages_sent);
	o->pages_received = LOAD(pages_received);
	o->invalidations_sent = LOAD(inval_sent);
	o->invalidations_received = LOAD(inval_received);
	o->downgrades_received = LOAD(downgrades_received);
	o->requests_served = LOAD(requests_served);
	o->bytes_sent = LOAD(bytes_sent);
	o->bytes_received = LOAD(bytes_received);
	o->poisoned = LOAD(poisoned);
	o->prefetched = LOAD(prefetched);
	o->evictions = LOAD(evictions);
	o->writebacks = LOAD(writebacks);
	o->peer_failures = LOAD(peer_failures);
	o->downgrades_ahead = LOAD(downgrades_ahead);
	o->recalls_ahead = LOAD(recalls_ahead);
	for (uint64_t p = 0; p < n->npages; p++)
		resident += (__atomic_load_n(&n->lstate[p], __ATOMIC_RELAXED) &
			     LS_MASK) != LS_INVALID;
	o->resident_pages = resident;
	for (int i = 0; i < PM_HIST_BUCKETS; i++)
		o->fault_hist[i] = LOAD(hist[i]);
	o->fault_p50_ns = hist_percentile(o->fault_hist, 50);
	o->fault_p99_ns = hist_percentile(o->fault_hist, 99);
	return 0;
}

static const char *const op_names[PM_OP_MAX] = {
	[PM_OP_HELLO] = "hello", [PM_OP_READ] = "read",
	[PM_OP_WRITE] = "write", [PM_OP_INVAL] = "invalidate",
	[PM_OP_RECALL] = "recall", [PM_OP_DOWNGRADE] = "downgrade",
	[PM_OP_BARRIER] = "barrier", [PM_OP_AUTH] = "auth",
	[PM_OP_EVICT] = "evict",
};

/* One /metrics scrape: pm_stats plus per-transport, per-peer and
 * per-message counters. */
static int metrics_fill(void *arg, struct pm_stats *st,
			struct metrics_extra *x)
{
	struct pm_node *n = arg;

	pm_node_stats(n, st);
	x->node_id = n->id;
	snprintf(x->cluster, sizeof(x->cluster), "%s", n->cfg.cluster_name);
	x->region_bytes = n->len;
	x->fault_sum_ns = LOAD(fault_sum_ns);
	for (int t = 0; t < n->nplugins; t++) {
		struct metrics_transport *mt;

		if (!n->plugins[t].usable)
			continue;
		mt = &x->transports[x->n_transports++];
		snprintf(mt->name, sizeof(mt->name), "%s",
			 n->plugins[t].name);
		mt->bytes_sent = LOAD(tr[t].bytes_sent);
		mt->bytes_received = LOAD(tr[t].bytes_received);
		mt->messages_sent = LOAD(tr[t].msgs_sent);
		mt->messages_received = LOAD(tr[t].msgs_received);
		mt->errors = LOAD(tr[t].errors);
	}
	for (int i = 0; i < n->nodes && x->n_peers < METRICS_MAX_PEERS; i++) {
		struct metrics_peer *mp;

		if (i == n->id)
			continue;
		mp = &x->peers[x->n_peers++];
		mp->node_id = i;
		mp->up = n->peers[i].conn != NULL;
		if (n->peers[i].tidx >= 0)
			snprintf(mp->transport, sizeof(mp->transport), "%s",
				 n->plugins[n->peers[i].tidx].name);
		mp->bytes_sent = LOAD(peer[i].bytes_sent);
		mp->bytes_received = LOAD(peer[i].bytes_received);
	}
	for (int op = PM_OP_HELLO; op < PM_OP_MAX &&
				   x->n_msgs < METRICS_MAX_MSG_TYPES; op++) {
		struct metrics_msg *mm = &x->msgs[x->n_msgs++];

		snprintf(mm->type, sizeof(mm->type), "%s", op_names[op]);
		mm->sent = LOAD(op_sent[op]);
		mm->received = LOAD(op_received[op]);
	}
	return 0;
}

/* ---- messages ----------------------------------------------------------- */

__thread bool node_fault_thread;

static int hello(struct pm_node *n, int peer, struct pm_tconn *c, char *why,
		 size_t whylen);
static int hello_auth(struct pm_node *n, int peer, struct pm_tconn *c,
		      const struct pm_proto_rep *rp, uint32_t plen,
		      const uint8_t *nc, const uint8_t *proof, char *why,
		      size_t whylen);
static int node_reauth(struct pm_node *n, int peer, struct pm_tconn *c);

bool node_conn_error(int r)
{
	return r == -ETIMEDOUT || r == -ECONNRESET || r == -EPIPE ||
	       r == -ECONNREFUSED || r == -ENOTCONN || r == -EHOSTUNREACH ||
	       r == -EHOSTDOWN || r == -ESHUTDOWN;
}

void node_peer_failed(struct pm_node *n, int peer, int r)
{
	if (!node_conn_error(r) || peer < 0 || peer >= n->nodes ||
	    __atomic_load_n(&n->leaving, __ATOMIC_RELAXED))
		return;
	if (__atomic_exchange_n(&n->peer_dead[peer], true, __ATOMIC_RELAXED))
		return;
	STAT_ADD(n, peer_failures, 1);
	pm_err("node %d is unreachable (%s): declared dead until it calls again",
	       peer, strerror(-r));
	/* What it held exclusively of ours is gone with it. */
	coh_forget_node(n, peer);
}

bool node_peer_dead(struct pm_node *n, int peer)
{
	return __atomic_load_n(&n->peer_dead[peer], __ATOMIC_RELAXED);
}

static int node_call_payload_rep(struct pm_node *n, int peer,
				 const struct pm_proto_req *rq,
				 const void *rq_payload, uint32_t rq_len,
				 struct pm_proto_rep *rp, void *payload,
				 uint32_t *payload_len);

int node_call(struct pm_node *n, int peer, const struct pm_proto_req *rq,
	      struct pm_proto_rep *rp, void *payload, uint32_t *payload_len)
{
	return node_call_payload_rep(n, peer, rq, NULL, 0, rp, payload,
				     payload_len);
}

int node_call_payload(struct pm_node *n, int peer,
		      const struct pm_proto_req *rq, struct pm_proto_rep *rp,
		      const void *payload, uint32_t payload_len)
{
	return node_call_payload_rep(n, peer, rq, payload, payload_len, rp,
				     NULL, NULL);
}

static int node_call_payload_rep(struct pm_node *n, int peer,
				 const struct pm_proto_req *rq,
				 const void *rq_payload, uint32_t rq_len,
				 struct pm_proto_rep *rp, void *payload,
				 uint32_t *payload_len)
{
	struct peer *p = &n->peers[peer];
	struct pm_proto_req req = *rq;
	struct pm_msg m = {
		.msg = &req, .msg_len = sizeof(req),
		.payload = (void *)rq_payload, .payload_len = rq_len,
	};
	struct pm_msg r = {
		.msg = rp, .msg_cap = sizeof(*rp),
		.payload = payload,
		.payload_cap = payload_len ? *payload_len : 0,
	};
	const struct pm_plugin *pl;
	int ret;

	struct pm_tconn *c = NULL;
	int slot = -1;

	if (peer < 0 || peer >= n->nodes || peer == n->id || !p->conn)
		return -ENOTCONN;
	/*
	 * A fault thread takes the first fault connection no other call is
	 * on. Faults one at a time thus all reach the home's one receive
	 * thread for fconn[0]; only overlapping faults spread. The home then
	 * changes its page tables from one thread, on one CPU, where two
	 * threads on two CPUs would turn each write-protect or move there
	 * into a cross-CPU TLB shootdown, and the requests of a sequential
	 * reader meet a receive thread that is already running.
	 */
	for (int k = 0; node_fault_thread && k < n->nthreads && !c; k++)
		if (p->fconn[k] &&
		    !__atomic_exchange_n(&p->fbusy[k], 1, __ATOMIC_ACQUIRE)) {
			c = p->fconn[k];
			slot = k;
		}
	if (!c)
		c = p->conn;
	/*
	 * A home's actions get half the deadline: when a holder is dead,
	 * the home gives up on it and still answers the requester, whose
	 * own call has the whole deadline, before that runs out; else the
	 * requester would blame the live home for the dead holder.
	 */
	int64_t deadline = pm_now_ns() + (int64_t)n->timeout_ms * 1000000 /
			   (req.op >= PM_OP_INVAL && req.op <= PM_OP_DOWNGRADE
				    ? 2 : 1);

	pl = &n->plugins[p->tidx];
	ret = pl->ops->call(c, &m, &r, deadline);
	/* A redialled connection is new to the peer: prove the key, retry. */
	if (ret == -EACCES && !node_reauth(n, peer, c))
		ret = pl->ops->call(c, &m, &r, deadline);
	if (slot >= 0)
		__atomic_store_n(&p->fbusy[slot], 0, __ATOMIC_RELEASE);
	STAT_ADD(n, bytes_sent, sizeof(req) + rq_len);
	STAT_ADD(n, tr[p->tidx].bytes_sent, sizeof(req) + rq_len);
	STAT_ADD(n, tr[p->tidx].msgs_sent, 1);
	STAT_ADD(n, peer[peer].bytes_sent, sizeof(req));
	if (req.op < PM_OP_MAX)
		STAT_ADD(n, op_sent[req.op], 1);
	if (ret) {
		STAT_ADD(n, tr[p->tidx].errors, 1);
		return ret;
	}
	STAT_ADD(n, bytes_received, r.msg_len + r.payload_len);
	STAT_ADD(n, tr[p->tidx].bytes_received, r.msg_len + r.payload_len);
	STAT_ADD(n, tr[p->tidx].msgs_received, 1);
	STAT_ADD(n, peer[peer].bytes_received, r.msg_len + r.payload_len);
	if (r.msg_len != sizeof(*rp)) {
		pm_err("node %d: reply of %u bytes, expected %zu", peer,
		       r.msg_len, sizeof(*rp));
		return -EPROTO;
	}
	if (payload_len)
		*payload_len = r.payload_len;
	return 0;
}

int node_reply(struct pm_node *n, int tidx, uint64_t conn_id,
	       uint64_t req_id, int status, const struct pm_proto_rep *rp,
	       const void *payload, uint32_t payload_len)
{
	const struct pm_plugin *pl = &n->plugins[tidx];
	struct pm_msg m = {
		.msg = (void *)rp, .msg_len = rp ? sizeof(*rp) : 0,
		.payload = (void *)payload, .payload_len = payload_len,
	};
	int r;

	r = pl->ops->reply(pl->ctx, conn_id, req_id, status, &m);
	if (r) {
		pm_dbg("reply on %s connection %llu: %s", pl->name,
		       (unsigned long long)conn_id, strerror(-r));
		STAT_ADD(n, tr[tidx].errors, 1);
		return r;
	}
	STAT_ADD(n, bytes_sent, m.msg_len + payload_len);
	STAT_ADD(n, tr[tidx].bytes_sent, m.msg_len + payload_len);
	STAT_ADD(n, tr[tidx].msgs_sent, 1);
	return 0;
}

static void reply_status(struct pm_node *n, int tidx,
			 const struct pm_request *req, int status)
{
	node_reply(n, tidx, req->conn_id, req->req_id, status, NULL, NULL, 0);
}

/* ---- barrier (served by node 0) ---------------------------------------- */

/* Node 0, bar_lock held: node `who` arrived at the gathered generation. */
static void barrier_arrive(struct pm_node *n, int who)
{
	if (!n->bar_arrived[who]) {
		n->bar_arrived[who] = true;
		n->bar_count++;
	}
	if (n->bar_count < n->nodes)
		return;
	for (int i = 1; i < n->nodes; i++) {
		struct pm_proto_rep rp = { .op = PM_OP_BARRIER };

		node_reply(n, n->bar_waiters[i].tidx, n->bar_waiters[i].conn_id,
			   n->bar_waiters[i].req_id, 0, &rp, NULL, 0);
	}
	n->bar_done_gen = n->bar_serve_gen;
	n->bar_serve_gen++;
	n->bar_count = 0;
	memset(n->bar_arrived, 0, sizeof(n->bar_arrived));
	pthread_cond_broadcast(&n->bar_cv);
}

static void barrier_request(struct pm_node *n, int tidx,
			    const struct pm_request *req,
			    const struct pm_proto_req *rq)
{
	if (n->id != 0) {
		pm_warn("peer %s (node %u): barrier request, but only node 0 serves barriers",
			req->peer, rq->from);
		reply_status(n, tidx, req, -EPROTO);
		return;
	}
	pthread_mutex_lock(&n->bar_lock);
	if (rq->arg != n->bar_serve_gen) {
		bool done = rq->arg == n->bar_done_gen && n->bar_serve_gen;

		pthread_mutex_unlock(&n->bar_lock);
		/* A retry of a barrier that completed: it passed. */
		if (!done)
			pm_warn("peer %s (node %u): barrier generation %u, expected %u",
				req->peer, rq->from, rq->arg,
				n->bar_serve_gen);
		reply_status(n, tidx, req, done ? 0 : -EPROTO);
		return;
	}
	/* A retry after the caller's deadline: the newer token wins. */
	n->bar_waiters[rq->from].tidx = tidx;
	n->bar_waiters[rq->from].conn_id = req->conn_id;
	n->bar_waiters[rq->from].req_id = req->req_id;
	barrier_arrive(n, rq->from);
	pthread_mutex_unlock(&n->bar_lock);
}

int pm_node_barrier(struct pm_node *n, int timeout_ms)
{
	int64_t deadline = pm_now_ns() + (int64_t)timeout_ms * 1000000;
	int r = 0;

	if (!n || timeout_ms < 0)
		return -EINVAL;
	if (n->id == 0) {
		struct timespec ts = {
			.tv_sec = deadline / 1000000000,
			.tv_nsec = deadline % 1000000000,
		};
		uint32_t gen;

		pthread_mutex_lock(&n->bar_lock);
		gen = n->bar_serve_gen;
		barrier_arrive(n, 0);
		while (n->bar_serve_gen == gen && !r)
			r = -pthread_cond_timedwait(&n->bar_cv, &n->bar_lock,
						    &ts);
		if (n->bar_serve_gen != gen)
			r = 0;
		if (r) {
			/* Withdraw, and name who is missing. */
			char miss[256] = "";
			size_t o = 0;

			n->bar_arrived[0] = false;
			n->bar_count--;
			for (int i = 1; i < n->nodes && o < sizeof(miss) - 8;
			     i++)
				if (!n->bar_arrived[i])
					o += snprintf(miss + o,
						      sizeof(miss) - o, " %d",
						      i);
			pm_err("barrier %u: timed out after %d ms waiting for node(s)%s",
			       gen, timeout_ms, miss);
		}
		pthread_mutex_unlock(&n->bar_lock);
		return r;
	}

	struct pm_proto_req rq = {
		.op = PM_OP_BARRIER, .from = (uint16_t)n->id,
		.arg = n->bar_gen,
	};
	struct pm_proto_rep rp;
	struct pm_tconn *c = n->peers[0].conn;
	struct pm_msg m = { .msg = &rq, .msg_len = sizeof(rq) };
	struct pm_msg rm = { .msg = &rp, .msg_cap = sizeof(rp) };

	if (!c)
		return -ENOTCONN;
	r = n->plugins[n->peers[0].tidx].ops->call(c, &m, &rm, deadline);
	/* Node 0 restarted: its new socket wants the key proved first. */
	if (r == -EACCES && !node_reauth(n, 0, c))
		r = n->plugins[n->peers[0].tidx].ops->call(c, &m, &rm,
							   deadline);
	if (r) {
		pm_err("barrier %u: %s", n->bar_gen,
		       r == -ETIMEDOUT ? "timed out waiting for the other nodes"
				       : strerror(-r));
		return r;
	}
	n->bar_gen++;
	return 0;
}

/* ---- incoming messages ---------------------------------------------------- */

/* A node that restarted lost its memory: forget what it held. Only once
 * it proved the key, so no stranger can make us forget a node. */
static void note_incarnation(struct pm_node *n, const struct pm_request *req,
			     int from, uint64_t incarnation)
{
	uint64_t inc = __atomic_exchange_n(&n->peer_inc[from], incarnation,
					   __ATOMIC_RELAXED);

	if (inc && inc != incarnation) {
		pm_warn("node %u restarted (peer %s)", from, req->peer);
		coh_forget_node(n, from);
	}
}

static void hello_request(struct pm_node *n, int tidx,
			  const struct pm_request *req,
			  const struct pm_proto_req *rq)
{
	struct pm_proto_rep rp = { .op = PM_OP_HELLO, .from = (uint16_t)n->id };
	uint8_t proof[AUTH_NONCE_LEN + AUTH_MAC_LEN];
	char why[400] = "";
	char name[CFG_NAME_MAX];
	/* proto_check_req: Nc, then 1..CFG_NAME_MAX-1 bytes of name */
	size_t nl = req->payload_len - AUTH_NONCE_LEN;
	int r;

	memcpy(name, (const uint8_t *)req->payload + AUTH_NONCE_LEN, nl);
	name[nl] = '\0';
	if (strcmp(name, n->cfg.cluster_name) || rq->arg != (uint32_t)n->nodes ||
	    rq->arg64 != n->len)
		snprintf(why, sizeof(why),
			 "node %d: cluster '%s' with %d nodes and %zu bytes, not '%s' with %u nodes and %llu bytes",
			 n->id, n->cfg.cluster_name, n->nodes, n->len, name,
			 rq->arg, (unsigned long long)rq->arg64);
	if (why[0]) {
		pm_err("peer %s (node %u): handshake refused: we are %s",
		       req->peer, rq->from, why);
		rp.flags = PM_RP_NOT_HELD;
		node_reply(n, tidx, req->conn_id, req->req_id, 0, &rp, why,
			   (uint32_t)strlen(why));
		return;
	}
	r = auth_server_hello(n->auth, tidx, req->conn_id, rq->from, n->id,
			      n->cfg.cluster_name, req->payload, proof,
			      proof + AUTH_NONCE_LEN);
	if (r) {
		pm_err("peer %s (node %u): handshake: %s", req->peer, rq->from,
		       strerror(-r));
		reply_status(n, tidx, req, r);
		return;
	}
	if (auth_has_key(n->auth)) {
		/* Our proof and challenge; trust waits for its AUTH. */
		rp.flags = PM_RP_AUTH;
		node_reply(n, tidx, req->conn_id, req->req_id, 0, &rp, proof,
			   sizeof(proof));
		return;
	}
	note_incarnation(n, req, rq->from, rq->page);
	pm_dbg("peer %s is node %u", req->peer, rq->from);
	node_reply(n, tidx, req->conn_id, req->req_id, 0, &rp, NULL, 0);
}

static void drop_conn(struct pm_node *n, int tidx, uint64_t conn_id)
{
	const struct pm_plugin *pl = &n->plugins[tidx];
	int r = pl->ops->drop(pl->ctx, conn_id);

	if (r && r != -ENOENT)
		pm_warn("%s: dropping connection %llu: %s", pl->name,
			(unsigned long long)conn_id, strerror(-r));
}

/* The client's proof of the key, over the nonces of its HELLO. */
static void auth_request(struct pm_node *n, int tidx,
			 const struct pm_request *req,
			 const struct pm_proto_req *rq)
{
	struct pm_proto_rep rp = { .op = PM_OP_AUTH, .from = (uint16_t)n->id };
	int r;

	r = auth_server_finish(n->auth, tidx, req->conn_id, rq->from, n->id,
			       n->cfg.cluster_name, req->payload);
	if (r) {
		pm_warn("peer %s (claims node %u): %s; dropped", req->peer,
			rq->from,
			r == -ENOENT ? "AUTH without a HELLO first"
				     : "wrong proof of the cluster key (security.key_file differs?)");
		reply_status(n, tidx, req, -EACCES);
		drop_conn(n, tidx, req->conn_id);
		return;
	}
	note_incarnation(n, req, rq->from, rq->page);
	pm_dbg("peer %s authenticated as node %u", req->peer, rq->from);
	node_reply(n, tidx, req->conn_id, req->req_id, 0, &rp, NULL, 0);
}

static void on_close(void *arg, uint64_t conn_id)
{
	struct listener_ctx *lc = arg;

	auth_conn_closed(lc->node->auth, lc->tidx, conn_id);
}

static void on_request(void *arg, const struct pm_request *req)
{
	struct listener_ctx *lc = arg;
	struct pm_node *n = lc->node;
	struct pm_proto_req rq;
	const char *bad = NULL;

	STAT_ADD(n, bytes_received, req->msg_len + req->payload_len);
	STAT_ADD(n, tr[lc->tidx].bytes_received,
		 req->msg_len + req->payload_len);
	STAT_ADD(n, tr[lc->tidx].msgs_received, 1);
	/* A peer that sends what no node sends is broken or hostile. */
	if (proto_check_req(req->msg, req->msg_len, req->payload_len,
			    n->nodes, n->id, n->npages, &rq, &bad)) {
		memset(&rq, 0, sizeof(rq));
		if (req->msg_len >= sizeof(rq))
			memcpy(&rq, req->msg, sizeof(rq));
		pm_warn("peer %s: bad field '%s' (%u bytes, op %u from %u page %llu payload %u); dropped",
			req->peer, bad, req->msg_len, rq.op, rq.from,
			(unsigned long long)rq.page, req->payload_len);
		reply_status(n, lc->tidx, req, -EPROTO);
		drop_conn(n, lc->tidx, req->conn_id);
		return;
	}
	/* Nothing but the handshake before the peer proved the key. */
	if (rq.op != PM_OP_HELLO && rq.op != PM_OP_AUTH &&
	    !auth_conn_ok(n->auth, lc->tidx, req->conn_id, rq.from)) {
		pm_warn("peer %s: %s request as node %u on a connection that has not authenticated as that node; dropped",
			req->peer, op_names[rq.op], rq.from);
		reply_status(n, lc->tidx, req, -EACCES);
		drop_conn(n, lc->tidx, req->conn_id);
		return;
	}
	STAT_ADD(n, op_received[rq.op], 1);
	if (__atomic_exchange_n(&n->peer_dead[rq.from], false,
				__ATOMIC_RELAXED))
		pm_info("node %u is back (peer %s)", rq.from, req->peer);
	STAT_ADD(n, peer[rq.from].bytes_received,
		 req->msg_len + req->payload_len);
	switch (rq.op) {
	case PM_OP_HELLO:
		hello_request(n, lc->tidx, req, &rq);
		break;
	case PM_OP_READ:
	case PM_OP_WRITE:
	case PM_OP_EVICT:
		coh_remote_request(n, lc->tidx, req, &rq);
		break;
	case PM_OP_INVAL:
	case PM_OP_RECALL:
	case PM_OP_DOWNGRADE:
		coh_action(n, lc->tidx, req, &rq);
		break;
	case PM_OP_BARRIER:
		barrier_request(n, lc->tidx, req, &rq);
		break;
	case PM_OP_AUTH:
		auth_request(n, lc->tidx, req, &rq);
		break;
	}
}

/* ---- start-up ----------------------------------------------------------- */

static int hello(struct pm_node *n, int peer, struct pm_tconn *c, char *why,
		 size_t whylen)
{
	struct peer *p = &n->peers[peer];
	char ep[PM_ENDPOINT_MAX];
	struct pm_proto_req rq = {
		.op = PM_OP_HELLO, .from = (uint16_t)n->id,
		.arg = (uint32_t)n->nodes, .arg64 = n->len,
		.page = n->incarnation,
	};
	struct pm_proto_rep rp;
	char reason[256];
	/* Nc, then the cluster name (cfg.c keeps it below CFG_NAME_MAX) */
	uint8_t nc[AUTH_NONCE_LEN + CFG_NAME_MAX];
	size_t cl = strlen(n->cfg.cluster_name);
	struct pm_msg m = {
		.msg = &rq, .msg_len = sizeof(rq),
		.payload = nc,
		.payload_len = (uint32_t)(AUTH_NONCE_LEN + cl),
	};
	struct pm_msg r = {
		.msg = &rp, .msg_cap = sizeof(rp),
		.payload = reason, .payload_cap = sizeof(reason) - 1,
	};
	int ret;

	memcpy(ep, p->endpoint, sizeof(ep));
	ret = auth_nonce(nc);
	if (ret) {
		snprintf(why, whylen, "handshake: no random nonce: %s",
			 strerror(-ret));
		return ret;
	}
	memcpy(nc + AUTH_NONCE_LEN, n->cfg.cluster_name, cl);
	ret = n->plugins[p->tidx].ops->call(c, &m, &r,
			pm_now_ns() + (int64_t)n->timeout_ms * 1000000);
	if (ret) {
		snprintf(why, whylen, "handshake: %s", strerror(-ret));
		return ret;
	}
	if (r.msg_len != sizeof(rp) || rp.from != peer) {
		snprintf(why, whylen, "handshake: the peer at %s is node %u, not node %d",
			 ep, rp.from, peer);
		return -EPROTO;
	}
	if (rp.flags & PM_RP_NOT_HELD) {
		reason[r.payload_len] = '\0';
		snprintf(why, whylen, "refused our handshake: it is %s",
			 reason);
		return -EPROTO;
	}
	return hello_auth(n, peer, c, &rp, r.payload_len, nc,
			  (const uint8_t *)reason, why, whylen);
}

/*
 * Our side of the proof: check the server's MAC over both nonces, then
 * send ours (AUTH). Without a key on both sides there is nothing to do.
 */
static int hello_auth(struct pm_node *n, int peer, struct pm_tconn *c,
		      const struct pm_proto_rep *rp, uint32_t plen,
		      const uint8_t *nc, const uint8_t *proof, char *why,
		      size_t whylen)
{
	const char *ep = n->peers[peer].endpoint;
	const uint8_t *ns = proof;
	struct pm_proto_req rq = {
		.op = PM_OP_AUTH, .from = (uint16_t)n->id,
		.page = n->incarnation,
	};
	uint8_t mc[AUTH_MAC_LEN];
	struct pm_proto_rep ar;
	struct pm_msg m = {
		.msg = &rq, .msg_len = sizeof(rq),
		.payload = mc, .payload_len = sizeof(mc),
	};
	struct pm_msg r = { .msg = &ar, .msg_cap = sizeof(ar) };
	int ret;

	if (!(rp->flags & PM_RP_AUTH)) {
		if (!auth_has_key(n->auth))
			return 0;
		snprintf(why, whylen, "the peer at %s did not prove the cluster key: it runs without security.key_file",
			 ep);
		return -EPROTO;
	}
	if (!auth_has_key(n->auth)) {
		snprintf(why, whylen, "the peer at %s requires a cluster key and this node has no security.key_file",
			 ep);
		return -EPROTO;
	}
	if (plen != AUTH_NONCE_LEN + AUTH_MAC_LEN) {
		snprintf(why, whylen, "handshake: the peer at %s sent a proof of %u bytes, expected %u",
			 ep, plen, AUTH_NONCE_LEN + AUTH_MAC_LEN);
		return -EPROTO;
	}
	if (auth_verify(n->auth, "server", n->cfg.cluster_name, n->id, peer,
			nc, ns, proof + AUTH_NONCE_LEN)) {
		snprintf(why, whylen, "the peer at %s failed to prove the cluster key (is security.key_file the same on both nodes?)",
			 ep);
		return -EPROTO;
	}
	ret = auth_mac(n->auth, "client", n->cfg.cluster_name, n->id, peer, nc,
		       ns, mc);
	if (!ret)
		ret = n->plugins[n->peers[peer].tidx].ops->call(c, &m, &r,
			pm_now_ns() + (int64_t)n->timeout_ms * 1000000);
	if (ret == -EACCES) {
		snprintf(why, whylen, "the peer at %s refused our proof of the cluster key (is security.key_file the same on both nodes?)",
			 ep);
		return -EPROTO;
	}
	if (ret)
		snprintf(why, whylen, "handshake: AUTH: %s", strerror(-ret));
	return ret;
}

/*
 * A call was refused as unauthenticated: the plugin redialled a peer that
 * restarted, and the new connection has not been through the handshake.
 * Run it on that connection, one thread at a time.
 */
static int node_reauth(struct pm_node *n, int peer, struct pm_tconn *c)
{
	char why[512];
	int r;

	auth_client_lock(n->auth);
	r = hello(n, peer, c, why, sizeof(why));
	auth_client_unlock(n->auth);
	if (r)
		pm_err("node %d at %s: re-authenticating: %s", peer,
		       n->peers[peer].endpoint, why);
	else
		pm_info("node %d at %s: re-authenticated a redialled connection",
			peer, n->peers[peer].endpoint);
	return r;
}

/*
 * Without a cluster key anyone who reaches a port reads every page: allowed
 * only when every listen address (and, with peers, every peer endpoint) is
 * loopback. Called before listening and again once the peers are known.
 */
static int check_keyless(struct pm_node *n, bool peers, char *err,
			 size_t errlen, int *code)
{
	const struct cfg *c = &n->cfg;
	const char *addr;

	if (auth_has_key(n->auth))
		return 0;
	for (int t = 0; t < c->n_transports && !peers; t++) {
		if (cfg_transport_string(c, c->transports[t], "listen", &addr))
			continue;
		if (!auth_addr_is_loopback(addr))
			return fail(err, errlen, PM_EXIT_CONFIG, code,
				    "%s: transports.%s.listen is %s, not loopback: a cluster key is required (security = { key_file = \"...\"; })",
				    c->path, c->transports[t], addr);
	}
	for (int k = 0; k < c->n_peers && peers; k++)
		for (int t = 0; t < c->n_transports; t++) {
			addr = c->peers[k].endpoint[t];
			if (addr[0] && !auth_addr_is_loopback(addr))
				return fail(err, errlen, PM_EXIT_CONFIG, code,
					    "%s: node %d's %s endpoint is %s, not loopback: a cluster key is required (security = { key_file = \"...\"; })",
					    c->path, c->peers[k].id,
					    c->transports[t], addr);
		}
	if (peers)
		pm_warn("no security.key_file: peers are not authenticated (allowed: every address is loopback)");
	return 0;
}

/* Pick each peer's transport: the first in our order that is usable here
 * and for which the peer has an endpoint. */
static int plan_peers(struct pm_node *n, char *err, size_t errlen, int *code)
{
	const struct cfg *c = &n->cfg;

	for (int i = 0; i < n->nodes; i++)
		n->peers[i] = (struct peer){ .id = i, .tidx = -1 };
	for (int k = 0; k < c->n_peers; k++) {
		const struct cfg_peer *cp = &c->peers[k];
		struct peer *p = &n->peers[cp->id];

		for (int t = 0; t < c->n_transports && p->tidx < 0; t++) {
			if (!n->plugins[t].usable || !cp->endpoint[t][0])
				continue;
			p->tidx = t;
			memcpy(p->endpoint, cp->endpoint[t],
			       sizeof(p->endpoint));
		}
		if (p->tidx < 0)
			return fail(err, errlen, PM_EXIT_CONFIG, code,
				    "%s: peers: node %d has no endpoint for a transport usable here (see --list-transports)",
				    c->path, cp->id);
	}
	return 0;
}

/* The peer list (static, or from the coordinator) must name every node. */
static int peers_cover(const struct cfg *c, char *err, size_t errlen,
		       int *code)
{
	bool listed[CFG_MAX_NODES] = { false };
	char missing[256] = "";
	size_t o = 0;

	for (int k = 0; k < c->n_peers; k++)
		listed[c->peers[k].id] = true;
	for (int i = 0; i < c->cluster_nodes; i++)
		if (i != c->node_id && !listed[i] && o < sizeof(missing) - 8)
			o += snprintf(missing + o, sizeof(missing) - o, " %d", i);
	if (o)
		return fail(err, errlen, PM_EXIT_CONFIG, code,
			    "%s: cluster.nodes is %d but %s for node(s)%s",
			    c->path, c->cluster_nodes,
			    c->n_coord_urls ? "the coordinator has no endpoint"
					    : "peers lists no endpoint (and no coordinator is configured)",
			    missing);
	return 0;
}

static int check_peers(const struct cfg *c, char *err, size_t errlen,
		       int *code)
{
	return c->n_coord_urls ? 0 : peers_cover(c, err, errlen, code);
}

static int check_peers_all(struct pm_node *n, char *err, size_t errlen,
			   int *code)
{
	int r = peers_cover(&n->cfg, err, errlen, code);

	if (r && code)
		*code = PM_EXIT_RUNTIME;
	return r;
}

static void peer_disconnect(struct pm_node *n, struct peer *p)
{
	const struct pm_plugin *pl = &n->plugins[p->tidx];

	for (int k = 0; k < PM_MAX_FAULT_THREADS; k++) {
		if (p->fconn[k])
			pl->ops->disconnect(p->fconn[k]);
		p->fconn[k] = NULL;
	}
	if (p->conn)
		pl->ops->disconnect(p->conn);
	p->conn = NULL;
}

static int connect_peers(struct pm_node *n, char *err, size_t errlen,
			 int *code)
{
	int64_t deadline = pm_now_ns() +
			   (int64_t)n->cfg.startup_timeout_ms * 1000000;
	int left;

	for (;;) {
		left = 0;
		for (int i = 0; i < n->nodes; i++) {
			struct peer *p = &n->peers[i];
			const struct pm_plugin *pl;
			int r;

			if (i == n->id || p->conn)
				continue;
			pl = &n->plugins[p->tidx];
			r = pl->ops->connect(pl->ctx, p->endpoint,
					     pm_now_ns() + 1000000000ll,
					     &p->conn);
			if (r) {
				p->conn = NULL;
				snprintf(p->last_err, sizeof(p->last_err),
					 "%s", strerror(-r));
				left++;
				continue;
			}
			r = hello(n, i, p->conn, p->last_err,
				  sizeof(p->last_err));
			for (int k = 0; !r && k < n->nthreads; k++) {
				r = pl->ops->connect(pl->ctx, p->endpoint,
						     pm_now_ns() + 1000000000ll,
						     &p->fconn[k]);
				if (r) {
					p->fconn[k] = NULL;
					snprintf(p->last_err,
						 sizeof(p->last_err), "%s",
						 strerror(-r));
					break;
				}
				r = hello(n, i, p->fconn[k], p->last_err,
					  sizeof(p->last_err));
			}
			if (r == -EPROTO)
				return fail(err, errlen, PM_EXIT_RUNTIME, code,
					    "node %d at %s (%s) %s", i,
					    p->endpoint, pl->name,
					    p->last_err);
			if (r) {
				peer_disconnect(n, p);
				left++;
				continue;
			}
			pm_info("connected to node %d at %s (%s)", i,
				p->endpoint, pl->name);
		}
		if (!left)
			return 0;
		if (pm_now_ns() >= deadline)
			break;
		/* Peers start in any order: retry at a gentle pace. */
		nanosleep(&(struct timespec){ .tv_nsec = 50000000 }, NULL);
	}
	char msg[1024];
	size_t o = 0;

	for (int i = 0; i < n->nodes && o < sizeof(msg) - 1; i++)
		if (i != n->id && !n->peers[i].conn)
			o += snprintf(msg + o, sizeof(msg) - o,
				      "%snode %d at %s (%s): %s",
				      o ? "; " : "", i, n->peers[i].endpoint,
				      n->plugins[n->peers[i].tidx].name,
				      n->peers[i].last_err);
	return fail(err, errlen, PM_EXIT_RUNTIME, code,
		    "start-up timed out after %d ms waiting for %d node(s): %s",
		    n->cfg.startup_timeout_ms, left, msg);
}

/*
 * Publish our endpoints, wait until every node of the cluster is there,
 * and take the members as the peer list.
 */
static int join_coordinator(struct pm_node *n, char *err, size_t errlen,
			    int *code)
{
	struct coord_member self = { .node_id = n->id };
	struct coord_member *m;
	uint64_t version;
	int r, cnt = 0;

	r = coord_open(&n->cfg, &n->coord);
	if (r)
		return fail(err, errlen, PM_EXIT_RUNTIME, code,
			    "coordinator %s: %s (see the log above)",
			    n->cfg.coord_urls[0], strerror(-r));
	for (int t = 0; t < n->nplugins; t++) {
		struct pm_plugin *p = &n->plugins[t];

		if (!p->usable)
			continue;
		snprintf(self.eps[self.n_eps].transport,
			 sizeof(self.eps[0].transport), "%s", p->name);
		if (p->ops->endpoint(p->ctx, self.eps[self.n_eps].endpoint,
				     PM_ENDPOINT_MAX))
			continue;
		self.n_eps++;
	}
	r = coord_register(n->coord, &self);
	if (r)
		return fail(err, errlen, PM_EXIT_RUNTIME, code,
			    "registering with the coordinator %s: %s",
			    n->cfg.coord_urls[0], strerror(-r));
	m = calloc(CFG_MAX_NODES, sizeof(*m));
	if (!m)
		return fail(err, errlen, PM_EXIT_RUNTIME, code,
			    "out of memory");
	r = coord_wait_members(n->coord, n->nodes,
			       n->cfg.startup_timeout_ms, m, CFG_MAX_NODES,
			       &cnt, &version);
	if (r) {
		char seen[256] = "";
		size_t o = 0;

		for (int i = 0; i < cnt && o < sizeof(seen) - 8; i++)
			o += snprintf(seen + o, sizeof(seen) - o, " %d",
				      m[i].node_id);
		free(m);
		return fail(err, errlen, PM_EXIT_RUNTIME, code,
			    "start-up: %d of %d nodes registered with the coordinator after %d ms (seen:%s): %s",
			    cnt, n->nodes, n->cfg.startup_timeout_ms,
			    o ? seen : " none", strerror(-r));
	}
	coord_fill_peers(&n->cfg, m, cnt);
	free(m);
	pm_info("coordinator: %d nodes registered (membership version %llu)",
		cnt, (unsigned long long)version);
	return check_peers_all(n, err, errlen, code);
}

static bool transport_known(const struct cfg *c, const char *name)
{
	char path[PATH_MAX + 80];

	for (size_t i = 0; i < sizeof(known_transports) /
			       sizeof(known_transports[0]); i++)
		if (!strcmp(name, known_transports[i]))
			return true;
	snprintf(path, sizeof(path), "%s/%s.so", c->transport_dir, name);
	return access(path, F_OK) == 0;
}

static int check_transports(const struct cfg *c, char *err, size_t errlen,
			    int *code)
{
	config_setting_t *order = config_lookup(&c->lc, "transports.order");

	for (int i = 0; i < c->n_transports; i++)
		if (!transport_known(c, c->transports[i]))
			return fail(err, errlen, PM_EXIT_CONFIG, code,
				    "%s:%u: transports.order: unknown transport '%s' (known: rdma, io_uring-tcp, tcp, or a plugin file %s/%s.so)",
				    c->path,
				    order ? config_setting_source_line(order)
					  : 0,
				    c->transports[i], c->transport_dir,
				    c->transports[i]);
	return 0;
}

static int setup_region(struct pm_node *n)
{
	n->len = n->cfg.memory;
	n->npages = n->len / PM_PAGE_SIZE;
	n->per_home = (n->npages + n->nodes - 1) / n->nodes;
	n->home_first = n->per_home * n->id;
	if (n->home_first > n->npages)
		n->home_first = n->npages;
	n->home_count = n->npages - n->home_first < n->per_home
				? n->npages - n->home_first
				: n->per_home;
	n->region = mmap(NULL, n->len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (n->region == MAP_FAILED) {
		n->region = NULL;
		return -errno;
	}
	/* Pages move one at a time: no huge pages under userfaultfd. */
	madvise(n->region, n->len, MADV_NOHUGEPAGE);
	n->lstate = calloc(n->npages, 1);
	if (!n->lstate)
		return -ENOMEM;
	return coh_init(n);
}

static struct pm_node *node_alloc(void)
{
	struct pm_node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	for (int i = 0; i < PM_NLOCKS; i++) {
		pthread_mutex_init(&n->llock[i], NULL);
		pthread_mutex_init(&n->dlock[i], NULL);
	}
	pthread_mutex_init(&n->dfr_lock, NULL);
	pthread_mutex_init(&n->wq_lock, NULL);
	pthread_cond_init(&n->wq_cv, NULL);
	pthread_mutex_init(&n->txn_lock, NULL);
	pthread_cond_init(&n->txn_cv, NULL);
	pthread_mutex_init(&n->bar_lock, NULL);
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&n->bar_cv, &ca);
	pthread_condattr_destroy(&ca);
	n->uffd = n->stop_efd = -1;
	return n;
}

static void node_free(struct pm_node *n)
{
	if (n->metrics)
		metrics_stop(n->metrics);
	n->metrics = NULL;
	if (n->coord)
		coord_close(n->coord);
	n->coord = NULL;
	pager_stop(n);
	evict_free(n);
	for (int i = 0; i < n->nodes; i++) {
		struct peer *p = &n->peers[i];

		if (p->tidx >= 0)
			peer_disconnect(n, p);
	}
	for (int t = 0; t < n->nplugins; t++)
		loader_close(&n->plugins[t]);
	auth_close(n->auth);	/* after fini: no on_close follows */
	n->auth = NULL;
	coh_workers_stop(n);
	coh_fini(n);
	free(n->lstate);
	if (n->region)
		munmap(n->region, n->len);
	cfg_free(&n->cfg);
	free(n);
}

struct pm_node *pm_node_start_ex(const char *config_path, char *err,
				 size_t errlen, int *code)
{
	struct pm_node *n;
	char buf[PM_ENDPOINT_MAX];
	int r, usable = 0;

	if (code)
		*code = PM_EXIT_RUNTIME;
	n = node_alloc();
	if (!n) {
		fail(err, errlen, PM_EXIT_RUNTIME, code, "out of memory");
		return NULL;
	}
	r = cfg_load(config_path, &n->cfg, err, errlen);
	if (r) {
		if (code)
			*code = PM_EXIT_CONFIG;
		goto out_free;
	}
	if (check_transports(&n->cfg, err, errlen, code) ||
	    check_peers(&n->cfg, err, errlen, code))
		goto out_free;
	r = auth_open(&n->cfg, &n->auth, err, errlen);
	if (r || check_keyless(n, false, err, errlen, code)) {
		if (code)
			*code = PM_EXIT_CONFIG;
		goto out_free;
	}
	if (getrandom(&n->incarnation, sizeof(n->incarnation), 0) !=
	    sizeof(n->incarnation))
		n->incarnation = (uint64_t)pm_now_ns() ^ (uint64_t)getpid();
	n->id = n->cfg.node_id;
	n->nodes = n->cfg.cluster_nodes;
	n->timeout_ms = n->cfg.timeout_ms;
	n->nthreads = n->cfg.pager_threads;
	n->prefetch = n->cfg.prefetch;
	snprintf(buf, sizeof(buf), "node %d", n->id);
	pm_log_set_prefix(buf);

	r = setup_region(n);
	if (r) {
		fail(err, errlen, PM_EXIT_RUNTIME, code,
		     "mapping a region of %llu bytes: %s",
		     (unsigned long long)n->cfg.memory, strerror(-r));
		goto out_free;
	}

	/* Transports: every usable one listens; peers pick among them. */
	loader_open_all(&n->cfg, n->plugins);
	n->nplugins = n->cfg.n_transports;
	for (int t = 0; t < n->nplugins; t++) {
		struct pm_plugin *p = &n->plugins[t];

		if (!p->usable)
			continue;
		r = p->ops->init(&p->host, &p->ctx);
		if (r) {
			pm_warn("transport %s: init: %s; not used", p->name,
				strerror(-r));
			p->ctx = NULL;
			p->usable = false;
			continue;
		}
		n->lctx[t] = (struct listener_ctx){ .node = n, .tidx = t };
		struct pm_listener lst = {
			.on_request = on_request, .on_close = on_close,
			.arg = &n->lctx[t],
		};
		r = p->ops->listen(p->ctx, &lst);
		if (!r)
			r = p->ops->endpoint(p->ctx, buf, sizeof(buf));
		if (r) {
			pm_warn("transport %s: listen: %s; not used", p->name,
				strerror(-r));
			p->usable = false;
			continue;
		}
		pm_info("transport %s listening at %s", p->name, buf);
		usable++;
	}
	if (!usable) {
		fail(err, errlen, PM_EXIT_RUNTIME, code,
		     "%s: no usable transport among transports.order (see pagemesh --list-transports -c %s)",
		     config_path, config_path);
		goto out_free;
	}
	if (n->cfg.n_coord_urls && join_coordinator(n, err, errlen, code))
		goto out_free;
	if (plan_peers(n, err, errlen, code) ||
	    check_keyless(n, true, err, errlen, code))
		goto out_free;
	r = coh_workers_start(n);
	if (!r)
		r = evict_start(n);
	if (!r)
		r = pager_start(n);
	if (r) {
		fail(err, errlen, PM_EXIT_RUNTIME, code,
		     "starting the pager: %s", strerror(-r));
		goto out_free;
	}
	if (connect_peers(n, err, errlen, code))
		goto out_free;
	r = pm_node_barrier(n, n->cfg.startup_timeout_ms);
	if (r) {
		fail(err, errlen, PM_EXIT_RUNTIME, code,
		     "start-up barrier: %s (are all %d nodes running?)",
		     strerror(-r), n->nodes);
		goto out_free;
	}
	if (n->cfg.metrics_listen[0]) {
		n->metrics = metrics_start(n->cfg.metrics_listen, metrics_fill,
					   n, err, errlen);
		if (!n->metrics) {
			if (code)
				*code = PM_EXIT_RUNTIME;
			goto out_free;
		}
		pm_info("metrics at http://%s/metrics", n->cfg.metrics_listen);
	}
	pm_info("node %d of %d up: region %llu bytes, pages %llu..%llu homed here",
		n->id, n->nodes, (unsigned long long)n->len,
		(unsigned long long)n->home_first,
		(unsigned long long)(n->home_first + n->home_count - 1));
	if (code)
		*code = 0;
	return n;

out_free:
	node_free(n);
	return NULL;
}

struct pm_node *pm_node_start(const char *config_path, char *err,
			      size_t errlen)
{
	return pm_node_start_ex(config_path, err, errlen, NULL);
}

void *pm_node_region(struct pm_node *n, size_t *len)
{
	if (len)
		*len = n ? n->len : 0;
	return n ? n->region : NULL;
}

int pm_node_id(const struct pm_node *n)
{
	return n ? n->id : -1;
}

int pm_node_count(const struct pm_node *n)
{
	return n ? n->nodes : 0;
}

void pm_node_stop(struct pm_node *n)
{
	if (!n)
		return;
	/* Nothing more to evict: the others are about to go. */
	evict_stop(n);
	/* Pages homed here stay served until every node is done. */
	if (pm_node_barrier(n, n->cfg.startup_timeout_ms))
		pm_warn("stopping without the other nodes' agreement");
	/* From here peers closing is the cluster stopping, not failing. */
	__atomic_store_n(&n->leaving, true, __ATOMIC_RELAXED);
	node_free(n);
}

/* ---- pagemesh node -------------------------------------------------------- */

static void print_stats_table(struct pm_node *n, FILE *out)
{
	struct pm_stats s;

	pm_node_stats(n, &s);
	fprintf(out,
		"node %d: faults zero %llu local %llu remote %llu wp %llu | pages sent %llu received %llu | invalidations sent %llu received %llu | fault p50 %.1f us p99 %.1f us\n",
		n->id, (unsigned long long)s.faults_zero,
		(unsigned long long)s.faults_local,
		(unsigned long long)s.faults_remote,
		(unsigned long long)s.faults_wp,
		(unsigned long long)s.pages_sent,
		(unsigned long long)s.pages_received,
		(unsigned long long)s.invalidations_sent,
		(unsigned long long)s.invalidations_received,
		s.fault_p50_ns / 1e3, s.fault_p99_ns / 1e3);
}

static void node_usage(FILE *out)
{
	fprintf(out,
"usage: pagemesh node -c FILE\n"
"\n"
"Run a node of the cluster described by FILE until SIGINT or SIGTERM: it\n"
"serves the pages it is home for and contributes its memory. Start-up waits\n"
"(cluster.startup_timeout_ms, default 30000) until every node is connected.\n"
"\n"
"  -c, --config FILE   node configuration (see etc/ and README)\n"
"  -h, --help          this text\n"
"\n"
"exit codes: 0 stopped by a signal, 1 runtime error, 2 usage,\n"
"78 configuration error\n");
}

int cmd_node(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL;
	struct pm_node *n;
	char err[1024];
	sigset_t set;
	int c, sig, code;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			node_usage(stdout);
			return PM_EXIT_OK;
		default:
			node_usage(stderr);
			return PM_EXIT_USAGE;
		}
	}
	if (!config || optind != argc) {
		node_usage(stderr);
		return PM_EXIT_USAGE;
	}
	/* Block the stop signals in every thread; the main thread waits. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	n = pm_node_start_ex(config, err, sizeof(err), &code);
	if (!n) {
		fprintf(stderr, "pagemesh node: %s\n", err);
		return code;
	}
	sigwait(&set, &sig);
	pm_info("%s: stopping", strsignal(sig));
	print_stats_table(n, stdout);
	fflush(stdout);
	node_free(n);
	return PM_EXIT_OK;
}
