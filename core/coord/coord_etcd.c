// SPDX-License-Identifier: MIT
/* etcd backend of the coordinator client, over etcd's v3 JSON gateway:
 * one lease per node, one key per endpoint, watches for membership changes.
 *
 * Keys (values are JSON but for the claim):
 *   /pagemesh/CLUSTER/config                  {"name","nodes","memory_bytes"}
 *   /pagemesh/CLUSTER/claims/ID               the holder's incarnation
 *                                              (node's lease)
 *   /pagemesh/CLUSTER/nodes/ID/TRANSPORT      {"node_id","transport_type",
 *                                              "endpoint"}  (node's lease)
 * A node writes its endpoints in one transaction with its claim, only if
 * no one else's claim is there: a second process with a live node's id is
 * refused instead of overwriting it.
 * The gateway wants keys and values in base64 and gives int64 fields as
 * JSON strings (a double would round ids and revisions). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "coord_priv.h"
#include "log.h"

#define ETCD_KEY_MAX 512
#define ETCD_VAL_MAX 2048

/* base64 of n bytes into out; 0 or -ENAMETOOLONG. */
static int b64enc(const void *in, size_t n, char *out, size_t outlen)
{
	if (n > 3 * 1024 || 4 * ((n + 2) / 3) + 1 > outlen)
		return -ENAMETOOLONG;
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return 0;
}

/* base64 in -> out (NUL-terminated); 0 or -EPROTO. */
static int b64dec(const char *in, char *out, size_t outlen, size_t *n)
{
	size_t l = strlen(in), pad = 0;
	int r;

	if (l % 4 || (l / 4) * 3 + 1 > outlen)
		return -EPROTO;
	if (l && in[l - 1] == '=')
		pad++;
	if (l > 1 && in[l - 2] == '=')
		pad++;
	r = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in,
			    (int)l);
	if (r < 0 || (size_t)r < pad)
		return -EPROTO;
	*n = (size_t)r - pad;	/* DecodeBlock counts the padding bytes */
	out[*n] = '\0';
	return 0;
}

/* An int64 field, which the gateway sends as a decimal string (or leaves
 * out when it is 0). 0, or -EPROTO for anything but digits. */
static int get_i64(const cJSON *o, const char *key, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	long long x;
	char *end;

	*out = 0;
	if (!v)
		return 0;
	if (cJSON_IsNumber(v) && v->valuedouble >= 0 &&
	    v->valuedouble < 9007199254740992.0) {
		*out = (int64_t)v->valuedouble;
		return 0;
	}
	if (!cJSON_IsString(v))
		return -EPROTO;
	errno = 0;
	x = strtoll(v->valuestring, &end, 10);
	if (!*v->valuestring || *end || errno || x < 0)
		return -EPROTO;
	*out = x;
	return 0;
}

static int add_b64(cJSON *o, const char *name, const char *s)
{
	char b[4 * ((ETCD_VAL_MAX + 2) / 3) + 1];

	if (b64enc(s, strlen(s), b, sizeof(b)))
		return -ENAMETOOLONG;
	return cJSON_AddStringToObject(o, name, b) ? 0 : -ENOMEM;
}

/*
 * POST path with body (consumed) to etcd; 0 with the parsed answer in *ans,
 * -ENOENT for 404 (e.g. an unknown lease), -errno otherwise (logged).
 */
static int etcd_call(struct coord *co, const char *path, cJSON *body,
		     cJSON **ans)
{
	struct coord_buf b = { 0 };
	char *txt;
	long st;
	int r;

	*ans = NULL;
	txt = body ? cJSON_PrintUnformatted(body) : NULL;
	cJSON_Delete(body);
	if (!txt)
		return -ENOMEM;
	/* Give each member part of the time: one that hangs (no quorum,
	 * slow disk) must not eat the whole budget. */
	r = coord_http(co, "POST", path, txt, co->request_ms,
		       co->n_urls > 1 ? co->request_ms / 2 : 0, &st, &b);
	free(txt);
	if (r == -ECANCELED)
		return r;	/* coord_close() cut it short */
	if (r) {
		pm_err("etcd %s: no answer from %d URL(s): %s", path,
		       co->n_urls, strerror(-r));
		return r;
	}
	if (st == 404) {
		r = -ENOENT;
		goto out;
	}
	if (st != 200) {
		pm_err("etcd %s%s: HTTP status %ld: %.300s", co->urls[co->cur],
		       path, st, b.data ? b.data : "");
		r = -EIO;
		goto out;
	}
	*ans = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
	if (!cJSON_IsObject(*ans)) {
		pm_err("etcd %s%s: answer is not a JSON object: %.300s",
		       co->urls[co->cur], path, b.data ? b.data : "");
		cJSON_Delete(*ans);
		*ans = NULL;
		r = -EPROTO;
	}
out:
	coord_buf_free(&b);
	return r;
}

static void key_config(const struct coord *co, char *k, size_t n)
{
	snprintf(k, n, "/pagemesh/%s/config", co->cluster);
}

static void key_nodes(const struct coord *co, char *k, size_t n)
{
	snprintf(k, n, "/pagemesh/%s/nodes/", co->cluster);
}

/* Create the cluster's config key unless it exists; if it does, it must
 * describe the same cluster. */
int coord_etcd_open(struct coord *co)
{
	char key[ETCD_KEY_MAX], val[256], got[ETCD_VAL_MAX];
	cJSON *req = NULL, *ans = NULL, *cmp, *c, *op, *put, *rng;
	const cJSON *resp, *kvs, *v;
	size_t n;
	int r = -ENOMEM;

	key_config(co, key, sizeof(key));
	snprintf(val, sizeof(val),
		 "{\"name\":\"%s\",\"nodes\":%d,\"memory_bytes\":%llu}",
		 co->cluster, co->nodes, (unsigned long long)co->memory);
	/* Compare-and-create in one transaction: two nodes starting at
	 * once cannot both think they created it. */
	req = cJSON_CreateObject();
	cmp = cJSON_AddArrayToObject(req, "compare");
	c = cJSON_CreateObject();
	if (!cmp || !c || !cJSON_AddItemToArray(cmp, c) ||
	    add_b64(c, "key", key) ||
	    !cJSON_AddStringToObject(c, "result", "EQUAL") ||
	    !cJSON_AddStringToObject(c, "target", "CREATE") ||
	    !cJSON_AddStringToObject(c, "create_revision", "0"))
		goto out;
	op = cJSON_AddArrayToObject(req, "success");
	c = cJSON_CreateObject();
	if (!op || !c || !cJSON_AddItemToArray(op, c))
		goto out;
	put = cJSON_AddObjectToObject(c, "request_put");
	if (!put || add_b64(put, "key", key) || add_b64(put, "value", val))
		goto out;
	op = cJSON_AddArrayToObject(req, "failure");
	c = cJSON_CreateObject();
	if (!op || !c || !cJSON_AddItemToArray(op, c))
		goto out;
	rng = cJSON_AddObjectToObject(c, "request_range");
	if (!rng || add_b64(rng, "key", key))
		goto out;
	r = etcd_call(co, "/v3/kv/txn", req, &ans);
	req = NULL;
	if (r)
		goto out;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "succeeded"))) {
		pm_info("etcd: created cluster '%s' (%d nodes)", co->cluster,
			co->nodes);
		goto out;
	}
	r = -EPROTO;
	resp = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ans,
							"responses"), 0);
	kvs = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(resp, "response_range"),
		"kvs");
	v = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(kvs, 0),
					     "value");
	if (!cJSON_IsString(v) || b64dec(v->valuestring, got, sizeof(got),
					 &n)) {
		pm_err("etcd %s: cluster config of '%s' unreadable",
		       co->urls[co->cur], co->cluster);
		goto out;
	}
	if (strcmp(got, val)) {
		pm_err("etcd %s: cluster '%s' exists as %s, this node wants %s",
		       co->urls[co->cur], co->cluster, got, val);
		r = -EEXIST;
		goto out;
	}
	r = 0;
out:
	cJSON_Delete(req);
	cJSON_Delete(ans);
	return r;
}

static int grant_lease(struct coord *co)
{
	int64_t id, ttl;
	cJSON *req, *ans;
	int r;

	req = cJSON_CreateObject();
	if (!req || !cJSON_AddNumberToObject(req, "TTL",
					     (co->ttl_ms + 999) / 1000)) {
		cJSON_Delete(req);
		return -ENOMEM;
	}
	r = etcd_call(co, "/v3/lease/grant", req, &ans);
	if (r)
		return r;
	if (get_i64(ans, "ID", &id) || get_i64(ans, "TTL", &ttl) || !id ||
	    ttl < 1 || ttl > 3600) {
		pm_err("etcd %s/v3/lease/grant: answer without a valid ID/TTL",
		       co->urls[co->cur]);
		cJSON_Delete(ans);
		return -EPROTO;
	}
	snprintf(co->lease, sizeof(co->lease), "%lld", (long long)id);
	/* etcd may raise a short TTL to its minimum: beat on its clock. */
	co->ttl_ms = (int)ttl * 1000;
	cJSON_Delete(ans);
	return 0;
}

static void key_claim(const struct coord *co, char *k, size_t n)
{
	snprintf(k, n, "/pagemesh/%s/claims/%d", co->cluster,
		 co->self.node_id);
}

/* A request_put of key = val under this node's lease onto ops. */
static int add_put(const struct coord *co, cJSON *ops, const char *key,
		   const char *val)
{
	cJSON *c = cJSON_CreateObject(), *put;

	if (!c || !cJSON_AddItemToArray(ops, c)) {
		cJSON_Delete(c);
		return -ENOMEM;
	}
	put = cJSON_AddObjectToObject(c, "request_put");
	if (!put || add_b64(put, "key", key) || add_b64(put, "value", val) ||
	    !cJSON_AddStringToObject(put, "lease", co->lease))
		return -ENOMEM;
	return 0;
}

/*
 * The transaction that writes the claim and every endpoint if the claim
 * compares as asked: target "CREATE" (no claim yet) or "VALUE" (ours).
 * On failure it reads the claim, to say whose it is.
 */
static cJSON *claim_txn(const struct coord *co, const char *target)
{
	const struct coord_member *m = &co->self;
	char key[ETCD_KEY_MAX], val[ETCD_VAL_MAX];
	cJSON *req, *cmp, *c, *ops, *v, *rng;
	char *vs;
	int i;

	key_claim(co, key, sizeof(key));
	req = cJSON_CreateObject();
	cmp = cJSON_AddArrayToObject(req, "compare");
	c = cJSON_CreateObject();
	if (!cmp || !c || !cJSON_AddItemToArray(cmp, c)) {
		cJSON_Delete(c);
		goto fail;
	}
	if (add_b64(c, "key", key) ||
	    !cJSON_AddStringToObject(c, "result", "EQUAL") ||
	    !cJSON_AddStringToObject(c, "target", target))
		goto fail;
	if (!strcmp(target, "CREATE") ?
		    !cJSON_AddStringToObject(c, "create_revision", "0") :
		    add_b64(c, "value", co->incarnation) != 0)
		goto fail;
	ops = cJSON_AddArrayToObject(req, "success");
	if (!ops || add_put(co, ops, key, co->incarnation))
		goto fail;
	for (i = 0; i < m->n_eps; i++) {
		snprintf(key, sizeof(key), "/pagemesh/%s/nodes/%d/%s",
			 co->cluster, m->node_id, m->eps[i].transport);
		v = cJSON_CreateObject();
		if (!v || !cJSON_AddNumberToObject(v, "node_id", m->node_id) ||
		    !cJSON_AddStringToObject(v, "transport_type",
					     m->eps[i].transport) ||
		    !cJSON_AddStringToObject(v, "endpoint",
					     m->eps[i].endpoint) ||
		    !cJSON_AddNumberToObject(v, "index", i)) {
			cJSON_Delete(v);
			goto fail;
		}
		vs = cJSON_PrintUnformatted(v);
		cJSON_Delete(v);
		if (!vs || strlen(vs) >= sizeof(val)) {
			free(vs);
			goto fail;
		}
		snprintf(val, sizeof(val), "%s", vs);
		free(vs);
		if (add_put(co, ops, key, val))
			goto fail;
	}
	key_claim(co, key, sizeof(key));
	ops = cJSON_AddArrayToObject(req, "failure");
	c = cJSON_CreateObject();
	if (!ops || !c || !cJSON_AddItemToArray(ops, c)) {
		cJSON_Delete(c);
		goto fail;
	}
	rng = cJSON_AddObjectToObject(c, "request_range");
	if (!rng || add_b64(rng, "key", key))
		goto fail;
	return req;
fail:
	cJSON_Delete(req);
	return NULL;
}

/* The claim's value out of a failed claim_txn's answer ("" if gone). */
static void claim_holder(const cJSON *ans, char *out, size_t len)
{
	const cJSON *resp, *kvs, *v;
	size_t n;

	out[0] = '\0';
	resp = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ans,
							"responses"), 0);
	kvs = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(resp, "response_range"),
		"kvs");
	v = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(kvs, 0),
					     "value");
	if (!cJSON_IsString(v) || b64dec(v->valuestring, out, len, &n))
		out[0] = '\0';
}

/* Revoking a lease deletes every key under it at once. */
static void revoke_lease(struct coord *co)
{
	cJSON *req, *ans = NULL;

	if (!co->lease[0])
		return;
	req = cJSON_CreateObject();
	if (!req || !cJSON_AddStringToObject(req, "ID", co->lease)) {
		cJSON_Delete(req);
		return;
	}
	etcd_call(co, "/v3/lease/revoke", req, &ans);
	cJSON_Delete(ans);
	co->lease[0] = '\0';
}

int coord_etcd_register(struct coord *co)
{
	const struct coord_member *m = &co->self;
	const char *target = "CREATE";
	char holder[ETCD_VAL_MAX];
	cJSON *req, *ans;
	int r;

	r = grant_lease(co);
	if (r)
		return r;
	/*
	 * First as a new claim; if the claim is there and ours (an answer
	 * lost on the way, then a retry under a new lease), move it and the
	 * endpoints to this lease; anyone else's is a refusal.
	 */
	for (;;) {
		req = claim_txn(co, target);
		if (!req) {
			r = -ENOMEM;
			goto out_revoke;
		}
		r = etcd_call(co, "/v3/kv/txn", req, &ans);
		if (r)
			goto out_revoke;
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans,
							"succeeded")))
			break;
		claim_holder(ans, holder, sizeof(holder));
		cJSON_Delete(ans);
		if (strcmp(target, "CREATE") || strcmp(holder, co->incarnation)) {
			pm_dbg("etcd %s: node %d of cluster '%s' is claimed by incarnation %s",
			       co->urls[co->cur], m->node_id, co->cluster,
			       holder[0] ? holder : "(none)");
			r = -EADDRINUSE;
			goto out_revoke;
		}
		target = "VALUE";
	}
	cJSON_Delete(ans);
	pm_info("etcd: node %d registered %d endpoint(s) under lease %s (ttl %d ms)",
		m->node_id, m->n_eps, co->lease, co->ttl_ms);
	return 0;
out_revoke:
	/* Keep no lease that holds nothing: the next keepalive then finds
	 * none and registers again. */
	revoke_lease(co);
	return r;
}

int coord_etcd_keepalive(struct coord *co)
{
	cJSON *req, *ans;
	int64_t ttl;
	int r;

	if (!co->lease[0])
		return -ENOENT;	/* the last claim was refused */
	req = cJSON_CreateObject();
	if (!req || !cJSON_AddStringToObject(req, "ID", co->lease)) {
		cJSON_Delete(req);
		return -ENOMEM;
	}
	r = etcd_call(co, "/v3/lease/keepalive", req, &ans);
	if (r)
		return r;
	/* A lease that is gone comes back without a TTL. */
	if (get_i64(cJSON_GetObjectItemCaseSensitive(ans, "result"), "TTL",
		    &ttl))
		r = -EPROTO;
	else if (ttl <= 0)
		r = -ENOENT;
	cJSON_Delete(ans);
	return r;
}

void coord_etcd_leave(struct coord *co)
{
	revoke_lease(co);
}

/* The prefix's range_end: the prefix with its last byte incremented. */
static void prefix_end(char *k)
{
	k[strlen(k) - 1]++;
}

/* Range over the node keys: members and the store revision. */
static int etcd_range(struct coord *co, struct coord_member *out, int max,
		      int *n, uint64_t *version)
{
	char key[ETCD_KEY_MAX], end[ETCD_KEY_MAX], k[ETCD_KEY_MAX];
	char val[ETCD_VAL_MAX];
	const cJSON *kv, *kvs, *tt, *ep, *id, *ix;
	int (*ord)[CFG_MAX_TRANSPORTS];
	int total = 0, i, r;
	cJSON *req, *ans, *vj;
	int64_t rev;
	size_t l, pl;

	key_nodes(co, key, sizeof(key));
	snprintf(end, sizeof(end), "%s", key);
	prefix_end(end);
	req = cJSON_CreateObject();
	if (!req || add_b64(req, "key", key) ||
	    add_b64(req, "range_end", end)) {
		cJSON_Delete(req);
		return -ENOMEM;
	}
	r = etcd_call(co, "/v3/kv/range", req, &ans);
	if (r)
		return r;
	ord = calloc(max > 0 ? max : 1, sizeof(*ord));
	if (!ord) {
		cJSON_Delete(ans);
		return -ENOMEM;
	}
	r = -EPROTO;
	if (get_i64(cJSON_GetObjectItemCaseSensitive(ans, "header"),
		    "revision", &rev) || rev <= 0)
		goto bad;
	kvs = cJSON_GetObjectItemCaseSensitive(ans, "kvs");
	if (kvs && !cJSON_IsArray(kvs))
		goto bad;
	*n = 0;
	pl = strlen(key);
	cJSON_ArrayForEach(kv, kvs) {
		const cJSON *kb = cJSON_GetObjectItemCaseSensitive(kv, "key");
		const cJSON *vb = cJSON_GetObjectItemCaseSensitive(kv,
								   "value");

		if (!cJSON_IsString(kb) || !cJSON_IsString(vb) ||
		    b64dec(kb->valuestring, k, sizeof(k), &l) ||
		    b64dec(vb->valuestring, val, sizeof(val), &l) ||
		    strncmp(k, key, pl))
			goto bad;
		vj = cJSON_Parse(val);
		id = cJSON_GetObjectItemCaseSensitive(vj, "node_id");
		tt = cJSON_GetObjectItemCaseSensitive(vj, "transport_type");
		ix = cJSON_GetObjectItemCaseSensitive(vj, "index");
		ep = cJSON_GetObjectItemCaseSensitive(vj, "endpoint");
		if (!cJSON_IsNumber(id) || id->valuedouble < 0 ||
		    id->valuedouble >= co->nodes ||
		    id->valuedouble != (int)id->valuedouble ||
		    !cJSON_IsString(tt) || !cJSON_IsString(ep) ||
		    strlen(tt->valuestring) >= sizeof(out->eps[0].transport) ||
		    strlen(ep->valuestring) >= sizeof(out->eps[0].endpoint)) {
			pm_err("etcd: bad member entry under %s: %.200s", k,
			       val);
			cJSON_Delete(vj);
			goto bad;
		}
		for (i = 0; i < *n; i++)
			if (out[i].node_id == (int)id->valuedouble)
				break;
		if (i == *n) {
			total++;
			if (*n < max) {
				memset(&out[i], 0, sizeof(out[i]));
				out[i].node_id = (int)id->valuedouble;
				(*n)++;
			}
		}
		if (i < *n && out[i].n_eps < CFG_MAX_TRANSPORTS) {
			/* Keys come sorted by transport name; put the
			 * endpoints back in the node's own order. */
			int e = out[i].n_eps++, k = e, pos;

			pos = cJSON_IsNumber(ix) ? (int)ix->valuedouble : e;
			while (k > 0 && ord[i][k - 1] > pos) {
				out[i].eps[k] = out[i].eps[k - 1];
				ord[i][k] = ord[i][k - 1];
				k--;
			}
			ord[i][k] = pos;
			snprintf(out[i].eps[k].transport,
				 sizeof(out[i].eps[k].transport), "%s",
				 tt->valuestring);
			snprintf(out[i].eps[k].endpoint,
				 sizeof(out[i].eps[k].endpoint), "%s",
				 ep->valuestring);
		}
		cJSON_Delete(vj);
	}
	coord_sort_members(out, *n);
	*version = (uint64_t)rev;
	cJSON_Delete(ans);
	free(ord);
	return total > max ? -E2BIG : 0;
bad:
	pm_err("etcd %s/v3/kv/range: malformed answer", co->urls[co->cur]);
	cJSON_Delete(ans);
	free(ord);
	return r;
}

struct watch_state {
	size_t seen;		/* bytes of the stream already looked at */
	bool fired;
};

/* Each line of the watch stream is one JSON message: the first says
 * "created", later ones carry events (or a cancel/compaction notice). */
static int watch_line(struct coord_buf *b, void *arg)
{
	struct watch_state *w = arg;
	char *nl;

	while ((nl = memchr(b->data + w->seen, '\n', b->len - w->seen))) {
		cJSON *m = cJSON_ParseWithLength(b->data + w->seen,
						 nl - (b->data + w->seen));
		const cJSON *res = cJSON_GetObjectItemCaseSensitive(m,
								"result");

		w->seen = nl + 1 - b->data;
		if (!res || cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
				    res, "events")) > 0 ||
		    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res,
							"canceled")) ||
		    cJSON_GetObjectItemCaseSensitive(res, "compact_revision"))
			w->fired = true;
		cJSON_Delete(m);
		if (w->fired)
			return 1;
	}
	return 0;
}

/* Block until a node key changes at a revision >= from, or timeout. */
static int etcd_watch(struct coord *co, uint64_t from, int timeout_ms)
{
	int64_t deadline = coord_now_ms() + timeout_ms, left;
	char key[ETCD_KEY_MAX], end[ETCD_KEY_MAX], rev[24];
	int idx = __atomic_load_n(&co->cur, __ATOMIC_RELAXED), tries = 0;
	struct coord_buf b = { 0 };
	struct watch_state w;
	cJSON *req, *cr;
	char *txt;
	long st;
	int r = -ETIMEDOUT;

	key_nodes(co, key, sizeof(key));
	snprintf(end, sizeof(end), "%s", key);
	prefix_end(end);
	snprintf(rev, sizeof(rev), "%llu", (unsigned long long)from);
	req = cJSON_CreateObject();
	cr = cJSON_AddObjectToObject(req, "create_request");
	if (!cr || add_b64(cr, "key", key) || add_b64(cr, "range_end", end) ||
	    !cJSON_AddStringToObject(cr, "start_revision", rev)) {
		cJSON_Delete(req);
		return -ENOMEM;
	}
	txt = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (!txt)
		return -ENOMEM;
	while ((left = deadline - coord_now_ms()) > 0) {
		memset(&w, 0, sizeof(w));
		b.stream = watch_line;
		b.arg = &w;
		r = coord_http_once(co, idx, "POST", "/v3/watch", txt,
				    (int)left, &st, &b, PM_LOG_DEBUG);
		coord_buf_free(&b);
		if (!r && w.fired)
			break;
		if (r == -ETIMEDOUT && deadline - coord_now_ms() <= 0)
			break;
		/* The stream ended or this member is gone: next URL. */
		pm_warn("etcd %s/v3/watch: %s (HTTP status %ld); trying %s",
			co->urls[idx], r ? strerror(-r) : "stream ended", st,
			co->n_urls > 1 ? "the next URL" : "again");
		r = -EIO;
		idx = (idx + 1) % co->n_urls;
		/* Other calls need not find the broken member again. */
		__atomic_store_n(&co->cur, idx, __ATOMIC_RELAXED);
		if (++tries % co->n_urls == 0) {
			struct timespec ts = { 0, 100 * 1000000L };

			nanosleep(&ts, NULL);
		}
	}
	free(txt);
	return r;
}

int coord_etcd_members(struct coord *co, uint64_t after, int timeout_ms,
		       struct coord_member *out, int max, int *n,
		       uint64_t *version)
{
	int64_t deadline = coord_now_ms() + timeout_ms, left;
	int r;

	for (;;) {
		r = etcd_range(co, out, max, n, version);
		if (r && r != -E2BIG)
			return r;
		if (*version > after)
			return r;
		left = deadline - coord_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		r = etcd_watch(co, after + 1, (int)left);
		if (r && r != -ETIMEDOUT)
			return r;
	}
}
