/* SPDX-License-Identifier: MIT */
/* Ops that do nothing, for the deliberately broken plugins the loader
 * tests build: each plugin differs from a valid one in exactly one way. */
#ifndef PM_TEST_STUB_H
#define PM_TEST_STUB_H

#include <errno.h>
#include <stdio.h>

#include <pagemesh/transport.h>

static int stub_probe(const struct pm_host *host, char *why, size_t len)
{
	(void)host;
	(void)why;
	(void)len;
	return 0;
}

static int stub_init(const struct pm_host *host, struct pm_tctx **out)
{
	(void)host;
	(void)out;
	return -EOPNOTSUPP;
}

static void stub_fini(struct pm_tctx *t)
{
	(void)t;
}

static int stub_listen(struct pm_tctx *t, const struct pm_listener *lst)
{
	(void)t;
	(void)lst;
	return -EOPNOTSUPP;
}

static int stub_endpoint(struct pm_tctx *t, char *buf, size_t len)
{
	(void)t;
	(void)buf;
	(void)len;
	return -EOPNOTSUPP;
}

static int stub_connect(struct pm_tctx *t, const char *endpoint,
			int64_t deadline_ns, struct pm_tconn **out)
{
	(void)t;
	(void)endpoint;
	(void)deadline_ns;
	(void)out;
	return -EOPNOTSUPP;
}

static void stub_disconnect(struct pm_tconn *c)
{
	(void)c;
}

static int stub_call(struct pm_tconn *c, const struct pm_msg *req,
		     struct pm_msg *rep, int64_t deadline_ns)
{
	(void)c;
	(void)req;
	(void)rep;
	(void)deadline_ns;
	return -EOPNOTSUPP;
}

static int stub_reply(struct pm_tctx *t, uint64_t conn_id, uint64_t req_id,
		      int status, const struct pm_msg *rep)
{
	(void)t;
	(void)conn_id;
	(void)req_id;
	(void)status;
	(void)rep;
	return -EOPNOTSUPP;
}

static int stub_drop(struct pm_tctx *t, uint64_t conn_id)
{
	(void)t;
	(void)conn_id;
	return -EOPNOTSUPP;
}

/* Silence -Wunused-function in plugins that replace one of the stubs. */
static inline void stub_use_all(void)
{
	(void)stub_probe;
	(void)stub_init;
	(void)stub_fini;
	(void)stub_listen;
	(void)stub_endpoint;
	(void)stub_connect;
	(void)stub_disconnect;
	(void)stub_call;
	(void)stub_reply;
	(void)stub_drop;
}

#endif
