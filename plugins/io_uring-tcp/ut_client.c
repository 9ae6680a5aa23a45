// SPDX-License-Identifier: MIT
/*
 * io_uring-tcp transport, calling side: one socket and one ring per
 * connection, driven by the calling threads themselves (leader/follower).
 *
 * Whichever caller finds nobody driving the ring becomes the driver: it
 * submits its request and waits for completions in one io_uring_enter, so
 * at one call in flight a call is one system call and the reply wakes the
 * thread that wants it. Other callers queue their frame (sending it
 * directly when the socket is idle) and sleep on their slot; the driver
 * completes their slots from the replies it reaps, and when its own call is
 * done it hands the ring to one of them. The multishot receive runs its
 * task work on the thread that armed it, which is why the driver (not a
 * helper thread) arms it, and why that thread ends it before it leaves the
 * plugin while replies for others may still come (ut_release_recv). On an
 * idle connection it stays armed (ut_keep_recv): then only the peer's FIN
 * completes it, which the next call reads from the CQ instead of asking
 * the socket, and a call at one in flight is one io_uring_enter.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ut.h"

#define UT_NIL UINT32_MAX

enum { UT_S_FREE = 0, UT_S_WAIT, UT_S_DONE };

struct ut_slot {
	pthread_cond_t cv;
	uint64_t id;
	uint32_t gen;
	int state;
	int status;		/* result when DONE */
	bool queued;		/* its frame is in the send queue or sent */
	uint64_t qseq;		/* ... as the conn's qseq'th frame queued */
	bool broke;		/* failed because the connection broke
				 * before its frame left: send it again */
	void *msg;
	uint32_t msg_cap, msg_len;
	void *pay;
	uint32_t pay_cap, pay_len;
	uint32_t prev, next;	/* list of sleeping followers */
	bool listed;
	pid_t tid;		/* the calling thread */
};

struct ut_conn {
	struct ut_tctx *t;
	struct ut_conn *next;		/* t->conns */
	pthread_mutex_t lock;
	char ep[PM_ENDPOINT_MAX];
	struct sockaddr_storage ss;
	socklen_t sslen;

	/* socket and ring: valid while up; only the driver changes them */
	bool up;
	int fd;
	bool fixed;			/* fd is registered file 0 */
	struct io_uring ring;
	struct ut_bufring br;
	bool recv_armed;
	bool recv_cancelling;
	pid_t recv_owner;		/* thread whose task work feeds it */
	int64_t owner_seen_ns;		/* the owner last left a call */
	unsigned owner_calls;		/* the owner's calls under way */
	bool recv_parked;		/* its owner left it armed on an idle
					 * connection (ut_keep_recv) */

	bool driving;
	bool drive_capped;		/* driver wakes in BATCH_WAIT */
	unsigned nqueued;		/* calls with frame queued/sent */
	uint64_t appended;		/* frames queued, ever */
	uint64_t flown;			/* ... the first this many of which
					 * were handed to the socket */
	uint64_t wire_base;		/* appended when the socket was new */
	uint64_t replies;		/* reply frames read on this socket */
	bool shutdown;
	unsigned callers;
	unsigned slot_waiters;
	pthread_cond_t idle_cv;
	pthread_cond_t slot_cv;

	struct ut_sendq sq;
	struct ut_parser p;
	uint32_t cur;			/* slot of the frame being read */

	uint32_t whead, wtail;		/* sleeping followers */
	uint32_t nwake;			/* done, to wake after unlock */
	uint32_t wake[UT_MAX_SLOTS];
	uint32_t nfree;
	uint32_t freelist[UT_MAX_SLOTS];
	struct ut_slot slots[UT_MAX_SLOTS];

	/* System calls the calling threads made for calls, counted for the
	 * debug line of disconnect (the bench reads it): io_uring_enter, and
	 * the others on the socket (poll, send). Relaxed atomics. */
	uint64_t n_calls, n_enter, n_other;
};

static void ut_count(uint64_t *n)
{
	__atomic_fetch_add(n, 1, __ATOMIC_RELAXED);
}

/* Every io_uring_enter of the calling side goes through here. */
static int ut_enter(struct ut_conn *c, unsigned to_submit, unsigned min_complete,
		    unsigned flags, void *arg, size_t argsz)
{
	ut_count(&c->n_enter);
	return io_uring_enter2(c->ring.ring_fd, to_submit, min_complete, flags,
			       (sigset_t *)arg, argsz);
}

static void ut_ts_from_ns(struct timespec *ts, int64_t ns)
{
	ts->tv_sec = ns / 1000000000;
	ts->tv_nsec = ns % 1000000000;
}

static __thread pid_t ut_tid;

static pid_t ut_gettid(void)
{
	if (!ut_tid)
		ut_tid = gettid();
	return ut_tid;
}

/*
 * Ownership of the multishot receive. The kernel runs its receive work on
 * the thread that armed it; if that thread is asleep elsewhere (or busy in
 * its own code), every reply costs an extra cross-CPU wake-up before the
 * driver sees it (measured: 31 us instead of 20 us per call at one in
 * flight). So the ring is handed preferably to the owner, and a driver
 * takes the receive over (cancel, re-arm) when the owner has been out of
 * calls on this connection for a while.
 */
#define UT_OWNER_STALE_NS 1000000

/*
 * Under load a follower does not send its own frame: with at least
 * UT_BATCH_MIN calls already on the wire a reply is due soon, and the
 * driver sends everything queued meanwhile in one io_uring send together
 * with its next wait. The driver then waits at most UT_BATCH_WAIT_NS
 * before it flushes, so a queued frame is late by that much at worst
 * (when every call on the wire is slow).
 */
#define UT_BATCH_MIN 4
#define UT_BATCH_WAIT_NS 1000000

/* --- follower list ------------------------------------------------------- */

static void ut_wlist_add(struct ut_conn *c, uint32_t i)
{
	struct ut_slot *s = &c->slots[i];

	s->prev = c->wtail;
	s->next = UT_NIL;
	if (c->wtail != UT_NIL)
		c->slots[c->wtail].next = i;
	else
		c->whead = i;
	c->wtail = i;
	s->listed = true;
}

static void ut_wlist_del(struct ut_conn *c, uint32_t i)
{
	struct ut_slot *s = &c->slots[i];

	if (!s->listed)
		return;
	if (s->prev != UT_NIL)
		c->slots[s->prev].next = s->next;
	else
		c->whead = s->next;
	if (s->next != UT_NIL)
		c->slots[s->next].prev = s->prev;
	else
		c->wtail = s->prev;
	s->listed = false;
}

static void ut_wake_all(struct ut_conn *c)
{
	uint32_t i;

	for (i = c->whead; i != UT_NIL; i = c->slots[i].next)
		pthread_cond_signal(&c->slots[i].cv);
}

/* The owner of the receive, if it sleeps as a follower. */
static uint32_t ut_owner_waiting(struct ut_conn *c)
{
	uint32_t i;

	for (i = c->whead; i != UT_NIL; i = c->slots[i].next)
		if (c->slots[i].tid == c->recv_owner)
			return i;
	return UT_NIL;
}

/* Nobody drives the ring: let one sleeping caller take it over, the
 * receive's owner if it is one of them. */
static void ut_handoff(struct ut_conn *c)
{
	uint32_t i;

	if (c->driving || c->whead == UT_NIL)
		return;
	i = ut_owner_waiting(c);
	pthread_cond_signal(&c->slots[i != UT_NIL ? i : c->whead].cv);
}

/* Complete slot i; its caller is woken once the driver lets go of the
 * lock, so it does not wake only to block on the mutex. */
static void ut_slot_done(struct ut_conn *c, uint32_t i, int status)
{
	struct ut_slot *s = &c->slots[i];

	if (s->state == UT_S_WAIT && s->queued && c->nqueued)
		c->nqueued--;
	s->state = UT_S_DONE;
	s->status = status;
	if (s->listed && c->nwake < UT_MAX_SLOTS)
		c->wake[c->nwake++] = i;
	else if (s->listed)
		pthread_cond_signal(&s->cv);
}

/* Wake the callers completed in this round. Lock held on entry and
 * return; dropped meanwhile. A slot reused since only sees a spurious
 * wake-up, which every waiter tolerates (it re-checks its state). */
static void ut_wake_done(struct ut_conn *c)
{
	uint32_t w[UT_MAX_SLOTS], n = c->nwake, k;

	if (!n)
		return;
	memcpy(w, c->wake, n * sizeof(*w));
	c->nwake = 0;
	pthread_mutex_unlock(&c->lock);
	for (k = 0; k < n; k++)
		pthread_cond_signal(&c->slots[w[k]].cv);
	pthread_mutex_lock(&c->lock);
}

/* --- socket and ring ----------------------------------------------------- */

/* The socket as ring operations name it: registered file 0 (no file
 * lookup per operation) or the plain descriptor. */
static int ut_rfd(const struct ut_conn *c)
{
	return c->fixed ? 0 : c->fd;
}

/* Publish prepared SQEs to the kernel; returns how many it has not taken. */
static unsigned ut_flush_sq(struct io_uring *ring)
{
	struct io_uring_sq *sq = &ring->sq;
	unsigned tail = sq->sqe_tail;

	if (sq->sqe_head != tail) {
		sq->sqe_head = tail;
		io_uring_smp_store_release(sq->ktail, tail);
	}
	return tail - io_uring_smp_load_acquire(sq->khead);
}

/* Submit without waiting (followers, shutdown); lock held. */
static void ut_submit_now(struct ut_conn *c)
{
	unsigned n = ut_flush_sq(&c->ring);

	if (n)
		ut_enter(c, n, 0, 0, NULL, _NSIG / 8);
}

/* Close socket and ring; every call on them fails. Lock held, and either
 * this thread drives or nobody does. */
static void ut_teardown(struct ut_conn *c)
{
	if (!c->up)
		return;
	/* The ring's requests hold the socket until the ring is gone, which
	 * the kernel finishes asynchronously: end the TCP connection now. */
	shutdown(c->fd, SHUT_RDWR);
	io_uring_queue_exit(&c->ring);
	ut_bufring_free(NULL, &c->br);
	close(c->fd);
	c->fd = -1;
	c->up = false;
	c->recv_armed = false;
	c->recv_cancelling = false;
	c->recv_parked = false;
	ut_sendq_free(&c->sq);
	memset(&c->p, 0, sizeof(c->p));
	c->cur = UT_NIL;
	/* Nothing sent before this point is answered on the next socket. */
	c->wire_base = c->appended;
	c->replies = 0;
}

/*
 * The connection broke: every call on it ends. One whose frame never left
 * the send queue is sent again on a redial (ut_call); one whose frame
 * was handed to the socket may have reached the peer, and a request must
 * never run twice (transport.h), so it fails with err.
 */
static void ut_break(struct ut_conn *c, int err)
{
	uint32_t i;

	ut_teardown(c);
	for (i = 0; i < UT_MAX_SLOTS; i++) {
		struct ut_slot *s = &c->slots[i];

		if (s->state == UT_S_WAIT && s->queued) {
			s->broke = s->qseq > c->flown;
			ut_slot_done(c, i, err);
		}
	}
}

/* Has the peer closed its end (a FIN, or a reset, is waiting)? */
static bool ut_peer_closed(struct ut_conn *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLRDHUP };

	ut_count(&c->n_other);

	return poll(&p, 1, 0) == 1 &&
	       (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Hand the queued frames to the socket, if none are in flight: from here
 * on they may reach the peer (ut_break). */
static bool ut_send_begin(struct ut_conn *c)
{
	if (!ut_sendq_start(&c->sq))
		return false;
	c->flown = c->appended;
	return true;
}

/* Socket, ring and receive buffers for a fresh connection. Runs with the
 * driving role held and the lock released: nobody else touches them. */
static int ut_open(struct ut_conn *c, int64_t deadline_ns)
{
	int fd = -1, r, fl;

	r = pm_net_dial((struct sockaddr *)&c->ss, c->sslen, deadline_ns, -1,
			&fd);
	if (r < 0)
		return r;
	/* io_uring would fail with -EAGAIN instead of waiting on a
	 * non-blocking socket. */
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		r = -errno;
		goto err_close;
	}
	r = ut_ring_init(&c->ring, 64, 0);
	if (r < 0) {
		ut_log(c->t, PM_LOG_ERROR, "%s: io_uring_queue_init: %s", c->ep,
		       strerror(-r));
		goto err_close;
	}
	r = ut_bufring_setup(&c->ring, &c->br, 0, UT_CLIENT_BUFS);
	if (r < 0) {
		ut_log(c->t, PM_LOG_ERROR, "%s: provided-buffer ring: %s",
		       c->ep, strerror(-r));
		goto err_ring;
	}
	c->fd = fd;
	c->fixed = io_uring_register_files(&c->ring, &fd, 1) == 0;
	ut_sendq_init(&c->sq, UT_CLIENT_SENDQ_CAP);
	memset(&c->p, 0, sizeof(c->p));
	c->cur = UT_NIL;
	c->recv_armed = false;
	c->recv_cancelling = false;
	return 0;

err_ring:
	io_uring_queue_exit(&c->ring);
err_close:
	close(fd);
	return r;
}

/* Dial again after the peer went away. Lock held, nobody driving. */
static int ut_redial(struct ut_conn *c, int64_t deadline_ns)
{
	int r;

	c->driving = true;
	pthread_mutex_unlock(&c->lock);
	r = ut_open(c, deadline_ns);
	pthread_mutex_lock(&c->lock);
	c->driving = false;
	if (r == 0) {
		c->up = true;
		if (c->shutdown)
			ut_teardown(c);
	} else {
		ut_log(c->t, PM_LOG_WARN, "redial %s: %s", c->ep, strerror(-r));
	}
	/* Everyone waiting for the connection may queue now (or fail). */
	ut_wake_all(c);
	return r;
}

/* --- receive path -------------------------------------------------------- */

static uint32_t ut_min(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* The slot the current frame belongs to, if its caller still waits. */
static struct ut_slot *ut_cur(struct ut_conn *c)
{
	struct ut_slot *s;

	if (c->cur == UT_NIL)
		return NULL;
	s = &c->slots[c->cur];
	if (s->state != UT_S_WAIT || s->id != c->p.hdr.id) {
		c->cur = UT_NIL;
		return NULL;
	}
	return s;
}

/* Parse reply bytes into the callers' buffers. -EPROTO on a bad frame. */
static int ut_feed(struct ut_conn *c, const unsigned char *d, uint32_t len)
{
	struct ut_parser *p = &c->p;
	struct ut_slot *s;
	const char *why;
	uint32_t n, idx;

	while (len) {
		if (p->stage == UT_P_HDR) {
			n = ut_min(PM_FRAME_HDR_LEN - p->hdr_got, len);
			memcpy((unsigned char *)&p->hdr + p->hdr_got, d, n);
			p->hdr_got += n;
			d += n;
			len -= n;
			if (p->hdr_got < PM_FRAME_HDR_LEN)
				break;
			why = pm_frame_decode(&p->hdr);
			if (!why && p->hdr.kind != PM_FRAME_REP)
				why = "kind (request on a calling link)";
			if (why) {
				ut_log(c->t, PM_LOG_ERROR,
				       "bad frame from %s: field %s; dropping the connection",
				       c->ep, why);
				return -EPROTO;
			}
			c->cur = UT_NIL;
			idx = (uint32_t)(p->hdr.id & 0xffffffffu);
			if (idx < UT_MAX_SLOTS &&
			    c->slots[idx].state == UT_S_WAIT &&
			    c->slots[idx].id == p->hdr.id) {
				s = &c->slots[idx];
				if (p->hdr.msg_len > s->msg_cap ||
				    p->hdr.payload_len > s->pay_cap)
					ut_slot_done(c, idx, -EMSGSIZE);
				else
					c->cur = idx;
			}
			p->stage = UT_P_MSG;
			p->got = 0;
		}
		if (p->stage == UT_P_MSG) {
			n = ut_min(p->hdr.msg_len - p->got, len);
			s = ut_cur(c);
			if (s && n)
				memcpy((unsigned char *)s->msg + p->got, d, n);
			p->got += n;
			d += n;
			len -= n;
			if (p->got < p->hdr.msg_len)
				break;
			p->stage = UT_P_PAY;
			p->got = 0;
		}
		if (p->stage == UT_P_PAY) {
			n = ut_min(p->hdr.payload_len - p->got, len);
			s = ut_cur(c);
			if (s && n)
				memcpy((unsigned char *)s->pay + p->got, d, n);
			p->got += n;
			d += n;
			len -= n;
			if (p->got < p->hdr.payload_len)
				break;
			s = ut_cur(c);
			if (s) {
				s->msg_len = p->hdr.msg_len;
				s->pay_len = p->hdr.payload_len;
				ut_slot_done(c, c->cur, p->hdr.status);
			}
			c->replies++;
			c->cur = UT_NIL;
			p->stage = UT_P_HDR;
			p->hdr_got = 0;
		}
	}
	return 0;
}

/* Process every completion waiting in the ring. Lock held, driving. */
static void ut_reap(struct ut_conn *c)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	int err = 0, r;
	uint32_t bid;

	io_uring_for_each_cqe(&c->ring, head, cqe) {
		n++;
		switch (UT_UD_KIND(cqe->user_data)) {
		case UT_UD_SEND:
			r = ut_sendq_done(&c->sq, cqe->res);
			if (r == 1 && !err) {
				struct io_uring_sqe *sqe;

				/* Rest of a short send: the SQ has room, every
				 * earlier SQE was submitted. */
				sqe = io_uring_get_sqe(&c->ring);
				if (sqe) {
					c->sq.inflight = true;
					ut_sendq_prep(&c->sq, sqe, ut_rfd(c),
						      c->fixed,
						      UT_UD(UT_UD_SEND, 0));
				} else {
					err = -EBUSY;
				}
			} else if (r < 0 && !err) {
				ut_log(c->t, PM_LOG_WARN, "send to %s: %s",
				       c->ep, strerror(-r));
				err = r;
			}
			break;
		case UT_UD_RECV:
			if (!(cqe->flags & IORING_CQE_F_MORE)) {
				c->recv_armed = false;
				c->recv_cancelling = false;
			}
			if (cqe->res > 0) {
				if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
					err = err ? err : -EIO;
					break;
				}
				bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
				if (bid >= c->br.count) {
					err = err ? err : -EIO;
					break;
				}
				if (!err)
					err = ut_feed(c, ut_buf(&c->br, bid),
						      (uint32_t)cqe->res);
				ut_bufring_recycle(&c->br, bid);
			} else if (cqe->res == 0) {
				if (!err)
					ut_log(c->t, PM_LOG_INFO,
					       "%s closed the connection",
					       c->ep);
				err = err ? err : -ECONNRESET;
			} else if (cqe->res != -ENOBUFS &&
				   cqe->res != -ECANCELED &&
				   cqe->res != -EINTR) {
				/* ENOBUFS: all buffers were busy; CANCELED:
				 * the thread that armed it exited. Re-arm. */
				if (!err)
					ut_log(c->t, PM_LOG_WARN,
					       "receive from %s: %s", c->ep,
					       strerror(-cqe->res));
				err = err ? err : cqe->res;
			}
			break;
		case UT_UD_CANCEL:
			/* -EALREADY: it was running; try again on a later
			 * round. -ENOENT: it had ended; it re-arms anyway. */
			if (cqe->res < 0 && c->recv_armed)
				c->recv_cancelling = false;
			break;
		default:
			break;
		}
	}
	io_uring_cq_advance(&c->ring, n);
	if (err)
		ut_break(c, -ECONNRESET);
}

/* Put queued frames on the wire through the ring, if none are in flight. */
static void ut_start_send(struct ut_conn *c)
{
	struct io_uring_sqe *sqe;

	if (!c->up || !ut_send_begin(c))
		return;
	sqe = io_uring_get_sqe(&c->ring);
	if (!sqe) {
		c->sq.inflight = false;
		return;
	}
	ut_sendq_prep(&c->sq, sqe, ut_rfd(c), c->fixed,
		      UT_UD(UT_UD_SEND, 0));
	ut_submit_now(c);
}

/*
 * One round as the driver: submit what is queued, wait (until deadline_ns)
 * for completions, process them. Lock held on entry and return; released
 * while in the kernel.
 */
static void ut_drive(struct ut_conn *c, struct ut_slot *me,
		     int64_t deadline_ns)
{
	struct io_uring_getevents_arg arg;
	struct __kernel_timespec ts;
	struct io_uring_sqe *sqe;
	unsigned want = 1, n;
	int64_t left;
	int r;

	c->driving = true;
	if (c->recv_armed && !c->recv_cancelling &&
	    c->recv_owner != ut_gettid() && !c->owner_calls &&
	    (c->recv_parked ||
	     pm_now_ns() - c->owner_seen_ns > UT_OWNER_STALE_NS)) {
		/* Take the receive over; re-armed once its last CQE is in,
		 * so no two receives ever race for the stream. */
		sqe = io_uring_get_sqe(&c->ring);
		if (sqe) {
			io_uring_prep_cancel64(sqe, UT_UD(UT_UD_RECV, 0), 0);
			io_uring_sqe_set_data64(sqe, UT_UD(UT_UD_CANCEL, 0));
			c->recv_cancelling = true;
			c->recv_parked = false;
		}
	}
	if (!c->recv_armed) {
		sqe = io_uring_get_sqe(&c->ring);
		if (sqe) {
			io_uring_prep_recv_multishot(sqe, ut_rfd(c), NULL, 0,
						     0);
			sqe->flags |= IOSQE_BUFFER_SELECT;
			if (c->fixed)
				sqe->flags |= IOSQE_FIXED_FILE;
			sqe->buf_group = c->br.bgid;
			io_uring_sqe_set_data64(sqe, UT_UD(UT_UD_RECV, 0));
			c->recv_armed = true;
			c->recv_parked = false;
			/* The driver is inside its one call. */
			c->recv_owner = ut_gettid();
			c->owner_calls = 1;
		}
	}
	if (ut_send_begin(c)) {
		sqe = io_uring_get_sqe(&c->ring);
		if (sqe) {
			ut_sendq_prep(&c->sq, sqe, ut_rfd(c), c->fixed,
		      UT_UD(UT_UD_SEND, 0));
			/* Its completion comes at once: wait for one more,
			 * so send and reply cost one system call. */
			want++;
		} else {
			c->sq.inflight = false;	/* SQ was empty */
		}
	}
	n = ut_flush_sq(&c->ring);
	left = deadline_ns - pm_now_ns();
	if (left < 0)
		left = 0;
	c->drive_capped = c->nqueued > UT_BATCH_MIN;
	if (c->drive_capped && left > UT_BATCH_WAIT_NS)
		left = UT_BATCH_WAIT_NS;
	ts.tv_sec = left / 1000000000;
	ts.tv_nsec = left % 1000000000;
	memset(&arg, 0, sizeof(arg));
	arg.ts = (uint64_t)(uintptr_t)&ts;
	pthread_mutex_unlock(&c->lock);
	r = ut_enter(c, n, want, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
		     &arg, sizeof(arg));
	pthread_mutex_lock(&c->lock);
	if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN &&
	    r != -EBUSY)
		ut_log(c->t, PM_LOG_WARN, "io_uring_enter for %s: %s", c->ep,
		       strerror(-r));
	ut_reap(c);
	c->drive_capped = false;
	/* Leaving the ring: a resubmitted short send, or frames queued
	 * while we waited, must not wait for the next driver. Staying: the
	 * next round's enter carries them. */
	if (c->up && me->state != UT_S_WAIT) {
		ut_submit_now(c);
		ut_start_send(c);
	}
	c->driving = false;
	ut_wake_done(c);
}

/*
 * A follower's frame: when no io_uring send is in flight, write it with
 * one non-blocking sendmsg rather than waking the driver; whatever the
 * socket does not take goes out through the ring. Lock held.
 */
static void ut_follower_send(struct ut_conn *c)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	unsigned head;
	bool done = false;
	ssize_t n;

	if (!c->sq.fill_len)
		return;
	if (c->sq.inflight) {
		/*
		 * The driver's send usually completed inside its
		 * io_uring_enter, which still waits for the reply. Its CQE
		 * shows whether all of it went: then the socket is ours
		 * (the driver accounts the CQE later). If not, wake the
		 * driver so it queues our frame when the send ends.
		 */
		io_uring_for_each_cqe(&c->ring, head, cqe) {
			if (UT_UD_KIND(cqe->user_data) == UT_UD_SEND) {
				done = cqe->res >= 0 &&
				       (uint32_t)cqe->res ==
				       c->sq.fly_len - c->sq.fly_off;
				break;
			}
		}
		if (!done) {
			sqe = io_uring_get_sqe(&c->ring);
			if (sqe) {
				io_uring_prep_nop(sqe);
				io_uring_sqe_set_data64(sqe,
							UT_UD(UT_UD_NOP, 0));
				ut_submit_now(c);
			}
			return;
		}
	}
	ut_count(&c->n_other);
	n = send(c->fd, c->sq.fill, c->sq.fill_len,
		 MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n > 0) {
		/* Every frame queued may have reached the peer now (the
		 * rest of a partial one follows through the ring): none of
		 * them may be sent again after a break (ut_break). */
		c->flown = c->appended;
		memmove(c->sq.fill, c->sq.fill + n, c->sq.fill_len - n);
		c->sq.fill_len -= (uint32_t)n;
	}
	if (!c->sq.fill_len)
		return;
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		return;	/* the receive side reports the broken socket */
	ut_start_send(c);
}

/*
 * A receive's completions run as task work on the thread that armed it,
 * and for a ring without DEFER_TASKRUN the kernel delivers that work as a
 * notification signal (TIF_NOTIFY_SIGNAL). Back in the application, such a
 * thread has its own blocking system calls that have a timeout (recv with
 * SO_RCVTIMEO, epoll_wait) fail with EINTR whenever another thread's reply
 * arrives. So a caller leaving its last call on this connection ends the
 * receive it armed, and waits here for the end, so that the cancellation's
 * task work runs now, not later; the next driver arms a new receive. If
 * another thread drives, submitting the cancel is all we can do: its task
 * work runs on our way back from that system call. Lock held.
 */
static void ut_release_recv(struct ut_conn *c)
{
	struct io_uring_getevents_arg arg;
	struct __kernel_timespec ts = { .tv_nsec = 10000000 };
	struct io_uring_sqe *sqe;
	int round;
	unsigned n;

	for (round = 0; round < 4; round++) {
		if (!c->up || c->shutdown || !c->recv_armed ||
		    c->recv_owner != ut_gettid())
			break;
		if (!c->recv_cancelling) {
			sqe = io_uring_get_sqe(&c->ring);
			if (!sqe)
				break;
			io_uring_prep_cancel64(sqe, UT_UD(UT_UD_RECV, 0), 0);
			io_uring_sqe_set_data64(sqe, UT_UD(UT_UD_CANCEL, 0));
			c->recv_cancelling = true;
		}
		n = ut_flush_sq(&c->ring);
		if (c->driving) {
			/* Also submits what the driver flushed but has not
			 * entered with yet (a cancel of its own, say). */
			ut_enter(c, n, 0, 0, NULL, _NSIG / 8);
			break;
		}
		c->driving = true;
		memset(&arg, 0, sizeof(arg));
		arg.ts = (uint64_t)(uintptr_t)&ts;
		pthread_mutex_unlock(&c->lock);
		ut_enter(c, n, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
			 &arg, sizeof(arg));
		pthread_mutex_lock(&c->lock);
		ut_reap(c);
		/* As at the end of a drive: a resubmitted short send and
		 * frames queued meanwhile must not wait for the next driver. */
		if (c->up) {
			ut_submit_now(c);
			ut_start_send(c);
		}
		c->driving = false;
		ut_wake_done(c);
	}
}

/* Requests on this socket whose replies have not been read yet. */
static uint64_t ut_outstanding(const struct ut_conn *c)
{
	uint64_t sent = c->flown > c->wire_base ? c->flown - c->wire_base : 0;

	return c->replies < sent ? sent - c->replies : 0;
}

/*
 * The owner leaves its last call: may it leave the receive armed? Yes
 * when nothing more can arrive for anyone, that is, it was the only
 * caller, nothing is queued or sent, and every request sent on this
 * socket has its reply: the receive then completes only for the peer's
 * FIN or reset (or garbage), once, and that completion is the next
 * call's check for a closed peer (ut_idle_check), for free. Re-arming it
 * and ending it around every call cost an io_uring_enter each. Anything
 * else may bring replies for other callers, whose task work would
 * interrupt this thread outside the plugin for each one
 * (ut_release_recv). Lock held.
 */
static bool ut_keep_recv(struct ut_conn *c)
{
	if (!c->up || c->shutdown || !c->recv_armed || c->recv_cancelling ||
	    c->recv_owner != ut_gettid() || c->callers != 1 || c->driving ||
	    c->nqueued || c->sq.inflight || c->sq.fill_len ||
	    ut_outstanding(c))
		return false;
	c->recv_parked = true;
	return true;
}

/*
 * Before the first frame on an idle connection: has the peer closed it
 * (its FIN or a reset is here)? Then redial before sending, not after,
 * since a frame that left cannot be sent again. With the receive left
 * armed (ut_keep_recv), that end is a completion in the ring already
 * (the receive's task work runs as soon as the peer's FIN arrives):
 * looking at the CQ costs no system call. Without one, ask the socket.
 * Lock held, nobody driving.
 */
static void ut_idle_check(struct ut_conn *c)
{
	if (c->recv_armed && !c->recv_cancelling &&
	    io_uring_cq_ready(&c->ring)) {
		c->driving = true;
		ut_reap(c);
		c->driving = false;
		ut_wake_done(c);
	}
	/* Still armed by this thread: it reports the close. Armed by
	 * another, it may end at any moment without one (its owner exits,
	 * and the kernel ends it with -ECANCELED instead of running it, FIN
	 * or not), maybe after the look at the CQ above: ask the socket. */
	if (!c->up || c->driving ||
	    (c->recv_armed && !c->recv_cancelling &&
	     c->recv_owner == ut_gettid()))
		return;
	if (ut_peer_closed(c))
		ut_break(c, -ECONNRESET);
}

/* --- slots --------------------------------------------------------------- */

static int ut_slot_get(struct ut_conn *c, int64_t deadline_ns, uint32_t *out)
{
	struct timespec ts;
	int r;

	while (!c->nfree) {
		if (c->shutdown)
			return -ESHUTDOWN;
		ut_ts_from_ns(&ts, deadline_ns);
		c->slot_waiters++;
		r = pthread_cond_timedwait(&c->slot_cv, &c->lock, &ts);
		c->slot_waiters--;
		if (r == ETIMEDOUT && !c->nfree)
			return -ETIMEDOUT;
	}
	*out = c->freelist[--c->nfree];
	return 0;
}

static void ut_slot_put(struct ut_conn *c, uint32_t i)
{
	struct ut_slot *s = &c->slots[i];

	ut_wlist_del(c, i);
	if (s->state == UT_S_WAIT && s->queued && c->nqueued)
		c->nqueued--;
	if (c->cur == i)
		c->cur = UT_NIL;	/* a late reply is read and dropped */
	s->state = UT_S_FREE;
	s->id = 0;
	c->freelist[c->nfree++] = i;
	if (c->slot_waiters)
		pthread_cond_signal(&c->slot_cv);
}

/* --- ops ----------------------------------------------------------------- */

int ut_call(struct pm_tconn *cc, const struct pm_msg *req, struct pm_msg *rep,
	    int64_t deadline_ns)
{
	struct ut_conn *c = (struct ut_conn *)cc;
	struct pm_frame_hdr h;
	struct iovec iov[3];
	struct timespec ts;
	struct ut_slot *s;
	bool redialed = false;
	uint32_t i;
	int r;

	if (!c || !req || !rep)
		return -EINVAL;
	if (req->msg_len > PM_MSG_MAX || req->payload_len > PM_PAYLOAD_MAX ||
	    (req->msg_len && !req->msg) ||
	    (req->payload_len && !req->payload) ||
	    (rep->msg_cap && !rep->msg) || (rep->payload_cap && !rep->payload))
		return -EINVAL;

	pthread_mutex_lock(&c->lock);
	if (c->shutdown) {
		pthread_mutex_unlock(&c->lock);
		return -ESHUTDOWN;
	}
	ut_count(&c->n_calls);
	c->callers++;
	r = ut_slot_get(c, deadline_ns, &i);
	if (r)
		goto out;
	s = &c->slots[i];
	s->msg = rep->msg;
	s->msg_cap = rep->msg_cap;
	s->pay = rep->payload;
	s->pay_cap = rep->payload_cap;
	s->state = UT_S_WAIT;
	s->queued = false;
	s->broke = false;
	s->tid = ut_gettid();
	if (s->tid == c->recv_owner) {
		c->owner_calls++;
		c->recv_parked = false;
	}

	for (;;) {
		if (s->state == UT_S_DONE) {
			/* The connection broke before the frame left:
			 * redial and send it again, once. */
			if (s->broke && !redialed && !c->shutdown) {
				s->state = UT_S_WAIT;
				s->queued = false;
				s->broke = false;
				continue;
			}
			r = s->status;
			break;
		}
		if (c->shutdown) {
			r = -ESHUTDOWN;
			break;
		}
		if (pm_now_ns() >= deadline_ns) {
			r = -ETIMEDOUT;
			break;
		}
		if (!s->queued) {
			/* A peer that closed while we were idle (its FIN is
			 * here): redial before sending, not after, since a
			 * frame that left cannot be sent again. */
			if (c->up && !c->driving && !c->nqueued)
				ut_idle_check(c);
			if (!c->up) {
				if (c->driving)
					goto sleep;
				if (redialed) {
					r = -ECONNRESET;
					break;
				}
				redialed = true;
				r = ut_redial(c, deadline_ns);
				if (r) {
					r = r == -ETIMEDOUT ? -ETIMEDOUT :
					    -ECONNRESET;
					break;
				}
				continue;
			}
			s->gen++;
			s->id = ((uint64_t)s->gen << 32) | i;
			pm_frame_encode(&h, PM_FRAME_REQ, s->id, 0,
					req->msg_len, req->payload_len);
			iov[0] = (struct iovec){ &h, PM_FRAME_HDR_LEN };
			iov[1] = (struct iovec){ req->msg, req->msg_len };
			iov[2] = (struct iovec){ req->payload,
						 req->payload_len };
			r = ut_sendq_append(&c->sq, iov, 3);
			if (r)
				break;
			s->queued = true;
			s->qseq = ++c->appended;
			c->nqueued++;
		}
		if (!c->driving) {
			ut_drive(c, s, deadline_ns);
			continue;
		}
		if (!c->drive_capped || c->nqueued <= UT_BATCH_MIN)
			ut_follower_send(c);
sleep:
		ut_wlist_add(c, i);
		ut_ts_from_ns(&ts, deadline_ns);
		pthread_cond_timedwait(&s->cv, &c->lock, &ts);
		ut_wlist_del(c, i);
	}
	if (r == 0) {
		rep->msg_len = s->msg_len;
		rep->payload_len = s->pay_len;
	}
	if (s->tid == c->recv_owner) {
		if (c->owner_calls)
			c->owner_calls--;
		c->owner_seen_ns = pm_now_ns();
	}
	ut_slot_put(c, i);
	if (!c->owner_calls && !ut_keep_recv(c))
		ut_release_recv(c);
out:
	c->callers--;
	ut_handoff(c);
	if (c->shutdown && !c->callers)
		pthread_cond_broadcast(&c->idle_cv);
	pthread_mutex_unlock(&c->lock);
	return r;
}

int ut_connect(struct pm_tctx *tc, const char *endpoint, int64_t deadline_ns,
	       struct pm_tconn **out)
{
	struct ut_tctx *t = (struct ut_tctx *)tc;
	pthread_mutexattr_t ma;
	pthread_condattr_t ca;
	struct ut_conn *c;
	char err[PM_ENDPOINT_MAX + 128];
	uint32_t i;
	int r;

	if (!t || !endpoint || !out)
		return -EINVAL;
	if (strlen(endpoint) >= PM_ENDPOINT_MAX) {
		ut_log(t, PM_LOG_ERROR, "endpoint too long");
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->t = t;
	c->fd = -1;
	strcpy(c->ep, endpoint);
	r = pm_net_parse(endpoint, &c->ss, &c->sslen, err, sizeof(err));
	if (r < 0) {
		ut_log(t, PM_LOG_ERROR, "connect: %s", err);
		free(c);
		return r;
	}
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->idle_cv, &ca);
	pthread_cond_init(&c->slot_cv, &ca);
	for (i = 0; i < UT_MAX_SLOTS; i++) {
		pthread_cond_init(&c->slots[i].cv, &ca);
		c->freelist[i] = UT_MAX_SLOTS - 1 - i;
	}
	pthread_condattr_destroy(&ca);
	c->nfree = UT_MAX_SLOTS;
	/* Hold times are short (a reap, a memcpy): spin a little before
	 * sleeping in the kernel, which costs a context switch. */
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_init(&c->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	c->whead = c->wtail = UT_NIL;
	c->cur = UT_NIL;

	r = ut_open(c, deadline_ns);
	if (r < 0) {
		ut_log(t, PM_LOG_INFO, "connect %s: %s", endpoint,
		       strerror(-r));
		goto err;
	}
	c->up = true;
	pthread_mutex_lock(&t->lock);
	c->next = t->conns;
	t->conns = c;
	pthread_mutex_unlock(&t->lock);
	*out = (struct pm_tconn *)c;
	return 0;
err:
	for (i = 0; i < UT_MAX_SLOTS; i++)
		pthread_cond_destroy(&c->slots[i].cv);
	pthread_cond_destroy(&c->idle_cv);
	pthread_cond_destroy(&c->slot_cv);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return r;
}

/* Fail every call with -ESHUTDOWN, wait for the callers to leave, free. */
static void ut_conn_destroy(struct ut_conn *c)
{
	struct io_uring_sqe *sqe;
	struct timespec ts;
	int64_t deadline = pm_now_ns() + 10 * 1000000000LL;
	uint32_t i;

	pthread_mutex_lock(&c->lock);
	c->shutdown = true;
	if (c->driving && c->up) {
		/* Wake the driver out of io_uring_enter. */
		sqe = io_uring_get_sqe(&c->ring);
		if (sqe) {
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, UT_UD(UT_UD_NOP, 0));
			ut_submit_now(c);
		}
	}
	ut_wake_all(c);
	pthread_cond_broadcast(&c->slot_cv);
	while (c->callers) {
		ut_ts_from_ns(&ts, deadline);
		if (pthread_cond_timedwait(&c->idle_cv, &c->lock, &ts) ==
		    ETIMEDOUT && c->callers) {
			/* Freeing memory a caller still uses is worse than
			 * leaking it. */
			ut_log(c->t, PM_LOG_ERROR,
			       "disconnect %s: %u calls did not return in 10 s; leaking the connection",
			       c->ep, c->callers);
			pthread_mutex_unlock(&c->lock);
			return;
		}
	}
	ut_teardown(c);
	pthread_mutex_unlock(&c->lock);
	/* The bench's "io_uring_enter per call" row parses this line. */
	ut_log(c->t, PM_LOG_DEBUG,
	       "disconnect %s: %" PRIu64 " calls, %" PRIu64
	       " io_uring_enter, %" PRIu64 " other system calls (poll, send)",
	       c->ep, c->n_calls, c->n_enter, c->n_other);
	for (i = 0; i < UT_MAX_SLOTS; i++)
		pthread_cond_destroy(&c->slots[i].cv);
	pthread_cond_destroy(&c->idle_cv);
	pthread_cond_destroy(&c->slot_cv);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void ut_disconnect(struct pm_tconn *cc)
{
	struct ut_conn *c = (struct ut_conn *)cc, **pp;

	if (!c)
		return;
	pthread_mutex_lock(&c->t->lock);
	for (pp = &c->t->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	pthread_mutex_unlock(&c->t->lock);
	ut_conn_destroy(c);
}

void ut_client_fini(struct ut_tctx *t)
{
	struct ut_conn *c;

	for (;;) {
		pthread_mutex_lock(&t->lock);
		c = t->conns;
		if (c)
			t->conns = c->next;
		pthread_mutex_unlock(&t->lock);
		if (!c)
			break;
		ut_conn_destroy(c);
	}
}
