/* SPDX-License-Identifier: MIT */
/* The node's configuration file (libconfig): parsed, validated, and kept as
 * a tree so plugins and later modules can look up their own keys. */
#ifndef PM_CFG_H
#define PM_CFG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libconfig.h>

#include <pagemesh/transport.h>

#define CFG_MAX_TRANSPORTS 8
#define CFG_MAX_NODES 64
#define CFG_MAX_URLS 8
#define CFG_NAME_MAX 64

/* Exit code for configuration errors (sysexits EX_CONFIG). */
#define PM_EXIT_CONFIG 78

struct cfg_peer {
	int id;
	/* endpoint per transport, indexed like cfg.transports; "" if none */
	char endpoint[CFG_MAX_TRANSPORTS][PM_ENDPOINT_MAX];
};

struct cfg {
	char path[PATH_MAX];
	config_t lc;		/* the whole tree, for cfg_lookup_* */
	bool loaded;

	int node_id;				/* node.id */
	char cluster_name[CFG_NAME_MAX];	/* cluster.name */
	int cluster_nodes;			/* cluster.nodes */
	uint64_t memory;			/* cluster.memory, bytes */

	char transport_dir[PATH_MAX];		/* transports.dir */
	int n_transports;			/* transports.order */
	char transports[CFG_MAX_TRANSPORTS][CFG_NAME_MAX];

	int n_peers;				/* peers (static list) */
	struct cfg_peer peers[CFG_MAX_NODES];

	int pager_threads;			/* pager.threads (2) */
	uint64_t local_limit;			/* pager.local_limit (0=all) */
	int prefetch;				/* pager.prefetch (0) */
	char evict_policy[8];			/* pager.policy ("2q") */
	int timeout_ms;				/* pager.timeout_ms (5000) */
	int startup_timeout_ms;			/* cluster.startup_timeout_ms */

	char coord_backend[16];			/* "" (none), "embedded", "etcd" */
	int n_coord_urls;			/* coordinator.url / urls */
	char coord_urls[CFG_MAX_URLS][256];

	char metrics_listen[128];		/* metrics.listen ("" = off) */
	char key_file[PATH_MAX];		/* security.key_file ("" = none) */
};

/*
 * Read and validate path. 0 on success; on error -EINVAL (or -errno of the
 * file) and a message "FILE:LINE: KEY: what is wrong" in err. Call
 * cfg_free() either way.
 */
int cfg_load(const char *path, struct cfg *c, char *err, size_t errlen);
void cfg_free(struct cfg *c);

/* "256M", "1G", "4096", "64K" -> bytes. 0 or -EINVAL. */
int cfg_parse_size(const char *s, uint64_t *out);

/*
 * Lookups of keys below a transport's group ("transports.NAME.KEY"), for
 * the host table handed to plugins. 0, -ENOENT (absent), -EINVAL (type).
 */
int cfg_transport_string(const struct cfg *c, const char *transport,
			 const char *key, const char **out);
int cfg_transport_int(const struct cfg *c, const char *transport,
		      const char *key, int64_t *out);

/*
 * Generic lookups for other modules' groups (vm, metrics, ...), with
 * file:line error messages. A missing key is 0 with *found=false when
 * found is non-NULL, else an error. Sizes accept a suffixed string or a
 * 64-bit integer.
 */
int cfg_lookup_string(const struct cfg *c, const char *key, const char **out,
		      bool *found, char *err, size_t errlen);
int cfg_lookup_int(const struct cfg *c, const char *key, int64_t *out,
		   bool *found, char *err, size_t errlen);
int cfg_lookup_size(const struct cfg *c, const char *key, uint64_t *out,
		    bool *found, char *err, size_t errlen);

/* Index of transport name in c->transports, or -1. */
int cfg_transport_index(const struct cfg *c, const char *name);

#endif
