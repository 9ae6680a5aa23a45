// SPDX-License-Identifier: MIT
/*
 * A transport for fault tests: another plugin (transports.slow.inner, a
 * path to its .so) with one request in `every` held `delay_ms` before it
 * is handed to the node. It is held on the inner plugin's receive thread
 * for that connection, so what queues behind it on that connection waits
 * too, as behind a TCP connection stalled in retransmission backoff. The
 * node must take that as a slow peer: nobody declared dead, nothing lost.
 *
 * Settings (transports.slow): inner, every (1..1000000, default 1000),
 * delay_ms (0..60000, default 3000), and the inner plugin's own (listen,
 * ...), which it reads from this group. Built against the public header
 * only, like any third party's plugin.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pagemesh/transport.h"

struct pm_tctx {
	struct pm_tctx *in;		/* the inner plugin's instance */
	const struct pm_host *host;
	struct pm_listener up;		/* the node's listener */
	int64_t every, delay_ms;
	uint64_t seen, held;
};

/* One inner plugin per process: call() and disconnect() get no tctx. */
static const struct pm_transport_ops *inner;
static void *inner_so;

static int load_inner(const struct pm_host *host, char *why, size_t len)
{
	const struct pm_transport_ops *(*entry)(void);
	const char *path;

	if (inner)
		return 0;
	if (host->cfg_string(host->ctx, "inner", &path)) {
		snprintf(why, len, "transports.%s.inner (a plugin's path) is not set",
			 host->name);
		return -EINVAL;
	}
	inner_so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!inner_so) {
		snprintf(why, len, "transports.%s.inner: %s", host->name,
			 dlerror());
		return -ENOENT;
	}
	entry = (const struct pm_transport_ops *(*)(void))dlsym(
		inner_so, PM_TRANSPORT_ENTRY_NAME);
	if (!entry || !(inner = entry())) {
		snprintf(why, len, "transports.%s.inner: no %s", host->name,
			 PM_TRANSPORT_ENTRY_NAME);
		return -ENOENT;
	}
	return 0;
}

static int sl_probe(const struct pm_host *host, char *why, size_t len)
{
	int r = load_inner(host, why, len);

	return r ? r : inner->probe(host, why, len);
}

static int setting(const struct pm_host *host, const char *key, int64_t def,
		   int64_t lo, int64_t hi, int64_t *out)
{
	*out = def;
	if (host->cfg_int(host->ctx, key, out) == -EINVAL || *out < lo ||
	    *out > hi) {
		host->log(host->ctx, PM_LOG_ERROR,
			  "transports.%s.%s: an integer %lld..%lld", host->name,
			  key, (long long)lo, (long long)hi);
		return -EINVAL;
	}
	return 0;
}

static int sl_init(const struct pm_host *host, struct pm_tctx **out)
{
	struct pm_tctx *t;
	char why[256];
	int r;

	r = load_inner(host, why, sizeof(why));
	if (r) {
		host->log(host->ctx, PM_LOG_ERROR, "%s", why);
		return r;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->host = host;
	if (setting(host, "every", 1000, 1, 1000000, &t->every) ||
	    setting(host, "delay_ms", 3000, 0, 60000, &t->delay_ms)) {
		free(t);
		return -EINVAL;
	}
	r = inner->init(host, &t->in);
	if (r) {
		free(t);
		return r;
	}
	*out = t;
	return 0;
}

static void sl_fini(struct pm_tctx *t)
{
	inner->fini(t->in);
	t->host->log(t->host->ctx, PM_LOG_WARN,
		     "held %llu of %llu requests %lld ms each",
		     (unsigned long long)t->held, (unsigned long long)t->seen,
		     (long long)t->delay_ms);
	free(t);
}

static void sl_on_request(void *arg, const struct pm_request *req)
{
	struct pm_tctx *t = arg;
	uint64_t k = __atomic_add_fetch(&t->seen, 1, __ATOMIC_RELAXED);

	if (k % (uint64_t)t->every == 0) {
		__atomic_add_fetch(&t->held, 1, __ATOMIC_RELAXED);
		t->host->log(t->host->ctx, PM_LOG_WARN,
			     "holding request %llu from %s for %lld ms",
			     (unsigned long long)k, req->peer,
			     (long long)t->delay_ms);
		nanosleep(&(struct timespec){
				  .tv_sec = t->delay_ms / 1000,
				  .tv_nsec = t->delay_ms % 1000 * 1000000,
			  }, NULL);
	}
	t->up.on_request(t->up.arg, req);
}

static void sl_on_close(void *arg, uint64_t conn_id)
{
	struct pm_tctx *t = arg;

	t->up.on_close(t->up.arg, conn_id);
}

static int sl_listen(struct pm_tctx *t, const struct pm_listener *lst)
{
	struct pm_listener mine = {
		.on_request = sl_on_request, .on_close = sl_on_close, .arg = t,
	};

	t->up = *lst;
	return inner->listen(t->in, &mine);
}

static int sl_endpoint(struct pm_tctx *t, char *buf, size_t len)
{
	return inner->endpoint(t->in, buf, len);
}

static int sl_connect(struct pm_tctx *t, const char *ep, int64_t deadline,
		      struct pm_tconn **out)
{
	return inner->connect(t->in, ep, deadline, out);
}

static void sl_disconnect(struct pm_tconn *c)
{
	inner->disconnect(c);
}

static int sl_call(struct pm_tconn *c, const struct pm_msg *req,
		   struct pm_msg *rep, int64_t deadline)
{
	return inner->call(c, req, rep, deadline);
}

static int sl_reply(struct pm_tctx *t, uint64_t conn_id, uint64_t req_id,
		    int status, const struct pm_msg *rep)
{
	return inner->reply(t->in, conn_id, req_id, status, rep);
}

static int sl_drop(struct pm_tctx *t, uint64_t conn_id)
{
	return inner->drop(t->in, conn_id);
}

static const struct pm_transport_ops sl_ops = {
	.size = offsetof(struct pm_transport_ops, any_listen),
	.abi_major = PM_TRANSPORT_ABI_MAJOR,
	.abi_minor = 0,
	.name = "slow",
	.version = "1.0.0",
	.caps = PM_CAP_RELIABLE,
	.probe = sl_probe,
	.init = sl_init,
	.fini = sl_fini,
	.listen = sl_listen,
	.endpoint = sl_endpoint,
	.connect = sl_connect,
	.disconnect = sl_disconnect,
	.call = sl_call,
	.reply = sl_reply,
	.drop = sl_drop,
};

PM_TRANSPORT_EXPORT const struct pm_transport_ops *PM_TRANSPORT_ENTRY(void)
{
	return &sl_ops;
}
