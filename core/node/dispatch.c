// SPDX-License-Identifier: MIT
/*
 * Incoming messages: every request a transport hands over is checked
 * (proto_check_req), must come from a connection that proved the key for
 * the node it claims to be, and goes to its room: the handshake's server
 * side (here), home.c, holder.c or barrier.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "node.h"

/*
 * A node that restarted lost its memory: forget what it held, and drop
 * what we hold of its pages, before our answer lets it serve them
 * (DESIGN.md, "A home that comes back"). Only once it proved the key, so
 * no stranger can make us forget a node. Returns the incarnation we knew
 * before this one, 0 if none: the answer carries it.
 */
static uint64_t note_incarnation(struct pm_node *n,
				 const struct pm_request *req, int from,
				 uint64_t incarnation)
{
	uint64_t inc = __atomic_exchange_n(&n->peer_inc[from], incarnation,
					   __ATOMIC_RELAXED);

	__atomic_store_n(&n->claim_ns[from], 0, __ATOMIC_RELAXED);
	if (!inc || inc == incarnation)
		return 0;
	pm_warn("node %u restarted (peer %s)", from, req->peer);
	holder_home_restarted(n, from);
	home_forget_node(n, from);
	return inc;
}

static void drop_conn(struct pm_node *n, int tidx, uint64_t conn_id);

/* Is incarnation that of node `from` when it was declared dead? */
static bool fenced(struct pm_node *n, int from, uint64_t incarnation)
{
	uint64_t f = __atomic_load_n(&n->fenced_inc[from], __ATOMIC_RELAXED);

	return f && f == incarnation;
}

/* A fenced incarnation's message: refused, logged once per death. */
static void refuse_fenced(struct pm_node *n, int tidx,
			  const struct pm_request *req, int from)
{
	if (!__atomic_exchange_n(&n->fenced_told[from], true,
				 __ATOMIC_RELAXED))
		pm_warn("peer %s: node %d's incarnation %#llx was declared dead: refused (it must start again to rejoin)",
			req->peer, from,
			(unsigned long long)__atomic_load_n(&n->fenced_inc[from],
							    __ATOMIC_RELAXED));
	node_reply_status(n, from, tidx, req, -ESTALE);
}

/*
 * Another incarnation claims node `from`, whose current one we have not
 * declared dead: a restart, or a second process started with the same id
 * (or one posing as it), which must not make us forget the live one's
 * pages. The claim is refused (the claimant retries) until either the
 * detector declares the old one dead, or a ping to the node's endpoint,
 * sent after the claim began, is answered by another incarnation: a
 * restart took the old one's endpoint, a duplicate did not.
 */
static bool id_in_use(struct pm_node *n, int from, uint64_t incarnation)
{
	uint64_t cur = __atomic_load_n(&n->peer_inc[from], __ATOMIC_RELAXED);
	int64_t now = pm_now_ns(), claim;

	if (!cur || cur == incarnation || node_peer_dead(n, from))
		return false;
	claim = __atomic_load_n(&n->claim_ns[from], __ATOMIC_RELAXED);
	if (!claim || now - claim > (int64_t)n->failure_ms * 1000000) {
		__atomic_store_n(&n->claim_ns[from], now, __ATOMIC_RELAXED);
		detect_poke(n, from);
		return true;
	}
	return !(__atomic_load_n(&n->answer_ns[from], __ATOMIC_RELAXED) >
		 claim &&
		 __atomic_load_n(&n->answer_inc[from], __ATOMIC_RELAXED) !=
		 cur);
}

static void refuse_in_use(struct pm_node *n, int tidx,
			  const struct pm_request *req, int from)
{
	pm_warn("peer %s claims node id %d, which a live node holds (another incarnation): refused",
		req->peer, from);
	node_reply_status(n, -1, tidx, req, -EADDRINUSE);
	drop_conn(n, tidx, req->conn_id);
}

/* The handshake's identity rules (HELLO and AUTH alike): an incarnation
 * declared dead, or another incarnation of a live node, is refused and
 * changes nothing. True when refused (answered). */
static bool identity_refused(struct pm_node *n, int tidx,
			     const struct pm_request *req,
			     const struct pm_proto_req *rq)
{
	if (fenced(n, rq->from, rq->page)) {
		refuse_fenced(n, tidx, req, rq->from);
		drop_conn(n, tidx, req->conn_id);
		return true;
	}
	if (id_in_use(n, rq->from, rq->page)) {
		refuse_in_use(n, tidx, req, rq->from);
		return true;
	}
	return false;
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
		/* The details are for our log: a stranger learns nothing of
		 * the cluster's geometry from the refusal. */
		static const char refused[] =
			"a member of another cluster (name, size or memory differ; its log says which)";

		pm_err("peer %s (node %u): handshake refused: we are %s",
		       req->peer, rq->from, why);
		rp.flags = PM_RP_NOT_HELD;
		node_reply(n, -1, tidx, req->conn_id, req->req_id, 0, &rp,
			   refused, (uint32_t)strlen(refused));
		return;
	}
	if (identity_refused(n, tidx, req, rq))
		return;
	r = auth_server_hello(n->auth, tidx, req->conn_id, rq->from, n->id,
			      n->cfg.cluster_name, req->payload, proof,
			      proof + AUTH_NONCE_LEN);
	if (r) {
		pm_err("peer %s (node %u): handshake: %s", req->peer, rq->from,
		       strerror(-r));
		node_reply_status(n, rq->from, tidx, req, r);
		return;
	}
	if (auth_has_key(n->auth)) {
		/* Our proof and challenge; trust waits for its AUTH. */
		rp.flags = PM_RP_AUTH;
		node_reply(n, rq->from, tidx, req->conn_id, req->req_id, 0, &rp, proof,
			   sizeof(proof));
		return;
	}
	rp.page = note_incarnation(n, req, rq->from, rq->page);
	pm_dbg("peer %s is node %u", req->peer, rq->from);
	node_reply(n, rq->from, tidx, req->conn_id, req->req_id, 0, &rp, NULL, 0);
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
		node_reply_status(n, rq->from, tidx, req, -EACCES);
		drop_conn(n, tidx, req->conn_id);
		return;
	}
	if (identity_refused(n, tidx, req, rq))
		return;
	rp.page = note_incarnation(n, req, rq->from, rq->page);
	pm_dbg("peer %s authenticated as node %u", req->peer, rq->from);
	node_reply(n, rq->from, tidx, req->conn_id, req->req_id, 0, &rp, NULL, 0);
}

void node_on_close(void *arg, uint64_t conn_id)
{
	struct listener_ctx *lc = arg;

	auth_conn_closed(lc->node->auth, lc->tidx, conn_id);
}

static void dispatch(struct listener_ctx *lc, const struct pm_request *req)
{
	struct pm_node *n = lc->node;
	struct pm_proto_req rq;
	const char *bad = NULL;

	STAT_ADD(n, bytes_received, req->msg_len + req->payload_len);
	STAT_ADD_AT(n, tr[lc->tidx].bytes_received,
		 req->msg_len + req->payload_len);
	STAT_ADD_AT(n, tr[lc->tidx].msgs_received, 1);
	/* A peer that sends what no node sends is broken or hostile. */
	if (proto_check_req(req->msg, req->msg_len, req->payload_len,
			    n->nodes, n->id, n->npages, &rq, &bad)) {
		memset(&rq, 0, sizeof(rq));
		if (req->msg_len >= sizeof(rq))
			memcpy(&rq, req->msg, sizeof(rq));
		pm_warn("peer %s: bad field '%s' (%u bytes, op %u from %u page %llu payload %u); dropped",
			req->peer, bad, req->msg_len, rq.op, rq.from,
			(unsigned long long)rq.page, req->payload_len);
		node_reply_status(n, -1, lc->tidx, req, -EPROTO);
		drop_conn(n, lc->tidx, req->conn_id);
		return;
	}
	/* Nothing but the handshake before the peer proved the key. */
	if (rq.op != PM_OP_HELLO && rq.op != PM_OP_AUTH &&
	    !auth_conn_ok(n->auth, lc->tidx, req->conn_id, rq.from)) {
		pm_warn("peer %s: %s request as node %u on a connection that has not authenticated as that node; dropped",
			req->peer, proto_op_name(rq.op), rq.from);
		node_reply_status(n, -1, lc->tidx, req, -EACCES);
		drop_conn(n, lc->tidx, req->conn_id);
		return;
	}
	STAT_ADD_AT(n, op_received[rq.op], 1);
	/* Only a connection that proved it is the node counts as one: an
	 * unauthenticated HELLO or AUTH changes nothing. */
	if (rq.op != PM_OP_HELLO && rq.op != PM_OP_AUTH) {
		/* The node was declared dead and this is still it: it may
		 * hold nothing and ask nothing until it starts again. */
		if (fenced(n, rq.from, __atomic_load_n(&n->peer_inc[rq.from],
						       __ATOMIC_RELAXED))) {
			refuse_fenced(n, lc->tidx, req, rq.from);
			return;
		}
		node_heard(n, rq.from);
		if (__atomic_exchange_n(&n->peer_dead[rq.from], false,
					__ATOMIC_RELAXED))
			pm_info("node %u is back (peer %s)", rq.from,
				req->peer);
	}
	STAT_ADD_AT(n, peer[rq.from].bytes_received,
		 req->msg_len + req->payload_len);
	switch (rq.op) {
	case PM_OP_HELLO:
		hello_request(n, lc->tidx, req, &rq);
		break;
	case PM_OP_READ:
	case PM_OP_WRITE:
	case PM_OP_EVICT:
		home_request(n, lc->tidx, req, &rq);
		break;
	case PM_OP_INVAL:
	case PM_OP_RECALL:
	case PM_OP_DOWNGRADE:
		holder_remote_action(n, lc->tidx, req, &rq);
		break;
	case PM_OP_BARRIER:
		barrier_request(n, lc->tidx, req, &rq);
		break;
	case PM_OP_AUTH:
		auth_request(n, lc->tidx, req, &rq);
		break;
	case PM_OP_PING: {
		/* Who answers: a restart and a duplicate differ here. */
		struct pm_proto_rep rp = {
			.op = PM_OP_PING, .from = (uint16_t)n->id,
			.page = n->incarnation,
		};

		node_reply(n, rq.from, lc->tidx, req->conn_id, req->req_id, 0,
			   &rp, NULL, 0);
		break;
	}
	}
}


/* On a transport's receive thread: it logs as this node while here. */
void node_on_request(void *arg, const struct pm_request *req)
{
	struct listener_ctx *lc = arg;
	const struct pm_logger *old = pm_log_use(&lc->node->log);

	dispatch(lc, req);
	pm_log_use(old);
}
