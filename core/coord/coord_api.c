// SPDX-License-Identifier: MIT
/* The embedded coordinator's API: its resources (clusters, node endpoints,
 * heartbeats, the long-polled membership) and the routing to them. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "coord_srv.h"
#include "log.h"

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

void coord_bump(struct coord_server *s, struct coord_cluster *cl)
{
	cl->version++;
	pthread_cond_broadcast(&s->changed);
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

	o = coord_parse_body(conn, rq, &ret);
	if (!o)
		return ret;
	r = coord_json_str(o, "name", CFG_NAME_MAX, &name, why, sizeof(why));
	if (r == -ENOENT)
		snprintf(why, sizeof(why), "missing \"name\"");
	if (!r && !cfg_plain_name(name, CFG_NAME_MAX)) {
		snprintf(why, sizeof(why),
			 "\"name\" must be letters, digits, '_', '.' or '-'");
		r = -EINVAL;
	}
	if (!r) {
		r = coord_json_int(o, "nodes", 1, CFG_MAX_NODES, &nodes, why,
				   sizeof(why));
		if (r == -ENOENT)
			snprintf(why, sizeof(why), "missing \"nodes\"");
	}
	if (!r) {
		r = coord_json_int(o, "memory_mb", 0, 1 << 20, &mb, why,
				   sizeof(why));
		if (r == -ENOENT)
			snprintf(why, sizeof(why), "missing \"memory_mb\"");
	}
	if (!r) {
		r = coord_json_int(o, "memory_bytes", 0, 1ll << 40, &bytes, why,
				   sizeof(why));
		if (r == -ENOENT)
			r = 0;
	}
	if (r) {
		cJSON_Delete(o);
		return coord_send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
					"POST /clusters: %s", why);
	}

	pthread_mutex_lock(&s->lock);
	cl = find_cluster(s, name);
	if (cl && !cl->implicit) {
		if (cl->nodes != nodes || cl->memory_mb != mb ||
		    (bytes && cl->memory_bytes && bytes != cl->memory_bytes)) {
			pthread_mutex_unlock(&s->lock);
			ret = coord_send_error(conn, MHD_HTTP_CONFLICT, NULL,
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
			return coord_send_error(conn, MHD_HTTP_CONFLICT, NULL,
						"cluster '%s' already has node %d, beyond nodes=%lld",
						name, i, (long long)nodes);
		}
	} else {
		cl = add_cluster(s, name);
		if (!cl) {
			pthread_mutex_unlock(&s->lock);
			cJSON_Delete(o);
			return coord_send_error(conn,
						MHD_HTTP_INSUFFICIENT_STORAGE,
						NULL, "at most %d clusters",
						COORD_MAX_CLUSTERS);
		}
	}
	if (status == MHD_HTTP_CREATED) {
		cl->implicit = false;
		cl->nodes = (int)nodes;
		cl->memory_mb = mb;
		cl->memory_bytes = bytes;
		coord_bump(s, cl);
		pm_info("cluster '%s' created: %d nodes, %lld MiB", cl->name,
			cl->nodes, (long long)cl->memory_mb);
	} else if (bytes && !cl->memory_bytes) {
		cl->memory_bytes = bytes;
	}
	out = coord_cluster_json(s, cl);
	pthread_mutex_unlock(&s->lock);
	cJSON_Delete(o);
	if (!out)
		return MHD_NO;
	return coord_send_json(conn, status, out, NULL);
}

static enum MHD_Result get_cluster(struct coord_server *s,
				   struct MHD_Connection *conn,
				   const char *name)
{
	struct coord_cluster *cl;
	cJSON *out;

	pthread_mutex_lock(&s->lock);
	cl = find_cluster(s, name);
	out = cl ? coord_cluster_json(s, cl) : NULL;
	pthread_mutex_unlock(&s->lock);
	if (!cl)
		return coord_send_error(conn, MHD_HTTP_NOT_FOUND, NULL,
					"unknown cluster '%s'", name);
	if (!out)
		return MHD_NO;
	return coord_send_json(conn, MHD_HTTP_OK, out, NULL);
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
			*ret = coord_send_error(conn, MHD_HTTP_BAD_REQUEST,
						NULL,
						"\"cluster\" must be a string");
			return NULL;
		}
		name = v->valuestring;
	}
	if (!name || !*name)
		name = COORD_DEFAULT_CLUSTER;
	if (!cfg_plain_name(name, CFG_NAME_MAX)) {
		*ret = coord_send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
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
		*ret = coord_send_error(conn, MHD_HTTP_NOT_FOUND, NULL,
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

	/* Digits only, one spelling per id: not "+1", " 1" or "01". */
	errno = 0;
	id = strtol(seg, &end, 10);
	if (!*seg || *end || errno || id < 0 || id >= cl->nodes ||
	    seg[strspn(seg, "0123456789")] || (seg[0] == '0' && seg[1])) {
		*ret = coord_send_error(conn, MHD_HTTP_NOT_FOUND, NULL,
					"no node '%s' in cluster '%s' (ids are 0 to %d)",
					seg, cl->name, cl->nodes - 1);
		return -1;
	}
	return (int)id;
}

/* "incarnation" of a body (NULL: none): "" when absent. 0 or -EINVAL. */
static int req_incarnation(const cJSON *o, const char **out, char *why,
			   size_t whylen)
{
	const char *v;
	size_t i;
	int r;

	*out = "";
	if (!o)
		return 0;
	r = coord_json_str(o, "incarnation", COORD_INCARNATION_MAX + 1, &v,
			   why, whylen);
	if (r == -ENOENT)
		return 0;
	if (r)
		return r;
	for (i = 0; v[i]; i++)
		if (!((v[i] >= '0' && v[i] <= '9') ||
		      (v[i] >= 'a' && v[i] <= 'f')))
			break;
	if (!i || v[i]) {
		snprintf(why, whylen,
			 "\"incarnation\" must be 1 to %d lowercase hex digits",
			 COORD_INCARNATION_MAX);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/*
 * May a claim with incarnation inc (maybe "") and endpoint ep change the
 * live node nd? Yes for its own incarnation; without one on either side,
 * only if it changes no endpoint the node has (so a replayed or stray
 * registration cannot move it elsewhere).
 */
static bool same_claim(const struct coord_node *nd, const char *inc,
		       const struct coord_ep *ep)
{
	int i;

	if (nd->incarnation[0] || inc[0])
		return !strcmp(nd->incarnation, inc);
	for (i = 0; i < nd->n_eps; i++)
		if (!strcmp(nd->eps[i].transport, ep->transport))
			return !memcmp(&nd->eps[i], ep, sizeof(*ep));
	return true;
}

/* 409 for a claim on a node id another registration holds. */
static enum MHD_Result node_taken(struct coord_server *s,
				  struct MHD_Connection *conn,
				  const struct coord_cluster *cl, int id,
				  const char *what)
{
	const struct coord_node *nd = &cl->node[id];
	int64_t now = coord_now_ms();

	return coord_send_error(conn, MHD_HTTP_CONFLICT, NULL,
				"%s: node %d of cluster '%s' is live under another registration (since %lld ms, last heartbeat %lld ms ago): is a second process using node id %d? The id is free once that one leaves or is silent for %d ms",
				what, id, cl->name,
				(long long)(now - nd->registered_ms),
				(long long)(now - nd->last_seen_ms), id,
				s->ttl_ms);
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
	const char *inc;
	cJSON *o, *out;
	char why[200];
	int id, i;

	o = coord_parse_body(conn, rq, &ret);
	if (!o)
		return ret;
	if (coord_parse_ep(o, &ep, why, sizeof(why)) ||
	    req_incarnation(o, &inc, why, sizeof(why))) {
		ret = coord_send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
				       "POST /nodes/%s/endpoint: %s", idseg,
				       why);
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
	if (nd->live && !same_claim(nd, inc, &ep)) {
		ret = node_taken(s, conn, cl, id, "POST /nodes/ID/endpoint");
		pthread_mutex_unlock(&s->lock);
		cJSON_Delete(o);
		coord_refused(s, conn,
			      "cluster '%s': a second claim of live node %d (%s %s)",
			      cl->name, id, ep.transport, ep.endpoint);
		return ret;
	}
	if (!nd->live) {
		nd->n_eps = 0;
		nd->live = true;
		nd->registered_ms = coord_now_ms();
		snprintf(nd->incarnation, sizeof(nd->incarnation), "%s", inc);
		status = MHD_HTTP_CREATED;
	}
	for (i = 0; i < nd->n_eps; i++)
		if (!strcmp(nd->eps[i].transport, ep.transport))
			break;
	if (i == CFG_MAX_TRANSPORTS) {
		ret = coord_send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
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
		coord_bump(s, cl);
		pm_info("cluster '%s': node %d %s endpoint %s", cl->name, id,
			ep.transport, ep.endpoint);
	}
	out = coord_node_json(id, nd, nd->last_seen_ms);
	if (out && !cJSON_AddNumberToObject(out, "version",
					    (double)cl->version)) {
		cJSON_Delete(out);
		out = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	cJSON_Delete(o);
	return out ? coord_send_json(conn, status, out, NULL) : MHD_NO;
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
	const char *inc;
	char why[160];
	int id;

	/* A heartbeat may carry {"cluster", "incarnation"}; an empty body
	 * is fine. */
	if (rq->len) {
		o = coord_parse_body(conn, rq, &ret);
		if (!o)
			return ret;
	}
	if (req_incarnation(o, &inc, why, sizeof(why))) {
		cJSON_Delete(o);
		return coord_send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
					"%s /nodes/%s: %s",
					leave ? "DELETE" : "POST", idseg, why);
	}
	pthread_mutex_lock(&s->lock);
	cl = req_cluster(s, conn, o, &ret);
	if (!cl)
		goto out_unlock;
	id = req_node(conn, cl, idseg, &ret);
	if (id < 0)
		goto out_unlock;
	if (!cl->node[id].live) {
		ret = coord_send_error(conn, MHD_HTTP_NOT_FOUND, NULL,
				       "node %d is not registered in cluster '%s' (expired or never registered: POST its endpoints again)",
				       id, cl->name);
		goto out_unlock;
	}
	/* A heartbeat is the holder's own; a leave without an incarnation
	 * is an operator's, which removes the node whoever holds it. */
	if ((!leave || inc[0]) && strcmp(cl->node[id].incarnation, inc)) {
		ret = node_taken(s, conn, cl, id,
				 leave ? "DELETE /nodes/ID" :
					 "POST /nodes/ID/heartbeat");
		goto out_unlock;
	}
	if (leave) {
		cl->node[id].live = false;
		coord_bump(s, cl);
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
	return out ? coord_send_json(conn, MHD_HTTP_OK, out, NULL) : MHD_NO;
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
				     struct MHD_Connection *conn,
				     const struct coord_req *rq)
{
	uint64_t wait = 0, tmo = COORD_WAIT_MAX_MS;
	bool has_wait, has_tmo, parks, counted = false;
	struct coord_cluster *cl;
	enum MHD_Result ret;
	cJSON *out, *eps;
	struct timespec ts;
	int64_t now;
	int i;

	if (query_u64(conn, "wait", &wait, &has_wait))
		return coord_send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
					"wait: expected a version number");
	if (query_u64(conn, "timeout_ms", &tmo, &has_tmo))
		return coord_send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
					"timeout_ms: expected a number of milliseconds");
	if (tmo > COORD_WAIT_MAX_MS)
		tmo = COORD_WAIT_MAX_MS;

	/*
	 * The wait is ours, not an idle client's: no idle timeout while it
	 * lasts (MHD would count it and drop the answer), and setting the
	 * timeout again afterwards restarts its clock.
	 */
	parks = has_wait && tmo > 0;
	if (parks)
		MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
					  0u);
	pthread_mutex_lock(&s->lock);
	cl = req_cluster(s, conn, NULL, &ret);
	if (!cl) {
		pthread_mutex_unlock(&s->lock);
		goto out_timeout;
	}
	/*
	 * Each parked poll holds a connection and its thread: those anyone
	 * can send are capped well below the connection limit, so that
	 * signed heartbeats, registrations and long-polls always find room.
	 */
	if (parks && cl->version <= wait && !rq->signed_ok) {
		if (s->open_polls >= COORD_OPEN_POLLS_MAX) {
			pthread_mutex_unlock(&s->lock);
			coord_refused(s, conn,
				      "GET /endpoints?wait: %d unsigned long-polls are parked already",
				      COORD_OPEN_POLLS_MAX);
			ret = coord_send_busy(conn,
					      "GET /endpoints?wait: %d long-polls without a signature are waiting already; retry later (requests signed with the cluster key are not limited)",
					      COORD_OPEN_POLLS_MAX);
			goto out_timeout;
		}
		s->open_polls++;
		counted = true;
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
	if (counted)
		s->open_polls--;

	now = coord_now_ms();
	out = cJSON_CreateObject();
	eps = out ? cJSON_AddObjectToObject(out, "endpoints") : NULL;
	for (i = 0; eps && i < CFG_MAX_NODES; i++) {
		char key[16];
		cJSON *n;

		if (!cl->node[i].live)
			continue;
		snprintf(key, sizeof(key), "%d", i);
		n = coord_node_json(i, &cl->node[i], now);
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
	ret = out ? coord_send_json(conn, MHD_HTTP_OK, out, NULL) : MHD_NO;
out_timeout:
	if (parks)
		MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
					  (unsigned int)COORD_IDLE_TIMEOUT_S);
	return ret;
}

/* 405 naming the one method the resource takes (also in Allow). */
static enum MHD_Result wrong_method(struct MHD_Connection *conn,
				    const char *method, const char *url,
				    const char *allow)
{
	return coord_send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, allow,
				"%s %s: use %s", method, url, allow);
}

enum MHD_Result coord_route(struct coord_server *s,
			    struct MHD_Connection *conn, const char *url,
			    const char *method, struct coord_req *rq)
{
	char path[256], *seg[4], *save = NULL, *p;
	bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
	enum MHD_Result ret;
	int n = 0;

	if (coord_probe(s, conn, url, method, &ret))
		return ret;
	if (strlen(url) >= sizeof(path))
		return coord_send_error(conn, MHD_HTTP_NOT_FOUND, NULL,
					"no such resource (path too long)");
	snprintf(path, sizeof(path), "%s", url);
	for (p = strtok_r(path, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (n == 4)
			return coord_send_error(conn, MHD_HTTP_NOT_FOUND, NULL,
						"no such resource '%s'", url);
		seg[n++] = p;
	}
	if (n == 1 && !strcmp(seg[0], "clusters")) {
		if (!post)
			return wrong_method(conn, method, url, "POST");
		return post_cluster(s, conn, rq);
	}
	if (n == 2 && !strcmp(seg[0], "clusters")) {
		if (!get)
			return wrong_method(conn, method, url, "GET");
		return get_cluster(s, conn, seg[1]);
	}
	if (n == 1 && !strcmp(seg[0], "endpoints")) {
		if (!get)
			return wrong_method(conn, method, url, "GET");
		return get_endpoints(s, conn, rq);
	}
	if (n == 3 && !strcmp(seg[0], "nodes") &&
	    (!strcmp(seg[2], "endpoint") || !strcmp(seg[2], "heartbeat"))) {
		if (!post)
			return wrong_method(conn, method, url, "POST");
		if (seg[2][0] == 'e')
			return post_endpoint(s, conn, rq, seg[1]);
		return node_op(s, conn, rq, seg[1], false);
	}
	if (n == 2 && !strcmp(seg[0], "nodes")) {
		if (strcmp(method, "DELETE"))
			return wrong_method(conn, method, url, "DELETE");
		return node_op(s, conn, rq, seg[1], true);
	}
	return coord_send_error(conn, MHD_HTTP_NOT_FOUND, NULL,
				"no such resource '%s'", url);
}
