/* SPDX-License-Identifier: MIT */
/*
 * pagemesh public API: join a cluster from a config file and compute in a
 * region whose pages are shared, coherently, with every other node.
 *
 *	char err[256];
 *	struct pm_node *n = pm_node_start("node0.cfg", err, sizeof(err));
 *	if (!n) { fprintf(stderr, "%s\n", err); exit(78); }
 *	size_t len;
 *	uint64_t *mem = pm_node_region(n, &len);
 *	__atomic_fetch_add(&mem[0], 1, __ATOMIC_SEQ_CST);
 *	pm_node_barrier(n, 10000);
 *	pm_node_stop(n);
 *
 * The region has the same size and layout on every node; plain loads and
 * stores (and atomics) on it are coherent across nodes at page granularity
 * (sequentially consistent: single writer / many readers per page).
 * Link with -lpagemesh (pkg-config pagemesh).
 */
#ifndef PAGEMESH_H
#define PAGEMESH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pm_node;

/* Latency histogram: PM_HIST_SUB buckets per power of two from
 * 2^PM_HIST_MIN_SHIFT ns; bucket i counts samples in
 * (pm_hist_bound_ns(i - 1), pm_hist_bound_ns(i)]. Bucket 94 ends near 3.7 s;
 * the last bucket counts everything larger. */
#define PM_HIST_MIN_SHIFT 8	/* 256 ns */
#define PM_HIST_SUB 4
#define PM_HIST_BUCKETS 96

struct pm_stats {
	uint64_t faults_zero;		/* never written anywhere: installed
					 * as zeros, no payload moved */
	uint64_t faults_local;		/* page homed here, data local */
	uint64_t faults_remote;		/* page data came from another node */
	uint64_t faults_wp;		/* write to a read-only copy (upgrade) */
	uint64_t faults_total;		/* all faults serviced */
	uint64_t pages_sent;		/* page payloads sent to peers */
	uint64_t pages_received;	/* page payloads received */
	uint64_t invalidations_sent;	/* invalidate/recall requests sent */
	uint64_t invalidations_received;
	uint64_t downgrades_received;	/* exclusive copy made read-only */
	uint64_t requests_served;	/* protocol requests answered as home */
	uint64_t bytes_sent;		/* transport bytes, all peers */
	uint64_t bytes_received;
	uint64_t evictions;		/* pages dropped by the local limit */
	uint64_t writebacks;		/* dirty pages written back to home */
	uint64_t prefetched;		/* pages installed ahead of a fault */
	uint64_t poisoned;		/* faults failed with UFFDIO_POISON */
	uint64_t peer_failures;		/* peers declared dead */
	uint64_t resident_pages;	/* pages of the region mapped here */
	uint64_t fault_p50_ns;		/* fault service latency */
	uint64_t fault_p99_ns;
	uint64_t fault_hist[PM_HIST_BUCKETS];
	/* As home: own pages made read-only, or given up into the store, in
	 * one go ahead of another node reading or writing them in order. */
	uint64_t downgrades_ahead;
	uint64_t recalls_ahead;
	uint64_t reserved[14];		/* appended fields take these */
};

/*
 * Where a node's log lines go, and how many: pm_node_start_opts(). Levels:
 * 0 error, 1 warning, 2 info, 3 debug. msg is one line without its end.
 */
typedef void (*pm_log_fn)(void *arg, int level, const char *msg);

struct pm_node_options {
	uint32_t size;		/* sizeof(struct pm_node_options): fields are
				 * only appended, so set it first */
	int log_level;		/* -1: PM_LOG_LEVEL from the environment
				 * (error, warn, info, debug), else info */
	pm_log_fn log;		/* NULL: lines go to stderr, timestamped */
	void *log_arg;
};

#define PM_NODE_OPTIONS_INIT \
	{ sizeof(struct pm_node_options), -1, NULL, NULL }

/*
 * Start a node from a config file: load transports, connect to every
 * node of the cluster (waiting up to cluster.startup_timeout_ms), map
 * the region. NULL on failure with a message in err (file:line for
 * configuration errors; *errcode, if not NULL, is 78 for a configuration
 * error and 1 otherwise).
 */
struct pm_node *pm_node_start(const char *config_path, char *err,
			      size_t errlen);
struct pm_node *pm_node_start_ex(const char *config_path, char *err,
				 size_t errlen, int *errcode);
/* The same with options (NULL: the defaults). The library keeps no
 * process-wide state: each node logs through its own options. */
struct pm_node *pm_node_start_opts(const char *config_path,
				   const struct pm_node_options *opts,
				   char *err, size_t errlen, int *errcode);

/* The shared region: same size and address-independent layout on every
 * node. Valid until pm_node_stop(). */
void *pm_node_region(struct pm_node *n, size_t *len);

int pm_node_id(const struct pm_node *n);
int pm_node_count(const struct pm_node *n);

/*
 * Wait until every node of the cluster has reached the same barrier
 * (barriers are counted per node, so each node must call it the same
 * number of times). A node run by `pagemesh node` only serves and counts
 * as arrived at every barrier after start-up: the barrier gathers the
 * programs that use this API. 0, or -ETIMEDOUT / -errno.
 */
int pm_node_barrier(struct pm_node *n, int timeout_ms);

/* Counters since start. 0 or -errno. */
int pm_node_stats(struct pm_node *n, struct pm_stats *out);

/* Upper bound in ns of histogram bucket i (UINT64_MAX for the last). */
uint64_t pm_hist_bound_ns(int i);

/*
 * Leave the cluster: waits for the other API programs to call it too (so
 * pages this node is home for stay served while others still use them, up
 * to cluster.startup_timeout_ms; nodes run by `pagemesh node` are not
 * waited for, and go on serving), then unmaps the region and frees n.
 */
void pm_node_stop(struct pm_node *n);

/*
 * Leave the cluster alone while the others go on (a program asked to
 * stop, SIGTERM): first write every page this node holds exclusively back
 * to its home, then stop at once, waiting for nobody; the others declare
 * this node dead after cluster.failure_timeout_ms of silence and lose
 * nothing it wrote to their pages. The caller must not touch the region
 * once it calls this. Pages homed on this node are lost with it (faults
 * on them get SIGBUS) until homes are replicated. Frees n. 0, -EIO when
 * some page could not be written back (logged, with how many), -EINVAL
 * for a NULL n.
 */
int pm_node_leave(struct pm_node *n);

#ifdef __cplusplus
}
#endif

#endif /* PAGEMESH_H */
