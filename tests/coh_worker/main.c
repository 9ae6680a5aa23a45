// SPDX-License-Identifier: MIT
/*
 * One node of a coherence workload, run as its own process by the
 * integration tests and the demo: joins the cluster through the public API
 * and checks its results itself (exit 0 = exact, 1 = wrong, 2 = usage,
 * 78 = config).
 *
 *   coh_worker CONFIG WORKLOAD [ITERATIONS|LIMIT_MB [THREADS]]
 *
 * A node that keeps a page while it runs its whole loop passes every data
 * check and proves nothing about coherence. So each workload is built of
 * turns, rounds every worker must join, or acknowledged messages, which
 * make pages change hands however the nodes are scheduled; and each node
 * then checks from its own pm_stats that at least as many transfers took
 * place as that structure forces (moved()), printing both counts.
 *
 * This file holds the arguments, the workload table and the checks the
 * workloads share; each workload has a file of its own beside it.
 */
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coh_worker.h"

#define BARRIER_MS 60000

struct pm_node *node;
uint8_t *mem;
size_t mem_len;
int me, nodes;
int nthreads = 1;
int failed;

long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

int barrier(void)
{
	int r = pm_node_barrier(node, BARRIER_MS);

	if (r)
		fprintf(stderr, "node %d: barrier: %s\n", me, strerror(-r));
	return r;
}

/*
 * Wait until *w >= want; *seen gets the value that ended the wait. The
 * word's page is usually on another node, whose turn it is: yield between
 * looks, as that node's pager may need this CPU to hand the page over.
 */
int wait_ge(const uint64_t *w, uint64_t want, uint64_t *seen,
		   const char *what, uint64_t which)
{
	long long end = now_ms() + WAIT_MS;
	uint64_t v;

	while ((v = __atomic_load_n(w, __ATOMIC_SEQ_CST)) < want) {
		if (__atomic_load_n(&failed, __ATOMIC_RELAXED))
			return 1;
		if (now_ms() > end)
			FAIL("%s %" PRIu64 ": waited %d s for the word to reach %" PRIu64 ", it is %" PRIu64,
			     what, which, WAIT_MS / 1000, want, v);
		sched_yield();
	}
	*seen = v;
	return 0;
}

/* Pages that came here or went away: the events a hand-off costs. */
static uint64_t transfers(const struct pm_stats *s)
{
	return s->faults_remote + s->faults_wp + s->invalidations_received +
	       s->downgrades_received;
}

/*
 * The proof that the workload moved pages: this node's transfers since
 * *before, at least min (what the workload's structure forces, which
 * the printf format fmt says in the workload's own words).
 * A node loses its copy of a page another node writes (an invalidation
 * or recall, counted here whether or not the page is homed here), so
 * each "another node wrote it since this node held it" costs at least
 * one. Valid without pager.local_limit: an evicted copy goes silently.
 */
int moved(const char *wl, const struct pm_stats *before, uint64_t min,
	  const char *fmt, ...)
{
	struct pm_stats now;
	char why[160];
	uint64_t got;
	va_list ap;
	int r = pm_node_stats(node, &now);

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (r)
		FAIL("%s: pm_node_stats: %s", wl, strerror(-r));
	got = transfers(&now) - transfers(before);
	printf("node %d: %s: %" PRIu64 " transfers (>= %" PRIu64 " required: %s) [remote %" PRIu64 " wp %" PRIu64 " invalidated %" PRIu64 " downgraded %" PRIu64 "]\n",
	       me, wl, got, min, why,
	       now.faults_remote - before->faults_remote,
	       now.faults_wp - before->faults_wp,
	       now.invalidations_received - before->invalidations_received,
	       now.downgrades_received - before->downgrades_received);
	if (got < min)
		FAIL("%s: %" PRIu64 " transfers, fewer than the %" PRIu64 " its hand-offs force: pages did not move between the nodes",
		     wl, got, min);
	return 0;
}

int stats(struct pm_stats *s)
{
	int r = pm_node_stats(node, s);

	if (r)
		FAIL("pm_node_stats: %s", strerror(-r));
	return 0;
}

/*
 * In a run of rounds that every worker joins (each writes a page, then
 * waits until all have written it in this round), another node's write
 * in round k + 1 comes after this node's in round k, so this node lost
 * its copy in between; rounds 0, 2, 4, ... give disjoint such spans.
 */
uint64_t round_gaps(long rounds)
{
	return nodes > 1 ? (uint64_t)rounds / 2 : 0;
}

/* Workers: nthreads per node, worker w = thread * nodes + node, so that
 * consecutive worker ids are on different nodes. */
int workers(void)
{
	return nodes * nthreads;
}

struct worker {
	int (*fn)(int w, long iters);
	long iters;
	int w, ret;
};

static void *worker_main(void *arg)
{
	struct worker *wk = arg;

	wk->ret = wk->fn(wk->w, wk->iters);
	return NULL;
}

/*
 * fn(w, iters) for each of this node's workers, between barriers so that
 * every node's workers race for the pages and every node's results are
 * in when this returns; *before is this node's stats at the start, for
 * moved(). 0 when all passed.
 */
int run_workers(int (*fn)(int w, long iters), long iters,
		struct pm_stats *before)
{
	struct worker wk[16];
	pthread_t th[16];
	int started = 0, r = 0;

	if (barrier() || stats(before))
		return 1;
	if (nthreads == 1)
		return fn(me, iters) || barrier() ? 1 : 0;
	for (int i = 0; i < nthreads; i++) {
		wk[i] = (struct worker){ .fn = fn, .iters = iters,
					 .w = i * nodes + me };
		r = pthread_create(&th[i], NULL, worker_main, &wk[i]);
		if (r) {
			fprintf(stderr, "node %d: FAIL: pthread_create: %s\n",
				me, strerror(r));
			__atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
			break;
		}
		started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		r |= wk[i].ret;
	}
	return r || barrier() ? 1 : 0;
}

/*
 * A crash says where (the log is all a failed test keeps): the address and
 * the stack, as binary+offset for addr2line, then the default action. The
 * ASan build keeps ASan's own report instead.
 */
#ifndef __SANITIZE_ADDRESS__
static void crash_report(int sig, siginfo_t *si, void *uc)
{
	void *frames[32];
	char line[96];
	int len;

	(void)uc;
	len = snprintf(line, sizeof(line), "coh_worker: signal %d at address %p; stack:\n",
		       sig, si->si_addr);
	if (write(STDERR_FILENO, line, (size_t)len) < 0)
		return;
	backtrace_symbols_fd(frames, backtrace(frames, 32), STDERR_FILENO);
}

static void crash_report_init(void)
{
	struct sigaction sa = {
		.sa_sigaction = crash_report,
		.sa_flags = SA_SIGINFO | SA_RESETHAND,
	};
	void *warm[1];

	backtrace(warm, 1);	/* loads libgcc now, not in the handler */
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGABRT, &sa, NULL);
}
#else
static void crash_report_init(void)
{
}
#endif

/* random's count is operations: 10 per iteration. */
static int w_random_iters(long iters)
{
	return w_random(iters * 10);
}

static const struct workload {
	const char *name;
	int (*run)(long iters);
	bool in_all;	/* cache and stream need their own config/count */
} workloads[] = {
	{ "stripes", w_stripes, true },
	{ "counter", w_counter, true },
	{ "bank", w_bank, true },
	{ "monotonic", w_monotonic, true },
	{ "random", w_random_iters, true },
	{ "turns", w_turns, true },
	{ "messages", w_messages, true },
	{ "cache", w_cache, false },
	{ "stream", w_stream, false },
};

#define N_WORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: coh_worker CONFIG WORKLOAD [ITERATIONS|LIMIT_MB [THREADS]]\n"
		   "workloads:");
	for (size_t i = 0; i < N_WORKLOADS; i++)
		fprintf(f, " %s", workloads[i].name);
	fprintf(f, " all\n"
		   "  all: every workload but cache and stream, in that order\n"
		   "  ITERATIONS: operations per worker (counter, bank: in rounds of %d),\n"
		   "  rounds (monotonic; stream, default 3), turns per worker (turns),\n"
		   "  messages (messages), 10 operations (random: in bursts of %d);\n"
		   "  stripes takes none; cache takes LIMIT_MB, its node 0's pager.local_limit\n"
		   "  THREADS: application threads per node for counter, bank and turns\n",
		ROUND_OPS, RANDOM_BURST);
}

int main(int argc, char **argv)
{
	char err[1024], *end;
	struct pm_stats st;
	const struct workload *wl = NULL;
	bool all;
	long iters;
	int code, r = 0;

	if (argc < 3 || argc > 5) {
		usage(stderr);
		return 2;
	}
	all = !strcmp(argv[2], "all");
	for (size_t i = 0; i < N_WORKLOADS && !all; i++)
		if (!strcmp(argv[2], workloads[i].name))
			wl = &workloads[i];
	if (!all && !wl) {
		fprintf(stderr, "coh_worker: unknown workload '%s'\n", argv[2]);
		usage(stderr);
		return 2;
	}
	iters = 2000;
	if (argc >= 4) {
		errno = 0;
		iters = strtol(argv[3], &end, 10);
		/* A count of 0 would pass every check having moved nothing. */
		if (errno || end == argv[3] || *end ||
		    iters < (wl && wl->run == w_cache ? 0 : 1)) {
			fprintf(stderr, "coh_worker: ITERATIONS '%s' is not a positive count\n",
				argv[3]);
			return 2;
		}
	} else if (wl && wl->run == w_stream) {
		iters = 3;
	}
	nthreads = argc == 5 ? atoi(argv[4]) : 1;
	if (nthreads < 1 || nthreads > 16) {
		fprintf(stderr, "coh_worker: THREADS is 1 to 16\n");
		return 2;
	}
	crash_report_init();
	node = pm_node_start_ex(argv[1], err, sizeof(err), &code);
	if (!node) {
		fprintf(stderr, "coh_worker: %s\n", err);
		return code;
	}
	me = pm_node_id(node);
	nodes = pm_node_count(node);
	mem = pm_node_region(node, &mem_len);
	if (mem_len < (PG_STRIPES + 16) * (size_t)PAGE) {
		fprintf(stderr, "coh_worker: region too small (%zu bytes)\n",
			mem_len);
		pm_node_stop(node);
		return 2;
	}
	if (workers() > MAX_WORKERS) {
		fprintf(stderr, "coh_worker: %d nodes x %d threads: at most %d workers\n",
			nodes, nthreads, MAX_WORKERS);
		pm_node_stop(node);
		return 2;
	}
	for (size_t i = 0; i < N_WORKLOADS && !r; i++)
		if (all ? workloads[i].in_all : wl == &workloads[i])
			r = workloads[i].run(iters);
	pm_node_stats(node, &st);
	printf("node %d: stats: faults zero %" PRIu64 " local %" PRIu64
	       " remote %" PRIu64 " wp %" PRIu64 " pages sent %" PRIu64
	       " received %" PRIu64 " inval sent %" PRIu64 " received %"
	       PRIu64 " downgrades %" PRIu64 " evictions %" PRIu64
	       " writebacks %" PRIu64 " prefetched %" PRIu64 " p50 %" PRIu64
	       " ns p99 %" PRIu64 " ns\n",
	       me, st.faults_zero, st.faults_local, st.faults_remote,
	       st.faults_wp, st.pages_sent, st.pages_received,
	       st.invalidations_sent, st.invalidations_received,
	       st.downgrades_received, st.evictions, st.writebacks,
	       st.prefetched, st.fault_p50_ns, st.fault_p99_ns);
	fflush(stdout);
	pm_node_stop(node);
	return r ? 1 : 0;
}
