/* SPDX-License-Identifier: MIT */
/* Internals of the plain TCP transport plugin (prefix tt_), shared by its
 * listener side (tcp.c), its calling side (conn.c) and frame buffer (rx.c). */
#ifndef TT_H
#define TT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <pagemesh/transport.h>

#include "frame.h"
#include "net.h"
#include "tcpinfo.h"

/* One whole frame always fits: the bound on per-connection memory. */
#define TT_RX_CAP (PM_FRAME_HDR_LEN + PM_MSG_MAX + PM_PAYLOAD_MAX)

/* Receive timeout of calling sockets: the slice a reader blocks in recv()
 * before it looks at its deadline again. */
#define TT_RCVTIMEO_NS 1000000000LL

/*
 * What the resend rule (conn.c, tt_peer_took_locked) measures against on
 * one calling socket: its TCP_INFO counters right after the handshake.
 * probe: the kernel does not give them; every call on an idle connection
 * then looks for end of stream before it sends, as the rule needs none.
 */
struct tt_base {
	bool probe;
	uint64_t acked;		/* tcpi_bytes_acked after connect (our SYN) */
	uint64_t received;	/* tcpi_bytes_received after connect */
};

/* Put a dialled socket in blocking mode with the TT_RCVTIMEO_NS slice and
 * read its counters into *base. */
int tt_sock_setup(int fd, struct tt_base *base);

#define tt_log(t, lvl, ...) ((t)->host->log((t)->host->ctx, (lvl), __VA_ARGS__))

/* Receive buffer: frames are parsed in place, several per recv() when the
 * peer pipelines. Owned by one reader at a time. */
struct tt_rx {
	uint8_t *buf;		/* TT_RX_CAP bytes */
	uint32_t start;		/* first unparsed byte */
	uint32_t end;		/* one past the last received byte */
	uint32_t need;		/* size of the frame at start, if known */
};

int tt_rx_init(struct tt_rx *rx);
void tt_rx_free(struct tt_rx *rx);
void tt_rx_reset(struct tt_rx *rx);
/*
 * Next complete frame: 1 with *h decoded and *body pointing at its msg
 * then payload (valid until the next tt_rx_fill), 0 if more bytes are
 * needed, -EPROTO with *bad naming the header field that is wrong.
 */
int tt_rx_next(struct tt_rx *rx, struct pm_frame_hdr *h, const uint8_t **body,
	       const char **bad);
/* Receive more: bytes read, -ECONNRESET at end of stream, -ETIMEDOUT.
 * TT_RX_NOWAIT: only what is already there; TT_RX_FOREVER: until data or
 * shutdown(); TT_RX_DEADLINE: until deadline_ns, on a socket with the
 * TT_RCVTIMEO_NS slice; TT_RX_POLL: until deadline_ns, on any socket. */
enum { TT_RX_DEADLINE, TT_RX_NOWAIT, TT_RX_FOREVER, TT_RX_POLL };

/* Bytes of a frame received but not yet whole. */
static inline uint32_t tt_rx_pending(const struct tt_rx *rx)
{
	return rx->end - rx->start;
}
ssize_t tt_rx_fill(struct tt_rx *rx, int fd, int64_t deadline_ns, int mode);

/* An incoming connection, served by its own receive thread. */
struct tt_sconn {
	struct tt_sconn *next;		/* in pm_tctx.sconns */
	struct pm_tctx *t;
	uint64_t id;
	int fd;				/* closed only when freed */
	char peer[PM_NET_ADDRSTR_MAX];
	pthread_mutex_t send_lock;	/* one frame at a time on fd */
	pthread_t thr;
	int64_t accepted_ns;		/* its first request is due by
					 * this + handshake_timeout_ns */
	/* under t->lock */
	int refs;			/* replies being written */
	bool closed;			/* on_close is called or done */
	bool finished;			/* the thread is done; join it */
	bool dropping;			/* drop, fini: no more requests */
	bool greeted;			/* its first whole request came */
	struct tt_rx rx;		/* the receive thread's */
};

struct pm_tctx {
	const struct pm_host *host;
	int64_t send_timeout_ns;	/* bound on a reply waiting for room */
	int64_t handshake_timeout_ns;	/* bound on a first request */
	int64_t stall_timeout_ns;	/* bound on a later frame that stops
					 * arriving */
	int max_conns;			/* bound on live incoming connections */
	pthread_condattr_t condattr;	/* CLOCK_MONOTONIC condvars */

	pthread_mutex_t lock;		/* everything below */
	pthread_cond_t refs_cv;		/* an sconn's refs fell to 0 */
	bool stopping;			/* fini began: reply is refused */
	bool listening;
	int lfd;
	int stop_efd;			/* wakes the accept thread */
	pthread_t accept_thr;
	struct pm_listener lst;
	char endpoint[PM_ENDPOINT_MAX];
	uint64_t last_conn_id;		/* never reused in an instance */
	struct tt_sconn *sconns;
	int live;			/* sconns whose threads run */
	/* the accept thread's: refusing at max_conns since the last accept */
	bool at_bound;
	uint64_t refused;		/* in this episode, for the log */
	uint64_t displaced;		/* in this episode, for the log */
	struct pm_tconn *conns;		/* outgoing, for fini() */
};

/* A call waiting on an outgoing connection; lives on the caller's stack. */
struct tt_call {
	struct tt_call *next, *prev;
	uint64_t id;
	struct pm_msg *rep;
	pthread_cond_t cond;
	int status;
	bool done;
	bool waiting;		/* in cond wait: may become reader */
	uint64_t end;		/* socket bytes up to the end of our frame;
				 * 0 until it is written whole */
	uint64_t peer_took;	/* set by a break: bytes the peer can have
				 * taken in (TT_TOOK_UNKNOWN: cannot tell) */
};

#define TT_TOOK_UNKNOWN UINT64_MAX

/* An outgoing connection. Lock order: send_lock, then lock. */
struct pm_tconn {
	struct pm_tconn *next;		/* in pm_tctx.conns */
	struct pm_tctx *t;
	struct sockaddr_storage sa;	/* where to redial */
	socklen_t salen;
	char peer[PM_NET_ADDRSTR_MAX];
	int cancel_efd;			/* disconnect aborts a redial */

	pthread_mutex_t send_lock;	/* one frame at a time on fd */
	pthread_mutex_t lock;		/* everything below */
	pthread_cond_t state_cv;	/* redial ended, reader left, users */
	int fd;				/* changed under both locks */
	struct tt_base base;		/* fd's; changed with it */
	uint64_t tx_bytes;		/* written on fd; under send_lock */
	uint64_t rx_bytes;		/* read from fd by the readers */
	uint64_t gen;			/* bumped by each redial */
	bool broken;			/* fd is dead: next call redials */
	bool redialling;
	bool redial_failing;		/* its failure was logged */
	bool shutdown;			/* disconnect() or fini() ran */
	bool reader;			/* a caller is reading fd */
	int users;			/* threads inside call() */
	uint64_t next_id;
	struct tt_call *calls;		/* waiting for replies */
	struct tt_rx rx;		/* owned by the reader */
};

int tt_connect(struct pm_tctx *t, const char *endpoint, int64_t deadline_ns,
	       struct pm_tconn **out);
void tt_disconnect(struct pm_tconn *c);
int tt_call(struct pm_tconn *c, const struct pm_msg *req, struct pm_msg *rep,
	    int64_t deadline_ns);

/* Is m a sendable message? 0, -EMSGSIZE, -EINVAL. */
int tt_check_msg(const struct pm_msg *m);

/* The port of an AF_INET or AF_INET6 address, host order. */
static inline unsigned int tt_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

static inline struct timespec tt_ts(int64_t ns)
{
	struct timespec ts = {
		.tv_sec = ns / 1000000000,
		.tv_nsec = ns % 1000000000,
	};

	return ts;
}

#endif /* TT_H */
