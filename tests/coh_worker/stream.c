// SPDX-License-Identifier: MIT
/*
 * coh_worker's stream workload: a sequential writer takes over another
 * node's pages, which their home gives up in runs ahead of it.
 */
#include <pthread.h>
#include <string.h>

#include "coh_worker.h"

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

int w_stream(long rounds)
{
	uint64_t mine = stream_first(me);
	uint64_t taken = stream_first((me + nodes - 1) % nodes);
	static uint64_t tally[STREAM_PAGES];
	uint64_t ahead = 0, passes = 0;
	struct pm_stats a, b, start;

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
	if (moved("stream", &start, (uint64_t)STREAM_PAGES * (uint64_t)rounds,
		  "%d pages written here x %ld rounds", STREAM_PAGES, rounds))
		return 1;
	return barrier();
}
