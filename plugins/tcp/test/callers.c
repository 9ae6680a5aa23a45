// SPDX-License-Identifier: MIT
/*
 * tcp transport tests on the calling side: a call reads its own reply on
 * its own thread, and several threads make the largest calls at once.
 */
#include <errno.h>
#include <string.h>

#include "tt_test.h"

/*
 * The calling side has no threads of its own: a call sends and reads its
 * reply on the caller's thread (no hand-off, DESIGN.md section 3). Only
 * the listener runs threads (accept, one per incoming connection).
 */
void test_caller_reads_itself(void **state)
{
	unsigned seed = 7;
	struct pm_tconn *c;
	struct client *cl;
	struct srv *s;
	int before, i;

	(void)state;
	s = srv_new("127.0.0.1:0", NULL, 0);
	before = count_threads();
	cl = client_new();
	c = client_dial(cl, s->ep);
	/* the listener's receive thread for it exists once a call went */
	assert_int_equal(echo(c, 16, 4096, &seed), 0);
	before++;
	for (i = 0; i < 100; i++)
		assert_int_equal(echo(c, 16, i % 2 ? 4096 : 0, &seed), 0);
	assert_int_equal(count_threads(), before);
	client_free(cl);
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
void test_concurrent_large(void **state)
{
	enum { T = 6 };
	struct big b[T];
	pthread_t th[T];
	struct pm_tconn *c;
	struct client *cl;
	struct srv *s;
	int i;

	(void)state;
	s = srv_new("127.0.0.1:0", NULL, 0);
	cl = client_new();
	c = client_dial(cl, s->ep);
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
	client_free(cl);
	srv_free(s);
}
