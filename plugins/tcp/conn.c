// SPDX-License-Identifier: MIT
/*
 * Outgoing connections of the TCP transport: many threads call at once;
 * the caller that finds no one reading becomes the reader (leader/follower),
 * so a lone caller sends and reads its own reply with no thread hand-off.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "tt.h"

int tt_sock_setup(int fd, struct tt_base *base)
{
	struct timeval tv = {
		.tv_sec = TT_RCVTIMEO_NS / 1000000000,
		.tv_usec = TT_RCVTIMEO_NS % 1000000000 / 1000,
	};
	int fl;

	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	/* Once per dial, so that calls themselves make no extra system call;
	 * without the counters, calls fall back to probing before they send. */
	base->probe = tt_tcp_counts(fd, &base->acked, &base->received) < 0;
	return 0;
}

int tt_check_msg(const struct pm_msg *m)
{
	if (!m)
		return 0;
	if (m->msg_len > PM_MSG_MAX || m->payload_len > PM_PAYLOAD_MAX)
		return -EMSGSIZE;
	if ((m->msg_len && !m->msg) || (m->payload_len && !m->payload))
		return -EINVAL;
	return 0;
}

static void tt_link(struct pm_tconn *c, struct tt_call *call)
{
	call->prev = NULL;
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
}

static void tt_unlink(struct pm_tconn *c, struct tt_call *call)
{
	if (call->prev)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	call->next = NULL;
	call->prev = NULL;
}

/* Finish call with status and wake it (it may be the caller itself). */
static void tt_complete_locked(struct pm_tconn *c, struct tt_call *call,
			       int status)
{
	tt_unlink(c, call);
	call->status = status;
	call->done = true;
	pthread_cond_signal(&call->cond);
}

static void tt_fail_all_locked(struct pm_tconn *c, int status)
{
	while (c->calls)
		tt_complete_locked(c, c->calls, status);
}

/*
 * No one reads: hand the reader role to a caller blocked waiting. Not to
 * one still sending: its replies cannot be due yet, and while it sends,
 * replies for the others would sit unread (with large messages the peer
 * then stops reading our requests, and sender and peer wait on each
 * other). A caller that finishes sending takes the role itself.
 */
static void tt_pass_reader_locked(struct pm_tconn *c)
{
	struct tt_call *call;

	if (c->reader || c->broken || c->shutdown)
		return;
	for (call = c->calls; call; call = call->next) {
		if (call->waiting) {
			pthread_cond_signal(&call->cond);
			return;
		}
	}
}

/*
 * How many bytes of our stream on c->fd the peer can have taken in before
 * it closed, or TT_TOOK_UNKNOWN when that cannot be told. Called by the
 * reader that met the end of the stream (recv gave 0 or an error), so it
 * has read every byte the peer sent before its FIN.
 *
 * Why this is sound (Linux TCP, checked on 6.18): a peer only acts on a
 * request it has read, and it reads only bytes that reached its socket
 * before it closed it. When it closes (close(), or shutdown(SHUT_RDWR) as
 * our listener does), its FIN carries in its ACK field everything that had
 * reached it, and our stack applies that ACK to tcpi_bytes_acked before it
 * queues the FIN, so before recv() can return 0. Bytes arriving after the
 * close are answered with a RST that acknowledges nothing (a RST sent in
 * reply to a segment carrying ACK has no ACK of its own), so they never
 * count. Hence, once we have seen its FIN, a frame ending beyond
 * tcpi_bytes_acked was not whole at the peer when it closed: it never
 * acted on it, and it may be sent again. This is what a peer that closed
 * (or restarted) while we were idle looks like to the next call.
 *
 * Without a FIN there is no such bound: a peer that read a request and
 * closed with later bytes unread resets the connection, and the ACK of
 * the request may ride only on that RST, which our stack never applies.
 * So a FIN must have been seen; it takes one sequence number, which
 * tcpi_bytes_received counts on top of the data bytes we have read.
 */
static uint64_t tt_peer_took_locked(struct pm_tconn *c)
{
	uint64_t acked, received;

	if (c->base.probe || tt_tcp_counts(c->fd, &acked, &received) < 0)
		return TT_TOOK_UNKNOWN;
	if (received - c->base.received != c->rx_bytes + 1)
		return TT_TOOK_UNKNOWN;	/* reset, no FIN seen */
	return acked - c->base.acked;
}

/*
 * The socket of generation gen is dead: fail every call in flight on it at
 * once with -ECONNRESET, and shut it down so a reader or sender blocked on
 * it returns. The next call() redials. eos: the caller is the reader and
 * met the end of the stream; then each call learns how much of the stream
 * the peer can have taken in, and one whose frame lies beyond resends it.
 */
static void tt_break_locked(struct pm_tconn *c, uint64_t gen, int err,
			    const char *what, bool eos)
{
	struct tt_call *call;
	uint64_t took;

	if (c->shutdown || c->broken || c->gen != gen)
		return;
	c->broken = true;
	/* Before our shutdown() below: it sends a FIN of ours. */
	took = eos ? tt_peer_took_locked(c) : TT_TOOK_UNKNOWN;
	for (call = c->calls; call; call = call->next)
		call->peer_took = took;
	if (err == -ECONNRESET)
		tt_log(c->t, PM_LOG_WARN, "connection to %s lost: %s",
		       c->peer, what);
	else
		tt_log(c->t, PM_LOG_WARN, "connection to %s lost: %s: %s",
		       c->peer, what, strerror(-err));
	tt_fail_all_locked(c, -ECONNRESET);
	shutdown(c->fd, SHUT_RDWR);
	pthread_cond_broadcast(&c->state_cv);
}

/* Wait on cv until deadline_ns: 0 when woken (maybe spuriously),
 * -ETIMEDOUT once it has passed. */
static int tt_wait_locked(pthread_cond_t *cv, pthread_mutex_t *m,
			  int64_t deadline_ns)
{
	struct timespec ts = tt_ts(deadline_ns);
	int r;

	r = pthread_cond_timedwait(cv, m, &ts);
	if (r == ETIMEDOUT || (r == 0 && pm_now_ns() >= deadline_ns))
		return -ETIMEDOUT;
	return 0;
}

/*
 * Dial the peer again and swap the new socket in. Called with c->lock held
 * and c->broken set; drops the lock while dialling.
 */
static int tt_redial_locked(struct pm_tconn *c, int64_t deadline_ns)
{
	struct tt_base base;
	int fd = -1, old, r;

	c->redialling = true;
	pthread_mutex_unlock(&c->lock);
	r = pm_net_dial((struct sockaddr *)&c->sa, c->salen, deadline_ns,
			c->cancel_efd, &fd);
	if (r == 0)
		r = tt_sock_setup(fd, &base);
	pthread_mutex_lock(&c->lock);
	/* The reader of the dead socket leaves promptly: it was shut down. */
	while (r == 0 && c->reader && !c->shutdown)
		r = tt_wait_locked(&c->state_cv, &c->lock, deadline_ns);
	if (r == 0 && !c->shutdown) {
		/* No new reader can start while broken; take send_lock so no
		 * sender is using the old fd when it is closed. */
		pthread_mutex_unlock(&c->lock);
		pthread_mutex_lock(&c->send_lock);
		pthread_mutex_lock(&c->lock);
		if (!c->shutdown) {
			old = c->fd;
			c->fd = fd;
			fd = -1;
			c->base = base;
			c->tx_bytes = 0;
			c->rx_bytes = 0;
			c->gen++;
			tt_rx_reset(&c->rx);
			c->broken = false;
			close(old);
		}
		pthread_mutex_unlock(&c->send_lock);
	}
	if (c->shutdown || r == -ECANCELED)
		r = -ESHUTDOWN;
	if (fd >= 0)
		close(fd);
	c->redialling = false;
	pthread_cond_broadcast(&c->state_cv);
	/* Every call redials a dead peer once: say so once per outage. */
	if (r == 0) {
		tt_log(c->t, PM_LOG_INFO, "reconnected to %s", c->peer);
		c->redial_failing = false;
	} else if (r != -ESHUTDOWN) {
		tt_log(c->t, c->redial_failing ? PM_LOG_DEBUG : PM_LOG_WARN,
		       "redial to %s failed: %s", c->peer, strerror(-r));
		c->redial_failing = true;
	}
	return r;
}

/*
 * Make c usable for a new call: 0, or -ESHUTDOWN, -ETIMEDOUT, -ECONNRESET
 * (the peer is gone and this call already spent its one redial).
 */
static int tt_ready_locked(struct pm_tconn *c, int64_t deadline_ns,
			   bool *redialled)
{
	int r;

	for (;;) {
		if (c->shutdown)
			return -ESHUTDOWN;
		if (!c->broken)
			return 0;
		if (c->redialling) {
			r = tt_wait_locked(&c->state_cv, &c->lock, deadline_ns);
			if (r < 0)
				return r;
			continue;
		}
		if (*redialled)
			return -ECONNRESET;
		*redialled = true;
		r = tt_redial_locked(c, deadline_ns);
		if (r == -ETIMEDOUT || r == -ESHUTDOWN)
			return r;
		if (r < 0)
			return -ECONNRESET;
	}
}

/* Hand the reply in h/body to the call waiting for it; replies nobody
 * waits for (that call timed out) are dropped. */
static void tt_deliver_locked(struct pm_tconn *c, const struct pm_frame_hdr *h,
			      const uint8_t *body)
{
	struct tt_call *call;
	struct pm_msg *rep;
	int status = h->status;

	for (call = c->calls; call; call = call->next)
		if (call->id == h->id)
			break;
	if (!call)
		return;
	rep = call->rep;
	if (h->msg_len > (rep ? rep->msg_cap : 0) ||
	    h->payload_len > (rep ? rep->payload_cap : 0)) {
		status = -EMSGSIZE;
	} else if (rep) {
		if (h->msg_len)
			memcpy(rep->msg, body, h->msg_len);
		if (h->payload_len)
			memcpy(rep->payload, body + h->msg_len,
			       h->payload_len);
		rep->msg_len = h->msg_len;
		rep->payload_len = h->payload_len;
	}
	tt_complete_locked(c, call, status);
}

/*
 * As the reader, read and dispatch frames until me is done (its reply came,
 * it timed out, or the socket broke). Called and returns with c->lock held.
 */
static void tt_read_locked(struct pm_tconn *c, struct tt_call *me,
			   uint64_t gen, int64_t deadline_ns)
{
	struct pm_frame_hdr h;
	const uint8_t *body;
	const char *bad = NULL;
	ssize_t n;
	int r;

	for (;;) {
		while ((r = tt_rx_next(&c->rx, &h, &body, &bad)) == 1) {
			if (h.kind != PM_FRAME_REP) {
				bad = "kind (a request to a caller)";
				r = -EPROTO;
				break;
			}
			tt_deliver_locked(c, &h, body);
		}
		if (r < 0) {
			tt_log(c->t, PM_LOG_ERROR,
			       "bad frame from %s: header field %s is invalid (magic 0x%08x kind %u rsvd %u msg_len %u payload_len %u status %d); closing the connection",
			       c->peer, bad, h.magic, h.kind, h.rsvd,
			       h.msg_len, h.payload_len, h.status);
			tt_break_locked(c, gen, -EPROTO, "bad frame", false);
		}
		if (!me->done && (c->broken || c->shutdown))
			tt_complete_locked(c, me, c->shutdown ? -ESHUTDOWN :
					   -ECONNRESET);
		if (me->done)
			return;
		pthread_mutex_unlock(&c->lock);
		n = tt_rx_fill(&c->rx, c->fd, deadline_ns, TT_RX_DEADLINE);
		pthread_mutex_lock(&c->lock);
		if (n > 0) {
			c->rx_bytes += (uint64_t)n;
			continue;
		}
		if (n == -ETIMEDOUT) {
			if (!me->done)
				tt_complete_locked(c, me, -ETIMEDOUT);
			return;
		}
		tt_break_locked(c, gen, (int)n, n == -ECONNRESET ?
				"the peer closed it" : "recv", true);
		if (!me->done)
			tt_complete_locked(c, me, c->shutdown ? -ESHUTDOWN :
					   -ECONNRESET);
		return;
	}
}

/*
 * Lock m, waiting at most until deadline_ns. timedlock takes CLOCK_REALTIME,
 * so the time left is carried over (pthread_mutex_clocklock would not need
 * that, but thread sanitizers do not know it).
 */
static int tt_lock_until(pthread_mutex_t *m, int64_t deadline_ns)
{
	struct timespec ts;
	int64_t left;

	if (pthread_mutex_trylock(m) == 0)
		return 0;
	left = deadline_ns - pm_now_ns();
	if (left <= 0)
		return -ETIMEDOUT;
	clock_gettime(CLOCK_REALTIME, &ts);
	left += ts.tv_nsec;
	ts.tv_sec += left / 1000000000;
	ts.tv_nsec = left % 1000000000;
	return -pthread_mutex_timedlock(m, &ts);
}

/*
 * Send me's request unless the socket it was registered on has been
 * replaced. *none_sent tells whether the peer can have seen any of it;
 * *end is the socket's byte count up to the end of the frame once it is
 * all written, else 0.
 */
static int tt_send(struct pm_tconn *c, uint64_t gen, uint64_t id,
		   const struct pm_msg *req, int64_t deadline_ns,
		   bool *none_sent, uint64_t *end)
{
	struct pm_frame_hdr h;
	struct iovec iov[3];
	size_t len;
	int r;

	*none_sent = true;
	*end = 0;
	r = tt_lock_until(&c->send_lock, deadline_ns);
	if (r)
		return r;
	if (c->gen != gen) {
		/* Broken and redialled since: the break failed this call. */
		pthread_mutex_unlock(&c->send_lock);
		return -ECONNRESET;
	}
	pm_frame_encode(&h, PM_FRAME_REQ, id, 0, req ? req->msg_len : 0,
			req ? req->payload_len : 0);
	iov[0] = (struct iovec){ &h, PM_FRAME_HDR_LEN };
	iov[1] = (struct iovec){ req ? req->msg : NULL,
				 req ? req->msg_len : 0 };
	iov[2] = (struct iovec){ req ? req->payload : NULL,
				 req ? req->payload_len : 0 };
	len = PM_FRAME_HDR_LEN + iov[1].iov_len + iov[2].iov_len;
	r = pm_net_writev_all(c->fd, iov, 3, deadline_ns);
	*none_sent = iov[0].iov_len == PM_FRAME_HDR_LEN;
	/* writev_all advanced iov past what went out */
	c->tx_bytes += len - iov[0].iov_len - iov[1].iov_len - iov[2].iov_len;
	if (r == 0)
		*end = c->tx_bytes;
	pthread_mutex_unlock(&c->send_lock);
	return r;
}

int tt_call(struct pm_tconn *c, const struct pm_msg *req, struct pm_msg *rep,
	    int64_t deadline_ns)
{
	struct tt_call me = { .rep = rep };
	bool redialled = false, reader, none_sent;
	uint64_t gen, end;
	ssize_t n;
	int r;

	r = tt_check_msg(req);
	if (r)
		return r;
	/* The reader copies into rep from its own thread: check it now. */
	if (rep && ((rep->msg_cap && !rep->msg) ||
		    (rep->payload_cap && !rep->payload)))
		return -EINVAL;
	if (pm_now_ns() >= deadline_ns)
		return -ETIMEDOUT;
	pthread_cond_init(&me.cond, &c->t->condattr);

	pthread_mutex_lock(&c->lock);
	c->users++;
again:
	r = tt_ready_locked(c, deadline_ns, &redialled);
	if (r)
		goto out;
	me.id = c->next_id++;
	me.done = false;
	me.waiting = false;
	me.status = 0;
	me.end = 0;
	me.peer_took = TT_TOOK_UNKNOWN;
	tt_link(c, &me);
	gen = c->gen;
	reader = false;
	if (c->base.probe && !c->reader && !me.next) {
		/*
		 * Idle connection on a socket without TCP_INFO counters: read
		 * first, without waiting. A peer that closed while we were
		 * idle (restarted) shows as end of stream now, before this
		 * request can be lost to it, so the call redials instead of
		 * failing. With the counters, the reply wait finds that out
		 * instead (tt_peer_took_locked), one system call cheaper.
		 */
		c->reader = true;
		reader = true;
		pthread_mutex_unlock(&c->lock);
		n = tt_rx_fill(&c->rx, c->fd, 0, TT_RX_NOWAIT);
		pthread_mutex_lock(&c->lock);
		if (n > 0)
			c->rx_bytes += (uint64_t)n;
		if (n < 0 && n != -ETIMEDOUT) {
			tt_break_locked(c, gen, (int)n, n == -ECONNRESET ?
					"the peer closed it" : "recv", false);
			if (!me.done)
				tt_complete_locked(c, &me, -ECONNRESET);
			c->reader = false;
			pthread_cond_broadcast(&c->state_cv);
			if (!c->shutdown && !redialled)
				goto again;
			r = c->shutdown ? -ESHUTDOWN : -ECONNRESET;
			goto out;
		}
		/* Calls that came meanwhile may send before us: let one of
		 * them read while we send (we take the role back after). */
		c->reader = false;
		reader = false;
		tt_pass_reader_locked(c);
	}
	pthread_mutex_unlock(&c->lock);

	r = tt_send(c, gen, me.id, req, deadline_ns, &none_sent, &end);

	pthread_mutex_lock(&c->lock);
	me.end = end;
	if (r < 0 && !me.done) {
		if (none_sent)
			tt_complete_locked(c, &me, r == -ETIMEDOUT ?
					   -ETIMEDOUT : -ECONNRESET);
		else
			/* Part of a frame went out: the stream is out of
			 * step and must not carry another frame. */
			tt_complete_locked(c, &me, r);
		if (r != -ETIMEDOUT || !none_sent)
			tt_break_locked(c, gen, r, "send", false);
	}
	if (r < 0 && r != -ETIMEDOUT && none_sent && !redialled &&
	    !c->shutdown)
		goto again;	/* the peer saw none of it: redial, resend */

	while (!me.done) {
		if (!reader && !c->reader && !c->broken && !c->shutdown) {
			c->reader = true;
			reader = true;
		}
		if (reader) {
			tt_read_locked(c, &me, gen, deadline_ns);
			continue;
		}
		me.waiting = true;
		r = tt_wait_locked(&me.cond, &c->lock, deadline_ns);
		me.waiting = false;
		if (r < 0 && !me.done)
			tt_complete_locked(c, &me, -ETIMEDOUT);
	}
	if (reader) {
		c->reader = false;
		if (c->broken)
			pthread_cond_broadcast(&c->state_cv);
	}
	r = me.status;
	/*
	 * A break before the peer can have taken our whole frame: it never
	 * acted on it (see tt_peer_took_locked), so redial and send it once
	 * more. end is 0 unless the frame went out whole and peer_took is
	 * TT_TOOK_UNKNOWN unless the break could tell: either fails the call.
	 */
	if (r == -ECONNRESET && me.end > me.peer_took && !redialled &&
	    !c->shutdown)
		goto again;
out:
	tt_pass_reader_locked(c);
	c->users--;
	if (c->shutdown && c->users == 0)
		pthread_cond_broadcast(&c->state_cv);
	pthread_mutex_unlock(&c->lock);
	pthread_cond_destroy(&me.cond);
	return r;
}

int tt_connect(struct pm_tctx *t, const char *endpoint, int64_t deadline_ns,
	       struct pm_tconn **out)
{
	struct pm_tconn *c;
	char err[PM_ENDPOINT_MAX + 128];
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->t = t;
	c->fd = -1;
	c->next_id = 1;
	r = pm_net_parse(endpoint, &c->sa, &c->salen, err, sizeof(err));
	if (r) {
		tt_log(t, PM_LOG_ERROR, "connect: %s", err);
		goto err_free;
	}
	pm_net_format((struct sockaddr *)&c->sa, c->peer, sizeof(c->peer));
	r = tt_rx_init(&c->rx);
	if (r)
		goto err_free;
	c->cancel_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->cancel_efd < 0) {
		r = -errno;
		goto err_rx;
	}
	r = pm_net_dial((struct sockaddr *)&c->sa, c->salen, deadline_ns, -1,
			&c->fd);
	if (r == 0) {
		r = tt_sock_setup(c->fd, &c->base);
		if (r)
			close(c->fd);
	}
	if (r) {
		/* The caller gets r and may retry at its pace (start-up
		 * dials peers that are not up yet): no warning here. */
		tt_log(t, PM_LOG_DEBUG, "connect to %s: %s", c->peer,
		       strerror(-r));
		goto err_efd;
	}
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->state_cv, &t->condattr);

	pthread_mutex_lock(&t->lock);
	c->next = t->conns;
	t->conns = c;
	pthread_mutex_unlock(&t->lock);
	*out = c;
	return 0;

err_efd:
	close(c->cancel_efd);
err_rx:
	tt_rx_free(&c->rx);
err_free:
	free(c);
	return r;
}

void tt_disconnect(struct pm_tconn *c)
{
	struct pm_tctx *t = c->t;
	struct pm_tconn **pp;
	uint64_t one = 1;
	int64_t deadline;

	pthread_mutex_lock(&c->lock);
	c->shutdown = true;
	tt_fail_all_locked(c, -ESHUTDOWN);
	shutdown(c->fd, SHUT_RDWR);
	if (write(c->cancel_efd, &one, sizeof(one)) < 0)
		tt_log(t, PM_LOG_WARN, "disconnect %s: eventfd: %s", c->peer,
		       strerror(errno));
	pthread_cond_broadcast(&c->state_cv);
	/* Everyone inside call() was woken above and leaves promptly; a
	 * thread still there after seconds is a bug worth a log line. */
	deadline = pm_now_ns() + 5000000000LL;
	while (c->users > 0) {
		if (tt_wait_locked(&c->state_cv, &c->lock, deadline) < 0) {
			tt_log(t, PM_LOG_WARN,
			       "disconnect %s: still waiting for %d calls",
			       c->peer, c->users);
			deadline = pm_now_ns() + 5000000000LL;
		}
	}
	pthread_mutex_unlock(&c->lock);

	pthread_mutex_lock(&t->lock);
	for (pp = &t->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);

	close(c->fd);
	close(c->cancel_efd);
	tt_rx_free(&c->rx);
	pthread_cond_destroy(&c->state_cv);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->send_lock);
	free(c);
}
