// SPDX-License-Identifier: MIT
/*
 * The server instance of each case: its handler obeys the command at the
 * start of a request (struct cmd) and records every callback, so a case
 * can wait for what the plugin did and check it kept the contract.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

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

int reply_echo(struct srv *s, uint64_t conn, uint64_t req,
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

/* Set around a drop() made inside on_request: on_close must not come. */
static __thread bool in_drop;

static void srv_handle(struct srv *s, const struct pm_request *rq);

/* Every request: note whether on_request already runs for its connection
 * (the ABI: one at a time per connection), then handle it. */
static void srv_on_request(void *arg, const struct pm_request *rq)
{
	struct srv *s = arg;
	struct conn_rec *cr;

	pthread_mutex_lock(&s->mu);
	cr = conn_get(s, rq->conn_id);
	if (cr && cr->active++)
		s->overlaps++;
	pthread_mutex_unlock(&s->mu);
	srv_handle(s, rq);
	pthread_mutex_lock(&s->mu);
	if (cr)
		cr->active--;
	pthread_mutex_unlock(&s->mu);
}

static void srv_handle(struct srv *s, const struct pm_request *rq)
{
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
	case CMD_ONCE:
		pthread_mutex_lock(&s->mu);
		if (c.arg >= 0 && c.arg < ONCE_N) {
			if (s->once[c.arg] < 255)
				s->once[c.arg]++;
			if (c.arg < ONCE_SEQ) {
				if (c.arg < s->once_last)
					s->once_disorder++;
				s->once_last = c.arg;
			}
		}
		pthread_mutex_unlock(&s->mu);
		r = reply_echo(s, rq->conn_id, rq->req_id, rq->msg,
			       rq->msg_len, rq->payload, rq->payload_len);
		break;
	case CMD_DROP:
		in_drop = true;
		r = ops->drop(s->t, rq->conn_id);
		in_drop = false;
		pthread_mutex_lock(&s->mu);
		if (s->drop_r == 1)	/* the first drop() is the one */
			s->drop_r = r;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		/* the connection is going: whatever reply() says is fine */
		ops->reply(s->t, rq->conn_id, rq->req_id, -ECONNABORTED, &rep);
		r = 0;
		break;
	case CMD_BADSTATUS:
		r = ops->reply(s->t, rq->conn_id, rq->req_id, c.arg, &rep);
		if (r == -EINVAL)	/* refused, nothing sent: say so */
			r = ops->reply(s->t, rq->conn_id, rq->req_id,
				       -EINVAL, &rep);
		else if (r)
			r = ops->reply(s->t, rq->conn_id, rq->req_id,
				       -EPROTO, &rep);
		break;
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
	if (in_drop)
		s->close_in_drop++;
	cr = conn_get(s, conn_id);
	if (cr && ++cr->closes > 1)
		s->dup_closes++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

struct srv *srv_alloc(void)
{
	struct srv *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	pthread_mutex_init(&s->mu, NULL);
	cond_init_mono(&s->cv);
	return s;
}

int srv_start(struct srv *s, const char *listen, const char *label)
{
	return srv_start_with(s, listen, label, NULL, 0);
}

int srv_start_with(struct srv *s, const char *listen, const char *label,
		   const struct ih_int *ints, int n)
{
	const struct pm_listener lst = {
		.on_request = srv_on_request,
		.on_close = srv_on_close,
		.arg = s,
	};
	int i, r;

	ih_setup(&s->ih, listen, label);
	for (i = 0; i < n; i++)
		ih_set_int(&s->ih, ints[i].key, ints[i].val);
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

void srv_stop(struct srv *s)
{
	if (s->t)
		ops->fini(s->t);
	s->t = NULL;
	pthread_mutex_lock(&s->mu);
	s->finished = true;
	srv_drop_held(s);
	pthread_mutex_unlock(&s->mu);
}

void srv_free(struct srv *s)
{
	if (!s)
		return;
	srv_stop(s);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* Wait until pred holds, at most ms. Returns whether it holds. */
bool srv_wait(struct srv *s, srv_pred pred, uint64_t arg, int ms)
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

bool p_held(struct srv *s, uint64_t n)
{
	return (uint64_t)s->nheld >= n;
}

bool p_closed(struct srv *s, uint64_t id)
{
	int i;

	for (i = 0; i < s->nconns; i++)
		if (s->conns[i].id == id)
			return s->conns[i].closes > 0;
	return false;
}

int count_conns(struct srv *s, bool with_requests, bool closed)
{
	int i, n = 0;

	for (i = 0; i < s->nconns; i++)
		if ((s->conns[i].requests > 0) == with_requests &&
		    (!closed || s->conns[i].closes > 0))
			n++;
	return n;
}

/* Connections that never carried a request (raw sockets) and are closed. */
bool p_raw_closed(struct srv *s, uint64_t n)
{
	return (uint64_t)count_conns(s, false, true) >= n;
}

bool p_closed_with_req(struct srv *s, uint64_t n)
{
	return (uint64_t)count_conns(s, true, true) >= n;
}

bool p_conns_with_req(struct srv *s, uint64_t n)
{
	return (uint64_t)count_conns(s, true, false) >= n;
}

int srv_locked_int(struct srv *s, int (*f)(struct srv *, bool, bool),
		   bool a, bool b)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = f(s, a, b);
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* The id of the one incoming connection that carried requests. */
uint64_t srv_only_conn(struct srv *s)
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

void srv_check_clean(struct srv *s)
{
	pthread_mutex_lock(&s->mu);
	if (s->dup_closes || s->late_callbacks || s->req_after_close ||
	    s->bad_requests || s->conn_overflow || s->overlaps ||
	    s->close_in_drop) {
		uint64_t d = s->dup_closes, l = s->late_callbacks;
		uint64_t a = s->req_after_close, b = s->bad_requests;
		uint64_t o = s->overlaps, i = s->close_in_drop;

		pthread_mutex_unlock(&s->mu);
		fail_msg("server callbacks broke the contract: %" PRIu64
			 " duplicate on_close, %" PRIu64
			 " callbacks after fini, %" PRIu64
			 " on_request after on_close, %" PRIu64
			 " requests with bad lengths/pointers, %" PRIu64
			 " on_request concurrent with another for its connection, %"
			 PRIu64 " on_close inside drop()", d, l, a, b, o, i);
	}
	pthread_mutex_unlock(&s->mu);
}
