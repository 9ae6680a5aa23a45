// SPDX-License-Identifier: MIT
/*
 * What the workloads of coh_worker share: the node, the layout of the
 * region every node agrees on, and the waits and checks in main.c.
 */
#ifndef COH_WORKER_H
#define COH_WORKER_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <pagemesh/pagemesh.h>

#define PAGE 4096u
/* How long a worker waits for a turn, round or message before it fails:
 * far beyond any hand-off on a loaded machine, well inside the tests'
 * deadlines, so a hang is reported by the node that saw it. */
#define WAIT_MS 60000
/* Workers (nodes x threads) the per-worker words of a page can hold. */
#define MAX_WORKERS 256

extern struct pm_node *node;
extern uint8_t *mem;
extern size_t mem_len;
extern int me, nodes;
extern int nthreads;	/* application threads per node */
extern int failed;	/* a worker of this node failed: stop waiting */

/* Layout of the region (page offsets), shared by every node. */
#define PG_COUNTER 0	/* one hot counter alone on its page */
#define PG_MIXED 1	/* counter + per-worker data on one page */
#define PG_LOCK 2	/* bank spin lock */
#define PG_ACCOUNTS 3	/* 4 pages of accounts */
#define N_ACCOUNTS (4 * PAGE / 8)
#define PG_MONO 8	/* monotonic words, one per page: 8 pages */
#define N_MONO 8
#define PG_DONE 16	/* flags */
#define PG_TURN 17	/* turns: whose turn it is */
#define PG_TALLY 18	/* turns: turns taken, one word per worker */
#define PG_SUM 19	/* turns: running sum and the last worker */
#define PG_MSG_FLAG 20	/* messages: last message sent */
#define PG_MSG_ACK 21	/* messages: last message acknowledged */
#define PG_MSG_BODY 22	/* messages: 2 pages of message */
#define PG_BANK_ROUND 24	/* bank: transfers done */
#define PG_RANDOM_ROUND 25	/* random: bursts done */
#define PG_MONO_ACK 26	/* monotonic: last round each reader saw */
#define PG_RANDOM 32	/* random slots: 64 pages */
#define N_RANDOM_PAGES 64
#define PG_STRIPES 128	/* the rest */

#define FAIL(...)                                                         \
	do {                                                              \
		__atomic_store_n(&failed, 1, __ATOMIC_RELAXED);           \
		fprintf(stderr, "node %d: FAIL: ", me);                   \
		fprintf(stderr, __VA_ARGS__);                             \
		fprintf(stderr, "\n");                                    \
		return 1;                                                 \
	} while (0)

static inline uint64_t *word(uint64_t page, uint64_t idx)
{
	return (uint64_t *)(mem + page * PAGE) + idx;
}

static inline uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/*
 * Work in rounds that every worker joins: ROUND_OPS operations each, then
 * wait until all workers have done theirs. ITERATIONS stay operations per
 * worker (as callers under packet loss count on), and the rounds make the
 * pages visit every node every ROUND_OPS operations while the nodes race
 * for them within a round.
 */
#define ROUND_OPS 8

static inline long rounds_of(long ops, long per_round)
{
	return (ops + per_round - 1) / per_round;
}

/* Operations per worker once round k is over. */
static inline uint64_t ops_by(long k, long ops)
{
	uint64_t n = ((uint64_t)k + 1) * ROUND_OPS;

	return n < (uint64_t)ops ? n : (uint64_t)ops;
}

/* main.c: the waits and checks every workload is built of. */
long long now_ms(void);
int barrier(void);
int wait_ge(const uint64_t *w, uint64_t want, uint64_t *seen,
	    const char *what, uint64_t which);
int moved(const char *wl, const struct pm_stats *before, uint64_t min,
	  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int stats(struct pm_stats *s);
uint64_t round_gaps(long rounds);
int workers(void);
int run_workers(int (*fn)(int w, long iters), long iters,
		struct pm_stats *before);

/* The workloads, one file each: 0 when this node's checks all passed. */
int w_stripes(long iters);
int w_counter(long incs);
int w_bank(long transfers);
int w_monotonic(long rounds);
int w_random(long ops);
int w_turns(long turns);
int w_messages(long msgs);
int w_cache(long limit_mb);
int w_stream(long rounds);

/* random's operations per burst, which its usage line names. */
#define RANDOM_BURST 16

#endif /* COH_WORKER_H */
