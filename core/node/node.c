// SPDX-License-Identifier: MIT
/*
 * A node's life: config-driven start-up (transports, region, pager,
 * peers) in pm_node_start_ex, and teardown in node_free, its exact reverse.
 * The public API's small accessors live here too.
 */
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "cli.h"
#include "coord.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "node.h"

/* Transports this core knows by name even when their plugin is not built. */
static const char *const known_transports[] = { "rdma", "io_uring-tcp", "tcp" };

int node_fail(char *err, size_t errlen, int code, int *codep,
	      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (codep)
		*codep = code;
	return -1;
}

static int check_keyless(struct pm_node *n, bool peers, char *err,
			 size_t errlen, int *code)
{
	const struct cfg *c = &n->cfg;
	const char *addr;

	if (auth_has_key(n->auth))
		return 0;
	for (int t = 0; t < c->n_transports && !peers; t++) {
		if (cfg_transport_string(c, c->transports[t], "listen", &addr))
			continue;
		if (!loader_addr_is_local(&n->plugins[t], addr))
			return node_fail(err, errlen, PM_EXIT_CONFIG, code,
				    "%s: transports.%s.listen is %s, not host-local: a cluster key is required (security = { key_file = \"...\"; })",
				    c->path, c->transports[t], addr);
	}
	for (int k = 0; k < c->n_peers && peers; k++)
		for (int t = 0; t < c->n_transports; t++) {
			addr = c->peers[k].endpoint[t];
			if (addr[0] &&
			    !loader_addr_is_local(&n->plugins[t], addr))
				return node_fail(err, errlen, PM_EXIT_CONFIG, code,
					    "%s: node %d's %s endpoint is %s, not host-local: a cluster key is required (security = { key_file = \"...\"; })",
					    c->path, c->peers[k].id,
					    c->transports[t], addr);
		}
	if (peers)
		pm_warn("no security.key_file: peers are not authenticated (allowed: every address is host-local)");
	return 0;
}

/* Pick each peer's transport: the first in our order that is usable here
 * and for which the peer has an endpoint. */
static int plan_peers(struct pm_node *n, char *err, size_t errlen, int *code)
{
	const struct cfg *c = &n->cfg;

	for (int i = 0; i < n->nodes; i++)
		n->peers[i] = (struct peer){ .id = i, .tidx = -1 };
	for (int k = 0; k < c->n_peers; k++) {
		const struct cfg_peer *cp = &c->peers[k];
		struct peer *p = &n->peers[cp->id];

		for (int t = 0; t < c->n_transports && p->tidx < 0; t++) {
			if (!n->plugins[t].usable || !cp->endpoint[t][0])
				continue;
			p->tidx = t;
			memcpy(p->endpoint, cp->endpoint[t],
			       sizeof(p->endpoint));
		}
		if (p->tidx < 0)
			return node_fail(err, errlen, PM_EXIT_CONFIG, code,
				    "%s: peers: node %d has no endpoint for a transport usable here (see --list-transports)",
				    c->path, cp->id);
	}
	return 0;
}

/* The peer list (static, or from the coordinator) must name every node. */
static int peers_cover(const struct cfg *c, char *err, size_t errlen,
		       int *code)
{
	bool listed[CFG_MAX_NODES] = { false };
	char missing[256] = "";
	size_t o = 0;

	for (int k = 0; k < c->n_peers; k++)
		listed[c->peers[k].id] = true;
	for (int i = 0; i < c->cluster_nodes; i++)
		if (i != c->node_id && !listed[i] && o < sizeof(missing) - 8)
			o += snprintf(missing + o, sizeof(missing) - o, " %d", i);
	if (o)
		return node_fail(err, errlen, PM_EXIT_CONFIG, code,
			    "%s: cluster.nodes is %d but %s for node(s)%s",
			    c->path, c->cluster_nodes,
			    c->n_coord_urls ? "the coordinator has no endpoint"
					    : "peers lists no endpoint (and no coordinator is configured)",
			    missing);
	return 0;
}

static int check_peers(const struct cfg *c, char *err, size_t errlen,
		       int *code)
{
	return c->n_coord_urls ? 0 : peers_cover(c, err, errlen, code);
}

static int check_peers_all(struct pm_node *n, char *err, size_t errlen,
			   int *code)
{
	int r = peers_cover(&n->cfg, err, errlen, code);

	if (r && code)
		*code = PM_EXIT_RUNTIME;
	return r;
}

static int join_coordinator(struct pm_node *n, char *err, size_t errlen,
			    int *code)
{
	struct coord_member self = { .node_id = n->id };
	struct coord_member *m;
	uint64_t version;
	int r, cnt = 0;

	r = coord_open(&n->cfg, &n->coord);
	if (r)
		return node_fail(err, errlen, PM_EXIT_RUNTIME, code,
			    "coordinator %s: %s (see the log above)",
			    n->cfg.coord_urls[0], strerror(-r));
	for (int t = 0; t < n->nplugins; t++) {
		struct pm_plugin *p = &n->plugins[t];

		if (!p->usable)
			continue;
		snprintf(self.eps[self.n_eps].transport,
			 sizeof(self.eps[0].transport), "%s", p->name);
		if (p->ops->endpoint(p->ctx, self.eps[self.n_eps].endpoint,
				     PM_ENDPOINT_MAX))
			continue;
		self.n_eps++;
	}
	r = coord_register(n->coord, &self);
	if (r)
		return node_fail(err, errlen, PM_EXIT_RUNTIME, code,
			    "registering with the coordinator %s: %s",
			    n->cfg.coord_urls[0], strerror(-r));
	m = calloc(CFG_MAX_NODES, sizeof(*m));
	if (!m)
		return node_fail(err, errlen, PM_EXIT_RUNTIME, code,
			    "out of memory");
	r = coord_wait_members(n->coord, n->nodes,
			       n->cfg.startup_timeout_ms, m, CFG_MAX_NODES,
			       &cnt, &version);
	if (r) {
		char seen[256] = "";
		size_t o = 0;

		for (int i = 0; i < cnt && o < sizeof(seen) - 8; i++)
			o += snprintf(seen + o, sizeof(seen) - o, " %d",
				      m[i].node_id);
		free(m);
		return node_fail(err, errlen, PM_EXIT_RUNTIME, code,
			    "start-up: %d of %d nodes registered with the coordinator after %d ms (seen:%s): %s",
			    cnt, n->nodes, n->cfg.startup_timeout_ms,
			    o ? seen : " none", strerror(-r));
	}
	coord_fill_peers(&n->cfg, m, cnt);
	free(m);
	pm_info("coordinator: %d nodes registered (membership version %llu)",
		cnt, (unsigned long long)version);
	return check_peers_all(n, err, errlen, code);
}

static bool transport_known(const struct cfg *c, const char *name)
{
	char path[PATH_MAX + 80];

	for (size_t i = 0; i < sizeof(known_transports) /
			       sizeof(known_transports[0]); i++)
		if (!strcmp(name, known_transports[i]))
			return true;
	return loader_find(c, name, path, sizeof(path)) == 0;
}

static int check_transports(const struct cfg *c, char *err, size_t errlen,
			    int *code)
{
	config_setting_t *order = config_lookup(&c->lc, "transports.order");

	for (int i = 0; i < c->n_transports; i++)
		if (!transport_known(c, c->transports[i]))
			return node_fail(err, errlen, PM_EXIT_CONFIG, code,
				    "%s:%u: transports.order: unknown transport '%s' (known: rdma, io_uring-tcp, tcp, or a plugin file %s.so in a folder of transports.dir %s)",
				    c->path,
				    order ? config_setting_source_line(order)
					  : 0,
				    c->transports[i], c->transports[i],
				    c->transport_dir);
	return 0;
}

/*
 * What the config can be held to before anything starts: metrics.listen's
 * form (its bind is a runtime matter), and a warning when what this node
 * must hold exceeds the machine's RAM: its home share of the region, plus
 * its local_limit or, without one, the whole region.
 */
static int check_settings(const struct cfg *c, char *err, size_t errlen,
			  int *code)
{
	uint64_t pages = c->memory / PM_PAGE_SIZE, share, need;
	struct sockaddr_storage ss;
	struct sysinfo si;
	socklen_t sl;
	char why[256];

	if (c->metrics_listen[0] &&
	    http_parse_listen(c->metrics_listen, &ss, &sl, why, sizeof(why))) {
		if (code)
			*code = PM_EXIT_CONFIG;
		return cfg_fail_key(c, "metrics.listen", err, errlen,
				    "metrics.listen: %s", why);
	}
	share = (pages + c->cluster_nodes - 1) / c->cluster_nodes *
		PM_PAGE_SIZE;
	need = share + (c->local_limit ? c->local_limit : c->memory);
	if (!sysinfo(&si) && need / si.mem_unit > si.totalram)
		pm_warn("%s: this node may have to hold %llu MiB (its home share of cluster.memory, %llu MiB, plus %s, %llu MiB), more than this machine's %llu MiB of RAM",
			c->path, (unsigned long long)(need >> 20),
			(unsigned long long)(share >> 20),
			c->local_limit ? "pager.local_limit" :
			"the whole region, as pager.local_limit is not set",
			(unsigned long long)((c->local_limit ? c->local_limit :
					      c->memory) >> 20),
			(unsigned long long)((uint64_t)si.totalram *
					     si.mem_unit >> 20));
	return 0;
}

/*
 * Open files: each transport may hold max_conns incoming connections, and
 * each peer takes a connection per fault thread plus one, both ways. A
 * soft limit below that (1024 is common) would let a flood of connections
 * run the process out of descriptors before max_conns bounds it, and a
 * restarted peer could then not be dialled. Raised up to the hard limit;
 * past that, said once.
 */
static void fd_budget(struct pm_node *n)
{
	int64_t need = 64 + 2 * (int64_t)(n->nodes - 1) *
				 (1 + n->cfg.pager_threads);
	struct rlimit rl;

	for (int t = 0; t < n->cfg.n_transports; t++) {
		int64_t mc = 1024;

		cfg_transport_int(&n->cfg, n->cfg.transports[t], "max_conns",
				  &mc);
		need += mc;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= (rlim_t)need)
		return;
	rlim_t want = rl.rlim_max < (rlim_t)need ? rl.rlim_max : (rlim_t)need;

	if (want > rl.rlim_cur) {
		rl.rlim_cur = want;
		if (!setrlimit(RLIMIT_NOFILE, &rl))
			pm_info("open files: soft limit raised to %llu (transports' max_conns and peers need %lld)",
				(unsigned long long)want, (long long)need);
	}
	if (want < (rlim_t)need)
		pm_warn("open files: the hard limit is %llu (ulimit -Hn, LimitNOFILE=), below the %lld that transports' max_conns and %d peers need: a flood of connections may exhaust descriptors before max_conns bounds it",
			(unsigned long long)rl.rlim_max, (long long)need,
			n->nodes - 1);
}

static int setup_region(struct pm_node *n)
{
	n->len = n->cfg.memory;
	n->npages = n->len / PM_PAGE_SIZE;
	n->per_home = (n->npages + n->nodes - 1) / n->nodes;
	n->home_first = n->per_home * n->id;
	if (n->home_first > n->npages)
		n->home_first = n->npages;
	n->home_count = n->npages - n->home_first < n->per_home
				? n->npages - n->home_first
				: n->per_home;
	n->region = mmap(NULL, n->len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (n->region == MAP_FAILED) {
		n->region = NULL;
		return -errno;
	}
	/* Pages move one at a time: no huge pages under userfaultfd; and
	 * a watchdog forked by another node of this process copies none. */
	madvise(n->region, n->len, MADV_NOHUGEPAGE);
	madvise(n->region, n->len, MADV_DONTFORK);
	n->lstate = calloc(n->npages, 1);
	if (!n->lstate)
		return -ENOMEM;
	return home_init(n);
}

static struct pm_node *node_alloc(void)
{
	struct pm_node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	for (int i = 0; i < PM_NLOCKS; i++) {
		pthread_mutex_init(&n->llock[i], NULL);
		pthread_mutex_init(&n->dlock[i], NULL);
	}
	pthread_mutex_init(&n->evicting_lock, NULL);
	pthread_mutex_init(&n->wq_lock, NULL);
	pthread_cond_init(&n->wq_cv, NULL);
	pthread_mutex_init(&n->txn_lock, NULL);
	pthread_cond_init(&n->txn_cv, NULL);
	pthread_mutex_init(&n->bar_lock, NULL);
	pthread_mutex_init(&n->det_lock, NULL);
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&n->bar_cv, &ca);
	pthread_cond_init(&n->det_cv, &ca);
	pthread_condattr_destroy(&ca);
	n->uffd = n->stop_efd = -1;
	n->rejoin_by = -1;
	return n;
}

/*
 * The reverse of pm_node_start_ex, step by step, so each part stops while
 * everything it uses still runs: nothing more is served (metrics), peers
 * are let go (their calls in flight fail), fault threads stop, then the
 * eviction thread and the home workers (their queued transactions finish
 * or are refused while the transports can still carry replies), then the
 * coordinator and the transports (no callback after fini), the key, the
 * region.
 */
void node_free(struct pm_node *n)
{
	/* Loops that wait for a peer give up from here. */
	__atomic_store_n(&n->closing, true, __ATOMIC_RELAXED);
	if (n->metrics)
		metrics_stop(n->metrics);
	n->metrics = NULL;
	detect_stop(n);
	node_disconnect_peers(n);
	fault_stop(n);
	evict_free(n);
	home_workers_stop(n);
	if (n->coord)
		coord_close(n->coord);
	n->coord = NULL;
	for (int t = 0; t < n->nplugins; t++)
		loader_close(&n->plugins[t]);
	auth_close(n->auth);	/* after fini: no on_close follows */
	n->auth = NULL;
	home_fini(n);
	free(n->lstate);
	if (n->region)
		munmap(n->region, n->len);
	fence_stop(n);
	cfg_free(&n->cfg);
	if (pm_log_current() == &n->log)
		pm_log_use(NULL);	/* the caller puts its own back */
	free(n);
}

/* Start-up, on n's own logger; n is freed on failure. */
static struct pm_node *node_start(struct pm_node *n, const char *config_path,
				  char *err, size_t errlen, int *code)
{
	char buf[PM_ENDPOINT_MAX];
	int r, usable = 0;

	r = cfg_load(config_path, &n->cfg, err, errlen);
	if (r) {
		if (code)
			*code = PM_EXIT_CONFIG;
		goto out_free;
	}
	snprintf(n->log.prefix, sizeof(n->log.prefix), "node %d",
		 n->cfg.node_id);
	if (check_transports(&n->cfg, err, errlen, code) ||
	    check_peers(&n->cfg, err, errlen, code) ||
	    check_settings(&n->cfg, err, errlen, code))
		goto out_free;
	r = auth_open(&n->cfg, &n->auth, err, errlen);
	if (r) {
		if (code)
			*code = PM_EXIT_CONFIG;
		goto out_free;
	}
	if (getrandom(&n->incarnation, sizeof(n->incarnation), 0) !=
	    sizeof(n->incarnation))
		n->incarnation = (uint64_t)pm_now_ns() ^ (uint64_t)getpid();
	n->id = n->cfg.node_id;
	n->nodes = n->cfg.cluster_nodes;
	n->timeout_ms = n->cfg.timeout_ms;
	n->failure_ms = n->cfg.failure_timeout_ms;
	n->nthreads = n->cfg.pager_threads;
	n->prefetch = n->cfg.prefetch;

	/* Forked before the region and the node's threads exist. */
	r = fence_start(n);
	if (r) {
		node_fail(err, errlen, PM_EXIT_RUNTIME, code,
			  "starting the watchdog (cluster.fence): %s",
			  strerror(-r));
		goto out_free;
	}
	/* /healthz from here on; /metrics and /readyz once the node is up.
	 * A bind that fails is a runtime error (the form was checked). */
	if (n->cfg.metrics_listen[0]) {
		n->metrics = metrics_start_ex(n->cfg.metrics_listen,
					      stats_metrics_fill, n, false,
					      buf, sizeof(buf));
		if (!n->metrics) {
			node_fail(err, errlen, PM_EXIT_RUNTIME, code,
				  "metrics.listen: %s", buf);
			goto out_free;
		}
	}
	r = setup_region(n);
	if (r) {
		node_fail(err, errlen, PM_EXIT_RUNTIME, code,
		     "mapping a region of %llu bytes: %s",
		     (unsigned long long)n->cfg.memory, strerror(-r));
		goto out_free;
	}

	fd_budget(n);
	/* Transports: every usable one listens; peers pick among them. */
	loader_open_all(&n->cfg, n->plugins);
	n->nplugins = n->cfg.n_transports;
	for (int t = 0; t < n->nplugins; t++)
		n->plugins[t].log = &n->log;
	/* Whether a listen address is host-local is each plugin's answer:
	 * asked once they are loaded, before any of them listens. */
	if (check_keyless(n, false, err, errlen, code))
		goto out_free;
	for (int t = 0; t < n->nplugins; t++) {
		struct pm_plugin *p = &n->plugins[t];

		if (!p->usable)
			continue;
		r = p->ops->init(&p->host, &p->ctx);
		if (r == -EINVAL) {
			p->ctx = NULL;	/* as below: nothing to fini */
			p->usable = false;
			goto refused;
		}
		if (r) {
			pm_warn("transport %s: init: %s; not used", p->name,
				strerror(-r));
			p->ctx = NULL;
			p->usable = false;
			continue;
		}
		n->lctx[t] = (struct listener_ctx){ .node = n, .tidx = t };
		struct pm_listener lst = {
			.on_request = node_on_request,
			.on_close = node_on_close,
			.arg = &n->lctx[t],
		};
		r = p->ops->listen(p->ctx, &lst);
		if (r == -EINVAL)
			goto refused;
		if (!r)
			r = p->ops->endpoint(p->ctx, buf, sizeof(buf));
		if (r) {
			pm_warn("transport %s: listen: %s; not used", p->name,
				strerror(-r));
			p->usable = false;
			continue;
		}
		/* A key of its group it never asked for is a typo. */
		if (loader_check_keys(p, err, errlen)) {
			if (code)
				*code = PM_EXIT_CONFIG;
			goto out_free;
		}
		pm_dbg("transport %s: endpoint %s", p->name, buf);
		usable++;
		continue;
refused:
		/* A plugin says EINVAL of its settings: the config's fault;
		 * its own line above says which setting. */
		snprintf(buf, sizeof(buf), "transports.%s", p->name);
		cfg_fail_key(&n->cfg, buf, err, errlen,
			     "%s: the %s transport refuses its settings (see the error above)",
			     buf, p->name);
		if (code)
			*code = PM_EXIT_CONFIG;
		goto out_free;
	}
	if (!usable) {
		node_fail(err, errlen, PM_EXIT_RUNTIME, code,
		     "%s: no usable transport among transports.order (see pagemesh --list-transports -c %s)",
		     config_path, config_path);
		goto out_free;
	}
	if (n->cfg.n_coord_urls && join_coordinator(n, err, errlen, code))
		goto out_free;
	if (plan_peers(n, err, errlen, code) ||
	    check_keyless(n, true, err, errlen, code))
		goto out_free;
	r = home_workers_start(n);
	if (!r)
		r = evict_start(n);
	if (!r)
		r = fault_start(n);
	if (r) {
		node_fail(err, errlen, PM_EXIT_RUNTIME, code,
		     "starting the pager: %s", strerror(-r));
		goto out_free;
	}
	if (node_connect_peers(n, err, errlen, code))
		goto out_free;
	/* Every peer answered our handshake, each having dropped what it
	 * held of an earlier run of ours: now serve, from a store that is
	 * empty, or marked lost when this is such a run's successor. */
	if (__atomic_load_n(&n->rejoin_by, __ATOMIC_ACQUIRE) >= 0)
		home_lose_all(n, n->rejoin_by,
			      __atomic_load_n(&n->rejoin_inc, __ATOMIC_ACQUIRE));
	__atomic_store_n(&n->serving, true, __ATOMIC_RELEASE);
	r = pm_node_barrier(n, n->cfg.startup_timeout_ms);
	if (r) {
		node_fail(err, errlen, PM_EXIT_RUNTIME, code,
		     "start-up barrier: %s (are all %d nodes running?)",
		     strerror(-r), n->nodes);
		goto out_free;
	}
	r = detect_start(n);
	if (r) {
		node_fail(err, errlen, PM_EXIT_RUNTIME, code,
			  "starting the failure detector: %s", strerror(-r));
		goto out_free;
	}
	metrics_set_ready(n->metrics, true);
	pm_info("node %d of %d up: region %llu bytes, pages %llu..%llu homed here; incarnation %#llx",
		n->id, n->nodes, (unsigned long long)n->len,
		(unsigned long long)n->home_first,
		(unsigned long long)(n->home_first + n->home_count - 1),
		(unsigned long long)n->incarnation);
	if (code)
		*code = 0;
	return n;

out_free:
	node_free(n);
	return NULL;
}

static struct pm_node *start_opts(const char *config_path,
				  const struct pm_node_options *opts,
				  bool server_only, char *err, size_t errlen,
				  int *code)
{
	const struct pm_logger *old;
	struct pm_node *n;

	if (code)
		*code = PM_EXIT_RUNTIME;
	if (opts && opts->size < offsetof(struct pm_node_options, log_arg) +
				   sizeof(opts->log_arg)) {
		node_fail(err, errlen, PM_EXIT_RUNTIME, code,
			  "pm_node_start_opts: options of %u bytes: set size to sizeof(struct pm_node_options)",
			  opts->size);
		return NULL;
	}
	n = node_alloc();
	if (!n) {
		node_fail(err, errlen, PM_EXIT_RUNTIME, code, "out of memory");
		return NULL;
	}
	n->server_only = server_only;
	/* Without options, as the process logs (the CLI's -v). */
	n->log = pm_log_default;
	n->log.level = pm_log_level_from_env(pm_log_default.level);
	if (opts && opts->log_level >= 0)
		n->log.level = opts->log_level;
	if (opts && opts->log) {
		n->log.fn = opts->log;
		n->log.arg = opts->log_arg;
	}
	old = pm_log_use(&n->log);
	n = node_start(n, config_path, err, errlen, code);
	pm_log_use(old);
	return n;
}

struct pm_node *pm_node_start_opts(const char *config_path,
				   const struct pm_node_options *opts,
				   char *err, size_t errlen, int *code)
{
	return start_opts(config_path, opts, false, err, errlen, code);
}

struct pm_node *node_start_server(const char *config_path, char *err,
				  size_t errlen, int *code)
{
	return start_opts(config_path, NULL, true, err, errlen, code);
}

struct pm_node *pm_node_start_ex(const char *config_path, char *err,
				 size_t errlen, int *code)
{
	return pm_node_start_opts(config_path, NULL, err, errlen, code);
}

struct pm_node *pm_node_start(const char *config_path, char *err,
			      size_t errlen)
{
	return pm_node_start_opts(config_path, NULL, err, errlen, NULL);
}

void *pm_node_region(struct pm_node *n, size_t *len)
{
	if (len)
		*len = n ? n->len : 0;
	return n ? n->region : NULL;
}

int pm_node_id(const struct pm_node *n)
{
	return n ? n->id : -1;
}

int pm_node_count(const struct pm_node *n)
{
	return n ? n->nodes : 0;
}

/*
 * The end of a node of the API: not ready any more, nothing more to
 * evict, then what stopping asks of it (leave: write back; else: wait
 * for the other programs), then free. Returns how many pages a leave
 * could not write back, or -errno.
 */
static int64_t node_end(struct pm_node *n, bool leave)
{
	const struct pm_logger *old = pm_log_use(&n->log);
	int64_t lost = 0;

	metrics_set_ready(n->metrics, false);
	evict_stop(n);
	if (leave)
		/* The others go on: they declare us dead when we stop
		 * answering, and find nothing of theirs left here. */
		lost = evict_writeback_all(n);
	/* Pages homed here stay served until every API program is done
	 * (a node run by `pagemesh node` counts as arrived: barrier.c). */
	else if (pm_node_barrier(n, n->cfg.startup_timeout_ms))
		pm_warn("stopping without the other nodes' agreement");
	/* From here peers closing is the cluster stopping, not failing. */
	__atomic_store_n(&n->leaving, true, __ATOMIC_RELAXED);
	node_free(n);
	pm_log_use(old);
	return lost;
}

int pm_node_leave(struct pm_node *n)
{
	int64_t lost;

	if (!n)
		return -EINVAL;
	lost = node_end(n, true);
	return lost < 0 ? (int)lost : lost ? -EIO : 0;
}

void pm_node_stop(struct pm_node *n)
{
	if (n)
		node_end(n, false);
}

