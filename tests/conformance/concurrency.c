// SPDX-License-Identifier: MIT
/*
 * Conformance cases on concurrency: many threads calling on one
 * connection, one connection per thread, and replies from another thread
 * in an order of their own.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

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

/* The deferred replier waits for every call in flight: count them. */
static void inflight_add(struct srv *s, int d)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->inflight += d;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void *worker_main(void *a)
{
	struct worker *w = a;
	char err[512];
	int i, r;

	for (i = 0; i < w->n; i++) {
		uint32_t mlen = rng_next(&w->rng) % (PM_MSG_MAX + 1);
		uint32_t plen = random_payload_len(&w->rng);

		inflight_add(w->s, 1);
		r = echo_once(w->c, &w->rng, w->cmd, mlen, plen, 0,
			      ms_from_now(CALL_MS), err, sizeof(err));
		inflight_add(w->s, -1);
		if (r)
			eb_note(w->eb, "call %d: %s", i, err);
		else
			w->ok++;
	}
	return NULL;
}

#define NWORKERS 8

/* On the heap (see fix_up): a failed test leaves them running. */
static struct worker *workers_new(void)
{
	struct worker *w = calloc(NWORKERS, sizeof(*w));

	assert_non_null(w);
	return w;
}

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

void test_concurrent_calls(void **state)
{
	struct worker *w;
	struct errbox *eb;
	struct fix *f;
	int64_t t0;
	int ok;

	(void)state;
	REQUIRE_USABLE();
	w = workers_new();
	eb = eb_new();
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
void test_concurrent_connections(void **state)
{
	struct worker *w;
	struct errbox *eb;
	struct fix *f;
	int64_t t0;
	int i, ok, r;

	(void)state;
	REQUIRE_USABLE();
	w = workers_new();
	eb = eb_new();
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

void test_deferred_out_of_order(void **state)
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
	w = workers_new();
	rp = calloc(1, sizeof(*rp));
	assert_non_null(rp);
	eb = eb_new();
	reb = eb_new();
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
