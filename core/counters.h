/* SPDX-License-Identifier: MIT */
/*
 * The one table of a node's counters. Each row: the struct pm_stats field
 * (and the counter's name in the node), the Prometheus family and labels
 * it is shown under, its kind, and its help text. It drives the node's
 * counters (struct node_stats), pm_node_stats() and /metrics, and so
 * `pagemesh stats`, which prints what /metrics shows. A new counter is one
 * row here and one field appended to struct pm_stats.
 */
#ifndef PM_COUNTERS_H
#define PM_COUNTERS_H

/* X(field, family, labels, help); rows of one family stay together. */
#define PM_COUNTERS(X)                                                      \
	X(faults_zero, "pagemesh_faults_total", "kind=\"zero\"",            \
	  "Page faults serviced, by how they were resolved.")               \
	X(faults_local, "pagemesh_faults_total", "kind=\"local\"", "")      \
	X(faults_remote, "pagemesh_faults_total", "kind=\"remote\"", "")    \
	X(faults_wp, "pagemesh_faults_total", "kind=\"write_protect\"", "") \
	X(faults_total, "pagemesh_faults_serviced_total", "",               \
	  "All page faults serviced.")                                      \
	X(pages_sent, "pagemesh_pages_sent_total", "",                      \
	  "Page payloads sent to peers.")                                   \
	X(pages_received, "pagemesh_pages_received_total", "",              \
	  "Page payloads received from peers.")                             \
	X(invalidations_sent, "pagemesh_invalidations_sent_total", "",      \
	  "Invalidate or recall requests sent.")                            \
	X(invalidations_received, "pagemesh_invalidations_received_total",  \
	  "", "Invalidate or recall requests received.")                    \
	X(downgrades_received, "pagemesh_downgrades_received_total", "",    \
	  "Exclusive copies made read-only on request.")                    \
	X(requests_served, "pagemesh_requests_served_total", "",            \
	  "Protocol requests answered as a page's home.")                   \
	X(bytes_sent, "pagemesh_sent_bytes_total", "",                      \
	  "Bytes sent through all transports.")                             \
	X(bytes_received, "pagemesh_received_bytes_total", "",              \
	  "Bytes received through all transports.")                         \
	X(evictions, "pagemesh_evictions_total", "",                        \
	  "Pages dropped to stay under the local limit.")                   \
	X(writebacks, "pagemesh_writebacks_total", "",                      \
	  "Dirty pages written back to their home.")                        \
	X(prefetched, "pagemesh_prefetched_pages_total", "",                \
	  "Pages installed ahead of a fault.")                              \
	X(downgrades_ahead, "pagemesh_downgrades_ahead_total", "",          \
	  "Own pages made read-only ahead of a node reading in order.")     \
	X(recalls_ahead, "pagemesh_recalls_ahead_total", "",                \
	  "Own pages given up ahead of a node writing in order.")           \
	X(poisoned, "pagemesh_poisoned_faults_total", "",                   \
	  "Faults failed with UFFDIO_POISON.")                              \
	X(peer_failures, "pagemesh_peer_failures_total", "",                \
	  "Peers declared dead.")

enum pm_counter {
#define PM_COUNTER_ENUM(f, fam, lab, help) PM_C_##f,
	PM_COUNTERS(PM_COUNTER_ENUM)
#undef PM_COUNTER_ENUM
	PM_NCOUNTERS
};

struct pm_counter_def {
	const char *field;	/* in struct pm_stats */
	size_t off;		/* offsetof(struct pm_stats, field) */
	const char *family;	/* "pagemesh_faults_total" */
	const char *labels;	/* "kind=\"zero\"", or "" */
	const char *help;	/* "" for the later rows of a family */
};

extern const struct pm_counter_def pm_counter_defs[PM_NCOUNTERS];

#endif
