/* SPDX-License-Identifier: MIT */
/*
 * RDMA transport plugin: internal types shared by its files. Nothing here is
 * exported; the plugin's only public symbol is the ops-table entry.
 *
 * Design (why it looks like this):
 *   - Connection set-up goes through librdmacm (RC queue pairs), so peers
 *     are addressed by the IP of their RDMA-capable netdev and a port, like
 *     the stream transports, and the CM tells us when a peer disconnects.
 *   - Every message is one two-sided SEND: the 24-byte frame header of
 *     plugins/common/frame.h, the core message and the payload (up to
 *     PM_PAYLOAD_MAX) packed together in a registered bounce buffer, landing
 *     in one of a bounded set of pre-posted registered receive buffers.
 *     Compared with RDMA WRITE into a reply buffer this needs no rkey
 *     exchange and grants peers no remote access to our memory (anyone who
 *     can connect is not yet authenticated), costs one work request per
 *     message, and the extra memcpy of at most 64 KiB is small next to the
 *     wire time. Buffers are registered once per connection (one MR).
 *   - Flow control: an outgoing connection has depth call slots, each
 *     owning one send buffer; at most depth requests are in flight, and
 *     both sides post more receives than that. Late replies to timed-out
 *     calls may still overrun the receiver; the RNR retry count is
 *     "infinite" so that only delays the sender until buffers are reposted.
 *   - One thread per connection (a link) reaps its completion queues through
 *     a completion channel and an eventfd, with a poll() timeout so the
 *     heartbeat and shutdown are never missed. On a listener's link it runs
 *     the core's handler for requests. Pagemesh clusters are small (tens of
 *     peers), so a thread per peer is cheap and keeps lifetimes simple.
 *   - Replies are reaped by the calling threads themselves (leader/
 *     follower): one waiting caller at a time polls the receive CQ, on its
 *     own completion channel, and copies each reply into its caller's
 *     buffers. A lone caller is woken by the completion itself, not by a
 *     hand-off from another thread (~100 us per wake-up on these VMs).
 *   - A peer that vanishes without a CM disconnect is found by a heartbeat:
 *     while calls wait, an empty SEND goes out every RV_HB_MS; the RC
 *     transport's retries fail it within about RV_ACK_TIMEOUT x retries.
 *   - The CM tells the dialling side of a disconnect asynchronously, so a
 *     call may still go into a link whose peer is gone. A request whose
 *     SEND provably never completed (flushed or failed, never acknowledged
 *     by the peer's HCA) is sent once more on a redialled link; one that
 *     was acknowledged fails with -ECONNRESET, as it may have run. And the
 *     listener calls on_close only after the peer's CM has answered our
 *     disconnect (or RV_DISC_WAIT_MS), so a drop() is seen before the
 *     peer's next call.
 *   - Page payloads never touch the pager's userfaultfd region from the
 *     NIC: they are copied from/to the bounce buffers, so nothing needs to
 *     register (and pin) guest memory.
 */
#ifndef PAGEMESH_RV_H
#define PAGEMESH_RV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <pagemesh/transport.h>

#include "frame.h"

#define RV_NAME "rdma"
#define RV_VERSION "0.1.0"

/*
 * Calls in flight per outgoing connection ("depth", config key of the same
 * name). Each slot costs a registered buffer of RV_SLOT_STRIDE (68 KiB) on
 * both sides, so memory grows with depth x peers; the dialling side tells
 * the listener its depth in the CM private data (RV_PRIV_*), which sizes
 * its receive queue to match.
 */
#define RV_DEPTH_DEFAULT 16u
#define RV_DEPTH_MAX 255u		/* slot index lives in 8 bits of ids */
#define RV_RECV_EXTRA 8u		/* receives beyond depth: pings, late */
#define RV_SEND_EXTRA 16u		/* reply buffers beyond depth */
#define RV_PRIV_MAGIC 0x504d5231u	/* "PMR1" */
/* A dialling peer is not yet authenticated: what it may make us pin is
 * bounded by these (depth it asks for, connections at once). */
#define RV_PEER_DEPTH_CAP 64u
#define RV_MAX_CONNS_DEFAULT 128
#define RV_MAX_CONNS_MAX 4096
#define RV_MSG_BYTES (PM_FRAME_HDR_LEN + PM_MSG_MAX + PM_PAYLOAD_MAX)
#define RV_SLOT_STRIDE ((RV_MSG_BYTES + 4095u) & ~4095u)

#define RV_HB_MS 250			/* heartbeat while calls wait */
#define RV_ACK_TIMEOUT 16		/* 4.096 us * 2^16 = 268 ms */
#define RV_RETRY_COUNT 5		/* transport retries before an error */
#define RV_RNR_RETRY 7			/* 7 = retry RNR forever */
#define RV_REPLY_WAIT_MS 1000		/* reply() waits for a buffer */
#define RV_CM_STEP_MS 2000		/* address/route resolution cap */
#define RV_DISC_WAIT_MS 1000		/* for the peer's CM answer */

/*
 * rv_link_call's answer when the link broke and the request provably never
 * reached the peer (its send failed or was never posted): the call may
 * redial and send it again without risking a second execution.
 */
#define RV_ENOTSENT (-EAGAIN)

/* Work request ids: kind in the high half, buffer index in the low half. */
enum rv_wr_kind {
	RV_WR_RECV = 1,
	RV_WR_SEND = 2,
	RV_WR_PING = 3,
};
#define RV_WRID(kind, idx) (((uint64_t)(kind) << 32) | (uint32_t)(idx))
#define RV_WRID_KIND(w) ((uint32_t)((w) >> 32))
#define RV_WRID_IDX(w) ((uint32_t)(w))

struct pm_tctx;

/* One call slot of an outgoing link; owns send buffer of the same index. */
struct rv_slot {
	uint64_t id;		/* request id while used */
	struct pm_msg *rep;	/* caller's reply buffers while used */
	int status;		/* result once done */
	bool used;		/* a call owns the slot */
	bool done;		/* reply copied (or failed) */
	bool send_busy;		/* send posted, completion not yet seen */
	bool send_ok;		/* the peer's HCA acknowledged the send */
	pthread_cond_t cond;	/* the owning call waits here */
};

/* One RC queue pair with its buffers and its completion thread. */
struct rv_link {
	struct pm_tctx *t;
	bool incoming;
	uint32_t ncall;			/* outgoing: call slots (depth) */
	uint64_t conn_id;		/* incoming: id handed to the core */
	char peer[PM_ENDPOINT_MAX];	/* printable peer address */

	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct ibv_comp_channel *ch;	/* the link thread's CQs */
	struct ibv_comp_channel *rch;	/* outgoing: receive CQ, callers' */
	struct ibv_cq *scq;		/* send completions */
	struct ibv_cq *rcq;		/* receive completions */
	struct ibv_mr *mr;
	char *buf;			/* nrecv receive then nsend send bufs */
	size_t buflen;
	uint32_t nrecv;
	uint32_t nsend;
	int evfd;			/* wakes the thread (closing) */
	int pevfd;			/* outgoing: wakes the polling caller */
	pthread_t thr;
	bool thr_started;

	pthread_mutex_t lock;		/* everything below */
	pthread_cond_t free_cond;	/* a slot or send buffer became free */
	bool closing;			/* no new work; thread exits */
	int err;			/* what calls get once closing */
	bool exited;			/* thread has finished */
	bool cm_gone;			/* CM saw the disconnect complete */
	uint32_t seq;			/* request id generator */
	struct rv_slot *slots;		/* outgoing: ncall */
	uint32_t *free_send;		/* incoming: stack of free send bufs */
	uint32_t nfree;
	int inflight;			/* outgoing: calls waiting */
	bool polling;			/* outgoing: a caller reaps replies */
	bool ping_busy;
	int64_t last_rx_ns;

	int refs;			/* see rv_link_get/put callers */
	struct rv_link *next;		/* pm_tctx.in_links */
};

/* An outgoing connection as the core sees it; redials a broken link. */
struct pm_tconn {
	struct pm_tctx *t;
	char endpoint[PM_ENDPOINT_MAX];
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* dial finished, callers left */
	struct rv_link *link;		/* current link (holds a ref) */
	bool dialing;
	bool shut;			/* disconnect() or fini() began */
	int callers;
	struct pm_tconn *next;		/* pm_tctx.conns */
};

struct pm_tctx {
	const struct pm_host *host;
	char listen_cfg[PM_ENDPOINT_MAX];	/* "" when not configured */
	uint32_t depth;				/* calls in flight per conn */
	int max_conns;				/* incoming at once */
	char endpoint[PM_ENDPOINT_MAX];
	struct rdma_event_channel *cm_ch;	/* listener and all links */
	struct rdma_cm_id *listen_id;
	struct pm_listener lst;
	bool listening;
	int evfd;				/* wakes the CM thread */
	pthread_t cm_thr;
	bool cm_started;

	pthread_mutex_t lock;			/* everything below */
	pthread_cond_t cond;			/* an incoming link was freed */
	bool stopping;
	struct rv_link *in_links;
	uint64_t next_conn_id;
	struct pm_tconn *conns;
};

#define rv_log(t, lvl, ...) \
	(t)->host->log((t)->host->ctx, (lvl), __VA_ARGS__)

/* rv_addr.c: endpoint strings <-> socket addresses. */
int rv_parse_endpoint(const char *s, struct sockaddr_storage *ss);
int rv_format_addr(const struct sockaddr *sa, uint16_t port, char *buf,
		   size_t len);

/* rv_link.c */
int rv_link_create(struct pm_tctx *t, struct rdma_cm_id *id, bool incoming,
		   uint32_t depth, struct rv_link **out);
int rv_link_start(struct rv_link *l);
void rv_link_close(struct rv_link *l, int err);
void rv_link_cm_gone(struct rv_link *l);
bool rv_link_broken(struct rv_link *l);
void rv_link_destroy(struct rv_link *l);
int rv_link_call(struct rv_link *l, const struct pm_msg *req,
		 struct pm_msg *rep, int64_t deadline_ns);
int rv_link_reply(struct rv_link *l, uint64_t req_id, int status,
		  const struct pm_msg *rep);
/* Private data of a connect request: who we are and our depth. */
struct rv_priv {
	uint32_t magic;		/* RV_PRIV_MAGIC, little-endian */
	uint8_t depth;
	uint8_t rsvd[3];
} __attribute__((packed));

void rv_fill_conn_param(struct rdma_conn_param *p, struct rv_priv *priv,
			uint32_t depth);

/* Condition waits with CLOCK_MONOTONIC deadlines. */
void rv_cond_init(pthread_cond_t *c);
int rv_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m,
		       int64_t deadline_ns);

#endif /* PAGEMESH_RV_H */
