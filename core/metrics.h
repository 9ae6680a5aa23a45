/* SPDX-License-Identifier: MIT */
/* A node's counters over HTTP in Prometheus text format (GET /metrics), and
 * `pagemesh stats`, which reads them back as a table. */
#ifndef PM_METRICS_H
#define PM_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pagemesh/pagemesh.h>

#include "cfg.h"

#define METRICS_MAX_PEERS CFG_MAX_NODES
#define METRICS_MAX_MSG_TYPES 32

/* Traffic of one loaded transport, all peers together. */
struct metrics_transport {
	char name[CFG_NAME_MAX];	/* as in transports.order: "tcp" */
	uint64_t bytes_sent;		/* payload and headers handed to it */
	uint64_t bytes_received;
	uint64_t messages_sent;		/* requests and replies */
	uint64_t messages_received;
	uint64_t errors;		/* failed calls (timeouts, resets) */
};

/* Traffic with one peer over the transport chosen for it. */
struct metrics_peer {
	int node_id;
	char transport[CFG_NAME_MAX];	/* "" if not connected yet */
	char endpoint[256];		/* its address on that transport
					 * (PM_ENDPOINT_MAX), "" unknown */
	bool up;			/* connected and answering */
	uint64_t bytes_sent;
	uint64_t bytes_received;
};

/* Coherence protocol messages of one type ("read", "write", "invalidate",
 * "downgrade", "ack", ...: the names are the protocol's own). */
struct metrics_msg {
	char type[32];
	uint64_t sent;
	uint64_t received;
};

/* What pm_stats does not carry; the node fills what it has. */
struct metrics_extra {
	int node_id;			/* -1 (preset): unknown */
	char cluster[CFG_NAME_MAX];
	uint64_t region_bytes;		/* size of the shared region */
	uint64_t fault_sum_ns;		/* sum of all fault latencies: the
					 * histogram's _sum (0: unknown) */
	int n_transports;
	struct metrics_transport transports[CFG_MAX_TRANSPORTS];
	int n_peers;
	struct metrics_peer peers[METRICS_MAX_PEERS];
	int n_msgs;
	struct metrics_msg msgs[METRICS_MAX_MSG_TYPES];
	/* Bucket bounds of pm_stats.fault_hist; NULL (preset) means
	 * pm_hist_bound_ns. */
	uint64_t (*hist_bound_ns)(int i);
};

struct metrics;

/*
 * fill() is called once per scrape, from a server thread, with *st and *x
 * zeroed (x->node_id = -1); it returns 0, or -errno for a 500 answer.
 */
typedef int (*metrics_fill_fn)(void *arg, struct pm_stats *st,
			       struct metrics_extra *x);

/*
 * Serve GET /metrics, /healthz and /readyz on listen ("HOST:PORT"; port 0
 * picks one). /healthz is 200 while the server runs; /metrics and /readyz
 * are 503 until ready (fill is not called before). NULL on failure with
 * the reason in err. metrics_start: ready at once.
 */
struct metrics *metrics_start(const char *listen, metrics_fill_fn fill,
			      void *arg, char *err, size_t errlen);
struct metrics *metrics_start_ex(const char *listen, metrics_fill_fn fill,
				 void *arg, bool ready, char *err,
				 size_t errlen);
/* From now on fill may be called (true), or no more (false: stopping). */
void metrics_set_ready(struct metrics *m, bool ready);
int metrics_port(const struct metrics *m);
void metrics_stop(struct metrics *m);

/*
 * The exposition text for one snapshot, NUL-terminated, malloc'ed (free()
 * it). Exposed for tests and for callers that want to log a snapshot.
 */
char *metrics_render(const struct pm_stats *st, const struct metrics_extra *x,
		     size_t *len);

#endif
