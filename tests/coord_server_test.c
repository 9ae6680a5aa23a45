// SPDX-License-Identifier: MIT
/* The embedded coordinator as a real process (`pagemesh coordinator`) on
 * loopback: every status code of its API, then the client library against
 * it: register, discover, heartbeat expiry, long-poll wake-up, failover and
 * re-registration after a coordinator restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <pthread.h>

#include "coord.h"
#include "coord_srv.h"
#include "coord_util.h"
#include "log.h"

/* Generous, so that heartbeats do not miss it on a loaded 2-core box. */
#define TTL_MS 1500

struct coordproc {
	pid_t pid;
	int port;
	char url[64];
	char log[64];
};

static struct coordproc srv;

/* Start `pagemesh coordinator` (with a cluster key when keyfile is set). */
static int start_coordinator_on(struct coordproc *cp, int port,
				const char *keyfile)
{
	char bin[512], listen[64], ttl[16], line[256];
	char *argv[] = { bin, "coordinator", "--listen", listen, "--ttl-ms",
			 ttl, keyfile ? "--key-file" : NULL, (char *)keyfile,
			 NULL };
	int fd = -1, r, p;

	snprintf(bin, sizeof(bin), "%s/pagemesh", tu_build());
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(ttl, sizeof(ttl), "%d", TTL_MS);
	snprintf(cp->log, sizeof(cp->log), "/tmp/pm-coord-srv-%d-%s.log",
		 (int)getpid(), keyfile ? "key" : "open");
	cp->pid = tu_spawn(argv, &fd, cp->log);
	if (cp->pid < 0)
		return -1;
	/* It prints its address once it serves: no guessing when. */
	r = tu_read_line(fd, line, sizeof(line), 10000);
	close(fd);
	if (r || sscanf(line, "listening on http://127.0.0.1:%d", &p) != 1) {
		fprintf(stderr, "coordinator did not start (line '%s'), log %s\n",
			r ? "" : line, cp->log);
		tu_stop(cp->pid, SIGKILL, 1000);
		cp->pid = 0;
		return -1;
	}
	cp->port = p;
	snprintf(cp->url, sizeof(cp->url), "http://127.0.0.1:%d", p);
	return 0;
}

/* Stop it and require a clean exit: under ASan a leak makes it nonzero. */
static int stop_coordinator_on(struct coordproc *cp)
{
	int st = tu_stop(cp->pid, SIGTERM, 10000);

	cp->pid = 0;
	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "coordinator exit status %d (log %s)\n", st,
			cp->log);
		return -1;
	}
	unlink(cp->log);
	return 0;
}

static int start_coordinator(int port)
{
	return start_coordinator_on(&srv, port, NULL);
}

static int stop_coordinator(void)
{
	return stop_coordinator_on(&srv);
}

static int group_setup(void **state)
{
	(void)state;
	pm_log_default.level = PM_LOG_WARN;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return start_coordinator(0);
}

static int group_teardown(void **state)
{
	int r = srv.pid ? stop_coordinator() : 0;

	(void)state;
	tu_cleanup_files();
	curl_global_cleanup();
	return r;
}

static void req(const char *method, const char *path, const char *body,
		struct tu_resp *r)
{
	char url[512];

	snprintf(url, sizeof(url), "%s%s", srv.url, path);
	assert_int_equal(tu_http(method, url, body, body ? strlen(body) : 0,
				 0, r),
			 CURLE_OK);
}

static cJSON *json_of(const struct tu_resp *r)
{
	cJSON *o = cJSON_Parse(r->body);

	if (!o)
		fail_msg("not JSON: %s", r->body);
	return o;
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(v))
		fail_msg("no number \"%s\"", key);
	return v->valuedouble;
}

/* ---- the HTTP API, status by status -------------------------------------- */

static void test_clusters(void **state)
{
	struct tu_resp r;
	cJSON *o;

	(void)state;
	req("POST", "/clusters",
	    "{\"name\":\"api\",\"nodes\":3,\"memory_mb\":64}", &r);
	assert_int_equal(r.status, 201);
	o = json_of(&r);
	assert_string_equal(cJSON_GetObjectItem(o, "name")->valuestring,
			    "api");
	assert_int_equal(num(o, "nodes"), 3);
	assert_int_equal(num(o, "memory_mb"), 64);
	assert_int_equal(num(o, "ttl_ms"), TTL_MS);
	cJSON_Delete(o);

	/* Same shape again: fine; another shape: conflict. */
	req("POST", "/clusters",
	    "{\"name\":\"api\",\"nodes\":3,\"memory_mb\":64}", &r);
	assert_int_equal(r.status, 200);
	req("POST", "/clusters",
	    "{\"name\":\"api\",\"nodes\":4,\"memory_mb\":64}", &r);
	assert_int_equal(r.status, 409);

	req("GET", "/clusters/api", NULL, &r);
	assert_int_equal(r.status, 200);
	o = json_of(&r);
	assert_int_equal(num(o, "nodes"), 3);
	cJSON_Delete(o);
	req("GET", "/clusters/nosuch", NULL, &r);
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.body, "nosuch"));

	req("POST", "/clusters", "{\"name\":\"x\",\"nodes\":0,"
	    "\"memory_mb\":1}", &r);
	assert_int_equal(r.status, 400);
	assert_non_null(strstr(r.body, "nodes"));
	req("POST", "/clusters", "{\"nodes\":2,\"memory_mb\":1}", &r);
	assert_int_equal(r.status, 400);
	req("POST", "/clusters", "[1,2]", &r);
	assert_int_equal(r.status, 400);
}

static void test_malformed_json(void **state)
{
	static const char *const bad[] = {
		"{\"name\":\"x\",,\"nodes\":2}",
		"{\"name\":\"x\", \"nodes\": 2",
		"{\"transport_type\":\"tcp\" \"tcp_port\":1}",
		"nonsense",
	};
	const char *paths[] = { "/clusters", "/clusters", "/nodes/0/endpoint",
				"/nodes/0/endpoint" };
	struct tu_resp r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *end = NULL;
		cJSON *o;

		/* Where cJSON itself stops on this text is the expected
		 * offset. */
		assert_null(cJSON_ParseWithLengthOpts(bad[i], strlen(bad[i]),
						      &end, 0));
		assert_non_null(end);
		req("POST", paths[i], bad[i], &r);
		assert_int_equal(r.status, 400);
		o = json_of(&r);
		assert_int_equal(num(o, "offset"), end - bad[i]);
		assert_non_null(strstr(cJSON_GetObjectItem(o,
						"error")->valuestring,
				       "offset"));
		cJSON_Delete(o);
	}
	req("POST", "/clusters", NULL, &r);
	assert_int_equal(r.status, 400);
}

/* Input that parses but must not be taken: a NUL inside a string (cJSON
 * would end the name there), a key given twice, a node id in another
 * spelling, an endpoint or address a shell or a log would misread. */
static void test_refused_input(void **state)
{
	static const struct {
		const char *path, *body;
		int status;
	} bad[] = {
		{ "/clusters", "{\"name\":\"c\\u0000x\",\"nodes\":2,\"memory_mb\":4}", 400 },
		{ "/clusters", "{\"name\":\"r1\",\"name\":\"r2\",\"nodes\":2,\"memory_mb\":4}", 400 },
		{ "/nodes/+1/endpoint?cluster=refuse", "{\"transport_type\":\"tcp\",\"tcp_addr\":\"127.0.0.1\",\"tcp_port\":5}", 404 },
		{ "/nodes/01/endpoint?cluster=refuse", "{\"transport_type\":\"tcp\",\"tcp_addr\":\"127.0.0.1\",\"tcp_port\":5}", 404 },
		{ "/nodes/1/endpoint?cluster=refuse", "{\"transport_type\":\"tcp\",\"endpoint\":\"$(reboot)\"}", 400 },
		{ "/nodes/1/endpoint?cluster=refuse", "{\"transport_type\":\"tcp\",\"tcp_addr\":\"a;b\",\"tcp_port\":5}", 400 },
		{ "/nodes/1/endpoint?cluster=refuse", "{\"transport_type\":\"tcp\",\"tcp_addr\":\"127.0.0.1\",\"tcp_port\":5,\"x\":{\"k\":1,\"k\":2}}", 400 },
	};
	struct tu_resp r;
	size_t i;

	(void)state;
	req("POST", "/clusters", "{\"name\":\"refuse\",\"nodes\":2,\"memory_mb\":4}", &r);
	assert_int_equal(r.status, 201);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		req("POST", bad[i].path, bad[i].body, &r);
		if (r.status != bad[i].status)
			fail_msg("POST %s %s: %d %s, want %d", bad[i].path,
				 bad[i].body, r.status, r.body, bad[i].status);
	}
	/* Nothing of it was taken. */
	req("GET", "/clusters/c", NULL, &r);
	assert_int_equal(r.status, 404);
	req("GET", "/endpoints?cluster=refuse", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_null(strstr(r.body, "reboot"));
	assert_null(strstr(r.body, "\"1\""));
	/* What is allowed still is: a scoped IPv6 address, a socket path. */
	req("POST", "/nodes/1/endpoint?cluster=refuse",
	    "{\"transport_type\":\"tcp\",\"tcp_addr\":\"fe80::1%lo\",\"tcp_port\":5,\"incarnation\":\"a1\"}", &r);
	assert_int_equal(r.status, 201);
	req("POST", "/nodes/0/endpoint?cluster=refuse",
	    "{\"transport_type\":\"unix\",\"endpoint\":\"/run/pagemesh/0.sock\",\"incarnation\":\"a0\"}", &r);
	assert_int_equal(r.status, 201);
}

/* The operational endpoints, unsigned like every read. */
static void test_probes(void **state)
{
	struct tu_resp r;

	(void)state;
	req("GET", "/healthz", NULL, &r);
	assert_int_equal(r.status, 200);
	req("GET", "/readyz", NULL, &r);
	assert_int_equal(r.status, 200);
	req("POST", "/clusters", "{\"name\":\"probed\",\"nodes\":3,\"memory_mb\":4}", &r);
	assert_true(r.status == 201 || r.status == 200);
	req("POST", "/nodes/2/endpoint?cluster=probed",
	    "{\"transport_type\":\"tcp\",\"tcp_addr\":\"127.0.0.1\",\"tcp_port\":9,\"incarnation\":\"b2\"}", &r);
	assert_int_equal(r.status, 201);
	req("GET", "/metrics", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strcasestr(r.headers, "Content-Type: text/plain"));
	assert_non_null(strstr(r.body, "# TYPE pagemesh_coordinator_live_nodes gauge\n"));
	assert_non_null(strstr(r.body, "pagemesh_coordinator_live_nodes{cluster=\"probed\"} 1\n"));
	assert_non_null(strstr(r.body, "pagemesh_coordinator_cluster_nodes{cluster=\"probed\"} 3\n"));
	req("POST", "/healthz", "{}", &r);
	assert_int_equal(r.status, 405);
}

static void test_oversize(void **state)
{
	size_t n = COORD_BODY_MAX + 4096;
	char *big = malloc(n + 1);
	char url[128];
	struct tu_resp *r = malloc(sizeof(*r));

	(void)state;
	assert_non_null(big);
	assert_non_null(r);
	/* Valid JSON, just too long: only the size can be the reason. */
	big[0] = '"';
	memset(big + 1, 'a', n - 2);
	big[n - 1] = '"';
	big[n] = '\0';
	snprintf(url, sizeof(url), "%s/clusters", srv.url);
	assert_int_equal(tu_http("POST", url, big, n, 0, r), CURLE_OK);
	assert_int_equal(r->status, 413);
	/* Without Content-Length the server finds out while reading. */
	assert_int_equal(tu_http("POST", url, big, n, 1, r), CURLE_OK);
	assert_int_equal(r->status, 413);
	free(big);
	free(r);
}

static void test_method_not_allowed(void **state)
{
	static const struct {
		const char *method, *path, *allow;
	} cases[] = {
		{ "GET", "/clusters", "POST" },
		{ "DELETE", "/clusters/api", "GET" },
		{ "POST", "/endpoints", "GET" },
		{ "GET", "/nodes/0/heartbeat", "POST" },
		{ "PUT", "/nodes/0/endpoint", "POST" },
		{ "GET", "/nodes/0", "DELETE" },
	};
	struct tu_resp r;
	char want[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		req(cases[i].method, cases[i].path, NULL, &r);
		assert_int_equal(r.status, 405);
		snprintf(want, sizeof(want), "Allow: %s", cases[i].allow);
		if (!strcasestr(r.headers, want))
			fail_msg("%s %s: no '%s' in %s", cases[i].method,
				 cases[i].path, want, r.headers);
	}
}

static void test_not_found(void **state)
{
	struct tu_resp r;

	(void)state;
	req("GET", "/nope", NULL, &r);
	assert_int_equal(r.status, 404);
	req("POST", "/nodes/1/heartbeat?cluster=api", NULL, &r);
	assert_int_equal(r.status, 404);	/* never registered */
	req("POST", "/nodes/77/heartbeat?cluster=api", NULL, &r);
	assert_int_equal(r.status, 404);	/* beyond nodes */
	req("POST", "/nodes/abc/endpoint",
	    "{\"transport_type\":\"tcp\",\"endpoint\":\"h:1\"}", &r);
	assert_int_equal(r.status, 404);
	req("POST", "/nodes/0/endpoint?cluster=nosuch",
	    "{\"transport_type\":\"tcp\",\"endpoint\":\"h:1\"}", &r);
	assert_int_equal(r.status, 404);
	req("GET", "/endpoints?cluster=nosuch", NULL, &r);
	assert_int_equal(r.status, 404);
	req("GET", "/endpoints?wait=abc", NULL, &r);
	assert_int_equal(r.status, 400);
	req("POST", "/nodes/0/endpoint?cluster=api",
	    "{\"transport_type\":\"tcp\",\"tcp_addr\":\"1.2.3.4\"}", &r);
	assert_int_equal(r.status, 400);	/* port missing */
	req("POST", "/nodes/0/endpoint?cluster=api",
	    "{\"transport_type\":\"rdma\",\"endpoint\":\"x\","
	    "\"rdma_gid\":\"zz\",\"rdma_qpn\":1,\"rdma_lid\":1,"
	    "\"rdma_psn\":1}", &r);
	assert_int_equal(r.status, 400);	/* gid not hex */
}

/* After all the bad input above, the service still answers properly. */
static void test_still_serving(void **state)
{
	struct tu_resp r;
	cJSON *o, *eps, *n0, *ts;

	(void)state;
	req("POST", "/nodes/2/endpoint",
	    "{\"cluster\":\"api\",\"transport_type\":\"tcp\","
	    "\"tcp_addr\":\"127.0.0.1\",\"tcp_port\":7701}", &r);
	assert_int_equal(r.status, 201);
	req("POST", "/nodes/2/endpoint?cluster=api",
	    "{\"transport_type\":\"rdma\",\"endpoint\":\"qp\","
	    "\"rdma_qpn\":17,\"rdma_lid\":3,"
	    "\"rdma_gid\":\"fe800000000000000000000000000001\","
	    "\"rdma_psn\":99}", &r);
	assert_int_equal(r.status, 201);
	req("POST", "/nodes/2/heartbeat?cluster=api", NULL, &r);
	assert_int_equal(r.status, 200);
	req("GET", "/endpoints?cluster=api", NULL, &r);
	assert_int_equal(r.status, 200);
	o = json_of(&r);
	eps = cJSON_GetObjectItem(o, "endpoints");
	n0 = cJSON_GetObjectItem(eps, "2");
	assert_non_null(n0);
	assert_string_equal(cJSON_GetObjectItem(n0, "transport_type")
				    ->valuestring, "tcp");
	assert_string_equal(cJSON_GetObjectItem(n0, "tcp_addr")->valuestring,
			    "127.0.0.1");
	assert_int_equal(num(n0, "tcp_port"), 7701);
	/* The raw string the tcp plugin dials. */
	assert_string_equal(cJSON_GetObjectItem(n0, "endpoint")->valuestring,
			    "127.0.0.1:7701");
	ts = cJSON_GetObjectItem(n0, "transports");
	assert_int_equal(cJSON_GetArraySize(ts), 2);
	assert_int_equal(num(cJSON_GetArrayItem(ts, 1), "rdma_qpn"), 17);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(ts, 1),
						"rdma_gid")->valuestring,
			    "fe800000000000000000000000000001");
	assert_true(num(o, "version") > 1);
	cJSON_Delete(o);
	/* Leave: the node is gone at once. */
	req("DELETE", "/nodes/2?cluster=api", NULL, &r);
	assert_int_equal(r.status, 200);
	req("GET", "/endpoints?cluster=api", NULL, &r);
	o = json_of(&r);
	assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "endpoints"),
					"2"));
	cJSON_Delete(o);
}

/* ---- the client library -------------------------------------------------- */

struct client {
	char cfgpath[64];
	struct cfg cfg;
	struct coord *co;
};

static int client_open_key(struct client *cl, int id, const char *cluster,
			   const char *const *urls, int n_urls,
			   const char *keyfile)
{
	char err[512], extra[256] = "";
	int r;

	if (keyfile)
		snprintf(extra, sizeof(extra),
			 "security = { key_file = \"%s\"; };\n", keyfile);
	assert_int_equal(tu_node_config(cl->cfgpath, sizeof(cl->cfgpath), id,
					4, cluster, "embedded", urls, n_urls,
					TTL_MS, extra),
			 0);
	if (cfg_load(cl->cfgpath, &cl->cfg, err, sizeof(err)))
		fail_msg("cfg_load: %s", err);
	r = coord_open(&cl->cfg, &cl->co);
	if (r) {
		cfg_free(&cl->cfg);
		unlink(cl->cfgpath);
	}
	return r;
}

static void client_open(struct client *cl, int id, const char *cluster,
			const char *const *urls, int n_urls)
{
	assert_int_equal(client_open_key(cl, id, cluster, urls, n_urls, NULL),
			 0);
}

static void client_register(struct client *cl, int id)
{
	struct coord_member m = { .node_id = id, .n_eps = 2 };

	snprintf(m.eps[0].transport, sizeof(m.eps[0].transport), "tcp");
	snprintf(m.eps[0].endpoint, sizeof(m.eps[0].endpoint),
		 "127.0.0.1:%d", 9000 + id);
	snprintf(m.eps[1].transport, sizeof(m.eps[1].transport),
		 "io_uring-tcp");
	snprintf(m.eps[1].endpoint, sizeof(m.eps[1].endpoint),
		 "127.0.0.1:%d", 9100 + id);
	assert_int_equal(coord_register(cl->co, &m), 0);
}

static void client_close(struct client *cl)
{
	coord_close(cl->co);
	cfg_free(&cl->cfg);
	unlink(cl->cfgpath);
}

static const struct coord_member *find(const struct coord_member *m, int n,
				       int id)
{
	int i;

	for (i = 0; i < n; i++)
		if (m[i].node_id == id)
			return &m[i];
	return NULL;
}

static void test_register_discover(void **state)
{
	const char *urls[] = { srv.url };
	struct coord_member m[CFG_MAX_NODES];
	struct client a, b;
	const struct coord_member *p;
	uint64_t v;
	int n;

	(void)state;
	client_open(&a, 0, "disc", urls, 1);
	client_open(&b, 1, "disc", urls, 1);
	assert_int_equal(coord_ttl_ms(a.co), TTL_MS);
	client_register(&a, 0);
	client_register(&b, 1);
	assert_int_equal(coord_members(a.co, 0, 1000, m, CFG_MAX_NODES, &n,
				       &v), 0);
	assert_int_equal(n, 2);
	assert_true(v > 0);
	assert_int_equal(m[0].node_id, 0);
	assert_int_equal(m[1].node_id, 1);
	p = find(m, n, 1);
	assert_int_equal(p->n_eps, 2);
	assert_string_equal(p->eps[0].transport, "tcp");
	assert_string_equal(p->eps[0].endpoint, "127.0.0.1:9001");
	assert_string_equal(p->eps[1].transport, "io_uring-tcp");
	assert_string_equal(p->eps[1].endpoint, "127.0.0.1:9101");
	/* What start-up does with them: wait for all, file them as peers
	 * (only transports in this node's order: tcp here). */
	assert_int_equal(coord_wait_members(b.co, 2, 2000, m, CFG_MAX_NODES,
					    &n, &v), 0);
	assert_int_equal(coord_fill_peers(&b.cfg, m, n), 1);
	assert_int_equal(b.cfg.n_peers, 1);
	assert_int_equal(b.cfg.peers[0].id, 0);
	assert_string_equal(b.cfg.peers[0].endpoint[cfg_transport_index(
						&b.cfg, "tcp")],
			    "127.0.0.1:9000");
	assert_int_equal(coord_wait_members(b.co, 3, 300, m, CFG_MAX_NODES,
					    &n, &v), -ETIMEDOUT);
	assert_int_equal(n, 2);
	/* Too small a buffer says so. */
	assert_int_equal(coord_members(a.co, 0, 1000, m, 1, &n, &v), -E2BIG);
	assert_int_equal(n, 1);

	/* Heartbeats carry both past several TTLs: nothing changes. */
	assert_int_equal(coord_members(a.co, v, 3 * TTL_MS, m, CFG_MAX_NODES,
				       &n, &v),
			 -ETIMEDOUT);
	assert_int_equal(n, 2);

	/* A clean close removes the node and moves the version. */
	client_close(&b);
	assert_int_equal(coord_members(a.co, v, 5000, m, CFG_MAX_NODES, &n,
				       &v), 0);
	assert_int_equal(n, 1);
	assert_int_equal(m[0].node_id, 0);
	client_close(&a);
}

static void test_heartbeat_expiry(void **state)
{
	const char *urls[] = { srv.url };
	struct coord_member m[CFG_MAX_NODES];
	long long t0;
	struct client a;
	struct tu_resp r;
	uint64_t v;
	int n;

	(void)state;
	client_open(&a, 0, "exp", urls, 1);
	client_register(&a, 0);
	/* Node 3 registers by hand and never beats again. (t0 before the
	 * request: the server's clock for node 3 starts after it.) */
	t0 = tu_now_ms();
	req("POST", "/nodes/3/endpoint?cluster=exp",
	    "{\"transport_type\":\"tcp\",\"endpoint\":\"127.0.0.1:9\"}", &r);
	assert_int_equal(r.status, 201);
	assert_int_equal(coord_members(a.co, 0, 1000, m, CFG_MAX_NODES, &n,
				       &v), 0);
	assert_int_equal(n, 2);
	/* Wait for the version to move: node 3 must drop out, and not before
	 * its TTL is up. */
	while (n == 2 && tu_now_ms() - t0 < 10 * TTL_MS)
		if (coord_members(a.co, v, 10 * TTL_MS, m, CFG_MAX_NODES, &n,
				  &v) == -ETIMEDOUT)
			break;
	assert_int_equal(n, 1);
	assert_int_equal(m[0].node_id, 0);
	assert_true(tu_now_ms() - t0 >= TTL_MS);
	req("POST", "/nodes/3/heartbeat?cluster=exp", NULL, &r);
	assert_int_equal(r.status, 404);
	client_close(&a);
}

struct waiter {
	struct coord *co;
	uint64_t after, version;
	int r, n;
	struct coord_member m[CFG_MAX_NODES];
};

static void *wait_main(void *arg)
{
	struct waiter *w = arg;

	w->r = coord_members(w->co, w->after, 8000, w->m, CFG_MAX_NODES,
			     &w->n, &w->version);
	return NULL;
}

static void test_wait_wakes(void **state)
{
	const char *urls[] = { srv.url };
	struct coord_member m[CFG_MAX_NODES];
	struct waiter w = { 0 };
	struct client a, b;
	pthread_t t;
	uint64_t v;
	int n;

	(void)state;
	client_open(&a, 0, "wake", urls, 1);
	client_open(&b, 2, "wake", urls, 1);
	client_register(&a, 0);
	assert_int_equal(coord_members(a.co, 0, 1000, m, CFG_MAX_NODES, &n,
				       &v), 0);
	w.co = a.co;
	w.after = v;
	assert_int_equal(pthread_create(&t, NULL, wait_main, &w), 0);
	/* Whether the waiter is already parked or not, it must see this. */
	client_register(&b, 2);
	pthread_join(t, NULL);
	assert_int_equal(w.r, 0);
	assert_true(w.version > v);
	assert_int_equal(w.n, 2);
	assert_non_null(find(w.m, w.n, 2));
	client_close(&b);
	client_close(&a);
}

/* First URL dead, coordinator restarted under the client: the client
 * fails over and its heartbeat thread registers the node again. */
static void test_failover_and_restart(void **state)
{
	char dead[64];
	const char *urls[] = { dead, srv.url };
	struct coord_member m[CFG_MAX_NODES];
	struct client a;
	struct tu_resp resp;
	uint64_t v, v_old;
	int n, r, port = srv.port;

	(void)state;
	snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", tu_free_port());
	client_open(&a, 1, "fo", urls, 2);
	client_register(&a, 1);
	assert_int_equal(coord_members(a.co, 0, 1000, m, CFG_MAX_NODES, &n,
				       &v), 0);
	assert_int_equal(n, 1);
	v_old = v;

	assert_int_equal(stop_coordinator(), 0);
	assert_int_equal(start_coordinator(port), 0);
	/* The new coordinator starts empty. Another node would create the
	 * cluster (as here, or the client's heartbeat thread does it first:
	 * then this is a 200); the heartbeat thread must put node 1 back. */
	req("POST", "/clusters", "{\"name\":\"fo\",\"nodes\":4,"
	    "\"memory_mb\":64}", &resp);
	assert_true(resp.status == 201 || resp.status == 200);
	/* Versions of the new coordinator are past all of the old one's, so
	 * a client waiting with an old version sees the new state at once. */
	r = coord_members(a.co, v_old, 5000, m, CFG_MAX_NODES, &n, &v);
	assert_int_equal(r, 0);
	assert_true(v > v_old);
	if (n == 0)
		r = coord_members(a.co, v, 10000, m, CFG_MAX_NODES, &n, &v);
	assert_int_equal(r, 0);
	assert_int_equal(n, 1);
	assert_int_equal(m[0].node_id, 1);
	assert_string_equal(m[0].eps[0].endpoint, "127.0.0.1:9001");
	client_close(&a);
}

/* A key file of n bytes of the given value; its path into out. */
static void write_key(char *out, size_t len, int byte, size_t n)
{
	char tmpl[] = "/tmp/pm-coord-key-XXXXXX";
	unsigned char k[64];
	int fd = mkstemp(tmpl);

	assert_true(fd >= 0 && n <= sizeof(k));
	tu_track_file(tmpl);
	memset(k, byte, n);
	assert_int_equal(write(fd, k, n), (ssize_t)n);
	close(fd);
	snprintf(out, len, "%s", tmpl);
}

/* A fresh nonce, as a client makes one for each request. */
static void fresh_nonce(char out[AUTH_REQ_NONCE_HEX + 1])
{
	assert_int_equal(auth_random_hex(out, AUTH_REQ_NONCE_LEN), 0);
}

/*
 * The X-Pagemesh-Auth value a client with keyfile's key sends for method
 * path (CLUSTER is its ?cluster=) and body, at ts with nonce.
 */
static void sign_req(const char *keyfile, int64_t ts, const char *nonce,
		     const char *method, const char *path, const char *body,
		     char *out, size_t len)
{
	unsigned char key[AUTH_KEY_MAX + 1];
	char hex[AUTH_REQ_MAC_HEX + 1], p[256], err[256];
	const char *cluster = "";
	char *q;
	size_t kl;

	assert_int_equal(auth_load_key(keyfile, key, &kl, err, sizeof(err)),
			 0);
	snprintf(p, sizeof(p), "%s", path);
	q = strchr(p, '?');
	if (q) {
		*q++ = '\0';
		if (!strncmp(q, "cluster=", 8))
			cluster = q + 8;
	}
	assert_int_equal(auth_request_mac(key, kl, ts, nonce, method, p,
					  cluster, body, strlen(body), hex),
			 0);
	snprintf(out, len, "%lld:%s:%s", (long long)ts, nonce, hex);
}

/* One request with X-Pagemesh-Auth: auth (NULL: none sent). Its status;
 * the answer's body in r (NULL: dropped). */
static long auth_req(const struct coordproc *cp, const char *method,
		     const char *path, const char *body, const char *auth,
		     struct tu_resp *r)
{
	char hdr[512], url[256];
	struct curl_slist *h = NULL;
	struct tu_resp *own = r ? NULL : malloc(sizeof(*own));
	long st = 0;
	CURL *c;

	if (!r)
		r = own;
	assert_non_null(r);
	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "%s%s", cp->url, path);
	c = curl_easy_init();
	if (auth) {
		snprintf(hdr, sizeof(hdr), COORD_AUTH_HEADER ": %s", auth);
		h = curl_slist_append(h, hdr);
	}
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "GET")) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE,
				 (long)strlen(body));
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tu_body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	r->status = st;
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	free(own);
	return st;
}

/* A signed POST made by hand: ts and the body signed chosen by the test. */
static long signed_post(const struct coordproc *cp, const char *keyfile,
			const char *path, const char *body, int64_t ts,
			const char *signed_body)
{
	char nonce[AUTH_REQ_NONCE_HEX + 1], auth[256];

	fresh_nonce(nonce);
	sign_req(keyfile, ts, nonce, "POST", path, signed_body, auth,
		 sizeof(auth));
	return auth_req(cp, "POST", path, body, auth, NULL);
}

/* With a cluster key, writes must be signed with it; reads stay open. */
static void test_cluster_key(void **state)
{
	static const char body[] = "{\"name\":\"k\",\"nodes\":4,"
				   "\"memory_mb\":64}";
	char key[64], other[64], url[128];
	struct coord_member m[CFG_MAX_NODES];
	struct coordproc kp = { 0 };
	const char *urls[1] = { kp.url };
	struct tu_resp *r = malloc(sizeof(*r));
	struct client a, bad;
	uint64_t v;
	int n;

	(void)state;
	assert_non_null(r);
	write_key(key, sizeof(key), 0x5a, 32);
	write_key(other, sizeof(other), 0x33, 32);
	assert_int_equal(start_coordinator_on(&kp, 0, key), 0);

	snprintf(url, sizeof(url), "%s/clusters", kp.url);
	assert_int_equal(tu_http("POST", url, body, strlen(body), 0, r), 0);
	assert_int_equal(r->status, 401);
	snprintf(url, sizeof(url), "%s/endpoints", kp.url);
	assert_int_equal(tu_http("GET", url, NULL, 0, 0, r), 0);
	assert_int_equal(r->status, 200);
	/* Right key, but a minute old; right key, other body; then good. */
	assert_int_equal(signed_post(&kp, key, "/clusters", body,
				     auth_wall_ms() - 60000, body), 401);
	assert_int_equal(signed_post(&kp, key, "/clusters", body,
				     auth_wall_ms(), "{}"), 401);
	assert_int_equal(signed_post(&kp, other, "/clusters", body,
				     auth_wall_ms(), body), 401);
	assert_int_equal(signed_post(&kp, key, "/clusters", body,
				     auth_wall_ms(), body), 201);

	pm_log_default.level = -1;	/* the refusal below is expected */
	assert_int_equal(client_open_key(&bad, 0, "k", urls, 1, other),
			 -EACCES);
	pm_log_default.level = PM_LOG_WARN;
	assert_int_equal(client_open_key(&a, 0, "k", urls, 1, key), 0);
	client_register(&a, 0);
	assert_int_equal(coord_members(a.co, 0, 2000, m, CFG_MAX_NODES, &n,
				       &v), 0);
	assert_int_equal(n, 1);
	/* Heartbeats are signed too: still there after several TTLs. */
	assert_int_equal(coord_members(a.co, v, 3 * TTL_MS, m, CFG_MAX_NODES,
				       &n, &v),
			 -ETIMEDOUT);
	assert_int_equal(n, 1);
	client_close(&a);
	assert_int_equal(stop_coordinator_on(&kp), 0);
	free(r);
}

/* Node id's first endpoint in cluster at cp ("" when not listed). */
static void node_ep(const struct coordproc *cp, const char *cluster, int id,
		    char *out, size_t len)
{
	struct tu_resp *r = malloc(sizeof(*r));
	const cJSON *n, *e;
	char path[128], key[16];
	cJSON *o;

	assert_non_null(r);
	snprintf(path, sizeof(path), "/endpoints?cluster=%s", cluster);
	assert_int_equal(auth_req(cp, "GET", path, "", NULL, r), 200);
	o = json_of(r);
	snprintf(key, sizeof(key), "%d", id);
	n = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "endpoints"), key);
	e = cJSON_GetObjectItem(n, "endpoint");
	snprintf(out, len, "%s", cJSON_IsString(e) ? e->valuestring : "");
	cJSON_Delete(o);
	free(r);
}

/* Membership version of cluster at cp. */
static double cluster_version(const struct coordproc *cp, const char *name)
{
	struct tu_resp *r = malloc(sizeof(*r));
	char path[128];
	double v;
	cJSON *o;

	assert_non_null(r);
	snprintf(path, sizeof(path), "/clusters/%s", name);
	assert_int_equal(auth_req(cp, "GET", path, "", NULL, r), 200);
	o = json_of(r);
	v = num(o, "version");
	cJSON_Delete(o);
	free(r);
	return v;
}

/* Does the file at path contain s? */
static bool file_has(const char *path, const char *s)
{
	static char buf[1 << 20];
	size_t n;
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, s) != NULL;
}

/*
 * A captured signed request, sent again inside its window, is refused
 * (the nonce was taken) and changes nothing: neither a leave replayed
 * after the node came back, nor an old registration that would move its
 * endpoint back. A new request with the same content but its own nonce
 * goes through.
 */
static void test_replay_refused(void **state)
{
	static const char cluster[] = "{\"name\":\"rp\",\"nodes\":4,"
				      "\"memory_mb\":64}";
	static const char inc[] = "0123456789abcdef0123456789abcdef";
	char key[64], nonce[AUTH_REQ_NONCE_HEX + 1], ep[PM_ENDPOINT_MAX];
	char reg_old[256], reg_new[256], del[128];
	char a_reg[256], a_del[256], a[256];
	struct tu_resp *r = malloc(sizeof(*r));
	struct coordproc kp = { 0 };
	double v;

	(void)state;
	assert_non_null(r);
	write_key(key, sizeof(key), 0x6b, 32);
	assert_int_equal(start_coordinator_on(&kp, 0, key), 0);
	assert_int_equal(signed_post(&kp, key, "/clusters", cluster,
				     auth_wall_ms(), cluster), 201);
	snprintf(reg_old, sizeof(reg_old),
		 "{\"transport_type\":\"tcp\",\"endpoint\":\"127.0.0.1:1111\",\"incarnation\":\"%s\"}",
		 inc);
	snprintf(reg_new, sizeof(reg_new),
		 "{\"transport_type\":\"tcp\",\"endpoint\":\"127.0.0.1:2222\",\"incarnation\":\"%s\"}",
		 inc);
	snprintf(del, sizeof(del), "{\"incarnation\":\"%s\"}", inc);

	/* Node 1 registers, leaves, and registers again. */
	fresh_nonce(nonce);
	sign_req(key, auth_wall_ms(), nonce, "POST",
		 "/nodes/1/endpoint?cluster=rp", reg_old, a_reg,
		 sizeof(a_reg));
	assert_int_equal(auth_req(&kp, "POST", "/nodes/1/endpoint?cluster=rp",
				  reg_old, a_reg, r), 201);
	fresh_nonce(nonce);
	sign_req(key, auth_wall_ms(), nonce, "DELETE", "/nodes/1?cluster=rp",
		 del, a_del, sizeof(a_del));
	assert_int_equal(auth_req(&kp, "DELETE", "/nodes/1?cluster=rp", del,
				  a_del, r), 200);
	node_ep(&kp, "rp", 1, ep, sizeof(ep));
	assert_string_equal(ep, "");
	fresh_nonce(nonce);
	sign_req(key, auth_wall_ms(), nonce, "POST",
		 "/nodes/1/endpoint?cluster=rp", reg_new, a, sizeof(a));
	assert_int_equal(auth_req(&kp, "POST", "/nodes/1/endpoint?cluster=rp",
				  reg_new, a, r), 201);
	v = cluster_version(&kp, "rp");

	/* Both captures, replayed: 401, saying why. */
	assert_int_equal(auth_req(&kp, "DELETE", "/nodes/1?cluster=rp", del,
				  a_del, r), 401);
	assert_non_null(strstr(r->body, "replayed"));
	assert_int_equal(auth_req(&kp, "POST", "/nodes/1/endpoint?cluster=rp",
				  reg_old, a_reg, r), 401);
	assert_non_null(strstr(r->body, "replayed"));
	node_ep(&kp, "rp", 1, ep, sizeof(ep));
	assert_string_equal(ep, "127.0.0.1:2222");
	assert_true(cluster_version(&kp, "rp") == v);

	/* The same registration with a nonce of its own is a new request. */
	fresh_nonce(nonce);
	sign_req(key, auth_wall_ms(), nonce, "POST",
		 "/nodes/1/endpoint?cluster=rp", reg_old, a, sizeof(a));
	assert_int_equal(auth_req(&kp, "POST", "/nodes/1/endpoint?cluster=rp",
				  reg_old, a, r), 200);
	node_ep(&kp, "rp", 1, ep, sizeof(ep));
	assert_string_equal(ep, "127.0.0.1:1111");

	/* The coordinator logged the replay with the client's address. */
	assert_true(file_has(kp.log, "replayed request"));
	assert_true(file_has(kp.log, "from 127.0.0.1:"));
	assert_int_equal(stop_coordinator_on(&kp), 0);
	free(r);
}

/*
 * Timestamps are digits and nothing else, within int64: the most negative
 * one (which used to overflow the skew check) and every other malformed
 * header get 401, and the coordinator carries on (under UBSan it would
 * have died). A sign in front of a valid MAC's time is refused too,
 * though strtoll would have read it.
 */
static void test_auth_header_malformed(void **state)
{
	static const char body[] = "{\"name\":\"mf\",\"nodes\":4,"
				   "\"memory_mb\":64}";
	char key[64], nonce[AUTH_REQ_NONCE_HEX + 1], good[256], bad[320];
	char hexmac[AUTH_REQ_MAC_HEX + 1];
	struct tu_resp *r = malloc(sizeof(*r));
	struct coordproc kp = { 0 };
	const char *tail;
	size_t i;
	int64_t ts = auth_wall_ms();
	static const char *const fmts[] = {
		"-9223372036854775808:%s",
		"9223372036854775808:%s",
		"99999999999999999999999:%s",
		"9223372036854775807:%s",
		"-1:%s",
		"+%lld:%s",
		"%lld.0:%s",
		"0x%llx:%s",
		"%lld :%s",
		":%s",
	};

	(void)state;
	assert_non_null(r);
	write_key(key, sizeof(key), 0x4d, 32);
	assert_int_equal(start_coordinator_on(&kp, 0, key), 0);
	fresh_nonce(nonce);
	sign_req(key, ts, nonce, "POST", "/clusters", body, good,
		 sizeof(good));
	tail = strchr(good, ':') + 1;	/* a valid signature's NONCE:MAC */
	for (i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		if (strstr(fmts[i], "%ll"))
			snprintf(bad, sizeof(bad), fmts[i], (long long)ts,
				 tail);
		else
			snprintf(bad, sizeof(bad), fmts[i], tail);
		if (auth_req(&kp, "POST", "/clusters", body, bad, r) != 401)
			fail_msg("header '%s': status %ld, not 401", bad,
				 r->status);
		assert_non_null(strstr(r->body, COORD_AUTH_HEADER));
	}
	/* The old TS:MAC format, and nonces or MACs of the wrong shape. */
	memset(hexmac, 'a', AUTH_REQ_MAC_HEX);
	hexmac[AUTH_REQ_MAC_HEX] = '\0';
	snprintf(bad, sizeof(bad), "%lld:%s", (long long)ts, hexmac);
	assert_int_equal(auth_req(&kp, "POST", "/clusters", body, bad, r),
			 401);
	assert_non_null(strstr(r->body, "old format"));
	snprintf(bad, sizeof(bad), "%lld:%.31s:%s", (long long)ts, nonce,
		 hexmac);
	assert_int_equal(auth_req(&kp, "POST", "/clusters", body, bad, r),
			 401);
	snprintf(bad, sizeof(bad), "%lld:%s:%.63s", (long long)ts, nonce,
		 hexmac);
	assert_int_equal(auth_req(&kp, "POST", "/clusters", body, bad, r),
			 401);
	snprintf(bad, sizeof(bad), "%s", good);
	for (char *c = strchr(bad, ':') + 1; *c != ':'; c++)
		*c = (char)(*c >= 'a' ? *c - 'a' + 'A' : *c);
	assert_int_equal(auth_req(&kp, "POST", "/clusters", body, bad, r),
			 401);
	/* Signed GETs are checked too: a bad one is not taken as unsigned. */
	snprintf(bad, sizeof(bad), "-9223372036854775808:%s", tail);
	assert_int_equal(auth_req(&kp, "GET", "/endpoints", "", bad, r), 401);

	/* Still serving, and the untouched original goes through. */
	assert_int_equal(auth_req(&kp, "POST", "/clusters", body, good, r),
			 201);
	assert_false(file_has(kp.log, "runtime error"));
	assert_int_equal(stop_coordinator_on(&kp), 0);
	free(r);
}

/* ---- a flood of unsigned long-polls -------------------------------------- */

#define FLOOD_CONNS 300
#define FLOOD_RETRY_MS 250

/*
 * FLOOD_CONNS clients that each hold a long-poll open without a signature,
 * and poll again FLOOD_RETRY_MS after each answer (or after the server
 * closed on them): one thread, raw sockets, until stop.
 */
struct flood {
	int port;
	char path[128];
	volatile int stop;
	int busy, other, dropped;	/* 503s, other answers, closes */
	pthread_t t;
};

static int flood_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *flood_main(void *arg)
{
	struct flood *f = arg;
	struct pollfd p[FLOOD_CONNS];
	long long again[FLOOD_CONNS] = { 0 };
	bool sent[FLOOD_CONNS] = { 0 };
	char req[256], buf[512];
	int i, n;

	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", f->path);
	for (i = 0; i < FLOOD_CONNS; i++)
		p[i].fd = -1;
	while (!f->stop) {
		long long now = tu_now_ms();

		for (i = 0; i < FLOOD_CONNS; i++) {
			if (p[i].fd < 0 && now >= again[i]) {
				p[i].fd = flood_connect(f->port);
				sent[i] = false;
				again[i] = now + FLOOD_RETRY_MS;
			}
			p[i].events = p[i].fd < 0 ? 0 :
				      sent[i] ? POLLIN : POLLOUT;
			p[i].revents = 0;
		}
		poll(p, FLOOD_CONNS, 20);
		for (i = 0; i < FLOOD_CONNS; i++) {
			ssize_t got;

			if (p[i].fd < 0 || !p[i].revents)
				continue;
			if (!sent[i] && (p[i].revents & POLLOUT) &&
			    !(p[i].revents & (POLLERR | POLLHUP))) {
				sent[i] = write(p[i].fd, req, n) == n;
				continue;
			}
			got = read(p[i].fd, buf, sizeof(buf) - 1);
			if (got > 12 && !strncmp(buf, "HTTP/1.1 503", 12))
				__atomic_add_fetch(&f->busy, 1,
						   __ATOMIC_RELAXED);
			else if (got > 0)
				__atomic_add_fetch(&f->other, 1,
						   __ATOMIC_RELAXED);
			else if (got < 0 && errno == EAGAIN)
				continue;
			else
				__atomic_add_fetch(&f->dropped, 1,
						   __ATOMIC_RELAXED);
			close(p[i].fd);
			p[i].fd = -1;
			again[i] = tu_now_ms() + FLOOD_RETRY_MS;
		}
	}
	for (i = 0; i < FLOOD_CONNS; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	return NULL;
}

/*
 * Long-polls parked in cluster name at cp, or -1 if it does not answer
 * within 2 s (the flood's address may be at its connection limit: this
 * read is unsigned and from that address).
 */
static int cluster_waiters(const struct coordproc *cp, const char *name)
{
	struct tu_resp *r = malloc(sizeof(*r));
	long long t0 = tu_now_ms();
	char url[128];
	int w = -1;
	cJSON *o;

	assert_non_null(r);
	snprintf(url, sizeof(url), "%s/clusters/%s", cp->url, name);
	do {
		if (!tu_http("GET", url, NULL, 0, 0, r) && r->status == 200) {
			o = json_of(r);
			w = (int)num(o, "waiters");
			cJSON_Delete(o);
			break;
		}
		poll(NULL, 0, 20);
	} while (tu_now_ms() - t0 < 2000);
	free(r);
	return w;
}

/*
 * 300 unsigned long-polls, more than the coordinator has connections,
 * held open and renewed for several TTLs: past COORD_OPEN_POLLS_MAX they
 * get 503 at once, so that signed heartbeats keep the node alive (the
 * membership version does not move: no expiry, no re-registration), a
 * signed long-poll is served, and a new node registers meanwhile.
 */
static void test_longpoll_flood(void **state)
{
	char key[64];
	struct coordproc kp = { 0 };
	const char *urls[1] = { kp.url };
	struct coord_member m[CFG_MAX_NODES];
	struct flood f = { 0 };
	struct client a, b;
	long long t0;
	uint64_t v, v2;
	int n, w;

	(void)state;
	write_key(key, sizeof(key), 0x46, 32);
	assert_int_equal(start_coordinator_on(&kp, 0, key), 0);
	assert_int_equal(client_open_key(&a, 0, "fl", urls, 1, key), 0);
	client_register(&a, 0);
	assert_int_equal(coord_members(a.co, 0, 2000, m, CFG_MAX_NODES, &n,
				       &v), 0);
	assert_int_equal(n, 1);

	f.port = kp.port;
	snprintf(f.path, sizeof(f.path),
		 "/endpoints?cluster=fl&wait=18446744073709551615");
	assert_int_equal(pthread_create(&f.t, NULL, flood_main, &f), 0);
	/* Until the cap is full and the rest are being turned away. */
	t0 = tu_now_ms();
	while (tu_now_ms() - t0 < 10000 &&
	       (__atomic_load_n(&f.busy, __ATOMIC_RELAXED) < FLOOD_CONNS ||
		cluster_waiters(&kp, "fl") < COORD_OPEN_POLLS_MAX))
		poll(NULL, 0, 50);
	assert_true(__atomic_load_n(&f.busy, __ATOMIC_RELAXED) >=
		    FLOOD_CONNS);

	/* Several TTLs of it: the version stays put, a signed long-poll
	 * waits it out instead of being turned away. */
	assert_int_equal(coord_members(a.co, v, 4 * TTL_MS, m, CFG_MAX_NODES,
				       &n, &v2),
			 -ETIMEDOUT);
	assert_int_equal(n, 1);
	assert_true(v2 == v);
	/* A registration gets through too, and then beats. */
	assert_int_equal(client_open_key(&b, 1, "fl", urls, 1, key), 0);
	client_register(&b, 1);
	assert_int_equal(coord_members(a.co, 0, 2000, m, CFG_MAX_NODES, &n,
				       &v), 0);
	assert_int_equal(n, 2);
	assert_int_equal(coord_members(a.co, v, 2 * TTL_MS, m, CFG_MAX_NODES,
				       &n, &v2),
			 -ETIMEDOUT);
	assert_int_equal(n, 2);
	/* The cap is full, and not more than full. */
	w = cluster_waiters(&kp, "fl");
	f.stop = 1;
	pthread_join(f.t, NULL);
	printf("  flood: %d answered 503, %d otherwise, %d closed unanswered; %d parked at the end\n",
	       f.busy, f.other, f.dropped, w);
	assert_int_equal(w, COORD_OPEN_POLLS_MAX);
	client_close(&b);
	client_close(&a);
	assert_int_equal(stop_coordinator_on(&kp), 0);
}

/* ---- node id claims ------------------------------------------------------ */

/*
 * A second claim of a live node id is refused with 409 naming the node,
 * and the first registration stays as it was; its own incarnation may
 * register again and beat. A claim without an incarnation may not change
 * an endpoint either. Once the holder leaves or expires, the id is free.
 */
static void test_duplicate_claim(void **state)
{
	static const char other[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
	const char *urls[] = { srv.url };
	struct coord_member m[CFG_MAX_NODES];
	char ep[PM_ENDPOINT_MAX], body[256];
	struct tu_resp *r = malloc(sizeof(*r));
	struct client a, b;
	long long t0;
	double v;
	int n;
	uint64_t ver;

	(void)state;
	assert_non_null(r);
	client_open(&a, 0, "dup", urls, 1);
	client_register(&a, 0);
	v = cluster_version(&srv, "dup");

	snprintf(body, sizeof(body),
		 "{\"transport_type\":\"tcp\",\"endpoint\":\"127.0.0.1:6666\",\"incarnation\":\"%s\"}",
		 other);
	assert_int_equal(auth_req(&srv, "POST",
				  "/nodes/0/endpoint?cluster=dup", body, NULL,
				  r), 409);
	assert_non_null(strstr(r->body, "node 0 "));
	/* No incarnation at all; a heartbeat and a leave of another one. */
	assert_int_equal(auth_req(&srv, "POST",
				  "/nodes/0/endpoint?cluster=dup",
				  "{\"transport_type\":\"rdma\",\"endpoint\":\"x\"}",
				  NULL, r), 409);
	snprintf(body, sizeof(body), "{\"incarnation\":\"%s\"}", other);
	assert_int_equal(auth_req(&srv, "POST",
				  "/nodes/0/heartbeat?cluster=dup", body, NULL,
				  r), 409);
	assert_int_equal(auth_req(&srv, "DELETE", "/nodes/0?cluster=dup",
				  body, NULL, r), 409);
	assert_int_equal(auth_req(&srv, "POST",
				  "/nodes/0/endpoint?cluster=dup",
				  "{\"transport_type\":\"tcp\",\"endpoint\":\"h:1\",\"incarnation\":\"xyz\"}",
				  NULL, r), 400);
	node_ep(&srv, "dup", 0, ep, sizeof(ep));
	assert_string_equal(ep, "127.0.0.1:9000");
	assert_true(cluster_version(&srv, "dup") == v);

	/* Another process with node id 0, through the library: it waits
	 * out twice the TTL (the holder might be its own crashed run), then
	 * says so; the first is still there. */
	client_open(&b, 0, "dup", urls, 1);
	pm_log_default.level = -1;
	t0 = tu_now_ms();
	{
		struct coord_member me = { .node_id = 0, .n_eps = 1 };

		snprintf(me.eps[0].transport, sizeof(me.eps[0].transport),
			 "tcp");
		snprintf(me.eps[0].endpoint, sizeof(me.eps[0].endpoint),
			 "127.0.0.1:7777");
		assert_int_equal(coord_register(b.co, &me), -EADDRINUSE);
	}
	pm_log_default.level = PM_LOG_WARN;
	assert_true(tu_now_ms() - t0 >= 2 * TTL_MS);
	client_close(&b);
	node_ep(&srv, "dup", 0, ep, sizeof(ep));
	assert_string_equal(ep, "127.0.0.1:9000");
	assert_true(cluster_version(&srv, "dup") == v);

	/* After a clean leave the id is free at once. */
	client_close(&a);
	client_open(&b, 0, "dup", urls, 1);
	client_register(&b, 0);
	client_close(&b);

	/* Claims without an incarnation: the same again is fine, a new
	 * transport too, a changed endpoint is not. */
	assert_int_equal(auth_req(&srv, "POST",
				  "/nodes/2/endpoint?cluster=dup",
				  "{\"transport_type\":\"tcp\",\"endpoint\":\"h:2\"}",
				  NULL, r), 201);
	assert_int_equal(auth_req(&srv, "POST",
				  "/nodes/2/endpoint?cluster=dup",
				  "{\"transport_type\":\"tcp\",\"endpoint\":\"h:2\"}",
				  NULL, r), 200);
	assert_int_equal(auth_req(&srv, "POST",
				  "/nodes/2/endpoint?cluster=dup",
				  "{\"transport_type\":\"rdma\",\"endpoint\":\"r\"}",
				  NULL, r), 201);
	assert_int_equal(auth_req(&srv, "POST",
				  "/nodes/2/endpoint?cluster=dup",
				  "{\"transport_type\":\"tcp\",\"endpoint\":\"h:3\"}",
				  NULL, r), 409);
	assert_non_null(strstr(r->body, "node 2 "));
	node_ep(&srv, "dup", 2, ep, sizeof(ep));
	assert_string_equal(ep, "h:2");

	/*
	 * A node that crashed holds its id until it expires: a restarted
	 * one (another incarnation) registers as soon as that happens,
	 * without an error.
	 */
	snprintf(body, sizeof(body),
		 "{\"transport_type\":\"tcp\",\"endpoint\":\"127.0.0.1:5555\",\"incarnation\":\"%s\"}",
		 other);
	assert_int_equal(auth_req(&srv, "POST",
				  "/nodes/3/endpoint?cluster=dup", body, NULL,
				  r), 201);
	/* Its own incarnation may register the same again and beat. */
	assert_int_equal(auth_req(&srv, "POST",
				  "/nodes/3/endpoint?cluster=dup", body, NULL,
				  r), 200);
	snprintf(body, sizeof(body), "{\"incarnation\":\"%s\"}", other);
	assert_int_equal(auth_req(&srv, "POST",
				  "/nodes/3/heartbeat?cluster=dup", body, NULL,
				  r), 200);
	t0 = tu_now_ms();
	client_open(&b, 3, "dup", urls, 1);
	client_register(&b, 3);
	assert_true(tu_now_ms() - t0 >= TTL_MS / 2);
	assert_int_equal(coord_members(b.co, 0, 2000, m, CFG_MAX_NODES, &n,
				       &ver), 0);
	node_ep(&srv, "dup", 3, ep, sizeof(ep));
	assert_string_equal(ep, "127.0.0.1:9003");
	client_close(&b);
	free(r);
}

/*
 * The nonce table itself: a nonce is taken once, a full table refuses
 * rather than forget an entry early, and expired entries make room.
 */
static void test_nonce_table(void **state)
{
	char hex[5][AUTH_REQ_NONCE_HEX + 1];
	struct coord_nonces t;
	int i;

	(void)state;
	assert_int_equal(coord_nonces_init(&t, 4), 0);
	for (i = 0; i < 5; i++)
		fresh_nonce(hex[i]);
	for (i = 0; i < 4; i++)
		assert_int_equal(coord_nonce_take(&t, hex[i], 1000 + i, 0), 0);
	assert_int_equal(coord_nonce_take(&t, hex[0], 2000, 10), -EEXIST);
	assert_int_equal(coord_nonce_take(&t, hex[4], 2000, 10), -ENOSPC);
	/* At 1000 the first is still inside its window: still full. */
	assert_int_equal(coord_nonce_take(&t, hex[4], 2000, 1000), -ENOSPC);
	assert_int_equal(coord_nonce_take(&t, hex[0], 2000, 1000), -EEXIST);
	/* Past it, its room is reused, and the others are still known. */
	assert_int_equal(coord_nonce_take(&t, hex[4], 2000, 1001), 0);
	assert_int_equal(coord_nonce_take(&t, hex[3], 2000, 1001), -EEXIST);
	assert_int_equal(coord_nonce_take(&t, hex[4], 3000, 1001), -EEXIST);
	coord_nonces_free(&t);
}

struct poller {
	char url[160];
	int rc;
	long status;
};

static void *poll_main(void *arg)
{
	struct poller *p = arg;
	struct tu_resp *r = malloc(sizeof(*r));

	p->rc = r ? tu_http("GET", p->url, NULL, 0, 0, r) : -1;
	p->status = r ? r->status : 0;
	free(r);
	return NULL;
}

/* SIGTERM with long-polls parked: they are answered, and the coordinator
 * exits cleanly well before their 10 s wait would end. */
static void test_stop_with_waiters(void **state)
{
	struct coordproc cp = { 0 };
	struct poller p[3];
	struct tu_resp *r = malloc(sizeof(*r));
	char url[128];
	pthread_t t[3];
	long long t0;
	int i, st;

	(void)state;
	assert_non_null(r);
	assert_int_equal(start_coordinator_on(&cp, 0, NULL), 0);
	for (i = 0; i < 3; i++) {
		snprintf(p[i].url, sizeof(p[i].url),
			 "%s/endpoints?wait=18446744073709551615", cp.url);
		assert_int_equal(pthread_create(&t[i], NULL, poll_main, &p[i]),
				 0);
	}
	/* The cluster says how many long-polls it holds: wait for all 3
	 * (nothing in the API blocks on that: look every 20 ms). */
	snprintf(url, sizeof(url), "%s/clusters/" COORD_DEFAULT_CLUSTER,
		 cp.url);
	t0 = tu_now_ms();
	do {
		assert_int_equal(tu_http("GET", url, NULL, 0, 0, r), 0);
		if (r->status == 200 && strstr(r->body, "\"waiters\":3"))
			break;
		poll(NULL, 0, 20);
	} while (tu_now_ms() - t0 < 10000);
	assert_non_null(strstr(r->body, "\"waiters\":3"));
	t0 = tu_now_ms();
	st = tu_stop(cp.pid, SIGTERM, 8000);
	assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(tu_now_ms() - t0 < COORD_WAIT_MAX_MS);
	for (i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		/* Parked polls are answered with the state on the way out. */
		assert_int_equal(p[i].rc, 0);
		assert_int_equal(p[i].status, 200);
	}
	unlink(cp.log);
	free(r);
}

/* Exit status of `pagemesh coordinator ARGS` that ends on its own. */
static int run_cli(char *const args[])
{
	char bin[512], *argv[8];
	int i, st;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/pagemesh", tu_build());
	argv[0] = bin;
	argv[1] = "coordinator";
	for (i = 0; args[i] && i < 5; i++)
		argv[i + 2] = args[i];
	argv[i + 2] = NULL;
	pid = tu_spawn(argv, NULL, "/dev/null");
	assert_true(pid > 0);
	st = tu_stop(pid, 0, 10000);	/* signal 0: just wait */
	assert_true(st >= 0 && WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* -c FILE: listen and ttl_ms from the file; bad files are exit 78. */
static void test_cli_config(void **state)
{
	char good[] = "/tmp/pm-coord-conf-XXXXXX";
	char bad[] = "/tmp/pm-coord-conf-XXXXXX";
	char bin[512], line[256], url[128];
	char *argv[] = { bin, "coordinator", "-c", good, NULL };
	char *a_bad[] = { "-c", bad, NULL };
	char *a_none[] = { NULL };
	char *a_help[] = { "--help", NULL };
	char *a_ttl[] = { "--listen", "127.0.0.1:0", "--ttl-ms", "5", NULL };
	struct tu_resp *r = malloc(sizeof(*r));
	struct coordproc cp = { 0 };
	int fd, p;
	FILE *f;

	(void)state;
	assert_non_null(r);
	fd = mkstemp(good);
	assert_true(fd >= 0);
	tu_track_file(good);
	f = fdopen(fd, "w");
	fprintf(f, "coordinator = { listen = \"127.0.0.1:0\"; "
		"ttl_ms = 777; };\n");
	fclose(f);
	fd = mkstemp(bad);
	assert_true(fd >= 0);
	tu_track_file(bad);
	f = fdopen(fd, "w");
	fprintf(f, "coordinator = { listen = 7700; };\n");
	fclose(f);

	snprintf(bin, sizeof(bin), "%s/pagemesh", tu_build());
	snprintf(cp.log, sizeof(cp.log), "/tmp/pm-coord-srv-%d-cfg.log",
		 (int)getpid());
	cp.pid = tu_spawn(argv, &fd, cp.log);
	assert_true(cp.pid > 0);
	assert_int_equal(tu_read_line(fd, line, sizeof(line), 10000), 0);
	close(fd);
	assert_int_equal(sscanf(line, "listening on http://127.0.0.1:%d", &p),
			 1);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/endpoints", p);
	assert_int_equal(tu_http("GET", url, NULL, 0, 0, r), 0);
	assert_int_equal(r->status, 200);
	assert_non_null(strstr(r->body, "\"ttl_ms\":777"));
	assert_int_equal(stop_coordinator_on(&cp), 0);

	assert_int_equal(run_cli(a_bad), 78);
	assert_int_equal(run_cli(a_none), 2);
	assert_int_equal(run_cli(a_help), 0);
	assert_int_equal(run_cli(a_ttl), 2);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clusters),
		cmocka_unit_test(test_malformed_json),
		cmocka_unit_test(test_refused_input),
		cmocka_unit_test(test_probes),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_method_not_allowed),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_still_serving),
		cmocka_unit_test(test_register_discover),
		cmocka_unit_test(test_heartbeat_expiry),
		cmocka_unit_test(test_wait_wakes),
		cmocka_unit_test(test_failover_and_restart),
		cmocka_unit_test(test_cluster_key),
		cmocka_unit_test(test_replay_refused),
		cmocka_unit_test(test_auth_header_malformed),
		cmocka_unit_test(test_longpoll_flood),
		cmocka_unit_test(test_duplicate_claim),
		cmocka_unit_test(test_nonce_table),
		cmocka_unit_test(test_cli_config),
		cmocka_unit_test(test_stop_with_waiters),
	};

	if (getenv("PM_TEST_FILTER"))
		cmocka_set_test_filter(getenv("PM_TEST_FILTER"));
	return cmocka_run_group_tests_name("coord_server", tests, group_setup,
					   group_teardown);
}
