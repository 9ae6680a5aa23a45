// SPDX-License-Identifier: MIT
/* The coordinator client's etcd backend against real etcd on loopback: a
 * single member, then three members of which one is killed mid-run while
 * clients register, discover and keep their leases alive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <pthread.h>

#include "coord.h"
#include "coord_util.h"
#include "etcd.h"
#include "log.h"

/* etcd's shortest lease is about 2 s; the rest is margin for load. */
#define TTL_MS 3000

static int setup(void **state)
{
	(void)state;
	pm_log_default.level = PM_LOG_ERROR;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* etcd fsyncs its log: on tmpfs that costs nothing. */
	snprintf(ec.dir, sizeof(ec.dir), "%s/pm-etcd-test-XXXXXX",
		 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
	if (!mkdtemp(ec.dir))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	stop_etcd();
	tu_cleanup_files();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", ec.dir);
	curl_global_cleanup();
	return system(cmd) ? -1 : 0;
}

struct client {
	char cfgpath[64];
	struct cfg cfg;
	struct coord *co;
};

static int client_open(struct client *cl, int id, int nodes,
		       const char *cluster)
{
	const char *urls[MAX_MEMBERS];
	char err[512];
	int i;

	for (i = 0; i < ec.n; i++)
		urls[i] = ec.m[i].url;
	assert_int_equal(tu_node_config(cl->cfgpath, sizeof(cl->cfgpath), id,
					nodes, cluster, "etcd", urls, ec.n,
					TTL_MS, NULL),
			 0);
	if (cfg_load(cl->cfgpath, &cl->cfg, err, sizeof(err)))
		fail_msg("cfg_load: %s", err);
	i = coord_open(&cl->cfg, &cl->co);
	if (i) {
		cfg_free(&cl->cfg);
		unlink(cl->cfgpath);
	}
	return i;
}

static void client_register(struct client *cl, int id)
{
	struct coord_member m = { .node_id = id, .n_eps = 2 };

	snprintf(m.eps[0].transport, sizeof(m.eps[0].transport), "tcp");
	snprintf(m.eps[0].endpoint, sizeof(m.eps[0].endpoint),
		 "127.0.0.1:%d", 9000 + id);
	snprintf(m.eps[1].transport, sizeof(m.eps[1].transport), "rdma");
	snprintf(m.eps[1].endpoint, sizeof(m.eps[1].endpoint),
		 "gid=fe80::%d,qpn=%d", id, 100 + id);
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

/* Wait (on the membership version, bounded) until there are want members. */
static int wait_count(struct coord *co, int want, int timeout_ms,
		      struct coord_member *m, uint64_t *v)
{
	long long deadline = tu_now_ms() + timeout_ms;
	int n = -1, r;

	r = coord_members(co, 0, 5000, m, CFG_MAX_NODES, &n, v);
	while (!r && n != want && tu_now_ms() < deadline) {
		r = coord_members(co, *v, (int)(deadline - tu_now_ms()), m,
				  CFG_MAX_NODES, &n, v);
		if (r == -ETIMEDOUT)
			break;
	}
	return n;
}

/* A node that crashed: its keys under a lease nobody keeps alive. */
static void put_orphan(const char *url, const char *cluster, int id)
{
	char key[128], val[256], kb[256], vb[512], body[1024], u[128];
	struct tu_resp *r = malloc(sizeof(*r));
	const cJSON *lid;
	cJSON *o;

	assert_non_null(r);
	snprintf(u, sizeof(u), "%s/v3/lease/grant", url);
	assert_int_equal(tu_http("POST", u, "{\"TTL\":2}", 9, 0, r), 0);
	assert_int_equal(r->status, 200);
	o = cJSON_Parse(r->body);
	lid = cJSON_GetObjectItem(o, "ID");
	assert_true(cJSON_IsString(lid));
	snprintf(key, sizeof(key), "/pagemesh/%s/nodes/%d/tcp", cluster, id);
	snprintf(val, sizeof(val),
		 "{\"node_id\":%d,\"transport_type\":\"tcp\",\"endpoint\":\"127.0.0.1:1\"}",
		 id);
	EVP_EncodeBlock((unsigned char *)kb, (unsigned char *)key,
			(int)strlen(key));
	EVP_EncodeBlock((unsigned char *)vb, (unsigned char *)val,
			(int)strlen(val));
	snprintf(body, sizeof(body),
		 "{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%s\"}", kb, vb,
		 lid->valuestring);
	cJSON_Delete(o);
	snprintf(u, sizeof(u), "%s/v3/kv/put", url);
	assert_int_equal(tu_http("POST", u, body, strlen(body), 0, r), 0);
	assert_int_equal(r->status, 200);
	free(r);
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

	w->r = coord_members(w->co, w->after, 15000, w->m, CFG_MAX_NODES,
			     &w->n, &w->version);
	return NULL;
}

/* Wait (bounded) until the member at url has at least want watchers. */
static int wait_watchers(const char *url, int want, int timeout_ms)
{
	static const char g[] = "\netcd_debugging_mvcc_watcher_total ";
	long long deadline = tu_now_ms() + timeout_ms;
	struct tu_resp *r = malloc(sizeof(*r));
	char u[128];
	const char *p;
	int ok = -1;

	if (!r)
		return -1;
	snprintf(u, sizeof(u), "%s/metrics", url);
	/* etcd has no way to wait for this: look every 50 ms. */
	while (ok && tu_now_ms() < deadline) {
		if (!tu_http("GET", u, NULL, 0, 0, r) && r->status == 200 &&
		    (p = strstr(r->body, g)) && atoi(p + strlen(g)) >= want)
			ok = 0;
		else
			poll(NULL, 0, 50);
	}
	free(r);
	return ok;
}

static void test_single_member(void **state)
{
	struct coord_member m[CFG_MAX_NODES];
	struct coord_member twin = { .node_id = 0, .n_eps = 1,
				     .eps[0] = { "tcp", "127.0.0.1:7777" } };
	const struct coord_member *p;
	struct client a, b, c, d, bad;
	struct waiter w = { 0 };
	pthread_t t;
	uint64_t v;
	int n;

	(void)state;
	if (find_etcd()) {
		printf("SKIP: no etcd binary (apt-get install etcd-server)\n");
		skip();
	}
	assert_int_equal(start_etcd_retry(1), 0);

	assert_int_equal(client_open(&a, 0, 4, "one"), 0);
	assert_int_equal(client_open(&b, 1, 4, "one"), 0);
	/* Same cluster name, other shape: refused (quietly: expected). */
	pm_log_default.level = -1;
	assert_int_equal(client_open(&bad, 1, 5, "one"), -EEXIST);
	pm_log_default.level = PM_LOG_ERROR;

	client_register(&a, 0);
	client_register(&b, 1);
	assert_true(coord_ttl_ms(a.co) >= TTL_MS);
	assert_int_equal(coord_members(a.co, 0, 5000, m, CFG_MAX_NODES, &n,
				       &v), 0);
	assert_int_equal(n, 2);
	assert_true(v > 0);
	p = find(m, n, 1);
	assert_non_null(p);
	assert_int_equal(p->n_eps, 2);
	/* In the order the node registered them. */
	assert_string_equal(p->eps[0].transport, "tcp");
	assert_string_equal(p->eps[0].endpoint, "127.0.0.1:9001");
	assert_string_equal(p->eps[1].transport, "rdma");
	assert_string_equal(p->eps[1].endpoint, "gid=fe80::1,qpn=101");
	assert_int_equal(coord_members(a.co, 0, 1000, m, 1, &n, &v), -E2BIG);

	/* Keepalives hold both leases past two TTLs: nothing changes. */
	assert_int_equal(coord_members(a.co, v, 2 * TTL_MS + 500, m,
				       CFG_MAX_NODES, &n, &v),
			 -ETIMEDOUT);
	assert_int_equal(n, 2);

	/*
	 * A second process with node 0's id: its claim fails while a holds
	 * it (after waiting out twice the TTL, for a predecessor that might
	 * have crashed), and a's endpoints stay.
	 */
	assert_int_equal(client_open(&d, 0, 4, "one"), 0);
	pm_log_default.level = -1;
	assert_int_equal(coord_register(d.co, &twin), -EADDRINUSE);
	pm_log_default.level = PM_LOG_ERROR;
	client_close(&d);
	assert_int_equal(coord_members(a.co, 0, 5000, m, CFG_MAX_NODES, &n,
				       &v), 0);
	assert_int_equal(n, 2);
	assert_string_equal(find(m, n, 0)->eps[0].endpoint, "127.0.0.1:9000");
	assert_int_equal(find(m, n, 0)->n_eps, 2);

	/* A waiter wakes when a node joins. */
	assert_int_equal(client_open(&c, 2, 4, "one"), 0);
	w.co = a.co;
	w.after = v;
	assert_int_equal(pthread_create(&t, NULL, wait_main, &w), 0);
	client_register(&c, 2);
	pthread_join(t, NULL);
	assert_int_equal(w.r, 0);
	assert_true(w.version > v);
	assert_non_null(find(w.m, w.n, 2));

	/* A crashed node (lease not kept alive) drops out by itself. */
	put_orphan(ec.m[0].url, "one", 3);
	assert_int_equal(wait_count(a.co, 4, 5000, m, &v), 4);
	assert_int_equal(wait_count(a.co, 3, 4 * TTL_MS, m, &v), 3);
	assert_null(find(m, 3, 3));

	/* A clean close revokes the lease: gone at once. */
	client_close(&b);
	assert_int_equal(wait_count(a.co, 2, 5000, m, &v), 2);
	assert_null(find(m, 2, 1));
	client_close(&c);
	client_close(&a);
	stop_etcd();
}

static void test_three_members_one_killed(void **state)
{
	struct coord_member m[CFG_MAX_NODES];
	struct waiter w = { 0 };
	struct client a, b, c;
	pthread_t t;
	uint64_t v;
	int n, st;

	(void)state;
	if (find_etcd()) {
		printf("SKIP: no etcd binary (apt-get install etcd-server)\n");
		skip();
	}
	assert_int_equal(start_etcd_retry(3), 0);
	assert_int_equal(client_open(&a, 0, 3, "three"), 0);
	assert_int_equal(client_open(&b, 1, 3, "three"), 0);
	client_register(&a, 0);
	client_register(&b, 1);
	assert_int_equal(wait_count(a.co, 2, 5000, m, &v), 2);

	/* A waiter's watch sits on m0 (the member every client tries first;
	 * etcd counts its watchers) when m0 is killed. */
	w.co = a.co;
	w.after = v;
	assert_int_equal(pthread_create(&t, NULL, wait_main, &w), 0);
	assert_int_equal(wait_watchers(ec.m[0].url, 1, 10000), 0);
	st = tu_stop(ec.m[0].pid, SIGKILL, 5000);
	ec.m[0].pid = 0;
	assert_true(st >= 0 && WIFSIGNALED(st));

	/* A node joining now, and the others, carry on via the rest; the
	 * waiter moves its watch and wakes. */
	assert_int_equal(client_open(&c, 2, 3, "three"), 0);
	client_register(&c, 2);
	pthread_join(t, NULL);
	assert_int_equal(w.r, 0);
	assert_true(w.version > v);
	assert_non_null(find(w.m, w.n, 2));
	assert_int_equal(wait_count(a.co, 3, 10000, m, &v), 3);
	assert_int_equal(wait_count(c.co, 3, 10000, m, &v), 3);
	assert_string_equal(find(m, 3, 2)->eps[0].endpoint, "127.0.0.1:9002");

	/* Leases stay alive through the surviving members. */
	assert_int_equal(coord_members(a.co, v, 2 * TTL_MS + 500, m,
				       CFG_MAX_NODES, &n, &v),
			 -ETIMEDOUT);
	assert_int_equal(n, 3);

	client_close(&b);
	assert_int_equal(wait_count(c.co, 2, 10000, m, &v), 2);
	assert_null(find(m, 2, 1));
	client_close(&c);
	client_close(&a);
	stop_etcd();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_single_member, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_three_members_one_killed,
						setup, teardown),
	};

	return cmocka_run_group_tests_name("coord_etcd", tests, NULL, NULL);
}
