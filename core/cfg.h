/* SPDX-License-Identifier: MIT */
/* The node's configuration file (libconfig): parsed, validated against one
 * table of keys, and kept as a tree so plugins and later modules can look up
 * their own keys. */
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
	config_t lc;		/* the whole tree, for cfg_get_* */
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
	int migratory;				/* pager.migratory (1) */
	char evict_policy[8];			/* pager.policy ("2q") */
	int timeout_ms;				/* pager.timeout_ms (5000) */
	int startup_timeout_ms;			/* cluster.startup_timeout_ms */
	int failure_timeout_ms;			/* cluster.failure_timeout_ms */
	char fence[8];				/* cluster.fence ("kill") */

	char coord_backend[16];			/* "" (none), "embedded", "etcd" */
	int n_coord_urls;			/* coordinator.url / urls */
	char coord_urls[CFG_MAX_URLS][256];

	char metrics_listen[128];		/* metrics.listen ("" = off) */
	char key_file[PATH_MAX];		/* security.key_file ("" = none) */
};

/*
 * Read path, refuse what libconfig would misread (integers it truncates)
 * and check every setting against the key table: unknown keys, types,
 * ranges. No key is required: the coordinator reads its group this way.
 * 0, or -EINVAL (-ENOENT: no file) with "FILE:LINE: what is wrong" in err.
 * Call cfg_free() either way.
 */
int cfg_read(const char *path, struct cfg *c, char *err, size_t errlen);

/*
 * cfg_read, then a node's config: the required keys, the fields above, and
 * the checks across keys (node.id below cluster.nodes, peers, coordinator).
 * Same returns. Call cfg_free() either way.
 */
int cfg_load(const char *path, struct cfg *c, char *err, size_t errlen);
void cfg_free(struct cfg *c);

/*
 * "256M", "1G", "4096", "64KiB" -> bytes: digits, then nothing or one of
 * K, M, G, T (either case, powers of 1024), optionally followed by "iB".
 * Nothing else: no sign, no spaces, no bare "B". 0 or -EINVAL.
 */
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
 * A table key's value: the file's (checked by cfg_read), else the table's
 * default, also when c was never read. -ENOENT when neither exists,
 * -EINVAL when key is not in the table with that type. found (may be NULL)
 * says whether the file set it.
 */
int cfg_get_int(const struct cfg *c, const char *key, int64_t *out,
		bool *found);
int cfg_get_string(const struct cfg *c, const char *key, const char **out,
		   bool *found);
int cfg_get_size(const struct cfg *c, const char *key, uint64_t *out,
		 bool *found);

/*
 * Is s 1 to max - 1 letters, digits, '_', '.' and '-'? What a name that
 * goes into URLs and etcd keys unescaped may hold: a coordinated
 * cluster.name, the coordinator's cluster and transport names.
 */
bool cfg_plain_name(const char *s, size_t max);

/* Index of transport name in c->transports, or -1. */
int cfg_transport_index(const struct cfg *c, const char *name);

/*
 * "FILE:LINE: message" into err, LINE that of setting s; without s (a key
 * that is missing with its group), the file's last line. Returns -EINVAL.
 * cfg_fail_key blames key's setting, or its nearest group that exists.
 */
int cfg_fail(const struct cfg *c, const config_setting_t *s, char *err,
	     size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
int cfg_fail_key(const struct cfg *c, const char *key, char *err,
		 size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* ---- the key table (cfg_keys.c) ------------------------------------------ */

enum cfg_type {
	CFG_T_INT,	/* integer in [min, max] */
	CFG_T_SIZE,	/* bytes: "256M" or an integer, in [min, max] */
	CFG_T_STRING,	/* string of min to max bytes */
	CFG_T_CHOICE,	/* one of the strings of form, "a|b|c" */
	CFG_T_LIST,	/* list of min to max strings */
	CFG_T_PEERS,	/* list of groups; each is checked by cfg_load */
};

#define CFG_K_REQUIRED	0x1	/* no default: a node's config sets it */
#define CFG_K_PAGES	0x2	/* CFG_T_SIZE: whole pages (PM_PAGE_SIZE) */
#define CFG_K_PLUGIN	0x4	/* read by a plugin through host->cfg_* */

/*
 * One key of the config file: how cfg_read checks it, what cfg_load fills
 * from it, and what the README says of it (tests/config_test.c holds the
 * README's table to this one).
 */
struct cfg_key {
	const char *name;	/* full path: "pager.threads" */
	enum cfg_type type;
	unsigned int flags;	/* CFG_K_* */
	int64_t min, max;	/* range; strings: length; lists: entries */
	int64_t def;		/* default of CFG_T_INT, CFG_T_SIZE */
	const char *def_str;	/* default of a string; NULL: none */
	const char *unset;	/* what leaving it out means, if no default */
	const char *form;	/* CFG_T_CHOICE: "a|b|c"; else shape, for docs */
	size_t off, len;	/* field cfg_load fills; len 0: none */
	const char *doc;	/* one line: what it does */
};

extern const struct cfg_key cfg_keys[];
extern const size_t cfg_n_keys;

/* The entry of a full key name, or NULL. */
const struct cfg_key *cfg_key_find(const char *name);
/* Is prefix a group of table keys ("pager", "transports.tcp")? */
bool cfg_key_is_group(const char *prefix);

/*
 * Is v within the range of table key name (and whole pages, for
 * CFG_K_PAGES)? What the modules check their own options with, so that a
 * flag and a key have one range. 0, or -ERANGE and "NAME: V is out of range
 * [MIN, MAX]" (or the page rule) in why; -ENOENT for a name not in the
 * table.
 */
int cfg_key_check(const char *name, int64_t v, char *why, size_t whylen);

/* Docs of k as the README shows them: its values and its default. */
void cfg_key_values(const struct cfg_key *k, char *buf, size_t len);
void cfg_key_default(const struct cfg_key *k, char *buf, size_t len);

/* v with the largest suffix that divides it: "4K", "1T", "100001". */
void cfg_size_str(uint64_t v, char *buf, size_t len);

/*
 * The known name closest to name, a few edits away, into out: the table's
 * keys and groups under the same parent, else a key of the same last part
 * in another group. extra (n names, may be NULL) adds full names to choose
 * from. false when nothing is close.
 */
bool cfg_key_suggest(const char *name, const char *const *extra, int n,
		     char *out, size_t outlen);

#endif
