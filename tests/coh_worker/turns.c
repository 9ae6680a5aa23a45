// SPDX-License-Identifier: MIT
/*
 * coh_worker's turns workload: strict turns that pass three pages from
 * worker to worker, each checking what the one before it left.
 */

#include "coh_worker.h"

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

int w_turns(long turns)
{
	uint64_t all = (uint64_t)workers(), n = (uint64_t)turns * all;
	uint64_t mine = (uint64_t)turns * (uint64_t)nthreads, min = 0;
	struct pm_stats before;

	if (run_workers(turns_worker, turns, &before))
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
	if (moved("turns", &before, min,
		  "3 pages x %" PRIu64 " gaps between this node's turns",
		  mine > 1 ? mine - 1 : 0))
		return 1;
	return barrier();
}
