/* SPDX-License-Identifier: MIT */
/* Transport plugin loader: dlopen, ABI checks, probe, and the host-services
 * table handed to each plugin. */
#ifndef PM_LOADER_H
#define PM_LOADER_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#include <pagemesh/transport.h>

#include "cfg.h"

struct pm_plugin {
	char name[CFG_NAME_MAX];	/* name in transports.order */
	char path[PATH_MAX];		/* DIR/NAME.so */
	void *dl;			/* dlopen handle, NULL if not opened */
	const struct pm_transport_ops *ops;	/* NULL if rejected */
	struct pm_host host;		/* lent to the plugin */
	const struct cfg *cfg;		/* for host->cfg_* lookups */
	struct pm_tctx *ctx;		/* after init(), else NULL */
	const struct pm_logger *log;	/* its node's (NULL: the default) */
	bool usable;			/* loaded, checked and probe passed */
	int err;			/* -errno when rejected or probe failed */
	char why[256];			/* reason when !usable */
	/* string keys answered before cfg (see loader_set_string) */
	int n_over;
	struct {
		char key[32];
		char val[PM_ENDPOINT_MAX];
	} over[4];
	/* keys the plugin looked up through host->cfg_* (loader_check_keys) */
	pthread_mutex_t asked_lock;
	int n_asked;
	bool asked_full;		/* more than fit: check nothing */
	char asked[32][64];
};

/*
 * A struct pm_plugin must stay where it is while the plugin is open: its
 * host table points back into it (host.ctx, host.name). Do not copy it.
 *
 * Open dir/name.so and check it: the file first, read but never mapped
 * (a regular, readable ELF shared object of this machine whose header
 * tables and segments lie within it: dlopen of a truncated copy would die
 * of SIGBUS), then entry symbol, ABI major, table size, mandatory ops,
 * name; then run probe(). Fills p (always: p->why says why
 * when !p->usable) and logs one line naming the file, the reason and the
 * decision. Returns 0 when usable, else -errno. cfg may be NULL (no
 * transport keys). Does not call init().
 */
int loader_open(struct pm_plugin *p, const char *dir, const char *name,
		const struct cfg *cfg, int node_id);

/*
 * Where NAME.so is: the first of transports.dir's folders ("A:B:C",
 * searched in order, the built-in folder last) that holds it. 0 and path;
 * -ENOENT, path naming it in the first folder.
 */
int loader_find(const struct cfg *cfg, const char *name, char *path,
		size_t len);

/* Open by explicit file path (conformance suite, tests). */
int loader_open_path(struct pm_plugin *p, const char *path, const char *name,
		     const struct cfg *cfg, int node_id);

/*
 * Open every transport of cfg->transports in order into plugins[] (room for
 * CFG_MAX_TRANSPORTS). Returns how many are usable; rejected ones stay in
 * the array with usable=false and a reason, so --list-transports can show
 * them.
 */
int loader_open_all(const struct cfg *cfg, struct pm_plugin *plugins);

/*
 * Answer host->cfg_string(key) with val for this plugin, ahead of the
 * config: lets a program without a config file (conformance suite,
 * benchmarks) give an instance its "listen" address. Call after
 * loader_open*, before init(). 0, -ENOSPC (table full or too long).
 */
int loader_set_string(struct pm_plugin *p, const char *key, const char *val);

/*
 * Keys of transports.NAME that the plugin never looked up through
 * host->cfg_string/cfg_int: for a plugin the key table does not know (not
 * tcp, io_uring-tcp or rdma, whose keys cfg_read checked), the config's
 * group may hold only keys the plugin asked for. Call once it has read its
 * settings (after listen(): plugins read some there). 0, or -EINVAL with
 * "FILE:LINE: unknown key 'transports.NAME.KEY' ..." in err.
 */
int loader_check_keys(struct pm_plugin *p, char *err, size_t errlen);

/*
 * Is addr (a listen string or an endpoint of p's transport) reachable only
 * from this host? The plugin's answer (is_local, ABI 1.1; then
 * PM_CAP_HOST_LOCAL); for a plugin without either, or not loaded, addr
 * read as HOST:PORT on loopback.
 */
bool loader_addr_is_local(const struct pm_plugin *p, const char *addr);

/* Names of the PM_CAP_* bits in caps, comma-separated ("-" for none). */
void loader_caps_str(uint64_t caps, char *buf, size_t len);

/* fini() if initialised, dlclose, clear. Safe on a rejected plugin. */
void loader_close(struct pm_plugin *p);

/* Print one block per plugin (file, name, version, ABI, caps, probe). */
void loader_print(const struct pm_plugin *plugins, int n, FILE *out);

#endif
