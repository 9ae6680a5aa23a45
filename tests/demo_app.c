// SPDX-License-Identifier: MIT
/*
 * The demo's workload, one process per node: a prime sieve over the
 * shared region. Each node sieves its own segment of one shared byte
 * array, then counts primes in its neighbour's segment (so the pages move
 * between nodes), adds its count to a shared total with an atomic, and
 * every node hammers one shared counter. Node 0 checks both totals
 * against what they must be; every node prints a STATS line for the table.
 *
 *   demo_app CONFIG [LIMIT]
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pagemesh/pagemesh.h>

#define PAGE 4096u
#define HOT_ITERS 20000

struct header {
	uint64_t primes;	/* sum of every node's count */
	uint64_t pad[7];
	uint64_t hot;		/* the contended counter, own cache line */
};

/* pi(x) for the limits the demo offers, to check the answer. */
static uint64_t known_pi(uint64_t limit)
{
	switch (limit) {
	case 1000000: return 78498;
	case 10000000: return 664579;
	case 50000000: return 3001134;
	case 100000000: return 5761455;
	}
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	uint64_t limit = argc > 2 ? strtoull(argv[2], NULL, 10) : 50000000;
	char err[1024];
	struct pm_node *n;
	struct pm_stats st;
	struct header *h;
	uint8_t *mem, *odd;
	size_t len;
	int me, nodes, code, bad = 0;

	if (argc < 2 || argc > 3 || !known_pi(limit)) {
		fprintf(stderr, "usage: demo_app CONFIG [1000000|10000000|50000000|100000000]\n");
		return 2;
	}
	n = pm_node_start_ex(argv[1], err, sizeof(err), &code);
	if (!n) {
		fprintf(stderr, "demo_app: %s\n", err);
		return code;
	}
	me = pm_node_id(n);
	nodes = pm_node_count(n);
	mem = pm_node_region(n, &len);
	h = (struct header *)mem;
	odd = mem + PAGE;	/* odd[i] != 0: 2i+1 is composite */
	uint64_t nodd = limit / 2;	/* odd numbers below limit */

	if (PAGE + nodd > len) {
		fprintf(stderr, "demo_app: region of %zu bytes is too small for a limit of %" PRIu64 "\n",
			len, limit);
		pm_node_stop(n);
		return 2;
	}
	uint64_t seg = (nodd + nodes - 1) / nodes;
	uint64_t lo = seg * me, hi = lo + seg < nodd ? lo + seg : nodd;
	uint64_t root = (uint64_t)sqrt((double)limit) + 1;
	double t0 = now_s();

	/* Sieve my segment: odd multiples of every odd p <= sqrt(limit). */
	for (uint64_t p = 3; p <= root; p += 2) {
		uint64_t x = p * p > 2 * lo + 1 ? p * p : 2 * lo + 1;
		uint64_t m = (x + p - 1) / p * p;

		if (!(m & 1))
			m += p;		/* odd multiples only */
		for (uint64_t i = m / 2; i < hi; i += p)
			odd[i] = 1;
	}
	double t_sieve = now_s() - t0;

	pm_node_barrier(n, 120000);

	/* Count primes in the next node's segment: its pages come here. */
	int other = (me + 1) % nodes;
	uint64_t olo = seg * other, ohi = olo + seg < nodd ? olo + seg : nodd;
	uint64_t count = 0;

	for (uint64_t i = olo; i < ohi; i++)
		count += !odd[i] && i;	/* index 0 is 1: not prime */
	if (other == 0 && limit > 2)
		count++;		/* 2, the even prime */
	__atomic_fetch_add(&h->primes, count, __ATOMIC_SEQ_CST);
	for (int i = 0; i < HOT_ITERS; i++)
		__atomic_fetch_add(&h->hot, 1, __ATOMIC_SEQ_CST);
	pm_node_barrier(n, 120000);
	double t_all = now_s() - t0;

	if (me == 0) {
		uint64_t want = known_pi(limit);

		printf("RESULT primes below %" PRIu64 ": %" PRIu64 " (expected %" PRIu64 ") %s\n",
		       limit, h->primes, want,
		       h->primes == want ? "ok" : "WRONG");
		printf("RESULT shared counter: %" PRIu64 " (expected %d) %s\n",
		       h->hot, nodes * HOT_ITERS,
		       h->hot == (uint64_t)nodes * HOT_ITERS ? "ok" : "WRONG");
		bad = h->primes != want ||
		      h->hot != (uint64_t)nodes * HOT_ITERS;
	}
	pm_node_stats(n, &st);
	printf("STATS node=%d zero=%" PRIu64 " local=%" PRIu64 " remote=%"
	       PRIu64 " wp=%" PRIu64 " sent=%" PRIu64 " recv=%" PRIu64
	       " inv_sent=%" PRIu64 " inv_recv=%" PRIu64 " p50=%.1f p99=%.1f"
	       " sieve_s=%.2f total_s=%.2f\n",
	       me, st.faults_zero, st.faults_local, st.faults_remote,
	       st.faults_wp, st.pages_sent, st.pages_received,
	       st.invalidations_sent, st.invalidations_received,
	       st.fault_p50_ns / 1e3, st.fault_p99_ns / 1e3, t_sieve, t_all);
	fflush(stdout);
	pm_node_stop(n);
	return bad;
}
