// SPDX-License-Identifier: MIT
/*
 * Conformance case on malformed input in the plugin's own framing: the
 * plugin's test_corrupt op (ABI 1.1) sends each kind of bad request on a
 * connection of its own; the listener must drop that connection, hand the
 * core nothing of it and keep serving the fixture's client. Transport-
 * neutral: the raw-socket cases (malformed_frames.c) do the same for the
 * built-in stream framing only.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "conformance.h"

static const char *const kind_name[] = {
	[PM_CORRUPT_GARBAGE] = "garbage",
	[PM_CORRUPT_BAD_HEADER] = "bad header",
	[PM_CORRUPT_BAD_LENGTH] = "lengths that lie",
	[PM_CORRUPT_HUGE] = "huge lengths",
	[PM_CORRUPT_TRUNCATED] = "truncated frame",
};

void test_corrupt_input(void **state)
{
	char host[PM_ENDPOINT_MAX], port[16];
	uint64_t rng = seed ^ 31;
	struct pm_tconn *c2;
	struct fix *f;
	int how, r, closed, with_req, logged, done = 0;
	int64_t t0;

	(void)state;
	REQUIRE_USABLE();
	if (!PM_OPS_HAS(ops, test_corrupt)) {
		f = fix_up();
		r = is_stream(f->s->ep, host, sizeof(host), port, sizeof(port));
		fix_down(f);
		if (r && frame_checks)
			case_skip(false, "%s has no test_corrupt op: its malformed input is checked by the test_raw_* cases (plugins/common/frame.h)",
				  plug.name);
		case_skip(true, "%s has no test_corrupt op (ABI 1.1) and does not speak plugins/common/frame.h: malformed input is NOT checked",
			  plug.name);
	}
	f = fix_up();
	assert_echo(f->c, &rng, 16, 16);
	for (how = 1; how <= PM_CORRUPT_KINDS; how++) {
		r = ops->connect(f->ct, f->s->ep, ms_from_now(5000), &c2);
		if (r)
			fail_msg("connect %s: %s", f->s->ep, strerror(-r));
		/* one good request first: the connection is known and live */
		assert_echo(c2, &rng, 8, 8);
		closed = srv_locked_int(f->s, count_conns, true, true);
		with_req = srv_locked_int(f->s, count_conns, true, false);
		pthread_mutex_lock(&f->s->ih.mu);
		logged = f->s->ih.nlines;
		pthread_mutex_unlock(&f->s->ih.mu);
		t0 = pm_now_ns();
		r = ops->test_corrupt(c2, how, ms_from_now(5000));
		if (r == -EOPNOTSUPP) {
			print_message("  %s: the framing has no such thing\n",
				      kind_name[how]);
			ops->disconnect(c2);
			continue;
		}
		if (r)
			fail_msg("test_corrupt(%s): %s", kind_name[how],
				 strerror(-r));
		if (!srv_wait(f->s, p_closed_with_req, closed + 1, 5000))
			fail_msg("%s: the listener kept the connection 5 s",
				 kind_name[how]);
		print_message("  %s: dropped after %.1f ms\n", kind_name[how],
			      ms_since(t0));
		pthread_mutex_lock(&f->s->ih.mu);
		logged = f->s->ih.nlines - logged;
		pthread_mutex_unlock(&f->s->ih.mu);
		if (logged < 1)
			fail_msg("%s: dropped without a warning in the log",
				 kind_name[how]);
		/* the others were served all along, and c2 redials */
		assert_echo(f->c, &rng, 32, 4096);
		assert_echo(c2, &rng, 8, 8);
		ops->disconnect(c2);
		if (srv_locked_int(f->s, count_conns, true, false) !=
		    with_req + 1)
			fail_msg("%s: expected one new connection (the redial)",
				 kind_name[how]);
		done++;
	}
	if (!done)
		case_skip(true, "test_corrupt supports no kind of malformed request: malformed input is NOT checked");
	fix_down(f);	/* no request with bad lengths reached on_request */
}
