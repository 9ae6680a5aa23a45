// SPDX-License-Identifier: MIT
/*
 * `pagemesh node` and API programs in one cluster (real processes on
 * loopback): a node run by `pagemesh node` only serves and counts as
 * arrived at every barrier after start-up, so the API programs' barriers
 * gather the programs only and pm_node_stop() returns once every program
 * called it, not after cluster.startup_timeout_ms (20000 ms here:
 * cluster.h). The serving nodes keep serving until their signal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "cluster.h"

#define STARTUP_MS 20000	/* cl_write_configs' startup_timeout_ms */
#define STOP_BOUND_MS (STARTUP_MS / 3)

/* Wait up to ms for every node in [from, to) to exit; how many did not. */
static int wait_range(struct cluster *c, int from, int to, int ms)
{
	sigset_t s;
	struct timespec step = { 0, 50 * 1000000L };
	int left = ms, running;

	sigemptyset(&s);
	sigaddset(&s, SIGCHLD);
	for (;;) {
		running = cl_reap(c, from, to);
		if (!running || left <= 0)
			return running;
		/* SIGCHLD is blocked (main); a bounded wait for the next. */
		sigtimedwait(&s, NULL, &step);
		left -= 50;
	}
}

/* The number after the last `what` in node i's log, or -1. */
static long log_num(const struct cluster *c, int i, const char *what)
{
	char line[1024];

	if (!cl_log_last(c, i, what, line, sizeof(line)))
		return -1;
	return strtol(line + strlen(what), NULL, 10);
}

static void dump_all(const struct cluster *c)
{
	for (int i = 0; i < c->n; i++) {
		printf("  node %d (exit %d):\n", i, c->status[i]);
		cl_dump(c, i, NULL);
	}
}

/*
 * napi API programs (nodes 0 .. napi-1) and `pagemesh node` for the rest;
 * program i waits delay[i] ms before pm_node_stop(). The programs must
 * pass and stop within STOP_BOUND_MS (each also at least min_stop[i] ms:
 * it waits for a later program); the servers must outlive them and stop
 * on SIGTERM with exit 0. min_stop and delay: napi entries. pager: more
 * keys of the pager group; with a local_limit, program 0 must have
 * written pages back to their homes.
 */
static void run_mixed(int nodes, int napi, const int *delay,
		      const int *min_stop, const char *pager)
{
	char prog[512], pm[512], idx[CL_MAX][16], cnt[16], dl[CL_MAX][16];
	char *node_argv[] = { pm, (char *)"node", (char *)"-c",
			      (char *)"{cfg}", NULL };
	struct cluster c;
	int bad = 0;

	assert_int_equal(cl_init(&c, nodes), 0);
	snprintf(prog, sizeof(prog), "%s/tests/mixed_worker", cl_build());
	snprintf(pm, sizeof(pm), "%s/pagemesh", cl_build());
	snprintf(cnt, sizeof(cnt), "%d", napi);
	snprintf(c.pager, sizeof(c.pager), "%s", pager);
	assert_int_equal(cl_write_configs(&c, "16M"), 0);
	/* The servers first: an API program's start waits for them. */
	for (int i = napi; i < nodes; i++)
		assert_int_equal(cl_spawn(&c, i, node_argv), 0);
	for (int i = 0; i < napi; i++) {
		char *argv[] = { prog, (char *)"{cfg}", idx[i], cnt, dl[i],
				 NULL };

		snprintf(idx[i], sizeof(idx[i]), "%d", i);
		snprintf(dl[i], sizeof(dl[i]), "%d", delay[i]);
		assert_int_equal(cl_spawn(&c, i, argv), 0);
	}
	/* Start-up (up to STARTUP_MS), the work, and the stop. */
	if (wait_range(&c, 0, napi, STARTUP_MS + 30000)) {
		printf("  an API program still runs after %d ms\n",
		       STARTUP_MS + 30000);
		bad++;
	}
	for (int i = 0; i < napi; i++) {
		long ms = log_num(&c, i, "stop took ");

		cl_dump(&c, i, ": wrote ");
		cl_dump(&c, i, "RESULT");
		if (c.status[i] != 0 || ms < 0) {
			printf("  program on node %d: exit %d\n", i,
			       c.status[i]);
			bad++;
		} else if (ms >= STOP_BOUND_MS || ms < min_stop[i]) {
			printf("  program on node %d: pm_node_stop() took %ld ms, expected %d to %d ms\n",
			       i, ms, min_stop[i], STOP_BOUND_MS);
			bad++;
		}
	}
	if (!bad && strstr(pager, "local_limit") &&
	    log_num(&c, 0, "writebacks ") <= 0) {
		printf("  program on node 0 wrote nothing back to the homes\n");
		bad++;
	}
	/* Node 0 learnt who only serves, at start-up. */
	for (int i = napi; i < nodes && !bad; i++) {
		char what[64];

		snprintf(what, sizeof(what), "node %d only serves", i);
		if (!cl_log_has(&c, 0, what, 0)) {
			printf("  node 0's log does not say \"%s\"\n", what);
			bad++;
		}
	}
	/* The programs' stop is theirs: the servers still serve. */
	for (int i = napi; i < nodes; i++)
		if (wait_range(&c, i, i + 1, 0) == 0) {
			printf("  server node %d exited (%d) with the programs\n",
			       i, c.status[i]);
			bad++;
		}
	for (int i = napi; i < nodes; i++)
		if (c.pid[i] > 0)
			kill(c.pid[i], SIGTERM);
	if (wait_range(&c, napi, nodes, 10000)) {
		printf("  a server still runs 10 s after SIGTERM\n");
		bad++;
	}
	for (int i = napi; i < nodes; i++)
		if (c.status[i] != 0) {
			printf("  server node %d exited %d\n", i, c.status[i]);
			bad++;
		}
	cl_wait(&c, 0);
	if (bad)
		dump_all(&c);
	cl_cleanup(&c);
	assert_int_equal(bad, 0);
}

/* Node 0 an API program, nodes 1 and 2 `pagemesh node`: node 0 writes
 * pages homed on them, which its local_limit (2M of a 16M region) sends
 * back to them, reads them back from them, and its stop does not wait. */
static void test_one_program_two_servers(void **state)
{
	const int delay[1] = { 0 }, min_stop[1] = { 0 };

	(void)state;
	run_mixed(3, 1, delay, min_stop, "local_limit = \"2M\";");
}

/* Nodes 0 and 1 API programs, node 2 `pagemesh node`: their barriers
 * gather the two of them (each reads what the other wrote), and node 0's
 * stop waits for node 1's, 2 s later, not for node 2. */
static void test_two_programs_one_server(void **state)
{
	const int delay[2] = { 0, 2000 }, min_stop[2] = { 1500, 0 };

	(void)state;
	run_mixed(3, 2, delay, min_stop, "");
}

/*
 * Node 2, a `pagemesh node`, stopped and started again while the program
 * on node 0 runs (past four barriers): the new process joins at once (its
 * start-up barrier is no stale generation), empty, and the program's
 * stop still does not wait for either server.
 */
static void test_server_restarts(void **state)
{
	char prog[512], pm[512], log2[600], old2[620];
	char *node_argv[] = { pm, (char *)"node", (char *)"-c",
			      (char *)"{cfg}", NULL };
	char *argv[] = { prog, (char *)"{cfg}", (char *)"0", (char *)"1",
			 (char *)"8000", NULL };
	struct cluster c;
	long ms;
	int bad = 0;

	(void)state;
	assert_int_equal(cl_init(&c, 3), 0);
	snprintf(prog, sizeof(prog), "%s/tests/mixed_worker", cl_build());
	snprintf(pm, sizeof(pm), "%s/pagemesh", cl_build());
	assert_int_equal(cl_write_configs(&c, "16M"), 0);
	for (int i = 1; i < 3; i++)
		assert_int_equal(cl_spawn(&c, i, node_argv), 0);
	assert_int_equal(cl_spawn(&c, 0, argv), 0);
	if (!cl_log_has(&c, 0, ": wrote ", STARTUP_MS + 10000)) {
		printf("  the program did not finish its rounds\n");
		bad++;
	}
	if (!bad) {
		kill(c.pid[2], SIGTERM);
		if (wait_range(&c, 2, 3, 10000) || c.status[2] != 0) {
			printf("  node 2 did not stop on SIGTERM (exit %d)\n",
			       c.status[2]);
			bad++;
		}
	}
	if (!bad) {
		cl_path(&c, 2, "log", log2, sizeof(log2));
		snprintf(old2, sizeof(old2), "%s.first", log2);
		rename(log2, old2);
		assert_int_equal(cl_spawn(&c, 2, node_argv), 0);
		/* Well before the program's 8 s before its stop are over. */
		if (!cl_log_has(&c, 2, " up: region", 6000)) {
			printf("  node 2 did not come up again within 6 s\n");
			bad++;
		} else if (!cl_log_has(&c, 2, "rejoined a running cluster", 0)) {
			printf("  node 2 came up without saying it rejoined\n");
			bad++;
		}
	}
	if (wait_range(&c, 0, 1, 30000) || c.status[0] != 0) {
		printf("  the program: exit %d\n", c.status[0]);
		bad++;
	}
	ms = log_num(&c, 0, "stop took ");
	cl_dump(&c, 0, "RESULT");
	if (!bad && (ms < 0 || ms >= STOP_BOUND_MS)) {
		printf("  pm_node_stop() took %ld ms, expected under %d\n", ms,
		       STOP_BOUND_MS);
		bad++;
	}
	for (int i = 1; i < 3; i++)
		if (c.pid[i] > 0)
			kill(c.pid[i], SIGTERM);
	if (wait_range(&c, 1, 3, 10000))
		bad++;
	for (int i = 1; i < 3 && !bad; i++)
		bad += c.status[i] != 0;
	cl_wait(&c, 0);
	if (bad)
		dump_all(&c);
	cl_cleanup(&c);
	assert_int_equal(bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_program_two_servers),
		cmocka_unit_test(test_two_programs_one_server),
		cmocka_unit_test(test_server_restarts),
	};

	cl_block_sigchld();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
