// SPDX-License-Identifier: MIT
/*
 * The pieces the tcp transport's tests stand on: the host table, the
 * server, a client instance, verified echoes and raw frames on a socket.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tt_test.h"

struct timespec mono_after_ms(int ms)
{
	int64_t dl = pm_now_ns() + (int64_t)ms * 1000000;

	return (struct timespec){ dl / SEC, dl % SEC };
}

/* --- host table: settings from a small key list, log lines counted ---- */

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

struct host *host_new(const char *listen)
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

void host_free(struct host *h)
{
	pthread_mutex_destroy(&h->mu);
	free(h);
}

/* --- a server whose handler answers per the first byte of the msg ------ */

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
	if (rq->msg_len && m[0] == OP_HOLD && s->nheld < MAX_HELD) {
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

struct srv *srv_new(const char *listen, const char *ikey, int64_t ival)
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

void srv_free(struct srv *s)
{
	if (s->t)
		ops->fini(s->t);
	host_free(s->host);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* Wait until *field (under s->mu) reaches n, at most ms. */
bool srv_wait(struct srv *s, const int *field, int n, int ms)
{
	struct timespec ts = mono_after_ms(ms);
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

int raw_dial(const char *ep)
{
	struct sockaddr_storage ss;
	socklen_t sl = 0;	/* pm_net_parse sets it; inlined, gcc doubts it */
	char err[256];
	int fd = -1;

	assert_int_equal(pm_net_parse(ep, &ss, &sl, err, sizeof(err)), 0);
	assert_int_equal(pm_net_dial((struct sockaddr *)&ss, sl,
				     pm_now_ns() + 5 * SEC, -1, &fd), 0);
	return fd;
}

/* Encode request id with msg m (mlen) and payload p (plen) into buf. */
size_t put_req(uint8_t *buf, uint64_t id, const void *m, uint32_t mlen,
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
int raw_reply(int fd, struct pm_frame_hdr *h, uint8_t *body,
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

/* Write one request frame with msg m (mlen) and no payload; 0 or the
 * error. */
int raw_send_req(int fd, uint64_t id, const void *m, uint32_t mlen)
{
	uint8_t buf[PM_FRAME_HDR_LEN + PM_MSG_MAX];
	struct iovec iov = { buf, put_req(buf, id, m, mlen, NULL, 0) };

	return pm_net_writev_all(fd, &iov, 1, pm_now_ns() + 5 * SEC);
}

/* --- a client instance of the plugin ----------------------------------- */

struct client *client_new(void)
{
	struct client *cl = calloc(1, sizeof(*cl));

	assert_non_null(cl);
	cl->host = host_new(NULL);
	assert_int_equal(ops->init(&cl->host->h, &cl->t), 0);
	return cl;
}

/* A connection to ep, made within 5 s. */
struct pm_tconn *client_dial(struct client *cl, const char *ep)
{
	struct pm_tconn *c = NULL;

	assert_int_equal(ops->connect(cl->t, ep, pm_now_ns() + 5 * SEC, &c),
			 0);
	return c;
}

/* fini disconnects what the test left connected. */
void client_free(struct client *cl)
{
	ops->fini(cl->t);
	host_free(cl->host);
	free(cl);
}

/* Threads of this process, from /proc/self/task. */
int count_threads(void)
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
int echo(struct pm_tconn *c, uint32_t mlen, uint32_t plen, unsigned *seed)
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
