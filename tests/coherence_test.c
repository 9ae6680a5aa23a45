// SPDX-License-Identifier: MIT
/*
 * Multi-node coherence, real processes: three coh_worker nodes per test
 * on loopback, then every workload again with each node in its own
 * network namespace joined through veth pairs to a bridge. Each node
 * checks its own results (exact counters, tallies and sums, kept bank
 * totals, monotonic reads, verified messages, stripes and random slots)
 * and that its pages really changed hands (a minimum of transfers); a
 * test passes when every node says so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "cluster.h"

/* Workloads coh_worker's "all" runs: each node proves each one moved
 * pages with a "... required: ..." line. */
#define N_ALL 7

static void run_cluster(struct cluster *c, const char *workload,
			const char *iters, const char *threads, int timeout_ms)
{
	char prog[512];
	char *argv[] = { prog, (char *)"{cfg}", (char *)workload,
			 (char *)iters, (char *)threads, NULL };
	int late, bad = 0, want = strcmp(workload, "all") ? 1 : N_ALL;

	snprintf(prog, sizeof(prog), "%s/tests/coh_worker", cl_build());
	assert_int_equal(cl_write_configs(c, "64M"), 0);
	for (int i = 0; i < c->n; i++)
		assert_int_equal(cl_spawn(c, i, argv), 0);
	late = cl_wait(c, timeout_ms);
	for (int i = 0; i < c->n; i++) {
		if (c->status[i] != 0) {
			printf("  node %d exited %d; its log:\n", i,
			       c->status[i]);
			cl_dump(c, i, NULL);
			bad++;
		} else {
			cl_dump(c, i, ": ");	/* result and stats lines */
			/* A worker that stopped checking its transfers
			 * would pass without proving anything. */
			if (cl_log_count(c, i, " required: ") != want) {
				printf("  node %d: %d transfer checks in its log, expected %d\n",
				       i, cl_log_count(c, i, " required: "),
				       want);
				bad++;
			}
		}
	}
	if (late)
		printf("  %d node(s) still running after %d ms: killed\n",
		       late, timeout_ms);
	assert_int_equal(late, 0);
	assert_int_equal(bad, 0);
}

static void loopback(const char *workload, const char *iters,
		     const char *threads)
{
	struct cluster c;

	assert_int_equal(cl_init(&c, 3), 0);
	/* A loaded 2-core machine can stall a node for seconds: keep the
	 * failure detector (pager.timeout_ms) out of these tests' way. */
	snprintf(c.pager, sizeof(c.pager), "timeout_ms = 20000;");
	run_cluster(&c, workload, iters, threads, 120000);
	cl_cleanup(&c);
}

/*
 * Each workload's count: a few hundred to a couple of thousand hand-offs
 * each (a hand-off costs 0.1 to 1 ms here), so the pages move often
 * enough to race while the whole program stays within a few minutes.
 * pager: more pager keys the workload needs.
 */
static const struct wl_run {
	const char *workload, *iters, *pager;
} wl_runs[] = {
	{ "stripes", "1", "" },
	{ "counter", "4800", "" },	/* 600 rounds */
	{ "bank", "2400", "" },		/* 300 rounds */
	{ "monotonic", "500", "" },
	{ "random", "1000", "" },	/* 625 bursts */
	{ "turns", "500", "" },		/* 1500 turns */
	{ "messages", "1000", "" },
	{ "stream", "3", "" },
	{ "cache", "16", " prefetch = 4; local_limit = \"16M\";" },
};

#define N_WL_RUNS (sizeof(wl_runs) / sizeof(wl_runs[0]))

static void loopback_wl(const char *workload)
{
	for (size_t i = 0; i < N_WL_RUNS; i++) {
		if (!strcmp(wl_runs[i].workload, workload)) {
			loopback(workload, wl_runs[i].iters, "1");
			return;
		}
	}
	fail_msg("no count for workload %s", workload);
}

/*
 * 16 nodes on loopback (4 MiB homed on each): the counter and the bank
 * with every node taking part, so each page is handed among 16. A node
 * holds (16 - 1) x (1 + pager.threads) connections each way.
 */
static void test_sixteen(void **state)
{
	static const char *const wl[][2] = {
		{ "counter", "160" }, { "bank", "80" }, { "turns", "10" },
	};
	struct cluster c;

	(void)state;
	for (size_t i = 0; i < sizeof(wl) / sizeof(wl[0]); i++) {
		assert_int_equal(cl_init(&c, 16), 0);
		snprintf(c.pager, sizeof(c.pager), "timeout_ms = 20000;");
		run_cluster(&c, wl[i][0], wl[i][1], "1", 240000);
		cl_cleanup(&c);
	}
}

static void test_stripes(void **state)
{
	(void)state;
	loopback_wl("stripes");
}

static void test_counter(void **state)
{
	(void)state;
	loopback_wl("counter");
}

static void test_bank(void **state)
{
	(void)state;
	loopback_wl("bank");
}

static void test_monotonic(void **state)
{
	(void)state;
	loopback_wl("monotonic");
}

static void test_random(void **state)
{
	(void)state;
	loopback_wl("random");
}

/* Strict turns over three pages. */
static void test_turns(void **state)
{
	(void)state;
	loopback_wl("turns");
}

/* Acknowledged two-page messages, the sender rotating. */
static void test_messages(void **state)
{
	(void)state;
	loopback_wl("messages");
}

/* Several application threads per node on the same hot pages, their
 * turns and rounds interleaved with the other nodes' threads. */
static void test_threads(void **state)
{
	(void)state;
	loopback("counter", "1600", "3");
	loopback("bank", "800", "3");
	loopback("turns", "150", "3");
}

/* Sequential faults fetch the next pages in the same request. */
static void test_prefetch(void **state)
{
	struct cluster c;

	(void)state;
	assert_int_equal(cl_init(&c, 3), 0);
	snprintf(c.pager, sizeof(c.pager), "timeout_ms = 20000; prefetch = 8;");
	run_cluster(&c, "all", "400", "1", 180000);
	cl_cleanup(&c);
}

/* Each node's written pages taken over in order by the next node, the
 * home giving them up in runs; in later rounds the home adds to them
 * meanwhile. */
static void test_stream(void **state)
{
	(void)state;
	loopback_wl("stream");
}

/* A quarter of the region resident at most: node 0 writes and verifies
 * all of it (its resident bytes checked as it goes) while the others race
 * the evictions on a shared counter. policy: pager.policy, "" default. */
static void run_cache(const char *policy)
{
	struct cluster c;

	assert_int_equal(cl_init(&c, 3), 0);
	snprintf(c.pager, sizeof(c.pager),
		 "timeout_ms = 20000; prefetch = 4; local_limit = \"16M\";%s",
		 policy);
	run_cluster(&c, "cache", "16", "1", 180000);
	cl_cleanup(&c);
}

static void test_cache(void **state)
{
	(void)state;
	run_cache("");
}

/* The same with the FIFO and the CLOCK replacement policies. */
static void test_cache_fifo(void **state)
{
	(void)state;
	run_cache(" policy = \"fifo\";");
}

static void test_cache_clock(void **state)
{
	(void)state;
	run_cache(" policy = \"clock\";");
}

/* Mixed transports: same wire format, so a tcp node and io_uring-tcp
 * nodes form one cluster. */
static void test_mixed_transports(void **state)
{
	char so[512];
	struct cluster c;

	(void)state;
	snprintf(so, sizeof(so), "%s/plugins/io_uring-tcp.so", cl_build());
	if (access(so, F_OK)) {
		printf("SKIP mixed transports: %s not built\n", so);
		skip();
	}
	assert_int_equal(cl_init(&c, 3), 0);
	snprintf(c.pager, sizeof(c.pager), "timeout_ms = 20000;");
	c.node_transport[1] = "io_uring-tcp";
	c.node_transport[2] = "io_uring-tcp";
	run_cluster(&c, "all", "400", "1", 180000);
	cl_cleanup(&c);
}

/* A misspelt workload must fail the run, not pass it having done
 * nothing; so must a count that would move no page. */
static void test_bad_arguments(void **state)
{
	static const struct {
		const char *workload, *iters;
	} bad[] = {
		{ "countr", "10" },	/* unknown */
		{ "", "10" },
		{ "counter", "0" },	/* nothing would move */
		{ "bank", "10x" },
	};
	char prog[512];
	struct cluster c;

	(void)state;
	snprintf(prog, sizeof(prog), "%s/tests/coh_worker", cl_build());
	assert_int_equal(cl_init(&c, 1), 0);
	assert_int_equal(cl_write_configs(&c, "4M"), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { prog, (char *)"{cfg}", (char *)bad[i].workload,
				 (char *)bad[i].iters, NULL };

		assert_int_equal(cl_spawn(&c, 0, argv), 0);
		assert_int_equal(cl_wait(&c, 30000), 0);
		printf("  coh_worker '%s' %s: exit %d\n", bad[i].workload,
		       bad[i].iters, c.status[0]);
		cl_dump(&c, 0, NULL);
		assert_int_equal(c.status[0], 2);
		/* It says what the workloads are. */
		if (i < 2) {
			assert_int_equal(cl_log_count(&c, 0, "unknown workload"),
					 1);
			assert_int_equal(cl_log_count(&c, 0,
						   "workloads: stripes counter "),
					 1);
		}
	}
	cl_cleanup(&c);
}

/* ---- network namespaces ------------------------------------------------- */

/* Every workload once more, the nodes talking over veth and a bridge. */
static void test_netns(void **state)
{
	struct cluster c;
	char hub[24];

	(void)state;
	if (geteuid() != 0) {
		printf("SKIP netns: needs root to create network namespaces\n");
		skip();
	}
	if (system("ip netns list >/dev/null 2>&1")) {
		printf("SKIP netns: 'ip netns' does not work here\n");
		skip();
	}
	assert_int_equal(cl_init(&c, 3), 0);
	snprintf(hub, sizeof(hub), "pmt%d", (int)getpid());
	if (cl_netns_up(&c, hub)) {
		cl_netns_down(&c);
		cl_cleanup(&c);
		fail_msg("could not create the namespaces");
	}
	for (size_t i = 0; i < N_WL_RUNS; i++) {
		printf("  netns: %s %s\n", wl_runs[i].workload,
		       wl_runs[i].iters);
		snprintf(c.pager, sizeof(c.pager), "timeout_ms = 20000;%s",
			 wl_runs[i].pager);
		run_cluster(&c, wl_runs[i].workload, wl_runs[i].iters, "1",
			    120000);
	}
	cl_cleanup(&c);
	cl_netns_down(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stripes),
		cmocka_unit_test(test_counter),
		cmocka_unit_test(test_bank),
		cmocka_unit_test(test_monotonic),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_turns),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_prefetch),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_cache_fifo),
		cmocka_unit_test(test_cache_clock),
		cmocka_unit_test(test_mixed_transports),
		cmocka_unit_test(test_sixteen),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_netns),
	};

	/* PM_TEST_FILTER=test_stream (a glob) runs only the matching tests. */
	if (getenv("PM_TEST_FILTER"))
		cmocka_set_test_filter(getenv("PM_TEST_FILTER"));
	cl_block_sigchld();
	return cmocka_run_group_tests_name("coherence", tests, NULL, NULL);
}
