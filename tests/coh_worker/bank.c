// SPDX-License-Identifier: MIT
/*
 * coh_worker's bank workload: transfers between accounts on several pages
 * under one spin lock, in rounds; the total never changes.
 */
#include <sched.h>

#include "coh_worker.h"

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

int w_bank(long transfers)
{
	const int64_t total = BANK_PER * (int64_t)N_ACCOUNTS;
	uint64_t want = (uint64_t)transfers * (uint64_t)workers();
	long rounds = rounds_of(transfers, ROUND_OPS);
	struct pm_stats before;
	int64_t sum = 0;

	if (me == 0)
		for (uint64_t a = 0; a < N_ACCOUNTS; a++)
			*account(a) = BANK_PER;
	if (run_workers(bank_worker, transfers, &before))
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
	if (moved("bank", &before, 2 * round_gaps(rounds),
		  "lock and round pages x %" PRIu64 " round gaps",
		  round_gaps(rounds)))
		return 1;
	return barrier();
}
