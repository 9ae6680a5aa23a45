// SPDX-License-Identifier: MIT
/* Coordinator client: the public calls, the embedded-server backend and the
 * heartbeat thread. Requests go through coord_http.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "coord_priv.h"
#include "log.h"

bool coord_wait_stop(struct coord *co, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	while (!co->stop)
		if (pthread_cond_timedwait(&co->cond, &co->lock, &ts) ==
		    ETIMEDOUT)
			break;
	return co->stop;
}

static int member_cmp(const void *a, const void *b)
{
	const struct coord_member *x = a, *y = b;

	return (x->node_id > y->node_id) - (x->node_id < y->node_id);
}

void coord_sort_members(struct coord_member *m, int n)
{
	qsort(m, n, sizeof(*m), member_cmp);
}

int coord_ttl_ms(const struct coord *co)
{
	return co->ttl_ms;
}

/* ---- embedded backend ---------------------------------------------------- */

/* Integer field of a JSON answer in [lo, hi]; -EPROTO otherwise. */
static int answer_int(const cJSON *o, const char *key, double lo, double hi,
		      double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(v) || v->valuedouble < lo ||
	    v->valuedouble > hi ||
	    v->valuedouble != (double)(int64_t)v->valuedouble)
		return -EPROTO;
	*out = v->valuedouble;
	return 0;
}

static int emb_open(struct coord *co)
{
	struct coord_buf b = { 0 };
	cJSON *o, *a = NULL;
	char *body;
	double ttl;
	long st;
	int r;

	o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "name", co->cluster) ||
	    !cJSON_AddNumberToObject(o, "nodes", co->nodes) ||
	    !cJSON_AddNumberToObject(o, "memory_mb",
				     (double)((co->memory + (1 << 20) - 1) >>
					      20)) ||
	    !cJSON_AddNumberToObject(o, "memory_bytes", (double)co->memory)) {
		cJSON_Delete(o);
		return -ENOMEM;
	}
	body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!body)
		return -ENOMEM;
	r = coord_http(co, "POST", "/clusters", body, co->request_ms, 0, &st,
		       &b);
	free(body);
	if (r) {
		pm_err("coordinator: cannot create cluster '%s' at %s%s: %s",
		       co->cluster, co->urls[co->cur],
		       co->n_urls > 1 ? " (or any other URL)" : "",
		       strerror(-r));
		return r;
	}
	if (st != 200 && st != 201) {
		pm_err("coordinator %s/clusters: HTTP status %ld: %.300s",
		       co->urls[co->cur], st, b.data ? b.data : "");
		r = st == 409 ? -EEXIST : st == 401 ? -EACCES : -EIO;
		goto out;
	}
	a = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
	if (!a || answer_int(a, "ttl_ms", 1, 3600000, &ttl)) {
		pm_err("coordinator %s/clusters: answer without a valid \"ttl_ms\"",
		       co->urls[co->cur]);
		r = -EPROTO;
		goto out;
	}
	co->ttl_ms = (int)ttl;
	r = 0;
out:
	cJSON_Delete(a);
	coord_buf_free(&b);
	return r;
}

/* "HOST:PORT" or "[V6]:PORT" -> host, port; false if it is not that. */
static bool split_hostport(const char *ep, char *host, size_t hlen,
			   int *port)
{
	const char *colon, *h = ep;
	size_t n;
	char *end;
	long p;

	colon = strrchr(ep, ':');
	if (!colon)
		return false;
	n = colon - ep;
	if (*ep == '[') {
		if (n < 2 || ep[n - 1] != ']')
			return false;
		h = ep + 1;
		n -= 2;
	}
	if (!n || n >= hlen)
		return false;
	p = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || p < 1 || p > 65535)
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = (int)p;
	return true;
}

static int emb_register(struct coord *co, const struct coord_member *self)
{
	struct coord_buf b = { 0 };
	char path[128], host[PM_ENDPOINT_MAX];
	int i, r = 0, port;
	long st;

	snprintf(path, sizeof(path), "/nodes/%d/endpoint", self->node_id);
	for (i = 0; i < self->n_eps && !r; i++) {
		cJSON *o = cJSON_CreateObject();
		char *body;

		if (!o || !cJSON_AddStringToObject(o, "cluster", co->cluster) ||
		    !cJSON_AddStringToObject(o, "incarnation",
					     co->incarnation) ||
		    !cJSON_AddStringToObject(o, "transport_type",
					     self->eps[i].transport) ||
		    !cJSON_AddStringToObject(o, "endpoint",
					     self->eps[i].endpoint)) {
			cJSON_Delete(o);
			return -ENOMEM;
		}
		/* The tcp family publishes HOST:PORT: spell it out too, for
		 * clients that read tcp_addr/tcp_port. */
		if (strstr(self->eps[i].transport, "tcp") &&
		    split_hostport(self->eps[i].endpoint, host, 64, &port) &&
		    (!cJSON_AddStringToObject(o, "tcp_addr", host) ||
		     !cJSON_AddNumberToObject(o, "tcp_port", port))) {
			cJSON_Delete(o);
			return -ENOMEM;
		}
		body = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		if (!body)
			return -ENOMEM;
		r = coord_http(co, "POST", path, body, co->request_ms, 0, &st,
			       &b);
		free(body);
		if (!r && st != 200 && st != 201) {
			/* 409 (the id is another's) is the caller's to
			 * word: it may be waiting for that one to expire. */
			pm_log(st == 409 ? PM_LOG_DEBUG : PM_LOG_ERROR,
			       "coordinator %s%s: HTTP status %ld: %.300s",
			       co->urls[co->cur], path, st,
			       b.data ? b.data : "");
			r = st == 404 ? -ENOENT : st == 401 ? -EACCES :
			    st == 409 ? -EADDRINUSE : -EIO;
		}
		coord_buf_free(&b);
	}
	return r;
}

/* {"incarnation": ...}: what says a heartbeat or leave is this node's. */
static char *incarnation_body(const struct coord *co)
{
	cJSON *o = cJSON_CreateObject();
	char *txt = NULL;

	if (o && cJSON_AddStringToObject(o, "incarnation", co->incarnation))
		txt = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return txt;
}

/* 0, -ENOENT if the server forgot us, -EADDRINUSE if another
 * incarnation holds the id now, or -errno. */
static int emb_heartbeat(struct coord *co, int id)
{
	struct coord_buf b = { 0 };
	char path[160], *body;
	long st;
	int r;

	body = incarnation_body(co);
	if (!body)
		return -ENOMEM;
	snprintf(path, sizeof(path), "/nodes/%d/heartbeat?cluster=%s", id,
		 co->cluster);
	r = coord_http(co, "POST", path, body, co->request_ms, 0, &st, &b);
	free(body);
	if (!r && st == 404) {
		r = -ENOENT;
	} else if (!r && st == 409) {
		/* Every beat until that one goes: hb_main says it once. */
		pm_dbg("coordinator %s%s: %.300s", co->urls[co->cur], path,
		       b.data ? b.data : "");
		r = -EADDRINUSE;
	} else if (!r && st != 200) {
		pm_warn("coordinator %s%s: HTTP status %ld: %.300s",
			co->urls[co->cur], path, st, b.data ? b.data : "");
		r = -EIO;
	}
	coord_buf_free(&b);
	return r;
}

/* Copy one endpoint into the member list (merging by node id). */
static int add_ep(struct coord_member *m, int *n, int max, int *total,
		  int id, const char *transport, const char *endpoint)
{
	int i;

	if (strlen(transport) >= sizeof(m->eps[0].transport) ||
	    strlen(endpoint) >= sizeof(m->eps[0].endpoint))
		return -EPROTO;
	for (i = 0; i < *n; i++)
		if (m[i].node_id == id)
			break;
	if (i == *n) {
		(*total)++;
		if (*n >= max)
			return 0;
		memset(&m[i], 0, sizeof(m[i]));
		m[i].node_id = id;
		(*n)++;
	}
	if (m[i].n_eps >= CFG_MAX_TRANSPORTS)
		return 0;
	snprintf(m[i].eps[m[i].n_eps].transport,
		 sizeof(m[i].eps[0].transport), "%s", transport);
	snprintf(m[i].eps[m[i].n_eps].endpoint,
		 sizeof(m[i].eps[0].endpoint), "%s", endpoint);
	m[i].n_eps++;
	return 0;
}

/* Parse a GET /endpoints answer. */
static int emb_parse_members(struct coord *co, const struct coord_buf *b,
			     struct coord_member *out, int max, int *n,
			     uint64_t *version)
{
	const cJSON *eps, *node, *ts, *t;
	int total = 0, r = -EPROTO;
	double ver;
	cJSON *a;

	a = cJSON_ParseWithLength(b->data ? b->data : "", b->len);
	eps = a ? cJSON_GetObjectItemCaseSensitive(a, "endpoints") : NULL;
	if (!cJSON_IsObject(eps) ||
	    answer_int(a, "version", 0, 9007199254740992.0, &ver))
		goto bad;
	*n = 0;
	cJSON_ArrayForEach(node, eps) {
		char *end;
		long id;

		errno = 0;
		id = strtol(node->string, &end, 10);
		if (!*node->string || *end || errno || id < 0 ||
		    id >= CFG_MAX_NODES)
			goto bad;
		ts = cJSON_GetObjectItemCaseSensitive(node, "transports");
		if (!cJSON_IsArray(ts))
			goto bad;
		cJSON_ArrayForEach(t, ts) {
			const cJSON *tt, *ep;

			tt = cJSON_GetObjectItemCaseSensitive(t,
							"transport_type");
			ep = cJSON_GetObjectItemCaseSensitive(t, "endpoint");
			if (!cJSON_IsString(tt) || !cJSON_IsString(ep) ||
			    add_ep(out, n, max, &total, (int)id,
				   tt->valuestring, ep->valuestring))
				goto bad;
		}
	}
	coord_sort_members(out, *n);
	*version = (uint64_t)ver;
	cJSON_Delete(a);
	return total > max ? -E2BIG : 0;
bad:
	pm_err("coordinator %s/endpoints: malformed answer: %.300s",
	       co->urls[co->cur], b->data ? b->data : "");
	cJSON_Delete(a);
	return r;
}

static int emb_members(struct coord *co, uint64_t after, int timeout_ms,
		       struct coord_member *out, int max, int *n,
		       uint64_t *version)
{
	int64_t deadline = coord_now_ms() + timeout_ms, left;
	struct coord_buf b = { 0 };
	bool recreated = false;
	char path[256];
	long st;
	int r;

	for (;;) {
		left = deadline - coord_now_ms();
		if (left < 0)
			left = 0;
		if (left > COORD_WAIT_MAX_MS)
			left = COORD_WAIT_MAX_MS;
		snprintf(path, sizeof(path),
			 "/endpoints?cluster=%s&wait=%llu&timeout_ms=%lld",
			 co->cluster, (unsigned long long)after,
			 (long long)left);
		/* The server holds the request up to left ms: allow that. */
		r = coord_http(co, "GET", path, NULL,
			       (int)left + co->request_ms, 0, &st, &b);
		if (r)
			return r;
		if (st == 404 && !recreated) {
			/* A restarted coordinator lost the cluster: make it
			 * again (the heartbeat thread re-registers us). */
			coord_buf_free(&b);
			recreated = true;
			r = emb_open(co);
			if (r)
				return r;
			continue;
		}
		if (st != 200) {
			pm_err("coordinator %s%s: HTTP status %ld: %.300s",
			       co->urls[co->cur], path, st,
			       b.data ? b.data : "");
			coord_buf_free(&b);
			return st == 404 ? -ENOENT : -EIO;
		}
		r = emb_parse_members(co, &b, out, max, n, version);
		coord_buf_free(&b);
		if (r && r != -E2BIG)
			return r;
		if (*version > after)
			return r;
		if (deadline - coord_now_ms() <= 0)
			return -ETIMEDOUT;
	}
}

static void emb_leave(struct coord *co, int id)
{
	struct coord_buf b = { 0 };
	char path[160], *body;
	long st;

	/* With the incarnation: a node that lost its id to another leaves
	 * without removing that one. */
	body = incarnation_body(co);
	if (!body)
		return;
	snprintf(path, sizeof(path), "/nodes/%d?cluster=%s", id, co->cluster);
	if (!coord_http(co, "DELETE", path, body, co->request_ms, 0, &st,
			&b) && st != 200 && st != 404)
		pm_warn("coordinator %s%s: HTTP status %ld: %.300s",
			co->urls[co->cur], path, st, b.data ? b.data : "");
	free(body);
	coord_buf_free(&b);
}

/* ---- public API ---------------------------------------------------------- */

int coord_open(const struct cfg *c, struct coord **out)
{
	pthread_condattr_t ca;
	int64_t ttl, timeout;
	char err[PATH_MAX + 128];
	struct coord *co;
	int i, r;

	if (!c->n_coord_urls) {
		pm_err("coordinator: no coordinator.url/urls in %s", c->path);
		return -EINVAL;
	}
	/* cfg_load checked it already; a cfg made by hand was not. */
	if (!cfg_plain_name(c->cluster_name, sizeof(c->cluster_name))) {
		pm_err("%s: cluster.name '%s': use letters, digits, '_', '.' and '-' for a coordinated cluster",
		       c->path, c->cluster_name);
		return -EINVAL;
	}
	co = calloc(1, sizeof(*co));
	if (!co)
		return -ENOMEM;
	co->backend = strcmp(c->coord_backend, "etcd") ? COORD_EMBEDDED
						       : COORD_ETCD;
	snprintf(co->cluster, sizeof(co->cluster), "%s", c->cluster_name);
	co->nodes = c->cluster_nodes;
	co->memory = c->memory;
	co->n_urls = c->n_coord_urls;
	for (i = 0; i < co->n_urls; i++) {
		size_t l;

		snprintf(co->urls[i], sizeof(co->urls[i]), "%s",
			 c->coord_urls[i]);
		/* "http://h:p/" and "http://h:p" mean the same. */
		l = strlen(co->urls[i]);
		while (l && co->urls[i][l - 1] == '/')
			co->urls[i][--l] = '\0';
	}
	co->connect_ms = COORD_CONNECT_MS_DEFAULT;
	/* cfg_read checked both against the table; a cfg made by hand (never
	 * read) gets the table's defaults. */
	if (cfg_get_int(c, "coordinator.ttl_ms", &ttl, NULL) ||
	    cfg_get_int(c, "coordinator.timeout_ms", &timeout, NULL)) {
		pm_err("%s: coordinator.ttl_ms or .timeout_ms: not an integer",
		       c->path);
		free(co);
		return -EINVAL;
	}
	co->ttl_ms = (int)ttl;
	co->request_ms = (int)timeout;
	if (c->key_file[0] && co->backend == COORD_EMBEDDED) {
		r = auth_load_key(c->key_file, co->key, &co->keylen, err,
				  sizeof(err));
		if (r) {
			pm_err("%s: security.key_file: %s", c->path, err);
			free(co);
			return r;
		}
	}
	r = auth_random_hex(co->incarnation, COORD_INCARNATION_HEX / 2);
	if (r) {
		pm_err("coordinator: no random bytes for the node's incarnation: %s",
		       strerror(-r));
		free(co);
		return r;
	}
	pthread_mutex_init(&co->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&co->cond, &ca);
	pthread_condattr_destroy(&ca);

	r = co->backend == COORD_ETCD ? coord_etcd_open(co) : emb_open(co);
	if (r) {
		coord_close(co);
		return r;
	}
	*out = co;
	return 0;
}

static int do_register(struct coord *co)
{
	int r;

	if (co->backend == COORD_ETCD)
		return coord_etcd_register(co);
	/* A restarted coordinator knows no cluster: make it again. */
	r = emb_open(co);
	return r ? r : emb_register(co, &co->self);
}

/*
 * The first registration. A node id still held by another incarnation is
 * most likely this node's previous run, which crashed and has not expired
 * yet: wait for that (twice the TTL), and give up only on a live twin.
 */
static int register_first(struct coord *co)
{
	int64_t deadline = coord_now_ms() + 2 * (int64_t)co->ttl_ms;
	bool said = false;
	int r;

	for (;;) {
		r = do_register(co);
		if (r != -EADDRINUSE || coord_now_ms() >= deadline)
			break;
		if (!said)
			pm_warn("coordinator: node id %d is held by another process (this node's last run, not expired yet?); trying again for up to %d ms",
				co->self.node_id, 2 * co->ttl_ms);
		said = true;
		pthread_mutex_lock(&co->lock);
		coord_wait_stop(co, co->ttl_ms / 4 > 0 ? co->ttl_ms / 4 : 1);
		pthread_mutex_unlock(&co->lock);
	}
	if (r == -EADDRINUSE)
		pm_err("coordinator: node id %d is live for another process: is a second node configured with id %d?",
		       co->self.node_id, co->self.node_id);
	return r;
}

/* Keeps this node alive; registers again when the coordinator forgot it. */
static void *hb_main(void *arg)
{
	struct coord *co = arg;
	int r, failing = 0;

	pm_log_use(co->log);
	pthread_mutex_lock(&co->lock);
	for (;;) {
		/* Three beats per TTL: one lost beat does not expire us. */
		if (coord_wait_stop(co, co->ttl_ms / 3 > 0 ? co->ttl_ms / 3
							   : 1))
			break;
		pthread_mutex_unlock(&co->lock);
		if (co->backend == COORD_ETCD)
			r = coord_etcd_keepalive(co);
		else
			r = emb_heartbeat(co, co->self.node_id);
		if (r == -ENOENT) {
			pm_warn("coordinator: node %d was dropped (expired?); registering again",
				co->self.node_id);
			r = do_register(co);
		}
		if (r == -ECANCELED) {
			/* coord_close() cut it short: nothing to report. */
			pthread_mutex_lock(&co->lock);
			break;
		}
		if (r == -EADDRINUSE && !failing)
			pm_err("coordinator: node id %d is held by another process now (this one was silent past its TTL?); it is this node's again once that one goes",
			       co->self.node_id);
		else if (r && !failing)
			pm_warn("coordinator: heartbeat of node %d failed: %s",
				co->self.node_id, strerror(-r));
		else if (!r && failing)
			pm_info("coordinator: heartbeats of node %d go through again",
				co->self.node_id);
		failing = r != 0;
		pthread_mutex_lock(&co->lock);
	}
	pthread_mutex_unlock(&co->lock);
	return NULL;
}

int coord_register(struct coord *co, const struct coord_member *self)
{
	int r, i;

	if (self->node_id < 0 || self->node_id >= co->nodes ||
	    self->n_eps < 1 || self->n_eps > CFG_MAX_TRANSPORTS)
		return -EINVAL;
	for (i = 0; i < self->n_eps; i++)
		if (!self->eps[i].transport[0] || !self->eps[i].endpoint[0] ||
		    strnlen(self->eps[i].transport,
			    sizeof(self->eps[i].transport)) >=
			    sizeof(self->eps[i].transport) ||
		    strnlen(self->eps[i].endpoint,
			    sizeof(self->eps[i].endpoint)) >=
			    sizeof(self->eps[i].endpoint))
			return -EINVAL;
	pthread_mutex_lock(&co->lock);
	if (co->hb_started) {
		pthread_mutex_unlock(&co->lock);
		return -EALREADY;
	}
	co->self = *self;
	pthread_mutex_unlock(&co->lock);

	r = register_first(co);
	if (r)
		return r;
	pthread_mutex_lock(&co->lock);
	co->registered = true;
	co->log = pm_log_current();
	r = pthread_create(&co->hb, NULL, hb_main, co);
	co->hb_started = r == 0;
	pthread_mutex_unlock(&co->lock);
	if (r) {
		pm_err("coordinator: cannot start the heartbeat thread: %s",
		       strerror(r));
		return -r;
	}
	return 0;
}

int coord_members(struct coord *co, uint64_t after_version, int timeout_ms,
		  struct coord_member *out, int max, int *n, uint64_t *version)
{
	if (max < 0 || timeout_ms < 0)
		return -EINVAL;
	*n = 0;
	*version = 0;
	if (co->backend == COORD_ETCD)
		return coord_etcd_members(co, after_version, timeout_ms, out,
					  max, n, version);
	return emb_members(co, after_version, timeout_ms, out, max, n,
			   version);
}

int coord_wait_members(struct coord *co, int want, int timeout_ms,
		       struct coord_member *out, int max, int *n,
		       uint64_t *version)
{
	int64_t deadline = coord_now_ms() + timeout_ms, left;
	uint64_t v = 0;
	int r;

	for (;;) {
		left = deadline - coord_now_ms();
		r = coord_members(co, v, left > 0 ? (int)left : 0, out, max, n,
				  version);
		if (r && r != -ETIMEDOUT)
			return r;
		if (*n >= want)
			return 0;
		if (r == -ETIMEDOUT || left <= 0)
			return -ETIMEDOUT;
		v = *version;
	}
}

int coord_fill_peers(struct cfg *c, const struct coord_member *m, int n)
{
	int i, e, t, k = 0;

	for (i = 0; i < n && k < CFG_MAX_NODES; i++) {
		struct cfg_peer *p = &c->peers[k];

		if (m[i].node_id == c->node_id)
			continue;
		memset(p, 0, sizeof(*p));
		p->id = m[i].node_id;
		for (e = 0; e < m[i].n_eps && e < CFG_MAX_TRANSPORTS; e++) {
			t = cfg_transport_index(c, m[i].eps[e].transport);
			if (t >= 0)
				snprintf(p->endpoint[t], sizeof(p->endpoint[t]),
					 "%s", m[i].eps[e].endpoint);
		}
		k++;
	}
	c->n_peers = k;
	return k;
}

void coord_close(struct coord *co)
{
	bool started;

	if (!co)
		return;
	pthread_mutex_lock(&co->lock);
	__atomic_store_n(&co->stop, true, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&co->cond);
	started = co->hb_started;
	pthread_mutex_unlock(&co->lock);
	if (started)
		pthread_join(co->hb, NULL);
	/* Leaving is a courtesy (the TTL would do it): do not wait long. */
	if (co->request_ms > 2000)
		co->request_ms = 2000;
	if (co->registered) {
		if (co->backend == COORD_ETCD)
			coord_etcd_leave(co);
		else
			emb_leave(co, co->self.node_id);
	}
	pthread_cond_destroy(&co->cond);
	pthread_mutex_destroy(&co->lock);
	free(co);
}
