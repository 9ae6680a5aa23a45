// SPDX-License-Identifier: MIT
/*
 * Clusters that find each other through a coordinator, no peer lists:
 * three coh_worker nodes through the embedded coordinator (one started
 * after the others have registered, whose pages the others then read),
 * and through a real 3-member etcd of which one member is killed while
 * the nodes work.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cluster.h"
#include "coord_util.h"
#include "etcd.h"

/* Poll (bounded) until cond holds: logs and HTTP are the only signals. */
#define WAIT_FOR(cond, ms)                                                \
	({                                                                \
		long long _end = tu_now_ms() + (ms);                      \
		bool _ok;                                                 \
		while (!(_ok = (cond)) && tu_now_ms() < _end)             \
			poll(NULL, 0, 50);                                \
		_ok;                                                      \
	})

static void spawn_all(struct cluster *c, const char *workload,
		      const char *iters, int from, int to)
{
	char prog[512];
	char *argv[] = { prog, (char *)"{cfg}", (char *)workload,
			 (char *)iters, NULL };

	snprintf(prog, sizeof(prog), "%s/tests/coh_worker", cl_build());
	for (int i = from; i < to; i++)
		assert_int_equal(cl_spawn(c, i, argv), 0);
}

static void check_all(struct cluster *c, int timeout_ms)
{
	int late = cl_wait(c, timeout_ms), bad = 0;

	for (int i = 0; i < c->n; i++) {
		if (c->status[i]) {
			printf("  node %d exited %d; its log:\n", i,
			       c->status[i]);
			cl_dump(c, i, NULL);
			bad++;
		} else {
			cl_dump(c, i, ": ");
		}
	}
	assert_int_equal(late, 0);
	assert_int_equal(bad, 0);
}

/* How many nodes the embedded coordinator lists. */
static int registered(const char *url)
{
	struct tu_resp *r = calloc(1, sizeof(*r));
	char u[256];
	int n = -1;

	if (!r)
		return -1;
	snprintf(u, sizeof(u), "%s/endpoints?cluster=test", url);
	if (!tu_http("GET", u, NULL, 0, 0, r) && r->status == 200) {
		const char *p = r->body;

		n = 0;
		while ((p = strstr(p, "\"transport_type\""))) {
			n++;
			p++;
		}
	}
	free(r);
	return n;
}

static void test_embedded_late_joiner(void **state)
{
	char prog[512], line[256], url[128] = "";
	struct cluster c;
	pid_t coord;
	int fd = -1;

	(void)state;
	snprintf(prog, sizeof(prog), "%s/pagemesh", cl_build());
	char *argv[] = { prog, (char *)"coordinator", (char *)"--listen",
			 (char *)"127.0.0.1:0", NULL };

	coord = tu_spawn(argv, &fd, NULL);
	assert_true(coord > 0);
	while (!url[0] && tu_read_line(fd, line, sizeof(line), 10000) == 0)
		sscanf(line, "listening on %127s", url);
	if (!url[0]) {
		tu_stop(coord, SIGKILL, 1000);
		fail_msg("the coordinator did not say where it listens");
	}
	assert_int_equal(cl_init(&c, 3), 0);
	snprintf(c.coord, sizeof(c.coord), "url = \"%s\";", url);
	snprintf(c.pager, sizeof(c.pager), "timeout_ms = 20000;");
	assert_int_equal(cl_write_configs(&c, "64M"), 0);
	/* Nodes 0 and 1 first; node 2 once they have registered. */
	spawn_all(&c, "all", "1000", 0, 2);
	if (!WAIT_FOR(registered(url) >= 2, 20000))
		printf("  only %d node(s) registered before node 2 started\n",
		       registered(url));
	spawn_all(&c, "all", "1000", 2, 3);
	check_all(&c, 180000);
	/* Stripes: nodes 0 and 1 verified node 2's pages, fetched from it. */
	cl_cleanup(&c);
	close(fd);
	assert_int_equal(tu_stop(coord, SIGTERM, 5000), 0);
}

static void test_etcd_member_killed(void **state)
{
	char urls[256] = "";
	struct cluster c;
	int i;

	(void)state;
	if (find_etcd()) {
		printf("SKIP etcd: no etcd binary (apt-get install etcd-server)\n");
		skip();
	}
	snprintf(ec.dir, sizeof(ec.dir), "/tmp/pm-etcd-XXXXXX");
	assert_non_null(mkdtemp(ec.dir));
	if (start_etcd_retry(3)) {
		stop_etcd();
		fail_msg("could not start a 3-member etcd");
	}
	for (i = 0; i < 3; i++)
		snprintf(urls + strlen(urls), sizeof(urls) - strlen(urls),
			 "%s\"%s\"", i ? ", " : "", ec.m[i].url);
	assert_int_equal(cl_init(&c, 3), 0);
	snprintf(c.coord, sizeof(c.coord),
		 "backend = \"etcd\"; urls = [ %s ]; ttl_ms = 4000;", urls);
	snprintf(c.pager, sizeof(c.pager), "timeout_ms = 20000;");
	assert_int_equal(cl_write_configs(&c, "64M"), 0);
	spawn_all(&c, "all", "1500", 0, 3);
	/* Once the cluster has formed, lose one etcd member mid-run. */
	bool formed = cl_log_has(&c, 0, " up: region ", 60000) &&
		      cl_log_has(&c, 1, " up: region ", 60000) &&
		      cl_log_has(&c, 2, " up: region ", 60000);

	if (formed) {
		kill(ec.m[0].pid, SIGKILL);
		waitpid(ec.m[0].pid, NULL, 0);
		ec.m[0].pid = 0;
		printf("  etcd member m0 killed while the nodes work\n");
	}
	check_all(&c, 180000);
	cl_cleanup(&c);
	stop_etcd();
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", ec.dir);
	assert_int_equal(system(cmd), 0);
	assert_true(formed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_embedded_late_joiner),
		cmocka_unit_test(test_etcd_member_killed),
	};

	cl_block_sigchld();
	return cmocka_run_group_tests_name("coord-cluster", tests, NULL, NULL);
}
