// SPDX-License-Identifier: MIT
/*
 * coh_worker's counter workload: atomic increments in rounds, on a page
 * of their own and on one shared with every worker's word.
 */

#include "coh_worker.h"

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

int w_counter(long incs)
{
	uint64_t *hot = word(PG_COUNTER, 0), *mixed = word(PG_MIXED, 0);
	uint64_t want = (uint64_t)incs * (uint64_t)workers();
	long rounds = rounds_of(incs, ROUND_OPS);
	struct pm_stats before;

	if (run_workers(counter_worker, incs, &before))
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
	if (moved("counter", &before, 2 * round_gaps(rounds),
		  "2 pages x %" PRIu64 " round gaps", round_gaps(rounds)))
		return 1;
	return barrier();
}
