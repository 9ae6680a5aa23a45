// SPDX-License-Identifier: MIT
/*
 * Plain TCP transport plugin: the ops table, instance life cycle and the
 * listening side (an accept thread, one receive thread per incoming
 * connection calling the core's handler inline).
 *
 * Settings (transports.tcp.KEY):
 *   listen          "HOST:PORT" or "[V6]:PORT" to accept on; port 0 picks
 *                   a free one. Needed by listen().
 *   advertise       what endpoint() publishes instead of the bound
 *                   address (for a wildcard listen): an address, to
 *                   which the bound port is added, or HOST:PORT as is
 *                   (port 0: the bound one).
 *   send_timeout_ms how long a reply may wait for room in the socket
 *                   before the connection is dropped (5000).
 *   max_conns       most incoming connections served at once (1024), so
 *                   whoever can reach the port cannot use up this node's
 *                   threads and descriptors. At the bound a new
 *                   connection displaces the oldest one that has not yet
 *                   sent its first whole request (a peer sends its HELLO
 *                   as soon as it has dialled, so a slot held silent is
 *                   a flood's); only when none is left is it closed as
 *                   soon as it is accepted. Peers need (nodes - 1) x
 *                   (1 + pager.threads).
 *   handshake_timeout_ms
 *                   how long an incoming connection may take to deliver
 *                   its first whole request, however its bytes trickle
 *                   in, before it is dropped (2000): without it a peer
 *                   that connects and stays silent, or sends half a
 *                   header, holds one of max_conns for ever, and enough
 *                   of them lock out every real peer. A node sends its
 *                   first request (HELLO) as soon as it has dialled.
 *   stall_timeout_ms
 *                   after that first request, how long a frame may go
 *                   without a byte part-way before the connection is
 *                   dropped (60000). Long, because a live peer's frame
 *                   stalls for seconds while TCP retransmits through
 *                   loss (exponential backoff), and dropping it loses
 *                   its requests in flight; it only has to end a peer
 *                   that went away without a FIN, or a slow attacker
 *                   that already got past the first request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "tt.h"

#define TT_VERSION "1.0.0"
#define TT_BACKLOG 128
#define TT_SEND_TIMEOUT_MS 5000
#define TT_MAX_CONNS 1024
#define TT_MAX_CONNS_MAX 65536
#define TT_HANDSHAKE_TIMEOUT_MS 2000
#define TT_STALL_TIMEOUT_MS 60000
#define TT_MS_MAX 3600000

static int tt_probe(const struct pm_host *host, char *why, size_t whylen)
{
	(void)host;
	/* Plain sockets work wherever the core runs. */
	if (why && whylen)
		why[0] = '\0';
	return 0;
}

static int tt_init(const struct pm_host *host, struct pm_tctx **out)
{
	struct pm_tctx *t;
	int64_t ms, maxc, hs, stall;

	if (!host || host->size < offsetof(struct pm_host, cfg_int) +
				  sizeof(host->cfg_int) ||
	    !host->log || !host->cfg_string || !host->cfg_int)
		return -EINVAL;
	if (pm_net_cfg_range(host, "tcp", "send_timeout_ms",
			     TT_SEND_TIMEOUT_MS, 1, TT_MS_MAX, &ms) ||
	    pm_net_cfg_range(host, "tcp", "max_conns", TT_MAX_CONNS, 1,
			     TT_MAX_CONNS_MAX, &maxc) ||
	    pm_net_cfg_range(host, "tcp", "handshake_timeout_ms",
			     TT_HANDSHAKE_TIMEOUT_MS, 1, TT_MS_MAX, &hs) ||
	    pm_net_cfg_range(host, "tcp", "stall_timeout_ms",
			     TT_STALL_TIMEOUT_MS, 1, TT_MS_MAX, &stall))
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->host = host;
	t->send_timeout_ns = ms * 1000000;
	t->handshake_timeout_ns = hs * 1000000;
	t->stall_timeout_ns = stall * 1000000;
	t->max_conns = (int)maxc;
	t->lfd = -1;
	t->stop_efd = -1;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->refs_cv, NULL);
	pthread_condattr_init(&t->condattr);
	pthread_condattr_setclock(&t->condattr, CLOCK_MONOTONIC);
	*out = t;
	return 0;
}

static struct tt_sconn *tt_find_locked(struct pm_tctx *t, uint64_t id)
{
	struct tt_sconn *sc;

	for (sc = t->sconns; sc; sc = sc->next)
		if (sc->id == id)
			return sc;
	return NULL;
}

static void tt_sconn_free(struct tt_sconn *sc)
{
	close(sc->fd);
	tt_rx_free(&sc->rx);
	pthread_mutex_destroy(&sc->send_lock);
	free(sc);
}

/* Join and free incoming connections whose threads have ended. */
static void tt_reap(struct pm_tctx *t)
{
	struct tt_sconn **pp, *sc, *dead = NULL;

	pthread_mutex_lock(&t->lock);
	pp = &t->sconns;
	while ((sc = *pp)) {
		if (sc->finished && sc->refs == 0) {
			*pp = sc->next;
			sc->next = dead;
			dead = sc;
		} else {
			pp = &sc->next;
		}
	}
	pthread_mutex_unlock(&t->lock);
	while ((sc = dead)) {
		dead = sc->next;
		pthread_join(sc->thr, NULL);
		tt_sconn_free(sc);
	}
}

/*
 * Reset an incoming connection whose bytes we threw away (a bad frame), at
 * once and with its descriptor kept: fd is closed only when freed, so no
 * thread can write to a reused one. close() resets a socket holding
 * unread bytes by itself, but shutdown() only sends a FIN, and after
 * SHUT_RD the kernel does not reopen a receive window the peer filled: a
 * peer still writing learns the connection is gone only from a zero-window
 * probe, one RTO later (200 ms at least, doubling each time). The kernel's
 * disconnect, connect(AF_UNSPEC), resets it now.
 */
static void tt_reset(struct pm_tctx *t, struct tt_sconn *sc)
{
	struct sockaddr sa = { .sa_family = AF_UNSPEC };

	if (connect(sc->fd, &sa, sizeof(sa)) < 0)
		tt_log(t, PM_LOG_WARN, "resetting connection %llu from %s: %s",
		       (unsigned long long)sc->id, sc->peer, strerror(errno));
}

/*
 * The wait for the next bytes of sc: until its first request is whole, a
 * deadline handshake_timeout_ns after the accept however the bytes
 * trickle in (a peer sending one byte a second must not hold the slot);
 * then none while no frame is in progress, and stall_timeout_ns from the
 * last bytes while one is: a peer past its first request is one we
 * serve, and its frames stall for seconds while TCP recovers from loss.
 * The wait follows a receive (or the accept), so now is when the last
 * bytes came.
 */
static int64_t tt_recv_deadline(const struct tt_sconn *sc, bool greeted,
				int *mode)
{
	*mode = TT_RX_POLL;
	if (!greeted)
		return sc->accepted_ns + sc->t->handshake_timeout_ns;
	if (tt_rx_pending(&sc->rx))
		return pm_now_ns() + sc->t->stall_timeout_ns;
	/* The cheapest wait: one blocking recv(), which shutdown() ends. */
	*mode = TT_RX_FOREVER;
	return PM_NET_FOREVER;
}

/* Log, once, why sc is dropped for being too slow. */
static void tt_log_slow(struct pm_tctx *t, const struct tt_sconn *sc,
			bool greeted)
{
	const char *name = t->host->name ? t->host->name : "tcp";

	if (!greeted)
		tt_log(t, PM_LOG_WARN,
		       "connection %llu from %s: no whole request within %lld ms of connecting (%u bytes came; transports.%s.handshake_timeout_ms): dropping it",
		       (unsigned long long)sc->id, sc->peer,
		       (long long)(t->handshake_timeout_ns / 1000000),
		       tt_rx_pending(&sc->rx), name);
	else
		tt_log(t, PM_LOG_WARN,
		       "connection %llu from %s: a frame stalled part-way for %lld ms (%u of %u bytes came; transports.%s.stall_timeout_ms): dropping it",
		       (unsigned long long)sc->id, sc->peer,
		       (long long)(t->stall_timeout_ns / 1000000),
		       tt_rx_pending(&sc->rx), sc->rx.need, name);
}

/* Serve one incoming connection until it ends; then on_close, once. */
static void *tt_recv_thread(void *arg)
{
	struct tt_sconn *sc = arg;
	struct pm_tctx *t = sc->t;
	struct pm_frame_hdr h;
	struct pm_request req;
	const uint8_t *body;
	const char *bad = NULL;
	bool reset = false, greeted = false;
	int64_t deadline;
	ssize_t n;
	int r, mode;

	for (;;) {
		while ((r = tt_rx_next(&sc->rx, &h, &body, &bad)) == 1) {
			if (!greeted) {
				/* Not displaced at the bound from now on. */
				pthread_mutex_lock(&t->lock);
				sc->greeted = greeted = true;
				pthread_mutex_unlock(&t->lock);
			}
			if (h.kind != PM_FRAME_REQ) {
				bad = "kind (a reply to a listener)";
				r = -EPROTO;
				break;
			}
			if (__atomic_load_n(&sc->dropping, __ATOMIC_ACQUIRE))
				goto out;
			req = (struct pm_request){
				.conn_id = sc->id,
				.req_id = h.id,
				.msg = body,
				.msg_len = h.msg_len,
				.payload = h.payload_len ? body + h.msg_len :
							   NULL,
				.payload_len = h.payload_len,
				.peer = sc->peer,
			};
			t->lst.on_request(t->lst.arg, &req);
		}
		if (r < 0) {
			tt_log(t, PM_LOG_ERROR,
			       "bad frame from %s (connection %llu): header field %s is invalid (magic 0x%08x kind %u rsvd %u msg_len %u payload_len %u status %d); dropping the connection",
			       sc->peer, (unsigned long long)sc->id, bad,
			       h.magic, h.kind, h.rsvd, h.msg_len,
			       h.payload_len, h.status);
			reset = true;
			break;
		}
		/* shutdown() by drop() or fini() ends any of these waits. */
		deadline = tt_recv_deadline(sc, greeted, &mode);
		n = tt_rx_fill(&sc->rx, sc->fd, deadline, mode);
		if (n > 0)
			continue;
		if (n == -ETIMEDOUT &&
		    !__atomic_load_n(&sc->dropping, __ATOMIC_ACQUIRE)) {
			tt_log_slow(t, sc, greeted);
			reset = true;
			break;
		}
		if (n != -ECONNRESET &&
		    !__atomic_load_n(&sc->dropping, __ATOMIC_ACQUIRE))
			tt_log(t, PM_LOG_WARN, "connection %llu from %s: %s",
			       (unsigned long long)sc->id, sc->peer,
			       strerror((int)-n));
		break;
	}
out:
	pthread_mutex_lock(&t->lock);
	sc->closed = true;
	pthread_mutex_unlock(&t->lock);
	if (reset)
		tt_reset(t, sc);
	else
		shutdown(sc->fd, SHUT_RDWR);
	if (t->lst.on_close)
		t->lst.on_close(t->lst.arg, sc->id);
	/* The rest waits for the next accept or fini to be reaped. */
	tt_rx_free(&sc->rx);
	pthread_mutex_lock(&t->lock);
	sc->finished = true;
	/* Room for the next peer now, not at the reap: a reply still
	 * being written (refs) can keep this one unreaped a while. */
	t->live--;
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

/*
 * At the bound, the oldest connection that has not sent a whole first
 * request gives its slot to the new one: it is shut down, and its thread
 * ends and frees the slot at once (its count goes when it does). Returns
 * whether one was found. t->lock held.
 */
static bool tt_displace_locked(struct pm_tctx *t)
{
	struct tt_sconn *sc, *old = NULL;

	for (sc = t->sconns; sc; sc = sc->next)
		if (!sc->greeted && !sc->closed && !sc->dropping &&
		    (!old || sc->accepted_ns < old->accepted_ns))
			old = sc;
	if (!old)
		return false;
	__atomic_store_n(&old->dropping, true, __ATOMIC_RELEASE);
	shutdown(old->fd, SHUT_RDWR);
	return true;
}

/*
 * Is the listener full? Then the new connection displaces one that never
 * spoke, or, when every slot holds a peer past its first request, fd
 * (just accepted) is closed at once. Logs once per episode, so a flood of
 * connections cannot flood the log as well. Accept thread only.
 */
static bool tt_refuse(struct pm_tctx *t, int fd)
{
	const char *name = t->host->name ? t->host->name : "tcp";
	char peer[PM_NET_ADDRSTR_MAX];
	bool displaced;
	int live;

	pthread_mutex_lock(&t->lock);
	live = t->live;
	pthread_mutex_unlock(&t->lock);
	if (live < t->max_conns) {
		/* The episode ends with a quarter of the slots free, so a
		 * flood hovering at the bound logs one line, not many. */
		if (t->at_bound && live <= t->max_conns - t->max_conns / 4 - 1)
			tt_log(t, PM_LOG_INFO,
			       "accepting on %s again: at the bound of %d (transports.%s.max_conns), %llu connections were refused and %llu that had sent no request displaced",
			       t->endpoint, t->max_conns, name,
			       (unsigned long long)t->refused,
			       (unsigned long long)t->displaced);
		if (live <= t->max_conns - t->max_conns / 4 - 1)
			t->at_bound = false;
		return false;
	}
	if (!t->at_bound) {
		pm_net_fd_name(fd, 0, peer, sizeof(peer));
		tt_log(t, PM_LOG_WARN,
		       "connection from %s to %s at the bound: %d incoming connections are open (transports.%s.max_conns); until one ends, new ones displace those that have sent no request, or are refused, without a log line each",
		       peer, t->endpoint, live, name);
		t->at_bound = true;
		t->refused = 0;
		t->displaced = 0;
	}
	pthread_mutex_lock(&t->lock);
	displaced = tt_displace_locked(t);
	pthread_mutex_unlock(&t->lock);
	if (displaced) {
		t->displaced++;
		return false;
	}
	t->refused++;
	close(fd);
	return true;
}

static int tt_accept_one(struct pm_tctx *t)
{
	struct tt_sconn *sc;
	int fd, r;

	/* Blocking: the receive thread waits in recv() alone; replies are
	 * written with MSG_DONTWAIT and their own deadline. */
	fd = accept4(t->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* Only the accept thread adds to live, so it cannot grow between
	 * this check and the pthread_create below. */
	if (tt_refuse(t, fd))
		return 0;
	sc = calloc(1, sizeof(*sc));
	if (!sc) {
		r = -ENOMEM;
		goto err_close;
	}
	r = tt_rx_init(&sc->rx);
	if (r)
		goto err_free;
	pm_net_rpc_tune(fd);
	pm_net_fd_name(fd, 0, sc->peer, sizeof(sc->peer));
	sc->accepted_ns = pm_now_ns();
	sc->t = t;
	sc->fd = fd;
	pthread_mutex_init(&sc->send_lock, NULL);

	pthread_mutex_lock(&t->lock);
	sc->id = ++t->last_conn_id;
	tt_log(t, PM_LOG_DEBUG, "connection %llu from %s",
	       (unsigned long long)sc->id, sc->peer);
	r = -pthread_create(&sc->thr, NULL, tt_recv_thread, sc);
	if (r) {
		pthread_mutex_unlock(&t->lock);
		tt_log(t, PM_LOG_ERROR, "connection from %s: no thread: %s",
		       sc->peer, strerror(-r));
		pthread_mutex_destroy(&sc->send_lock);
		tt_rx_free(&sc->rx);
		goto err_free;
	}
	sc->next = t->sconns;
	t->sconns = sc;
	t->live++;
	pthread_mutex_unlock(&t->lock);
	return 0;

err_free:
	free(sc);
err_close:
	close(fd);
	return r;
}

static void *tt_accept_thread(void *arg)
{
	struct pm_tctx *t = arg;
	struct pollfd pfd[2];
	int r, backoff_ms = -1;

	for (;;) {
		pfd[0] = (struct pollfd){ .fd = t->lfd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = t->stop_efd, .events = POLLIN };
		/* After running out of fds, wait for the stop signal a
		 * little before trying again instead of spinning. */
		if (backoff_ms > 0)
			r = poll(&pfd[1], 1, backoff_ms);
		else
			r = poll(pfd, 2, -1);
		if (r < 0 && errno != EINTR) {
			tt_log(t, PM_LOG_ERROR,
			       "accept on %s stopped: poll: %s", t->endpoint,
			       strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		tt_reap(t);
		r = tt_accept_one(t);
		if (r == 0 || r == -EAGAIN || r == -EINTR ||
		    r == -ECONNABORTED) {
			backoff_ms = -1;
			continue;
		}
		tt_log(t, PM_LOG_WARN, "accept on %s: %s", t->endpoint,
		       strerror(-r));
		backoff_ms = 100;
	}
	return NULL;
}

static int tt_listen(struct pm_tctx *t, const struct pm_listener *lst)
{
	struct sockaddr_storage ss, ass;
	struct in6_addr a6;
	socklen_t sl, asl;
	const char *ep, *adv = NULL;
	char err[PM_ENDPOINT_MAX + 128], host[PM_NET_ADDRSTR_MAX];
	const char *name = t->host->name ? t->host->name : "tcp";
	int r;

	if (!lst || !lst->on_request)
		return -EINVAL;
	if (t->listening)
		return -EBUSY;
	r = t->host->cfg_string(t->host->ctx, "listen", &ep);
	if (r) {
		tt_log(t, PM_LOG_ERROR, "transports.%s.listen is %s",
		       name, r == -ENOENT ? "not set (want \"HOST:PORT\")" :
					    "not a string");
		return -EINVAL;
	}
	r = pm_net_parse(ep, &ss, &sl, err, sizeof(err));
	if (r) {
		tt_log(t, PM_LOG_ERROR, "transports.%s.listen: %s", name, err);
		return r;
	}
	/* advertise: an address (the bound port is added) or a whole
	 * endpoint; numeric, as peers parse it with pm_net_parse. */
	r = t->host->cfg_string(t->host->ctx, "advertise", &adv);
	if (r == -ENOENT) {
		adv = NULL;
	} else if (r < 0 || strlen(adv) >= INET6_ADDRSTRLEN ||
		   (inet_pton(AF_INET, adv, &a6) != 1 &&
		    inet_pton(AF_INET6, adv, &a6) != 1 &&
		    pm_net_parse(adv, &ass, &asl, err, sizeof(err)) != 0)) {
		tt_log(t, PM_LOG_ERROR,
		       "transports.%s.advertise must be a numeric address or HOST:PORT",
		       name);
		return -EINVAL;
	}
	r = pm_net_listen((struct sockaddr *)&ss, sl, TT_BACKLOG, &t->lfd);
	if (r) {
		tt_log(t, PM_LOG_ERROR,
		       "transports.%s.listen: cannot listen on %s: %s",
		       name, ep, strerror(-r));
		return r;
	}
	sl = sizeof(ss);
	if (getsockname(t->lfd, (struct sockaddr *)&ss, &sl) < 0) {
		r = -errno;
		goto err_close;
	}
	r = pm_net_format((struct sockaddr *)&ss, t->endpoint,
			  sizeof(t->endpoint));
	if (r)
		goto err_close;
	if (adv && pm_net_parse(adv, &ass, &asl, err, sizeof(err)) == 0 &&
	    tt_port((struct sockaddr *)&ass) != 0) {
		/* a whole endpoint (say, a forwarded port): as it is */
		snprintf(t->endpoint, sizeof(t->endpoint), "%s", adv);
	} else if (adv) {
		/* Peers on other hosts cannot dial 0.0.0.0: publish the
		 * configured address with the port actually bound. */
		if (pm_net_parse(adv, &ass, &asl, err, sizeof(err)) == 0)
			pm_net_format((struct sockaddr *)&ass, host,
				      sizeof(host));
		else
			snprintf(host, sizeof(host),
				 strchr(adv, ':') ? "[%s]:0" : "%s:0", adv);
		snprintf(t->endpoint, sizeof(t->endpoint), "%.*s:%u",
			 (int)(strrchr(host, ':') - host), host,
			 tt_port((struct sockaddr *)&ss));
	} else if (!strncmp(t->endpoint, "0.0.0.0:", 8) ||
		   !strncmp(t->endpoint, "[::]:", 5)) {
		tt_log(t, PM_LOG_WARN,
		       "listening on %s, which peers cannot dial: set transports.%s.advertise to this host's address",
		       t->endpoint, name);
	}
	t->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->stop_efd < 0) {
		r = -errno;
		goto err_close;
	}
	t->lst = *lst;
	r = -pthread_create(&t->accept_thr, NULL, tt_accept_thread, t);
	if (r)
		goto err_efd;
	t->listening = true;
	tt_log(t, PM_LOG_INFO, "listening on %s", t->endpoint);
	return 0;

err_efd:
	close(t->stop_efd);
	t->stop_efd = -1;
err_close:
	tt_log(t, PM_LOG_ERROR, "listen on %s: %s", ep, strerror(-r));
	close(t->lfd);
	t->lfd = -1;
	return r;
}

static int tt_endpoint(struct pm_tctx *t, char *buf, size_t len)
{
	size_t n;

	if (!t->listening)
		return -ENOTCONN;
	n = strlen(t->endpoint);
	if (!buf || n >= len)
		return -ENOSPC;
	memcpy(buf, t->endpoint, n + 1);
	return 0;
}

/*
 * -ENOTCONN when the connection has gone, -ESHUTDOWN once fini began:
 * fini waits for the replies it finds being written (refs) before it
 * frees their connections, and refuses the rest.
 */
static int tt_reply(struct pm_tctx *t, uint64_t conn_id, uint64_t req_id,
		    int status, const struct pm_msg *rep)
{
	struct tt_sconn *sc;
	struct pm_frame_hdr h;
	struct iovec iov[3];
	int r;

	if (status > 0 || status < -4095)
		return -EINVAL;
	r = tt_check_msg(rep);
	if (r)
		return r;

	pthread_mutex_lock(&t->lock);
	if (t->stopping) {
		/* fini waits only for the replies already counted */
		pthread_mutex_unlock(&t->lock);
		return -ESHUTDOWN;
	}
	sc = tt_find_locked(t, conn_id);
	if (!sc || sc->closed) {
		pthread_mutex_unlock(&t->lock);
		return -ENOTCONN;
	}
	sc->refs++;
	pthread_mutex_unlock(&t->lock);

	pm_frame_encode(&h, PM_FRAME_REP, req_id, status,
			rep ? rep->msg_len : 0, rep ? rep->payload_len : 0);
	iov[0] = (struct iovec){ &h, PM_FRAME_HDR_LEN };
	iov[1] = (struct iovec){ rep ? rep->msg : NULL,
				 rep ? rep->msg_len : 0 };
	iov[2] = (struct iovec){ rep ? rep->payload : NULL,
				 rep ? rep->payload_len : 0 };
	pthread_mutex_lock(&sc->send_lock);
	r = pm_net_writev_all(sc->fd, iov, 3, pm_now_ns() + t->send_timeout_ns);
	pthread_mutex_unlock(&sc->send_lock);
	if (r == -ETIMEDOUT) {
		/* The peer stopped reading; a partial frame may be out, so
		 * the connection cannot carry another one. */
		tt_log(t, PM_LOG_WARN,
		       "reply to %s (connection %llu) timed out: dropping it",
		       sc->peer, (unsigned long long)conn_id);
		__atomic_store_n(&sc->dropping, true, __ATOMIC_RELEASE);
		shutdown(sc->fd, SHUT_RDWR);
	} else if (r < 0) {
		r = -ENOTCONN;
	}

	pthread_mutex_lock(&t->lock);
	if (!--sc->refs && t->stopping)
		pthread_cond_broadcast(&t->refs_cv);
	pthread_mutex_unlock(&t->lock);
	return r;
}

static int tt_drop(struct pm_tctx *t, uint64_t conn_id)
{
	struct tt_sconn *sc;
	int r = 0;

	pthread_mutex_lock(&t->lock);
	sc = tt_find_locked(t, conn_id);
	if (!sc || sc->closed || sc->dropping) {
		r = -ENOENT;
	} else {
		__atomic_store_n(&sc->dropping, true, __ATOMIC_RELEASE);
		shutdown(sc->fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

static void tt_fini(struct pm_tctx *t)
{
	struct tt_sconn *sc, *dead;
	uint64_t one = 1;

	if (!t)
		return;
	if (t->listening) {
		if (write(t->stop_efd, &one, sizeof(one)) < 0)
			tt_log(t, PM_LOG_ERROR, "fini: eventfd: %s",
			       strerror(errno));
		pthread_join(t->accept_thr, NULL);
		close(t->lfd);
		close(t->stop_efd);
	}
	/*
	 * The accept thread is gone, so nothing adds to the list or reaps
	 * it. A reply may still be on its way from a thread of the core's
	 * (a home worker) or from another connection's receive thread,
	 * which can answer a request held for this one: from here new ones
	 * get -ESHUTDOWN, and the shutdown makes those already writing fail
	 * at once instead of waiting out send_timeout_ms.
	 */
	pthread_mutex_lock(&t->lock);
	t->stopping = true;
	for (sc = t->sconns; sc; sc = sc->next) {
		__atomic_store_n(&sc->dropping, true, __ATOMIC_RELEASE);
		shutdown(sc->fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&t->lock);
	/* Every receive thread first: one may be replying on another. */
	for (sc = t->sconns; sc; sc = sc->next)
		pthread_join(sc->thr, NULL);
	pthread_mutex_lock(&t->lock);
	for (sc = t->sconns; sc; sc = sc->next)
		while (sc->refs)
			pthread_cond_wait(&t->refs_cv, &t->lock);
	dead = t->sconns;
	t->sconns = NULL;
	pthread_mutex_unlock(&t->lock);
	while ((sc = dead)) {
		dead = sc->next;
		tt_sconn_free(sc);
	}
	while (t->conns)
		tt_disconnect(t->conns);
	pthread_condattr_destroy(&t->condattr);
	pthread_cond_destroy(&t->refs_cv);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static void tt_disconnect_op(struct pm_tconn *c)
{
	if (c)
		tt_disconnect(c);
}

static const struct pm_transport_ops tt_ops = {
	.size = sizeof(struct pm_transport_ops),
	.abi_major = PM_TRANSPORT_ABI_MAJOR,
	.abi_minor = PM_TRANSPORT_ABI_MINOR,
	.name = "tcp",
	.version = TT_VERSION,
	.caps = PM_CAP_RELIABLE,
	.probe = tt_probe,
	.init = tt_init,
	.fini = tt_fini,
	.listen = tt_listen,
	.endpoint = tt_endpoint,
	.connect = tt_connect,
	.disconnect = tt_disconnect_op,
	.call = tt_call,
	.reply = tt_reply,
	.drop = tt_drop,
	.any_listen = pm_net_any_listen,
	.test_raw_dial = pm_net_test_raw_dial,
};

PM_TRANSPORT_EXPORT const struct pm_transport_ops *PM_TRANSPORT_ENTRY(void)
{
	return &tt_ops;
}
