/* SPDX-License-Identifier: MIT */
/* io_uring-tcp transport: shared types of the plugin's client side
 * (ut_client.c), server side (ut_server.c) and entry point (ut_main.c). */
#ifndef UT_H
#define UT_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <liburing.h>

#include <pagemesh/transport.h>

#include "frame.h"
#include "net.h"

#define UT_VERSION "0.1.0"

/* Calls in flight on one outgoing connection; request ids carry the slot. */
#define UT_MAX_SLOTS 512u
/* Incoming connections one listener can serve at once (the most, and the
 * default, of transports.io_uring-tcp.max_conns), and the size of its
 * table: a quarter more, for connections displaced at the bound whose
 * slot is not free yet (their cancelled receive still in the ring). */
#define UT_MAX_CONNS 1024u
#define UT_MAX_SCONNS (UT_MAX_CONNS + UT_MAX_CONNS / 4)
/* Defaults of handshake_timeout_ms and stall_timeout_ms (see ut_main.c). */
#define UT_HANDSHAKE_TIMEOUT_MS 2000
#define UT_STALL_TIMEOUT_MS 60000
#define UT_MS_MAX 3600000
/* Which bound an incoming connection's deadline is under. */
enum { UT_DL_FIRST, UT_DL_STALL };
/* Provided receive buffers per ring (power of two) and their size. */
#define UT_CLIENT_BUFS 32u
#define UT_SERVER_BUFS 128u
#define UT_BUF_SIZE (16u * 1024u)
/* Largest frame on the wire. */
#define UT_FRAME_MAX (PM_FRAME_HDR_LEN + PM_MSG_MAX + PM_PAYLOAD_MAX)
/*
 * Queued, unsent bytes per connection. A client never queues more than its
 * slots' frames; a listener whose peer stops reading refuses replies
 * (-ENOBUFS) past this instead of growing without bound.
 */
#define UT_CLIENT_SENDQ_CAP (UT_MAX_SLOTS * UT_FRAME_MAX)
#define UT_SERVER_SENDQ_CAP (4u << 20)

/* user_data of completions: kind in the low byte, owner index above. */
enum ut_ud {
	UT_UD_SEND = 1,
	UT_UD_RECV = 2,
	UT_UD_NOP = 3,
	UT_UD_ACCEPT = 4,
	UT_UD_EVENT = 5,
	UT_UD_CANCEL = 6,
	UT_UD_TIMER = 7,
};
#define UT_UD(kind, idx) ((uint64_t)(kind) | ((uint64_t)(idx) << 8))
#define UT_UD_KIND(ud) ((unsigned)((ud) & 0xff))
#define UT_UD_IDX(ud) ((uint32_t)((ud) >> 8))

#define ut_log(t, lvl, ...) \
	((t)->host->log((t)->host->ctx, (lvl), __VA_ARGS__))

/* A ring of kernel-provided receive buffers (multishot receive). */
struct ut_bufring {
	struct io_uring_buf_ring *br;
	size_t br_len;
	unsigned char *bufs;
	uint32_t count;
	uint16_t bgid;
	bool registered;
};

/*
 * Two send buffers per socket: callers append whole frames to fill while
 * one io_uring send of fly is in flight, so frames never interleave and
 * everything queued during one send leaves in the next (batching).
 */
struct ut_sendq {
	unsigned char *fill;
	uint32_t fill_len, fill_cap;
	unsigned char *fly;
	uint32_t fly_len, fly_off, fly_cap;
	uint32_t cap;		/* limit on fill_cap */
	bool inflight;
};

/* Stream parser state for one socket. */
struct ut_parser {
	struct pm_frame_hdr hdr;
	uint32_t hdr_got;
	int stage;		/* UT_P_HDR, UT_P_MSG, UT_P_PAY */
	uint32_t got;		/* bytes of the current stage */
};

enum { UT_P_HDR = 0, UT_P_MSG, UT_P_PAY };

struct ut_conn;
struct ut_sconn;

struct ut_tctx {
	const struct pm_host *host;
	char listen_ep[PM_ENDPOINT_MAX];
	uint32_t max_conns;		/* incoming connections at once */
	int64_t handshake_timeout_ns;	/* bound on a first request */
	int64_t stall_timeout_ns;	/* bound on a later frame that stops
					 * arriving */

	pthread_mutex_t lock;		/* conns list */
	struct ut_conn *conns;

	/* listener (ut_server.c) */
	bool listening;
	struct pm_listener lst;
	int lfd;
	int efd;			/* eventfd: wakes the server thread */
	uint64_t efd_buf;
	char endpoint[PM_ENDPOINT_MAX];
	struct io_uring sring;
	bool sring_ok;
	bool sring_defer;		/* SINGLE_ISSUER|DEFER_TASKRUN */
	bool sfixed;			/* sockets in ring's file table */
	struct ut_bufring sbr;
	pthread_t sthread;
	bool sthread_ok;
	bool stop;			/* atomic */
	uint32_t scursor;		/* where accept looks for room */
	/* server thread only */
	uint32_t slive;			/* sconns not UT_SC_FREE */
	bool at_bound;			/* refusing at max_conns */
	uint64_t refused;		/* in this episode, for the log */
	uint64_t displaced;		/* in this episode, for the log */
	/* One of each per bound, [UT_DL_FIRST] and [UT_DL_STALL]: */
	int64_t next_deadline[2];	/* earliest sconn deadline, or later */
	bool timer_armed[2];		/* a ring timeout for it is pending */
	struct __kernel_timespec timer_ts[2];
	struct ut_sconn *sconns;	/* UT_MAX_SCONNS, never moved */
	uint64_t next_seq;
	pthread_mutex_t dirty_lock;	/* dirty[] */
	uint32_t *dirty;
	uint32_t ndirty;
};

/* ut_main.c */
int ut_bufring_setup(struct io_uring *ring, struct ut_bufring *b,
		     uint16_t bgid, uint32_t count);
void ut_bufring_recycle(struct ut_bufring *b, uint32_t bid);
void ut_bufring_free(struct io_uring *ring, struct ut_bufring *b);
static inline unsigned char *ut_buf(struct ut_bufring *b, uint32_t bid)
{
	return b->bufs + (size_t)bid * UT_BUF_SIZE;
}

void ut_sendq_init(struct ut_sendq *q, uint32_t cap);
void ut_sendq_free(struct ut_sendq *q);
int ut_sendq_append(struct ut_sendq *q, const struct iovec *iov, int n);
bool ut_sendq_start(struct ut_sendq *q);
void ut_sendq_prep(struct ut_sendq *q, struct io_uring_sqe *sqe, int fd,
		   bool fixed, uint64_t ud);
int ut_sendq_done(struct ut_sendq *q, int res);

int ut_ring_init(struct io_uring *ring, unsigned entries, unsigned flags);

/* ut_client.c */
int ut_connect(struct pm_tctx *tc, const char *endpoint, int64_t deadline_ns,
	       struct pm_tconn **out);
void ut_disconnect(struct pm_tconn *c);
int ut_call(struct pm_tconn *c, const struct pm_msg *req, struct pm_msg *rep,
	    int64_t deadline_ns);
void ut_client_fini(struct ut_tctx *t);

/* ut_server.c */
int ut_listen(struct pm_tctx *tc, const struct pm_listener *lst);
int ut_endpoint(struct pm_tctx *tc, char *buf, size_t len);
int ut_reply(struct pm_tctx *tc, uint64_t conn_id, uint64_t req_id,
	     int status, const struct pm_msg *rep);
int ut_drop(struct pm_tctx *tc, uint64_t conn_id);
void ut_server_fini(struct ut_tctx *t);

#endif /* UT_H */
