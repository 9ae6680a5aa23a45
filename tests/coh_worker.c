// SPDX-License-Identifier: MIT
/*
 * One node of a coherence workload, run as its own process by the
 * integration tests and the demo: joins the cluster through the public API
 * and checks its results itself (exit 0 = exact, 1 = wrong, 2 = usage,
 * 78 = config).
 *
 *   coh_worker CONFIG WORKLOAD [ITERATIONS|LIMIT_MB [THREADS]]
 */
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pagemesh/pagemesh.h>

#define PAGE 4096u
#define BARRIER_MS 60000

static struct pm_node *node;
static uint8_t *mem;
static size_t mem_len;
static int me, nodes;
static int nthreads = 1;	/* application threads per node */

/* Layout of the region (page offsets), shared by every node. */
#define PG_COUNTER 0	/* one hot counter alone on its page */
#define PG_MIXED 1	/* counter + per-node data on one page */
#define PG_LOCK 2	/* bank spin lock */
#define PG_ACCOUNTS 3	/* 4 pages of accounts */
#define N_ACCOUNTS (4 * PAGE / 8)
#define PG_MONO 8	/* monotonic words, one per page: 8 pages */
#define N_MONO 8
#define PG_DONE 16	/* flags */
#define PG_RANDOM 32	/* random slots: 64 pages */
#define N_RANDOM_PAGES 64
#define PG_STRIPES 128	/* the rest */

#define FAIL(...)                                                         \
	do {                                                              \
		fprintf(stderr, "node %d: FAIL: ", me);                   \
		fprintf(stderr, __VA_ARGS__);                             \
		fprintf(stderr, "\n");                                    \
		return 1;                                                 \
	} while (0)

static uint64_t *word(uint64_t page, uint64_t idx)
{
	return (uint64_t *)(mem + page * PAGE) + idx;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static int barrier(void)
{
	int r = pm_node_barrier(node, BARRIER_MS);

	if (r)
		fprintf(stderr, "node %d: barrier: %s\n", me, strerror(-r));
	return r;
}

/* Each node writes its own stripes, then everyone verifies all of them. */
static int w_stripes(long iters)
{
	uint64_t first = PG_STRIPES, npages = mem_len / PAGE - PG_STRIPES;
	uint64_t stripe = 4;	/* pages per stripe */
	(void)iters;

	for (uint64_t p = 0; p < npages; p++) {
		uint64_t owner = (p / stripe) % nodes;

		if ((int)owner != me)
			continue;
		for (uint64_t w = 0; w < PAGE / 8; w += 8)
			*word(first + p, w) = mix((first + p) << 12 | w) ^ owner;
	}
	if (barrier())
		return 1;
	for (uint64_t p = 0; p < npages; p++) {
		uint64_t owner = (p / stripe) % nodes;

		for (uint64_t w = 0; w < PAGE / 8; w += 8) {
			uint64_t want = mix((first + p) << 12 | w) ^ owner;

			if (*word(first + p, w) != want)
				FAIL("stripes: page %" PRIu64 " word %" PRIu64
				     " is %#" PRIx64 ", node %" PRIu64
				     " wrote %#" PRIx64,
				     first + p, w, *word(first + p, w), owner,
				     want);
		}
	}
	printf("node %d: stripes: %" PRIu64 " pages verified\n", me, npages);
	return barrier();
}

/* Run fn(iters) on nthreads threads of this node and wait for them. */
static void run_threads(void *(*fn)(void *), long iters)
{
	pthread_t th[16];
	int n = nthreads < 16 ? nthreads : 16;

	for (int i = 0; i < n; i++)
		pthread_create(&th[i], NULL, fn, (void *)iters);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

static void *counter_thread(void *arg)
{
	long iters = (long)arg;

	for (long i = 0; i < iters; i++) {
		__atomic_fetch_add(word(PG_COUNTER, 0), 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(word(PG_MIXED, 0), 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

/* Atomic increments from every node (and every thread of it), alone on a
 * page and beside other nodes' data on the same page. */
static int w_counter(long iters)
{
	uint64_t *hot = word(PG_COUNTER, 0);
	uint64_t *mixed = word(PG_MIXED, 0);
	uint64_t *mine = word(PG_MIXED, 8 + me * 8);


	if (barrier())
		return 1;
	run_threads(counter_thread, iters);
	for (long i = 0; i < iters; i++)
		*mine = (uint64_t)i + 1;	/* unrelated data, same page */
	if (barrier())
		return 1;
	uint64_t want = (uint64_t)iters * nodes * nthreads;

	if (*hot != want)
		FAIL("counter: %" PRIu64 ", expected %" PRIu64, *hot, want);
	if (*mixed != want)
		FAIL("mixed counter: %" PRIu64 ", expected %" PRIu64, *mixed,
		     want);
	for (int i = 0; i < nodes; i++)
		if (*word(PG_MIXED, 8 + i * 8) != (uint64_t)iters)
			FAIL("node %d's word beside the counter is %" PRIu64
			     ", expected %ld", i, *word(PG_MIXED, 8 + i * 8),
			     iters);
	printf("node %d: counter: %" PRIu64 " = %d nodes x %d threads x %ld, exact\n",
	       me, *hot, nodes, nthreads, iters);
	return barrier();
}

static void lock(uint64_t *l)
{
	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(l, __ATOMIC_RELAXED))
			__builtin_ia32_pause();
}

static void unlock(uint64_t *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

static int bank_bad;

/* The bank's transfers from one of several threads of a node. */
static void *bank_thread(void *arg)
{
	long iters = (long)arg;
	uint64_t *l = word(PG_LOCK, 0);
	uint64_t seed = mix((uint64_t)pthread_self() ^ (uint64_t)me << 32);

	for (long i = 0; i < iters; i++) {
		uint64_t a, b;
		int64_t amt, sum = 0;

		seed = mix(seed);
		a = seed % N_ACCOUNTS;
		b = (seed >> 20) % N_ACCOUNTS;
		amt = (int64_t)((seed >> 40) % 100);
		lock(l);
		*(int64_t *)word(PG_ACCOUNTS, a) -= amt;
		*(int64_t *)word(PG_ACCOUNTS, b) += amt;
		if (i % 64 == 0) {
			for (int k = 0; k < (int)N_ACCOUNTS; k++)
				sum += *(int64_t *)word(PG_ACCOUNTS, k);
			if (sum != 1000 * (int64_t)N_ACCOUNTS)
				__atomic_store_n(&bank_bad, 1,
						 __ATOMIC_RELAXED);
		}
		unlock(l);
	}
	return NULL;
}

/* Lock-protected transfers between accounts on several pages: the total
 * never changes, checked under the lock as we go and at the end. */
static int w_bank(long iters)
{
	uint64_t *l = word(PG_LOCK, 0);
	const int64_t per = 1000;
	uint64_t seed = mix(me + 1);

	if (me == 0)
		for (int a = 0; a < (int)N_ACCOUNTS; a++)
			*(int64_t *)word(PG_ACCOUNTS, a) = per;
	if (barrier())
		return 1;
	if (nthreads > 1) {
		run_threads(bank_thread, iters);
		goto check;
	}
	for (long i = 0; i < iters; i++) {
		uint64_t a, b;
		int64_t amt;

		seed = mix(seed);
		a = seed % N_ACCOUNTS;
		b = (seed >> 20) % N_ACCOUNTS;
		amt = (int64_t)((seed >> 40) % 100);
		lock(l);
		*(int64_t *)word(PG_ACCOUNTS, a) -= amt;
		*(int64_t *)word(PG_ACCOUNTS, b) += amt;
		if (i % 64 == 0) {
			int64_t sum = 0;

			for (int k = 0; k < (int)N_ACCOUNTS; k++)
				sum += *(int64_t *)word(PG_ACCOUNTS, k);
			if (sum != per * (int64_t)N_ACCOUNTS) {
				unlock(l);
				FAIL("bank: total %" PRId64 " mid-run, expected %"
				     PRId64, sum, per * (int64_t)N_ACCOUNTS);
			}
		}
		unlock(l);
	}
check:
	if (barrier())
		return 1;
	int64_t sum = 0;

	for (int k = 0; k < (int)N_ACCOUNTS; k++)
		sum += *(int64_t *)word(PG_ACCOUNTS, k);
	if (sum != per * (int64_t)N_ACCOUNTS)
		FAIL("bank: total %" PRId64 ", expected %" PRId64, sum,
		     per * (int64_t)N_ACCOUNTS);
	if (bank_bad)
		FAIL("bank: a thread saw a wrong total mid-run");
	printf("node %d: bank: %ld transfers, total %" PRId64 " kept\n", me,
	       iters, sum);
	return barrier();
}

/* One writer raises words on several pages; readers must never see any
 * of them go backwards, nor a later word ahead of an earlier one's
 * write order (the writer writes mono[0..7] in order each round). */
static int w_monotonic(long iters)
{
	uint64_t *done = word(PG_DONE, 0);
	uint64_t seen[N_MONO] = { 0 }, reads = 0;

	if (barrier())
		return 1;
	if (me == 0) {
		for (long i = 1; i <= iters; i++)
			for (int k = 0; k < N_MONO; k++)
				__atomic_store_n(word(PG_MONO + k, 0),
						 (uint64_t)i, __ATOMIC_SEQ_CST);
		__atomic_store_n(done, 1, __ATOMIC_SEQ_CST);
	} else {
		while (!__atomic_load_n(done, __ATOMIC_SEQ_CST)) {
			uint64_t v[N_MONO];

			/* Read in reverse write order: later words may
			 * lag, never lead. */
			for (int k = N_MONO - 1; k >= 0; k--)
				v[k] = __atomic_load_n(word(PG_MONO + k, 0),
						       __ATOMIC_SEQ_CST);
			for (int k = 0; k < N_MONO; k++) {
				if (v[k] < seen[k])
					FAIL("monotonic: word %d went back from %"
					     PRIu64 " to %" PRIu64, k, seen[k],
					     v[k]);
				seen[k] = v[k];
				if (k && v[k] > v[k - 1])
					FAIL("monotonic: word %d = %" PRIu64
					     " ahead of word %d = %" PRIu64,
					     k, v[k], k - 1, v[k - 1]);
			}
			reads++;
		}
	}
	if (barrier())
		return 1;
	for (int k = 0; k < N_MONO; k++)
		if (*word(PG_MONO + k, 0) != (uint64_t)iters)
			FAIL("monotonic: final word %d = %" PRIu64, k,
			     *word(PG_MONO + k, 0));
	printf("node %d: monotonic: %s, %" PRIu64 " reads, never backwards\n",
	       me, me ? "reader" : "writer", reads);
	return barrier();
}

/* Resident bytes of the region, from /proc/self/smaps; 0 if not found. */
static uint64_t region_rss(void)
{
	char line[256];
	uint64_t rss = 0;
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = lo == (uintptr_t)mem;
			continue;
		}
		if (in && sscanf(line, "Rss: %" SCNu64, &rss) == 1)
			break;
	}
	fclose(f);
	return rss * 1024;
}

/*
 * Bounded cache: node 0 (with pager.local_limit set to a quarter of the
 * region) writes then verifies every page of the whole region, then reads
 * and verifies it again with 9 reads in 10 going to a hot eighth of it
 * (pages the policy may protect, leave and take back), while the others
 * keep incrementing counters on pages node 0 also evicts; node 0 checks
 * its resident bytes never pass limit + slack (argument 4: the limit in
 * MiB; slack 1 MiB), everyone checks the counters.
 */
static int w_cache(long limit_mb)
{
	uint64_t first = PG_STRIPES, npages = mem_len / PAGE - PG_STRIPES;
	uint64_t limit = (uint64_t)limit_mb << 20, slack = 1 << 20, max = 0;
	uint64_t *done = word(PG_DONE, 8), hot_faults = 0;
	long bumps = 0;

	if (barrier())
		return 1;
	if (me == 0) {
		uint64_t x = 0x9e3779b97f4a7c15ull;
		struct pm_stats st;

		for (int pass = 0; pass < 3; pass++) {
			if (pass == 2) {
				pm_node_stats(node, &st);
				hot_faults = st.faults_total;
			}
			for (uint64_t i = 0; i < npages; i++) {
				uint64_t p = i, *w;
				uint64_t want;

				if (pass == 2) {	/* hot-set reads */
					x ^= x << 13;
					x ^= x >> 7;
					x ^= x << 17;
					p = (x >> 8) % (x % 10 < 9 ? npages / 8
								   : npages);
				}
				w = word(first + p, 0);
				want = mix(first + p) ^ 0x5a5a;

				if (pass == 0) {
					w[0] = want;
					w[PAGE / 8 - 1] = ~want;
				} else if (w[0] != want ||
					   w[PAGE / 8 - 1] != ~want) {
					FAIL("cache: page %" PRIu64 " is %#" PRIx64 "/%#" PRIx64 ", wrote %#" PRIx64,
					     first + p, w[0], w[PAGE / 8 - 1],
					     want);
				}
				/* The counters' pages come and go too. */
				if (i % 64 == 0)
					__atomic_fetch_add(word(PG_COUNTER, 0),
							   1, __ATOMIC_SEQ_CST);
				if (i % 256 == 0) {
					uint64_t r = region_rss();

					max = r > max ? r : max;
					if (limit && r > limit + slack)
						FAIL("cache: %" PRIu64 " bytes resident, limit %" PRIu64,
						     r, limit);
				}
			}
		}
		pm_node_stats(node, &st);
		hot_faults = st.faults_total - hot_faults;
		__atomic_store_n(done, 1, __ATOMIC_SEQ_CST);
		bumps = (long)(3 * ((npages + 63) / 64));
	} else {
		while (!__atomic_load_n(done, __ATOMIC_SEQ_CST)) {
			__atomic_fetch_add(word(PG_COUNTER, 0), 1,
					   __ATOMIC_SEQ_CST);
			bumps++;
		}
	}
	/* Everyone publishes its count; the sum must be the counter. */
	__atomic_fetch_add(word(PG_DONE, 16), (uint64_t)bumps,
			   __ATOMIC_SEQ_CST);
	if (barrier())
		return 1;
	if (*word(PG_COUNTER, 0) != *word(PG_DONE, 16))
		FAIL("cache: counter %" PRIu64 ", increments %" PRIu64,
		     *word(PG_COUNTER, 0), *word(PG_DONE, 16));
	if (me == 0)
		printf("node 0: cache: %" PRIu64 " pages written and verified, then %" PRIu64 " hot-set reads (%" PRIu64 " faults); max resident %" PRIu64 " KiB (limit %" PRIu64 " KiB)\n",
		       npages, npages, hot_faults, max >> 10, limit >> 10);
	printf("node %d: cache: counter %" PRIu64 " exact\n", me,
	       *word(PG_COUNTER, 0));
	return barrier();
}

/*
 * A node's own written pages taken over by a sequential writer, which makes
 * the home give them up in runs ahead of it (coh.c recall_ahead). Window h
 * is the last STREAM_PAGES pages homed on node h (homes hold
 * ceil(pages / nodes) pages each, in order). Node h + 1 adds 1 to the
 * counter of every page of window h, in order. In round 0 the home leaves
 * its window alone, so runs must be given up; in later rounds it adds to
 * its own counters meanwhile, pass after pass, taking pages back from the
 * writer and racing its runs. Everyone then checks every window's data;
 * each home checks its counters exactly.
 */
#define STREAM_PAGES 1024
#define STREAM_PASSES 4		/* at most, per racing round */

static uint64_t stream_first(int h)
{
	uint64_t npages = mem_len / PAGE, per = (npages + nodes - 1) / nodes;
	uint64_t end = per * (uint64_t)(h + 1);

	return (end < npages ? end : npages) - STREAM_PAGES;
}

struct stream_arg {
	uint64_t first;
	long round;
	int bad, done;
};

/* The writer: every page of another node's window, in order. */
static void *stream_writer(void *arg)
{
	struct stream_arg *a = arg;

	for (uint64_t i = 0; i < STREAM_PAGES && !a->bad; i++) {
		uint64_t p = a->first + i;

		__atomic_fetch_add(word(p, 1), 1, __ATOMIC_SEQ_CST);
		if (*word(p, 0) != mix(p ^ (uint64_t)a->round)) {
			fprintf(stderr, "node %d: FAIL: stream: page %" PRIu64 " data %#" PRIx64 " when taken, expected %#" PRIx64 "\n",
				me, p, *word(p, 0), mix(p ^ (uint64_t)a->round));
			a->bad = 1;
		}
	}
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int w_stream(long rounds)
{
	uint64_t mine = stream_first(me);
	uint64_t taken = stream_first((me + nodes - 1) % nodes);
	static uint64_t tally[STREAM_PAGES];
	uint64_t ahead = 0, passes = 0;
	struct pm_stats a, b;

	for (int h = 0; h < nodes; h++) {
		uint64_t per = (mem_len / PAGE + nodes - 1) / nodes;
		uint64_t start = per * (uint64_t)h + (h ? 0 : PG_STRIPES);
		uint64_t end = stream_first(h) + STREAM_PAGES; /* wraps back */

		if (end < start + STREAM_PAGES)
			FAIL("stream: node %d homes fewer than %d pages past the fixed ones",
			     h, STREAM_PAGES);
	}
	for (long r = 0; r < rounds; r++) {
		struct stream_arg wa = { .first = taken, .round = r };
		pthread_t th;

		memset(tally, 0, sizeof(tally));
		for (uint64_t i = 0; i < STREAM_PAGES; i++) {
			*word(mine + i, 0) = mix((mine + i) ^ (uint64_t)r);
			*word(mine + i, 1) = 0;
		}
		pm_node_stats(node, &a);
		if (barrier())
			return 1;
		pthread_create(&th, NULL, stream_writer, &wa);
		for (int k = 0; r > 0 && k < STREAM_PASSES &&
				(k == 0 || !__atomic_load_n(&wa.done,
							    __ATOMIC_ACQUIRE));
		     k++, passes++)
			for (uint64_t i = 0; i < STREAM_PAGES; i++) {
				__atomic_fetch_add(word(mine + i, 1), 1,
						   __ATOMIC_SEQ_CST);
				tally[i]++;
			}
		pthread_join(th, NULL);
		if (wa.bad)
			return 1;
		if (barrier())
			return 1;
		pm_node_stats(node, &b);
		if (r == 0)
			ahead = b.recalls_ahead - a.recalls_ahead;
		for (int h = 0; h < nodes; h++) {
			uint64_t f = stream_first(h);

			for (uint64_t i = 0; i < STREAM_PAGES; i++) {
				uint64_t data = *word(f + i, 0);
				uint64_t count = *word(f + i, 1);

				if (data != mix((f + i) ^ (uint64_t)r))
					FAIL("stream: page %" PRIu64 " data %#" PRIx64 ", node %d wrote %#" PRIx64,
					     f + i, data, h,
					     mix((f + i) ^ (uint64_t)r));
				if (h == me && count != 1 + tally[i])
					FAIL("stream: page %" PRIu64 " counter %" PRIu64 ", 1 + %" PRIu64 " added",
					     f + i, count, tally[i]);
			}
		}
		if (barrier())
			return 1;
	}
	printf("node %d: stream: %ld rounds of %d pages exact (%" PRIu64 " racing passes); own pages given up ahead of the writer in round 0: %" PRIu64 "\n",
	       me, rounds, STREAM_PAGES, passes, ahead);
	if (!ahead)
		FAIL("stream: no run of pages was given up ahead of the writer");
	return barrier();
}

/* Random reads and writes: each node owns slots spread over shared pages
 * (interleaved with other nodes' slots), keeps a shadow, and checks its
 * own slots exactly and others' slots never go backwards. */
static int w_random(long iters)
{
	const uint64_t nslots = N_RANDOM_PAGES * (PAGE / 8);
	uint64_t *shadow = calloc(nslots, sizeof(*shadow));
	uint64_t seed = mix(0x1234 + me);
	int ret = 1;

	if (!shadow)
		return 1;
	if (barrier())
		goto out;
	for (long i = 0; i < iters; i++) {
		uint64_t s, *w;

		seed = mix(seed);
		s = seed % nslots;
		w = word(PG_RANDOM, 0) + s;
		if ((int)(s % nodes) == me && (seed >> 60) < 8) {
			*w = ++shadow[s] << 8 | (uint64_t)me;
		} else {
			uint64_t v = *w;

			if ((int)(s % nodes) == me && v != (shadow[s] ? (shadow[s] << 8 | (uint64_t)me) : 0)) {
				fprintf(stderr, "node %d: FAIL: random: own slot %" PRIu64 " is %#" PRIx64 ", wrote %#" PRIx64 "\n",
					me, s, v, shadow[s] << 8 | (uint64_t)me);
				goto out;
			}
			if ((int)(s % nodes) != me && v >> 8 < shadow[s]) {
				fprintf(stderr, "node %d: FAIL: random: slot %" PRIu64 " went back to %" PRIu64 " from %" PRIu64 "\n",
					me, s, v >> 8, shadow[s]);
				goto out;
			}
			if ((int)(s % nodes) != me)
				shadow[s] = v >> 8;
		}
	}
	/* Publish how many writes each slot got, then check everyone's. */
	if (barrier())
		goto out;
	for (uint64_t s = 0; s < nslots; s++) {
		uint64_t v = *(word(PG_RANDOM, 0) + s);

		if ((int)(s % nodes) == me &&
		    v != (shadow[s] ? (shadow[s] << 8 | (uint64_t)me) : 0)) {
			fprintf(stderr, "node %d: FAIL: random: final own slot %" PRIu64 " is %#" PRIx64 "\n",
				me, s, v);
			goto out;
		}
		if (v && (v & 0xff) != s % nodes) {
			fprintf(stderr, "node %d: FAIL: random: slot %" PRIu64 " tagged by node %" PRIu64 "\n",
				me, s, v & 0xff);
			goto out;
		}
	}
	printf("node %d: random: %ld operations verified\n", me, iters);
	ret = barrier();
out:
	free(shadow);
	return ret;
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
		   "  ITERATIONS: operations per worker (counter, bank), rounds (monotonic;\n"
		   "  stream, default 3), 10 operations (random); stripes takes none;\n"
		   "  cache takes LIMIT_MB, its node 0's pager.local_limit\n"
		   "  THREADS: application threads per node for counter and bank\n");
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
	for (size_t i = 0; i < N_WORKLOADS && !r; i++)
		if (all ? workloads[i].in_all : wl == &workloads[i])
			r = workloads[i].run(iters);
	pm_node_stats(node, &st);
	printf("node %d: stats: faults zero %" PRIu64 " local %" PRIu64
	       " remote %" PRIu64 " wp %" PRIu64 " pages sent %" PRIu64
	       " received %" PRIu64 " inval sent %" PRIu64 " received %"
	       PRIu64 " evictions %" PRIu64 " writebacks %" PRIu64
	       " prefetched %" PRIu64 " p50 %" PRIu64 " ns p99 %" PRIu64
	       " ns\n",
	       me, st.faults_zero, st.faults_local, st.faults_remote,
	       st.faults_wp, st.pages_sent, st.pages_received,
	       st.invalidations_sent, st.invalidations_received,
	       st.evictions, st.writebacks, st.prefetched,
	       st.fault_p50_ns, st.fault_p99_ns);
	fflush(stdout);
	pm_node_stop(node);
	return r ? 1 : 0;
}
