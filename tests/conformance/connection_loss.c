// SPDX-License-Identifier: MIT
/*
 * Conformance cases on connections that end: the peer going away during a
 * call, coming back on the same endpoint (redial), drop() and on_close
 * exactly once per connection.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

void test_peer_gone_mid_call(void **state)
{
	struct caller *cl;
	struct fix *f;
	int64_t t0;
	int r;

	(void)state;
	REQUIRE_USABLE();
	f = fix_up();
	cl = callers_start(f->c, CMD_HOLD, 1, 10000);
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

void test_reconnect(void **state)
{
	char ep[PM_ENDPOINT_MAX];
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
	if (r)
		fail_msg("restarted server cannot listen on its endpoint %s again: %s (the ABI: an endpoint string is accepted back as a listen string)",
			 ep, strerror(-r));
	f->s = s2;
	assert_string_equal(s2->ep, ep);
	/* the old connection's next call reaches the new server */
	assert_echo(f->c, &rng, 10, 4096);
	assert_true(s2->requests >= 1);
	assert_echo(f->c, &rng, 0, 0);
	fix_down(f);
}

void test_drop(void **state)
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

void test_on_close_once(void **state)
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

static bool p_dropped(struct srv *s, uint64_t unused)
{
	(void)unused;
	return s->drop_r != 1 && count_conns(s, true, true) >= 1;
}

/*
 * drop() of its own connection from inside on_request: it must not
 * deadlock, must not run on_close inside drop, and on_close follows from
 * a plugin thread. The client's next call redials.
 */
void test_drop_in_handler(void **state)
{
	uint64_t rng = seed ^ 23;
	struct fix *f;
	int r;

	(void)state;
	REQUIRE_USABLE();
	f = fix_up();
	f->s->drop_r = 1;
	assert_echo(f->c, &rng, 10, 0);
	r = cmd_call(f->c, CMD_DROP, 0, NULL, ms_from_now(5000));
	print_message("  call that dropped its connection -> %d (%s)\n", r,
		      strerror(-r));
	if (!srv_wait(f->s, p_dropped, 0, 5000))
		fail_msg("no on_close within 5 s of drop() from on_request");
	if (f->s->drop_r)
		fail_msg("drop() of the request's own connection from on_request: %s",
			 strerror(-f->s->drop_r));
	assert_echo(f->c, &rng, 10, 100);
	fix_down(f);
}

/*
 * At most once: a request the peer has seen (held by its handler) is not
 * sent again when its connection breaks. The call fails (-ECONNRESET or
 * -EPIPE) instead of being resent on a redialled connection, where the
 * core would run it twice.
 */
void test_no_resend(void **state)
{
	uint64_t rng = seed ^ 24;
	struct caller *cl;
	struct fix *f;
	uint64_t conn;
	int held;

	(void)state;
	REQUIRE_USABLE();
	f = fix_up();
	cl = callers_start(f->c, CMD_HOLD, 1, 10000);
	if (!srv_wait(f->s, p_held, 1, 5000))
		fail_msg("the held request never reached the server");
	pthread_mutex_lock(&f->s->mu);
	conn = f->s->held[0].conn;
	pthread_mutex_unlock(&f->s->mu);
	assert_int_equal(ops->drop(f->s->t, conn), 0);
	if (join_ms(cl->th, 9000)) {
		pthread_mutex_lock(&f->s->mu);
		held = f->s->nheld;
		pthread_mutex_unlock(&f->s->mu);
		fail_msg("call still blocked 9 s after its connection was dropped (the server saw the request %d time(s))",
			 held);
	}
	pthread_mutex_lock(&f->s->mu);
	held = f->s->nheld;
	pthread_mutex_unlock(&f->s->mu);
	print_message("  call whose connection was dropped -> %d (%s); the server saw the request %d time(s)\n",
		      cl->r, strerror(-cl->r), held);
	if (held != 1)
		fail_msg("a request the peer had seen was sent again after its connection broke (%d deliveries): at most once is the rule",
			 held);
	if (cl->r != -ECONNRESET && cl->r != -EPIPE)
		fail_msg("a call in flight on a broken connection returned %d (%s), want -ECONNRESET or -EPIPE",
			 cl->r, strerror(-cl->r));
	/* the connection redials for the next call */
	assert_echo(f->c, &rng, 10, 10);
	fix_down(f);
	free(cl);
}
