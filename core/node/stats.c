// SPDX-License-Identifier: MIT
/* A node's counters: the fault-latency histogram, pm_node_stats() and the
 * numbers /metrics shows (metrics.c renders them). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "node.h"

uint64_t pm_hist_bound_ns(int i)
{
	if (i < 0)
		return 0;
	if (i >= PM_HIST_BUCKETS - 1)
		return UINT64_MAX;
	return ((1ull << (PM_HIST_MIN_SHIFT + i / PM_HIST_SUB)) *
		(PM_HIST_SUB + i % PM_HIST_SUB + 1)) / PM_HIST_SUB;
}

static int hist_index(uint64_t ns)
{
	int p, q, i;

	if (ns <= (1ull << PM_HIST_MIN_SHIFT))
		return 0;
	p = 63 - __builtin_clzll(ns);
	q = (int)(((ns - (1ull << p)) * PM_HIST_SUB) >> p);
	i = (p - PM_HIST_MIN_SHIFT) * PM_HIST_SUB + q;
	return i < PM_HIST_BUCKETS - 1 ? i : PM_HIST_BUCKETS - 1;
}

void stats_record_fault(struct pm_node *n, uint64_t ns)
{
	STAT_ADD_AT(n, hist[hist_index(ns)], 1);
	STAT_ADD_AT(n, fault_sum_ns, ns);
}

static uint64_t hist_percentile(const uint64_t *h, double pct)
{
	uint64_t total = 0, acc = 0, want;
	int i;

	for (i = 0; i < PM_HIST_BUCKETS; i++)
		total += h[i];
	if (!total)
		return 0;
	want = (uint64_t)(total * pct / 100.0);
	if (want < 1)
		want = 1;
	for (i = 0; i < PM_HIST_BUCKETS; i++) {
		acc += h[i];
		if (acc >= want)
			return pm_hist_bound_ns(i);
	}
	return pm_hist_bound_ns(PM_HIST_BUCKETS - 1);
}

#define LOAD(f) __atomic_load_n(&n->st.f, __ATOMIC_RELAXED)

int pm_node_stats(struct pm_node *n, struct pm_stats *o)
{
	if (!n || !o)
		return -EINVAL;
	memset(o, 0, sizeof(*o));
	for (int c = 0; c < PM_NCOUNTERS; c++)
		*(uint64_t *)((char *)o + pm_counter_defs[c].off) =
			LOAD(c[c]);
	/* ls_set() keeps it in step with the mappings. */
	o->resident_pages = __atomic_load_n(&n->resident, __ATOMIC_RELAXED);
	for (int i = 0; i < PM_HIST_BUCKETS; i++)
		o->fault_hist[i] = LOAD(hist[i]);
	o->fault_p50_ns = hist_percentile(o->fault_hist, 50);
	o->fault_p99_ns = hist_percentile(o->fault_hist, 99);
	return 0;
}

/* One /metrics scrape: pm_stats plus per-transport, per-peer and
 * per-message counters. */
int stats_metrics_fill(void *arg, struct pm_stats *st,
		       struct metrics_extra *x)
{
	struct pm_node *n = arg;

	pm_node_stats(n, st);
	x->node_id = n->id;
	snprintf(x->cluster, sizeof(x->cluster), "%s", n->cfg.cluster_name);
	x->region_bytes = n->len;
	x->fault_sum_ns = LOAD(fault_sum_ns);
	for (int t = 0; t < n->nplugins; t++) {
		struct metrics_transport *mt;

		if (!n->plugins[t].usable)
			continue;
		mt = &x->transports[x->n_transports++];
		snprintf(mt->name, sizeof(mt->name), "%s",
			 n->plugins[t].name);
		mt->bytes_sent = LOAD(tr[t].bytes_sent);
		mt->bytes_received = LOAD(tr[t].bytes_received);
		mt->messages_sent = LOAD(tr[t].msgs_sent);
		mt->messages_received = LOAD(tr[t].msgs_received);
		mt->errors = LOAD(tr[t].errors);
	}
	for (int i = 0; i < n->nodes && x->n_peers < METRICS_MAX_PEERS; i++) {
		struct metrics_peer *mp;

		if (i == n->id)
			continue;
		mp = &x->peers[x->n_peers++];
		mp->node_id = i;
		/* Connected, and not declared dead since. */
		mp->up = n->peers[i].conn != NULL && !node_peer_dead(n, i);
		if (n->peers[i].tidx >= 0) {
			snprintf(mp->transport, sizeof(mp->transport), "%s",
				 n->plugins[n->peers[i].tidx].name);
			snprintf(mp->endpoint, sizeof(mp->endpoint), "%s",
				 n->peers[i].endpoint);
		}
		mp->bytes_sent = LOAD(peer[i].bytes_sent);
		mp->bytes_received = LOAD(peer[i].bytes_received);
	}
	for (int op = PM_OP_HELLO; op < PM_OP_MAX &&
				   x->n_msgs < METRICS_MAX_MSG_TYPES; op++) {
		struct metrics_msg *mm = &x->msgs[x->n_msgs++];

		snprintf(mm->type, sizeof(mm->type), "%s", proto_op_name(op));
		mm->sent = LOAD(op_sent[op]);
		mm->received = LOAD(op_received[op]);
	}
	return 0;
}

