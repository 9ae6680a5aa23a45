// SPDX-License-Identifier: MIT
/*
 * tcp transport tests on its configuration: endpoint parsing
 * (plugins/common/net.h) and the settings listen, advertise,
 * send_timeout_ms, max_conns, handshake_timeout_ms and stall_timeout_ms,
 * with the lines that name a bad one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tt_test.h"

void test_parse_endpoints(void **state)
{
	static const struct {
		const char *ep, *printed;
	} good[] = {
		{ "127.0.0.1:7701", "127.0.0.1:7701" },
		{ "10.1.2.3:0", "10.1.2.3:0" },
		{ "localhost:80", "127.0.0.1:80" },
		{ "*:9", "0.0.0.0:9" },
		{ ":65535", "0.0.0.0:65535" },
		{ "[::1]:7701", "[::1]:7701" },
		{ "[fe80::1:2]:1", "[fe80::1:2]:1" },
	};
	static const char *const bad[] = {
		"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
		"127.0.0.1:-1", "127.0.0.1:1x", "127.0.0.1: 1", "host:1",
		"::1:5", "[::1:5", "[::1]5", "[::1]:", "[127.0.0.1]:5",
		"1.2.3.4.5:1", "127.0.0.1:99999999999999999999",
	};
	struct sockaddr_storage ss;
	char err[256], buf[PM_NET_ADDRSTR_MAX];
	volatile size_t small;
	socklen_t sl;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err[0] = '\0';
		assert_int_equal(pm_net_parse(good[i].ep, &ss, &sl, err,
					      sizeof(err)), 0);
		assert_int_equal(pm_net_format((struct sockaddr *)&ss, buf,
					       sizeof(buf)), 0);
		assert_string_equal(buf, good[i].printed);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(pm_net_parse(bad[i], &ss, &sl, err,
					      sizeof(err)), -EINVAL);
		/* the message names the endpoint it rejects */
		assert_non_null(strstr(err, bad[i]));
	}
	assert_int_equal(pm_net_parse(NULL, &ss, &sl, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(pm_net_parse("127.0.0.1:1", &ss, &sl, err,
				      sizeof(err)), 0);
	/* "127.0.0.1:1" needs 12 bytes (a volatile size, so the compiler
	 * does not flag the truncation we ask for) */
	small = 8;
	assert_int_equal(pm_net_format((struct sockaddr *)&ss, buf, small),
			 -ENOSPC);
}

static void nop_request(void *arg, const struct pm_request *rq)
{
	(void)arg;
	(void)rq;
}

static void nop_close(void *arg, uint64_t conn_id)
{
	(void)arg;
	(void)conn_id;
}

static const struct pm_listener nop_listener = { nop_request, nop_close,
						 NULL };

/* An instance with h's settings, listening: what listen() returned, and
 * on success the endpoint it publishes in ep. The caller finis *t. */
static int init_listen(struct host *h, struct pm_tctx **t, char *ep,
		       size_t len)
{
	int r;

	assert_int_equal(ops->init(&h->h, t), 0);
	r = ops->listen(*t, &nop_listener);
	if (!r)
		assert_int_equal(ops->endpoint(*t, ep, len), 0);
	return r;
}

void test_settings(void **state)
{
	struct pm_tctx *t;
	struct host *h;
	struct srv *s;
	char ep[PM_ENDPOINT_MAX];
	int fd;

	(void)state;
	/* no listen key: -EINVAL and a line saying which key */
	h = host_new(NULL);
	assert_int_equal(ops->init(&h->h, &t), 0);
	assert_int_equal(ops->endpoint(t, ep, sizeof(ep)), -ENOTCONN);
	assert_int_equal(ops->listen(t, &nop_listener), -EINVAL);
	assert_non_null(strstr(h->last, "transports.tcp.listen"));
	ops->fini(t);
	host_free(h);

	/* unparsable listen */
	h = host_new("127.0.0.1:http");
	assert_int_equal(init_listen(h, &t, ep, sizeof(ep)), -EINVAL);
	assert_non_null(strstr(h->last, "127.0.0.1:http"));
	ops->fini(t);
	host_free(h);

	/* a port someone listens on: the bind error, not a hang */
	s = srv_new("127.0.0.1:0", NULL, 0);
	h = host_new(s->ep);
	assert_int_equal(init_listen(h, &t, ep, sizeof(ep)), -EADDRINUSE);
	ops->fini(t);
	host_free(h);
	srv_free(s);

	/* send_timeout_ms out of range */
	h = host_new("127.0.0.1:0");
	h->ikey = "send_timeout_ms";
	h->ival = 0;
	assert_int_equal(ops->init(&h->h, &t), -EINVAL);
	assert_non_null(strstr(h->last, "send_timeout_ms"));
	host_free(h);

	/* max_conns out of range, both ends */
	h = host_new("127.0.0.1:0");
	h->ikey = "max_conns";
	h->ival = 0;
	assert_int_equal(ops->init(&h->h, &t), -EINVAL);
	assert_non_null(strstr(h->last, "transports.tcp.max_conns"));
	h->last[0] = '\0';
	h->ival = 70000;
	assert_int_equal(ops->init(&h->h, &t), -EINVAL);
	assert_non_null(strstr(h->last, "transports.tcp.max_conns"));
	h->ival = 65536;	/* the largest allowed */
	assert_int_equal(ops->init(&h->h, &t), 0);
	ops->fini(t);
	host_free(h);

	/* handshake_timeout_ms out of range, both ends */
	h = host_new("127.0.0.1:0");
	h->ikey = "handshake_timeout_ms";
	h->ival = 0;
	assert_int_equal(ops->init(&h->h, &t), -EINVAL);
	assert_non_null(strstr(h->last,
			       "transports.tcp.handshake_timeout_ms"));
	h->last[0] = '\0';
	h->ival = 3600001;
	assert_int_equal(ops->init(&h->h, &t), -EINVAL);
	assert_non_null(strstr(h->last,
			       "transports.tcp.handshake_timeout_ms"));
	h->ival = 3600000;	/* the largest allowed */
	assert_int_equal(ops->init(&h->h, &t), 0);
	ops->fini(t);
	host_free(h);

	/* stall_timeout_ms out of range, both ends */
	h = host_new("127.0.0.1:0");
	h->ikey = "stall_timeout_ms";
	h->ival = 0;
	assert_int_equal(ops->init(&h->h, &t), -EINVAL);
	assert_non_null(strstr(h->last, "transports.tcp.stall_timeout_ms"));
	h->last[0] = '\0';
	h->ival = 3600001;
	assert_int_equal(ops->init(&h->h, &t), -EINVAL);
	assert_non_null(strstr(h->last, "transports.tcp.stall_timeout_ms"));
	h->ival = 3600000;	/* the largest allowed */
	assert_int_equal(ops->init(&h->h, &t), 0);
	ops->fini(t);
	host_free(h);

	/* advertise: published instead of the wildcard, port kept; a name
	 * is refused (peers parse endpoints numerically) */
	h = host_new("0.0.0.0:0");
	h->keys[1] = "advertise";
	h->vals[1] = "127.0.0.1";
	assert_int_equal(init_listen(h, &t, ep, sizeof(ep)), 0);
	assert_int_equal(strncmp(ep, "127.0.0.1:", 10), 0);
	assert_true(atoi(ep + 10) > 0);
	fd = raw_dial(ep);	/* it is really there */
	close(fd);
	ops->fini(t);
	h->vals[1] = "[::1]:0";	/* an endpoint with port 0: bound port */
	assert_int_equal(init_listen(h, &t, ep, sizeof(ep)), 0);
	assert_int_equal(strncmp(ep, "[::1]:", 6), 0);
	assert_true(atoi(ep + 6) > 0);
	ops->fini(t);
	h->vals[1] = "192.0.2.7:7701";	/* a forwarded port: as it is */
	assert_int_equal(init_listen(h, &t, ep, sizeof(ep)), 0);
	assert_string_equal(ep, "192.0.2.7:7701");
	ops->fini(t);
	h->vals[1] = "node1.example";
	assert_int_equal(init_listen(h, &t, ep, sizeof(ep)), -EINVAL);
	assert_non_null(strstr(h->last, "advertise"));
	ops->fini(t);
	host_free(h);

	/* a wildcard without advertise works but says it cannot be dialled */
	h = host_new("0.0.0.0:0");
	assert_int_equal(init_listen(h, &t, ep, sizeof(ep)), 0);
	assert_non_null(strstr(h->last, "advertise"));
	ops->fini(t);
	host_free(h);
}
