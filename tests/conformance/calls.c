// SPDX-License-Identifier: MIT
/*
 * Conformance cases on calls and replies: every message and payload size
 * verified byte for byte, replies too big for the caller's buffers,
 * statuses carried back, and replies or drops for connections unknown.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

void test_call_sizes(void **state)
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

void test_reply_too_big(void **state)
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

void test_reply_msg_too_big(void **state)
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
	r = tcall(f->c, &req, &rep, ms_from_now(CALL_MS));
	if (r != -EMSGSIZE)
		fail_msg("200-byte reply msg into msg_cap 100: %d (%s), want -EMSGSIZE",
			 r, strerror(-r));
	assert_true(guard_ok(rmsg + 100, GUARD));
	assert_echo(f->c, &rng, 100, 0);
	fix_down(f);
}

void test_remote_status(void **state)
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
	/* outside the range: reply() refuses it and sends nothing (the
	 * server then answers -EINVAL itself) */
	for (i = 0; i < 3; i++) {
		static const int bad[] = { 1, -(int)PM_STATUS_MAX - 1, 4242 };

		r = cmd_call(f->c, CMD_BADSTATUS, bad[i], NULL,
			     ms_from_now(CALL_MS));
		if (r != -EINVAL)
			fail_msg("reply(status %d): the caller got %d (%s); reply() must refuse a status outside 0, -%u..-1 with -EINVAL",
				 bad[i], r, strerror(-r), PM_STATUS_MAX);
	}
	assert_echo(f->c, &rng, 12, 100);
	fix_down(f);
}

struct once_worker {
	pthread_t th;
	struct pm_tconn *c;
	int first, n, err;
};

static void *once_main(void *a)
{
	struct once_worker *w = a;
	uint8_t rmsg[PM_MSG_MAX];
	struct pm_msg rep;
	int i, r;

	for (i = 0; i < w->n && !w->err; i++) {
		rep = (struct pm_msg){ .msg = rmsg, .msg_cap = sizeof(rmsg) };
		r = cmd_call(w->c, CMD_ONCE, w->first + i, &rep,
			     ms_from_now(CALL_MS));
		if (r)
			w->err = r;
	}
	return NULL;
}

#define ONCE_WORKERS 8

/*
 * Each request reaches on_request exactly once: ONCE_SEQ calls one after
 * another (also in the order sent), then the rest from ONCE_WORKERS
 * threads on two connections at once. Never concurrently with another
 * of its connection (srv_check_clean). A plugin that delivers a request
 * twice makes the core run a fetch or an invalidation twice; fini
 * delivers everything before it returns, so the counts are final after
 * srv_stop.
 */
void test_exactly_once(void **state)
{
	struct once_worker *w;
	struct pm_msg rep = { 0 };
	uint8_t rmsg[PM_MSG_MAX];
	struct pm_tconn *c2;
	struct fix *f;
	int i, r, dups = 0, lost = 0, first = -1;
	const int per = (ONCE_N - ONCE_SEQ) / ONCE_WORKERS;

	(void)state;
	REQUIRE_USABLE();
	w = calloc(ONCE_WORKERS, sizeof(*w));	/* heap: see fix_up */
	assert_non_null(w);
	f = fix_up();
	for (i = 0; i < ONCE_SEQ; i++) {
		rep.msg = rmsg;
		rep.msg_cap = sizeof(rmsg);
		r = cmd_call(f->c, CMD_ONCE, i, &rep, ms_from_now(CALL_MS));
		if (r)
			fail_msg("call %d: %s", i, strerror(-r));
	}
	r = ops->connect(f->ct, f->s->ep, ms_from_now(5000), &c2);
	if (r)
		fail_msg("connect %s: %s", f->s->ep, strerror(-r));
	for (i = 0; i < ONCE_WORKERS; i++) {
		w[i].c = i % 2 ? c2 : f->c;
		w[i].first = ONCE_SEQ + i * per;
		w[i].n = per;
		assert_int_equal(pthread_create(&w[i].th, NULL, once_main,
						&w[i]), 0);
	}
	for (i = 0; i < ONCE_WORKERS; i++) {
		if (join_ms(w[i].th, 20000))
			fail_msg("worker %d still calling after 20 s", i);
		if (w[i].err)
			fail_msg("worker %d: %s", i, strerror(-w[i].err));
	}
	ops->disconnect(c2);
	ops->disconnect(f->c);
	f->c = NULL;
	srv_check_clean(f->s);
	srv_stop(f->s);
	for (i = 0; i < ONCE_N; i++) {
		if (f->s->once[i] > 1 && first < 0)
			first = i;
		dups += f->s->once[i] > 1;
		lost += !f->s->once[i];
	}
	print_message("  %d requests (%d in sequence, %d from %d threads): %d delivered more than once, %d never, %" PRIu64 " out of order\n",
		      ONCE_N, ONCE_SEQ, ONCE_N - ONCE_SEQ, ONCE_WORKERS, dups,
		      lost, f->s->once_disorder);
	if (dups)
		fail_msg("%d of %d requests reached on_request more than once (request %d: %u times): at most once is the rule",
			 dups, ONCE_N, first, f->s->once[first]);
	if (lost)
		fail_msg("%d requests answered but never seen by on_request",
			 lost);
	if (f->s->once_disorder)
		fail_msg("%" PRIu64 " requests of one connection reached on_request after a request sent later",
			 f->s->once_disorder);
	fix_down(f);
	free(w);
}

void test_reply_unknown_conn(void **state)
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
