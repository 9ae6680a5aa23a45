// SPDX-License-Identifier: MIT
/* The embedded coordinator's wire format: JSON answers and errors, request
 * bodies parsed and validated, and the JSON views of clusters and nodes. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "coord_srv.h"

/* ---- responses ----------------------------------------------------------- */

enum MHD_Result coord_send_json(struct MHD_Connection *conn,
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

/* {"error": "what was wrong", "status": N} */
enum MHD_Result coord_send_error(struct MHD_Connection *conn,
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
	return coord_send_json(conn, status, o, allow);
}

enum MHD_Result coord_send_busy(struct MHD_Connection *conn,
				const char *fmt, ...)
{
	struct MHD_Response *resp;
	enum MHD_Result r;
	char msg[512], *txt;
	cJSON *o;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "error", msg) ||
	    !cJSON_AddNumberToObject(o, "status",
				     MHD_HTTP_SERVICE_UNAVAILABLE)) {
		cJSON_Delete(o);
		return MHD_NO;
	}
	txt = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
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
	MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	/* The connection's thread is what is scarce: give it back now. */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	r = MHD_queue_response(conn, MHD_HTTP_SERVICE_UNAVAILABLE, resp);
	MHD_destroy_response(resp);
	return r;
}

/* ---- validation ---------------------------------------------------------- */

int coord_json_int(const cJSON *o, const char *key, int64_t lo, int64_t hi,
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

int coord_json_str(const cJSON *o, const char *key, size_t max,
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

/* Does a JSON string of the body hold "\u0000"? cJSON would end the C
 * string there ("c\u0000x" read as "c"). A backslash escapes it only when
 * an odd number of them stand before the u. */
static bool has_nul_escape(const char *p, size_t len)
{
	for (size_t i = 0; i + 6 <= len; i++) {
		size_t k = 0;

		if (p[i] != '\\' || strncasecmp(p + i + 1, "u0000", 5))
			continue;
		while (k < i && p[i - 1 - k] == '\\')
			k++;
		if (!(k & 1))
			return true;
	}
	return false;
}

/* The first key that an object of o (or o) holds twice, or NULL: the last
 * of two would win in some parsers and the first in cJSON. */
static const char *dup_key(const cJSON *o)
{
	const cJSON *a, *b;
	const char *d;

	for (a = o ? o->child : NULL; a; a = a->next) {
		if (cJSON_IsObject(o) && a->string)
			for (b = a->next; b; b = b->next)
				if (b->string && !strcmp(a->string, b->string))
					return a->string;
		if ((cJSON_IsObject(a) || cJSON_IsArray(a)) &&
		    (d = dup_key(a)))
			return d;
	}
	return NULL;
}

/*
 * Parse the request body as a JSON object. NULL after queueing a 400 that
 * names the offset where parsing stopped (cJSON_ParseWithLengthOpts reports
 * it per call, unlike the global cJSON_GetErrorPtr, which threads share).
 */
cJSON *coord_parse_body(struct MHD_Connection *conn, struct coord_req *rq,
			enum MHD_Result *ret)
{
	const char *end = NULL, *d;
	cJSON *o;

	if (!rq->len) {
		*ret = coord_send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
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
		*ret = coord_send_json(conn, MHD_HTTP_BAD_REQUEST, e, NULL);
		return NULL;
	}
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		*ret = coord_send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
					"request body must be a JSON object");
		return NULL;
	}
	if (has_nul_escape(rq->body, rq->len)) {
		cJSON_Delete(o);
		*ret = coord_send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
					"a string holds \\u0000");
		return NULL;
	}
	d = dup_key(o);
	if (d) {
		*ret = coord_send_error(conn, MHD_HTTP_BAD_REQUEST, NULL,
					"key \"%.64s\" appears twice", d);
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static int live_count(const struct coord_cluster *cl)
{
	int i, n = 0;

	for (i = 0; i < CFG_MAX_NODES; i++)
		n += cl->node[i].live;
	return n;
}

cJSON *coord_cluster_json(const struct coord_server *s,
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
cJSON *coord_node_json(int id, const struct coord_node *nd, int64_t now)
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

/* What a host name, an IPv4 or IPv6 address (with a %scope) is made of. */
#define COORD_ADDR_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" \
	"0123456789._:-%"

int coord_parse_ep(const cJSON *o, struct coord_ep *ep, char *why,
		   size_t whylen)
{
	const char *t, *e = NULL, *addr = NULL, *gid = NULL;
	int64_t port = 0;
	size_t i;
	int r;

	memset(ep, 0, sizeof(*ep));
	r = coord_json_str(o, "transport_type", sizeof(ep->transport), &t, why,
			   whylen);
	if (r == -ENOENT)
		snprintf(why, whylen, "missing \"transport_type\"");
	if (r)
		return -EINVAL;
	if (!cfg_plain_name(t, sizeof(ep->transport))) {
		snprintf(why, whylen,
			 "\"transport_type\" must be letters, digits, '_', '.' or '-'");
		return -EINVAL;
	}
	snprintf(ep->transport, sizeof(ep->transport), "%s", t);

	r = coord_json_str(o, "endpoint", PM_ENDPOINT_MAX, &e, why, whylen);
	if (r == -EINVAL)
		return r;
	r = coord_json_str(o, "tcp_addr", sizeof(ep->tcp_addr), &addr, why, whylen);
	if (r == -EINVAL)
		return r;
	r = coord_json_int(o, "tcp_port", 1, 65535, &port, why, whylen);
	if (r == -EINVAL)
		return r;
	if (!addr != !port) {
		snprintf(why, whylen,
			 "\"tcp_addr\" and \"tcp_port\" go together");
		return -EINVAL;
	}
	if (addr) {
		if (!*addr || addr[strspn(addr, COORD_ADDR_CHARS)]) {
			snprintf(why, whylen, "bad \"tcp_addr\"");
			return -EINVAL;
		}
		snprintf(ep->tcp_addr, sizeof(ep->tcp_addr), "%s", addr);
		ep->tcp_port = (int)port;
	}

	r = coord_json_str(o, "rdma_gid", sizeof(ep->rdma_gid), &gid, why, whylen);
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
		if (coord_json_int(o, "rdma_qpn", 0, (1 << 24) - 1, &ep->rdma_qpn,
				   why, whylen) ||
		    coord_json_int(o, "rdma_lid", 0, 65535, &ep->rdma_lid, why,
				   whylen) ||
		    coord_json_int(o, "rdma_psn", 0, (1 << 24) - 1, &ep->rdma_psn,
				   why, whylen)) {
			if (!strchr(why, '"'))
				snprintf(why, whylen,
					 "RDMA endpoints need \"rdma_qpn\", \"rdma_lid\", \"rdma_gid\" and \"rdma_psn\"");
			return -EINVAL;
		}
	}

	if (e && *e) {
		/* Peers hand it to their plugin; logs and shells show it. */
		if (e[strspn(e, COORD_ADDR_CHARS "[]/@+=,")]) {
			snprintf(why, whylen,
				 "\"endpoint\" may hold letters, digits and ._:-[]%%/@+=, only");
			return -EINVAL;
		}
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
