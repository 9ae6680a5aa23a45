// SPDX-License-Identifier: MIT
/* The embedded coordinator's server (run by `pagemesh coordinator`, see
 * coord_cli.c): clusters, node endpoints, heartbeats with a TTL and a
 * membership version clients can long-poll. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include "coord.h"
#include "http.h"
#include "log.h"

#define COORD_MAX_CLUSTERS 32
#define COORD_CONN_LIMIT 256

struct coord_ep {
	char transport[64];
	char endpoint[PM_ENDPOINT_MAX];
	char tcp_addr[64];
	int tcp_port;			/* 0: no tcp_addr/tcp_port given */
	bool rdma;
	int64_t rdma_qpn, rdma_lid, rdma_psn;
	char rdma_gid[40];
};

struct coord_node {
	bool live;
	int64_t last_seen_ms;
	int n_eps;
	struct coord_ep eps[CFG_MAX_TRANSPORTS];
};

struct coord_cluster {
	char name[CFG_NAME_MAX];
	int nodes;			/* node ids are 0 .. nodes-1 */
	int64_t memory_mb;
	int64_t memory_bytes;		/* 0: not given */
	bool implicit;			/* made up for a request naming none */
	int waiters;			/* long-polls parked on version */
	uint64_t version;
	struct coord_node node[CFG_MAX_NODES];
};

struct coord_server {
	struct MHD_Daemon *d;
	int port;
	int ttl_ms;
	pthread_mutex_t lock;		/* everything below */
	pthread_cond_t changed;		/* a version moved, or stopping */
	bool stopping;
	int active;			/* requests between start and done */
	bool reaper_started;
	pthread_t reaper;
	int n_clusters;
	struct coord_cluster *clusters[COORD_MAX_CLUSTERS];
	size_t keylen;			/* 0: writes need no signature */
	unsigned char key[AUTH_KEY_MAX];
};

/* Per-request state: the body, read up to COORD_BODY_MAX. */
struct coord_req {
	char *body;
	size_t len;
	bool too_big;
};

/* ---- responses ----------------------------------------------------------- */

static enum MHD_Result send_json(struct MHD_Connection *conn,
				 unsigned int status, cJSON *obj,
				 const char *allow)
{
	struct MHD_Response *resp;
	enum MHD_Result r;
	char *txt;

	txt = obj ? cJSON_PrintUnformatted(obj) : NULL;
	cJSON_Delete(obj);
	if (!txt)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(strlen(txt), txt,
					       MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(txt);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/json");
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result send_error(struct MHD_Connection *conn,
				  unsigned int status, const char *allow,
				  const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* {"error": "what was wrong", "status": N} */
static enum MHD_Result send_error(struct MHD_Connection *conn,
				  unsigned int status, const char *allow,
				  const char *fmt, ...)
{
	char msg[512];
	cJSON *o;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "error", msg) ||
	    !cJSON_AddNumberToObject(o, "status", status)) {
		cJSON_Delete(o);
		return MHD_NO;
	}
	return send_json(conn, status, o, allow);
}

/* ---- validation ---------------------------------------------------------- */

static bool valid_name(const char *s, size_t max)
{
	size_t i, n = strlen(s);

	if (!n || n >= max)
		return false;
	for (i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", s[i]))
			return false;
	return true;
}

/*
 * Integer member key of o in [lo, hi]. 0 and *out, -ENOENT when absent (and
 * not required), or -EINVAL with the reason in why.
 */
static int json_int(const cJSON *o, const char *key, int64_t lo, int64_t hi,
		    int64_t *out, char *why, size_t whylen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	double d;

	if (!v)
		return -ENOENT;
	d = cJSON_IsNumber(v) ? v->valuedouble : 0;
	if (!cJSON_IsNumber(v) || d != (double)(int64_t)d || d < (double)lo ||
	    d > (double)hi) {
		snprintf(why, whylen, "\"%s\" must be an integer in [%lld, %lld]",
			 key, (long long)lo, (long long)hi);
		return -EINVAL;
	}
	*out = (int64_t)d;
	return 0;
}

/* String member key of o shorter than max. Same returns as json_int. */
static int json_str(const cJSON *o, const char *key, size_t max,
		    const char **out, char *why, size_t whylen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!v)
		return -ENOENT;
	if (!cJSON_IsString(v) || strlen(v->valuestring) >= max) {
		snprintf(why, whylen,
			 "\"%s\" must be a string of at most %zu characters",
			 key, max - 1);
		return -EINVAL;
	}
	*out = v->valuestring;
	return 0;
}

/*
 * Parse the request body as a JSON object. NULL after queueing a 400 that
 * names the offset where parsing stopped (cJSON_ParseWithLengthOpts reports
 * it per call, unlike the global cJSON_GetErrorPtr, which threads share).
 */
static cJSON *parse_body(struct MHD_Connection *conn, struct coord_req *rq,
			 enum MHD_Result *ret)
{
	const char *end = NULL;
	cJSON *o;

	if (!rq->len) {
		*ret = send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
				  "empty body: expected a JSON object");
		return NULL;
	}
	o = cJSON_ParseWithLengthOpts(rq->body, rq->len, &end, 0);
	if (!o) {
		size_t off = end && end >= rq->body ?
			(size_t)(end - rq->body) : 0;
		cJSON *e = cJSON_CreateObject();
		char msg[128];

		snprintf(msg, sizeof(msg),
			 "malformed JSON in request body at offset %zu", off);
		if (!e || !cJSON_AddStringToObject(e, "error", msg) ||
		    !cJSON_AddNumberToObject(e, "offset", (double)off) ||
		    !cJSON_AddNumberToObject(e, "status", 400)) {
			cJSON_Delete(e);
			*ret = MHD_NO;
			return NULL;
		}
		*ret = send_json(conn, MHD_HTTP_BAD_REQUEST, e, NULL);
		return NULL;
	}
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		*ret = send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
				  "request body must be a JSON object");
		return NULL;
	}
	return o;
}

/* ---- state (callers hold s->lock) ---------------------------------------- */

static struct coord_cluster *find_cluster(struct coord_server *s,
					  const char *name)
{
	int i;

	for (i = 0; i < s->n_clusters; i++)
		if (!strcmp(s->clusters[i]->name, name))
			return s->clusters[i];
	return NULL;
}

static struct coord_cluster *add_cluster(struct coord_server *s,
					 const char *name)
{
	struct coord_cluster *cl;
	struct timespec ts;

	if (s->n_clusters >= COORD_MAX_CLUSTERS)
		return NULL;
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		return NULL;
	snprintf(cl->name, sizeof(cl->name), "%s", name);
	/* Start from the wall clock in us: a restarted coordinator then
	 * never hands out a version a client has already seen and would
	 * wait past. (JSON doubles carry it exactly: below 2^53.) */
	clock_gettime(CLOCK_REALTIME, &ts);
	cl->version = (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	s->clusters[s->n_clusters++] = cl;
	return cl;
}

static void bump(struct coord_server *s, struct coord_cluster *cl)
{
	cl->version++;
	pthread_cond_broadcast(&s->changed);
}

static int live_count(const struct coord_cluster *cl)
{
	int i, n = 0;

	for (i = 0; i < CFG_MAX_NODES; i++)
		n += cl->node[i].live;
	return n;
}

static cJSON *cluster_json(const struct coord_server *s,
			   const struct coord_cluster *cl)
{
	cJSON *o = cJSON_CreateObject();

	if (!o || !cJSON_AddStringToObject(o, "name", cl->name) ||
	    !cJSON_AddNumberToObject(o, "nodes", cl->nodes) ||
	    !cJSON_AddNumberToObject(o, "memory_mb", (double)cl->memory_mb) ||
	    (cl->memory_bytes &&
	     !cJSON_AddNumberToObject(o, "memory_bytes",
				      (double)cl->memory_bytes)) ||
	    !cJSON_AddNumberToObject(o, "ttl_ms", s->ttl_ms) ||
	    !cJSON_AddNumberToObject(o, "version", (double)cl->version) ||
	    !cJSON_AddNumberToObject(o, "members", live_count(cl)) ||
	    !cJSON_AddNumberToObject(o, "waiters", cl->waiters)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static int ep_fields(cJSON *o, const struct coord_ep *ep)
{
	if (!cJSON_AddStringToObject(o, "transport_type", ep->transport) ||
	    !cJSON_AddStringToObject(o, "endpoint", ep->endpoint))
		return -ENOMEM;
	if (ep->tcp_port &&
	    (!cJSON_AddStringToObject(o, "tcp_addr", ep->tcp_addr) ||
	     !cJSON_AddNumberToObject(o, "tcp_port", ep->tcp_port)))
		return -ENOMEM;
	if (ep->rdma &&
	    (!cJSON_AddNumberToObject(o, "rdma_qpn", (double)ep->rdma_qpn) ||
	     !cJSON_AddNumberToObject(o, "rdma_lid", (double)ep->rdma_lid) ||
	     !cJSON_AddStringToObject(o, "rdma_gid", ep->rdma_gid) ||
	     !cJSON_AddNumberToObject(o, "rdma_psn", (double)ep->rdma_psn)))
		return -ENOMEM;
	return 0;
}

/*
 * One node: the fields of its first endpoint at the top (what single-
 * transport clients read), and all of them under "transports".
 */
static cJSON *node_json(int id, const struct coord_node *nd, int64_t now)
{
	cJSON *o = cJSON_CreateObject(), *arr;
	int i;

	if (!o || !cJSON_AddNumberToObject(o, "node_id", id) ||
	    (nd->n_eps && ep_fields(o, &nd->eps[0])) ||
	    !cJSON_AddNumberToObject(o, "last_seen_ms_ago",
				     (double)(now - nd->last_seen_ms)))
		goto fail;
	arr = cJSON_AddArrayToObject(o, "transports");
	if (!arr)
		goto fail;
	for (i = 0; i < nd->n_eps; i++) {
		cJSON *e = cJSON_CreateObject();

		if (!e || !cJSON_AddItemToArray(arr, e) ||
		    ep_fields(e, &nd->eps[i]))
			goto fail;
	}
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}

/* ---- handlers ------------------------------------------------------------ */

static enum MHD_Result post_cluster(struct coord_server *s,
				    struct MHD_Connection *conn,
				    struct coord_req *rq)
{
	int64_t nodes, mb = 0, bytes = 0;
	enum MHD_Result ret;
	struct coord_cluster *cl;
	const char *name;
	unsigned int status = MHD_HTTP_CREATED;
	char why[160];
	cJSON *o, *out;
	int r, i;

	o = parse_body(conn, rq, &ret);
	if (!o)
		return ret;
	r = json_str(o, "name", CFG_NAME_MAX, &name, why, sizeof(why));
	if (r == -ENOENT)
		snprintf(why, sizeof(why), "missing \"name\"");
	if (!r && !valid_name(name, CFG_NAME_MAX)) {
		snprintf(why, sizeof(why),
			 "\"name\" must be letters, digits, '_', '.' or '-'");
		r = -EINVAL;
	}
	if (!r) {
		r = json_int(o, "nodes", 1, CFG_MAX_NODES, &nodes, why,
			     sizeof(why));
		if (r == -ENOENT)
			snprintf(why, sizeof(why), "missing \"nodes\"");
	}
	if (!r) {
		r = json_int(o, "memory_mb", 0, 1 << 20, &mb, why, sizeof(why));
		if (r == -ENOENT)
			snprintf(why, sizeof(why), "missing \"memory_mb\"");
	}
	if (!r) {
		r = json_int(o, "memory_bytes", 0, 1ll << 40, &bytes, why,
			     sizeof(why));
		if (r == -ENOENT)
			r = 0;
	}
	if (r) {
		cJSON_Delete(o);
		return send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
				  "POST /clusters: %s", why);
	}

	pthread_mutex_lock(&s->lock);
	cl = find_cluster(s, name);
	if (cl && !cl->implicit) {
		if (cl->nodes != nodes || cl->memory_mb != mb ||
		    (bytes && cl->memory_bytes && bytes != cl->memory_bytes)) {
			pthread_mutex_unlock(&s->lock);
			ret = send_error(conn, MHD_HTTP_CONFLICT, NULL,
					 "cluster '%s' exists with nodes=%d memory_mb=%lld, not nodes=%lld memory_mb=%lld",
					 name, cl->nodes,
					 (long long)cl->memory_mb,
					 (long long)nodes, (long long)mb);
			cJSON_Delete(o);
			return ret;
		}
		status = MHD_HTTP_OK;
	} else if (cl) {
		/* Adopt the real shape, unless live ids do not fit it. */
		for (i = nodes; i < CFG_MAX_NODES; i++)
			if (cl->node[i].live)
				break;
		if (i < CFG_MAX_NODES) {
			pthread_mutex_unlock(&s->lock);
			cJSON_Delete(o);
			return send_error(conn, MHD_HTTP_CONFLICT, NULL,
					  "cluster '%s' already has node %d, beyond nodes=%lld",
					  name, i, (long long)nodes);
		}
	} else {
		cl = add_cluster(s, name);
		if (!cl) {
			pthread_mutex_unlock(&s->lock);
			cJSON_Delete(o);
			return send_error(conn, MHD_HTTP_INSUFFICIENT_STORAGE,
					  NULL, "at most %d clusters",
					  COORD_MAX_CLUSTERS);
		}
	}
	if (status == MHD_HTTP_CREATED) {
		cl->implicit = false;
		cl->nodes = (int)nodes;
		cl->memory_mb = mb;
		cl->memory_bytes = bytes;
		bump(s, cl);
		pm_info("cluster '%s' created: %d nodes, %lld MiB", cl->name,
			cl->nodes, (long long)cl->memory_mb);
	} else if (bytes && !cl->memory_bytes) {
		cl->memory_bytes = bytes;
	}
	out = cluster_json(s, cl);
	pthread_mutex_unlock(&s->lock);
	cJSON_Delete(o);
	if (!out)
		return MHD_NO;
	return send_json(conn, status, out, NULL);
}

static enum MHD_Result get_cluster(struct coord_server *s,
				   struct MHD_Connection *conn,
				   const char *name)
{
	struct coord_cluster *cl;
	cJSON *out;

	pthread_mutex_lock(&s->lock);
	cl = find_cluster(s, name);
	out = cl ? cluster_json(s, cl) : NULL;
	pthread_mutex_unlock(&s->lock);
	if (!cl)
		return send_error(conn, MHD_HTTP_NOT_FOUND, NULL,
				  "unknown cluster '%s'", name);
	if (!out)
		return MHD_NO;
	return send_json(conn, MHD_HTTP_OK, out, NULL);
}

/*
 * The cluster a request is about: "cluster" in the JSON body, else the
 * ?cluster= query, else the default one (created on first use). NULL after
 * queueing the error.
 */
static struct coord_cluster *req_cluster(struct coord_server *s,
					 struct MHD_Connection *conn,
					 const cJSON *body,
					 enum MHD_Result *ret)
{
	const char *name = MHD_lookup_connection_value(conn,
			MHD_GET_ARGUMENT_KIND, "cluster");
	const cJSON *v = body ? cJSON_GetObjectItemCaseSensitive(body,
							"cluster") : NULL;
	struct coord_cluster *cl;

	if (v) {
		if (!cJSON_IsString(v)) {
			*ret = send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
					  "\"cluster\" must be a string");
			return NULL;
		}
		name = v->valuestring;
	}
	if (!name || !*name)
		name = COORD_DEFAULT_CLUSTER;
	if (!valid_name(name, CFG_NAME_MAX)) {
		*ret = send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
				  "bad cluster name (letters, digits, '_', '.', '-'; at most %d)",
				  CFG_NAME_MAX - 1);
		return NULL;
	}
	cl = find_cluster(s, name);
	if (!cl && !strcmp(name, COORD_DEFAULT_CLUSTER)) {
		cl = add_cluster(s, name);
		if (cl) {
			cl->implicit = true;
			cl->nodes = CFG_MAX_NODES;
		}
	}
	if (!cl)
		*ret = send_error(conn, MHD_HTTP_NOT_FOUND, NULL,
				  "unknown cluster '%s' (POST /clusters first)",
				  name);
	return cl;
}

/* Node id from the URL; -1 after queueing the error. */
static int req_node(struct MHD_Connection *conn,
		    const struct coord_cluster *cl, const char *seg,
		    enum MHD_Result *ret)
{
	char *end;
	long id;

	errno = 0;
	id = strtol(seg, &end, 10);
	if (!*seg || *end || errno || id < 0 || id >= cl->nodes) {
		*ret = send_error(conn, MHD_HTTP_NOT_FOUND, NULL,
				  "no node '%s' in cluster '%s' (ids are 0 to %d)",
				  seg, cl->name, cl->nodes - 1);
		return -1;
	}
	return (int)id;
}

/* Fill ep from a POST /nodes/ID/endpoint body. 0 or -EINVAL with why. */
static int parse_ep(const cJSON *o, struct coord_ep *ep, char *why,
		    size_t whylen)
{
	const char *t, *e = NULL, *addr = NULL, *gid = NULL;
	int64_t port = 0;
	size_t i;
	int r;

	memset(ep, 0, sizeof(*ep));
	r = json_str(o, "transport_type", sizeof(ep->transport), &t, why,
		     whylen);
	if (r == -ENOENT)
		snprintf(why, whylen, "missing \"transport_type\"");
	if (r)
		return -EINVAL;
	if (!valid_name(t, sizeof(ep->transport))) {
		snprintf(why, whylen,
			 "\"transport_type\" must be letters, digits, '_', '.' or '-'");
		return -EINVAL;
	}
	snprintf(ep->transport, sizeof(ep->transport), "%s", t);

	r = json_str(o, "endpoint", PM_ENDPOINT_MAX, &e, why, whylen);
	if (r == -EINVAL)
		return r;
	r = json_str(o, "tcp_addr", sizeof(ep->tcp_addr), &addr, why, whylen);
	if (r == -EINVAL)
		return r;
	r = json_int(o, "tcp_port", 1, 65535, &port, why, whylen);
	if (r == -EINVAL)
		return r;
	if (!addr != !port) {
		snprintf(why, whylen,
			 "\"tcp_addr\" and \"tcp_port\" go together");
		return -EINVAL;
	}
	if (addr) {
		if (!*addr || strpbrk(addr, " /\"")) {
			snprintf(why, whylen, "bad \"tcp_addr\"");
			return -EINVAL;
		}
		snprintf(ep->tcp_addr, sizeof(ep->tcp_addr), "%s", addr);
		ep->tcp_port = (int)port;
	}

	r = json_str(o, "rdma_gid", sizeof(ep->rdma_gid), &gid, why, whylen);
	if (r == -EINVAL)
		return r;
	if (gid) {
		for (i = 0; gid[i]; i++)
			if (!strchr("0123456789abcdefABCDEF:", gid[i]))
				break;
		if (gid[i] || !i) {
			snprintf(why, whylen,
				 "\"rdma_gid\" must be a hex string");
			return -EINVAL;
		}
		snprintf(ep->rdma_gid, sizeof(ep->rdma_gid), "%s", gid);
		ep->rdma = true;
		if (json_int(o, "rdma_qpn", 0, (1 << 24) - 1, &ep->rdma_qpn,
			     why, whylen) ||
		    json_int(o, "rdma_lid", 0, 65535, &ep->rdma_lid, why,
			     whylen) ||
		    json_int(o, "rdma_psn", 0, (1 << 24) - 1, &ep->rdma_psn,
			     why, whylen)) {
			if (!strchr(why, '"'))
				snprintf(why, whylen,
					 "RDMA endpoints need \"rdma_qpn\", \"rdma_lid\", \"rdma_gid\" and \"rdma_psn\"");
			return -EINVAL;
		}
	}

	if (e && *e) {
		snprintf(ep->endpoint, sizeof(ep->endpoint), "%s", e);
	} else if (addr) {
		/* What the tcp-family plugins publish: HOST:PORT. */
		snprintf(ep->endpoint, sizeof(ep->endpoint),
			 strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr,
			 (int)port);
	} else {
		snprintf(why, whylen,
			 "needs \"endpoint\" or \"tcp_addr\" and \"tcp_port\"");
		return -EINVAL;
	}
	return 0;
}

static enum MHD_Result post_endpoint(struct coord_server *s,
				     struct MHD_Connection *conn,
				     struct coord_req *rq, const char *idseg)
{
	unsigned int status = MHD_HTTP_OK;
	struct coord_cluster *cl;
	struct coord_node *nd;
	struct coord_ep ep;
	enum MHD_Result ret;
	cJSON *o, *out;
	char why[200];
	int id, i;

	o = parse_body(conn, rq, &ret);
	if (!o)
		return ret;
	if (parse_ep(o, &ep, why, sizeof(why))) {
		ret = send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
				 "POST /nodes/%s/endpoint: %s", idseg, why);
		cJSON_Delete(o);
		return ret;
	}
	pthread_mutex_lock(&s->lock);
	cl = req_cluster(s, conn, o, &ret);
	if (!cl)
		goto out_unlock;
	id = req_node(conn, cl, idseg, &ret);
	if (id < 0)
		goto out_unlock;
	nd = &cl->node[id];
	if (!nd->live) {
		nd->n_eps = 0;
		nd->live = true;
		status = MHD_HTTP_CREATED;
	}
	for (i = 0; i < nd->n_eps; i++)
		if (!strcmp(nd->eps[i].transport, ep.transport))
			break;
	if (i == CFG_MAX_TRANSPORTS) {
		ret = send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
				 "node %d already has %d transports", id,
				 CFG_MAX_TRANSPORTS);
		goto out_unlock;
	}
	if (i == nd->n_eps) {
		nd->n_eps++;
		status = MHD_HTTP_CREATED;
	}
	nd->last_seen_ms = coord_now_ms();
	if (status == MHD_HTTP_CREATED ||
	    memcmp(&nd->eps[i], &ep, sizeof(ep))) {
		nd->eps[i] = ep;
		bump(s, cl);
		pm_info("cluster '%s': node %d %s endpoint %s", cl->name, id,
			ep.transport, ep.endpoint);
	}
	out = node_json(id, nd, nd->last_seen_ms);
	if (out && !cJSON_AddNumberToObject(out, "version",
					    (double)cl->version)) {
		cJSON_Delete(out);
		out = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	cJSON_Delete(o);
	return out ? send_json(conn, status, out, NULL) : MHD_NO;
out_unlock:
	pthread_mutex_unlock(&s->lock);
	cJSON_Delete(o);
	return ret;
}

/* POST /nodes/ID/heartbeat and DELETE /nodes/ID (a clean leave). */
static enum MHD_Result node_op(struct coord_server *s,
			       struct MHD_Connection *conn,
			       struct coord_req *rq, const char *idseg,
			       bool leave)
{
	struct coord_cluster *cl;
	cJSON *o = NULL, *out;
	enum MHD_Result ret;
	int id;

	/* A heartbeat may carry {"cluster": ...}; an empty body is fine. */
	if (rq->len) {
		o = parse_body(conn, rq, &ret);
		if (!o)
			return ret;
	}
	pthread_mutex_lock(&s->lock);
	cl = req_cluster(s, conn, o, &ret);
	if (!cl)
		goto out_unlock;
	id = req_node(conn, cl, idseg, &ret);
	if (id < 0)
		goto out_unlock;
	if (!cl->node[id].live) {
		ret = send_error(conn, MHD_HTTP_NOT_FOUND, NULL,
				 "node %d is not registered in cluster '%s' (expired or never registered: POST its endpoints again)",
				 id, cl->name);
		goto out_unlock;
	}
	if (leave) {
		cl->node[id].live = false;
		bump(s, cl);
		pm_info("cluster '%s': node %d left", cl->name, id);
	} else {
		cl->node[id].last_seen_ms = coord_now_ms();
	}
	out = cJSON_CreateObject();
	if (out && (!cJSON_AddNumberToObject(out, "node_id", id) ||
		    !cJSON_AddNumberToObject(out, "ttl_ms", s->ttl_ms) ||
		    !cJSON_AddNumberToObject(out, "version",
					     (double)cl->version))) {
		cJSON_Delete(out);
		out = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	cJSON_Delete(o);
	return out ? send_json(conn, MHD_HTTP_OK, out, NULL) : MHD_NO;
out_unlock:
	pthread_mutex_unlock(&s->lock);
	cJSON_Delete(o);
	return ret;
}

/* Unsigned decimal query argument; -EINVAL if present and not one. */
static int query_u64(struct MHD_Connection *conn, const char *key,
		     uint64_t *out, bool *found)
{
	const char *v = MHD_lookup_connection_value(conn,
			MHD_GET_ARGUMENT_KIND, key);
	unsigned long long x;
	char *end;

	*found = v != NULL;
	if (!v)
		return 0;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (!*v || *end || errno || *v == '-')
		return -EINVAL;
	*out = x;
	return 0;
}

/*
 * GET /endpoints[?cluster=C][&wait=V[&timeout_ms=T]]: with wait, hold the
 * request until the version passes V or T (at most COORD_WAIT_MAX_MS)
 * elapses; then answer the state as it is. This thread is the connection's
 * own (thread per connection), so blocking here stalls no one else.
 */
static enum MHD_Result get_endpoints(struct coord_server *s,
				     struct MHD_Connection *conn)
{
	uint64_t wait = 0, tmo = COORD_WAIT_MAX_MS;
	bool has_wait, has_tmo;
	struct coord_cluster *cl;
	enum MHD_Result ret;
	cJSON *out, *eps;
	struct timespec ts;
	int64_t now;
	int i;

	if (query_u64(conn, "wait", &wait, &has_wait))
		return send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
				  "wait: expected a version number");
	if (query_u64(conn, "timeout_ms", &tmo, &has_tmo))
		return send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
				  "timeout_ms: expected a number of milliseconds");
	if (tmo > COORD_WAIT_MAX_MS)
		tmo = COORD_WAIT_MAX_MS;

	pthread_mutex_lock(&s->lock);
	cl = req_cluster(s, conn, NULL, &ret);
	if (!cl) {
		pthread_mutex_unlock(&s->lock);
		return ret;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += tmo / 1000;
	ts.tv_nsec += (tmo % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	cl->waiters++;
	while (has_wait && cl->version <= wait && !s->stopping)
		if (pthread_cond_timedwait(&s->changed, &s->lock, &ts) ==
		    ETIMEDOUT)
			break;
	cl->waiters--;

	now = coord_now_ms();
	out = cJSON_CreateObject();
	eps = out ? cJSON_AddObjectToObject(out, "endpoints") : NULL;
	for (i = 0; eps && i < CFG_MAX_NODES; i++) {
		char key[16];
		cJSON *n;

		if (!cl->node[i].live)
			continue;
		snprintf(key, sizeof(key), "%d", i);
		n = node_json(i, &cl->node[i], now);
		if (!n || !cJSON_AddItemToObject(eps, key, n)) {
			cJSON_Delete(n);
			eps = NULL;
		}
	}
	if (!eps || !cJSON_AddNumberToObject(out, "version",
					     (double)cl->version) ||
	    !cJSON_AddStringToObject(out, "cluster", cl->name) ||
	    !cJSON_AddNumberToObject(out, "ttl_ms", s->ttl_ms)) {
		cJSON_Delete(out);
		out = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	return out ? send_json(conn, MHD_HTTP_OK, out, NULL) : MHD_NO;
}

/* ---- dispatch ------------------------------------------------------------ */

/* With a cluster key, a write must carry a fresh MAC of itself. */
static bool signed_ok(struct coord_server *s, struct MHD_Connection *conn,
		      const char *url, const char *method,
		      const struct coord_req *rq, const char **why)
{
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						    COORD_AUTH_HEADER);
	const char *cluster = MHD_lookup_connection_value(conn,
			MHD_GET_ARGUMENT_KIND, "cluster");
	char want[65], *end;
	long long ts;

	if (!h) {
		*why = "missing " COORD_AUTH_HEADER " (this coordinator has a cluster key)";
		return false;
	}
	errno = 0;
	ts = strtoll(h, &end, 10);
	if (errno || end == h || *end != ':' || strlen(end + 1) != 64) {
		*why = "malformed " COORD_AUTH_HEADER " (want TS:HEX-HMAC)";
		return false;
	}
	if (llabs(auth_wall_ms() - ts) > COORD_AUTH_SKEW_MS) {
		*why = "stale " COORD_AUTH_HEADER " timestamp (clocks apart?)";
		return false;
	}
	if (auth_request_mac(s->key, s->keylen, ts, method, url, cluster,
			     rq->body, rq->len, want) ||
	    CRYPTO_memcmp(want, end + 1, 64)) {
		*why = "wrong " COORD_AUTH_HEADER " signature (another key?)";
		return false;
	}
	return true;
}

static enum MHD_Result route(struct coord_server *s,
			     struct MHD_Connection *conn, const char *url,
			     const char *method, struct coord_req *rq)
{
	char path[256], *seg[4], *save = NULL, *p;
	bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
	int n = 0;

	if (strlen(url) >= sizeof(path))
		return send_error(conn, MHD_HTTP_NOT_FOUND, NULL,
				  "no such resource (path too long)");
	snprintf(path, sizeof(path), "%s", url);
	for (p = strtok_r(path, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (n == 4)
			return send_error(conn, MHD_HTTP_NOT_FOUND, NULL,
					  "no such resource '%s'", url);
		seg[n++] = p;
	}
	if (n == 1 && !strcmp(seg[0], "clusters")) {
		if (!post)
			return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
					  "POST", "%s %s: use POST", method,
					  url);
		return post_cluster(s, conn, rq);
	}
	if (n == 2 && !strcmp(seg[0], "clusters")) {
		if (!get)
			return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
					  "GET", "%s %s: use GET", method, url);
		return get_cluster(s, conn, seg[1]);
	}
	if (n == 1 && !strcmp(seg[0], "endpoints")) {
		if (!get)
			return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
					  "GET", "%s %s: use GET", method, url);
		return get_endpoints(s, conn);
	}
	if (n == 3 && !strcmp(seg[0], "nodes") &&
	    (!strcmp(seg[2], "endpoint") || !strcmp(seg[2], "heartbeat"))) {
		if (!post)
			return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
					  "POST", "%s %s: use POST", method,
					  url);
		if (seg[2][0] == 'e')
			return post_endpoint(s, conn, rq, seg[1]);
		return node_op(s, conn, rq, seg[1], false);
	}
	if (n == 2 && !strcmp(seg[0], "nodes")) {
		if (strcmp(method, "DELETE"))
			return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
					  "DELETE", "%s %s: use DELETE",
					  method, url);
		return node_op(s, conn, rq, seg[1], true);
	}
	return send_error(conn, MHD_HTTP_NOT_FOUND, NULL,
			  "no such resource '%s'", url);
}

static enum MHD_Result coord_handler(void *cls, struct MHD_Connection *conn,
				     const char *url, const char *method,
				     const char *version,
				     const char *upload_data,
				     size_t *upload_data_size, void **con_cls)
{
	struct coord_server *s = cls;
	struct coord_req *rq = *con_cls;

	(void)version;
	if (!rq) {
		const char *cl = MHD_lookup_connection_value(conn,
				MHD_HEADER_KIND,
				MHD_HTTP_HEADER_CONTENT_LENGTH);

		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		pthread_mutex_lock(&s->lock);
		s->active++;
		pthread_mutex_unlock(&s->lock);
		/* Refuse a body declared too large before reading any. */
		if (cl && strtoull(cl, NULL, 10) > COORD_BODY_MAX) {
			rq->too_big = true;
			return send_error(conn,
					  MHD_HTTP_CONTENT_TOO_LARGE, NULL,
					  "request body of %s bytes is over the limit of %d",
					  cl, COORD_BODY_MAX);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		/* Chunked bodies have no length up front: keep at most
		 * the limit, drop the rest, and answer 413 at the end. */
		if (!rq->too_big &&
		    *upload_data_size <= COORD_BODY_MAX - rq->len) {
			char *nb = realloc(rq->body, rq->len +
					   *upload_data_size + 1);

			if (!nb)
				return MHD_NO;
			rq->body = nb;
			memcpy(rq->body + rq->len, upload_data,
			       *upload_data_size);
			rq->len += *upload_data_size;
		} else if (!rq->too_big) {
			rq->too_big = true;
			free(rq->body);
			rq->body = NULL;
			rq->len = 0;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rq->too_big)
		return send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
				  "request body is over the limit of %d bytes",
				  COORD_BODY_MAX);
	if (s->keylen && strcmp(method, "GET") && strcmp(method, "HEAD")) {
		const char *why = NULL;

		if (!signed_ok(s, conn, url, method, rq, &why))
			return send_error(conn, MHD_HTTP_UNAUTHORIZED, NULL,
					  "%s %s: %s", method, url, why);
	}
	return route(s, conn, url, method, rq);
}

static void coord_completed(void *cls, struct MHD_Connection *conn,
			    void **con_cls,
			    enum MHD_RequestTerminationCode toe)
{
	struct coord_server *s = cls;
	struct coord_req *rq = *con_cls;

	(void)conn;
	(void)toe;
	if (rq) {
		free(rq->body);
		free(rq);
		*con_cls = NULL;
		pthread_mutex_lock(&s->lock);
		s->active--;
		if (s->stopping)
			pthread_cond_broadcast(&s->changed);
		pthread_mutex_unlock(&s->lock);
	}
}

/* Drops nodes whose last heartbeat is older than the TTL. */
static void *reaper_main(void *arg)
{
	struct coord_server *s = arg;
	int tick = s->ttl_ms / 4, i, j;
	struct timespec ts;

	if (tick < 10)
		tick = 10;
	if (tick > 1000)
		tick = 1000;
	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		int64_t now = coord_now_ms();

		for (i = 0; i < s->n_clusters; i++) {
			struct coord_cluster *cl = s->clusters[i];

			for (j = 0; j < CFG_MAX_NODES; j++) {
				if (!cl->node[j].live ||
				    now - cl->node[j].last_seen_ms <=
					    s->ttl_ms)
					continue;
				cl->node[j].live = false;
				bump(s, cl);
				pm_info("cluster '%s': node %d expired (no heartbeat for %lld ms)",
					cl->name, j,
					(long long)(now -
						    cl->node[j].last_seen_ms));
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)tick * 1000000;
		ts.tv_sec += ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&s->changed, &s->lock, &ts);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int coord_server_start(const char *listen, int ttl_ms,
		       struct coord_server **out, char *err, size_t errlen)
{
	pthread_condattr_t ca;
	struct coord_server *s;
	int r;

	if (ttl_ms < 50 || ttl_ms > 3600000) {
		snprintf(err, errlen, "ttl_ms %d is out of range [50, 3600000]",
			 ttl_ms);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->ttl_ms = ttl_ms;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->changed, &ca);
	pthread_condattr_destroy(&ca);

	r = pthread_create(&s->reaper, NULL, reaper_main, s);
	if (r) {
		snprintf(err, errlen, "cannot start the expiry thread: %s",
			 strerror(r));
		coord_server_stop(s);
		return -r;
	}
	s->reaper_started = true;
	r = http_start(listen, (void *)coord_handler, s,
		       (void *)coord_completed, s, COORD_CONN_LIMIT, &s->d,
		       &s->port, err, errlen);
	if (r) {
		coord_server_stop(s);
		return r;
	}
	*out = s;
	return 0;
}

int coord_server_set_key(struct coord_server *s, const unsigned char *key,
			 size_t len)
{
	if (len < AUTH_KEY_MIN || len > AUTH_KEY_MAX)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	memcpy(s->key, key, len);
	s->keylen = len;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int coord_server_port(const struct coord_server *s)
{
	return s->port;
}

void coord_server_stop(struct coord_server *s)
{
	MHD_socket lfd = MHD_INVALID_SOCKET;
	int i;

	if (!s)
		return;
	/*
	 * Release long-polls, take no new connections, and give requests in
	 * flight (the released polls among them) a moment to be answered:
	 * MHD_stop_daemon would cut them off.
	 */
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->changed);
	if (s->d) {
		struct timespec ts;

		lfd = MHD_quiesce_daemon(s->d);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 2;
		while (s->active > 0)
			if (pthread_cond_timedwait(&s->changed, &s->lock,
						   &ts) == ETIMEDOUT)
				break;
	}
	pthread_mutex_unlock(&s->lock);
	if (s->d)
		MHD_stop_daemon(s->d);
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	if (s->reaper_started)
		pthread_join(s->reaper, NULL);
	for (i = 0; i < s->n_clusters; i++)
		free(s->clusters[i]);
	pthread_cond_destroy(&s->changed);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
