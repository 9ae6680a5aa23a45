// SPDX-License-Identifier: MIT
/*
 * Talking to peers: every outgoing call (faults, actions, evictions,
 * barriers and the handshake alike) goes through peer_call(), which checks
 * what the plugin returned and counts it; every reply through node_reply().
 * Also the handshake's client side (HELLO, AUTH), dialling the peers at
 * start-up, and the record of which peers failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "cli.h"
#include "log.h"
#include "node.h"

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

void node_heard(struct pm_node *n, int peer)
{
	if (peer >= 0 && peer < n->nodes)
		__atomic_store_n(&n->heard_ns[peer], pm_now_ns(),
				 __ATOMIC_RELAXED);
}

void node_lease_renew(struct pm_node *n, int peer, int64_t sent_ns)
{
	int64_t until = sent_ns + (int64_t)n->failure_ms * 1000000 * 3 / 4;
	int64_t cur = __atomic_load_n(&n->lease_until[peer], __ATOMIC_RELAXED);

	while (cur < until &&
	       !__atomic_compare_exchange_n(&n->lease_until[peer], &cur, until,
					    false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED))
		;
	/* A late answer to a call sent long ago renews nothing. */
	if (until > pm_now_ns() &&
	    __atomic_exchange_n(&n->lease_lapsed[peer], false,
				__ATOMIC_RELAXED))
		pm_info("node %d answers again: its pages are fetched anew",
			peer);
}

bool node_lease_held(struct pm_node *n, int home)
{
	return home == n->id ||
	       (!__atomic_load_n(&n->lease_lapsed[home], __ATOMIC_RELAXED) &&
		pm_now_ns() < __atomic_load_n(&n->lease_until[home],
					      __ATOMIC_RELAXED));
}

void node_backoff(int tries)
{
	struct timespec ts = {
		.tv_nsec = (1L << (tries < 6 ? tries : 6)) * 1000000L,
	};

	nanosleep(&ts, NULL);
}

bool node_peer_dead(struct pm_node *n, int peer)
{
	return __atomic_load_n(&n->peer_dead[peer], __ATOMIC_RELAXED);
}

static int node_call_payload_rep(struct pm_node *n, int peer,
				 const struct pm_proto_req *rq,
				 const void *rq_payload, uint32_t rq_len,
				 struct pm_proto_rep *rp, void *payload,
				 uint32_t *payload_len, int64_t wait_ms,
				 int *pin);

/*
 * The one way a call leaves this node: the plugin's call on connection c
 * to peer, counted per transport, peer and message type. What the plugin
 * returns is checked, so a broken plugin is an error here, never a retry
 * loop above: a positive return, or lengths past the buffers it was given.
 */
static int peer_call(struct pm_node *n, int peer, struct pm_tconn *c,
		     const struct pm_msg *m, struct pm_msg *r,
		     int64_t deadline)
{
	const struct peer *p = &n->peers[peer];
	const struct pm_plugin *pl = &n->plugins[p->tidx];
	uint8_t op = ((const struct pm_proto_req *)m->msg)->op;
	uint32_t out = m->msg_len + m->payload_len, in;
	int64_t sent = pm_now_ns();
	int ret;

	ret = pl->ops->call(c, m, r, deadline);
	if (ret > 0 || (!ret && (r->msg_len > r->msg_cap ||
				 r->payload_len > r->payload_cap))) {
		pm_err("transport %s: call to node %d returned %d with a reply of %u+%u bytes for buffers of %u+%u: a plugin bug; failed",
		       pl->name, peer, ret, r->msg_len, r->payload_len,
		       r->msg_cap, r->payload_cap);
		ret = -EPROTO;
	}
	STAT_ADD(n, bytes_sent, out);
	STAT_ADD_AT(n, tr[p->tidx].bytes_sent, out);
	STAT_ADD_AT(n, tr[p->tidx].msgs_sent, 1);
	STAT_ADD_AT(n, peer[peer].bytes_sent, out);
	if (op < PM_OP_MAX)
		STAT_ADD_AT(n, op_sent[op], 1);
	if (ret) {
		STAT_ADD_AT(n, tr[p->tidx].errors, 1);
		return ret;
	}
	node_heard(n, peer);
	node_lease_renew(n, peer, sent);
	in = r->msg_len + r->payload_len;
	STAT_ADD(n, bytes_received, in);
	STAT_ADD_AT(n, tr[p->tidx].bytes_received, in);
	STAT_ADD_AT(n, tr[p->tidx].msgs_received, 1);
	STAT_ADD_AT(n, peer[peer].bytes_received, in);
	return 0;
}

int node_call(struct pm_node *n, int peer, const struct pm_proto_req *rq,
	      struct pm_proto_rep *rp, void *payload, uint32_t *payload_len)
{
	return node_call_payload_rep(n, peer, rq, NULL, 0, rp, payload,
				     payload_len, n->timeout_ms, NULL);
}

int node_call_ms(struct pm_node *n, int peer, const struct pm_proto_req *rq,
		 struct pm_proto_rep *rp, void *payload, uint32_t *payload_len,
		 int wait_ms, int *pin)
{
	return node_call_payload_rep(n, peer, rq, NULL, 0, rp, payload,
				     payload_len, wait_ms, pin);
}

int node_call_payload(struct pm_node *n, int peer,
		      const struct pm_proto_req *rq, struct pm_proto_rep *rp,
		      const void *payload, uint32_t payload_len)
{
	return node_call_payload_rep(n, peer, rq, payload, payload_len, rp,
				     NULL, NULL, n->timeout_ms, NULL);
}

static int node_call_payload_rep(struct pm_node *n, int peer,
				 const struct pm_proto_req *rq,
				 const void *rq_payload, uint32_t rq_len,
				 struct pm_proto_rep *rp, void *payload,
				 uint32_t *payload_len, int64_t wait_ms,
				 int *pin)
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
	struct pm_tconn *c = NULL;
	int slot = -1, ret;

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
	/*
	 * Every try of one fault goes on the connection of its first (*pin),
	 * busy or not: the home then sees them in the order they were sent,
	 * so an abandoned try is not handled after a later one's grant
	 * (a connection that breaks and is redialled can still reorder).
	 */
	if (pin && *pin >= 0 && *pin < n->nthreads && p->fconn[*pin])
		c = p->fconn[*pin];
	for (int k = 0; node_fault_thread && k < n->nthreads && !c; k++)
		if (p->fconn[k] &&
		    !__atomic_exchange_n(&p->fbusy[k], 1, __ATOMIC_ACQUIRE)) {
			c = p->fconn[k];
			slot = k;
		}
	if (pin && c)
		*pin = c == p->conn ? -1 : (slot >= 0 ? slot : *pin);
	if (!c)
		c = p->conn;
	int64_t deadline = pm_now_ns() + wait_ms * 1000000;

	ret = node_call_on(n, peer, c, &m, &r, deadline);
	if (slot >= 0)
		__atomic_store_n(&p->fbusy[slot], 0, __ATOMIC_RELEASE);
	if (ret)
		return ret;
	if (r.msg_len != sizeof(*rp)) {
		pm_err("node %d: reply of %u bytes, expected %zu", peer,
		       r.msg_len, sizeof(*rp));
		return -EPROTO;
	}
	if (payload_len)
		*payload_len = r.payload_len;
	return 0;
}

/* A call on connection c that the peer may refuse as unauthenticated: a
 * redialled connection is new to the peer, so prove the key and retry. */
int node_call_alive(struct pm_node *n, int peer,
		    const struct pm_proto_req *rq, const void *rq_payload,
		    uint32_t rq_len, struct pm_proto_rep *rp, void *payload,
		    uint32_t *payload_len, bool resend)
{
	/*
	 * A request that cannot be sent twice (a recall, a downgrade) has
	 * its one answer waited for as long as the transport may still
	 * deliver it. Under 20% loss one TCP connection of a live peer can
	 * sit in retransmission backoff past 12 s while pings on its other
	 * connections show the peer alive; giving up then loses the page.
	 * A holder that died ends the wait sooner (its connection closes);
	 * the bound ends it for one cut off for good.
	 */
	int64_t wait_ms = resend ? n->timeout_ms :
				   (int64_t)n->failure_ms * NODE_ONCE_WAIT_FT;
	uint32_t cap = payload_len ? *payload_len : 0;
	int r;

	for (int tries = 0;; tries++) {
		if (node_peer_dead(n, peer))
			return -EHOSTDOWN;
		if (payload_len)
			*payload_len = cap;
		r = node_call_payload_rep(n, peer, rq, rq_payload, rq_len, rp,
					  payload, payload_len, wait_ms, NULL);
		if (!r || !node_conn_error(r) || node_closing(n))
			return r;
		if (!resend)
			break;
		if (!tries)
			pm_warn("node %d: no answer to %s of page %llu yet (%s): sending it again",
				peer, proto_op_name(rq->op),
				(unsigned long long)rq->page, strerror(-r));
		node_backoff(tries);
	}
	/*
	 * No answer to a request that cannot be sent twice. The detector
	 * tells a dead peer from a live one; a live one lost our request
	 * or its answer (a connection reset), and the caller says so.
	 */
	for (int64_t end = pm_now_ns() + (int64_t)n->failure_ms * 1000000;
	     !node_peer_dead(n, peer) && !node_closing(n) && pm_now_ns() < end;)
		node_backoff(6);
	return node_peer_dead(n, peer) ? -EHOSTDOWN : r;
}

int node_call_on(struct pm_node *n, int peer, struct pm_tconn *c,
		 const struct pm_msg *m, struct pm_msg *r, int64_t deadline)
{
	int ret = peer_call(n, peer, c, m, r, deadline);

	if (ret == -EACCES && !node_reauth(n, peer, c))
		ret = peer_call(n, peer, c, m, r, deadline);
	return ret;
}

int node_reply(struct pm_node *n, int peer, int tidx, uint64_t conn_id,
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
		STAT_ADD_AT(n, tr[tidx].errors, 1);
		return r;
	}
	STAT_ADD(n, bytes_sent, m.msg_len + payload_len);
	STAT_ADD_AT(n, tr[tidx].bytes_sent, m.msg_len + payload_len);
	STAT_ADD_AT(n, tr[tidx].msgs_sent, 1);
	if (peer >= 0 && peer < n->nodes)
		STAT_ADD_AT(n, peer[peer].bytes_sent, m.msg_len + payload_len);
	return 0;
}

void node_reply_status(struct pm_node *n, int peer, int tidx,
		       const struct pm_request *req, int status)
{
	node_reply(n, peer, tidx, req->conn_id, req->req_id, status, NULL,
		   NULL, 0);
}

/* ---- the handshake, client side ---------------------------------------- */

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
	ret = peer_call(n, peer, c, &m, &r,
			pm_now_ns() + (int64_t)n->timeout_ms * 1000000);
	if (ret == -EADDRINUSE) {
		snprintf(why, whylen, "says node id %d is held by a live node: is another node running with this id?",
			 n->id);
		return ret;
	}
	if (ret == -ESTALE) {
		snprintf(why, whylen, "says this node was declared dead: this incarnation is refused");
		return ret;
	}
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
		reason[r.payload_len] = '\0';	/* <= payload_cap: peer_call */
		snprintf(why, whylen, "refused our handshake: it is %s",
			 reason);
		return -EPROTO;
	}
	return hello_auth(n, peer, c, &rp, r.payload_len, nc,
			  (const uint8_t *)reason, why, whylen);
}

/*
 * The handshake's answer names the incarnation of this node the peer knew
 * before (0: none): then this node restarted into a running cluster, and
 * start-up marks its pages lost before it serves (DESIGN.md).
 */
static void note_rejoin(struct pm_node *n, int peer, uint64_t earlier)
{
	int none = -1;

	if (!earlier || earlier == n->incarnation)
		return;
	if (!__atomic_compare_exchange_n(&n->rejoin_by, &none, peer, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		return;
	__atomic_store_n(&n->rejoin_inc, earlier, __ATOMIC_RELEASE);
	if (__atomic_load_n(&n->serving, __ATOMIC_ACQUIRE))
		pm_warn("node %d knew an earlier incarnation of this node only now: it dropped its copies of this node's pages late",
			peer);
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
		if (!auth_has_key(n->auth)) {
			note_rejoin(n, peer, rp->page);
			return 0;
		}
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
		ret = peer_call(n, peer, c, &m, &r,
				pm_now_ns() + (int64_t)n->timeout_ms * 1000000);
	if (ret == -EACCES) {
		snprintf(why, whylen, "the peer at %s refused our proof of the cluster key (is security.key_file the same on both nodes?)",
			 ep);
		return -EPROTO;
	}
	if (ret)
		snprintf(why, whylen, "handshake: AUTH: %s", strerror(-ret));
	else if (r.msg_len == sizeof(ar))
		note_rejoin(n, peer, ar.page);
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

/*
 * Dial peer i on *slot and run the handshake; on failure the connection
 * is closed and *slot stays NULL. One dial may wait up to 3 s: a lost SYN
 * is sent again after 1 s, then 2 s more.
 */
static int dial_one(struct pm_node *n, int i, struct pm_tconn **slot)
{
	struct peer *p = &n->peers[i];
	const struct pm_plugin *pl = &n->plugins[p->tidx];
	int r;

	r = pl->ops->connect(pl->ctx, p->endpoint,
			     pm_now_ns() + 3000000000ll, slot);
	if (r) {
		*slot = NULL;
		snprintf(p->last_err, sizeof(p->last_err), "%s",
			 strerror(-r));
		return r;
	}
	r = hello(n, i, *slot, p->last_err, sizeof(p->last_err));
	if (r) {
		pl->ops->disconnect(*slot);
		*slot = NULL;
	}
	return r;
}

/* Is every connection to peer p up (main, and one per fault thread)? */
static bool peer_connected(const struct pm_node *n, const struct peer *p)
{
	for (int k = 0; k < n->nthreads; k++)
		if (!p->fconn[k])
			return false;
	return p->conn != NULL;
}

int node_connect_peers(struct pm_node *n, char *err, size_t errlen,
		       int *code)
{
	int64_t deadline = pm_now_ns() +
			   (int64_t)n->cfg.startup_timeout_ms * 1000000;
	int left;

	for (;;) {
		left = 0;
		for (int i = 0; i < n->nodes; i++) {
			struct peer *p = &n->peers[i];
			int r = 0;

			if (i == n->id || peer_connected(n, p))
				continue;
			/* What got through stays: under loss, starting over
			 * for each lost handshake would rarely finish. */
			if (!p->conn)
				r = dial_one(n, i, &p->conn);
			for (int k = 0; !r && k < n->nthreads; k++)
				if (!p->fconn[k])
					r = dial_one(n, i, &p->fconn[k]);
			/* Another cluster's geometry, or a peers entry that
			 * names the wrong node: the config's fault. */
			if (r == -EPROTO &&
			    (strstr(p->last_err, "of another cluster") ||
			     strstr(p->last_err, ", not node "))) {
				if (code)
					*code = PM_EXIT_CONFIG;
				return cfg_fail_key(&n->cfg,
					strstr(p->last_err, "of another cluster") ?
					"cluster" : "peers", err, errlen,
					"node %d at %s (%s) %s", i,
					p->endpoint, n->plugins[p->tidx].name,
					p->last_err);
			}
			if (r == -EPROTO)
				return node_fail(err, errlen, PM_EXIT_RUNTIME, code,
					    "node %d at %s (%s) %s", i,
					    p->endpoint,
					    n->plugins[p->tidx].name,
					    p->last_err);
			if (r) {
				left++;
				continue;
			}
			pm_info("connected to node %d at %s (%s)", i,
				p->endpoint, n->plugins[p->tidx].name);
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
		if (i != n->id && !peer_connected(n, &n->peers[i]))
			o += snprintf(msg + o, sizeof(msg) - o,
				      "%snode %d at %s (%s): %s",
				      o ? "; " : "", i, n->peers[i].endpoint,
				      n->plugins[n->peers[i].tidx].name,
				      n->peers[i].last_err);
	/* Refused all along as a second holder of our id: a config
	 * mistake, not a network one. */
	for (int i = 0; i < n->nodes; i++)
		if (i != n->id && !peer_connected(n, &n->peers[i]) &&
		    strstr(n->peers[i].last_err, "held by a live node"))
			return node_fail(err, errlen, PM_EXIT_CONFIG, code,
					 "%s: node.id %d is already in use: node %d at %s %s",
					 n->cfg.path, n->id, i,
					 n->peers[i].endpoint,
					 n->peers[i].last_err);
	return node_fail(err, errlen, PM_EXIT_RUNTIME, code,
		    "start-up timed out after %d ms waiting for %d node(s): %s",
		    n->cfg.startup_timeout_ms, left, msg);
}

/*
 * Publish our endpoints, wait until every node of the cluster is there,
 * and take the members as the peer list.
 */

void node_disconnect_peers(struct pm_node *n)
{
	for (int i = 0; i < n->nodes; i++)
		if (n->peers[i].tidx >= 0)
			peer_disconnect(n, &n->peers[i]);
}
