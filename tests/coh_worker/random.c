// SPDX-License-Identifier: MIT
/*
 * coh_worker's random workload: reads and writes of slots interleaved
 * between the nodes, in bursts, each node checking against its shadow.
 */
#include <stdlib.h>

#include "coh_worker.h"

/*
 * Random reads and writes: each node owns slots spread over shared pages
 * (interleaved with other nodes' slots), keeps a shadow, and checks its
 * own slots exactly and others' slots never go backwards. The operations
 * come in bursts; every node finishes a burst before any starts the next.
 */
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

int w_random(long ops)
{
	uint64_t *shadow = calloc(N_SLOTS, sizeof(*shadow));
	uint64_t *done = word(PG_RANDOM_ROUND, 0), seed = random_seed(me);
	long bursts = (ops + RANDOM_BURST - 1) / RANDOM_BURST;
	uint64_t forced, v;
	struct pm_stats before;
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
	if (moved("random", &before, round_gaps(bursts) + forced,
		  "round page x %" PRIu64 " burst gaps + %" PRIu64 " random pages written elsewhere the burst after",
		  round_gaps(bursts), forced))
		goto out;
	ret = barrier();
out:
	free(shadow);
	return ret;
}
