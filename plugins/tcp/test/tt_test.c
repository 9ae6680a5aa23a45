// SPDX-License-Identifier: MIT
/*
 * Tests of the tcp transport beyond the shared conformance suite: endpoint
 * parsing (plugins/common/net.h), its settings, frames split or pipelined
 * on the wire, a peer that stops reading, replies racing drop(), many
 * connections and a bound on them, which calls a closing peer gets sent again. Real sockets on
 * loopback; build/plugins/tcp.so via dlopen.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmocka.h>

#include <pagemesh/transport.h>

#include "frame.h"
#include "net.h"

#define SEC 1000000000LL
#define MAX_CONNS 64

static const struct pm_transport_ops *ops;
static void *dl;

/* --- host table: settings from a small key list, log lines counted ---- */

struct host {
	struct pm_host h;
	const char *keys[4];
	const char *vals[4];
	const char *ikey;
	int64_t ival;
	pthread_mutex_t mu;
	char last[512];		/* last warning or error line */
	int lines;
};

static void h_log(void *ctx, int level, const char *fmt, ...)
{
	struct host *h = ctx;
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (level <= PM_LOG_WARN) {
		pthread_mutex_lock(&h->mu);
		snprintf(h->last, sizeof(h->last), "%s", line);
		h->lines++;
		pthread_mutex_unlock(&h->mu);
	}
	if (level <= PM_LOG_INFO)
		fprintf(stderr, "  tcp: %s\n", line);
}

static int h_str(void *ctx, const char *key, const char **out)
{
	struct host *h = ctx;
	int i;

	for (i = 0; i < 4 && h->keys[i]; i++) {
		if (!strcmp(h->keys[i], key)) {
			*out = h->vals[i];
			return 0;
		}
	}
	return -ENOENT;
}

static int h_int(void *ctx, const char *key, int64_t *out)
{
	struct host *h = ctx;

	if (h->ikey && !strcmp(h->ikey, key)) {
		*out = h->ival;
		return 0;
	}
	return -ENOENT;
}

static struct host *host_new(const char *listen)
{
	struct host *h = calloc(1, sizeof(*h));

	assert_non_null(h);
	h->h.size = sizeof(h->h);
	h->h.abi_major = PM_TRANSPORT_ABI_MAJOR;
	h->h.abi_minor = PM_TRANSPORT_ABI_MINOR;
	h->h.ctx = h;
	h->h.name = "tcp";
	h->h.page_size = PM_PAGE_SIZE;
	h->h.log = h_log;
	h->h.cfg_string = h_str;
	h->h.cfg_int = h_int;
	pthread_mutex_init(&h->mu, NULL);
	if (listen) {
		h->keys[0] = "listen";
		h->vals[0] = listen;
	}
	return h;
}

static void host_free(struct host *h)
{
	pthread_mutex_destroy(&h->mu);
	free(h);
}

/* --- a server whose handler answers per the first byte of the msg ------ */

enum { OP_ECHO = 'e', OP_BIG = 'b', OP_HOLD = 'h' };

struct held {
	uint64_t conn, req;
};

struct srv {
	struct host *host;
	struct pm_tctx *t;
	char ep[PM_ENDPOINT_MAX];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int requests;
	int closes;
	uint64_t closed[MAX_CONNS];
	uint64_t conns[MAX_CONNS];	/* conn ids by first request */
	int nconns;
	struct held held[MAX_CONNS];
	int nheld;
	int reply_errors;		/* replies that failed inline */
	uint8_t big[PM_PAYLOAD_MAX];
};

static void note_conn(struct srv *s, uint64_t id)
{
	int i;

	for (i = 0; i < s->nconns; i++)
		if (s->conns[i] == id)
			return;
	if (s->nconns < MAX_CONNS)
		s->conns[s->nconns++] = id;
}

static void on_request(void *arg, const struct pm_request *rq)
{
	struct srv *s = arg;
	const uint8_t *m = rq->msg;
	uint8_t out[PM_MSG_MAX], *pay = NULL;
	struct pm_msg rep = { 0 };
	uint32_t i;
	int r;

	pthread_mutex_lock(&s->mu);
	s->requests++;
	note_conn(s, rq->conn_id);
	if (rq->msg_len && m[0] == OP_HOLD && s->nheld < MAX_CONNS) {
		s->held[s->nheld++] = (struct held){ rq->conn_id, rq->req_id };
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		return;
	}
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);

	if (rq->msg_len && m[0] == OP_BIG) {
		rep.payload = s->big;
		rep.payload_len = PM_PAYLOAD_MAX;
	} else {
		/* echo: msg reversed, payload ^ 0x5a: proves the bytes went
		 * through the handler, not back from some buffer */
		for (i = 0; i < rq->msg_len; i++)
			out[i] = m[rq->msg_len - 1 - i];
		rep.msg = out;
		rep.msg_len = rq->msg_len;
		if (rq->payload_len) {
			pay = malloc(rq->payload_len);
			assert_non_null(pay);
			for (i = 0; i < rq->payload_len; i++)
				pay[i] = ((const uint8_t *)rq->payload)[i] ^
					 0x5a;
		}
		rep.payload = pay;
		rep.payload_len = rq->payload_len;
	}
	r = ops->reply(s->t, rq->conn_id, rq->req_id, 0, &rep);
	if (r) {
		pthread_mutex_lock(&s->mu);
		s->reply_errors++;
		pthread_mutex_unlock(&s->mu);
	}
	free(pay);
}

static void on_close(void *arg, uint64_t conn_id)
{
	struct srv *s = arg;

	pthread_mutex_lock(&s->mu);
	if (s->closes < MAX_CONNS)
		s->closed[s->closes] = conn_id;
	s->closes++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static struct srv *srv_new(const char *listen, const char *ikey, int64_t ival)
{
	struct srv *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;
	struct pm_listener l = { on_request, on_close, s };
	size_t i;

	assert_non_null(s);
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	for (i = 0; i < sizeof(s->big); i++)
		s->big[i] = (uint8_t)(i * 7 + 3);
	s->host = host_new(listen);
	s->host->ikey = ikey;
	s->host->ival = ival;
	assert_int_equal(ops->init(&s->host->h, &s->t), 0);
	assert_int_equal(ops->listen(s->t, &l), 0);
	assert_int_equal(ops->endpoint(s->t, s->ep, sizeof(s->ep)), 0);
	return s;
}

static void srv_free(struct srv *s)
{
	if (s->t)
		ops->fini(s->t);
	host_free(s->host);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* Wait until *field (under s->mu) reaches n, at most ms. */
static bool srv_wait(struct srv *s, const int *field, int n, int ms)
{
	int64_t dl = pm_now_ns() + (int64_t)ms * 1000000;
	struct timespec ts = { dl / SEC, dl % SEC };
	bool ok;

	pthread_mutex_lock(&s->mu);
	while (*field < n)
		if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
			break;
	ok = *field >= n;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

/* --- raw sockets speaking the frame format ----------------------------- */

static int raw_dial(const char *ep)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char err[256];
	int fd = -1;

	assert_int_equal(pm_net_parse(ep, &ss, &sl, err, sizeof(err)), 0);
	assert_int_equal(pm_net_dial((struct sockaddr *)&ss, sl,
				     pm_now_ns() + 5 * SEC, -1, &fd), 0);
	return fd;
}

/* Encode request id with msg m (mlen) and payload p (plen) into buf. */
static size_t put_req(uint8_t *buf, uint64_t id, const void *m, uint32_t mlen,
		      const void *p, uint32_t plen)
{
	struct pm_frame_hdr h;

	pm_frame_encode(&h, PM_FRAME_REQ, id, 0, mlen, plen);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), m, mlen);
	if (plen)
		memcpy(buf + sizeof(h) + mlen, p, plen);
	return sizeof(h) + mlen + plen;
}

/* Read one reply frame from fd into h/body (body >= PM_MSG_MAX +
 * PM_PAYLOAD_MAX), at most until deadline. */
static int raw_reply(int fd, struct pm_frame_hdr *h, uint8_t *body,
		     int64_t deadline)
{
	const char *bad;
	int r;

	r = pm_net_read_all(fd, h, sizeof(*h), deadline);
	if (r)
		return r;
	bad = pm_frame_decode(h);
	if (bad) {
		print_error("reply header field %s is invalid\n", bad);
		return -EPROTO;
	}
	return pm_net_read_all(fd, body, h->msg_len + h->payload_len,
			       deadline);
}

/* --- tests ---------------------------------------------------------- */

static void test_parse_endpoints(void **state)
{
	static const struct {
		const char *ep, *printed;
	} good[] = {
		{ "127.0.0.1:7701", "127.0.0.1:7701" },
		{ "10.1.2.3:0", "10.1.2.3:0" },
		{ "localhost:80", "127.0.0.1:80" },
		{ "*:9", "0.0.0.0:9" },
		{ ":65535", "0.0.0.0:65535" },
		{ "[::1]:7701", "[::1]:7701" },
		{ "[fe80::1:2]:1", "[fe80::1:2]:1" },
	};
	static const char *const bad[] = {
		"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
		"127.0.0.1:-1", "127.0.0.1:1x", "127.0.0.1: 1", "host:1",
		"::1:5", "[::1:5", "[::1]5", "[::1]:", "[127.0.0.1]:5",
		"1.2.3.4.5:1", "127.0.0.1:99999999999999999999",
	};
	struct sockaddr_storage ss;
	char err[256], buf[PM_NET_ADDRSTR_MAX];
	volatile size_t small;
	socklen_t sl;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err[0] = '\0';
		assert_int_equal(pm_net_parse(good[i].ep, &ss, &sl, err,
					      sizeof(err)), 0);
		assert_int_equal(pm_net_format((struct sockaddr *)&ss, buf,
					       sizeof(buf)), 0);
		assert_string_equal(buf, good[i].printed);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(pm_net_parse(bad[i], &ss, &sl, err,
					      sizeof(err)), -EINVAL);
		/* the message names the endpoint it rejects */
		assert_non_null(strstr(err, bad[i]));
	}
	assert_int_equal(pm_net_parse(NULL, &ss, &sl, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(pm_net_parse("127.0.0.1:1", &ss, &sl, err,
				      sizeof(err)), 0);
	/* "127.0.0.1:1" needs 12 bytes (a volatile size, so the compiler
	 * does not flag the truncation we ask for) */
	small = 8;
	assert_int_equal(pm_net_format((struct sockaddr *)&ss, buf, small),
			 -ENOSPC);
}

static void nop_request(void *arg, const struct pm_request *rq)
{
	(void)arg;
	(void)rq;
}

static void nop_close(void *arg, uint64_t conn_id)
{
	(void)arg;
	(void)conn_id;
}

static void test_settings(void **state)
{
	struct pm_listener l = { nop_request, nop_close, NULL };
	struct pm_tctx *t;
	struct host *h;
	struct srv *s;
	char ep[PM_ENDPOINT_MAX];
	int fd;

	(void)state;
	/* no listen key: -EINVAL and a line saying which key */
	h = host_new(NULL);
	assert_int_equal(ops->init(&h->h, &t), 0);
	assert_int_equal(ops->endpoint(t, ep, sizeof(ep)), -ENOTCONN);
	assert_int_equal(ops->listen(t, &l), -EINVAL);
	assert_non_null(strstr(h->last, "transports.tcp.listen"));
	ops->fini(t);
	host_free(h);

	/* unparsable listen */
	h = host_new("127.0.0.1:http");
	assert_int_equal(ops->init(&h->h, &t), 0);
	assert_int_equal(ops->listen(t, &l), -EINVAL);
	assert_non_null(strstr(h->last, "127.0.0.1:http"));
	ops->fini(t);
	host_free(h);

	/* a port someone listens on: the bind error, not a hang */
	s = srv_new("127.0.0.1:0", NULL, 0);
	h = host_new(s->ep);
	assert_int_equal(ops->init(&h->h, &t), 0);
	assert_int_equal(ops->listen(t, &l), -EADDRINUSE);
	ops->fini(t);
	host_free(h);
	srv_free(s);

	/* send_timeout_ms out of range */
	h = host_new("127.0.0.1:0");
	h->ikey = "send_timeout_ms";
	h->ival = 0;
	assert_int_equal(ops->init(&h->h, &t), -EINVAL);
	assert_non_null(strstr(h->last, "send_timeout_ms"));
	host_free(h);

	/* max_conns out of range, both ends */
	h = host_new("127.0.0.1:0");
	h->ikey = "max_conns";
	h->ival = 0;
	assert_int_equal(ops->init(&h->h, &t), -EINVAL);
	assert_non_null(strstr(h->last, "transports.tcp.max_conns"));
	h->last[0] = '\0';
	h->ival = 70000;
	assert_int_equal(ops->init(&h->h, &t), -EINVAL);
	assert_non_null(strstr(h->last, "transports.tcp.max_conns"));
	h->ival = 65536;	/* the largest allowed */
	assert_int_equal(ops->init(&h->h, &t), 0);
	ops->fini(t);
	host_free(h);

	/* advertise: published instead of the wildcard, port kept; a name
	 * is refused (peers parse endpoints numerically) */
	h = host_new("0.0.0.0:0");
	h->keys[1] = "advertise";
	h->vals[1] = "127.0.0.1";
	assert_int_equal(ops->init(&h->h, &t), 0);
	assert_int_equal(ops->listen(t, &l), 0);
	assert_int_equal(ops->endpoint(t, ep, sizeof(ep)), 0);
	assert_int_equal(strncmp(ep, "127.0.0.1:", 10), 0);
	assert_true(atoi(ep + 10) > 0);
	fd = raw_dial(ep);	/* it is really there */
	close(fd);
	ops->fini(t);
	h->vals[1] = "[::1]:0";	/* an endpoint with port 0: bound port */
	assert_int_equal(ops->init(&h->h, &t), 0);
	assert_int_equal(ops->listen(t, &l), 0);
	assert_int_equal(ops->endpoint(t, ep, sizeof(ep)), 0);
	assert_int_equal(strncmp(ep, "[::1]:", 6), 0);
	assert_true(atoi(ep + 6) > 0);
	ops->fini(t);
	h->vals[1] = "192.0.2.7:7701";	/* a forwarded port: as it is */
	assert_int_equal(ops->init(&h->h, &t), 0);
	assert_int_equal(ops->listen(t, &l), 0);
	assert_int_equal(ops->endpoint(t, ep, sizeof(ep)), 0);
	assert_string_equal(ep, "192.0.2.7:7701");
	ops->fini(t);
	h->vals[1] = "node1.example";
	assert_int_equal(ops->init(&h->h, &t), 0);
	assert_int_equal(ops->listen(t, &l), -EINVAL);
	assert_non_null(strstr(h->last, "advertise"));
	ops->fini(t);
	host_free(h);

	/* a wildcard without advertise works but says it cannot be dialled */
	h = host_new("0.0.0.0:0");
	assert_int_equal(ops->init(&h->h, &t), 0);
	assert_int_equal(ops->listen(t, &l), 0);
	assert_non_null(strstr(h->last, "advertise"));
	ops->fini(t);
	host_free(h);
}

struct writer {
	int fd;
	const uint8_t *wire;
	size_t len;
	unsigned seed;
	int err;
};

/* First half in random pieces (down to single bytes), the rest at once. */
static void *split_writer(void *arg)
{
	struct writer *w = arg;
	struct iovec iov;
	size_t off, k;

	for (off = 0; off < w->len / 2 && !w->err; off += k) {
		k = 1 + rand_r(&w->seed) % (rand_r(&w->seed) % 4 ? 3000 : 7);
		if (k > w->len / 2 - off)
			k = w->len / 2 - off;
		iov = (struct iovec){ (void *)(w->wire + off), k };
		w->err = pm_net_writev_all(w->fd, &iov, 1,
					   pm_now_ns() + 5 * SEC);
	}
	iov = (struct iovec){ (void *)(w->wire + off), w->len - off };
	if (!w->err)
		w->err = pm_net_writev_all(w->fd, &iov, 1,
					   pm_now_ns() + 5 * SEC);
	return NULL;
}

/*
 * Requests written in random pieces (down to single bytes) and several in
 * one write: the listener must reassemble each frame whatever the split,
 * including maximum-size ones that wrap its buffer.
 */
static void test_split_and_pipelined(void **state)
{
	enum { N = 12 };
	static uint8_t wire[N * (24 + PM_MSG_MAX + PM_PAYLOAD_MAX)];
	static uint8_t body[PM_MSG_MAX + PM_PAYLOAD_MAX];
	static uint8_t pay[N][PM_PAYLOAD_MAX];
	uint8_t msg[N][PM_MSG_MAX];
	uint32_t mlen[N], plen[N], j;
	unsigned seed = (unsigned)pm_now_ns();
	struct pm_frame_hdr h;
	struct writer w;
	pthread_t th;
	struct srv *s;
	size_t len = 0;
	int fd, i;

	(void)state;
	print_message("  seed %u\n", seed);
	s = srv_new("127.0.0.1:0", NULL, 0);
	for (i = 0; i < N; i++) {
		mlen[i] = i % 3 == 0 ? PM_MSG_MAX :
				       1 + rand_r(&seed) % PM_MSG_MAX;
		plen[i] = i % 4 == 1 ? PM_PAYLOAD_MAX :
				       rand_r(&seed) % (PM_PAYLOAD_MAX + 1);
		for (j = 0; j < mlen[i]; j++)
			msg[i][j] = (uint8_t)rand_r(&seed);
		msg[i][0] = OP_ECHO;
		for (j = 0; j < plen[i]; j++)
			pay[i][j] = (uint8_t)rand_r(&seed);
		len += put_req(wire + len, 1000 + i, msg[i], mlen[i], pay[i],
			       plen[i]);
	}
	fd = raw_dial(s->ep);
	/* write from another thread: replies come back while we write */
	w = (struct writer){ fd, wire, len, seed, 0 };
	assert_int_equal(pthread_create(&th, NULL, split_writer, &w), 0);
	/* one receive thread per connection: replies come in order */
	for (i = 0; i < N; i++) {
		assert_int_equal(raw_reply(fd, &h, body, pm_now_ns() + 5 * SEC),
				 0);
		assert_int_equal(h.kind, PM_FRAME_REP);
		assert_int_equal(h.id, 1000 + i);
		assert_int_equal(h.status, 0);
		assert_int_equal(h.msg_len, mlen[i]);
		assert_int_equal(h.payload_len, plen[i]);
		for (j = 0; j < mlen[i]; j++)
			assert_int_equal(body[j], msg[i][mlen[i] - 1 - j]);
		for (j = 0; j < plen[i]; j++)
			if (body[mlen[i] + j] != (pay[i][j] ^ 0x5a))
				fail_msg("request %d: payload byte %u differs",
					 i, j);
	}
	pthread_join(th, NULL);
	assert_int_equal(w.err, 0);
	close(fd);
	assert_true(srv_wait(s, &s->closes, 1, 5000));
	assert_int_equal(s->reply_errors, 0);
	srv_free(s);
}

/*
 * A peer that sends requests but never reads: once its socket buffers are
 * full, a reply waits at most send_timeout_ms, then the connection is
 * dropped (on_close) and the listener serves others as before.
 */
static void test_slow_reader_dropped(void **state)
{
	uint8_t m[1] = { OP_BIG }, buf[64];
	struct pm_tconn *c;
	struct pm_tctx *ct;
	struct host *ch;
	struct srv *s;
	int64_t t0;
	size_t len;
	int fd, i, rcv = 4096;
	uint64_t rng = 1;

	(void)state;
	s = srv_new("127.0.0.1:0", "send_timeout_ms", 300);
	fd = raw_dial(s->ep);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv,
				    sizeof(rcv)), 0);
	t0 = pm_now_ns();
	/* 16 MiB of replies: beyond what socket buffers hold (4 MiB) */
	for (i = 0; i < 256; i++) {
		struct iovec iov;

		len = put_req(buf, i + 1, m, 1, NULL, 0);
		iov = (struct iovec){ buf, len };
		if (pm_net_writev_all(fd, &iov, 1, pm_now_ns() + 5 * SEC))
			break;	/* the listener dropped us already */
	}
	assert_true(srv_wait(s, &s->closes, 1, 10000));
	print_message("  non-reading peer dropped after %.0f ms, %d replies failed\n",
		      (pm_now_ns() - t0) / 1e6, s->reply_errors);
	/* the one that timed out; requests already received are not handed
	 * to the core once the connection is being dropped */
	assert_int_equal(s->reply_errors, 1);
	close(fd);

	/* everyone else is still served */
	ch = host_new(NULL);
	assert_int_equal(ops->init(&ch->h, &ct), 0);
	assert_int_equal(ops->connect(ct, s->ep, pm_now_ns() + 5 * SEC, &c),
			 0);
	for (i = 0; i < 10; i++) {
		uint8_t q[16], r[16];
		struct pm_msg req = { q, 16, 0, NULL, 0, 0 };
		struct pm_msg rep = { r, 0, 16, NULL, 0, 0 };
		int j;

		for (j = 0; j < 16; j++) {
			rng = rng * 6364136223846793005ULL +
			      1442695040888963407ULL;
			q[j] = (uint8_t)(rng >> 56);
		}
		q[0] = OP_ECHO;
		assert_int_equal(ops->call(c, &req, &rep,
					   pm_now_ns() + 5 * SEC), 0);
		assert_int_equal(rep.msg_len, 16);
		for (j = 0; j < 16; j++)
			assert_int_equal(r[j], q[15 - j]);
	}
	ops->disconnect(c);
	ops->fini(ct);
	host_free(ch);
	srv_free(s);
}

struct racer {
	struct srv *s;
	int ok, notconn, other;
};

/* Reply to every held request as soon as it shows up. */
static void *replier(void *arg)
{
	struct racer *rc = arg;
	struct srv *s = rc->s;
	struct held h;
	int64_t dl = pm_now_ns() + 5 * SEC;
	struct timespec ts = { dl / SEC, dl % SEC };
	int r;

	pthread_mutex_lock(&s->mu);
	while (s->nheld == 0)
		if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
			break;
	if (s->nheld == 0) {
		pthread_mutex_unlock(&s->mu);
		return NULL;
	}
	h = s->held[--s->nheld];
	pthread_mutex_unlock(&s->mu);
	r = ops->reply(s->t, h.conn, h.req, 0, NULL);
	if (r == 0)
		rc->ok++;
	else if (r == -ENOTCONN)
		rc->notconn++;
	else
		rc->other++;
	return NULL;
}

/*
 * reply() from another thread racing drop() and the connection's end:
 * 0 or -ENOTCONN, never a crash or a write to a freed connection (run
 * under ASan to see the latter), and on_close exactly once per connection.
 */
static void test_reply_races_drop(void **state)
{
	enum { ROUNDS = MAX_CONNS };
	struct racer rc = { 0 };
	uint64_t ids[ROUNDS];
	struct srv *s;
	uint8_t buf[64], m[1] = { OP_HOLD };
	size_t len;
	int i, fd;

	(void)state;
	s = srv_new("127.0.0.1:0", NULL, 0);
	rc.s = s;
	for (i = 0; i < ROUNDS; i++) {
		pthread_t th;
		struct iovec iov;
		uint64_t id;

		fd = raw_dial(s->ep);
		len = put_req(buf, 1, m, 1, NULL, 0);
		iov = (struct iovec){ buf, len };
		assert_int_equal(pm_net_writev_all(fd, &iov, 1,
						   pm_now_ns() + 5 * SEC), 0);
		assert_true(srv_wait(s, &s->requests, i + 1, 5000));
		pthread_mutex_lock(&s->mu);
		id = s->held[s->nheld - 1].conn;
		pthread_mutex_unlock(&s->mu);
		ids[i] = id;
		assert_int_equal(pthread_create(&th, NULL, replier, &rc), 0);
		assert_int_equal(ops->drop(s->t, id), 0);
		pthread_join(th, NULL);
		assert_true(srv_wait(s, &s->closes, i + 1, 5000));
		assert_int_equal(ops->drop(s->t, id), -ENOENT);
		assert_int_equal(ops->reply(s->t, id, 1, 0, NULL), -ENOTCONN);
		close(fd);
	}
	print_message("  %d rounds: reply won %d times, lost (-ENOTCONN) %d times\n",
		      ROUNDS, rc.ok, rc.notconn);
	assert_int_equal(rc.other, 0);
	assert_int_equal(rc.ok + rc.notconn, ROUNDS);
	assert_int_equal(s->closes, ROUNDS);
	for (i = 0; i < ROUNDS; i++) {
		assert_int_equal(s->closed[i], ids[i]);
		if (i)
			assert_true(ids[i] > ids[i - 1]);
	}
	srv_free(s);
}

/*
 * Many incoming connections: ids unique and increasing, all served, and
 * fini() closes each (one on_close apiece) without hanging.
 */
static void test_many_connections(void **state)
{
	enum { N = 24 };
	struct pm_tconn *c[N];
	struct pm_tctx *ct;
	struct host *ch;
	struct srv *s;
	int i, j;

	(void)state;
	s = srv_new("127.0.0.1:0", NULL, 0);
	ch = host_new(NULL);
	assert_int_equal(ops->init(&ch->h, &ct), 0);
	for (i = 0; i < N; i++) {
		uint8_t q[4] = { OP_ECHO, (uint8_t)i, 2, 3 }, r[4];
		struct pm_msg req = { q, 4, 0, NULL, 0, 0 };
		struct pm_msg rep = { r, 0, 4, NULL, 0, 0 };

		assert_int_equal(ops->connect(ct, s->ep,
					      pm_now_ns() + 5 * SEC, &c[i]), 0);
		assert_int_equal(ops->call(c[i], &req, &rep,
					   pm_now_ns() + 5 * SEC), 0);
		assert_int_equal(r[2], (uint8_t)i);
	}
	/* one call per connection, in order: ids in order of arrival */
	assert_int_equal(s->nconns, N);
	for (i = 1; i < N; i++)
		assert_true(s->conns[i] > s->conns[i - 1]);
	/* half go away from the client side, the rest with the server */
	for (i = 0; i < N / 2; i++)
		ops->disconnect(c[i]);
	assert_true(srv_wait(s, &s->closes, N / 2, 5000));
	ops->fini(s->t);
	s->t = NULL;
	assert_int_equal(s->closes, N);
	for (i = 0; i < N; i++)
		for (j = i + 1; j < N; j++)
			assert_true(s->closed[i] != s->closed[j]);
	ops->fini(ct);	/* disconnects the other half */
	host_free(ch);
	srv_free(s);
}

/* Threads of this process, from /proc/self/task. */
static int count_threads(void)
{
	struct dirent *e;
	DIR *d = opendir("/proc/self/task");
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* One verified echo of mlen/plen seeded bytes on c; 0 or the error. */
static int echo(struct pm_tconn *c, uint32_t mlen, uint32_t plen,
		unsigned *seed)
{
	static __thread uint8_t q[PM_MSG_MAX], r[PM_MSG_MAX];
	static __thread uint8_t qp[PM_PAYLOAD_MAX], rp[PM_PAYLOAD_MAX];
	struct pm_msg req = { q, mlen, 0, qp, plen, 0 };
	struct pm_msg rep = { r, 0, sizeof(r), rp, 0, sizeof(rp) };
	uint32_t i;
	int ret;

	for (i = 0; i < mlen; i++)
		q[i] = (uint8_t)rand_r(seed);
	if (mlen)
		q[0] = OP_ECHO;
	for (i = 0; i < plen; i++)
		qp[i] = (uint8_t)rand_r(seed);
	ret = ops->call(c, &req, &rep, pm_now_ns() + 10 * SEC);
	if (ret)
		return ret;
	if (rep.msg_len != mlen || rep.payload_len != plen)
		return -EBADMSG;
	for (i = 0; i < mlen; i++)
		if (r[i] != q[mlen - 1 - i])
			return -EBADMSG;
	for (i = 0; i < plen; i++)
		if (rp[i] != (qp[i] ^ 0x5a))
			return -EBADMSG;
	return 0;
}

/*
 * The calling side has no threads of its own: a call sends and reads its
 * reply on the caller's thread (no hand-off, DESIGN.md section 3). Only
 * the listener runs threads (accept, one per incoming connection).
 */
static void test_caller_reads_itself(void **state)
{
	unsigned seed = 7;
	struct pm_tconn *c;
	struct pm_tctx *ct;
	struct host *ch;
	struct srv *s;
	int before, i;

	(void)state;
	s = srv_new("127.0.0.1:0", NULL, 0);
	ch = host_new(NULL);
	before = count_threads();
	assert_int_equal(ops->init(&ch->h, &ct), 0);
	assert_int_equal(ops->connect(ct, s->ep, pm_now_ns() + 5 * SEC, &c),
			 0);
	/* the listener's receive thread for it exists once a call went */
	assert_int_equal(echo(c, 16, 4096, &seed), 0);
	before++;
	for (i = 0; i < 100; i++)
		assert_int_equal(echo(c, 16, i % 2 ? 4096 : 0, &seed), 0);
	assert_int_equal(count_threads(), before);
	ops->fini(ct);
	host_free(ch);
	srv_free(s);
}

struct big {
	struct pm_tconn *c;
	unsigned seed;
	int err;
};

static void *big_caller(void *arg)
{
	struct big *b = arg;
	int i;

	for (i = 0; i < 40 && !b->err; i++)
		b->err = echo(b->c, PM_MSG_MAX, PM_PAYLOAD_MAX, &b->seed);
	return NULL;
}

/*
 * Several threads on one connection, every message of the largest size
 * both ways: more bytes in flight than a default socket buffer, so the
 * reader role must keep moving to whoever is waiting.
 */
static void test_concurrent_large(void **state)
{
	enum { T = 6 };
	struct big b[T];
	pthread_t th[T];
	struct pm_tconn *c;
	struct pm_tctx *ct;
	struct host *ch;
	struct srv *s;
	int i;

	(void)state;
	s = srv_new("127.0.0.1:0", NULL, 0);
	ch = host_new(NULL);
	assert_int_equal(ops->init(&ch->h, &ct), 0);
	assert_int_equal(ops->connect(ct, s->ep, pm_now_ns() + 5 * SEC, &c),
			 0);
	for (i = 0; i < T; i++) {
		b[i] = (struct big){ c, (unsigned)pm_now_ns() + i, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, big_caller,
						&b[i]), 0);
	}
	for (i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		if (b[i].err)
			fail_msg("thread %d: %s", i, strerror(-b[i].err));
	}
	assert_int_equal(s->requests, T * 40);
	ops->fini(ct);
	host_free(ch);
	srv_free(s);
}

/* Wait until this process has at most n threads, at most ms. */
static bool threads_down_to(int n, int ms)
{
	int64_t dl = pm_now_ns() + (int64_t)ms * 1000000;
	struct timespec tick = { 0, 1000000 };

	while (count_threads() > n && pm_now_ns() < dl)
		nanosleep(&tick, NULL);
	return count_threads() <= n;
}

/* The listener closes fd without a byte within 5 s (end of stream or a
 * reset); *name is our end's address, as its log line names it. */
static void expect_refused(int fd, char *name, size_t len)
{
	char c;

	pm_net_fd_name(fd, 1, name, len);
	assert_int_equal(pm_net_read_all(fd, &c, 1, pm_now_ns() + 5 * SEC),
			 -ECONNRESET);
	close(fd);
}

/* Warning and error lines the server logged so far; *last the latest. */
static int srv_lines(struct srv *s, char *last, size_t len)
{
	int n;

	pthread_mutex_lock(&s->host->mu);
	n = s->host->lines;
	snprintf(last, len, "%s", s->host->last);
	pthread_mutex_unlock(&s->host->mu);
	return n;
}

/*
 * max_conns: at the bound a new connection is closed at once, without a
 * thread and never reaching the handler, while the ones open are served
 * on; one warning per episode; when one ends there is room again.
 */
static void test_max_conns(void **state)
{
	unsigned seed = 11;
	struct pm_tconn *c[4];
	struct pm_tctx *ct;
	struct host *ch;
	struct srv *s;
	char name[PM_NET_ADDRSTR_MAX], last[512];
	int i, r, lines, threads;

	(void)state;
	s = srv_new("127.0.0.1:0", "max_conns", 2);
	ch = host_new(NULL);
	assert_int_equal(ops->init(&ch->h, &ct), 0);
	for (i = 0; i < 2; i++) {
		assert_int_equal(ops->connect(ct, s->ep, pm_now_ns() + 5 * SEC,
					      &c[i]), 0);
		assert_int_equal(echo(c[i], 16, 4096, &seed), 0);
	}
	threads = count_threads();
	lines = srv_lines(s, last, sizeof(last));

	/* the third: the kernel completes the handshake, the listener
	 * closes it unread; the warning names the peer and the setting */
	expect_refused(raw_dial(s->ep), name, sizeof(name));
	assert_int_equal(srv_lines(s, last, sizeof(last)), lines + 1);
	print_message("  refused: %s\n", last);
	assert_non_null(strstr(last, name));
	assert_non_null(strstr(last, "transports.tcp.max_conns"));
	lines++;

	/* a call on one more transport connection fails (its one redial is
	 * refused too), and that episode logs nothing more */
	assert_int_equal(ops->connect(ct, s->ep, pm_now_ns() + 5 * SEC,
				      &c[2]), 0);
	r = echo(c[2], 16, 0, &seed);
	print_message("  call on a connection over the bound: %s\n",
		      r ? strerror(-r) : "ok");
	assert_int_equal(r, -ECONNRESET);
	expect_refused(raw_dial(s->ep), name, sizeof(name));
	assert_int_equal(srv_lines(s, last, sizeof(last)), lines);

	/* the two inside are served as before; no thread for the others */
	for (i = 0; i < 2; i++)
		assert_int_equal(echo(c[i], 16, 4096, &seed), 0);
	assert_int_equal(count_threads(), threads);
	assert_int_equal(s->nconns, 2);

	/* one leaves: once its receive thread is gone, a new peer gets in */
	ops->disconnect(c[0]);
	assert_true(srv_wait(s, &s->closes, 1, 5000));
	assert_true(threads_down_to(threads - 1, 5000));
	assert_int_equal(ops->connect(ct, s->ep, pm_now_ns() + 5 * SEC,
				      &c[3]), 0);
	assert_int_equal(echo(c[3], 16, 4096, &seed), 0);
	assert_int_equal(echo(c[1], 16, 4096, &seed), 0);
	assert_int_equal(s->nconns, 3);

	/* full again: a new episode, so a new warning */
	expect_refused(raw_dial(s->ep), name, sizeof(name));
	assert_int_equal(srv_lines(s, last, sizeof(last)), lines + 1);
	assert_non_null(strstr(last, name));

	ops->fini(ct);
	host_free(ch);
	srv_free(s);
}

/* Is a socket of ours in SYN_SENT towards 127.0.0.1:port? */
static bool syn_sent_to(unsigned int port)
{
	char line[256];
	unsigned int rport, st;
	bool found = false;
	FILE *f = fopen("/proc/net/tcp", "r");

	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f))
		if (sscanf(line, " %*d: %*x:%*x %*x:%x %x", &rport, &st) == 2)
			found = rport == port && st == 2;
	fclose(f);
	return found;
}

struct bg_call {
	struct pm_tconn *c;
	int64_t deadline;
	int r;
	int64_t end;
};

static void *bg_call(void *arg)
{
	struct bg_call *b = arg;
	uint8_t q[4] = { OP_ECHO }, r[4];
	struct pm_msg req = { q, 4, 0, NULL, 0, 0 };
	struct pm_msg rep = { r, 0, sizeof(r), NULL, 0, 0 };

	b->r = ops->call(b->c, &req, &rep, b->deadline);
	b->end = pm_now_ns();
	return NULL;
}

/*
 * A peer that is gone and whose address now drops SYNs (a listener with a
 * full accept queue): the redial inside call() keeps to the call's
 * deadline, and disconnect() aborts a redial in progress at once.
 */
static void test_redial_black_hole(void **state)
{
	struct sockaddr_storage ss;
	struct bg_call b;
	struct pm_tconn *c;
	struct pm_tctx *ct;
	struct host *ch;
	struct srv *s;
	pthread_t th;
	char ep[PM_ENDPOINT_MAX], err[256];
	uint8_t q[4] = { OP_ECHO }, r[4];
	struct pm_msg req = { q, 4, 0, NULL, 0, 0 };
	struct pm_msg rep = { r, 0, sizeof(r), NULL, 0, 0 };
	socklen_t sl;
	unsigned int port;
	int64_t t0, dl;
	int bh, filler, one = 1;

	(void)state;
	s = srv_new("127.0.0.1:0", NULL, 0);
	snprintf(ep, sizeof(ep), "%s", s->ep);
	port = (unsigned int)atoi(strrchr(ep, ':') + 1);
	ch = host_new(NULL);
	assert_int_equal(ops->init(&ch->h, &ct), 0);
	assert_int_equal(ops->connect(ct, ep, pm_now_ns() + 5 * SEC, &c), 0);
	assert_int_equal(ops->call(c, &req, &rep, pm_now_ns() + 5 * SEC), 0);
	srv_free(s);

	/* backlog 0 holds one connection; with it queued, SYNs drop */
	assert_int_equal(pm_net_parse(ep, &ss, &sl, err, sizeof(err)), 0);
	bh = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(bh >= 0);
	assert_int_equal(setsockopt(bh, SOL_SOCKET, SO_REUSEADDR, &one,
				    sizeof(one)), 0);
	assert_int_equal(bind(bh, (struct sockaddr *)&ss, sl), 0);
	assert_int_equal(listen(bh, 0), 0);
	filler = raw_dial(ep);

	t0 = pm_now_ns();
	dl = t0 + 300 * 1000000LL;
	assert_int_equal(ops->call(c, &req, &rep, dl), -ETIMEDOUT);
	print_message("  call redialling into a black hole: -ETIMEDOUT after %.1f ms (deadline 300 ms)\n",
		      (pm_now_ns() - t0) / 1e6);
	assert_true(pm_now_ns() >= dl);
	assert_true(pm_now_ns() < dl + 2 * SEC);

	b = (struct bg_call){ c, pm_now_ns() + 30 * SEC, 0, 0 };
	assert_int_equal(pthread_create(&th, NULL, bg_call, &b), 0);
	dl = pm_now_ns() + 5 * SEC;
	while (!syn_sent_to(port) && pm_now_ns() < dl)
		sched_yield();
	assert_true(syn_sent_to(port));
	t0 = pm_now_ns();
	ops->disconnect(c);
	pthread_join(th, NULL);
	print_message("  disconnect during the redial: call returned %s %.1f ms later\n",
		      strerror(-b.r), (b.end - t0) / 1e6);
	assert_int_equal(b.r, -ESHUTDOWN);
	assert_true(b.end - t0 < 2 * SEC);

	close(filler);
	close(bh);
	ops->fini(ct);
	host_free(ch);
}

/* --- a raw peer of the test's own, closing connections its own way ---- */

/* A listening socket on 127.0.0.1, port picked by the kernel; ep its
 * endpoint. */
static int raw_listen(char *ep, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char err[256];
	int fd = -1;

	assert_int_equal(pm_net_parse("127.0.0.1:0", &ss, &sl, err,
				      sizeof(err)), 0);
	assert_int_equal(pm_net_listen((struct sockaddr *)&ss, sl, 8, &fd),
			 0);
	pm_net_fd_name(fd, 1, ep, len);
	return fd;
}

/* The next connection on lfd within 5 s; fails the test if none comes. */
static int raw_accept(int lfd)
{
	int fd;

	if (pm_net_wait(lfd, POLLIN, pm_now_ns() + 5 * SEC) < 0)
		fail_msg("the plugin dialled no connection within 5 s");
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* Is a connection waiting on lfd now? A call redials before it returns,
 * so once it has returned, this tells whether it did. */
static bool raw_pending(int lfd)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/* Read one request frame from fd within 5 s; answer it (msg reversed) if
 * reply. Fails the test on anything else. */
static void raw_serve(int fd, bool reply)
{
	static uint8_t body[PM_MSG_MAX + PM_PAYLOAD_MAX];
	uint8_t out[PM_MSG_MAX];
	struct pm_frame_hdr h;
	struct iovec iov[2];
	uint32_t i;
	int r;

	r = raw_reply(fd, &h, body, pm_now_ns() + 5 * SEC);
	if (r)
		fail_msg("raw peer: no request frame within 5 s: %s",
			 strerror(-r));
	assert_int_equal(h.kind, PM_FRAME_REQ);
	if (!reply)
		return;
	for (i = 0; i < h.msg_len; i++)
		out[i] = body[h.msg_len - 1 - i];
	pm_frame_encode(&h, PM_FRAME_REP, h.id, 0, h.msg_len, 0);
	iov[0] = (struct iovec){ &h, sizeof(h) };
	iov[1] = (struct iovec){ out, h.msg_len };
	assert_int_equal(pm_net_writev_all(fd, iov, 2, pm_now_ns() + 5 * SEC),
			 0);
}

/* The port of fd's peer. */
static unsigned int peer_port(int fd)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	assert_int_equal(getpeername(fd, (struct sockaddr *)&sa, &sl), 0);
	return ntohs(sa.sin_port);
}

/* The state (as /proc/net/tcp numbers it) of our socket with local port
 * lport and remote port rport; -1 if there is none. */
static int tcp_state(unsigned int lport, unsigned int rport)
{
	char line[256];
	unsigned int lp, rp, st;
	int found = -1;
	FILE *f = fopen("/proc/net/tcp", "r");

	assert_non_null(f);
	while (found < 0 && fgets(line, sizeof(line), f))
		if (sscanf(line, " %*d: %*x:%x %*x:%x %x", &lp, &rp, &st) ==
		    3 && lp == lport && rp == rport)
			found = (int)st;
	fclose(f);
	return found;
}

#define TCP_CLOSE_WAIT 8

/* A client context connected to the raw peer on lfd/ep; *afd the accepted
 * end. */
static void raw_pair(int lfd, const char *ep, struct host **ch,
		     struct pm_tctx **ct, struct pm_tconn **c, int *afd)
{
	*ch = host_new(NULL);
	assert_int_equal(ops->init(&(*ch)->h, ct), 0);
	assert_int_equal(ops->connect(*ct, ep, pm_now_ns() + 5 * SEC, c), 0);
	*afd = raw_accept(lfd);
}

/*
 * The peer closes while the connection is idle (it restarted): the next
 * call's request goes into a connection whose peer is gone, which never
 * acknowledges it. The call redials once, sends it again and succeeds.
 */
static void test_idle_close_resends(void **state)
{
	char ep[PM_ENDPOINT_MAX];
	struct bg_call b;
	struct pm_tconn *c;
	struct pm_tctx *ct;
	struct host *ch;
	unsigned int lport, rport;
	pthread_t th;
	int64_t dl;
	int lfd, a, n;

	(void)state;
	lfd = raw_listen(ep, sizeof(ep));
	rport = (unsigned int)atoi(strrchr(ep, ':') + 1);
	raw_pair(lfd, ep, &ch, &ct, &c, &a);
	lport = peer_port(a);

	b = (struct bg_call){ c, pm_now_ns() + 10 * SEC, 0, 0 };
	assert_int_equal(pthread_create(&th, NULL, bg_call, &b), 0);
	raw_serve(a, true);
	pthread_join(th, NULL);
	assert_int_equal(b.r, 0);

	close(a);
	/* our end has taken the FIN once it is in CLOSE_WAIT */
	dl = pm_now_ns() + 5 * SEC;
	while (tcp_state(lport, rport) != TCP_CLOSE_WAIT && pm_now_ns() < dl)
		sched_yield();
	assert_int_equal(tcp_state(lport, rport), TCP_CLOSE_WAIT);

	b = (struct bg_call){ c, pm_now_ns() + 10 * SEC, 0, 0 };
	assert_int_equal(pthread_create(&th, NULL, bg_call, &b), 0);
	n = raw_accept(lfd);
	raw_serve(n, true);
	pthread_join(th, NULL);
	print_message("  call after the peer closed an idle connection: %s\n",
		      b.r ? strerror(-b.r) : "ok");
	assert_int_equal(b.r, 0);
	assert_false(raw_pending(lfd));

	ops->fini(ct);
	host_free(ch);
	close(n);
	close(lfd);
}

/*
 * The peer reads the request, then closes without a reply: its FIN
 * acknowledges the request, so the peer may have acted on it, and the call
 * fails rather than send it twice. The call after that redials.
 */
static void test_read_then_close_fails(void **state)
{
	char ep[PM_ENDPOINT_MAX];
	struct bg_call b;
	struct pm_tconn *c;
	struct pm_tctx *ct;
	struct host *ch;
	pthread_t th;
	int lfd, a, n;

	(void)state;
	lfd = raw_listen(ep, sizeof(ep));
	raw_pair(lfd, ep, &ch, &ct, &c, &a);

	b = (struct bg_call){ c, pm_now_ns() + 10 * SEC, 0, 0 };
	assert_int_equal(pthread_create(&th, NULL, bg_call, &b), 0);
	raw_serve(a, false);
	close(a);
	pthread_join(th, NULL);
	print_message("  call whose request the peer read before closing: %s\n",
		      b.r ? strerror(-b.r) : "ok");
	assert_int_equal(b.r, -ECONNRESET);
	assert_false(raw_pending(lfd));

	b = (struct bg_call){ c, pm_now_ns() + 10 * SEC, 0, 0 };
	assert_int_equal(pthread_create(&th, NULL, bg_call, &b), 0);
	n = raw_accept(lfd);
	raw_serve(n, true);
	pthread_join(th, NULL);
	assert_int_equal(b.r, 0);

	ops->fini(ct);
	host_free(ch);
	close(n);
	close(lfd);
}

/*
 * The peer reads one request and closes with a second unread: it resets
 * the connection, and its acknowledgement of the first may ride only on
 * that RST (delayed ACKs: TCP_QUICKACK off), which the calling side never
 * applies. Without a FIN nothing bounds what the peer took: both calls
 * fail, neither is sent again.
 */
static void test_reset_fails(void **state)
{
	char ep[PM_ENDPOINT_MAX];
	struct bg_call b1, b2;
	struct pm_tconn *c;
	struct pm_tctx *ct;
	struct host *ch;
	pthread_t t1, t2;
	int64_t dl;
	int lfd, a, zero = 0, inq = 0;

	(void)state;
	lfd = raw_listen(ep, sizeof(ep));
	raw_pair(lfd, ep, &ch, &ct, &c, &a);
	assert_int_equal(setsockopt(a, IPPROTO_TCP, TCP_QUICKACK, &zero,
				    sizeof(zero)), 0);

	b1 = (struct bg_call){ c, pm_now_ns() + 10 * SEC, 0, 0 };
	assert_int_equal(pthread_create(&t1, NULL, bg_call, &b1), 0);
	raw_serve(a, false);
	b2 = (struct bg_call){ c, pm_now_ns() + 10 * SEC, 0, 0 };
	assert_int_equal(pthread_create(&t2, NULL, bg_call, &b2), 0);
	/* the second request is in, unread: close() answers with a RST */
	dl = pm_now_ns() + 5 * SEC;
	while (pm_net_wait(a, POLLIN, dl) == 0 &&
	       ioctl(a, FIONREAD, &inq) == 0 &&
	       inq < (int)(PM_FRAME_HDR_LEN + 4))
		sched_yield();
	assert_int_equal(inq, PM_FRAME_HDR_LEN + 4);
	close(a);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	print_message("  calls on a connection the peer reset: %s, %s\n",
		      b1.r ? strerror(-b1.r) : "ok",
		      b2.r ? strerror(-b2.r) : "ok");
	assert_int_equal(b1.r, -ECONNRESET);
	assert_int_equal(b2.r, -ECONNRESET);
	assert_false(raw_pending(lfd));

	ops->fini(ct);
	host_free(ch);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_endpoints),
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_split_and_pipelined),
		cmocka_unit_test(test_slow_reader_dropped),
		cmocka_unit_test(test_reply_races_drop),
		cmocka_unit_test(test_many_connections),
		cmocka_unit_test(test_max_conns),
		cmocka_unit_test(test_caller_reads_itself),
		cmocka_unit_test(test_concurrent_large),
		cmocka_unit_test(test_redial_black_hole),
		cmocka_unit_test(test_idle_close_resends),
		cmocka_unit_test(test_read_then_close_fails),
		cmocka_unit_test(test_reset_fails),
	};
	const char *b = getenv("PM_BUILD");
	char path[4096];
	pm_transport_entry_fn entry;
	int r;

	snprintf(path, sizeof(path), "%s/plugins/tcp.so", b ? b : "build");
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		fprintf(stderr, "tt_test: %s\n", dlerror());
		return 1;
	}
	entry = (pm_transport_entry_fn)dlsym(dl, PM_TRANSPORT_ENTRY_NAME);
	if (!entry) {
		fprintf(stderr, "tt_test: %s: no %s\n", path,
			PM_TRANSPORT_ENTRY_NAME);
		return 1;
	}
	ops = entry();
	r = cmocka_run_group_tests_name("tcp transport", tests, NULL, NULL);
	dlclose(dl);
	return r;
}
