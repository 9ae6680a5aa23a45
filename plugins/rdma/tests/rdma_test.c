/* SPDX-License-Identifier: MIT */
/*
 * Tests of the RDMA transport plugin that only an RDMA device can run (the
 * QEMU guest's soft-RoCE), beyond the shared conformance suite: echo with
 * verified payloads, concurrency, late replies, drop/on_close, a peer that
 * vanishes without a CM disconnect (heartbeat), and malformed frames sent
 * from a raw verbs client.
 *
 *   PM_RDMA_LISTEN=IP:0 [PM_RDMA_LISTEN2=IP2:0] rdma_test build/plugins/rdma.so
 *
 * Without a usable device every test is skipped with the probe's reason
 * (exit 0), unless PM_RDMA_REQUIRE=1, which makes that a failure.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <pagemesh/transport.h>

#include "../../common/frame.h"
#include "../rv.h"	/* rv_parse_endpoint, rv_format_addr (rv_addr.c) */

#define SEC 1000000000LL

static const struct pm_transport_ops *ops;
static char skip_why[300];
static const char *listen_ip = "127.0.0.1:0";
static const char *listen_ip2;

/* --- host table ----------------------------------------------------------- */

struct th {
	struct pm_host host;
	char listen[PM_ENDPOINT_MAX];
	int64_t depth;		/* 0: not configured */
	int64_t max_conns;	/* 0: not configured */
	const char *who;
};

static void th_log(void *ctx, int level, const char *fmt, ...)
{
	struct th *h = ctx;
	va_list ap;

	if (level > PM_LOG_INFO && !getenv("PM_RDMA_DEBUG"))
		return;
	fprintf(stderr, "%.3f [%s] rdma: ", (double)pm_now_ns() / SEC,
		h->who);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int th_cfg_string(void *ctx, const char *key, const char **out)
{
	struct th *h = ctx;

	if (strcmp(key, "listen") || !h->listen[0])
		return -ENOENT;
	*out = h->listen;
	return 0;
}

static int th_cfg_int(void *ctx, const char *key, int64_t *out)
{
	struct th *h = ctx;

	if (!strcmp(key, "depth") && h->depth) {
		*out = h->depth;
		return 0;
	}
	if (!strcmp(key, "max_conns") && h->max_conns) {
		*out = h->max_conns;
		return 0;
	}
	return -ENOENT;
}

static void th_init(struct th *h, const char *who, const char *listen)
{
	memset(h, 0, sizeof(*h));
	h->host.size = sizeof(h->host);
	h->host.abi_major = PM_TRANSPORT_ABI_MAJOR;
	h->host.abi_minor = PM_TRANSPORT_ABI_MINOR;
	h->host.ctx = h;
	h->host.name = "rdma";
	h->host.page_size = PM_PAGE_SIZE;
	h->host.log = th_log;
	h->host.cfg_string = th_cfg_string;
	h->host.cfg_int = th_cfg_int;
	h->who = who;
	if (listen)
		snprintf(h->listen, sizeof(h->listen), "%s", listen);
}

/* --- a server instance with a scriptable handler ------------------------- */

#define MAX_HELD 512

struct held {
	uint64_t conn_id, req_id;
};

struct srv {
	struct th th;
	struct pm_tctx *t;
	char ep[PM_ENDPOINT_MAX];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int nreq;
	int nclose;
	uint64_t last_conn;
	struct held held[MAX_HELD];
	int nheld;
	uint8_t *big;
};

static void wait_init(pthread_cond_t *c)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

static int wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t dl)
{
	struct timespec ts = { dl / SEC, dl % SEC };

	return pthread_cond_timedwait(c, m, &ts);
}

/* Handler: the first byte of the message says what to do. */
static void srv_on_request(void *arg, const struct pm_request *r)
{
	struct srv *s = arg;
	const uint8_t *m = r->msg;
	struct pm_msg rep = { 0 };
	char c = r->msg_len ? (char)m[0] : 'E';

	pthread_mutex_lock(&s->lock);
	s->nreq++;
	s->last_conn = r->conn_id;
	if (c == 'H' && s->nheld < MAX_HELD) {
		s->held[s->nheld].conn_id = r->conn_id;
		s->held[s->nheld].req_id = r->req_id;
		s->nheld++;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);

	switch (c) {
	case 'E':	/* echo message and payload */
		rep.msg = (void *)r->msg;
		rep.msg_len = r->msg_len;
		rep.payload = (void *)r->payload;
		rep.payload_len = r->payload_len;
		ops->reply(s->t, r->conn_id, r->req_id, 0, &rep);
		break;
	case 'S':	/* remote status */
		ops->reply(s->t, r->conn_id, r->req_id, -ENOENT, NULL);
		break;
	case 'B':	/* a payload larger than callers allow */
		rep.payload = s->big;
		rep.payload_len = PM_PAYLOAD_MAX;
		ops->reply(s->t, r->conn_id, r->req_id, 0, &rep);
		break;
	default:	/* 'H' held for later, 'N' never answered */
		break;
	}
}

static void srv_on_close(void *arg, uint64_t conn_id)
{
	struct srv *s = arg;

	(void)conn_id;
	pthread_mutex_lock(&s->lock);
	s->nclose++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void srv_start(struct srv *s, const char *listen)
{
	struct pm_listener lst = { srv_on_request, srv_on_close, s };

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	wait_init(&s->cond);
	s->big = calloc(1, PM_PAYLOAD_MAX);
	assert_non_null(s->big);
	th_init(&s->th, "server", listen);
	assert_int_equal(ops->init(&s->th.host, &s->t), 0);
	assert_int_equal(ops->listen(s->t, &lst), 0);
	assert_int_equal(ops->endpoint(s->t, s->ep, sizeof(s->ep)), 0);
}

static void srv_stop(struct srv *s)
{
	if (s->t)
		ops->fini(s->t);
	s->t = NULL;
	free(s->big);
	s->big = NULL;
}

/* Wait until *field (read under s->lock) reaches want; false on timeout. */
static bool srv_wait(struct srv *s, int *field, int want, int64_t dl)
{
	bool ok;

	pthread_mutex_lock(&s->lock);
	while (*field < want)
		if (wait_until(&s->cond, &s->lock, dl) == ETIMEDOUT)
			break;
	ok = *field >= want;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

struct cli {
	struct th th;
	struct pm_tctx *t;
	struct pm_tconn *c;
};

static void cli_start(struct cli *c, const char *ep)
{
	th_init(&c->th, "client", NULL);
	assert_int_equal(ops->init(&c->th.host, &c->t), 0);
	assert_int_equal(ops->connect(c->t, ep, pm_now_ns() + 10 * SEC, &c->c),
			 0);
}

static void cli_stop(struct cli *c)
{
	if (c->c)
		ops->disconnect(c->c);
	c->c = NULL;
	if (c->t)
		ops->fini(c->t);
	c->t = NULL;
}

/* One echo call with random sizes; 0 when the reply matches byte for byte. */
static int echo_once(struct pm_tconn *c, unsigned *seed, uint32_t mlen,
		     uint32_t plen)
{
	uint8_t *m = malloc(PM_MSG_MAX), *p = malloc(PM_PAYLOAD_MAX);
	uint8_t *rm = malloc(PM_MSG_MAX), *rp = malloc(PM_PAYLOAD_MAX);
	struct pm_msg req = { m, mlen, 0, p, plen, 0 };
	struct pm_msg rep = { rm, 0, PM_MSG_MAX, rp, 0, PM_PAYLOAD_MAX };
	uint32_t i;
	int ret;

	for (i = 0; i < mlen; i++)
		m[i] = (uint8_t)rand_r(seed);
	if (mlen)
		m[0] = 'E';
	for (i = 0; i < plen; i++)
		p[i] = (uint8_t)rand_r(seed);
	ret = ops->call(c, &req, &rep, pm_now_ns() + 10 * SEC);
	if (ret == 0 && (rep.msg_len != mlen || rep.payload_len != plen ||
			 memcmp(rm, m, mlen) || memcmp(rp, p, plen)))
		ret = -EBADMSG;
	free(m);
	free(p);
	free(rm);
	free(rp);
	return ret;
}

static void skip_if_no_device(void)
{
	if (skip_why[0]) {
		print_message("SKIP: %s\n", skip_why);
		skip();
	}
}

/* --- tests ---------------------------------------------------------------- */

static void test_echo_sizes(void **state)
{
	static const uint32_t ms[] = { 0, 1, 17, PM_MSG_MAX };
	static const uint32_t ps[] = { 0, 1, 4095, PM_PAGE_SIZE,
				       PM_PAYLOAD_MAX };
	unsigned seed = (unsigned)pm_now_ns();
	struct srv s;
	struct cli c;
	size_t i, j;

	(void)state;
	skip_if_no_device();
	srv_start(&s, listen_ip);
	cli_start(&c, s.ep);
	for (i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
		for (j = 0; j < sizeof(ps) / sizeof(ps[0]); j++)
			assert_int_equal(echo_once(c.c, &seed, ms[i], ps[j]),
					 0);
	cli_stop(&c);
	srv_stop(&s);
}

static void test_status_and_emsgsize(void **state)
{
	uint8_t m = 'S', buf[PM_PAGE_SIZE];
	struct pm_msg req = { &m, 1, 0, NULL, 0, 0 };
	struct pm_msg rep = { NULL, 0, 0, buf, 0, sizeof(buf) };
	struct srv s;
	struct cli c;

	(void)state;
	skip_if_no_device();
	srv_start(&s, listen_ip);
	cli_start(&c, s.ep);
	assert_int_equal(ops->call(c.c, &req, &rep, pm_now_ns() + 10 * SEC),
			 -ENOENT);
	m = 'B';
	assert_int_equal(ops->call(c.c, &req, &rep, pm_now_ns() + 10 * SEC),
			 -EMSGSIZE);
	/* A request over the limits never leaves. */
	req.payload_len = PM_PAYLOAD_MAX + 1;
	req.payload = buf;
	assert_int_equal(ops->call(c.c, &req, &rep, pm_now_ns() + SEC),
			 -EMSGSIZE);
	cli_stop(&c);
	srv_stop(&s);
}

struct worker {
	struct pm_tconn *c;
	int calls;
	int failed;
	unsigned seed;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = 0; i < w->calls; i++) {
		uint32_t pl = (uint32_t)rand_r(&w->seed) % (2 * PM_PAGE_SIZE);

		if (echo_once(w->c, &w->seed, 1 + (uint32_t)rand_r(&w->seed) %
			      PM_MSG_MAX, pl))
			w->failed++;
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	enum { NT = 6, NC = 150 };
	struct worker w[NT];
	pthread_t th[NT];
	struct srv s;
	struct cli c;
	int i;

	(void)state;
	skip_if_no_device();
	srv_start(&s, listen_ip);
	cli_start(&c, s.ep);
	for (i = 0; i < NT; i++) {
		w[i] = (struct worker){ c.c, NC, 0, (unsigned)i * 7919u + 1 };
		assert_int_equal(pthread_create(&th[i], NULL, worker_main,
						&w[i]), 0);
	}
	for (i = 0; i < NT; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failed, 0);
	}
	assert_int_equal(s.nreq, NT * NC);
	cli_stop(&c);
	srv_stop(&s);
}

struct held_call {
	struct pm_tconn *c;
	int idx;
	int ret;
	uint32_t got;
};

static void *held_call_main(void *arg)
{
	struct held_call *h = arg;
	uint8_t m[8] = { 'H' };
	uint8_t rm[8];
	struct pm_msg req = { m, 5, 0, NULL, 0, 0 };
	struct pm_msg rep = { rm, 0, sizeof(rm), NULL, 0, 0 };

	memcpy(m + 1, &h->idx, sizeof(h->idx));
	h->ret = ops->call(h->c, &req, &rep, pm_now_ns() + 20 * SEC);
	if (h->ret == 0 && rep.msg_len == 4)
		memcpy(&h->got, rm, 4);
	return NULL;
}

/* Requests held by the server are answered later, in reverse order, from
 * this thread; every caller gets its own answer. */
static void test_late_replies(void **state)
{
	enum { N = 16 };
	struct held_call hc[N];
	pthread_t th[N];
	struct srv s;
	struct cli c;
	int i;

	(void)state;
	skip_if_no_device();
	srv_start(&s, listen_ip);
	cli_start(&c, s.ep);
	for (i = 0; i < N; i++) {
		hc[i] = (struct held_call){ c.c, i, 1, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, held_call_main,
						&hc[i]), 0);
	}
	assert_true(srv_wait(&s, &s.nheld, N, pm_now_ns() + 10 * SEC));
	for (i = N - 1; i >= 0; i--) {
		/* Answer with the index the caller put in its request; the
		 * server does not know it, so echo the request id order. */
		uint32_t tag = (uint32_t)i;
		struct pm_msg rep = { &tag, 4, 0, NULL, 0, 0 };

		assert_int_equal(ops->reply(s.t, s.held[i].conn_id,
					    s.held[i].req_id, 0, &rep), 0);
	}
	for (i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(hc[i].ret, 0);
	}
	/* Each reply went to exactly one caller: the tags are a permutation. */
	{
		int seen[N] = { 0 };

		for (i = 0; i < N; i++) {
			assert_true(hc[i].got < N);
			seen[hc[i].got]++;
		}
		for (i = 0; i < N; i++)
			assert_int_equal(seen[i], 1);
	}
	cli_stop(&c);
	srv_stop(&s);
}

static void test_timeout_then_usable(void **state)
{
	uint8_t m = 'N';
	struct pm_msg req = { &m, 1, 0, NULL, 0, 0 };
	struct pm_msg rep = { 0 };
	unsigned seed = 42;
	struct srv s;
	struct cli c;
	int64_t t0;

	(void)state;
	skip_if_no_device();
	srv_start(&s, listen_ip);
	cli_start(&c, s.ep);
	t0 = pm_now_ns();
	assert_int_equal(ops->call(c.c, &req, &rep, t0 + SEC / 2),
			 -ETIMEDOUT);
	assert_true(pm_now_ns() - t0 < 3 * SEC);
	assert_int_equal(echo_once(c.c, &seed, 8, PM_PAGE_SIZE), 0);
	cli_stop(&c);
	srv_stop(&s);
}

/* drop() closes the connection: on_close once, reply -> -ENOTCONN, and the
 * client's next call redials. */
static void test_drop(void **state)
{
	uint8_t m = 'H';
	struct pm_msg req = { &m, 1, 0, NULL, 0, 0 };
	struct pm_msg rep = { 0 };
	struct held_call hc = { 0 };
	unsigned seed = 7;
	pthread_t th;
	struct srv s;
	struct cli c;
	uint64_t conn;
	int i;

	(void)state;
	(void)req;
	(void)rep;
	skip_if_no_device();
	srv_start(&s, listen_ip);
	cli_start(&c, s.ep);
	hc.c = c.c;
	assert_int_equal(pthread_create(&th, NULL, held_call_main, &hc), 0);
	assert_true(srv_wait(&s, &s.nheld, 1, pm_now_ns() + 10 * SEC));
	conn = s.held[0].conn_id;
	assert_int_equal(ops->drop(s.t, conn), 0);
	assert_true(srv_wait(&s, &s.nclose, 1, pm_now_ns() + 5 * SEC));
	pthread_join(th, NULL);
	assert_true(hc.ret < 0 && hc.ret != -ETIMEDOUT);
	assert_int_equal(ops->reply(s.t, conn, s.held[0].req_id, 0, NULL),
			 -ENOTCONN);
	assert_int_equal(ops->drop(s.t, 999999), -ENOENT);
	assert_int_equal(echo_once(c.c, &seed, 3, 100), 0);

	/* Idle connection dropped: the next call, made right after on_close,
	 * must redial rather than go into the dead queue pair. */
	for (i = 0; i < 5; i++) {
		pthread_mutex_lock(&s.lock);
		conn = s.last_conn;
		pthread_mutex_unlock(&s.lock);
		assert_int_equal(ops->drop(s.t, conn), 0);
		assert_true(srv_wait(&s, &s.nclose, 2 + i,
				     pm_now_ns() + 5 * SEC));
		assert_int_equal(ops->drop(s.t, conn), -ENOENT);
		assert_int_equal(echo_once(c.c, &seed, 3, 100), 0);
	}
	cli_stop(&c);
	srv_stop(&s);
	assert_int_equal(s.nclose, 7);
	(void)m;
}

/* The server instance goes away mid-call: the call fails long before its
 * deadline; a new server on the same endpoint is reached by the next call. */
static void test_peer_restart(void **state)
{
	struct held_call hc = { 0 };
	unsigned seed = 9;
	pthread_t th;
	struct srv s;
	struct cli c;
	int64_t t0;
	char ep[PM_ENDPOINT_MAX];

	(void)state;
	skip_if_no_device();
	srv_start(&s, listen_ip);
	snprintf(ep, sizeof(ep), "%s", s.ep);
	cli_start(&c, ep);
	hc.c = c.c;
	assert_int_equal(pthread_create(&th, NULL, held_call_main, &hc), 0);
	assert_true(srv_wait(&s, &s.nheld, 1, pm_now_ns() + 10 * SEC));
	t0 = pm_now_ns();
	srv_stop(&s);
	assert_int_equal(s.nclose, 1);
	pthread_join(th, NULL);
	assert_true(hc.ret == -ECONNRESET || hc.ret == -EPIPE);
	assert_true(pm_now_ns() - t0 < 5 * SEC);

	srv_start(&s, ep);
	assert_string_equal(s.ep, ep);
	assert_int_equal(echo_once(c.c, &seed, 10, 1000), 0);
	cli_stop(&c);
	srv_stop(&s);
}

struct discall {
	struct pm_tconn *c;
	int ret;
};

static void *discall_main(void *arg)
{
	struct discall *d = arg;
	uint8_t m = 'N';
	struct pm_msg req = { &m, 1, 0, NULL, 0, 0 };
	struct pm_msg rep = { 0 };

	d->ret = ops->call(d->c, &req, &rep, pm_now_ns() + 20 * SEC);
	return NULL;
}

static void test_disconnect_inflight(void **state)
{
	enum { N = 4 };
	struct discall d[N];
	pthread_t th[N];
	struct srv s;
	struct cli c;
	int i;

	(void)state;
	skip_if_no_device();
	srv_start(&s, listen_ip);
	cli_start(&c, s.ep);
	for (i = 0; i < N; i++) {
		d[i] = (struct discall){ c.c, 1 };
		assert_int_equal(pthread_create(&th[i], NULL, discall_main,
						&d[i]), 0);
	}
	assert_true(srv_wait(&s, &s.nreq, N, pm_now_ns() + 10 * SEC));
	ops->disconnect(c.c);
	c.c = NULL;
	for (i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(d[i].ret, -ESHUTDOWN);
	}
	cli_stop(&c);
	srv_stop(&s);
}

/* --- raw verbs peers ------------------------------------------------------ */

struct raw {
	struct rdma_cm_id *id;	/* synchronous-mode id */
	struct ibv_cq *cq;
	struct ibv_mr *mr;
	char *buf;
};

static void raw_qp(struct raw *r)
{
	struct ibv_qp_init_attr qa = { 0 };

	r->cq = ibv_create_cq(r->id->verbs, 16, NULL, NULL, 0);
	assert_non_null(r->cq);
	qa.send_cq = r->cq;
	qa.recv_cq = r->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = 4;
	qa.cap.max_recv_wr = 4;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	assert_int_equal(rdma_create_qp(r->id, NULL, &qa), 0);
	r->buf = calloc(1, 2 * 65536);
	assert_non_null(r->buf);
	r->mr = ibv_reg_mr(r->id->pd, r->buf, 2 * 65536,
			   IBV_ACCESS_LOCAL_WRITE);
	assert_non_null(r->mr);
}

static void raw_free(struct raw *r)
{
	if (r->id && r->id->qp)
		rdma_destroy_qp(r->id);
	if (r->mr)
		ibv_dereg_mr(r->mr);
	if (r->cq)
		ibv_destroy_cq(r->cq);
	if (r->id)
		rdma_destroy_id(r->id);
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

/* Poll r's CQ for one completion until dl; its status or -ETIMEDOUT. */
static int raw_wait(struct raw *r, int64_t dl)
{
	struct ibv_wc wc;

	while (pm_now_ns() < dl) {
		int n = ibv_poll_cq(r->cq, 1, &wc);

		if (n < 0)
			return -EIO;
		if (n == 1)
			return (int)wc.status;
		usleep(1000);	/* a raw test peer: polling is fine here */
	}
	return -ETIMEDOUT;
}

static int parse_ep(const char *ep, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(ep, ':');

	if (!colon || (size_t)(colon - ep) >= sizeof(host))
		return -1;
	memcpy(host, ep, (size_t)(colon - ep));
	host[colon - ep] = '\0';
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static void raw_connect(struct raw *r, const char *ep)
{
	struct sockaddr_in sa;
	struct rdma_conn_param cp = { 0 };

	memset(r, 0, sizeof(*r));
	assert_int_equal(parse_ep(ep, &sa), 0);
	assert_int_equal(rdma_create_id(NULL, &r->id, NULL, RDMA_PS_TCP), 0);
	assert_int_equal(rdma_resolve_addr(r->id, NULL, (struct sockaddr *)&sa,
					   2000), 0);
	assert_int_equal(rdma_resolve_route(r->id, 2000), 0);
	raw_qp(r);
	cp.retry_count = 5;
	cp.rnr_retry_count = 7;
	assert_int_equal(rdma_connect(r->id, &cp), 0);
}

static int raw_send(struct raw *r, const void *data, uint32_t len)
{
	struct ibv_sge sge = { (uintptr_t)r->buf, len, r->mr->lkey };
	struct ibv_send_wr wr = { 0 }, *bad;

	memcpy(r->buf, data, len);
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.opcode = IBV_WR_SEND;
	wr.send_flags = IBV_SEND_SIGNALED;
	if (ibv_post_send(r->id->qp, &wr, &bad))
		return -EIO;
	return raw_wait(r, pm_now_ns() + 5 * SEC);
}

/* Malformed frames from raw peers: each such connection is closed (on_close)
 * without reaching the handler; a normal client is served throughout. */
static void test_malformed_frames(void **state)
{
	struct pm_frame_hdr h;
	unsigned char junk[64];
	unsigned seed = 5;
	struct srv s;
	struct cli c;
	struct raw r;
	int closes, i, sent;

	(void)state;
	skip_if_no_device();
	srv_start(&s, listen_ip);
	cli_start(&c, s.ep);
	assert_int_equal(echo_once(c.c, &seed, 4, 64), 0);

	for (i = 0; i < 5; i++) {
		const void *data = &h;
		uint32_t len = sizeof(h);

		pm_frame_encode(&h, PM_FRAME_REQ, 1, 0, 0, 0);
		switch (i) {
		case 0:	/* garbage */
			memset(junk, 0xa5, sizeof(junk));
			data = junk;
			len = sizeof(junk);
			break;
		case 1:	/* shorter than a header */
			len = 10;
			break;
		case 2:	/* msg_len over the limit */
			pm_frame_encode(&h, PM_FRAME_REQ, 1, 0,
					PM_MSG_MAX + 1, 0);
			break;
		case 3:	/* lengths claim more than arrived */
			pm_frame_encode(&h, PM_FRAME_REQ, 1, 0, 8,
					0xfffffff0u);
			break;
		case 4:	/* a reply sent to a listener */
			pm_frame_encode(&h, PM_FRAME_REP, 1, 0, 0, 0);
			break;
		}
		pthread_mutex_lock(&s.lock);
		closes = s.nclose;
		pthread_mutex_unlock(&s.lock);
		raw_connect(&r, s.ep);
		/* That the frame arrived is proven by the close; the send's
		 * own completion may be an error or none within 5 s: the
		 * listener may close the QP before its HCA acknowledged the
		 * frame (seen under TCG), and the raw QP then retries into
		 * a closed one. Only a send that never left fails here. */
		sent = raw_send(&r, data, len);
		if (sent != IBV_WC_SUCCESS && sent != IBV_WC_RETRY_EXC_ERR &&
		    sent != -ETIMEDOUT)
			fail_msg("frame %d: raw send: %d", i, sent);
		assert_true(srv_wait(&s, &s.nclose, closes + 1,
				     pm_now_ns() + 5 * SEC));
		raw_free(&r);
		assert_int_equal(echo_once(c.c, &seed, 4, 64), 0);
	}
	assert_int_equal(s.nreq, 6);	/* only the client's echoes */
	cli_stop(&c);
	srv_stop(&s);
}

struct conn_arg {
	struct pm_tctx *t;
	const char *ep;
	struct pm_tconn *c;
	int ret;
};

static void *connect_main(void *arg)
{
	struct conn_arg *a = arg;

	a->ret = ops->connect(a->t, a->ep, pm_now_ns() + 10 * SEC, &a->c);
	return NULL;
}

/* A raw server takes the request, then destroys its queue pair without a
 * CM disconnect, as a crashed host would: no DREQ ever comes. The plugin's
 * heartbeat must fail the call well before its deadline. */
static void test_silent_peer(void **state)
{
	struct sockaddr_in sa;
	struct raw srv = { 0 };
	struct rdma_cm_id *lid = NULL;
	struct th th;
	struct pm_tctx *t = NULL;
	struct conn_arg ca = { 0 };
	struct discall d = { 0 };
	pthread_t cth, dth;
	char ep[64];
	struct pollfd pfd;
	struct ibv_sge sge;
	struct ibv_recv_wr wr = { 0 }, *bad;
	int64_t t0;
	const char *ip = listen_ip2 ? listen_ip2 : listen_ip;

	(void)state;
	skip_if_no_device();
	assert_int_equal(parse_ep(ip, &sa), 0);
	sa.sin_port = 0;
	assert_int_equal(rdma_create_id(NULL, &lid, NULL, RDMA_PS_TCP), 0);
	assert_int_equal(rdma_bind_addr(lid, (struct sockaddr *)&sa), 0);
	assert_int_equal(rdma_listen(lid, 4), 0);
	snprintf(ep, sizeof(ep), "%s", ip);
	snprintf(strrchr(ep, ':') + 1, 8, "%u", ntohs(rdma_get_src_port(lid)));

	th_init(&th, "client", NULL);
	assert_int_equal(ops->init(&th.host, &t), 0);
	ca = (struct conn_arg){ t, ep, NULL, 1 };
	assert_int_equal(pthread_create(&cth, NULL, connect_main, &ca), 0);

	pfd.fd = lid->channel->fd;
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	assert_int_equal(rdma_get_request(lid, &srv.id), 0);
	raw_qp(&srv);
	sge = (struct ibv_sge){ (uintptr_t)srv.buf, 65536 + 4096,
				srv.mr->lkey };
	wr.sg_list = &sge;
	wr.num_sge = 1;
	assert_int_equal(ibv_post_recv(srv.id->qp, &wr, &bad), 0);
	assert_int_equal(rdma_accept(srv.id, NULL), 0);
	pthread_join(cth, NULL);
	assert_int_equal(ca.ret, 0);

	d.c = ca.c;
	assert_int_equal(pthread_create(&dth, NULL, discall_main, &d), 0);
	assert_int_equal(raw_wait(&srv, pm_now_ns() + 10 * SEC),
			 IBV_WC_SUCCESS);
	t0 = pm_now_ns();
	rdma_destroy_qp(srv.id);	/* vanish: no DREQ */
	pthread_join(dth, NULL);
	print_message("silent peer: call returned %d after %.2f s\n", d.ret,
		      (double)(pm_now_ns() - t0) / SEC);
	assert_true(d.ret == -ECONNRESET || d.ret == -EPIPE);
	assert_true(pm_now_ns() - t0 < 10 * SEC);	/* deadline: 20 s */

	ops->disconnect(ca.c);
	ops->fini(t);
	raw_free(&srv);
	rdma_destroy_id(lid);
}

/* depth = 2: six concurrent callers share two slots, all verified. */
static void test_small_depth(void **state)
{
	enum { NT = 6, NC = 20 };
	struct worker w[NT];
	pthread_t th[NT];
	struct srv s;
	struct cli c;
	int i;

	(void)state;
	skip_if_no_device();
	srv_start(&s, listen_ip);
	th_init(&c.th, "client", NULL);
	c.th.depth = 2;
	assert_int_equal(ops->init(&c.th.host, &c.t), 0);
	assert_int_equal(ops->connect(c.t, s.ep, pm_now_ns() + 10 * SEC,
				      &c.c), 0);
	for (i = 0; i < NT; i++) {
		w[i] = (struct worker){ c.c, NC, 0, (unsigned)i + 3 };
		assert_int_equal(pthread_create(&th[i], NULL, worker_main,
						&w[i]), 0);
	}
	for (i = 0; i < NT; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failed, 0);
	}
	cli_stop(&c);
	srv_stop(&s);

	/* Out-of-range depth is a configuration error at init. */
	th_init(&c.th, "client", NULL);
	c.th.depth = 256;
	assert_int_equal(ops->init(&c.th.host, &c.t), -EINVAL);
}

/* max_conns = 1: a second peer is refused while the first is connected,
 * and the first keeps being served. */
static void test_max_conns(void **state)
{
	struct pm_listener lst = { srv_on_request, srv_on_close, NULL };
	struct pm_tconn *c2 = NULL;
	unsigned seed = 11;
	struct srv s;
	struct cli c;

	(void)state;
	skip_if_no_device();
	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.lock, NULL);
	wait_init(&s.cond);
	th_init(&s.th, "server", listen_ip);
	s.th.max_conns = 1;
	lst.arg = &s;
	assert_int_equal(ops->init(&s.th.host, &s.t), 0);
	assert_int_equal(ops->listen(s.t, &lst), 0);
	assert_int_equal(ops->endpoint(s.t, s.ep, sizeof(s.ep)), 0);
	cli_start(&c, s.ep);
	assert_int_equal(echo_once(c.c, &seed, 5, 50), 0);
	assert_true(ops->connect(c.t, s.ep, pm_now_ns() + 10 * SEC, &c2) < 0);
	assert_int_equal(echo_once(c.c, &seed, 5, 50), 0);
	cli_stop(&c);
	srv_stop(&s);
}

/* Endpoint strings: runs without a device. */
static void test_endpoint_parse(void **state)
{
	static const char *good[] = { "10.0.0.1:0", "192.168.1.2:65535",
				      "[fe80::1]:4791", "[::1]:1" };
	static const char *bad[] = { "", ":", "10.0.0.1", "10.0.0.1:",
				     "10.0.0.1:65536", "10.0.0.1:-1",
				     "10.0.0.1:12a", "host.example:1",
				     "fe80::1:80", "[fe80::1]80", "[::1]:",
				     "[]:1", "1.2.3.4:123456" };
	struct sockaddr_storage ss;
	char buf[PM_ENDPOINT_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint16_t port;

		assert_int_equal(rv_parse_endpoint(good[i], &ss), 0);
		port = ntohs(ss.ss_family == AF_INET ?
			     ((struct sockaddr_in *)&ss)->sin_port :
			     ((struct sockaddr_in6 *)&ss)->sin6_port);
		assert_int_equal(rv_format_addr((struct sockaddr *)&ss, port,
						buf, sizeof(buf)), 0);
		assert_string_equal(buf, good[i]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (rv_parse_endpoint(bad[i], &ss) != -EINVAL)
			fail_msg("endpoint \"%s\" was accepted", bad[i]);
	assert_int_equal(rv_parse_endpoint(NULL, &ss), -EINVAL);
	assert_int_equal(rv_parse_endpoint("10.0.0.1:7", &ss), 0);
	assert_int_equal(rv_format_addr((struct sockaddr *)&ss, 7, buf, 10),
			 -ENOSPC);
}

static void test_probe_reason(void **state)
{
	char why[256] = "";
	int ret;

	(void)state;
	ret = ops->probe(NULL, why, sizeof(why));
	print_message("probe: %d: %s\n", ret, why);
	/* Either way the reason is filled in: device details or why not. */
	assert_true(why[0] != '\0');
	if (ret)
		assert_true(ret < 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_endpoint_parse),
		cmocka_unit_test(test_probe_reason),
		cmocka_unit_test(test_echo_sizes),
		cmocka_unit_test(test_status_and_emsgsize),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_small_depth),
		cmocka_unit_test(test_max_conns),
		cmocka_unit_test(test_late_replies),
		cmocka_unit_test(test_timeout_then_usable),
		cmocka_unit_test(test_drop),
		cmocka_unit_test(test_disconnect_inflight),
		cmocka_unit_test(test_peer_restart),
		cmocka_unit_test(test_malformed_frames),
		cmocka_unit_test(test_silent_peer),
	};
	pm_transport_entry_fn entry;
	char why[256] = "";
	void *dl;
	int ret;

	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH/rdma.so\n", argv[0]);
		return 2;
	}
	dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		fprintf(stderr, "rdma_test: %s\n", dlerror());
		return 1;
	}
	entry = (pm_transport_entry_fn)dlsym(dl, PM_TRANSPORT_ENTRY_NAME);
	if (!entry || !(ops = entry())) {
		fprintf(stderr, "rdma_test: %s: no entry symbol\n", argv[1]);
		return 1;
	}
	if (getenv("PM_RDMA_LISTEN"))
		listen_ip = getenv("PM_RDMA_LISTEN");
	listen_ip2 = getenv("PM_RDMA_LISTEN2");
	ret = ops->probe(NULL, why, sizeof(why));
	if (ret) {
		snprintf(skip_why, sizeof(skip_why), "probe: %s", why);
		printf("rdma_test: SKIP: every device test: %s\n", skip_why);
		if (getenv("PM_RDMA_REQUIRE") &&
		    !strcmp(getenv("PM_RDMA_REQUIRE"), "1")) {
			fprintf(stderr, "rdma_test: PM_RDMA_REQUIRE=1 but %s\n",
				skip_why);
			return 1;
		}
	}
	ret = cmocka_run_group_tests_name("rdma transport", tests, NULL, NULL);
	dlclose(dl);
	return ret;
}
