// SPDX-License-Identifier: MIT
/*
 * The example AF_UNIX transport (examples/transport-unix) under real
 * load: three coh_worker nodes run coherence workloads over it with no
 * cluster key, which the core allows because the plugin says its
 * endpoints are host-local (PM_CAP_HOST_LOCAL / is_local), not because
 * they look like HOST:PORT on loopback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "cluster.h"

/* Three keyless nodes on abstract AF_UNIX names, running workload. */
static void unix_cluster(const char *workload, const char *iters)
{
	char prog[512];
	char *argv[] = { prog, (char *)"{cfg}", (char *)workload,
			 (char *)iters, (char *)"1", NULL };
	struct cluster c;
	int late, bad = 0;

	assert_int_equal(cl_init(&c, 3), 0);
	c.key_path[0] = '\0';
	c.transport = "unix";
	snprintf(c.tdir, sizeof(c.tdir), "%s/examples/transport-unix",
		 cl_build());
	for (int i = 0; i < c.n; i++)
		snprintf(c.addr[i], sizeof(c.addr[i]), "@%s-node%d",
			 strrchr(c.dir, '/') + 1, i);
	snprintf(c.pager, sizeof(c.pager), "timeout_ms = 20000;");
	snprintf(prog, sizeof(prog), "%s/tests/coh_worker", cl_build());
	assert_int_equal(cl_write_configs(&c, "64M"), 0);
	for (int i = 0; i < c.n; i++)
		assert_int_equal(cl_spawn(&c, i, argv), 0);
	late = cl_wait(&c, 120000);
	for (int i = 0; i < c.n; i++) {
		if (c.status[i] || cl_log_count(&c, i, " required: ") != 1 ||
		    cl_log_count(&c, i, "peers are not authenticated") != 1) {
			printf("  node %d exited %d; its log:\n", i,
			       c.status[i]);
			cl_dump(&c, i, NULL);
			bad++;
		} else {
			cl_dump(&c, i, " required: ");
		}
	}
	cl_cleanup(&c);
	assert_int_equal(late, 0);
	assert_int_equal(bad, 0);
}

static void test_unix_counter(void **state)
{
	(void)state;
	unix_cluster("counter", "4800");
}

static void test_unix_bank(void **state)
{
	(void)state;
	unix_cluster("bank", "2400");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unix_counter),
		cmocka_unit_test(test_unix_bank),
	};

	cl_block_sigchld();
	return cmocka_run_group_tests_name("kit-cluster", tests, NULL, NULL);
}
