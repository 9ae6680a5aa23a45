// SPDX-License-Identifier: MIT
/*
 * An API program in a cluster whose other nodes may be `pagemesh node`
 * processes (mixed_test): only the public header.
 *
 *   mixed_worker CONFIG INDEX COUNT [STOP_DELAY_MS]
 *
 * The cluster has COUNT API programs; this one is the INDEX-th of them
 * (0-based). The region's pages are dealt out among the programs in
 * stripes; in round k each program writes the stripes of program
 * (INDEX + k) % COUNT with a tag of (page, round), then all meet at a
 * barrier and every program checks every page against the tag of its
 * round's writer: pages homed on the serving nodes, written by one
 * program and read by another, across the barrier. Then it waits
 * STOP_DELAY_MS and times pm_node_stop() (with pager.local_limit below
 * the region, written pages go back to their homes and are read from
 * there: "writebacks N" says how many):
 *
 *   "RESULT ok: ... stop took N ms"   exit 0
 *   "RESULT FAIL: ..."                exit 1 (2 usage, 78 config)
 */
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pagemesh/pagemesh.h>

#define PAGE 4096
#define ROUNDS 2
#define BARRIER_MS 15000

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* The word written at page p in round r. */
static uint64_t tag(uint64_t p, int r)
{
	return 0x6d69786564000000ull ^ (p << 8) ^ (uint64_t)(r + 1);
}

/* Stripes of 8 pages: the program that owns page p's stripe. */
static int stripe_of(uint64_t p, int count)
{
	return (int)((p / 8) % (uint64_t)count);
}

int main(int argc, char **argv)
{
	char err[1024];
	struct pm_node *n;
	struct pm_stats st;
	uint8_t *mem;
	size_t len;
	uint64_t pages, wrote = 0, bad = 0;
	long long t0;
	int idx, count, delay = 0, code, r;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: mixed_worker CONFIG INDEX COUNT [STOP_DELAY_MS]\n");
		return 2;
	}
	idx = atoi(argv[2]);
	count = atoi(argv[3]);
	if (argc == 5)
		delay = atoi(argv[4]);
	if (count < 1 || idx < 0 || idx >= count || delay < 0) {
		fprintf(stderr, "mixed_worker: bad INDEX, COUNT or delay\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	n = pm_node_start_ex(argv[1], err, sizeof(err), &code);
	if (!n) {
		printf("RESULT FAIL: start: %s\n", err);
		return code == 78 ? 78 : 1;
	}
	mem = pm_node_region(n, &len);
	pages = len / PAGE;
	for (int round = 0; round < ROUNDS && !bad; round++) {
		int writer = (idx + round) % count;

		/* In round 0 everyone writes its own stripes; from round 1
		 * on another's, which that one wrote in the round before. */
		for (uint64_t p = 0; p < pages; p++)
			if (stripe_of(p, count) == writer) {
				__atomic_store_n((uint64_t *)(mem + p * PAGE),
						 tag(p, round),
						 __ATOMIC_RELAXED);
				wrote++;
			}
		r = pm_node_barrier(n, BARRIER_MS);
		if (r) {
			printf("RESULT FAIL: barrier of round %d: %s\n", round,
			       strerror(-r));
			bad++;
			break;
		}
		for (uint64_t p = 0; p < pages; p++) {
			uint64_t v = __atomic_load_n((uint64_t *)(mem + p * PAGE),
						     __ATOMIC_RELAXED);

			if (v != tag(p, round)) {
				if (!bad)
					printf("RESULT FAIL: round %d: page %" PRIu64 " holds %#" PRIx64 ", expected %#" PRIx64 "\n",
					       round, p, v, tag(p, round));
				bad++;
			}
		}
		/* Nobody writes the next round before all have read. */
		if (!bad && (r = pm_node_barrier(n, BARRIER_MS))) {
			printf("RESULT FAIL: barrier after round %d: %s\n",
			       round, strerror(-r));
			bad++;
		}
	}
	if (pm_node_stats(n, &st))
		memset(&st, 0, sizeof(st));
	printf("program %d of %d: wrote %" PRIu64 " pages, checked %" PRIu64 " pages x %d rounds, %" PRIu64 " wrong; writebacks %" PRIu64 " remote faults %" PRIu64 "\n",
	       idx, count, wrote, pages, ROUNDS, bad, st.writebacks,
	       st.faults_remote);
	if (delay)
		poll(NULL, 0, delay);
	t0 = now_ms();
	pm_node_stop(n);
	if (bad)
		return 1;
	printf("RESULT ok: program %d of %d: stop took %lld ms\n", idx, count,
	       now_ms() - t0);
	return 0;
}
