// SPDX-License-Identifier: MIT
/*
 * io_uring-tcp transport, listening side: one thread and one ring serve
 * every incoming connection. Multishot accept and multishot receive into
 * provided buffers; requests are handed to the core inline; replies given
 * during a batch leave in one send per connection when the batch is done,
 * together with the wait for the next completions (one io_uring_enter per
 * loop). Replies from other threads go out with a direct non-blocking send
 * when the socket is idle, else through the ring.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ut.h"

enum { UT_SC_FREE = 0, UT_SC_OPEN, UT_SC_CLOSING };

/* The socket as ring operations name it: its slot in the ring's file
 * table (no file lookup per operation) or the plain descriptor. */
#define UT_SRFD(t, idx, sc) ((t)->sfixed ? (int)(idx) : (sc)->fd)

/* Conn ids: a per-listener sequence number above the table index. */
#define UT_SC_BITS 16
_Static_assert(UT_MAX_SCONNS <= (1u << UT_SC_BITS), "conn id index bits");

struct ut_sconn {
	pthread_mutex_t lock;	/* id, state, fd, sq (reply/drop) */
	uint64_t id;
	int state;
	int fd;
	char peer[PM_NET_ADDRSTR_MAX];
	struct ut_sendq sq;

	/* server thread only */
	unsigned ops;		/* receive armed + send in flight */
	bool recv_armed;
	bool shut;
	bool closed_cb;
	bool discarded;		/* received bytes never given to the core */
	bool greeted;		/* a whole request came */
	int64_t deadline;	/* dropped if no progress by then; 0: none */
	struct ut_parser p;
	unsigned char msg[PM_MSG_MAX];
	unsigned char *pay;	/* PM_PAYLOAD_MAX, on first need */

	bool dirty;		/* in t->dirty; under t->dirty_lock */
};

static __thread struct ut_tctx *ut_tls_server;

static struct io_uring_sqe *ut_srv_sqe(struct ut_tctx *t)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->sring);

	if (!sqe) {
		/* SQ full: hand what is there to the kernel first. */
		io_uring_submit(&t->sring);
		sqe = io_uring_get_sqe(&t->sring);
	}
	return sqe;
}

static void ut_kick(struct ut_tctx *t)
{
	uint64_t one = 1;

	if (write(t->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		ut_log(t, PM_LOG_WARN, "eventfd write: %s", strerror(errno));
}

static void ut_mark_dirty(struct ut_tctx *t, uint32_t idx)
{
	struct ut_sconn *sc = &t->sconns[idx];

	pthread_mutex_lock(&t->dirty_lock);
	if (!sc->dirty) {
		sc->dirty = true;
		t->dirty[t->ndirty++] = idx;
	}
	pthread_mutex_unlock(&t->dirty_lock);
}

static void ut_srv_arm_recv(struct ut_tctx *t, uint32_t idx)
{
	struct ut_sconn *sc = &t->sconns[idx];
	struct io_uring_sqe *sqe = ut_srv_sqe(t);

	if (!sqe)
		return;
	io_uring_prep_recv_multishot(sqe, UT_SRFD(t, idx, sc), NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	if (t->sfixed)
		sqe->flags |= IOSQE_FIXED_FILE;
	sqe->buf_group = t->sbr.bgid;
	io_uring_sqe_set_data64(sqe, UT_UD(UT_UD_RECV, idx));
	sc->recv_armed = true;
	sc->ops++;
}

/*
 * Send what the connection has buffered. sc locked; server thread. When no
 * send is in flight one non-blocking sendmsg takes a whole batch of
 * replies: waiting on a ring send's completion would cost either a second
 * io_uring_enter or a timed wait, and a timed io_uring wait measured about
 * 5 us slower to wake here. What the socket refuses goes through the ring.
 * Returns -errno when the socket is broken.
 */
static int ut_srv_start_send(struct ut_tctx *t, uint32_t idx)
{
	struct ut_sconn *sc = &t->sconns[idx];
	struct io_uring_sqe *sqe;
	ssize_t n;

	if (sc->state != UT_SC_OPEN || sc->sq.inflight || !sc->sq.fill_len)
		return 0;
	n = send(sc->fd, sc->sq.fill, sc->sq.fill_len,
		 MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		return -errno;
	if (n > 0) {
		memmove(sc->sq.fill, sc->sq.fill + n, sc->sq.fill_len - n);
		sc->sq.fill_len -= (uint32_t)n;
	}
	if (!ut_sendq_start(&sc->sq))
		return 0;
	sqe = ut_srv_sqe(t);
	if (!sqe) {
		sc->sq.inflight = false;
		return -EBUSY;
	}
	ut_sendq_prep(&sc->sq, sqe, UT_SRFD(t, idx, sc), t->sfixed,
		      UT_UD(UT_UD_SEND, idx));
	sc->ops++;
	return 0;
}

static void ut_srv_finalize(struct ut_tctx *t, uint32_t idx)
{
	struct ut_sconn *sc = &t->sconns[idx];
	struct linger abort = { .l_onoff = 1, .l_linger = 0 };
	int none = -1;

	/* The ring lets go of the socket too, so close really closes. */
	if (t->sfixed)
		io_uring_register_files_update(&t->sring, idx, &none, 1);
	pthread_mutex_lock(&sc->lock);
	/*
	 * Bytes the peer sent were thrown away: reset, as close() does by
	 * itself on a socket with unread data. Our multishot receive drained
	 * the socket after shutdown(), so close() would otherwise end it with
	 * a quiet FIN; and after SHUT_RD the kernel never reopens a receive
	 * window the peer filled (nor does the FIN_WAIT2 time-wait socket
	 * close() leaves), so a peer still writing sat in zero-window probes
	 * until its own timeout (5 s in the conformance suite) instead of
	 * getting an error at once.
	 */
	if (sc->fd >= 0 && sc->discarded &&
	    setsockopt(sc->fd, SOL_SOCKET, SO_LINGER, &abort,
		       sizeof(abort)) < 0)
		ut_log(t, PM_LOG_WARN, "resetting %s: SO_LINGER: %s", sc->peer,
		       strerror(errno));
	if (sc->fd >= 0)
		close(sc->fd);
	sc->fd = -1;
	sc->state = UT_SC_FREE;
	ut_sendq_free(&sc->sq);
	pthread_mutex_unlock(&sc->lock);
	sc->deadline = 0;
	t->slive--;
}

/* The connection is gone or must go: on_close once, then the socket is
 * closed when the ring holds no operation on it. Server thread. */
static void ut_srv_close(struct ut_tctx *t, uint32_t idx)
{
	struct ut_sconn *sc = &t->sconns[idx];

	pthread_mutex_lock(&sc->lock);
	if (sc->state == UT_SC_FREE) {
		pthread_mutex_unlock(&sc->lock);
		return;
	}
	sc->state = UT_SC_CLOSING;
	if (!sc->shut) {
		/* Ends the multishot receive and any send in flight. */
		shutdown(sc->fd, SHUT_RDWR);
		sc->shut = true;
	}
	pthread_mutex_unlock(&sc->lock);
	if (!sc->closed_cb) {
		sc->closed_cb = true;
		if (t->lst.on_close)
			t->lst.on_close(t->lst.arg, sc->id);
	}
	if (!sc->ops)
		ut_srv_finalize(t, idx);
}

/*
 * Deadlines of incoming connections: a first request must be whole
 * handshake_timeout_ms after the accept, however its bytes trickle in;
 * later, a frame in progress may go stall_timeout_ms without a byte (a
 * peer we serve stalls for seconds while TCP recovers from loss). Every
 * deadline under one bound is now + that bound, so none is ever earlier
 * than one already pending under the same bound: one ring timeout per
 * bound, armed for its earliest, covers them all, and the server's wait
 * stays untimed (a timed wait wakes slower). The two bounds differ, so
 * a single timeout could be armed past a new, earlier deadline of the
 * other bound. Which bound applies is sc->greeted. Server thread only.
 */
static void ut_srv_set_deadline(struct ut_tctx *t, struct ut_sconn *sc,
				int64_t deadline)
{
	int k = sc->greeted ? UT_DL_STALL : UT_DL_FIRST;

	sc->deadline = deadline;
	if (deadline < t->next_deadline[k])
		t->next_deadline[k] = deadline;
}

static void ut_srv_arm_timer(struct ut_tctx *t, int k)
{
	struct io_uring_sqe *sqe;

	if (t->timer_armed[k] || t->next_deadline[k] == INT64_MAX)
		return;
	sqe = ut_srv_sqe(t);
	if (!sqe)
		return;		/* the next loop tries again */
	t->timer_ts[k].tv_sec = t->next_deadline[k] / 1000000000;
	t->timer_ts[k].tv_nsec = t->next_deadline[k] % 1000000000;
	/* absolute on CLOCK_MONOTONIC, the clock of pm_now_ns() */
	io_uring_prep_timeout(sqe, &t->timer_ts[k], 0, IORING_TIMEOUT_ABS);
	io_uring_sqe_set_data64(sqe, UT_UD(UT_UD_TIMER, k));
	t->timer_armed[k] = true;
}

static void ut_srv_close(struct ut_tctx *t, uint32_t idx);

/*
 * A timer fired: drop every connection past its deadline, once, with the
 * reason; find the next deadline under each bound. A timer still armed
 * is armed no later than any deadline under its bound (they only grow),
 * so recomputing its next deadline loses nothing.
 */
static void ut_srv_sweep(struct ut_tctx *t)
{
	const char *name = t->host->name ? t->host->name : "io_uring-tcp";
	int64_t now = pm_now_ns(), next[2] = { INT64_MAX, INT64_MAX };
	struct ut_sconn *sc;
	uint32_t idx;
	int k;

	for (idx = 0; idx < UT_MAX_SCONNS; idx++) {
		sc = &t->sconns[idx];
		if (sc->state != UT_SC_OPEN || !sc->deadline)
			continue;
		k = sc->greeted ? UT_DL_STALL : UT_DL_FIRST;
		if (sc->deadline > now) {
			if (sc->deadline < next[k])
				next[k] = sc->deadline;
			continue;
		}
		if (!sc->greeted)
			ut_log(t, PM_LOG_WARN,
			       "connection %llu from %s: no whole request within %lld ms of connecting (transports.%s.handshake_timeout_ms): dropping it",
			       (unsigned long long)sc->id, sc->peer,
			       (long long)(t->handshake_timeout_ns / 1000000),
			       name);
		else
			ut_log(t, PM_LOG_WARN,
			       "connection %llu from %s: a frame stalled part-way for %lld ms (transports.%s.stall_timeout_ms): dropping it",
			       (unsigned long long)sc->id, sc->peer,
			       (long long)(t->stall_timeout_ns / 1000000),
			       name);
		sc->deadline = 0;
		/* Its bytes are thrown away: reset it (ut_srv_finalize). */
		sc->discarded = true;
		ut_srv_close(t, idx);
	}
	t->next_deadline[UT_DL_FIRST] = next[UT_DL_FIRST];
	t->next_deadline[UT_DL_STALL] = next[UT_DL_STALL];
}

/* After bytes of sc went to the parser: which deadline applies now. */
static void ut_srv_progress(struct ut_tctx *t, struct ut_sconn *sc)
{
	const struct ut_parser *p = &sc->p;

	if (!sc->greeted)
		return;		/* the first request's deadline stands */
	if (p->stage != UT_P_HDR || p->hdr_got)
		ut_srv_set_deadline(t, sc, pm_now_ns() + t->stall_timeout_ns);
	else
		sc->deadline = 0;
}

/*
 * At the bound, the oldest connection that has not sent a whole first
 * request (the earliest first-request deadline) is closed to make room.
 * Returns whether one was found.
 */
static bool ut_srv_displace(struct ut_tctx *t)
{
	uint32_t idx, old = UT_MAX_SCONNS;

	for (idx = 0; idx < UT_MAX_SCONNS; idx++) {
		struct ut_sconn *sc = &t->sconns[idx];

		if (sc->state == UT_SC_OPEN && !sc->greeted && sc->deadline &&
		    (old == UT_MAX_SCONNS ||
		     sc->deadline < t->sconns[old].deadline))
			old = idx;
	}
	if (old == UT_MAX_SCONNS)
		return false;
	t->sconns[old].deadline = 0;
	t->sconns[old].discarded = true;	/* reset, not a FIN */
	ut_srv_close(t, old);
	return true;
}

/* Connections not being closed: what max_conns bounds. */
static uint32_t ut_srv_open_count(struct ut_tctx *t)
{
	uint32_t open = 0;

	for (uint32_t idx = 0; idx < UT_MAX_SCONNS; idx++) {
		struct ut_sconn *sc = &t->sconns[idx];

		pthread_mutex_lock(&sc->lock);
		open += sc->state == UT_SC_OPEN;
		pthread_mutex_unlock(&sc->lock);
	}
	return open;
}

/*
 * Is the listener full (max_conns)? Then the new connection displaces
 * one that never spoke, and takes one of the table's spare slots while
 * the displaced one's is not free yet; when no connection can be
 * displaced, or the spare slots are taken, fd, just accepted, is closed
 * at once. Logs once per episode, so a flood of connections cannot flood
 * the log as well.
 */
static bool ut_srv_refuse(struct ut_tctx *t, int fd, const char *peer)
{
	const char *name = t->host->name ? t->host->name : "io_uring-tcp";

	if (t->slive < t->max_conns) {
		/* The episode ends with a quarter of the slots free, so a
		 * flood hovering at the bound logs one line, not many. */
		if (t->at_bound &&
		    t->slive <= t->max_conns - t->max_conns / 4 - 1)
			ut_log(t, PM_LOG_INFO,
			       "accepting on %s again: at the bound of %u (transports.%s.max_conns), %llu connections were refused and %llu that had sent no request displaced",
			       t->endpoint, t->max_conns, name,
			       (unsigned long long)t->refused,
			       (unsigned long long)t->displaced);
		if (t->slive <= t->max_conns - t->max_conns / 4 - 1)
			t->at_bound = false;
		return false;
	}
	if (!t->at_bound) {
		ut_log(t, PM_LOG_WARN,
		       "connection from %s to %s at the bound: %u incoming connections are open (transports.%s.max_conns); until one ends, new ones displace those that have sent no request, or are refused, without a log line each",
		       peer, t->endpoint, t->slive, name);
		t->at_bound = true;
		t->refused = 0;
		t->displaced = 0;
	}
	if (ut_srv_displace(t)) {
		t->displaced++;
		if (t->slive < UT_MAX_SCONNS &&
		    ut_srv_open_count(t) < t->max_conns)
			return false;
	}
	t->refused++;
	close(fd);
	return true;
}

static void ut_srv_accept(struct ut_tctx *t, int fd)
{
	struct ut_sconn *sc = NULL;
	char peer[PM_NET_ADDRSTR_MAX];
	uint32_t i, idx = 0;

	pm_net_fd_name(fd, 0, peer, sizeof(peer));
	if (ut_srv_refuse(t, fd, peer))
		return;
	for (i = 0; i < UT_MAX_SCONNS; i++) {
		idx = (t->scursor + i) % UT_MAX_SCONNS;
		if (t->sconns[idx].state == UT_SC_FREE) {
			sc = &t->sconns[idx];
			break;
		}
	}
	if (!sc) {
		/* max_conns <= UT_MAX_SCONNS: only if the count is wrong */
		ut_log(t, PM_LOG_ERROR,
		       "refusing %s: no free slot of %u with %u counted live",
		       peer, UT_MAX_SCONNS, t->slive);
		close(fd);
		return;
	}
	t->scursor = idx + 1;
	pm_net_rpc_tune(fd);
	if (t->sfixed &&
	    io_uring_register_files_update(&t->sring, idx, &fd, 1) != 1) {
		ut_log(t, PM_LOG_WARN,
		       "refusing %s: cannot register its socket with the ring",
		       peer);
		close(fd);
		return;
	}
	pthread_mutex_lock(&sc->lock);
	sc->id = (++t->next_seq << UT_SC_BITS) | idx;
	sc->fd = fd;
	sc->state = UT_SC_OPEN;
	memcpy(sc->peer, peer, sizeof(peer));
	ut_sendq_init(&sc->sq, UT_SERVER_SENDQ_CAP);
	pthread_mutex_unlock(&sc->lock);
	t->slive++;
	sc->ops = 0;
	sc->shut = false;
	sc->closed_cb = false;
	sc->discarded = false;
	sc->greeted = false;
	memset(&sc->p, 0, sizeof(sc->p));
	ut_srv_set_deadline(t, sc, pm_now_ns() + t->handshake_timeout_ns);
	ut_srv_arm_recv(t, idx);
	ut_log(t, PM_LOG_DEBUG, "accepted %s as connection %llu", peer,
	       (unsigned long long)sc->id);
}

static void ut_srv_dispatch(struct ut_tctx *t, struct ut_sconn *sc,
			    const struct pm_frame_hdr *h, const void *msg,
			    const void *pay)
{
	struct pm_request rq = {
		.conn_id = sc->id,
		.req_id = h->id,
		.msg = msg,
		.msg_len = h->msg_len,
		.payload = pay,
		.payload_len = h->payload_len,
		.peer = sc->peer,
	};

	sc->greeted = true;
	t->lst.on_request(t->lst.arg, &rq);
}

static const char *ut_srv_check(struct pm_frame_hdr *h)
{
	const char *why = pm_frame_decode(h);

	if (!why && h->kind != PM_FRAME_REQ)
		why = "kind (a reply on a listening connection)";
	return why;
}

/*
 * Parse request bytes. A frame that lies whole in the buffer goes to the
 * core in place; one split across receives is gathered first. -EPROTO on
 * a malformed frame (logged), -ENOMEM.
 */
static int ut_srv_feed(struct ut_tctx *t, uint32_t idx,
		       const unsigned char *d, uint32_t len)
{
	struct ut_sconn *sc = &t->sconns[idx];
	struct ut_parser *p = &sc->p;
	const char *why;
	uint32_t n, need;

	while (len && sc->state == UT_SC_OPEN) {
		if (p->stage == UT_P_HDR && !p->hdr_got &&
		    len >= PM_FRAME_HDR_LEN) {
			memcpy(&p->hdr, d, PM_FRAME_HDR_LEN);
			why = ut_srv_check(&p->hdr);
			if (why)
				goto bad;
			need = PM_FRAME_HDR_LEN + p->hdr.msg_len +
			       p->hdr.payload_len;
			if (len >= need) {
				ut_srv_dispatch(t, sc, &p->hdr,
						d + PM_FRAME_HDR_LEN,
						d + PM_FRAME_HDR_LEN +
						p->hdr.msg_len);
				d += need;
				len -= need;
				continue;
			}
			d += PM_FRAME_HDR_LEN;
			len -= PM_FRAME_HDR_LEN;
			p->hdr_got = PM_FRAME_HDR_LEN;
			p->stage = UT_P_MSG;
			p->got = 0;
			if (p->hdr.payload_len && !sc->pay) {
				sc->pay = malloc(PM_PAYLOAD_MAX);
				if (!sc->pay)
					return -ENOMEM;
			}
		}
		if (p->stage == UT_P_HDR) {
			n = PM_FRAME_HDR_LEN - p->hdr_got;
			n = n < len ? n : len;
			memcpy((unsigned char *)&p->hdr + p->hdr_got, d, n);
			p->hdr_got += n;
			d += n;
			len -= n;
			if (p->hdr_got < PM_FRAME_HDR_LEN)
				break;
			why = ut_srv_check(&p->hdr);
			if (why)
				goto bad;
			if (p->hdr.payload_len && !sc->pay) {
				sc->pay = malloc(PM_PAYLOAD_MAX);
				if (!sc->pay)
					return -ENOMEM;
			}
			p->stage = UT_P_MSG;
			p->got = 0;
		}
		if (p->stage == UT_P_MSG) {
			n = p->hdr.msg_len - p->got;
			n = n < len ? n : len;
			memcpy(sc->msg + p->got, d, n);
			p->got += n;
			d += n;
			len -= n;
			if (p->got < p->hdr.msg_len)
				break;
			p->stage = UT_P_PAY;
			p->got = 0;
		}
		if (p->stage == UT_P_PAY) {
			n = p->hdr.payload_len - p->got;
			n = n < len ? n : len;
			if (n)
				memcpy(sc->pay + p->got, d, n);
			p->got += n;
			d += n;
			len -= n;
			if (p->got < p->hdr.payload_len)
				break;
			p->stage = UT_P_HDR;
			p->hdr_got = 0;
			ut_srv_dispatch(t, sc, &p->hdr, sc->msg, sc->pay);
		}
	}
	return 0;
bad:
	ut_log(t, PM_LOG_ERROR,
	       "bad frame from %s: field %s; dropping the connection",
	       sc->peer, why);
	return -EPROTO;
}

static void ut_srv_recv(struct ut_tctx *t, uint32_t idx,
			const struct io_uring_cqe *cqe)
{
	struct ut_sconn *sc = &t->sconns[idx];
	uint32_t bid;
	int r = 0;

	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		sc->recv_armed = false;
		sc->ops--;
	}
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		if (bid >= t->sbr.count) {
			ut_log(t, PM_LOG_ERROR, "bad buffer id %u", bid);
			r = -EIO;
		} else {
			if (cqe->res > 0 && sc->state == UT_SC_OPEN) {
				r = ut_srv_feed(t, idx, ut_buf(&t->sbr, bid),
						(uint32_t)cqe->res);
				if (!r)
					ut_srv_progress(t, sc);
			}
			/* A bad frame, or bytes after we closed: the peer
			 * gets a reset (ut_srv_finalize). */
			if (cqe->res > 0 && (r || sc->state != UT_SC_OPEN))
				sc->discarded = true;
			ut_bufring_recycle(&t->sbr, bid);
		}
	}
	if (cqe->res == 0) {
		ut_log(t, PM_LOG_DEBUG, "%s closed connection %llu", sc->peer,
		       (unsigned long long)sc->id);
		r = -ECONNRESET;
	} else if (cqe->res < 0 && cqe->res != -ENOBUFS &&
		   cqe->res != -EINTR) {
		if (sc->state == UT_SC_OPEN)
			ut_log(t, PM_LOG_INFO, "receive from %s: %s", sc->peer,
			       strerror(-cqe->res));
		r = cqe->res;
	}
	if (r || sc->state != UT_SC_OPEN)
		ut_srv_close(t, idx);
	else if (!sc->recv_armed)
		ut_srv_arm_recv(t, idx);
}

static void ut_srv_sent(struct ut_tctx *t, uint32_t idx, int res)
{
	struct ut_sconn *sc = &t->sconns[idx];
	struct io_uring_sqe *sqe;
	int r;

	sc->ops--;
	pthread_mutex_lock(&sc->lock);
	r = ut_sendq_done(&sc->sq, res);
	if (r == 1 && sc->state == UT_SC_OPEN) {
		sqe = ut_srv_sqe(t);
		if (sqe) {
			sc->sq.inflight = true;
			ut_sendq_prep(&sc->sq, sqe, UT_SRFD(t, idx, sc),
				      t->sfixed, UT_UD(UT_UD_SEND, idx));
			sc->ops++;
		} else {
			r = -EBUSY;
		}
	} else if (r == 0) {
		r = ut_srv_start_send(t, idx);
	}
	pthread_mutex_unlock(&sc->lock);
	if (r < 0) {
		if (sc->state == UT_SC_OPEN)
			ut_log(t, PM_LOG_INFO, "send to %s: %s", sc->peer,
			       strerror(-r));
		ut_srv_close(t, idx);
	} else if (sc->state != UT_SC_OPEN) {
		ut_srv_close(t, idx);
	}
}

static void ut_srv_arm_accept(struct ut_tctx *t)
{
	struct io_uring_sqe *sqe = ut_srv_sqe(t);

	if (!sqe)
		return;
	io_uring_prep_multishot_accept(sqe, t->lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, UT_UD(UT_UD_ACCEPT, 0));
}

static void ut_srv_arm_event(struct ut_tctx *t)
{
	struct io_uring_sqe *sqe = ut_srv_sqe(t);

	if (!sqe)
		return;
	io_uring_prep_read(sqe, t->efd, &t->efd_buf, sizeof(t->efd_buf), 0);
	io_uring_sqe_set_data64(sqe, UT_UD(UT_UD_EVENT, 0));
}

/* Send for every connection with replies queued; handle the drops other
 * threads asked for. */
static void ut_srv_flush(struct ut_tctx *t, uint32_t *list)
{
	struct ut_sconn *sc;
	uint32_t i, n, idx;
	bool closing;
	int r;

	pthread_mutex_lock(&t->dirty_lock);
	n = t->ndirty;
	memcpy(list, t->dirty, n * sizeof(*list));
	for (i = 0; i < n; i++)
		t->sconns[list[i]].dirty = false;
	t->ndirty = 0;
	pthread_mutex_unlock(&t->dirty_lock);

	for (i = 0; i < n; i++) {
		idx = list[i];
		sc = &t->sconns[idx];
		pthread_mutex_lock(&sc->lock);
		r = ut_srv_start_send(t, idx);
		closing = sc->state == UT_SC_CLOSING;
		pthread_mutex_unlock(&sc->lock);
		if (r < 0 && !closing)
			ut_log(t, PM_LOG_INFO, "send to %s: %s", sc->peer,
			       strerror(-r));
		if (r < 0 || closing)
			ut_srv_close(t, idx);
	}
}

static void *ut_srv_main(void *arg)
{
	struct ut_tctx *t = arg;
	struct __kernel_timespec ts = { .tv_nsec = 100000000 };
	struct io_uring_cqe *cqe;
	uint32_t *list, idx;
	unsigned head, n;
	bool accept_armed = true, event_armed = true;
	int64_t accept_retry = 0;
	int r;

	ut_tls_server = t;
	list = malloc(UT_MAX_SCONNS * sizeof(*list));
	if (t->sring_defer) {
		/* The submitter of a SINGLE_ISSUER ring is the thread that
		 * enables it. */
		/* liburing 2.3 declares io_uring_enable_rings but does not
		 * export it: register directly. */
		r = (int)syscall(__NR_io_uring_register, t->sring.ring_fd,
				 IORING_REGISTER_ENABLE_RINGS, NULL, 0);
		if (r < 0)
			ut_log(t, PM_LOG_ERROR, "enable io_uring: %s",
			       strerror(errno));
	}
	ut_srv_arm_accept(t);
	ut_srv_arm_event(t);
	while (!__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE) && list) {
		ut_srv_flush(t, list);
		ut_srv_arm_timer(t, UT_DL_FIRST);
		ut_srv_arm_timer(t, UT_DL_STALL);
		if (!accept_armed && pm_now_ns() >= accept_retry) {
			ut_srv_arm_accept(t);
			accept_armed = true;
			accept_retry = 0;
		}
		if (!event_armed) {
			ut_srv_arm_event(t);
			event_armed = true;
		}
		/*
		 * Every wake-up this thread needs is a completion: requests,
		 * accepts, sends, and the eventfd that reply(), drop() and
		 * fini() write. Untimed, as a timed wait wakes slower; the
		 * timer only paces an accept retry.
		 */
		if (accept_retry && accept_retry != INT64_MAX)
			r = io_uring_submit_and_wait_timeout(&t->sring, &cqe, 1,
							     &ts, NULL);
		else
			r = io_uring_submit_and_wait(&t->sring, 1);
		if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN &&
		    r != -EBUSY)
			ut_log(t, PM_LOG_WARN, "io_uring wait: %s",
			       strerror(-r));
		n = 0;
		io_uring_for_each_cqe(&t->sring, head, cqe) {
			n++;
			idx = UT_UD_IDX(cqe->user_data);
			switch (UT_UD_KIND(cqe->user_data)) {
			case UT_UD_ACCEPT:
				if (!(cqe->flags & IORING_CQE_F_MORE))
					accept_armed = false;
				if (cqe->res >= 0) {
					ut_srv_accept(t, cqe->res);
				} else if (cqe->res == -EINVAL) {
					/* fini shut the listener down */
					accept_retry = INT64_MAX;
				} else if (cqe->res != -EAGAIN &&
					   cqe->res != -EINTR &&
					   cqe->res != -ECANCELED) {
					/* e.g. EMFILE: retry later, not in a
					 * loop */
					ut_log(t, PM_LOG_WARN, "accept: %s",
					       strerror(-cqe->res));
					accept_retry = pm_now_ns() + 100000000;
				}
				break;
			case UT_UD_EVENT:
				event_armed = false;
				break;
			case UT_UD_TIMER:
				t->timer_armed[idx ? UT_DL_STALL :
						    UT_DL_FIRST] = false;
				ut_srv_sweep(t);
				break;
			case UT_UD_RECV:
				if (idx < UT_MAX_SCONNS)
					ut_srv_recv(t, idx, cqe);
				break;
			case UT_UD_SEND:
				if (idx < UT_MAX_SCONNS)
					ut_srv_sent(t, idx, cqe->res);
				break;
			default:
				break;
			}
		}
		io_uring_cq_advance(&t->sring, n);
	}
	/* fini: every connection closes; on_close before fini returns. */
	for (idx = 0; idx < UT_MAX_SCONNS; idx++)
		if (t->sconns[idx].state != UT_SC_FREE)
			ut_srv_close(t, idx);
	free(list);
	return NULL;
}

/* --- ops ----------------------------------------------------------------- */

int ut_listen(struct pm_tctx *tc, const struct pm_listener *lst)
{
	struct ut_tctx *t = (struct ut_tctx *)tc;
	struct sockaddr_storage ss;
	socklen_t sl;
	char err[PM_ENDPOINT_MAX + 128];
	uint32_t i;
	int r, fl;

	if (!t || !lst || !lst->on_request)
		return -EINVAL;
	if (t->listening)
		return -EALREADY;
	r = pm_net_parse(t->listen_ep, &ss, &sl, err, sizeof(err));
	if (r < 0) {
		ut_log(t, PM_LOG_ERROR, "config key listen: %s", err);
		return r;
	}
	r = pm_net_listen((struct sockaddr *)&ss, sl, 128, &t->lfd);
	if (r < 0) {
		ut_log(t, PM_LOG_ERROR, "listen on %s: %s", t->listen_ep,
		       strerror(-r));
		return r;
	}
	/* io_uring would return -EAGAIN rather than wait on O_NONBLOCK. */
	fl = fcntl(t->lfd, F_GETFL);
	if (fl < 0 || fcntl(t->lfd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		r = -errno;
		goto err_lfd;
	}
	sl = sizeof(ss);
	if (getsockname(t->lfd, (struct sockaddr *)&ss, &sl) < 0) {
		r = -errno;
		goto err_lfd;
	}
	r = pm_net_format((struct sockaddr *)&ss, t->endpoint,
			  sizeof(t->endpoint));
	if (r < 0)
		goto err_lfd;
	t->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->efd < 0) {
		r = -errno;
		goto err_lfd;
	}
	/* One thread submits: let the kernel run receive work only when it
	 * waits (DEFER_TASKRUN, 6.1+); fall back to a plain ring. */
	r = ut_ring_init(&t->sring, 256, IORING_SETUP_SINGLE_ISSUER |
			 IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED);
	t->sring_defer = r == 0;
	if (r == -EINVAL)
		r = ut_ring_init(&t->sring, 256, 0);
	if (r < 0) {
		ut_log(t, PM_LOG_ERROR, "io_uring_queue_init: %s",
		       strerror(-r));
		goto err_efd;
	}
	t->sring_ok = true;
	/* A file table for the sockets; plain descriptors if refused. */
	t->sfixed = io_uring_register_files_sparse(&t->sring,
						   UT_MAX_SCONNS) == 0;
	r = ut_bufring_setup(&t->sring, &t->sbr, 0, UT_SERVER_BUFS);
	if (r < 0) {
		ut_log(t, PM_LOG_ERROR, "provided-buffer ring: %s",
		       strerror(-r));
		goto err_ring;
	}
	t->sconns = calloc(UT_MAX_SCONNS, sizeof(*t->sconns));
	t->dirty = calloc(UT_MAX_SCONNS, sizeof(*t->dirty));
	if (!t->sconns || !t->dirty) {
		r = -ENOMEM;
		goto err_mem;
	}
	for (i = 0; i < UT_MAX_SCONNS; i++) {
		pthread_mutex_init(&t->sconns[i].lock, NULL);
		t->sconns[i].fd = -1;
	}
	t->lst = *lst;
	t->next_deadline[UT_DL_FIRST] = INT64_MAX;
	t->next_deadline[UT_DL_STALL] = INT64_MAX;
	/* Before the thread starts: its first reply() checks it. */
	t->listening = true;
	r = -pthread_create(&t->sthread, NULL, ut_srv_main, t);
	if (r) {
		t->listening = false;
		ut_log(t, PM_LOG_ERROR, "server thread: %s", strerror(-r));
		goto err_locks;
	}
	t->sthread_ok = true;
	ut_log(t, PM_LOG_INFO, "listening on %s%s", t->endpoint,
	       t->sring_defer ? "" : " (no DEFER_TASKRUN)");
	return 0;

err_locks:
	for (i = 0; i < UT_MAX_SCONNS; i++)
		pthread_mutex_destroy(&t->sconns[i].lock);
err_mem:
	free(t->sconns);
	free(t->dirty);
	t->sconns = NULL;
	t->dirty = NULL;
	ut_bufring_free(&t->sring, &t->sbr);
err_ring:
	io_uring_queue_exit(&t->sring);
	t->sring_ok = false;
err_efd:
	close(t->efd);
	t->efd = -1;
err_lfd:
	close(t->lfd);
	t->lfd = -1;
	return r;
}

int ut_endpoint(struct pm_tctx *tc, char *buf, size_t len)
{
	struct ut_tctx *t = (struct ut_tctx *)tc;

	if (!t || !buf)
		return -EINVAL;
	if (!t->listening)
		return -ENOTCONN;
	if (strlen(t->endpoint) + 1 > len)
		return -ENOSPC;
	strcpy(buf, t->endpoint);
	return 0;
}

static struct ut_sconn *ut_sconn_get(struct ut_tctx *t, uint64_t conn_id,
				     uint32_t *idx)
{
	uint32_t i = (uint32_t)(conn_id & ((1u << UT_SC_BITS) - 1));

	if (!t->listening || i >= UT_MAX_SCONNS)
		return NULL;
	*idx = i;
	return &t->sconns[i];
}

int ut_reply(struct pm_tctx *tc, uint64_t conn_id, uint64_t req_id,
	     int status, const struct pm_msg *rep)
{
	struct ut_tctx *t = (struct ut_tctx *)tc;
	static const struct pm_msg empty;
	struct pm_frame_hdr h;
	struct iovec iov[3];
	struct msghdr mh;
	struct ut_sconn *sc;
	bool kick = false;
	uint32_t idx;
	ssize_t n;
	int r = 0, k;

	if (!t)
		return -EINVAL;
	if (!rep)
		rep = &empty;
	if (rep->msg_len > PM_MSG_MAX || rep->payload_len > PM_PAYLOAD_MAX ||
	    (rep->msg_len && !rep->msg) ||
	    (rep->payload_len && !rep->payload) || status > 0 ||
	    status < -4095)
		return -EINVAL;
	sc = ut_sconn_get(t, conn_id, &idx);
	if (!sc)
		return -ENOTCONN;
	pm_frame_encode(&h, PM_FRAME_REP, req_id, status, rep->msg_len,
			rep->payload_len);
	iov[0] = (struct iovec){ &h, PM_FRAME_HDR_LEN };
	iov[1] = (struct iovec){ rep->msg, rep->msg_len };
	iov[2] = (struct iovec){ rep->payload, rep->payload_len };

	pthread_mutex_lock(&sc->lock);
	if (sc->state != UT_SC_OPEN || sc->id != conn_id) {
		pthread_mutex_unlock(&sc->lock);
		return -ENOTCONN;
	}
	if (ut_tls_server != t && !sc->sq.inflight && !sc->sq.fill_len) {
		/* Idle socket, not the server thread: send it now rather
		 * than wake that thread (a cross-CPU wake-up). */
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = 3;
		n = sendmsg(sc->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR) {
			r = errno == EPIPE || errno == ECONNRESET ? -ENOTCONN :
								  -errno;
			pthread_mutex_unlock(&sc->lock);
			return r;
		}
		for (k = 0; k < 3 && n > 0; k++) {
			size_t m = (size_t)n < iov[k].iov_len ?
				   (size_t)n : iov[k].iov_len;

			iov[k].iov_base = (char *)iov[k].iov_base + m;
			iov[k].iov_len -= m;
			n -= (ssize_t)m;
		}
		if (!iov[0].iov_len && !iov[1].iov_len && !iov[2].iov_len) {
			pthread_mutex_unlock(&sc->lock);
			return 0;
		}
	}
	r = ut_sendq_append(&sc->sq, iov, 3);
	if (r == -ENOBUFS)
		ut_log(t, PM_LOG_WARN,
		       "reply to %s refused: %u bytes already queued (peer not reading?)",
		       sc->peer, sc->sq.fill_len);
	kick = !r && !sc->sq.inflight && ut_tls_server != t;
	pthread_mutex_unlock(&sc->lock);
	if (!r)
		ut_mark_dirty(t, idx);
	if (kick)
		ut_kick(t);
	return r;
}

int ut_drop(struct pm_tctx *tc, uint64_t conn_id)
{
	struct ut_tctx *t = (struct ut_tctx *)tc;
	struct ut_sconn *sc;
	uint32_t idx;

	if (!t)
		return -EINVAL;
	sc = ut_sconn_get(t, conn_id, &idx);
	if (!sc)
		return -ENOENT;
	pthread_mutex_lock(&sc->lock);
	if (sc->state != UT_SC_OPEN || sc->id != conn_id) {
		pthread_mutex_unlock(&sc->lock);
		return -ENOENT;
	}
	/* No request of it reaches the core any more; the server thread
	 * reports on_close. */
	sc->state = UT_SC_CLOSING;
	pthread_mutex_unlock(&sc->lock);
	ut_mark_dirty(t, idx);
	if (ut_tls_server != t)
		ut_kick(t);
	return 0;
}

void ut_server_fini(struct ut_tctx *t)
{
	uint32_t i;

	/* A multishot accept holds the listening socket until the ring is
	 * torn down, asynchronously: stop listening now, so a restarted
	 * node can bind the port at once. */
	if (t->lfd >= 0)
		shutdown(t->lfd, SHUT_RDWR);
	if (t->sthread_ok) {
		__atomic_store_n(&t->stop, true, __ATOMIC_RELEASE);
		ut_kick(t);
		pthread_join(t->sthread, NULL);
		t->sthread_ok = false;
	}
	if (t->sring_ok) {
		/* Cancels and reaps whatever is still in flight. */
		io_uring_queue_exit(&t->sring);
		ut_bufring_free(NULL, &t->sbr);
		t->sring_ok = false;
	}
	if (t->sconns) {
		for (i = 0; i < UT_MAX_SCONNS; i++) {
			if (t->sconns[i].fd >= 0)
				close(t->sconns[i].fd);
			ut_sendq_free(&t->sconns[i].sq);
			free(t->sconns[i].pay);
			pthread_mutex_destroy(&t->sconns[i].lock);
		}
		free(t->sconns);
		t->sconns = NULL;
	}
	free(t->dirty);
	t->dirty = NULL;
	if (t->efd >= 0)
		close(t->efd);
	if (t->lfd >= 0)
		close(t->lfd);
	t->efd = t->lfd = -1;
	t->listening = false;
}
