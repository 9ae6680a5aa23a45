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
 */
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <sched.h>
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
/* How long a worker waits for a turn, round or message before it fails:
 * far beyond any hand-off on a loaded machine, well inside the tests'
 * deadlines, so a hang is reported by the node that saw it. */
#define WAIT_MS 60000
/* Workers (nodes x threads) the per-worker words of a page can hold. */
#define MAX_WORKERS 256

static struct pm_node *node;
static uint8_t *mem;
static size_t mem_len;
static int me, nodes;
static int nthreads = 1;	/* application threads per node */
static int failed;		/* a worker of this node failed: stop waiting */

/* Layout of the region (page offsets), shared by every node. */
#define PG_COUNTER 0	/* one hot counter alone on its page */
#define PG_MIXED 1	/* counter + per-worker data on one page */
#define PG_LOCK 2	/* bank spin lock */
#define PG_ACCOUNTS 3	/* 4 pages of accounts */
#define N_ACCOUNTS (4 * PAGE / 8)
#define PG_MONO 8	/* monotonic words, one per page: 8 pages */
#define N_MONO 8
#define PG_DONE 16	/* flags */
#define PG_TURN 17	/* turns: whose turn it is */
#define PG_TALLY 18	/* turns: turns taken, one word per worker */
#define PG_SUM 19	/* turns: running sum and the last worker */
#define PG_MSG_FLAG 20	/* messages: last message sent */
#define PG_MSG_ACK 21	/* messages: last message acknowledged */
#define PG_MSG_BODY 22	/* messages: 2 pages of message */
#define PG_BANK_ROUND 24	/* bank: transfers done */
#define PG_RANDOM_ROUND 25	/* random: bursts done */
#define PG_MONO_ACK 26	/* monotonic: last round each reader saw */
#define PG_RANDOM 32	/* random slots: 64 pages */
#define N_RANDOM_PAGES 64
#define PG_STRIPES 128	/* the rest */

#define FAIL(...)                                                         \
	do {                                                              \
		__atomic_store_n(&failed, 1, __ATOMIC_RELAXED);           \
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

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

static int barrier(void)
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
static int wait_ge(const uint64_t *w, uint64_t want, uint64_t *seen,
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
 * *before, at least min (what the workload's structure forces, `why`).
 * A node loses its copy of a page another node writes (an invalidation
 * or recall, counted here whether or not the page is homed here), so
 * each "another node wrote it since this node held it" costs at least
 * one. Valid without pager.local_limit: an evicted copy goes silently.
 */
static int moved(const char *wl, const struct pm_stats *before, uint64_t min,
		 const char *why)
{
	struct pm_stats now;
	uint64_t got;
	int r = pm_node_stats(node, &now);

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

static int stats(struct pm_stats *s)
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
static uint64_t round_gaps(long rounds)
{
	return nodes > 1 ? (uint64_t)rounds / 2 : 0;
}

/* Workers: nthreads per node, worker w = thread * nodes + node, so that
 * consecutive worker ids are on different nodes. */
static int workers(void)
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

/* fn(w, iters) for each of this node's workers; 0 when all passed. */
static int run_workers(int (*fn)(int w, long iters), long iters)
{
	struct worker wk[16];
	pthread_t th[16];
	int started = 0, r = 0;

	if (nthreads == 1)
		return fn(me, iters);
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
	return r ? 1 : 0;
}

/*
 * Each node writes its own stripes, then everyone verifies all of them;
 * in round 1 every stripe has a new owner, so each page another node now
 * writes was read here in round 0 and must be taken away.
 */
#define STRIPE 4		/* pages per stripe */
#define STRIPE_ROUNDS 2

static int stripe_owner(uint64_t p, int round)
{
	return (int)((p / STRIPE + (uint64_t)round) % (uint64_t)nodes);
}

static uint64_t stripe_data(uint64_t page, uint64_t w, int owner, int round)
{
	return mix(page << 12 | w) ^ (uint64_t)owner ^ (uint64_t)round << 40;
}

static int w_stripes(long iters)
{
	uint64_t first = PG_STRIPES, npages = mem_len / PAGE - PG_STRIPES;
	uint64_t taken = 0;
	struct pm_stats before;
	char why[128];
	(void)iters;

	if (stats(&before))
		return 1;
	for (int r = 0; r < STRIPE_ROUNDS; r++) {
		for (uint64_t p = 0; p < npages; p++) {
			int owner = stripe_owner(p, r);

			if (owner != me)
				continue;
			for (uint64_t w = 0; w < PAGE / 8; w += 8)
				*word(first + p, w) =
					stripe_data(first + p, w, owner, r);
		}
		if (barrier())
			return 1;
		for (uint64_t p = 0; p < npages; p++) {
			int owner = stripe_owner(p, r);

			if (r && owner != me)
				taken++;
			for (uint64_t w = 0; w < PAGE / 8; w += 8) {
				uint64_t want = stripe_data(first + p, w,
							    owner, r);

				if (*word(first + p, w) != want)
					FAIL("stripes: round %d: page %" PRIu64 " word %" PRIu64 " is %#" PRIx64 ", node %d wrote %#" PRIx64,
					     r, first + p, w,
					     *word(first + p, w), owner, want);
			}
		}
		if (barrier())
			return 1;
	}
	printf("node %d: stripes: %" PRIu64 " pages verified in %d rounds\n",
	       me, npages, STRIPE_ROUNDS);
	snprintf(why, sizeof(why),
		 "%" PRIu64 " pages read here, then written by their new owner",
		 taken);
	if (moved("stripes", &before, taken, why))
		return 1;
	return barrier();
}

/*
 * Work in rounds that every worker joins: ROUND_OPS operations each, then
 * wait until all workers have done theirs. ITERATIONS stay operations per
 * worker (as callers under packet loss count on), and the rounds make the
 * pages visit every node every ROUND_OPS operations while the nodes race
 * for them within a round.
 */
#define ROUND_OPS 8

static long rounds_of(long ops, long per_round)
{
	return (ops + per_round - 1) / per_round;
}

/* Operations per worker once round k is over. */
static uint64_t ops_by(long k, long ops)
{
	uint64_t n = ((uint64_t)k + 1) * ROUND_OPS;

	return n < (uint64_t)ops ? n : (uint64_t)ops;
}

/*
 * Atomic increments: every worker adds 1 to a counter alone on its page
 * and to one beside every worker's own word.
 */
static int counter_worker(int w, long incs)
{
	uint64_t *hot = word(PG_COUNTER, 0), *mixed = word(PG_MIXED, 0);
	uint64_t *mine = word(PG_MIXED, 8 + (uint64_t)w);
	uint64_t all = (uint64_t)workers(), v, h;
	long i = 0;

	for (long k = 0; k < rounds_of(incs, ROUND_OPS); k++) {
		uint64_t lo = ops_by(k, incs) * all;
		/* Nobody can be past the next round: it needs this one. */
		uint64_t hi = lo + (all - 1) * ROUND_OPS;

		for (; (uint64_t)i < ops_by(k, incs); i++) {
			__atomic_fetch_add(hot, 1, __ATOMIC_SEQ_CST);
			__atomic_fetch_add(mixed, 1, __ATOMIC_SEQ_CST);
		}
		__atomic_store_n(mine, (uint64_t)i, __ATOMIC_SEQ_CST);
		/* mixed is added to last: once it is complete, hot is. */
		if (wait_ge(mixed, lo, &v, "counter: round", (uint64_t)k))
			return 1;
		h = __atomic_load_n(hot, __ATOMIC_SEQ_CST);
		if (v > hi || h < lo || h > hi)
			FAIL("counter: after round %ld the counters are %" PRIu64 " and %" PRIu64 ", expected %" PRIu64 " to %" PRIu64,
			     k, h, v, lo, hi);
	}
	return 0;
}

static int w_counter(long incs)
{
	uint64_t *hot = word(PG_COUNTER, 0), *mixed = word(PG_MIXED, 0);
	uint64_t want = (uint64_t)incs * (uint64_t)workers();
	long rounds = rounds_of(incs, ROUND_OPS);
	struct pm_stats before;
	char why[128];

	if (barrier() || stats(&before))
		return 1;
	if (run_workers(counter_worker, incs))
		return 1;
	if (barrier())
		return 1;
	if (*hot != want)
		FAIL("counter: %" PRIu64 ", expected %" PRIu64, *hot, want);
	if (*mixed != want)
		FAIL("mixed counter: %" PRIu64 ", expected %" PRIu64, *mixed,
		     want);
	for (int i = 0; i < workers(); i++)
		if (*word(PG_MIXED, 8 + (uint64_t)i) != (uint64_t)incs)
			FAIL("worker %d's word beside the counter is %" PRIu64 ", expected %ld",
			     i, *word(PG_MIXED, 8 + (uint64_t)i), incs);
	printf("node %d: counter: %" PRIu64 " = %d nodes x %d threads x %ld, exact, in %ld rounds\n",
	       me, *hot, nodes, nthreads, incs, rounds);
	snprintf(why, sizeof(why), "2 pages x %" PRIu64 " round gaps",
		 round_gaps(rounds));
	if (moved("counter", &before, 2 * round_gaps(rounds), why))
		return 1;
	return barrier();
}

static int lock(uint64_t *l, long k)
{
	long long end = now_ms() + WAIT_MS;

	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)) {
		while (__atomic_load_n(l, __ATOMIC_RELAXED)) {
			if (__atomic_load_n(&failed, __ATOMIC_RELAXED))
				return 1;
			if (now_ms() > end)
				FAIL("bank: round %ld: the lock stayed taken for %d s",
				     k, WAIT_MS / 1000);
			sched_yield();
		}
	}
	return 0;
}

static void unlock(uint64_t *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

#define BANK_PER 1000	/* each account's opening balance */

static int64_t *account(uint64_t a)
{
	return (int64_t *)word(PG_ACCOUNTS, a);
}

/*
 * Lock-protected transfers between accounts on several pages, in rounds.
 * The total never changes: checked under the lock as we go and at the end.
 */
static int bank_worker(int w, long transfers)
{
	uint64_t *l = word(PG_LOCK, 0), *done = word(PG_BANK_ROUND, 0);
	uint64_t seed = mix((uint64_t)w + 1), all = (uint64_t)workers(), v;
	const int64_t total = BANK_PER * (int64_t)N_ACCOUNTS;
	long i = 0;

	for (long k = 0; k < rounds_of(transfers, ROUND_OPS); k++) {
		uint64_t lo = ops_by(k, transfers) * all;

		for (; (uint64_t)i < ops_by(k, transfers); i++) {
			uint64_t a, b;
			int64_t amt;

			seed = mix(seed);
			a = seed % N_ACCOUNTS;
			b = (seed >> 20) % N_ACCOUNTS;
			amt = (int64_t)((seed >> 40) % 100);
			if (lock(l, k))
				return 1;
			*account(a) -= amt;
			*account(b) += amt;
			if (i % 16 == 0) {
				int64_t sum = 0;

				for (uint64_t j = 0; j < N_ACCOUNTS; j++)
					sum += *account(j);
				if (sum != total) {
					unlock(l);
					FAIL("bank: total %" PRId64 " after %ld transfers, expected %" PRId64,
					     sum, i, total);
				}
			}
			unlock(l);
			__atomic_fetch_add(done, 1, __ATOMIC_SEQ_CST);
		}
		if (wait_ge(done, lo, &v, "bank: round", (uint64_t)k))
			return 1;
		if (v > lo + (all - 1) * ROUND_OPS)
			FAIL("bank: %" PRIu64 " transfers done after round %ld, at most %" PRIu64 " possible",
			     v, k, lo + (all - 1) * ROUND_OPS);
	}
	return 0;
}

static int w_bank(long transfers)
{
	const int64_t total = BANK_PER * (int64_t)N_ACCOUNTS;
	uint64_t want = (uint64_t)transfers * (uint64_t)workers();
	long rounds = rounds_of(transfers, ROUND_OPS);
	struct pm_stats before;
	int64_t sum = 0;
	char why[128];

	if (me == 0)
		for (uint64_t a = 0; a < N_ACCOUNTS; a++)
			*account(a) = BANK_PER;
	if (barrier() || stats(&before))
		return 1;
	if (run_workers(bank_worker, transfers))
		return 1;
	if (barrier())
		return 1;
	for (uint64_t a = 0; a < N_ACCOUNTS; a++)
		sum += *account(a);
	if (sum != total)
		FAIL("bank: total %" PRId64 ", expected %" PRId64, sum, total);
	if (*word(PG_BANK_ROUND, 0) != want)
		FAIL("bank: %" PRIu64 " transfers counted, expected %" PRIu64,
		     *word(PG_BANK_ROUND, 0), want);
	printf("node %d: bank: %" PRIu64 " transfers in %ld rounds, total %" PRId64 " kept\n",
	       me, want, rounds, sum);
	snprintf(why, sizeof(why),
		 "lock and round pages x %" PRIu64 " round gaps",
		 round_gaps(rounds));
	if (moved("bank", &before, 2 * round_gaps(rounds), why))
		return 1;
	return barrier();
}

/*
 * One writer raises words on several pages; readers must never see any
 * of them go backwards, nor a later word ahead of an earlier one's
 * write order (the writer writes mono[0..7] in order each round). Each
 * reader acknowledges every round it has read, and the writer starts the
 * next only when all have: so every round moves all 8 pages to every
 * reader and back.
 */
static int w_monotonic(long rounds)
{
	uint64_t *ack = word(PG_MONO_ACK, 0);
	uint64_t seen[N_MONO] = { 0 }, reads = 0, min = 0, v;
	struct pm_stats before;
	char why[128];

	if (barrier() || stats(&before))
		return 1;
	if (me == 0) {
		for (long i = 1; i <= rounds; i++) {
			for (int r = 1; r < nodes; r++)
				if (wait_ge(&ack[r], (uint64_t)i - 1, &v,
					    "monotonic: a reader's acknowledgement of round",
					    (uint64_t)i - 1))
					return 1;
			for (int k = 0; k < N_MONO; k++)
				__atomic_store_n(word(PG_MONO + k, 0),
						 (uint64_t)i, __ATOMIC_SEQ_CST);
		}
	} else {
		long long end = now_ms() + WAIT_MS;

		while (seen[N_MONO - 1] < (uint64_t)rounds) {
			uint64_t x[N_MONO];

			/* Read in reverse write order: later words may
			 * lag, never lead. */
			for (int k = N_MONO - 1; k >= 0; k--)
				x[k] = __atomic_load_n(word(PG_MONO + k, 0),
						       __ATOMIC_SEQ_CST);
			for (int k = 0; k < N_MONO; k++) {
				if (x[k] < seen[k])
					FAIL("monotonic: word %d went back from %"
					     PRIu64 " to %" PRIu64, k, seen[k],
					     x[k]);
				if (k && x[k] > x[k - 1])
					FAIL("monotonic: word %d = %" PRIu64
					     " ahead of word %d = %" PRIu64,
					     k, x[k], k - 1, x[k - 1]);
			}
			/* The writer waits for this reader's acknowledgement
			 * before each round: one round apart at most. */
			if (x[0] > x[N_MONO - 1] + 1)
				FAIL("monotonic: word 0 = %" PRIu64 " while word %d = %" PRIu64 " is unacknowledged",
				     x[0], N_MONO - 1, x[N_MONO - 1]);
			if (x[N_MONO - 1] > seen[N_MONO - 1]) {
				__atomic_store_n(&ack[me], x[N_MONO - 1],
						 __ATOMIC_SEQ_CST);
				end = now_ms() + WAIT_MS;
			}
			memcpy(seen, x, sizeof(seen));
			reads++;
			if (now_ms() > end)
				FAIL("monotonic: no new round for %d s; at round %" PRIu64,
				     WAIT_MS / 1000, seen[N_MONO - 1]);
			sched_yield();
		}
	}
	if (barrier())
		return 1;
	for (int k = 0; k < N_MONO; k++)
		if (*word(PG_MONO + k, 0) != (uint64_t)rounds)
			FAIL("monotonic: final word %d = %" PRIu64, k,
			     *word(PG_MONO + k, 0));
	printf("node %d: monotonic: %s, %ld rounds, %" PRIu64 " reads, never backwards\n",
	       me, me ? "reader" : "writer", rounds, reads);
	/* Rounds 2..N: the readers held every page at the round before
	 * (they acknowledged it), so the writer takes each back (a write
	 * fault) and each reader loses each (an invalidation). */
	if (nodes > 1 && rounds > 1)
		min = N_MONO * ((uint64_t)rounds - 1);
	snprintf(why, sizeof(why), "%d pages x %ld acknowledged rounds",
		 N_MONO, rounds > 1 ? rounds - 1 : 0);
	if (moved("monotonic", &before, min, why))
		return 1;
	return barrier();
}

/*
 * Random reads and writes: each node owns slots spread over shared pages
 * (interleaved with other nodes' slots), keeps a shadow, and checks its
 * own slots exactly and others' slots never go backwards. The operations
 * come in bursts; every node finishes a burst before any starts the next.
 */
#define RANDOM_BURST 16
#define N_SLOTS (N_RANDOM_PAGES * (PAGE / 8))

/* Node n's next operation: every node can replay every node's. */
static uint64_t random_op(uint64_t *seed, int n, bool *write)
{
	uint64_t s;

	*seed = mix(*seed);
	s = *seed % N_SLOTS;
	*write = (int)(s % (uint64_t)nodes) == n && (*seed >> 60) < 8;
	return s;
}

static uint64_t random_seed(int n)
{
	return mix(0x1234 + (uint64_t)n);
}

/*
 * What the bursts force on the random pages: when this node touched a
 * page in burst k (so holds a copy) and another node writes it in burst
 * k + 1, this node lost that copy in between. Replays every node's
 * operations; counts such k per page, never two adjacent ones (their
 * spans could share the invalidation).
 */
static int random_forced(long ops, long bursts, uint64_t *n)
{
	uint64_t *touched = calloc((size_t)bursts * 2 * nodes, 8);
	uint64_t *written = touched + (size_t)bursts * nodes;

	*n = 0;
	if (nodes < 2)
		goto out;
	if (!touched)
		FAIL("random: no memory to replay %ld operations", ops);
	for (int i = 0; i < nodes; i++) {
		uint64_t seed = random_seed(i);

		for (long j = 0; j < ops; j++) {
			bool wr;
			uint64_t s = random_op(&seed, i, &wr);
			uint64_t bit = 1ull << (s / (PAGE / 8));
			size_t at = (size_t)(j / RANDOM_BURST) * nodes + i;

			touched[at] |= bit;
			if (wr)
				written[at] |= bit;
		}
	}
	for (int p = 0; p < N_RANDOM_PAGES; p++) {
		for (long k = 0; k + 1 < bursts; k++) {
			uint64_t bit = 1ull << p, others = 0;

			for (int i = 0; i < nodes; i++)
				if (i != me)
					others |= written[(k + 1) * nodes + i];
			if ((touched[k * nodes + me] & bit) && (others & bit)) {
				(*n)++;
				k++;
			}
		}
	}
out:
	free(touched);
	return 0;
}

static int w_random(long ops)
{
	uint64_t *shadow = calloc(N_SLOTS, sizeof(*shadow));
	uint64_t *done = word(PG_RANDOM_ROUND, 0), seed = random_seed(me);
	long bursts = (ops + RANDOM_BURST - 1) / RANDOM_BURST;
	uint64_t forced, v;
	struct pm_stats before;
	char why[160];
	int ret = 1;

	if (!shadow)
		return 1;
	if (barrier() || stats(&before))
		goto out;
	for (long i = 0; i < ops; i++) {
		bool wr;
		uint64_t s = random_op(&seed, me, &wr), *w;

		w = word(PG_RANDOM, 0) + s;
		if (wr) {
			*w = ++shadow[s] << 8 | (uint64_t)me;
		} else {
			uint64_t x = *w;

			if ((int)(s % nodes) == me && x != (shadow[s] ? (shadow[s] << 8 | (uint64_t)me) : 0)) {
				fprintf(stderr, "node %d: FAIL: random: own slot %" PRIu64 " is %#" PRIx64 ", wrote %#" PRIx64 "\n",
					me, s, x, shadow[s] << 8 | (uint64_t)me);
				goto out;
			}
			if ((int)(s % nodes) != me && x >> 8 < shadow[s]) {
				fprintf(stderr, "node %d: FAIL: random: slot %" PRIu64 " went back to %" PRIu64 " from %" PRIu64 "\n",
					me, s, x >> 8, shadow[s]);
				goto out;
			}
			if ((int)(s % nodes) != me)
				shadow[s] = x >> 8;
		}
		if ((i + 1) % RANDOM_BURST && i + 1 < ops)
			continue;
		/* End of a burst: wait until every node's is over. */
		uint64_t k = (uint64_t)(i / RANDOM_BURST);

		__atomic_fetch_add(done, 1, __ATOMIC_SEQ_CST);
		if (wait_ge(done, (k + 1) * (uint64_t)nodes, &v,
			    "random: burst", k))
			goto out;
	}
	if (barrier())
		goto out;
	for (uint64_t s = 0; s < N_SLOTS; s++) {
		uint64_t x = *(word(PG_RANDOM, 0) + s);

		if ((int)(s % nodes) == me &&
		    x != (shadow[s] ? (shadow[s] << 8 | (uint64_t)me) : 0)) {
			fprintf(stderr, "node %d: FAIL: random: final own slot %" PRIu64 " is %#" PRIx64 "\n",
				me, s, x);
			goto out;
		}
		if (x && (x & 0xff) != s % nodes) {
			fprintf(stderr, "node %d: FAIL: random: slot %" PRIu64 " tagged by node %" PRIu64 "\n",
				me, s, x & 0xff);
			goto out;
		}
	}
	printf("node %d: random: %ld operations in %ld bursts verified\n", me,
	       ops, bursts);
	if (random_forced(ops, bursts, &forced))
		goto out;
	snprintf(why, sizeof(why),
		 "round page x %" PRIu64 " burst gaps + %" PRIu64 " random pages written elsewhere the burst after",
		 round_gaps(bursts), forced);
	if (moved("random", &before, round_gaps(bursts) + forced, why))
		goto out;
	ret = barrier();
out:
	free(shadow);
	return ret;
}

/*
 * Strict turns: worker w waits until turn == w (mod workers), checks
 * what the worker before it left on two other pages (a tally of turns
 * per worker, a running sum and who ran last), updates them and passes
 * the turn. Consecutive turns are on different nodes, so all three pages
 * move at every turn.
 */
static int turns_worker(int w, long turns)
{
	uint64_t *turn = word(PG_TURN, 0), *tally = word(PG_TALLY, 0);
	uint64_t *sum = word(PG_SUM, 0), *last = word(PG_SUM, 1);
	uint64_t all = (uint64_t)workers(), v;

	for (long i = 0; i < turns; i++) {
		uint64_t t = (uint64_t)i * all + (uint64_t)w;
		uint64_t prev = t ? (t - 1) % all + 1 : 0;

		if (wait_ge(turn, t, &v, "turns: turn", t))
			return 1;
		if (v != t)
			FAIL("turns: the turn is %" PRIu64 " while worker %d waits for turn %" PRIu64,
			     v, w, t);
		if (tally[w] != (uint64_t)i)
			FAIL("turns: turn %" PRIu64 ": worker %d's tally is %" PRIu64 ", it took %ld turns",
			     t, w, tally[w], i);
		if (*sum != t * (t + 1) / 2 || *last != prev)
			FAIL("turns: turn %" PRIu64 ": sum %" PRIu64 " after worker %" PRIu64 ", expected %" PRIu64 " after worker %" PRIu64,
			     t, *sum, *last ? *last - 1 : 0, t * (t + 1) / 2,
			     prev ? prev - 1 : 0);
		tally[w] = (uint64_t)i + 1;
		*sum += t + 1;
		*last = (uint64_t)w + 1;
		__atomic_store_n(turn, t + 1, __ATOMIC_SEQ_CST);
	}
	return 0;
}

static int w_turns(long turns)
{
	uint64_t all = (uint64_t)workers(), n = (uint64_t)turns * all;
	uint64_t mine = (uint64_t)turns * (uint64_t)nthreads, min = 0;
	struct pm_stats before;
	char why[128];

	if (barrier() || stats(&before))
		return 1;
	if (run_workers(turns_worker, turns))
		return 1;
	if (barrier())
		return 1;
	if (*word(PG_TURN, 0) != n)
		FAIL("turns: final turn %" PRIu64 ", expected %" PRIu64,
		     *word(PG_TURN, 0), n);
	for (uint64_t i = 0; i < all; i++)
		if (*word(PG_TALLY, i) != (uint64_t)turns)
			FAIL("turns: worker %" PRIu64 " took %" PRIu64 " turns, expected %ld",
			     i, *word(PG_TALLY, i), turns);
	if (*word(PG_SUM, 0) != n * (n + 1) / 2)
		FAIL("turns: sum %" PRIu64 ", expected %" PRIu64,
		     *word(PG_SUM, 0), n * (n + 1) / 2);
	printf("node %d: turns: %" PRIu64 " turns (%" PRIu64 " here), tallies and sum exact\n",
	       me, n, mine);
	/* Between two of this node's turns another node took one and
	 * wrote all 3 pages. */
	if (nodes > 1 && mine > 1)
		min = 3 * (mine - 1);
	snprintf(why, sizeof(why), "3 pages x %" PRIu64 " gaps between this node's turns",
		 mine > 1 ? mine - 1 : 0);
	if (moved("turns", &before, min, why))
		return 1;
	return barrier();
}

/*
 * Message passing: message r goes from node r % nodes to the next node,
 * which verifies it and acknowledges; the sender of message r waits for
 * the acknowledgement of r - 1 before it writes. A message spans two
 * pages: sequence number and sender first, checksum last.
 */
#define MSG_WORDS ((int)(2 * PAGE / 8))

static uint64_t msg_sum(const uint64_t *m)
{
	uint64_t s = 0;

	for (int i = 0; i < MSG_WORDS - 1; i++)
		s = mix(s ^ m[i]);
	return s;
}

static int w_messages(long msgs)
{
	uint64_t *flag = word(PG_MSG_FLAG, 0), *ack = word(PG_MSG_ACK, 0);
	uint64_t *m = word(PG_MSG_BODY, 0), seed = mix(0xfeed + (uint64_t)me);
	uint64_t sent = 0, got = 0, v, min = 0;
	struct pm_stats before;
	char why[128];

	if (barrier() || stats(&before))
		return 1;
	for (long r = 0; r < msgs; r++) {
		uint64_t seq = (uint64_t)r + 1;
		int from = (int)(r % nodes), to = (int)((r + 1) % nodes);

		if (from == me) {
			if (wait_ge(ack, (uint64_t)r, &v,
				    "messages: acknowledgement of message",
				    (uint64_t)r - 1))
				return 1;
			if (v != (uint64_t)r)
				FAIL("messages: message %" PRIu64 " acknowledged before it was sent",
				     v);
			m[0] = seq;
			m[1] = (uint64_t)me;
			for (int i = 2; i < MSG_WORDS - 1; i++) {
				seed = mix(seed);
				m[i] = seed;
			}
			m[MSG_WORDS - 1] = msg_sum(m);
			__atomic_store_n(flag, seq, __ATOMIC_SEQ_CST);
			sent++;
		}
		if (to == me) {
			if (wait_ge(flag, seq, &v, "messages: message", seq))
				return 1;
			if (v != seq)
				FAIL("messages: message %" PRIu64 " sent before %" PRIu64 " was acknowledged",
				     v, seq);
			if (m[0] != seq || m[1] != (uint64_t)from)
				FAIL("messages: message %" PRIu64 " from node %d reads as message %" PRIu64 " from node %" PRIu64,
				     seq, from, m[0], m[1]);
			if (m[MSG_WORDS - 1] != msg_sum(m))
				FAIL("messages: message %" PRIu64 " from node %d: checksum %#" PRIx64 ", payload sums to %#" PRIx64,
				     seq, from, m[MSG_WORDS - 1], msg_sum(m));
			__atomic_store_n(ack, seq, __ATOMIC_SEQ_CST);
			got++;
		}
	}
	if (barrier())
		return 1;
	if (*flag != (uint64_t)msgs || *ack != (uint64_t)msgs)
		FAIL("messages: %" PRIu64 " sent and %" PRIu64 " acknowledged, expected %ld",
		     *flag, *ack, msgs);
	printf("node %d: messages: %" PRIu64 " sent, %" PRIu64 " received and verified, of %ld\n",
	       me, sent, got, msgs);
	/* Between two messages this node sends another node sends one
	 * (2 message pages and the flag); between two it acknowledges,
	 * another node acknowledges one. */
	if (nodes > 1)
		min = 3 * (sent ? sent - 1 : 0) + (got ? got - 1 : 0);
	snprintf(why, sizeof(why), "3 pages x %" PRIu64 " sends + 1 x %" PRIu64 " acknowledgements apart",
		 sent ? sent - 1 : 0, got ? got - 1 : 0);
	if (moved("messages", &before, min, why))
		return 1;
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
 * MiB; slack 1 MiB), everyone checks the counters. Node 0 must have
 * evicted what its first pass cannot keep; the others, after each
 * increment, wait for someone else's so the counter's page goes round.
 */
static int w_cache(long limit_mb)
{
	uint64_t first = PG_STRIPES, npages = mem_len / PAGE - PG_STRIPES;
	uint64_t limit = (uint64_t)limit_mb << 20, slack = 1 << 20, max = 0;
	uint64_t *done = word(PG_DONE, 8), hot_faults = 0;
	uint64_t *counter = word(PG_COUNTER, 0), handed = 0;
	struct pm_stats before;
	char why[128];
	long bumps = 0;

	if (barrier() || stats(&before))
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
					__atomic_fetch_add(counter, 1,
							   __ATOMIC_SEQ_CST);
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
		long long end = now_ms() + WAIT_MS;

		while (!__atomic_load_n(done, __ATOMIC_SEQ_CST)) {
			uint64_t mine = __atomic_add_fetch(counter, 1,
							   __ATOMIC_SEQ_CST);

			bumps++;
			/* Until another node has added: its write took
			 * the page from here. */
			while (__atomic_load_n(counter, __ATOMIC_SEQ_CST) ==
			       mine &&
			       !__atomic_load_n(done, __ATOMIC_SEQ_CST)) {
				if (now_ms() > end)
					FAIL("cache: the counter stayed at %" PRIu64 " for %d s",
					     mine, WAIT_MS / 1000);
				sched_yield();
			}
			if (__atomic_load_n(counter, __ATOMIC_SEQ_CST) != mine)
				handed++;
			end = now_ms() + WAIT_MS;
		}
	}
	/* Everyone publishes its count; the sum must be the counter. */
	__atomic_fetch_add(word(PG_DONE, 16), (uint64_t)bumps,
			   __ATOMIC_SEQ_CST);
	if (barrier())
		return 1;
	if (*counter != *word(PG_DONE, 16))
		FAIL("cache: counter %" PRIu64 ", increments %" PRIu64,
		     *counter, *word(PG_DONE, 16));
	if (me == 0) {
		struct pm_stats now;
		uint64_t ev, min = 0;

		if (stats(&now))
			return 1;
		ev = now.evictions - before.evictions;
		/* Pass 0 writes every page; all but limit + slack must
		 * have been evicted meanwhile. */
		if (limit && npages > (limit + slack) / PAGE)
			min = npages - (limit + slack) / PAGE;
		printf("node 0: cache: %" PRIu64 " pages written and verified, then %" PRIu64 " hot-set reads (%" PRIu64 " faults); max resident %" PRIu64 " KiB (limit %" PRIu64 " KiB)\n",
		       npages, npages, hot_faults, max >> 10, limit >> 10);
		printf("node 0: cache: %" PRIu64 " evictions (>= %" PRIu64 " required: %" PRIu64 " pages written through a %" PRIu64 " KiB limit)\n",
		       ev, min, npages, limit >> 10);
		if (ev < min)
			FAIL("cache: %" PRIu64 " evictions, the limit forces %" PRIu64,
			     ev, min);
	}
	printf("node %d: cache: counter %" PRIu64 " exact\n", me, *counter);
	if (me) {
		snprintf(why, sizeof(why),
			 "%" PRIu64 " of %ld increments seen overtaken by another node",
			 handed, bumps);
		if (moved("cache", &before, handed, why))
			return 1;
	}
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
	struct pm_stats a, b, start;
	char why[128];

	if (nodes < 2)
		FAIL("stream: needs another node to write this one's pages");
	for (int h = 0; h < nodes; h++) {
		uint64_t per = (mem_len / PAGE + nodes - 1) / nodes;
		uint64_t begin = per * (uint64_t)h + (h ? 0 : PG_STRIPES);
		uint64_t end = stream_first(h) + STREAM_PAGES; /* wraps back */

		if (end < begin + STREAM_PAGES)
			FAIL("stream: node %d homes fewer than %d pages past the fixed ones",
			     h, STREAM_PAGES);
	}
	if (stats(&start))
		return 1;
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
	/* Each page this node wrote in a round is read by the others (or
	 * taken back by its home) before the round's checks are over: its
	 * copy here is downgraded or taken, at least once a page a round. */
	snprintf(why, sizeof(why), "%d pages written here x %ld rounds",
		 STREAM_PAGES, rounds);
	if (moved("stream", &start, (uint64_t)STREAM_PAGES * (uint64_t)rounds,
		  why))
		return 1;
	return barrier();
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
