// SPDX-License-Identifier: MIT
/*
 * coh_worker's stripes workload: every page past the fixed ones written
 * by one node and read by all, each stripe changing owner every round.
 */

#include "coh_worker.h"

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

int w_stripes(long iters)
{
	uint64_t first = PG_STRIPES, npages = mem_len / PAGE - PG_STRIPES;
	uint64_t taken = 0;
	struct pm_stats before;
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
	if (moved("stripes", &before, taken,
		  "%" PRIu64 " pages read here, then written by their new owner",
		  taken))
		return 1;
	return barrier();
}
