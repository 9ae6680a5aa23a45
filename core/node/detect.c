// SPDX-License-Identifier: MIT
/*
 * The failure detector: a peer is dead when it has not been heard from
 * (a reply or a request of its, node_heard) for cluster.failure_timeout_ms,
 * and only then; one slow reply is a slow reply. One watcher thread per
 * peer pings it whenever it has been quiet for an eighth of that, so an
 * idle peer is heard from too, and a ping stuck on a paused peer delays
 * only that peer's watcher. DESIGN.md beside this file has the rest of the
 * failure handling this is the start of.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "node.h"

struct watch_arg {
	struct pm_node *n;
	int peer;
};

void detect_declare_dead(struct pm_node *n, int peer, const char *why)
{
	if (__atomic_load_n(&n->leaving, __ATOMIC_RELAXED) || node_closing(n))
		return;
	if (__atomic_exchange_n(&n->peer_dead[peer], true, __ATOMIC_RELAXED))
		return;
	STAT_ADD(n, peer_failures, 1);
	/* This incarnation of it may never come back: its copies are
	 * forgotten now, and only a new start of it holds none. */
	__atomic_store_n(&n->fenced_told[peer], false, __ATOMIC_RELAXED);
	__atomic_store_n(&n->fenced_inc[peer],
			 __atomic_load_n(&n->peer_inc[peer], __ATOMIC_RELAXED),
			 __ATOMIC_RELAXED);
	pm_err("node %d: %s: declared dead; it is refused until it starts again",
	       peer, why);
	/* What it held exclusively of ours is gone with it. */
	home_forget_node(n, peer);
}

static int64_t interval_ns(const struct pm_node *n)
{
	int64_t ns = (int64_t)n->failure_ms * 1000000 / 8;

	return ns < 25000000 ? 25000000 : ns;
}

/*
 * A ping, bounded by deadline: the watcher checks again after it. The
 * k-th goes on connection k of the peer's (the main one, then one per
 * fault thread, in turn): under heavy loss one TCP connection can stall
 * for seconds in retransmission backoff, holding every ping queued
 * behind it, while the others move; a live peer must not look silent.
 */
static void ping(struct pm_node *n, int peer, int64_t deadline, unsigned k)
{
	struct pm_proto_req rq = {
		.op = PM_OP_PING, .from = (uint16_t)n->id,
	};
	struct pm_proto_rep rp;
	struct pm_msg m = { .msg = &rq, .msg_len = sizeof(rq) };
	struct pm_msg r = { .msg = &rp, .msg_cap = sizeof(rp) };
	unsigned i = k % (1u + (unsigned)n->nthreads);
	struct pm_tconn *c = i ? n->peers[peer].fconn[i - 1] : NULL;

	if (!c)
		c = n->peers[peer].conn;

	if (c && !node_call_on(n, peer, c, &m, &r, deadline) &&
	    r.msg_len == sizeof(rp)) {
		__atomic_store_n(&n->answer_inc[peer], rp.page,
				 __ATOMIC_RELAXED);
		__atomic_store_n(&n->answer_ns[peer], pm_now_ns(),
				 __ATOMIC_RELAXED);
	}
}

void detect_poke(struct pm_node *n, int peer)
{
	lk_lock(&n->det_lock, LK_DET);
	n->det_poke[peer] = true;
	pthread_cond_broadcast(&n->det_cv);
	lk_unlock(&n->det_lock);
}

/* Wait until deadline, a poke for peer or the stop; true when stopping,
 * *poked when a poke ended it. */
static bool watch_wait(struct pm_node *n, int peer, int64_t deadline,
		       bool *poked)
{
	struct timespec ts = {
		.tv_sec = deadline / 1000000000,
		.tv_nsec = deadline % 1000000000,
	};
	bool stop;

	lk_lock(&n->det_lock, LK_DET);
	while (!n->det_stop && !n->det_poke[peer] &&
	       pthread_cond_timedwait(&n->det_cv, &n->det_lock, &ts) !=
		       ETIMEDOUT)
		;
	stop = n->det_stop;
	*poked = n->det_poke[peer];
	n->det_poke[peer] = false;
	lk_unlock(&n->det_lock);
	return stop;
}

static void *watch_peer(void *arg)
{
	struct watch_arg *wa = arg;
	struct pm_node *n = wa->n;
	int peer = wa->peer;
	int64_t iv = interval_ns(n), limit = (int64_t)n->failure_ms * 1000000;
	unsigned pings = 0;

	free(wa);
	pm_log_use(&n->log);
	for (;;) {
		int64_t lease = __atomic_load_n(&n->lease_until[peer],
						__ATOMIC_RELAXED);
		bool lapsed = __atomic_load_n(&n->lease_lapsed[peer],
					      __ATOMIC_RELAXED);
		int64_t wake = pm_now_ns() + iv, quiet, now;
		bool poked;

		/* Wake when the lease ends too: its copies go on time. */
		if (!lapsed && lease < wake)
			wake = lease;
		if (watch_wait(n, peer, wake, &poked))
			break;
		now = pm_now_ns();
		if (!lapsed && now >= __atomic_load_n(&n->lease_until[peer],
						      __ATOMIC_RELAXED) &&
		    !__atomic_exchange_n(&n->lease_lapsed[peer], true,
					 __ATOMIC_RELAXED))
			holder_lease_lapsed(n, peer);
		quiet = now - __atomic_load_n(&n->heard_ns[peer],
					      __ATOMIC_RELAXED);
		if (node_peer_dead(n, peer))
			continue;	/* back only when it calls (dispatch.c) */
		if (quiet > limit) {
			char why[96];

			snprintf(why, sizeof(why),
				 "not heard from for %lld ms (cluster.failure_timeout_ms %d)",
				 (long long)(quiet / 1000000), n->failure_ms);
			detect_declare_dead(n, peer, why);
			continue;
		}
		/* Quiet, or it calls us but we have not called it: our lease
		 * is renewed only by a round trip we start. */
		lease = __atomic_load_n(&n->lease_until[peer],
					__ATOMIC_RELAXED);
		if (quiet >= iv || poked ||
		    lease - now < limit * 3 / 4 - iv) {
			int64_t end = now + iv;

			/* Not blocked past the lease's end. */
			if (!__atomic_load_n(&n->lease_lapsed[peer],
					     __ATOMIC_RELAXED) &&
			    lease > now && lease < end)
				end = lease;
			ping(n, peer, end, pings++);
		}
	}
	return NULL;
}

int detect_start(struct pm_node *n)
{
	int r;

	for (int i = 0; i < n->nodes; i++) {
		struct watch_arg *wa;

		/* Everyone was heard from at start-up (its barrier). */
		node_heard(n, i);
		node_lease_renew(n, i, pm_now_ns());
		if (i == n->id)
			continue;
		wa = malloc(sizeof(*wa));
		if (!wa)
			return -ENOMEM;
		*wa = (struct watch_arg){ .n = n, .peer = i };
		r = pthread_create(&n->det_threads[n->ndet], NULL, watch_peer,
				   wa);
		if (r) {
			free(wa);
			return -r;
		}
		n->ndet++;
	}
	return 0;
}

void detect_stop(struct pm_node *n)
{
	if (!n->ndet)
		return;
	lk_lock(&n->det_lock, LK_DET);
	n->det_stop = true;
	pthread_cond_broadcast(&n->det_cv);
	lk_unlock(&n->det_lock);
	for (int i = 0; i < n->ndet; i++)
		pthread_join(n->det_threads[i], NULL);
	n->ndet = 0;
}
