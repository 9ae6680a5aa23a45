// SPDX-License-Identifier: MIT
/*
 * The cluster barrier (pm_node_barrier): node 0 gathers one arrival per
 * node for each generation and answers them all at once; the others call
 * it. A retry of a completed generation passes. A node run by `pagemesh
 * node` only serves: it arrives at the start-up barrier saying so
 * (PM_RQ_SERVER_ONLY) and counts as arrived at every generation after,
 * so the barriers of the API programs beside it, and the stop barrier of
 * pm_node_stop, gather the API programs only.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "node.h"

/* Node 0, bar_lock held: whether node i is in for the gathered
 * generation: it arrived, or it only serves and never calls. */
static bool barrier_counted(const struct pm_node *n, int i)
{
	return n->bar_arrived[i] || n->bar_server[i];
}

/* Node 0, bar_lock held: if every node is in, answer those that called
 * and open the next generation. */
static void barrier_complete(struct pm_node *n)
{
	for (int i = 0; i < n->nodes; i++)
		if (!barrier_counted(n, i))
			return;
	for (int i = 1; i < n->nodes; i++) {
		struct pm_proto_rep rp = { .op = PM_OP_BARRIER };

		if (!n->bar_arrived[i])
			continue;	/* a server-only node: not waiting */
		node_reply(n, i, n->bar_waiters[i].tidx,
			   n->bar_waiters[i].conn_id,
			   n->bar_waiters[i].req_id, 0, &rp, NULL, 0);
	}
	n->bar_done_gen = n->bar_serve_gen;
	n->bar_serve_gen++;
	memset(n->bar_arrived, 0, sizeof(n->bar_arrived));
	pthread_cond_broadcast(&n->bar_cv);
}

/* Node 0, bar_lock held: node `who` says it only serves. */
static void barrier_server_only(struct pm_node *n, int who)
{
	if (n->bar_server[who])
		return;
	n->bar_server[who] = true;
	pm_info("barrier: node %d only serves (pagemesh node): it counts as arrived at every barrier after start-up",
		who);
}

void barrier_request(struct pm_node *n, int tidx,
		     const struct pm_request *req,
		     const struct pm_proto_req *rq)
{
	bool server = rq->flags & PM_RQ_SERVER_ONLY;

	if (n->id != 0) {
		pm_warn("peer %s (node %u): barrier request, but only node 0 serves barriers",
			req->peer, rq->from);
		node_reply_status(n, rq->from, tidx, req, -EPROTO);
		return;
	}
	lk_lock(&n->bar_lock, LK_BAR);
	if (server)
		barrier_server_only(n, rq->from);
	if (rq->arg != n->bar_serve_gen) {
		bool done = rq->arg == n->bar_done_gen && n->bar_serve_gen;

		/* A server-only node's start-up barrier after the cluster
		 * formed (it started again): it joins at once, and the
		 * gathered generation no longer waits for it. */
		if (server) {
			done = true;
			barrier_complete(n);
		}
		lk_unlock(&n->bar_lock);
		/* A retry of a barrier that completed: it passed. */
		if (!done)
			pm_warn("peer %s (node %u): barrier generation %u, expected %u",
				req->peer, rq->from, rq->arg,
				n->bar_serve_gen);
		node_reply_status(n, rq->from, tidx, req, done ? 0 : -EPROTO);
		return;
	}
	/* A retry after the caller's deadline: the newer token wins. */
	n->bar_waiters[rq->from].tidx = tidx;
	n->bar_waiters[rq->from].conn_id = req->conn_id;
	n->bar_waiters[rq->from].req_id = req->req_id;
	n->bar_arrived[rq->from] = true;
	barrier_complete(n);
	lk_unlock(&n->bar_lock);
}

static int barrier(struct pm_node *n, int timeout_ms)
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

		lk_lock(&n->bar_lock, LK_BAR);
		if (n->server_only)
			barrier_server_only(n, 0);
		gen = n->bar_serve_gen;
		n->bar_arrived[0] = true;
		barrier_complete(n);
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
			for (int i = 1; i < n->nodes && o < sizeof(miss) - 8;
			     i++)
				if (!barrier_counted(n, i))
					o += snprintf(miss + o,
						      sizeof(miss) - o, " %d",
						      i);
			pm_err("barrier %u: timed out after %d ms waiting for node(s)%s",
			       gen, timeout_ms, miss);
		}
		lk_unlock(&n->bar_lock);
		return r;
	}

	struct pm_proto_req rq = {
		.op = PM_OP_BARRIER, .from = (uint16_t)n->id,
		.arg = n->bar_gen,
		/* Said with its start-up barrier, its only one. */
		.flags = n->server_only && !n->bar_gen ? PM_RQ_SERVER_ONLY : 0,
	};
	struct pm_proto_rep rp;
	struct pm_tconn *c = n->peers[0].conn;
	struct pm_msg m = { .msg = &rq, .msg_len = sizeof(rq) };
	struct pm_msg rm = { .msg = &rp, .msg_cap = sizeof(rp) };

	if (!c)
		return -ENOTCONN;
	r = node_call_on(n, 0, c, &m, &rm, deadline);
	if (r) {
		pm_err("barrier %u: %s", n->bar_gen,
		       r == -ETIMEDOUT ? "timed out waiting for the other nodes"
				       : strerror(-r));
		return r;
	}
	n->bar_gen++;
	return 0;
}


int pm_node_barrier(struct pm_node *n, int timeout_ms)
{
	const struct pm_logger *old;
	int r;

	if (!n || timeout_ms < 0)
		return -EINVAL;
	old = pm_log_use(&n->log);
	r = barrier(n, timeout_ms);
	pm_log_use(old);
	return r;
}
