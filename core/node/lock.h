/* SPDX-License-Identifier: MIT */
/*
 * The node's locks and their one order. A thread may take a lock only if
 * every lock it already holds comes earlier in this list (trylocks may be
 * taken in any order: they never wait, so they close no cycle):
 *
 *   1. dlock[]    a directory entry (home side); several only in ascending
 *                 page order, a run shorter than PM_NLOCKS / 2
 *   2. llock[]    a page's local state; the same rule for several
 *   3. evicting_lock  the list of pages being evicted
 *   4. bounce_lock  bounce slots (pager_move_out)
 *   5. fifo_lock  eviction rings (evict.c)
 *   6. ev_lock    the eviction thread's wake-up
 *   7. wq_lock    the home workers' queue
 *   8. txn_lock   local waiters on busy entries
 *   9. bar_lock   the barrier (node 0)
 *  10. det_lock   the failure detector's stop flag
 * Locks inside a transport plugin and the auth table come after all of
 * these: node_reply() and node_call() may be called with any of 1-9 held,
 * but no lock is held across a wait for the network except by a home
 * transaction, which owns its entry through `busy`, not through a lock.
 *
 * A PM_DEBUG build records the locks each thread holds and aborts on a
 * lock taken out of order, or on a state change without its lock
 * (lk_held()).
 */
#ifndef PM_LOCK_H
#define PM_LOCK_H

#include <pthread.h>
#include <stdbool.h>

enum lk_rank {
	LK_DLOCK = 1,
	LK_LLOCK,
	LK_EVICTING,
	LK_BOUNCE,
	LK_FIFO,
	LK_EV,
	LK_WQ,
	LK_TXN,
	LK_BAR,
	LK_DET,
};

#ifdef PM_DEBUG
void lk_lock(pthread_mutex_t *m, enum lk_rank r);
bool lk_trylock(pthread_mutex_t *m, enum lk_rank r);
void lk_unlock(pthread_mutex_t *m);
bool lk_held(const pthread_mutex_t *m);
/* Abort with a message: a broken invariant of the engine. */
void lk_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2),
						    noreturn));
#else
static inline void lk_lock(pthread_mutex_t *m, enum lk_rank r)
{
	(void)r;
	pthread_mutex_lock(m);
}

static inline bool lk_trylock(pthread_mutex_t *m, enum lk_rank r)
{
	(void)r;
	return pthread_mutex_trylock(m) == 0;
}

static inline void lk_unlock(pthread_mutex_t *m)
{
	pthread_mutex_unlock(m);
}
#endif

#endif
