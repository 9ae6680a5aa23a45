// SPDX-License-Identifier: MIT
/*
 * An example out-of-tree pagemesh transport: AF_UNIX SOCK_SEQPACKET, one
 * record per request or reply, built from include/pagemesh/transport.h
 * alone. It is the shortest plugin we know that keeps every rule of the
 * ABI; read it next to the header. Endpoints are "@name" (abstract socket)
 * or a filesystem path; listen "@" lets the kernel pick a free name.
 *
 * Threads: one accept thread per listener, one receive thread per incoming
 * connection (so on_request runs in order, one at a time, per connection)
 * and one receive thread per outgoing connection, which hands each reply
 * to the call waiting for its id.
 *
 * Settings (transports.unix.KEY):
 *   listen          "@name", "@" or a path (needed by listen()).
 *   handshake_timeout_ms
 *                   how long an incoming connection may take to send its
 *                   first request before it is dropped (2000): a peer that
 *                   connects and stays silent would hold a slot and a
 *                   thread for ever. A node sends its first request (HELLO)
 *                   as soon as it has dialled.
 *   max_conns       most incoming connections served at once (1024). At
 *                   the bound a new connection displaces the oldest one
 *                   that has sent no request yet; only when none is left
 *                   is the new one closed as it comes.
 * Every socket this plugin dials is autobound to an abstract name, which
 * the listener's log lines use for the peer.
 *
 * Broken builds for the suite's own test (tests/kit.mk), each of which
 * pagemesh-conformance must fail: -DUX_BROKEN_TWICE hands each request to
 * on_request twice, -DUX_BROKEN_LATE returns a timed-out call 1 s after
 * its deadline, -DUX_NO_ANY_LISTEN has no any_listen op, -DUX_BROKEN_SILENT
 * reads handshake_timeout_ms but lets a silent peer hold its slot.
 */
#define _GNU_SOURCE	/* accept4, pthread_mutex_clocklock */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <pagemesh/transport.h>

#define UX_MAGIC 0x31584d50u	/* "PMX1" */
#define UX_REQ 1
#define UX_REP 2
/* The largest record: header, core message, payload. */
#define UX_REC_MAX (sizeof(struct ux_hdr) + PM_MSG_MAX + PM_PAYLOAD_MAX)
/* A reply or request that cannot be queued in this long is dropped. */
#define UX_SEND_MS 1000
/* Defaults and upper bounds of the settings. */
#define UX_HANDSHAKE_MS 2000
#define UX_MS_MAX 3600000
#define UX_MAX_CONNS 1024
#define UX_MAX_CONNS_MAX 65536
/* A printable peer address: "@" and an abstract name, or a path. */
#define UX_NAME_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) + 2)

struct ux_hdr {
	uint32_t magic;
	uint16_t kind;
	uint16_t rsvd;
	uint64_t id;
	int32_t status;
	uint32_t msg_len;
	uint32_t payload_len;
	uint32_t rsvd2;
};

struct ux_in {			/* an incoming connection */
	struct ux_in *next;
	struct pm_tctx *t;
	uint64_t id;
	int fd;
	bool closed;		/* on_close is delivered or on its way */
	bool dropping;
	bool got_request;	/* past its first request: not displaced */
	int64_t born;		/* accepted at, pm_now_ns() */
	char peer[UX_NAME_MAX];
	pthread_t th;
	pthread_mutex_t wmu;	/* one reply written at a time */
};

struct ux_call {		/* a call waiting for its reply */
	struct ux_call *next;
	uint64_t id;
	struct pm_msg *rep;
	int r;
	bool done;
};

struct pm_tconn {
	struct pm_tctx *t;
	struct pm_tconn *next;
	char ep[PM_ENDPOINT_MAX];
	pthread_mutex_t smu;	/* sending and redialling; before mu */
	pthread_mutex_t mu;	/* everything below */
	pthread_cond_t cv;
	int fd;			/* -1: not connected */
	bool dead;		/* fd's peer is gone: redial before use */
	bool rx_on;
	pthread_t rx;
	bool shut;		/* disconnect() or fini() began */
	int users;		/* calls inside call() */
	uint64_t next_id;
	struct ux_call *calls;
};

struct pm_tctx {
	const struct pm_host *host;
	struct pm_listener lst;
	char ep[PM_ENDPOINT_MAX];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int lfd, efd;
	bool listening;
	int64_t handshake_ns;	/* handshake_timeout_ms */
	int max_conns;
	bool at_bound;		/* said so once; until below it again */
	pthread_t accept_th;
	pthread_mutex_t mu;	/* the lists below */
	struct ux_in *ins;
	struct pm_tconn *outs;
	uint64_t next_conn;
};

#define ux_log(t, lvl, ...) (t)->host->log((t)->host->ctx, lvl, __VA_ARGS__)
#define ux_name_of(t) ((t)->host->name ? (t)->host->name : "unix")

/* The printable name of an AF_UNIX address: "@name" (abstract), a path,
 * or "" when unnamed (a peer that did not bind). */
static void ux_name(const struct sockaddr_un *sa, socklen_t len, char *buf,
		    size_t blen)
{
	size_t n = len > offsetof(struct sockaddr_un, sun_path) ?
		len - offsetof(struct sockaddr_un, sun_path) : 0;
	size_t i, o = 0;

	if (n && sa->sun_path[0]) {
		snprintf(buf, blen, "%.*s", (int)n, sa->sun_path);
		return;
	}
	for (i = 0; i < n && o + 1 < blen; i++) {
		char ch = i ? sa->sun_path[i] : '@';

		buf[o++] = ch >= 0x20 && ch < 0x7f ? ch : '?';
	}
	buf[o] = '\0';
}

/* Bind fd to a fresh abstract name (Linux autobind): the peer's listener
 * then has a name for it in its log lines. */
static int ux_autobind(int fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	return bind(fd, (struct sockaddr *)&sa, sizeof(sa_family_t)) ? -errno :
		0;
}

/* "@name" or a path -> sockaddr; "@" alone: autobind (len = family). */
static int ux_parse(const char *s, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = strlen(s);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (s[0] == '@') {
		if (n > sizeof(sa->sun_path))
			return -EINVAL;
		memcpy(sa->sun_path + 1, s + 1, n - 1);
		*len = n == 1 ? sizeof(sa_family_t) :
			offsetof(struct sockaddr_un, sun_path) + n;
		return 0;
	}
	if ((s[0] != '/' && s[0] != '.') || n >= sizeof(sa->sun_path))
		return -EINVAL;
	memcpy(sa->sun_path, s, n);
	*len = offsetof(struct sockaddr_un, sun_path) + n + 1;
	return 0;
}

static int ux_send(int fd, const struct ux_hdr *h, const void *msg,
		   const void *pay)
{
	struct iovec iov[3] = {
		{ (void *)h, sizeof(*h) },
		{ (void *)msg, h->msg_len },
		{ (void *)pay, h->payload_len },
	};
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 3 };

	return sendmsg(fd, &m, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* One record into buf; its length, 0 at the end, -EBADMSG if malformed. */
static ssize_t ux_recv(int fd, uint8_t *buf, uint16_t kind)
{
	struct ux_hdr h;
	ssize_t n;

	do
		n = recv(fd, buf, UX_REC_MAX + 1, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n < 0 ? -errno : 0;
	if ((size_t)n < sizeof(h) || (size_t)n > UX_REC_MAX)
		return -EBADMSG;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != UX_MAGIC || h.kind != kind || h.rsvd || h.rsvd2 ||
	    h.msg_len > PM_MSG_MAX || h.payload_len > PM_PAYLOAD_MAX ||
	    sizeof(h) + h.msg_len + h.payload_len != (size_t)n)
		return -EBADMSG;
	return n;
}

static void set_sndtimeo(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* --- ABI 1.1 helpers ------------------------------------------------------ */

static int ux_any_listen(char *buf, size_t len)
{
	return snprintf(buf, len, "@") >= (int)len ? -ENOSPC : 0;
}

static int ux_is_local(const char *addr)
{
	struct sockaddr_un sa;
	socklen_t l;

	return ux_parse(addr, &sa, &l) ? -EINVAL : 1;
}

/* --- instance ------------------------------------------------------------ */

static int ux_probe(const struct pm_host *host, char *why, size_t whylen)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	int err = errno;

	(void)host;
	if (fd < 0) {
		snprintf(why, whylen, "no AF_UNIX SOCK_SEQPACKET: %s",
			 strerror(err));
		return -err;
	}
	close(fd);
	return 0;
}

/* Setting key: *v, def when unset; -EINVAL (logged) outside lo..hi. */
static int ux_setting(const struct pm_host *host, const char *key,
		      int64_t def, int64_t lo, int64_t hi, int64_t *v)
{
	int r = host->cfg_int(host->ctx, key, v);

	if (r == -ENOENT) {
		*v = def;
		return 0;
	}
	if (r || *v < lo || *v > hi) {
		host->log(host->ctx, PM_LOG_ERROR,
			  "transports.%s.%s must be an integer in %lld..%lld",
			  host->name ? host->name : "unix", key,
			  (long long)lo, (long long)hi);
		return -EINVAL;
	}
	return 0;
}

static int ux_init(const struct pm_host *host, struct pm_tctx **out)
{
	struct pm_tctx *t;
	int64_t hs, maxc;

	if (ux_setting(host, "handshake_timeout_ms", UX_HANDSHAKE_MS, 1,
		       UX_MS_MAX, &hs) ||
	    ux_setting(host, "max_conns", UX_MAX_CONNS, 1, UX_MAX_CONNS_MAX,
		       &maxc))
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->host = host;
	t->handshake_ns = hs * 1000000;
	t->max_conns = (int)maxc;
	t->lfd = t->efd = -1;
	pthread_mutex_init(&t->mu, NULL);
	*out = t;
	return 0;
}

static void *ux_in_main(void *arg)
{
	struct ux_in *in = arg;
	struct pm_tctx *t = in->t;
	uint8_t *buf = malloc(UX_REC_MAX + 1);
	const char *peer = in->peer;
	ssize_t n = 0;

	/* the first request must come within handshake_timeout_ms */
#ifdef UX_BROKEN_SILENT
	while (0) {
#else
	while (buf) {
#endif
		struct pollfd p = { in->fd, POLLIN, 0 };
		int64_t left = in->born + t->handshake_ns - pm_now_ns();
		int r;

		if (left <= 0) {
			ux_log(t, PM_LOG_WARN,
			       "%s: no request within %lld ms of connecting (transports.%s.handshake_timeout_ms); dropping the connection",
			       peer, (long long)(t->handshake_ns / 1000000),
			       ux_name_of(t));
			free(buf);
			buf = NULL;
			break;
		}
		r = poll(&p, 1, (int)((left + 999999) / 1000000));
		if (r > 0)
			break;
		if (r < 0 && errno != EINTR) {
			n = -errno;
			break;
		}
	}
	/* n: 0 to go on (each request sets it back), else the end */
	while (buf && !n && (n = ux_recv(in->fd, buf, UX_REQ)) > 0) {
		struct ux_hdr h;
		struct pm_request rq;

		n = 0;
		if (!in->got_request) {
			pthread_mutex_lock(&t->mu);
			in->got_request = true;
			pthread_mutex_unlock(&t->mu);
		}
		memcpy(&h, buf, sizeof(h));
		rq = (struct pm_request){
			.conn_id = in->id, .req_id = h.id,
			.msg = buf + sizeof(h), .msg_len = h.msg_len,
			.payload = buf + sizeof(h) + h.msg_len,
			.payload_len = h.payload_len, .peer = peer,
		};
		t->lst.on_request(t->lst.arg, &rq);
#ifdef UX_BROKEN_TWICE
		t->lst.on_request(t->lst.arg, &rq);
#endif
	}
	if (buf && n < 0)
		ux_log(t, PM_LOG_WARN, "%s: %s; dropping the connection", peer,
		       n == -EBADMSG ? "malformed record" : strerror((int)-n));
	free(buf);
	/* the peer sees the end now; the fd is closed once joined */
	shutdown(in->fd, SHUT_RDWR);
	pthread_mutex_lock(&t->mu);
	in->closed = true;
	pthread_mutex_unlock(&t->mu);
	if (t->lst.on_close)
		t->lst.on_close(t->lst.arg, in->id);
	return NULL;
}

/* Join and free incoming connections whose thread ended (all: at fini). */
static void ux_reap(struct pm_tctx *t, bool all)
{
	struct ux_in **pp, *in;

	pthread_mutex_lock(&t->mu);
	for (pp = &t->ins; (in = *pp);) {
		if (!in->closed && !all) {
			pp = &in->next;
			continue;
		}
		*pp = in->next;
		pthread_mutex_unlock(&t->mu);
		shutdown(in->fd, SHUT_RDWR);
		pthread_join(in->th, NULL);
		/* a reply still writing holds wmu */
		pthread_mutex_lock(&in->wmu);
		close(in->fd);
		pthread_mutex_unlock(&in->wmu);
		pthread_mutex_destroy(&in->wmu);
		free(in);
		pthread_mutex_lock(&t->mu);
		pp = &t->ins;
	}
	pthread_mutex_unlock(&t->mu);
}

/*
 * Room for one more incoming connection from peer? At max_conns the
 * oldest that has sent no request is displaced (the peer sees the end);
 * false if every one has. Called with t->mu held.
 */
static bool ux_make_room(struct pm_tctx *t, const char *peer)
{
	struct ux_in *in, *silent = NULL;
	int live = 0;

	for (in = t->ins; in; in = in->next) {
		if (in->closed || in->dropping)
			continue;
		live++;
		if (!in->got_request)
			silent = in;	/* the list is newest first */
	}
	if (live < t->max_conns) {
		t->at_bound = false;
		return true;
	}
	if (!t->at_bound)
		ux_log(t, PM_LOG_WARN,
		       "connection from %s at the bound: %d incoming connections are open (transports.%s.max_conns); until one ends, new ones displace those that have sent no request, or are refused, without a log line each",
		       peer, live, ux_name_of(t));
	t->at_bound = true;
	if (!silent)
		return false;
	silent->dropping = true;
	shutdown(silent->fd, SHUT_RDWR);
	return true;
}

static void *ux_accept_main(void *arg)
{
	struct pm_tctx *t = arg;
	struct pollfd p[2] = { { t->lfd, POLLIN, 0 }, { t->efd, POLLIN, 0 } };
	struct sockaddr_un sa;
	struct ux_in *in;
	socklen_t salen;
	int fd;

	for (;;) {
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		salen = sizeof(sa);
		fd = accept4(t->lfd, (struct sockaddr *)&sa, &salen,
			     SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		ux_reap(t, false);
		in = calloc(1, sizeof(*in));
		if (!in) {
			close(fd);
			continue;
		}
		in->born = pm_now_ns();
		set_sndtimeo(fd, UX_SEND_MS);
		in->t = t;
		in->fd = fd;
		pthread_mutex_init(&in->wmu, NULL);
		pthread_mutex_lock(&t->mu);
		in->id = ++t->next_conn;
		ux_name(&sa, salen, in->peer, sizeof(in->peer));
		if (!in->peer[0])
			snprintf(in->peer, sizeof(in->peer), "unix#%llu",
				 (unsigned long long)in->id);
		if (!ux_make_room(t, in->peer) ||
		    pthread_create(&in->th, NULL, ux_in_main, in)) {
			pthread_mutex_unlock(&t->mu);
			close(fd);
			pthread_mutex_destroy(&in->wmu);
			free(in);
			continue;
		}
		in->next = t->ins;
		t->ins = in;
		pthread_mutex_unlock(&t->mu);
	}
	return NULL;
}

static int ux_listen(struct pm_tctx *t, const struct pm_listener *lst)
{
	struct sockaddr_un sa;
	const char *addr;
	socklen_t len;
	int r;

	if (t->listening)
		return -EALREADY;
	r = t->host->cfg_string(t->host->ctx, "listen", &addr);
	if (r)
		return r == -ENOENT ? -EDESTADDRREQ : r;
	if (ux_parse(addr, &sa, &len))
		return -EINVAL;
	t->lst = *lst;
	t->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	t->efd = eventfd(0, EFD_CLOEXEC);
	if (t->lfd < 0 || t->efd < 0)
		goto fail;
	if (bind(t->lfd, (struct sockaddr *)&sa, len) ||
	    listen(t->lfd, 128))
		goto fail;
	len = sizeof(sa);
	if (getsockname(t->lfd, (struct sockaddr *)&sa, &len))
		goto fail;
	if (sa.sun_path[0]) {
		snprintf(t->path, sizeof(t->path), "%s", sa.sun_path);
		snprintf(t->ep, sizeof(t->ep), "%s", sa.sun_path);
	} else {
		t->ep[0] = '@';
		memcpy(t->ep + 1, sa.sun_path + 1,
		       len - offsetof(struct sockaddr_un, sun_path) - 1);
	}
	if (pthread_create(&t->accept_th, NULL, ux_accept_main, t)) {
		errno = EAGAIN;
		goto fail;
	}
	t->listening = true;
	return 0;
fail:
	r = -errno;
	if (t->path[0])
		unlink(t->path);
	t->path[0] = '\0';
	if (t->lfd >= 0)
		close(t->lfd);
	if (t->efd >= 0)
		close(t->efd);
	t->lfd = t->efd = -1;
	return r;
}

static int ux_endpoint(struct pm_tctx *t, char *buf, size_t len)
{
	if (!t->listening)
		return -ENOTCONN;
	if (strlen(t->ep) >= len)
		return -ENOSPC;
	strcpy(buf, t->ep);
	return 0;
}

/* --- incoming side: reply, drop ---------------------------------------- */

/* The open incoming connection id, its wmu held; NULL if gone. */
static struct ux_in *ux_in_get(struct pm_tctx *t, uint64_t id)
{
	struct ux_in *in;

	pthread_mutex_lock(&t->mu);
	for (in = t->ins; in && (in->id != id || in->closed); in = in->next)
		;
	if (in)
		pthread_mutex_lock(&in->wmu);
	pthread_mutex_unlock(&t->mu);
	return in;
}

static int ux_reply(struct pm_tctx *t, uint64_t conn_id, uint64_t req_id,
		    int status, const struct pm_msg *rep)
{
	struct ux_hdr h = { .magic = UX_MAGIC, .kind = UX_REP, .id = req_id,
			    .status = status };
	struct ux_in *in;
	int r;

	if (status > 0 || status < -(int)PM_STATUS_MAX ||
	    rep->msg_len > PM_MSG_MAX || rep->payload_len > PM_PAYLOAD_MAX)
		return -EINVAL;
	h.msg_len = rep->msg_len;
	h.payload_len = rep->payload_len;
	in = ux_in_get(t, conn_id);
	if (!in)
		return -ENOTCONN;
	r = ux_send(in->fd, &h, rep->msg, rep->payload);
	pthread_mutex_unlock(&in->wmu);
	return r ? -ENOTCONN : 0;
}

static int ux_drop(struct pm_tctx *t, uint64_t conn_id)
{
	struct ux_in *in;
	int r = -ENOENT;

	pthread_mutex_lock(&t->mu);
	for (in = t->ins; in; in = in->next)
		if (in->id == conn_id && !in->closed && !in->dropping) {
			/* the receive thread sees the end, then on_close */
			in->dropping = true;
			shutdown(in->fd, SHUT_RDWR);
			r = 0;
		}
	pthread_mutex_unlock(&t->mu);
	return r;
}

/* --- outgoing side ------------------------------------------------------ */

/* Fail every call waiting on c with r. Called with c->mu held. */
static void ux_fail_calls(struct pm_tconn *c, int r)
{
	struct ux_call *k;

	for (k = c->calls; k; k = k->next) {
		k->r = r;
		k->done = true;
	}
	c->calls = NULL;
	pthread_cond_broadcast(&c->cv);
}

/* Reply h (its bytes at b) into the buffers of the call waiting for it. */
static void ux_deliver(struct ux_call *k, const struct ux_hdr *h,
		       const uint8_t *b)
{
	struct pm_msg *rep = k->rep;

	k->done = true;
	k->r = h->status;
	if (h->status)
		return;
	if (h->msg_len > rep->msg_cap || h->payload_len > rep->payload_cap) {
		k->r = -EMSGSIZE;
		return;
	}
	if (h->msg_len)
		memcpy(rep->msg, b, h->msg_len);
	if (h->payload_len)
		memcpy(rep->payload, b + h->msg_len, h->payload_len);
	rep->msg_len = h->msg_len;
	rep->payload_len = h->payload_len;
}

static void *ux_out_main(void *arg)
{
	struct pm_tconn *c = arg;
	uint8_t *buf = malloc(UX_REC_MAX + 1);
	struct ux_call **pp, *k;
	struct ux_hdr h;
	ssize_t n;
	int fd;

	pthread_mutex_lock(&c->mu);
	fd = c->fd;
	pthread_mutex_unlock(&c->mu);
	while (buf && (n = ux_recv(fd, buf, UX_REP)) > 0) {
		memcpy(&h, buf, sizeof(h));
		pthread_mutex_lock(&c->mu);
		for (pp = &c->calls; (k = *pp) && k->id != h.id;
		     pp = &k->next)
			;
		if (k) {	/* else its caller gave up: discard */
			*pp = k->next;
			ux_deliver(k, &h, buf + sizeof(h));
			pthread_cond_broadcast(&c->cv);
		}
		pthread_mutex_unlock(&c->mu);
	}
	free(buf);
	/* calls in flight may have been seen: fail them, never resend */
	pthread_mutex_lock(&c->mu);
	c->dead = true;
	ux_fail_calls(c, c->shut ? -ESHUTDOWN : -ECONNRESET);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Close c's socket and reader, if any. Called with smu held, not mu. */
static void ux_out_close(struct pm_tconn *c)
{
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
	if (c->rx_on)
		pthread_join(c->rx, NULL);
	c->rx_on = false;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* A socket connected to ep, autobound so the listener can name it, by
 * deadline; its sends bounded by UX_SEND_MS. 0 and *out, or -errno. */
static int ux_open(const char *ep, int64_t deadline, int *out)
{
	int64_t left = (deadline - pm_now_ns()) / 1000000;
	struct sockaddr_un sa;
	socklen_t len;
	int fd, r;

	if (ux_parse(ep, &sa, &len) || len == sizeof(sa_family_t))
		return -EINVAL;
	if (left <= 0)
		return -ETIMEDOUT;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = ux_autobind(fd);
	/* bounds connect() on a full backlog, and every send */
	set_sndtimeo(fd, left < UX_SEND_MS ? (int)left : UX_SEND_MS);
	if (!r && connect(fd, (struct sockaddr *)&sa, len))
		r = errno == EAGAIN || errno == EINPROGRESS ? -ETIMEDOUT :
			-errno;
	if (r) {
		close(fd);
		return r;
	}
	set_sndtimeo(fd, UX_SEND_MS);
	*out = fd;
	return 0;
}

/* (Re)dial c->ep. Called with smu held, not mu. */
static int ux_dial(struct pm_tconn *c, int64_t deadline)
{
	int fd, r;

	ux_out_close(c);
	r = ux_open(c->ep, deadline, &fd);
	if (r)
		return r;
	pthread_mutex_lock(&c->mu);
	c->fd = fd;
	c->dead = false;
	r = pthread_create(&c->rx, NULL, ux_out_main, c);
	c->rx_on = !r;
	pthread_mutex_unlock(&c->mu);
	return -r;
}

static int ux_connect(struct pm_tctx *t, const char *ep, int64_t deadline,
		      struct pm_tconn **out)
{
	struct pm_tconn *c;
	pthread_condattr_t a;
	int r;

	if (strlen(ep) >= sizeof(c->ep))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->t = t;
	c->fd = -1;
	snprintf(c->ep, sizeof(c->ep), "%s", ep);
	pthread_mutex_init(&c->smu, NULL);
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &a);
	pthread_condattr_destroy(&a);
	pthread_mutex_lock(&c->smu);
	r = ux_dial(c, deadline);
	pthread_mutex_unlock(&c->smu);
	if (r) {
		pthread_cond_destroy(&c->cv);
		free(c);
		return r;
	}
	pthread_mutex_lock(&t->mu);
	c->next = t->outs;
	t->outs = c;
	pthread_mutex_unlock(&t->mu);
	*out = c;
	return 0;
}

/* Take smu by the deadline; -ETIMEDOUT if another sender holds it. */
static int ux_lock_send(struct pm_tconn *c, int64_t deadline)
{
	struct timespec ts = { deadline / 1000000000, deadline % 1000000000 };

	return -pthread_mutex_clocklock(&c->smu, CLOCK_MONOTONIC, &ts);
}

/*
 * Send one record on c, redialling once if the peer is known gone or the
 * send finds it gone: a SOCK_SEQPACKET record that failed to send was
 * never queued to the peer, so sending it again is at most once.
 * With register set, k is linked (under mu) before the send, so the
 * reader can find its reply.
 */
static int ux_out_send(struct pm_tconn *c, const struct ux_hdr *h,
		       const void *msg, const void *pay, struct ux_call *k,
		       int64_t deadline)
{
	int r, tries;

	r = ux_lock_send(c, deadline);
	if (r)
		return r;
	for (tries = 0; tries < 2; tries++) {
		pthread_mutex_lock(&c->mu);
		r = c->shut ? -ESHUTDOWN : 0;
		if (!r && (c->fd < 0 || c->dead)) {
			pthread_mutex_unlock(&c->mu);
			r = ux_dial(c, deadline);
			if (r)
				break;
			pthread_mutex_lock(&c->mu);
		}
		if (!r && k) {
			k->next = c->calls;
			c->calls = k;
		}
		pthread_mutex_unlock(&c->mu);
		if (r)
			break;
		r = ux_send(c->fd, h, msg, pay);
		if (r && k) {
			struct ux_call **pp;

			pthread_mutex_lock(&c->mu);
			for (pp = &c->calls; *pp && *pp != k; pp = &(*pp)->next)
				;
			if (*pp)
				*pp = k->next;
			else if (k->done)	/* failed by the reader */
				k->done = false;
			c->dead = true;
			pthread_mutex_unlock(&c->mu);
		}
		if (r != -EPIPE && r != -ECONNRESET && r != -ECONNREFUSED)
			break;
	}
	pthread_mutex_unlock(&c->smu);
	return r == -EAGAIN ? -ETIMEDOUT : r;
}

static int ux_call(struct pm_tconn *c, const struct pm_msg *req,
		   struct pm_msg *rep, int64_t deadline)
{
	struct ux_hdr h = { .magic = UX_MAGIC, .kind = UX_REQ,
			    .msg_len = req->msg_len,
			    .payload_len = req->payload_len };
	struct ux_call k = { .rep = rep };
	struct timespec ts;
	int64_t wait_until = deadline;
	int r;

	if (req->msg_len > PM_MSG_MAX || req->payload_len > PM_PAYLOAD_MAX)
		return -EINVAL;
	if (pm_now_ns() >= deadline)
		return -ETIMEDOUT;
#ifdef UX_BROKEN_LATE
	wait_until += 1000000000;	/* a timed-out call returns 1 s late */
#endif
	pthread_mutex_lock(&c->mu);
	c->users++;
	k.id = h.id = ++c->next_id;
	pthread_mutex_unlock(&c->mu);

	r = ux_out_send(c, &h, req->msg, req->payload, &k, deadline);
	pthread_mutex_lock(&c->mu);
	ts.tv_sec = wait_until / 1000000000;
	ts.tv_nsec = wait_until % 1000000000;
	while (!r && !k.done)
		if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT &&
		    !k.done) {
			struct ux_call **pp;

			for (pp = &c->calls; *pp && *pp != &k;
			     pp = &(*pp)->next)
				;
			if (*pp)
				*pp = k.next;
			r = -ETIMEDOUT;
		}
	if (!r)
		r = k.r;
	c->users--;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return r;
}

static int ux_test_corrupt(struct pm_tconn *c, int how, int64_t deadline)
{
	uint8_t b[sizeof(struct ux_hdr) + 64];
	struct ux_hdr h = { .magic = UX_MAGIC, .kind = UX_REQ, .id = 1 };
	struct msghdr m = { 0 };
	struct iovec iov;
	size_t n = sizeof(h);
	int r;

	memset(b, 0x5a, sizeof(b));
	switch (how) {
	case PM_CORRUPT_GARBAGE:
		n = sizeof(b);
		break;
	case PM_CORRUPT_BAD_HEADER:
		h.kind = 77;
		break;
	case PM_CORRUPT_BAD_LENGTH:
		h.msg_len = 10;
		h.payload_len = 10;
		n += 5;
		break;
	case PM_CORRUPT_HUGE:
		h.payload_len = 1u << 30;
		n += 8;
		break;
	case PM_CORRUPT_TRUNCATED:
		n = 10;
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (how != PM_CORRUPT_GARBAGE)
		memcpy(b, &h, sizeof(h));
	iov = (struct iovec){ b, n };
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	r = ux_lock_send(c, deadline);
	if (r)
		return r;
	pthread_mutex_lock(&c->mu);
	r = c->fd < 0 || c->dead ? -ENOTCONN : 0;
	pthread_mutex_unlock(&c->mu);
	if (!r && sendmsg(c->fd, &m, MSG_NOSIGNAL) < 0)
		r = -errno;
	pthread_mutex_unlock(&c->smu);
	return r;
}

/*
 * ABI 1.2, for the suite's silent and slow peers: a bare connection to ep,
 * nothing sent, autobound like every socket this plugin dials (its name is
 * what the listener logs for it).
 */
static int ux_test_raw_dial(struct pm_tctx *t, const char *ep,
			    int64_t deadline, int *out)
{
	(void)t;
	return ux_open(ep, deadline, out);
}

/* Shut c down: calls fail with -ESHUTDOWN; wait for them; free c. */
static void ux_out_free(struct pm_tconn *c)
{
	pthread_mutex_lock(&c->mu);
	c->shut = true;
	ux_fail_calls(c, -ESHUTDOWN);
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
	while (c->users)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_lock(&c->smu);
	ux_out_close(c);
	pthread_mutex_unlock(&c->smu);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->smu);
	free(c);
}

static void ux_disconnect(struct pm_tconn *c)
{
	struct pm_tctx *t = c->t;
	struct pm_tconn **pp;

	pthread_mutex_lock(&t->mu);
	for (pp = &t->outs; *pp && *pp != c; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = c->next;
	pthread_mutex_unlock(&t->mu);
	ux_out_free(c);
}

/* Stop listening, deliver every on_close, free outgoing connections. */
static void ux_fini(struct pm_tctx *t)
{
	struct pm_tconn *c;

	if (t->listening) {
		eventfd_write(t->efd, 1);
		pthread_join(t->accept_th, NULL);
		close(t->lfd);
		close(t->efd);
		if (t->path[0])
			unlink(t->path);
	}
	ux_reap(t, true);
	while ((c = t->outs)) {
		t->outs = c->next;
		ux_out_free(c);
	}
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static const struct pm_transport_ops ux_ops = {
	.size = sizeof(struct pm_transport_ops),
	.abi_major = PM_TRANSPORT_ABI_MAJOR,
	.abi_minor = PM_TRANSPORT_ABI_MINOR,
	.name = "unix",
	.version = "0.1",
	.caps = PM_CAP_RELIABLE | PM_CAP_HOST_LOCAL,
	.probe = ux_probe,
	.init = ux_init,
	.fini = ux_fini,
	.listen = ux_listen,
	.endpoint = ux_endpoint,
	.connect = ux_connect,
	.disconnect = ux_disconnect,
	.call = ux_call,
	.reply = ux_reply,
	.drop = ux_drop,
#ifndef UX_NO_ANY_LISTEN	/* a build for the suite's own test */
	.any_listen = ux_any_listen,
#endif
	.is_local = ux_is_local,
	.test_corrupt = ux_test_corrupt,
	.test_raw_dial = ux_test_raw_dial,
};

PM_TRANSPORT_EXPORT const struct pm_transport_ops *PM_TRANSPORT_ENTRY(void)
{
	return &ux_ops;
}
