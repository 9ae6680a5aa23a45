// SPDX-License-Identifier: MIT
/*
 * Conformance cases on a plugin's life: the loaded table, probe, init and
 * fini over and over, listen and the endpoint it publishes, connect to
 * what cannot be reached, and disconnect or fini with calls in flight.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conformance.h"

void test_load(void **state)
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

void test_probe(void **state)
{
	char why[256], small[16];
	int i;

	(void)state;
	if (!usable)
		case_skip(true, "%s: %s", plug.path,
			  plug.why[0] ? plug.why : "not loaded");
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

/*
 * The listen string: any_listen's answer (or --listen) is "any free
 * address", on which two instances listen at once, and an endpoint is
 * accepted back as a listen string.
 */
void test_any_listen(void **state)
{
	char buf[PM_ENDPOINT_MAX], ep1[PM_ENDPOINT_MAX];
	struct srv *a, *b;
	int r;

	(void)state;
	if (!usable)
		case_skip(true, "%s: %s", plug.path,
			  plug.why[0] ? plug.why : "not loaded");
	if (!listen_addr[0])
		fail_msg("%s has no any_listen op (ABI 1.1) and no --listen ADDR was given: the suite cannot know this transport's \"any free address\"",
			 plug.name);
	if (PM_OPS_HAS(ops, any_listen)) {
		r = ops->any_listen(buf, 1);
		if (r != -ENOSPC && !(r == 0 && !buf[0]))
			fail_msg("any_listen into 1 byte: %d, want -ENOSPC", r);
		assert_int_equal(ops->any_listen(buf, sizeof(buf)), 0);
		print_message("  any_listen: \"%s\"%s\n", buf,
			      strcmp(buf, listen_addr) ? " (--listen overrides it)" : "");
	} else {
		case_unchecked("%s has no any_listen op (ABI 1.1): using %s from %s",
			       plug.name, listen_addr, listen_from);
	}
	a = srv_alloc();
	b = srv_alloc();
	r = srv_start(a, listen_addr, "a");
	if (r)
		fail_msg("init/listen on %s: %s", listen_addr, strerror(-r));
	r = srv_start(b, listen_addr, "b");
	if (r)
		fail_msg("a second instance on %s beside the first: %s (the listen string must mean any free address)",
			 listen_addr, strerror(-r));
	print_message("  two instances on %s: %s and %s\n", listen_addr,
		      a->ep, b->ep);
	if (!strcmp(a->ep, b->ep))
		fail_msg("two instances publish one endpoint %s", a->ep);
	snprintf(ep1, sizeof(ep1), "%s", a->ep);
	srv_free(a);
	a = srv_alloc();
	r = srv_start(a, ep1, "a again");
	if (r)
		fail_msg("listen on the endpoint %s of a stopped instance: %s (an endpoint must be accepted back as a listen string)",
			 ep1, strerror(-r));
	assert_string_equal(a->ep, ep1);
	srv_free(a);
	srv_free(b);
}

void test_init_fini_repeat(void **state)
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

void test_listen_endpoint(void **state)
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
	/* before listen(): an error, and nothing written */
	{
		struct pm_tctx *t = NULL;
		struct ihost ih;

		ih_setup(&ih, listen_addr, "unlistened");
		assert_int_equal(ops->init(&ih.host, &t), 0);
		memset(buf, POISON, sizeof(buf));
		r = ops->endpoint(t, buf, sizeof(buf));
		ops->fini(t);
		if (r >= 0)
			fail_msg("endpoint() before listen() returned %d, want -ENOTCONN",
				 r);
		if (!guard_ok((uint8_t *)buf, sizeof(buf)))
			fail_msg("endpoint() before listen() wrote into the buffer");
	}

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

#define NHELD 4

void test_disconnect_inflight(void **state)
{
	struct caller *cl;
	struct fix *f;
	int64_t t0, t1;

	(void)state;
	REQUIRE_USABLE();
	f = fix_up();
	cl = callers_start(f->c, CMD_HOLD, NHELD, 10000);
	if (!srv_wait(f->s, p_held, NHELD, 5000))
		fail_msg("%d concurrent calls, server saw %d", NHELD,
			 f->s->nheld);
	t0 = pm_now_ns();
	ops->disconnect(f->c);
	t1 = pm_now_ns();
	f->c = NULL;
	print_message("  disconnect with %d calls in flight took %.1f ms\n",
		      NHELD, (double)(t1 - t0) / 1e6);
	callers_expect_shutdown(cl, NHELD, "disconnect");
	/* That disconnect waited for the calls to leave before freeing the
	 * connection is for ASan to see (make asan): a caller still inside
	 * would touch freed memory. */
	assert_true(t1 - t0 < 5000 * 1000000LL);
	fix_down(f);
	free(cl);
}

void test_fini_inflight(void **state)
{
	struct caller *cl;
	struct fix *f;
	int64_t t0;

	(void)state;
	REQUIRE_USABLE();
	f = fix_up();
	cl = callers_start(f->c, CMD_HOLD, 2, 10000);
	assert_true(srv_wait(f->s, p_held, 2, 5000));
	t0 = pm_now_ns();
	ops->fini(f->ct);	/* closes every connection of the instance */
	f->ct = NULL;
	f->c = NULL;
	print_message("  client fini with 2 calls in flight took %.1f ms\n",
		      ms_since(t0));
	callers_expect_shutdown(cl, 2, "fini");
	fix_down(f);
	free(cl);
}
