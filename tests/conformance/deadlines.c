// SPDX-License-Identifier: MIT
/*
 * Conformance cases on deadlines: a call whose reply does not come times
 * out on time, its late reply is discarded, a deadline already gone fails
 * at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

void test_call_timeout(void **state)
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
		if (el > 300 + PM_CALL_LATE_MS) {
			late_reset();	/* reported here, not at teardown */
			fail_msg("a call with a 300 ms deadline returned after %.0f ms: more than PM_CALL_LATE_MS (%d ms) late",
				 el, PM_CALL_LATE_MS);
		}
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
