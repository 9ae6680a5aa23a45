// SPDX-License-Identifier: MIT
/*
 * coh_worker's cache workload: node 0 walks the whole region through its
 * pager.local_limit while the others keep a counter's page moving.
 */
#include <sched.h>
#include <string.h>

#include "coh_worker.h"

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
int w_cache(long limit_mb)
{
	uint64_t first = PG_STRIPES, npages = mem_len / PAGE - PG_STRIPES;
	uint64_t limit = (uint64_t)limit_mb << 20, slack = 1 << 20, max = 0;
	uint64_t *done = word(PG_DONE, 8), hot_faults = 0;
	uint64_t *counter = word(PG_COUNTER, 0), handed = 0;
	struct pm_stats before;
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
		if (moved("cache", &before, handed,
			  "%" PRIu64 " of %ld increments seen overtaken by another node",
			  handed, bumps))
			return 1;
	}
	return barrier();
}
