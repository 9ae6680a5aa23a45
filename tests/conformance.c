// SPDX-License-Identifier: MIT
/*
 * Transport conformance suite: `conformance PLUGIN.so` runs the whole
 * transport ABI against one plugin, the way the core uses it (fabtests-style:
 * the same program for every transport).
 *
 * Each test starts its own server and client instances of the plugin in this
 * process. The server's handler understands a tiny command set carried at the
 * start of a request's core message (see struct cmd); anything else is
 * echoed with every byte XORed with 0xA5, so a reply cannot pass for the
 * request it answers. Calls are verified byte for byte.
 *
 * Environment:
 *   PM_CONFORMANCE_LISTEN  listen address given to each instance
 *                          ("127.0.0.1:0" by default)
 *   PM_CONFORMANCE_FRAME   "none" skips the cases that speak the shared
 *                          stream frame (plugins/common/frame.h) on raw
 *                          sockets, for a stream transport with its own
 *   PM_CONFORMANCE_SEED    seed of the random data (printed every run)
 * The raw-socket cases run only when the endpoint is HOST:PORT and the
 * plugin is not an RDMA transport (PM_CAP_RDMA): a stream transport.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
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
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "frame.h"
#include "loader.h"
#include "log.h"

#define CALL_MS 10000		/* deadline of calls that must succeed */
#define MAX_CONNS 1024		/* incoming connections a server tracks */
#define XOR 0xA5		/* echo replies: every byte ^ XOR */

/* --- the plugin under test --------------------------------------------- */

static struct pm_plugin plug;
static const struct pm_transport_ops *ops;
static bool usable;
static char listen_addr[PM_ENDPOINT_MAX] = "127.0.0.1:0";
static bool frame_checks = true;
static uint64_t seed;

#define REQUIRE_USABLE()                                                   \
	do {                                                               \
		if (!usable) {                                             \
			print_message("SKIP: %s: %s\n", plug.path,         \
				      plug.why[0] ? plug.why : "not loaded"); \
			skip();                                            \
		}                                                          \
	} while (0)

static int64_t ms_from_now(int ms)
{
	return pm_now_ns() + (int64_t)ms * 1000000;
}

static double ms_since(int64_t t0)
{
	return (double)(pm_now_ns() - t0) / 1e6;
}

/* xorshift64*: fast, and reproducible from the printed seed */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static void rand_fill(uint64_t *s, uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (uint8_t)(rng_next(s) >> 32);
}

/* Wait helpers for threads: pthread_timedjoin_np counts in CLOCK_REALTIME. */
static int join_ms(pthread_t th, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return pthread_timedjoin_np(th, NULL, &ts);
}

static void mono_deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static void cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

/* First error seen by worker threads (cmocka asserts only on main). */
struct errbox {
	pthread_mutex_t mu;
	int n;
	char first[512];
};

static void eb_init(struct errbox *e)
{
	memset(e, 0, sizeof(*e));
	pthread_mutex_init(&e->mu, NULL);
}

static void eb_note(struct errbox *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void eb_note(struct errbox *e, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&e->mu);
	if (!e->n++) {
		va_start(ap, fmt);
		vsnprintf(e->first, sizeof(e->first), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&e->mu);
}

#define assert_no_errors(e)                                                \
	do {                                                               \
		if ((e)->n)                                                \
			fail_msg("%d error(s), first: %s", (e)->n,         \
				 (e)->first);                              \
	} while (0)

/* --- host table of one instance ---------------------------------------- */

struct ihost {
	struct pm_host host;
	char listen[PM_ENDPOINT_MAX];
	char label[24];
};

static void ih_log(void *ctx, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void ih_log(void *ctx, int level, const char *fmt, ...)
{
	struct ihost *ih = ctx;
	char msg[900];
	va_list ap;

	if (level > pm_log_default.level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pm_log(level, "transport %s [%s]: %s", plug.name, ih->label, msg);
}

static int ih_cfg_string(void *ctx, const char *key, const char **out)
{
	struct ihost *ih = ctx;

	if (!strcmp(key, "listen") && ih->listen[0]) {
		*out = ih->listen;
		return 0;
	}
	return -ENOENT;
}

static int ih_cfg_int(void *ctx, const char *key, int64_t *out)
{
	(void)ctx;
	(void)key;
	(void)out;
	return -ENOENT;
}

static void ih_setup(struct ihost *ih, const char *listen, const char *label)
{
	memset(ih, 0, sizeof(*ih));
	snprintf(ih->listen, sizeof(ih->listen), "%s", listen);
	snprintf(ih->label, sizeof(ih->label), "%s", label);
	ih->host.size = sizeof(ih->host);
	ih->host.abi_major = PM_TRANSPORT_ABI_MAJOR;
	ih->host.abi_minor = PM_TRANSPORT_ABI_MINOR;
	ih->host.ctx = ih;
	ih->host.name = plug.name;
	ih->host.page_size = PM_PAGE_SIZE;
	ih->host.log = ih_log;
	ih->host.cfg_string = ih_cfg_string;
	ih->host.cfg_int = ih_cfg_int;
}

/* --- commands a request can carry -------------------------------------- */

enum {
	CMD_ECHO = 0,	/* reply at once: msg and payload ^ XOR */
	CMD_HOLD = 1,	/* keep (conn_id, req_id); the test may reply */
	CMD_STATUS = 2,	/* reply at once with status arg, no data */
	CMD_BIG = 3,	/* reply at once with a payload of arg bytes */
	CMD_DEFER = 4,	/* keep; a replier thread echoes, shuffled */
};

#define CMD_MAGIC "PMCF"
struct cmd {
	char magic[4];
	uint32_t cmd;
	int32_t arg;
};
#define CMD_LEN ((uint32_t)sizeof(struct cmd))

static uint8_t big_byte(uint32_t i)
{
	return (uint8_t)(i * 7 + 3);
}

/* --- server instance --------------------------------------------------- */

struct held {
	uint64_t conn, req;
	uint32_t msg_len, payload_len;
	uint8_t msg[PM_MSG_MAX];
	uint8_t *payload;
};

struct conn_rec {
	uint64_t id;
	uint32_t requests;
	uint32_t closes;
};

struct srv {
	struct ihost ih;
	struct pm_tctx *t;
	char ep[PM_ENDPOINT_MAX];

	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t requests;
	struct conn_rec conns[MAX_CONNS];
	int nconns;
	bool conn_overflow;
	uint64_t dup_closes;		/* on_close twice for one conn */
	uint64_t late_callbacks;	/* any callback after fini returned */
	uint64_t req_after_close;	/* on_request after on_close */
	uint64_t bad_requests;		/* bad lengths or pointers */
	uint64_t reply_errs;
	int first_reply_err;
	struct held *held;
	int nheld, held_cap;
	int inflight;			/* client calls in flight */
	bool finished;
};

static struct conn_rec *conn_get(struct srv *s, uint64_t id)
{
	int i;

	for (i = 0; i < s->nconns; i++)
		if (s->conns[i].id == id)
			return &s->conns[i];
	if (s->nconns == MAX_CONNS) {
		s->conn_overflow = true;
		return NULL;
	}
	s->conns[s->nconns].id = id;
	return &s->conns[s->nconns++];
}

static void srv_note_reply(struct srv *s, int r)
{
	if (!r)
		return;
	pthread_mutex_lock(&s->mu);
	if (!s->reply_errs++)
		s->first_reply_err = r;
	pthread_mutex_unlock(&s->mu);
}

static int reply_echo(struct srv *s, uint64_t conn, uint64_t req,
		      const uint8_t *msg, uint32_t mlen, const uint8_t *pay,
		      uint32_t plen)
{
	uint8_t m[PM_MSG_MAX];
	struct pm_msg rep = { 0 };
	uint8_t *p = NULL;
	uint32_t i;
	int r;

	for (i = 0; i < mlen; i++)
		m[i] = msg[i] ^ XOR;
	if (plen) {
		p = malloc(plen);
		if (!p)
			return -ENOMEM;
		for (i = 0; i < plen; i++)
			p[i] = pay[i] ^ XOR;
	}
	rep.msg = m;
	rep.msg_len = mlen;
	rep.payload = p;
	rep.payload_len = plen;
	r = ops->reply(s->t, conn, req, 0, &rep);
	free(p);
	return r;
}

static void srv_on_request(void *arg, const struct pm_request *rq)
{
	struct srv *s = arg;
	struct conn_rec *cr;
	struct cmd c = { .cmd = CMD_ECHO };
	struct pm_msg rep = { 0 };
	uint8_t *big;
	uint32_t i;
	int r;

	if (rq->msg_len > PM_MSG_MAX || rq->payload_len > PM_PAYLOAD_MAX ||
	    (rq->msg_len && !rq->msg) ||
	    (rq->payload_len && !rq->payload)) {
		pthread_mutex_lock(&s->mu);
		s->bad_requests++;
		pthread_mutex_unlock(&s->mu);
		srv_note_reply(s, ops->reply(s->t, rq->conn_id, rq->req_id,
					     -EPROTO, &rep));
		return;
	}
	if (rq->msg_len >= CMD_LEN && !memcmp(rq->msg, CMD_MAGIC, 4))
		memcpy(&c, rq->msg, CMD_LEN);

	pthread_mutex_lock(&s->mu);
	if (s->finished)
		s->late_callbacks++;
	cr = conn_get(s, rq->conn_id);
	if (cr) {
		if (cr->closes)
			s->req_after_close++;
		cr->requests++;
	}
	s->requests++;
	if (c.cmd == CMD_HOLD || c.cmd == CMD_DEFER) {
		struct held *h;

		if (s->nheld == s->held_cap) {
			int cap = s->held_cap ? 2 * s->held_cap : 16;
			struct held *n = realloc(s->held, cap * sizeof(*n));

			if (!n) {
				pthread_mutex_unlock(&s->mu);
				return;	/* the caller times out */
			}
			s->held = n;
			s->held_cap = cap;
		}
		h = &s->held[s->nheld];
		h->conn = rq->conn_id;
		h->req = rq->req_id;
		h->msg_len = rq->msg_len;
		h->payload_len = rq->payload_len;
		memcpy(h->msg, rq->msg, rq->msg_len);
		h->payload = NULL;
		if (rq->payload_len) {
			h->payload = malloc(rq->payload_len);
			if (!h->payload) {
				pthread_mutex_unlock(&s->mu);
				return;
			}
			memcpy(h->payload, rq->payload, rq->payload_len);
		}
		s->nheld++;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		return;
	}
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);

	switch (c.cmd) {
	case CMD_STATUS:
		r = ops->reply(s->t, rq->conn_id, rq->req_id, c.arg, &rep);
		break;
	case CMD_BIG:
		if (c.arg < 0 || (uint32_t)c.arg > PM_PAYLOAD_MAX) {
			r = ops->reply(s->t, rq->conn_id, rq->req_id, -EINVAL,
				       &rep);
			break;
		}
		big = malloc(c.arg ? c.arg : 1);
		if (!big) {
			r = -ENOMEM;
			break;
		}
		for (i = 0; i < (uint32_t)c.arg; i++)
			big[i] = big_byte(i);
		rep.msg = "big";
		rep.msg_len = 3;
		rep.payload = big;
		rep.payload_len = c.arg;
		r = ops->reply(s->t, rq->conn_id, rq->req_id, 0, &rep);
		free(big);
		break;
	default:
		r = reply_echo(s, rq->conn_id, rq->req_id, rq->msg,
			       rq->msg_len, rq->payload, rq->payload_len);
	}
	srv_note_reply(s, r);
}

static void srv_on_close(void *arg, uint64_t conn_id)
{
	struct srv *s = arg;
	struct conn_rec *cr;

	pthread_mutex_lock(&s->mu);
	if (s->finished)
		s->late_callbacks++;
	cr = conn_get(s, conn_id);
	if (cr && ++cr->closes > 1)
		s->dup_closes++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static struct srv *srv_alloc(void)
{
	struct srv *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	pthread_mutex_init(&s->mu, NULL);
	cond_init_mono(&s->cv);
	return s;
}

static int srv_start(struct srv *s, const char *listen, const char *label)
{
	const struct pm_listener lst = {
		.on_request = srv_on_request,
		.on_close = srv_on_close,
		.arg = s,
	};
	int r;

	ih_setup(&s->ih, listen, label);
	r = ops->init(&s->ih.host, &s->t);
	if (r)
		return r;
	r = ops->listen(s->t, &lst);
	if (!r)
		r = ops->endpoint(s->t, s->ep, sizeof(s->ep));
	if (r) {
		ops->fini(s->t);
		s->t = NULL;
	}
	return r;
}

static void srv_drop_held(struct srv *s)
{
	int i;

	for (i = 0; i < s->nheld; i++)
		free(s->held[i].payload);
	free(s->held);
	s->held = NULL;
	s->nheld = s->held_cap = 0;
}

static void srv_stop(struct srv *s)
{
	if (s->t)
		ops->fini(s->t);
	s->t = NULL;
	pthread_mutex_lock(&s->mu);
	s->finished = true;
	srv_drop_held(s);
	pthread_mutex_unlock(&s->mu);
}

static void srv_free(struct srv *s)
{
	if (!s)
		return;
	srv_stop(s);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

typedef bool (*srv_pred)(struct srv *s, uint64_t arg);

/* Wait until pred holds, at most ms. Returns whether it holds. */
static bool srv_wait(struct srv *s, srv_pred pred, uint64_t arg, int ms)
{
	struct timespec ts;
	bool ok;

	mono_deadline(&ts, ms);
	pthread_mutex_lock(&s->mu);
	while (!(ok = pred(s, arg)))
		if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) {
			ok = pred(s, arg);
			break;
		}
	pthread_mutex_unlock(&s->mu);
	return ok;
}

static bool p_held(struct srv *s, uint64_t n)
{
	return (uint64_t)s->nheld >= n;
}

static bool p_closed(struct srv *s, uint64_t id)
{
	int i;

	for (i = 0; i < s->nconns; i++)
		if (s->conns[i].id == id)
			return s->conns[i].closes > 0;
	return false;
}

static int count_conns(struct srv *s, bool with_requests, bool closed)
{
	int i, n = 0;

	for (i = 0; i < s->nconns; i++)
		if ((s->conns[i].requests > 0) == with_requests &&
		    (!closed || s->conns[i].closes > 0))
			n++;
	return n;
}

/* Connections that never carried a request (raw sockets) and are closed. */
static bool p_raw_closed(struct srv *s, uint64_t n)
{
	return (uint64_t)count_conns(s, false, true) >= n;
}

static bool p_closed_with_req(struct srv *s, uint64_t n)
{
	return (uint64_t)count_conns(s, true, true) >= n;
}

static bool p_conns_with_req(struct srv *s, uint64_t n)
{
	return (uint64_t)count_conns(s, true, false) >= n;
}

static int srv_locked_int(struct srv *s, int (*f)(struct srv *, bool, bool),
			  bool a, bool b)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = f(s, a, b);
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* The id of the one incoming connection that carried requests. */
static uint64_t srv_only_conn(struct srv *s)
{
	uint64_t id = UINT64_MAX;
	int i, n = 0;

	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->nconns; i++)
		if (s->conns[i].requests) {
			id = s->conns[i].id;
			n++;
		}
	pthread_mutex_unlock(&s->mu);
	assert_int_equal(n, 1);
	return id;
}

static void srv_check_clean(struct srv *s)
{
	pthread_mutex_lock(&s->mu);
	if (s->dup_closes || s->late_callbacks || s->req_after_close ||
	    s->bad_requests || s->conn_overflow) {
		uint64_t d = s->dup_closes, l = s->late_callbacks;
		uint64_t a = s->req_after_close, b = s->bad_requests;

		pthread_mutex_unlock(&s->mu);
		fail_msg("server callbacks broke the contract: %" PRIu64
			 " duplicate on_close, %" PRIu64
			 " callbacks after fini, %" PRIu64
			 " on_request after on_close, %" PRIu64
			 " requests with bad lengths/pointers", d, l, a, b);
	}
	pthread_mutex_unlock(&s->mu);
}

/* --- client side -------------------------------------------------------- */

/* One test's server, client instance and connection. */
struct fix {
	struct srv *s;
	struct ihost cih;
	struct pm_tctx *ct;
	struct pm_tconn *c;
};

/* On the heap: a failed test leaves it (and the plugin threads that point
 * into it) behind instead of letting the next test reuse its stack. */
static struct fix *fix_up(void)
{
	struct fix *f = calloc(1, sizeof(*f));
	int r;

	assert_non_null(f);
	f->s = srv_alloc();
	r = srv_start(f->s, listen_addr, "server");
	if (r)
		fail_msg("server init/listen/endpoint on %s: %s", listen_addr,
			 strerror(-r));
	ih_setup(&f->cih, listen_addr, "client");
	r = ops->init(&f->cih.host, &f->ct);
	if (r)
		fail_msg("client init: %s", strerror(-r));
	r = ops->connect(f->ct, f->s->ep, ms_from_now(5000), &f->c);
	if (r)
		fail_msg("connect %s: %s", f->s->ep, strerror(-r));
	return f;
}

static void fix_down(struct fix *f)
{
	if (f->c)
		ops->disconnect(f->c);
	f->c = NULL;
	if (f->ct)
		ops->fini(f->ct);
	f->ct = NULL;
	srv_check_clean(f->s);
	srv_free(f->s);
	free(f);
}

/* A call whose request is just a command. */
static int cmd_call(struct pm_tconn *c, uint32_t cmd, int32_t arg,
		    struct pm_msg *rep, int64_t deadline)
{
	struct cmd m = { .cmd = cmd, .arg = arg };
	struct pm_msg req = { .msg = &m, .msg_len = CMD_LEN };
	struct pm_msg none = { 0 };

	memcpy(m.magic, CMD_MAGIC, 4);
	return ops->call(c, &req, rep ? rep : &none, deadline);
}

#define GUARD 64	/* bytes after a receive buffer that must stay intact */
#define POISON 0xEE

static bool guard_ok(const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i] != POISON)
			return false;
	return true;
}

/*
 * One verified call: request of mlen/plen random bytes (starting with
 * command cmd unless CMD_ECHO), reply buffers of exactly the needed size
 * plus extra, poisoned, with guard bytes behind them. 0, the call's error,
 * or -EBADMSG with err saying what differed.
 */
static int echo_once(struct pm_tconn *c, uint64_t *rng, uint32_t cmd,
		     uint32_t mlen, uint32_t plen, uint32_t extra,
		     int64_t deadline, char *err, size_t errlen)
{
	uint8_t qmsg[PM_MSG_MAX], rmsg[PM_MSG_MAX + GUARD];
	uint8_t *qpay = NULL, *rpay = NULL;
	struct pm_msg req = { 0 }, rep = { 0 };
	uint32_t mcap = mlen + extra > PM_MSG_MAX ? PM_MSG_MAX : mlen + extra;
	uint32_t pcap = plen + extra;
	uint32_t i;
	int r;

	if (cmd != CMD_ECHO && mlen < CMD_LEN)
		mlen = CMD_LEN;
	if (mcap < mlen)
		mcap = mlen;
	rand_fill(rng, qmsg, mlen);
	if (cmd != CMD_ECHO) {
		struct cmd m = { .cmd = cmd };

		memcpy(m.magic, CMD_MAGIC, 4);
		memcpy(qmsg, &m, CMD_LEN);
	} else if (mlen >= 1 && qmsg[0] == 'P') {
		qmsg[0] = 'Q';	/* never look like a command */
	}
	if (plen) {
		qpay = malloc(plen);
		if (!qpay)
			return -ENOMEM;
		rand_fill(rng, qpay, plen);
	}
	if (pcap) {
		rpay = malloc(pcap + GUARD);
		if (!rpay) {
			free(qpay);
			return -ENOMEM;
		}
		memset(rpay, POISON, pcap + GUARD);
	}
	memset(rmsg, POISON, sizeof(rmsg));
	req.msg = mlen ? qmsg : NULL;
	req.msg_len = mlen;
	req.payload = qpay;
	req.payload_len = plen;
	rep.msg = rmsg;
	rep.msg_cap = mcap;
	rep.payload = rpay;
	rep.payload_cap = pcap;

	r = ops->call(c, &req, &rep, deadline);
	if (r) {
		snprintf(err, errlen, "call(msg %u, payload %u): %s", mlen,
			 plen, strerror(-r));
		goto out;
	}
	r = -EBADMSG;
	if (rep.msg_len != mlen || rep.payload_len != plen) {
		snprintf(err, errlen,
			 "reply lengths msg %u payload %u, sent msg %u payload %u",
			 rep.msg_len, rep.payload_len, mlen, plen);
		goto out;
	}
	for (i = 0; i < mlen; i++)
		if (rmsg[i] != (qmsg[i] ^ XOR)) {
			snprintf(err, errlen,
				 "reply msg byte %u of %u differs (msg %u, payload %u)",
				 i, mlen, mlen, plen);
			goto out;
		}
	for (i = 0; i < plen; i++)
		if (rpay[i] != (qpay[i] ^ XOR)) {
			snprintf(err, errlen,
				 "reply payload byte %u of %u differs (msg %u)",
				 i, plen, mlen);
			goto out;
		}
	if (!guard_ok(rmsg + mcap, GUARD) ||
	    (rpay && !guard_ok(rpay + pcap, GUARD))) {
		snprintf(err, errlen,
			 "the plugin wrote past the reply buffers (msg_cap %u, payload_cap %u)",
			 mcap, pcap);
		goto out;
	}
	r = 0;
out:
	free(qpay);
	free(rpay);
	return r;
}

#define assert_echo(c, rng, mlen, plen)                                     \
	do {                                                                \
		char e_[512];                                               \
		int r_ = echo_once((c), (rng), CMD_ECHO, (mlen), (plen), 0, \
				   ms_from_now(CALL_MS), e_, sizeof(e_));   \
		if (r_)                                                     \
			fail_msg("%s", e_);                                 \
	} while (0)

/* A thread blocked in one call, for tests that act while it waits. */
struct caller {
	pthread_t th;
	struct pm_tconn *c;
	uint32_t cmd;
	int64_t deadline;
	int r;
	int64_t t_ret;
};

static void *caller_main(void *a)
{
	struct caller *cl = a;

	cl->r = cmd_call(cl->c, cl->cmd, 0, NULL, cl->deadline);
	cl->t_ret = pm_now_ns();
	return NULL;
}

static void caller_start(struct caller *cl, struct pm_tconn *c, uint32_t cmd,
			 int ms)
{
	memset(cl, 0, sizeof(*cl));
	cl->c = c;
	cl->cmd = cmd;
	cl->deadline = ms_from_now(ms);
	cl->r = 1;
	assert_int_equal(pthread_create(&cl->th, NULL, caller_main, cl), 0);
}

/* --- endpoints ----------------------------------------------------------- */

/* "HOST:PORT" or "[V6]:PORT" -> host, port; false for anything else. */
static bool parse_hostport(const char *ep, char *host, size_t hlen,
			   char *port, size_t plen)
{
	const char *colon = strrchr(ep, ':');
	const char *h = ep;
	size_t n;
	char *end;
	long v;

	if (!colon || colon == ep)
		return false;
	n = colon - ep;
	if (ep[0] == '[') {
		if (n < 3 || ep[n - 1] != ']')
			return false;
		h = ep + 1;
		n -= 2;
	}
	if (n >= hlen || strlen(colon + 1) >= plen)
		return false;
	errno = 0;
	v = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || v < 1 || v > 65535)
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	snprintf(port, plen, "%s", colon + 1);
	return true;
}

/*
 * A stream transport: its endpoint is HOST:PORT of a TCP listener, so raw
 * sockets can reach it. An RDMA transport's IP:PORT is an rdma_cm address,
 * not a TCP port.
 */
static bool is_stream(const char *ep, char *host, size_t hlen, char *port,
		      size_t plen)
{
	return !(ops->caps & PM_CAP_RDMA) &&
	       parse_hostport(ep, host, hlen, port, plen);
}

/* --- the tests ------------------------------------------------------------ */

static void test_load(void **state)
{
	pm_transport_entry_fn entry;
	char caps[128];

	(void)state;
	if (!plug.ops)
		fail_msg("%s: %s", plug.path, plug.why);
	loader_caps_str(ops->caps, caps, sizeof(caps));
	print_message("  %s: %s %s, ABI %u.%u, table %u bytes (core %zu), caps %s\n",
		      plug.path, ops->name, ops->version ? ops->version : "?",
		      ops->abi_major, ops->abi_minor, ops->size,
		      sizeof(struct pm_transport_ops), caps);
	assert_int_equal(ops->abi_major, PM_TRANSPORT_ABI_MAJOR);
	assert_true(ops->size >= PM_OPS_MIN_SIZE);
	assert_non_null(ops->version);
	entry = (pm_transport_entry_fn)dlsym(plug.dl, PM_TRANSPORT_ENTRY_NAME);
	assert_non_null(entry);
	/* the table is static: the same one every time */
	assert_ptr_equal(entry(), ops);
	if (!usable)
		print_message("SKIP: every other test: %s\n", plug.why);
}

static void test_probe(void **state)
{
	char why[256], small[16];
	int i;

	(void)state;
	REQUIRE_USABLE();
	/* cheap and without side effects: same answer every time */
	for (i = 0; i < 3; i++) {
		memset(why, 'X', sizeof(why));
		why[0] = '\0';
		assert_int_equal(ops->probe(&plug.host, why, sizeof(why)), 0);
		assert_non_null(memchr(why, '\0', sizeof(why)));
	}
	/* a short reason buffer is respected */
	memset(small, POISON, sizeof(small));
	small[0] = '\0';
	assert_int_equal(ops->probe(&plug.host, small, 4), 0);
	assert_true(guard_ok((uint8_t *)small + 4, sizeof(small) - 4));
}

static void test_init_fini_repeat(void **state)
{
	struct ihost ih;
	struct pm_tctx *t;
	struct srv *s;
	int i, r;

	(void)state;
	REQUIRE_USABLE();
	for (i = 0; i < 10; i++) {
		ih_setup(&ih, listen_addr, "init");
		t = NULL;
		r = ops->init(&ih.host, &t);
		if (r)
			fail_msg("init #%d: %s", i, strerror(-r));
		assert_non_null(t);
		ops->fini(t);
	}
	for (i = 0; i < 5; i++) {
		s = srv_alloc();
		r = srv_start(s, listen_addr, "server");
		if (r)
			fail_msg("init+listen #%d on %s: %s", i, listen_addr,
				 strerror(-r));
		srv_free(s);
	}
}

static void test_listen_endpoint(void **state)
{
	char buf[PM_ENDPOINT_MAX], host[PM_ENDPOINT_MAX], port[16];
	struct fix *f;
	struct pm_tconn *c = NULL;
	int64_t t0;
	size_t n;
	int r;

	(void)state;
	REQUIRE_USABLE();
	f = fix_up();
	n = strlen(f->s->ep);
	print_message("  endpoint: %s (%s)\n", f->s->ep,
		      is_stream(f->s->ep, host, sizeof(host), port,
				sizeof(port)) ? "stream HOST:PORT" :
		      "not a TCP HOST:PORT");
	assert_true(n > 0 && n < PM_ENDPOINT_MAX);
	assert_int_equal(ops->endpoint(f->s->t, buf, 1), -ENOSPC);
	assert_int_equal(ops->endpoint(f->s->t, buf, n), -ENOSPC);
	assert_int_equal(ops->endpoint(f->s->t, buf, n + 1), 0);
	assert_string_equal(buf, f->s->ep);

	/* an endpoint string it cannot parse */
	r = ops->connect(f->ct, "::this is not an endpoint::", ms_from_now(2000),
			 &c);
	assert_true(r < 0);

	if (is_stream(f->s->ep, host, sizeof(host), port, sizeof(port))) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char dead[PM_ENDPOINT_MAX + 16];
		int fd;

		assert_int_equal(r, -EINVAL);
		/* a port nobody listens on: refused before the deadline */
		fd = socket(strchr(host, ':') ? AF_INET6 : AF_INET,
			    SOCK_STREAM, 0);
		assert_true(fd >= 0);
		if (strchr(host, ':')) {
			struct sockaddr_in6 a = { .sin6_family = AF_INET6 };

			inet_pton(AF_INET6, host, &a.sin6_addr);
			assert_int_equal(bind(fd, (void *)&a, sizeof(a)), 0);
		} else {
			struct sockaddr_in a = { .sin_family = AF_INET };

			inet_pton(AF_INET, host, &a.sin_addr);
			assert_int_equal(bind(fd, (void *)&a, sizeof(a)), 0);
		}
		assert_int_equal(getsockname(fd, (void *)&ss, &sl), 0);
		snprintf(dead, sizeof(dead), "%s%s%s:%u",
			 strchr(host, ':') ? "[" : "", host,
			 strchr(host, ':') ? "]" : "",
			 ntohs(((struct sockaddr_in *)&ss)->sin_port));
		close(fd);	/* bound, never listened: refused */
		t0 = pm_now_ns();
		r = ops->connect(f->ct, dead, ms_from_now(5000), &c);
		print_message("  connect %s -> %s after %.1f ms\n", dead,
			      r ? strerror(-r) : "connected", ms_since(t0));
		if (!r)
			ops->disconnect(c);
		assert_true(r < 0);
		assert_true(ms_since(t0) < 4000);
	}
	fix_down(f);
}

static void test_call_sizes(void **state)
{
	static const uint32_t msgs[] = { 0, 1, 11, 12, 13, 100, 255,
					 PM_MSG_MAX };
	static const uint32_t pays[] = { 0, 1, 100, 4095, 4096, 4097, 32768,
					 PM_PAYLOAD_MAX - 1, PM_PAYLOAD_MAX };
	uint64_t rng = seed ^ 1;
	struct fix *f;
	size_t i, j;
	int n = 0;

	(void)state;
	REQUIRE_USABLE();
	f = fix_up();
	for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++)
		for (j = 0; j < sizeof(pays) / sizeof(pays[0]); j++) {
			char err[512];
			/* exact-size reply buffers, then roomy ones */
			uint32_t extra = (n++ % 2) ? 100 : 0;
			int r = echo_once(f->c, &rng, CMD_ECHO, msgs[i],
					  pays[j], extra,
					  ms_from_now(CALL_MS), err,
					  sizeof(err));

			if (r)
				fail_msg("%s", err);
		}
	print_message("  %d calls verified (msg 0..%u, payload 0..%u)\n", n,
		      PM_MSG_MAX, PM_PAYLOAD_MAX);
	assert_int_equal(f->s->reply_errs, 0);
	fix_down(f);
}

static void test_reply_too_big(void **state)
{
	uint8_t *pay, msg[PM_MSG_MAX];
	struct pm_msg rep = { 0 };
	uint64_t rng = seed ^ 2;
	struct fix *f;
	uint32_t i;
	int r;

	(void)state;
	REQUIRE_USABLE();
	pay = malloc(4096 + GUARD);
	assert_non_null(pay);
	f = fix_up();
	rep.msg = msg;
	rep.msg_cap = sizeof(msg);
	rep.payload = pay;
	rep.payload_cap = 4096;

	memset(pay, POISON, 4096 + GUARD);
	r = cmd_call(f->c, CMD_BIG, 8192, &rep, ms_from_now(CALL_MS));
	if (r != -EMSGSIZE)
		fail_msg("8192-byte reply into payload_cap 4096: %d (%s), want -EMSGSIZE",
			 r, strerror(-r));
	assert_true(guard_ok(pay + 4096, GUARD));

	memset(pay, POISON, 4096 + GUARD);
	r = cmd_call(f->c, CMD_BIG, 4097, &rep, ms_from_now(CALL_MS));
	assert_int_equal(r, -EMSGSIZE);
	assert_true(guard_ok(pay + 4096, GUARD));

	/* no payload buffer at all */
	rep.payload = NULL;
	rep.payload_cap = 0;
	r = cmd_call(f->c, CMD_BIG, 1, &rep, ms_from_now(CALL_MS));
	assert_int_equal(r, -EMSGSIZE);

	/* exactly fitting is fine, and the connection still works */
	rep.payload = pay;
	rep.payload_cap = 4096;
	r = cmd_call(f->c, CMD_BIG, 4096, &rep, ms_from_now(CALL_MS));
	assert_int_equal(r, 0);
	assert_int_equal(rep.payload_len, 4096);
	assert_int_equal(rep.msg_len, 3);
	for (i = 0; i < 4096; i++)
		assert_int_equal(pay[i], big_byte(i));
	assert_echo(f->c, &rng, 20, 4096);
	free(pay);
	fix_down(f);
}

static void test_reply_msg_too_big(void **state)
{
	uint8_t qmsg[200], rmsg[100 + GUARD];
	struct pm_msg req = { .msg = qmsg, .msg_len = sizeof(qmsg) };
	struct pm_msg rep = { .msg = rmsg, .msg_cap = 100 };
	uint64_t rng = seed ^ 3;
	struct fix *f;
	int r;

	(void)state;
	REQUIRE_USABLE();
	f = fix_up();
	rand_fill(&rng, qmsg, sizeof(qmsg));
	qmsg[0] = 'Q';
	memset(rmsg, POISON, sizeof(rmsg));
	r = ops->call(f->c, &req, &rep, ms_from_now(CALL_MS));
	if (r != -EMSGSIZE)
		fail_msg("200-byte reply msg into msg_cap 100: %d (%s), want -EMSGSIZE",
			 r, strerror(-r));
	assert_true(guard_ok(rmsg + 100, GUARD));
	assert_echo(f->c, &rng, 100, 0);
	fix_down(f);
}

static void test_remote_status(void **state)
{
	static const int st[] = { -ENOENT, -EIO, -EPERM, -ENOSPC, -4095 };
	uint64_t rng = seed ^ 4;
	struct fix *f;
	size_t i;
	int r;

	(void)state;
	REQUIRE_USABLE();
	f = fix_up();
	for (i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
		r = cmd_call(f->c, CMD_STATUS, st[i], NULL,
			     ms_from_now(CALL_MS));
		if (r != st[i])
			fail_msg("reply status %d came back as %d", st[i], r);
	}
	assert_echo(f->c, &rng, 12, 100);
	assert_int_equal(f->s->reply_errs, 0);
	fix_down(f);
}

/* --- many threads, one connection ------------------------------------ */

struct worker {
	pthread_t th;
	struct pm_tconn *c;
	struct srv *s;		/* deferred: count in-flight calls here */
	uint32_t cmd;
	uint64_t rng;
	int n, ok;
	struct errbox *eb;
};

static uint32_t random_payload_len(uint64_t *rng)
{
	uint64_t v = rng_next(rng) % 10;

	if (v < 5)
		return 0;
	if (v < 8)
		return PM_PAGE_SIZE;
	return (uint32_t)(rng_next(rng) % (PM_PAYLOAD_MAX + 1));
}

static void *worker_main(void *a)
{
	struct worker *w = a;
	char err[512];
	int i, r;

	for (i = 0; i < w->n; i++) {
		uint32_t mlen = rng_next(&w->rng) % (PM_MSG_MAX + 1);
		uint32_t plen = random_payload_len(&w->rng);

		if (w->s) {
			pthread_mutex_lock(&w->s->mu);
			w->s->inflight++;
			pthread_cond_broadcast(&w->s->cv);
			pthread_mutex_unlock(&w->s->mu);
		}
		r = echo_once(w->c, &w->rng, w->cmd, mlen, plen, 0,
			      ms_from_now(CALL_MS), err, sizeof(err));
		if (w->s) {
			pthread_mutex_lock(&w->s->mu);
			w->s->inflight--;
			pthread_cond_broadcast(&w->s->cv);
			pthread_mutex_unlock(&w->s->mu);
		}
		if (r)
			eb_note(w->eb, "call %d: %s", i, err);
		else
			w->ok++;
	}
	return NULL;
}

#define NWORKERS 8

static int run_workers(struct worker *w, struct pm_tconn *c, struct srv *s,
		       uint32_t cmd, int n, struct errbox *eb, int join_limit)
{
	int i, ok = 0;

	for (i = 0; i < NWORKERS; i++) {
		if (!w[i].c)	/* else the worker has its own connection */
			w[i].c = c;
		w[i].s = s;
		w[i].cmd = cmd;
		w[i].rng = seed ^ (0x1000 + i * 7919);
		w[i].n = n;
		w[i].eb = eb;
		assert_int_equal(pthread_create(&w[i].th, NULL, worker_main,
						&w[i]), 0);
	}
	for (i = 0; i < NWORKERS; i++) {
		if (join_ms(w[i].th, join_limit))
			fail_msg("worker %d still running after %d ms", i,
				 join_limit);
		ok += w[i].ok;
	}
	return ok;
}

static void test_concurrent_calls(void **state)
{
	struct worker *w;
	struct errbox *eb;
	struct fix *f;
	int64_t t0;
	int ok;

	(void)state;
	REQUIRE_USABLE();
	w = calloc(NWORKERS, sizeof(*w));
	eb = calloc(1, sizeof(*eb));
	assert_non_null(w);
	assert_non_null(eb);
	eb_init(eb);
	f = fix_up();
	t0 = pm_now_ns();
	ok = run_workers(w, f->c, NULL, CMD_ECHO, 500, eb, 90000);
	print_message("  %d threads x 500 calls on one connection: %d verified in %.0f ms\n",
		      NWORKERS, ok, ms_since(t0));
	assert_no_errors(eb);
	assert_int_equal(ok, NWORKERS * 500);
	assert_int_equal(f->s->reply_errs, 0);
	fix_down(f);
	free(w);
	free(eb);
}

/* One connection per thread: on_request runs concurrently for several
 * incoming connections. */
static void test_concurrent_connections(void **state)
{
	struct worker *w;
	struct errbox *eb;
	struct fix *f;
	int64_t t0;
	int i, ok, r;

	(void)state;
	REQUIRE_USABLE();
	w = calloc(NWORKERS, sizeof(*w));
	eb = calloc(1, sizeof(*eb));
	assert_non_null(w);
	assert_non_null(eb);
	eb_init(eb);
	f = fix_up();
	for (i = 0; i < NWORKERS; i++) {
		r = ops->connect(f->ct, f->s->ep, ms_from_now(5000), &w[i].c);
		if (r)
			fail_msg("connect #%d: %s", i, strerror(-r));
	}
	t0 = pm_now_ns();
	ok = run_workers(w, NULL, NULL, CMD_ECHO, 200, eb, 90000);
	print_message("  %d connections x 200 calls: %d verified in %.0f ms\n",
		      NWORKERS, ok, ms_since(t0));
	assert_no_errors(eb);
	assert_int_equal(ok, NWORKERS * 200);
	assert_int_equal(srv_locked_int(f->s, count_conns, true, false),
			 NWORKERS);
	assert_int_equal(f->s->reply_errs, 0);
	for (i = 0; i < NWORKERS; i++)
		ops->disconnect(w[i].c);
	fix_down(f);
	free(w);
	free(eb);
}

/* The replier of the deferred test: answers from its own thread, once
 * every call in flight has arrived, in reverse or random order. */
struct replier {
	pthread_t th;
	struct srv *s;
	bool stop;
	int rounds, multi, fallbacks;
	uint64_t rng;
	struct errbox *eb;
};

static void *replier_main(void *a)
{
	struct replier *rp = a;
	struct srv *s = rp->s;
	struct timespec ts;
	struct held *take;
	int i, n, r;

	for (;;) {
		mono_deadline(&ts, 2000);
		pthread_mutex_lock(&s->mu);
		/* Wait for every call in flight, unless the plugin proved it
		 * does not overlap calls (then answer as they come). */
		while (!rp->stop &&
		       (s->nheld == 0 ||
			(s->nheld < s->inflight && rp->fallbacks < 3))) {
			if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) ==
			    ETIMEDOUT) {
				if (s->nheld) {
					rp->fallbacks++;
					break;
				}
				mono_deadline(&ts, 2000);
			}
		}
		if (rp->stop && s->nheld == 0) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		take = s->held;
		n = s->nheld;
		s->held = NULL;
		s->nheld = s->held_cap = 0;
		pthread_mutex_unlock(&s->mu);

		if (rp->rounds % 2 == 0) {
			for (i = 0; i < n / 2; i++) {
				struct held h = take[i];

				take[i] = take[n - 1 - i];
				take[n - 1 - i] = h;
			}
		} else {
			for (i = n - 1; i > 0; i--) {
				int j = (int)(rng_next(&rp->rng) % (i + 1));
				struct held h = take[i];

				take[i] = take[j];
				take[j] = h;
			}
		}
		for (i = 0; i < n; i++) {
			r = reply_echo(s, take[i].conn, take[i].req,
				       take[i].msg, take[i].msg_len,
				       take[i].payload, take[i].payload_len);
			if (r)
				eb_note(rp->eb, "deferred reply: %s",
					strerror(-r));
			free(take[i].payload);
		}
		free(take);
		rp->rounds++;
		if (n > 1)
			rp->multi++;
	}
	return NULL;
}

static void test_deferred_out_of_order(void **state)
{
	struct worker *w;
	struct replier *rp;
	struct errbox *eb;
	struct errbox *reb;
	struct fix *f;
	int64_t t0;
	int ok;

	(void)state;
	REQUIRE_USABLE();
	w = calloc(NWORKERS, sizeof(*w));
	rp = calloc(1, sizeof(*rp));
	eb = calloc(1, sizeof(*eb));
	reb = calloc(1, sizeof(*reb));
	assert_non_null(w);
	assert_non_null(eb);
	assert_non_null(reb);
	assert_non_null(rp);
	eb_init(eb);
	eb_init(reb);
	f = fix_up();
	rp->s = f->s;
	rp->rng = seed ^ 5;
	rp->eb = reb;
	assert_int_equal(pthread_create(&rp->th, NULL, replier_main, rp), 0);
	t0 = pm_now_ns();
	ok = run_workers(w, f->c, f->s, CMD_DEFER, 60, eb, 60000);
	pthread_mutex_lock(&f->s->mu);
	rp->stop = true;
	pthread_cond_broadcast(&f->s->cv);
	pthread_mutex_unlock(&f->s->mu);
	if (join_ms(rp->th, 10000))
		fail_msg("replier thread did not stop");
	print_message("  %d deferred calls verified in %.0f ms; %d reply rounds, %d with several calls answered out of order\n",
		      ok, ms_since(t0), rp->rounds, rp->multi);
	assert_no_errors(eb);
	assert_no_errors(reb);
	assert_int_equal(ok, NWORKERS * 60);
	if (rp->fallbacks >= 3)
		fail_msg("calls on one connection did not overlap: the server held one request while %d threads were calling",
			 NWORKERS);
	assert_true(rp->multi > 0);
	fix_down(f);
	free(w);
	free(rp);
	free(eb);
	free(reb);
}

/* --- deadlines, failures, reconnects ---------------------------------- */

static void test_call_timeout(void **state)
{
	uint64_t rng = seed ^ 6;
	uint8_t late[4096];
	struct pm_msg lrep = { .msg = "late", .msg_len = 4, .payload = late,
			       .payload_len = sizeof(late) };
	struct fix *f;
	struct held h;
	int64_t t0, dl;
	double el;
	int round, r;

	(void)state;
	REQUIRE_USABLE();
	f = fix_up();
	memset(late, 0x77, sizeof(late));
	for (round = 0; round < 2; round++) {
		t0 = pm_now_ns();
		dl = t0 + 300 * 1000000LL;
		r = cmd_call(f->c, CMD_HOLD, 0, NULL, dl);
		el = ms_since(t0);
		print_message("  held call -> %s after %.1f ms (deadline 300 ms)\n",
			      r ? strerror(-r) : "0", el);
		assert_int_equal(r, -ETIMEDOUT);
		assert_true(pm_now_ns() >= dl);
		assert_true(el < 300 + 2000);
		assert_true(srv_wait(f->s, p_held, 1, 5000));
		/* the connection is still usable */
		assert_echo(f->c, &rng, 50, 4096);
		/* a reply after the caller gave up is discarded, not handed
		 * to the next call */
		pthread_mutex_lock(&f->s->mu);
		h = f->s->held[0];
		f->s->nheld = 0;
		pthread_mutex_unlock(&f->s->mu);
		free(h.payload);
		r = ops->reply(f->s->t, h.conn, h.req, 0, &lrep);
		assert_int_equal(r, 0);
		assert_echo(f->c, &rng, 50, 4096);
		assert_echo(f->c, &rng, 0, 0);
	}
	/* a deadline already gone: -ETIMEDOUT at once */
	t0 = pm_now_ns();
	r = cmd_call(f->c, CMD_STATUS, 0, NULL, t0 - 1000000);
	assert_int_equal(r, -ETIMEDOUT);
	assert_true(ms_since(t0) < 1000);
	assert_echo(f->c, &rng, 8, 8);
	fix_down(f);
}

static void test_peer_gone_mid_call(void **state)
{
	struct caller *cl;
	struct fix *f;
	int64_t t0;
	int r;

	(void)state;
	REQUIRE_USABLE();
	cl = calloc(1, sizeof(*cl));
	assert_non_null(cl);
	f = fix_up();
	caller_start(cl, f->c, CMD_HOLD, 10000);
	assert_true(srv_wait(f->s, p_held, 1, 5000));
	t0 = pm_now_ns();
	srv_stop(f->s);	/* the peer goes away while the call waits */
	print_message("  server fini took %.1f ms\n", ms_since(t0));
	if (join_ms(cl->th, 9000))
		fail_msg("call still blocked 9 s after its peer went away");
	print_message("  call -> %d (%s) %.1f ms after the peer went away (deadline was 10 s)\n",
		      cl->r, strerror(-cl->r), (double)(cl->t_ret - t0) / 1e6);
	assert_true(cl->r < 0);
	assert_true(cl->t_ret - t0 < 5000 * 1000000LL);
	/* with nobody to redial, the next call fails too, and fast */
	t0 = pm_now_ns();
	r = cmd_call(f->c, CMD_STATUS, 0, NULL, ms_from_now(5000));
	print_message("  next call -> %d (%s) after %.1f ms\n", r,
		      strerror(-r), ms_since(t0));
	assert_true(r < 0);
	fix_down(f);
	free(cl);
}

static void test_reconnect(void **state)
{
	char host[PM_ENDPOINT_MAX], port[16], ep[PM_ENDPOINT_MAX];
	uint64_t rng = seed ^ 7;
	struct srv *s2;
	struct fix *f;
	int r;

	(void)state;
	REQUIRE_USABLE();
	f = fix_up();
	assert_echo(f->c, &rng, 10, 10);
	snprintf(ep, sizeof(ep), "%s", f->s->ep);
	srv_check_clean(f->s);
	srv_free(f->s);		/* the peer stops ... */
	f->s = NULL;
	s2 = srv_alloc();	/* ... and comes back on the same endpoint */
	r = srv_start(s2, ep, "server2");
	if (r && !is_stream(ep, host, sizeof(host), port, sizeof(port))) {
		srv_free(s2);
		f->s = srv_alloc();
		print_message("SKIP: cannot listen again on endpoint %s (%s); not a stream transport\n",
			      ep, strerror(-r));
		fix_down(f);
		skip();
	}
	if (r)
		fail_msg("restarted server cannot listen on %s again: %s", ep,
			 strerror(-r));
	f->s = s2;
	assert_string_equal(s2->ep, ep);
	/* the old connection's next call reaches the new server */
	assert_echo(f->c, &rng, 10, 4096);
	assert_true(s2->requests >= 1);
	assert_echo(f->c, &rng, 0, 0);
	fix_down(f);
}

static void test_drop(void **state)
{
	struct pm_msg none = { 0 };
	uint64_t rng = seed ^ 8, id;
	struct fix *f;

	(void)state;
	REQUIRE_USABLE();
	f = fix_up();
	assert_echo(f->c, &rng, 10, 0);
	id = srv_only_conn(f->s);
	assert_int_equal(ops->drop(f->s->t, id), 0);
	if (!srv_wait(f->s, p_closed, id, 5000))
		fail_msg("no on_close within 5 s of drop(%" PRIu64 ")", id);
	assert_int_equal(ops->drop(f->s->t, id), -ENOENT);
	assert_int_equal(ops->drop(f->s->t, id + 1000000), -ENOENT);
	assert_int_equal(ops->reply(f->s->t, id, 1, 0, &none), -ENOTCONN);
	/* the client redials on its next call */
	assert_echo(f->c, &rng, 10, 100);
	pthread_mutex_lock(&f->s->mu);
	assert_int_equal(f->s->nconns, 2);
	assert_int_equal(f->s->conns[0].closes, 1);
	pthread_mutex_unlock(&f->s->mu);
	fix_down(f);
}

#define NCLIENTS 5

static void test_on_close_once(void **state)
{
	struct pm_tconn *c[NCLIENTS];
	uint64_t rng = seed ^ 9;
	struct fix *f;
	int i, r;

	(void)state;
	REQUIRE_USABLE();
	f = fix_up();
	for (i = 0; i < NCLIENTS; i++) {
		r = ops->connect(f->ct, f->s->ep, ms_from_now(5000), &c[i]);
		if (r)
			fail_msg("connect #%d: %s", i, strerror(-r));
		assert_echo(c[i], &rng, 8, 8);
	}
	assert_true(srv_wait(f->s, p_conns_with_req, NCLIENTS, 5000));
	/* three go away: one on_close each */
	for (i = 0; i < 3; i++)
		ops->disconnect(c[i]);
	if (!srv_wait(f->s, p_closed_with_req, 3, 5000))
		fail_msg("3 clients disconnected, %d on_close within 5 s",
			 srv_locked_int(f->s, count_conns, true, true));
	/* fini closes the other two (and f's idle connection) */
	srv_stop(f->s);
	pthread_mutex_lock(&f->s->mu);
	for (i = 0; i < f->s->nconns; i++)
		if (f->s->conns[i].requests && f->s->conns[i].closes != 1) {
			int n = f->s->conns[i].closes;

			pthread_mutex_unlock(&f->s->mu);
			fail_msg("connection %" PRIu64 ": on_close called %d times (want 1 by the end of fini)",
				 f->s->conns[i].id, n);
		}
	pthread_mutex_unlock(&f->s->mu);
	for (i = 3; i < NCLIENTS; i++)
		ops->disconnect(c[i]);
	fix_down(f);
}

static void test_reply_unknown_conn(void **state)
{
	struct pm_msg m = { .msg = "x", .msg_len = 1 };
	uint64_t rng = seed ^ 10;
	struct fix *f;

	(void)state;
	REQUIRE_USABLE();
	f = fix_up();
	assert_int_equal(ops->reply(f->s->t, 0xFEEDFACECAFEULL, 1, 0, &m),
			 -ENOTCONN);
	assert_echo(f->c, &rng, 1, 0);
	assert_int_equal(ops->reply(f->s->t, srv_only_conn(f->s) + 4242, 1, 0,
				    &m), -ENOTCONN);
	assert_int_equal(ops->drop(f->s->t, 0xFEEDFACECAFEULL), -ENOENT);
	fix_down(f);
}

#define NHELD 4

static void test_disconnect_inflight(void **state)
{
	struct caller *cl;
	struct fix *f;
	int64_t t0, t1;
	int i;

	(void)state;
	REQUIRE_USABLE();
	cl = calloc(NHELD, sizeof(*cl));
	assert_non_null(cl);
	f = fix_up();
	for (i = 0; i < NHELD; i++)
		caller_start(&cl[i], f->c, CMD_HOLD, 10000);
	if (!srv_wait(f->s, p_held, NHELD, 5000))
		fail_msg("%d concurrent calls, server saw %d", NHELD,
			 f->s->nheld);
	t0 = pm_now_ns();
	ops->disconnect(f->c);
	t1 = pm_now_ns();
	f->c = NULL;
	print_message("  disconnect with %d calls in flight took %.1f ms\n",
		      NHELD, (double)(t1 - t0) / 1e6);
	for (i = 0; i < NHELD; i++) {
		if (join_ms(cl[i].th, 5000))
			fail_msg("call %d still blocked after disconnect", i);
		if (cl[i].r != -ESHUTDOWN)
			fail_msg("call %d: %d (%s), want -ESHUTDOWN", i,
				 cl[i].r, strerror(-cl[i].r));
	}
	/* That disconnect waited for the calls to leave before freeing the
	 * connection is for ASan to see (make asan): a caller still inside
	 * would touch freed memory. */
	assert_true(t1 - t0 < 5000 * 1000000LL);
	fix_down(f);
	free(cl);
}

static void test_fini_inflight(void **state)
{
	struct caller *cl;
	struct fix *f;
	int64_t t0;
	int i;

	(void)state;
	REQUIRE_USABLE();
	cl = calloc(2, sizeof(*cl));
	assert_non_null(cl);
	f = fix_up();
	for (i = 0; i < 2; i++)
		caller_start(&cl[i], f->c, CMD_HOLD, 10000);
	assert_true(srv_wait(f->s, p_held, 2, 5000));
	t0 = pm_now_ns();
	ops->fini(f->ct);	/* closes every connection of the instance */
	f->ct = NULL;
	f->c = NULL;
	print_message("  client fini with 2 calls in flight took %.1f ms\n",
		      ms_since(t0));
	for (i = 0; i < 2; i++) {
		if (join_ms(cl[i].th, 5000))
			fail_msg("call %d still blocked after fini", i);
		if (cl[i].r != -ESHUTDOWN)
			fail_msg("call %d: %d (%s), want -ESHUTDOWN", i,
				 cl[i].r, strerror(-cl[i].r));
	}
	fix_down(f);
	free(cl);
}

/* --- raw sockets against a stream listener --------------------------- */

/* A well-behaved client calling all along, to show the listener keeps
 * serving while bad peers are handled. */
struct bg {
	pthread_t th;
	struct pm_tconn *c;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	bool paused, idle;	/* paused by the test; idle: it noticed */
	uint64_t ok;
	uint64_t rng;
	struct errbox eb;
};

static void *bg_main(void *a)
{
	struct bg *b = a;
	char err[512];
	bool stop;
	int r;

	do {
		uint32_t mlen = (uint32_t)(rng_next(&b->rng) % 64);
		struct timespec ts;

		pthread_mutex_lock(&b->mu);
		while (b->paused && !b->stop) {
			b->idle = true;
			pthread_cond_broadcast(&b->cv);
			mono_deadline(&ts, 1000);
			pthread_cond_timedwait(&b->cv, &b->mu, &ts);
		}
		b->idle = false;
		pthread_mutex_unlock(&b->mu);
		uint32_t plen = rng_next(&b->rng) % 2 ? PM_PAGE_SIZE : 0;

		r = echo_once(b->c, &b->rng, CMD_ECHO, mlen, plen, 0,
			      ms_from_now(5000), err, sizeof(err));
		if (r)
			eb_note(&b->eb, "good client: %s", err);
		pthread_mutex_lock(&b->mu);
		if (!r)
			b->ok++;
		pthread_cond_broadcast(&b->cv);
		stop = b->stop;
		pthread_mutex_unlock(&b->mu);
	} while (!stop && !r);
	return NULL;
}

/* Wait until the good client has completed n more calls. */
static bool bg_progress(struct bg *b, uint64_t n, int ms)
{
	struct timespec ts;
	uint64_t want;
	bool ok;

	mono_deadline(&ts, ms);
	pthread_mutex_lock(&b->mu);
	want = b->ok + n;
	while (!(ok = b->ok >= want) && !b->eb.n)
		if (pthread_cond_timedwait(&b->cv, &b->mu, &ts) == ETIMEDOUT)
			break;
	ok = b->ok >= want;
	pthread_mutex_unlock(&b->mu);
	return ok;
}

/* Stop the good client between calls (so its allocations do not blur an
 * RSS measurement); false if it did not stop within 10 s. */
static bool bg_pause(struct bg *b)
{
	struct timespec ts;
	bool ok;

	mono_deadline(&ts, 10000);
	pthread_mutex_lock(&b->mu);
	b->paused = true;
	while (!b->idle && !b->eb.n)
		if (pthread_cond_timedwait(&b->cv, &b->mu, &ts) == ETIMEDOUT)
			break;
	ok = b->idle;
	pthread_mutex_unlock(&b->mu);
	return ok;
}

static void bg_resume(struct bg *b)
{
	pthread_mutex_lock(&b->mu);
	b->paused = false;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

struct rawfix {
	struct fix *f;
	struct bg bg;
	char host[PM_ENDPOINT_MAX];
	char port[16];
	int good_conns;		/* connections that may carry requests */
	int raw;		/* raw connections opened */
};

static long rss_kib(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

static struct rawfix *raw_up(bool needs_frame)
{
	uint64_t rng = seed ^ 11;
	struct rawfix *rf;

	REQUIRE_USABLE();
	if (needs_frame && !frame_checks) {
		print_message("SKIP: PM_CONFORMANCE_FRAME=none: the plugin does not speak plugins/common/frame.h\n");
		skip();
	}
	rf = calloc(1, sizeof(*rf));	/* heap: see fix_up */
	assert_non_null(rf);
	rf->f = fix_up();
	if (!is_stream(rf->f->s->ep, rf->host, sizeof(rf->host),
			    rf->port, sizeof(rf->port))) {
		print_message("SKIP: endpoint '%s' is not the HOST:PORT of a TCP listener: raw-socket cases apply to stream transports only\n",
			      rf->f->s->ep);
		fix_down(rf->f);
		free(rf);
		skip();
	}
	assert_echo(rf->f->c, &rng, 16, 16);
	rf->good_conns = 1;
	pthread_mutex_init(&rf->bg.mu, NULL);
	cond_init_mono(&rf->bg.cv);
	eb_init(&rf->bg.eb);
	rf->bg.c = rf->f->c;
	rf->bg.rng = seed ^ 12;
	assert_int_equal(pthread_create(&rf->bg.th, NULL, bg_main, &rf->bg),
			 0);
	if (!bg_progress(&rf->bg, 5, 10000))
		fail_msg("good client made no progress: %s", rf->bg.eb.first);
	return rf;
}

static void raw_down(struct rawfix *rf)
{
	struct srv *s = rf->f->s;
	int with_req;

	/* every raw connection ends with exactly one on_close */
	if (!srv_wait(s, p_raw_closed, rf->raw, 10000))
		fail_msg("%d raw connections, %d on_close within 10 s", rf->raw,
			 srv_locked_int(s, count_conns, false, true));
	/* ... and the good client was served during and after */
	if (!bg_progress(&rf->bg, 20, 10000))
		fail_msg("good client stalled: %s", rf->bg.eb.n ?
			 rf->bg.eb.first : "no progress in 10 s");
	pthread_mutex_lock(&rf->bg.mu);
	rf->bg.stop = true;
	pthread_mutex_unlock(&rf->bg.mu);
	if (join_ms(rf->bg.th, 10000))
		fail_msg("good client thread did not stop");
	assert_no_errors(&rf->bg.eb);
	print_message("  good client: %" PRIu64 " calls verified meanwhile\n",
		      rf->bg.ok);
	with_req = srv_locked_int(s, count_conns, true, false);
	if (with_req != rf->good_conns)
		fail_msg("on_request was called for %d connection(s) that sent only bad bytes",
			 with_req - rf->good_conns);
	fix_down(rf->f);
	free(rf);
}

static int raw_connect(struct rawfix *rf)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai;
	struct timeval tv = { .tv_sec = 5 };
	struct pollfd pfd;
	int fd, r, err = 0;
	socklen_t el = sizeof(err);

	r = getaddrinfo(rf->host, rf->port, &hints, &ai);
	if (r)
		fail_msg("getaddrinfo %s:%s: %s", rf->host, rf->port,
			 gai_strerror(r));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(fd >= 0);
	r = connect(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (r && errno != EINPROGRESS)
		fail_msg("raw connect %s:%s: %s", rf->host, rf->port,
			 strerror(errno));
	pfd.fd = fd;
	pfd.events = POLLOUT;
	if (poll(&pfd, 1, 5000) != 1)
		fail_msg("raw connect %s:%s: no answer in 5 s", rf->host,
			 rf->port);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (err)
		fail_msg("raw connect %s:%s: %s", rf->host, rf->port,
			 strerror(err));
	/* blocking from here, but never beyond 5 s per operation */
	fcntl(fd, F_SETFL, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	rf->raw++;
	return fd;
}

/* Send what fits before the peer drops us; bytes sent or -errno. */
static ssize_t raw_send(int fd, const void *b, size_t n)
{
	size_t done = 0;
	ssize_t w;

	while (done < n) {
		w = send(fd, (const char *)b + done, n - done, MSG_NOSIGNAL);
		if (w < 0)
			return done ? (ssize_t)done : -errno;
		done += w;
	}
	return done;
}

/* 0 when the listener dropped the connection within 5 s (EOF or reset);
 * -ETIMEDOUT when it kept it; -EPROTO when it sent bytes back. */
static int raw_wait_dropped(int fd)
{
	char b[256];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&pfd, 1, 5000) != 1)
		return -ETIMEDOUT;
	n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
	if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
		return 0;
	if (n > 0)
		return -EPROTO;
	return -errno;
}

static void raw_expect_drop(struct rawfix *rf, const char *what,
			    const void *b, size_t n)
{
	int fd = raw_connect(rf);
	int r;

	raw_send(fd, b, n);
	r = raw_wait_dropped(fd);
	close(fd);
	if (r == -ETIMEDOUT)
		fail_msg("%s: connection still open 5 s later", what);
	if (r == -EPROTO)
		fail_msg("%s: the listener answered it", what);
	assert_int_equal(r, 0);
	print_message("  %s: dropped\n", what);
}

static void frame(struct pm_frame_hdr *h, uint8_t kind, uint64_t id,
		  uint32_t msg_len, uint32_t payload_len)
{
	pm_frame_encode(h, kind, id, 0, msg_len, payload_len);
}

static void test_raw_valid_frame(void **state)
{
	struct rawfix *rf;
	struct pm_frame_hdr h;
	uint8_t out[PM_FRAME_HDR_LEN + 5 + 100], in[256];
	const char *bad;
	int fd, i;
	ssize_t n;

	(void)state;
	rf = raw_up(true);
	/* the frame format is what the other cases corrupt: prove it first */
	frame(&h, PM_FRAME_REQ, 77, 5, 100);
	memcpy(out, &h, sizeof(h));
	memcpy(out + sizeof(h), "hello", 5);
	for (i = 0; i < 100; i++)
		out[sizeof(h) + 5 + i] = (uint8_t)i;
	fd = raw_connect(rf);
	rf->raw--;		/* a well-formed peer, not a bad one */
	rf->good_conns++;
	assert_int_equal(raw_send(fd, out, sizeof(out)), sizeof(out));
	n = recv(fd, in, PM_FRAME_HDR_LEN, MSG_WAITALL);
	if (n != PM_FRAME_HDR_LEN)
		fail_msg("no reply frame to a valid request frame (%zd): does the plugin speak plugins/common/frame.h? (PM_CONFORMANCE_FRAME=none skips these cases)",
			 n);
	memcpy(&h, in, sizeof(h));
	bad = pm_frame_decode(&h);
	if (bad)
		fail_msg("reply frame header: bad %s", bad);
	assert_int_equal(h.kind, PM_FRAME_REP);
	assert_int_equal(h.id, 77);
	assert_int_equal(h.status, 0);
	assert_int_equal(h.msg_len, 5);
	assert_int_equal(h.payload_len, 100);
	n = recv(fd, in, 105, MSG_WAITALL);
	assert_int_equal(n, 105);
	for (i = 0; i < 5; i++)
		assert_int_equal(in[i], "hello"[i] ^ XOR);
	for (i = 0; i < 100; i++)
		assert_int_equal(in[5 + i], i ^ XOR);
	close(fd);
	raw_down(rf);
}

static void test_raw_garbage(void **state)
{
	uint64_t rng = seed ^ 13;
	struct rawfix *rf;
	uint8_t junk[4096];
	int i;

	(void)state;
	rf = raw_up(false);
	for (i = 0; i < 3; i++) {
		rand_fill(&rng, junk, sizeof(junk));
		if (junk[0] == 'P')
			junk[0] = 'Q';	/* no valid magic by chance */
		raw_expect_drop(rf, "4096 random bytes", junk, sizeof(junk));
	}
	raw_down(rf);
}

static void test_raw_bad_magic(void **state)
{
	struct rawfix *rf;
	uint8_t b[PM_FRAME_HDR_LEN + 16] = { 0 };
	struct pm_frame_hdr h;

	(void)state;
	rf = raw_up(true);
	frame(&h, PM_FRAME_REQ, 1, 16, 0);
	h.magic = htole32(0xdeadbeef);
	memcpy(b, &h, sizeof(h));
	raw_expect_drop(rf, "bad magic", b, sizeof(b));
	raw_down(rf);
}

static void test_raw_bad_lengths(void **state)
{
	struct rawfix *rf;
	uint8_t b[PM_FRAME_HDR_LEN + 512] = { 0 };
	struct pm_frame_hdr h;

	(void)state;
	rf = raw_up(true);
	frame(&h, PM_FRAME_REQ, 1, PM_MSG_MAX + 1, 0);
	memcpy(b, &h, sizeof(h));
	raw_expect_drop(rf, "msg_len PM_MSG_MAX+1", b, sizeof(b));
	frame(&h, PM_FRAME_REQ, 2, 0xffff, 0);
	memcpy(b, &h, sizeof(h));
	raw_expect_drop(rf, "msg_len 65535", b, sizeof(b));
	frame(&h, PM_FRAME_REQ, 3, 0, PM_PAYLOAD_MAX + 1);
	memcpy(b, &h, sizeof(h));
	raw_expect_drop(rf, "payload_len PM_PAYLOAD_MAX+1", b, sizeof(b));
	raw_down(rf);
}

static void test_raw_bad_kind(void **state)
{
	struct rawfix *rf;
	uint8_t b[PM_FRAME_HDR_LEN + 8] = { 0 };
	struct pm_frame_hdr h;

	(void)state;
	rf = raw_up(true);
	frame(&h, 9, 1, 8, 0);
	memcpy(b, &h, sizeof(h));
	raw_expect_drop(rf, "frame kind 9", b, sizeof(b));
	frame(&h, PM_FRAME_REQ, 2, 8, 0);
	h.rsvd = 1;
	memcpy(b, &h, sizeof(h));
	raw_expect_drop(rf, "reserved byte set", b, sizeof(b));
	pm_frame_encode(&h, PM_FRAME_REQ, 3, -5, 8, 0);
	memcpy(b, &h, sizeof(h));
	raw_expect_drop(rf, "request carrying a status", b, sizeof(b));
	raw_down(rf);
}

#define NHUGE 16
#define HUGE_SEND (8u << 20)
/* A peer that only writes must see its writes fail this soon after the
 * bad header: the listener drops at the header, in microseconds, so this
 * leaves room for a loaded machine. A listener that closes without a
 * reset leaves such a peer probing a zero window for seconds. */
#define HUGE_RESET_MS 1000

/* Frames claiming 4 GiB payloads, followed by as many bytes as the
 * listener takes: it must drop them, not buffer them, and reset them so
 * the writer learns it at once. */
static void test_raw_huge_payload(void **state)
{
	static uint8_t chunk[1 << 16];
	struct rawfix *rf;
	struct pm_frame_hdr h;
	long rss0, rss1;
	size_t total = 0, slow_sent = 0;
	double slow_ms = 0;
	int fd[NHUGE], i, r, slow = -1;

	(void)state;
	rf = raw_up(true);
	memset(chunk, 0x5a, sizeof(chunk));
	/* Only the bad peers run while RSS is measured: the good client's
	 * buffers (and, under ASan, its freed ones in quarantine) would
	 * count too. It runs again afterwards. */
	if (!bg_pause(&rf->bg))
		fail_msg("good client did not pause: %s", rf->bg.eb.first);
	rss0 = rss_kib();
	frame(&h, PM_FRAME_REQ, 1, 0, 0);
	h.payload_len = htole32(0xffffffffu);
	for (i = 0; i < NHUGE; i++) {
		size_t sent = 0;
		bool reset = false;
		int64_t t0, dl;

		fd[i] = raw_connect(rf);
		if (raw_send(fd[i], &h, sizeof(h)) != sizeof(h))
			continue;
		t0 = pm_now_ns();
		dl = ms_from_now(HUGE_RESET_MS);
		fcntl(fd[i], F_SETFL, O_NONBLOCK);
		while (sent < HUGE_SEND && pm_now_ns() < dl) {
			struct pollfd pfd = { .fd = fd[i], .events = POLLOUT };
			ssize_t w;

			if (poll(&pfd, 1, 100) < 0)
				break;
			w = send(fd[i], chunk, sizeof(chunk), MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN) {
				reset = true;	/* dropped: what should happen */
				break;
			}
			if (w > 0)
				sent += w;
		}
		total += sent;
		if (!reset && slow < 0) {
			slow = i;
			slow_ms = ms_since(t0);
			slow_sent = sent;
		}
	}
	rss1 = rss_kib();
	print_message("  %d frames claiming 4 GiB; %zu bytes accepted after them; RSS %ld -> %ld KiB\n",
		      NHUGE, total, rss0, rss1);
	for (i = 0; i < NHUGE; i++) {
		fcntl(fd[i], F_SETFL, 0);
		r = raw_wait_dropped(fd[i]);
		close(fd[i]);
		if (r)
			fail_msg("frame claiming a 4 GiB payload: connection %d %s",
				 i, r == -ETIMEDOUT ? "still open 5 s later" :
				 "answered");
	}
	if (rss0 > 0 && rss1 > 0 && rss1 - rss0 > 64 * 1024)
		fail_msg("RSS grew by %ld KiB while bad peers sent %zu bytes",
			 rss1 - rss0, total);
	bg_resume(&rf->bg);
	raw_down(rf);
	if (slow >= 0)
		fail_msg("frame claiming a 4 GiB payload: connection %d could still write %.0f ms after its header (%zu bytes taken); the listener must reset it, not leave the writer waiting",
			 slow, slow_ms, slow_sent);
}

static void test_raw_truncated_stall(void **state)
{
	struct rawfix *rf;
	uint8_t b[PM_FRAME_HDR_LEN + 64] = { 0 };
	struct pm_frame_hdr h;
	int fd1, fd2;

	(void)state;
	rf = raw_up(true);
	frame(&h, PM_FRAME_REQ, 1, 64, 0);
	memcpy(b, &h, sizeof(h));
	/* part of a header, and a header with half its message: then
	 * nothing. The listener must keep serving everyone else. */
	fd1 = raw_connect(rf);
	assert_int_equal(raw_send(fd1, b, 10), 10);
	fd2 = raw_connect(rf);
	assert_int_equal(raw_send(fd2, b, PM_FRAME_HDR_LEN + 32),
			 PM_FRAME_HDR_LEN + 32);
	if (!bg_progress(&rf->bg, 50, 10000))
		fail_msg("good client stalled behind truncated frames: %s",
			 rf->bg.eb.n ? rf->bg.eb.first : "no progress in 10 s");
	print_message("  good client served while 2 peers sat on truncated frames\n");
	close(fd1);
	close(fd2);
	raw_down(rf);
}

static void test_raw_half_frame_close(void **state)
{
	uint64_t rng = seed ^ 14;
	struct rawfix *rf;
	uint8_t b[PM_FRAME_HDR_LEN + 16 + 4096];
	struct pm_frame_hdr h;
	static const size_t cut[] = { 12, PM_FRAME_HDR_LEN,
				      PM_FRAME_HDR_LEN + 8,
				      PM_FRAME_HDR_LEN + 16 + 2000 };
	size_t i;
	int fd;

	(void)state;
	rf = raw_up(true);
	rand_fill(&rng, b, sizeof(b));
	frame(&h, PM_FRAME_REQ, 1, 16, 4096);
	memcpy(b, &h, sizeof(h));
	b[PM_FRAME_HDR_LEN] = 'Q';
	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		fd = raw_connect(rf);
		assert_int_equal(raw_send(fd, b, cut[i]), (ssize_t)cut[i]);
		close(fd);
	}
	print_message("  %zu peers closed mid-frame\n",
		      sizeof(cut) / sizeof(cut[0]));
	raw_down(rf);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_init_fini_repeat),
		cmocka_unit_test(test_listen_endpoint),
		cmocka_unit_test(test_call_sizes),
		cmocka_unit_test(test_reply_too_big),
		cmocka_unit_test(test_reply_msg_too_big),
		cmocka_unit_test(test_remote_status),
		cmocka_unit_test(test_concurrent_calls),
		cmocka_unit_test(test_concurrent_connections),
		cmocka_unit_test(test_deferred_out_of_order),
		cmocka_unit_test(test_call_timeout),
		cmocka_unit_test(test_peer_gone_mid_call),
		cmocka_unit_test(test_reconnect),
		cmocka_unit_test(test_drop),
		cmocka_unit_test(test_on_close_once),
		cmocka_unit_test(test_reply_unknown_conn),
		cmocka_unit_test(test_disconnect_inflight),
		cmocka_unit_test(test_fini_inflight),
		cmocka_unit_test(test_raw_valid_frame),
		cmocka_unit_test(test_raw_garbage),
		cmocka_unit_test(test_raw_bad_magic),
		cmocka_unit_test(test_raw_bad_lengths),
		cmocka_unit_test(test_raw_bad_kind),
		cmocka_unit_test(test_raw_huge_payload),
		cmocka_unit_test(test_raw_truncated_stall),
		cmocka_unit_test(test_raw_half_frame_close),
	};
	const char *env, *base;
	char name[CFG_NAME_MAX], group[CFG_NAME_MAX + 16];
	size_t n;

	if (argc != 2 || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "--help")) {
		fprintf(argc == 2 ? stdout : stderr,
			"usage: conformance PLUGIN.so\n"
			"Runs the transport ABI conformance suite against one plugin.\n"
			"env: PM_CONFORMANCE_LISTEN (default 127.0.0.1:0),\n"
			"     PM_CONFORMANCE_FRAME=none, PM_CONFORMANCE_SEED\n");
		return argc == 2 ? 0 : 2;
	}
	env = getenv("PM_CONFORMANCE_LISTEN");
	if (env && *env)
		snprintf(listen_addr, sizeof(listen_addr), "%s", env);
	env = getenv("PM_CONFORMANCE_FRAME");
	frame_checks = !(env && !strcmp(env, "none"));
	env = getenv("PM_CONFORMANCE_SEED");
	seed = env && *env ? strtoull(env, NULL, 0) :
		(uint64_t)pm_now_ns() ^ ((uint64_t)getpid() << 32);
	if (!seed)
		seed = 1;

	/* the transport's name: the file name without directory and .so */
	base = strrchr(argv[1], '/');
	base = base ? base + 1 : argv[1];
	snprintf(name, sizeof(name), "%s", base);
	n = strlen(name);
	if (n > 3 && !strcmp(name + n - 3, ".so"))
		name[n - 3] = '\0';

	loader_open_path(&plug, argv[1], name, NULL, 0);
	ops = plug.ops;
	usable = plug.usable;
	printf("conformance: %s (%s), listen %s, seed 0x%" PRIx64 "\n",
	       argv[1], name, listen_addr, seed);
	if (ops && !usable)
		printf("conformance: SKIP: %s: %s: every test after test_load is skipped\n",
		       argv[1], plug.why);
	fflush(stdout);
	snprintf(group, sizeof(group), "conformance-%s", name);
	n = cmocka_run_group_tests_name(group, tests, NULL, NULL);
	/* A failed test leaves its fixture behind, and with it plugin
	 * threads that may still run: unloading the plugin under them
	 * would turn the failure into a crash at exit. */
	if (!n)
		loader_close(&plug);
	return n ? 1 : 0;
}
