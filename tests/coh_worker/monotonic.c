// SPDX-License-Identifier: MIT
/*
 * coh_worker's monotonic workload: one writer raises words on 8 pages,
 * round by round; its readers must never see one go backwards.
 */
#include <sched.h>
#include <string.h>

#include "coh_worker.h"

/*
 * One writer raises words on several pages; readers must never see any
 * of them go backwards, nor a later word ahead of an earlier one's
 * write order (the writer writes mono[0..7] in order each round). Each
 * reader acknowledges every round it has read, and the writer starts the
 * next only when all have: so every round moves all 8 pages to every
 * reader and back.
 */
int w_monotonic(long rounds)
{
	uint64_t *ack = word(PG_MONO_ACK, 0);
	uint64_t seen[N_MONO] = { 0 }, reads = 0, min = 0, v;
	struct pm_stats before;

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
	if (moved("monotonic", &before, min,
		  "%d pages x %ld acknowledged rounds", N_MONO,
		  rounds > 1 ? rounds - 1 : 0))
		return 1;
	return barrier();
}
