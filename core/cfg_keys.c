// SPDX-License-Identifier: MIT
/* Every key of the config file in one table: type, range, default and the
 * line the README shows. cfg_read checks files against it, cfg_load fills
 * struct cfg from it, modules take their defaults and ranges from it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cfg.h"
#include "cfg_priv.h"
#include "node.h"	/* PM_MAX_FAULT_THREADS */
#include "vmm.h"	/* VMM_MAX_VCPUS, VMM_DEFAULT_CMDLINE */

#define FIELD(f) .off = offsetof(struct cfg, f), \
	.len = sizeof(((struct cfg *)0)->f)
#define MS_MAX 3600000		/* an hour: longer waits are mistakes */
#define SIZE_MAX_BYTES (1ll << 40)

/*
 * Grouped as the README lists them. Keys of the built-in transports are
 * here so that a typo in their groups is caught like any other; each plugin
 * checks the same ranges again (plugins/tcp/tcp.c, plugins/rdma/rv.h,
 * plugins/io_uring-tcp/ut_main.c): tests/config_test.c loads the tcp
 * plugin at both ends of its ranges.
 */
const struct cfg_key cfg_keys[] = {
	{ "node.id", CFG_T_INT, CFG_K_REQUIRED, 0, CFG_MAX_NODES - 1,
	  .unset = "required", FIELD(node_id),
	  .doc = "this node, `0 .. cluster.nodes-1`" },
	{ "cluster.name", CFG_T_STRING, CFG_K_REQUIRED, 1, 0,
	  .unset = "required", .form = "name", FIELD(cluster_name),
	  .doc = "nodes of one cluster must agree (checked at connect); with a coordinator: letters, digits, `_`, `.` and `-`" },
	{ "cluster.nodes", CFG_T_INT, CFG_K_REQUIRED, 1, CFG_MAX_NODES,
	  .unset = "required", FIELD(cluster_nodes),
	  .doc = "how many nodes; start-up waits for all of them" },
	{ "cluster.memory", CFG_T_SIZE, CFG_K_REQUIRED | CFG_K_PAGES,
	  PM_PAGE_SIZE, SIZE_MAX_BYTES, .unset = "required", FIELD(memory),
	  .doc = "region size; same on every node" },
	{ "cluster.startup_timeout_ms", CFG_T_INT, 0, 100, MS_MAX,
	  .def = 30000, FIELD(startup_timeout_ms),
	  .doc = "how long start-up (and stop) wait for the others" },
	{ "cluster.failure_timeout_ms", CFG_T_INT, 0, 200, MS_MAX,
	  .def = 8000, FIELD(failure_timeout_ms),
	  .doc = "a peer not heard from this long is declared dead (it is pinged every eighth of it); a slower reply is waited for, never a death" },
	{ "cluster.fence", CFG_T_CHOICE, 0, 0, 0, .def_str = "kill",
	  .form = "kill|off", FIELD(fence),
	  .doc = "a node stopped (SIGSTOP, a debugger, starvation) for 3/4 of `failure_timeout_ms` may be declared dead and its copies given away: `\"kill\"` has its watchdog process kill it before it can read one; `\"off\"` risks stale reads" },

	{ "transports.order", CFG_T_LIST, CFG_K_REQUIRED, 1,
	  CFG_MAX_TRANSPORTS, .unset = "required",
	  .form = "list of transport names",
	  .doc = "transport names, most preferred first" },
	{ "transports.dir", CFG_T_STRING, 0, 1, 0,
	  .unset = "`PLUGINDIR` (README, Installing)",
	  .form = "folders `A:B:...`", FIELD(transport_dir),
	  .doc = "folders of the plugin `.so` files, searched in order; the built-in folder (`PLUGINDIR`, or `build/plugins` when run from the build tree) is searched last" },
	{ "transports.tcp.listen", CFG_T_STRING, CFG_K_PLUGIN, 1, 0,
	  .unset = "none: tcp is not used", .form = "`HOST:PORT`",
	  .doc = "address the tcp transport listens on (port 0: any)" },
	{ "transports.tcp.advertise", CFG_T_STRING, CFG_K_PLUGIN, 1, 0,
	  .unset = "the bound address", .form = "address or `HOST:PORT`",
	  .doc = "address published instead of `listen`" },
	{ "transports.tcp.send_timeout_ms", CFG_T_INT, CFG_K_PLUGIN, 1,
	  MS_MAX, .def = 5000,
	  .doc = "a peer that stops reading is dropped after this" },
	{ "transports.tcp.max_conns", CFG_T_INT, CFG_K_PLUGIN, 1, 65536,
	  .def = 1024,
	  .doc = "most incoming connections served at once; at the bound a new one displaces the oldest that has sent no request yet, else it is closed on arrival (peers need `(cluster.nodes - 1) x (1 + pager.threads)`)" },
	{ "transports.tcp.handshake_timeout_ms", CFG_T_INT, CFG_K_PLUGIN, 1,
	  MS_MAX, .def = 2000,
	  .doc = "an incoming connection whose first request is not whole this long after it connects is dropped (so silent peers cannot hold `max_conns`)" },
	{ "transports.tcp.stall_timeout_ms", CFG_T_INT, CFG_K_PLUGIN, 1,
	  MS_MAX, .def = 60000,
	  .doc = "after its first request, an incoming connection whose frame stalls part-way this long is dropped; long, so that TCP recovering from loss (retransmit backoff stalls a frame for seconds) is not mistaken for a slow attacker" },
	{ "transports.io_uring-tcp.listen", CFG_T_STRING, CFG_K_PLUGIN, 1, 0,
	  .def_str = "127.0.0.1:0", .form = "`HOST:PORT`",
	  .doc = "address the io_uring-tcp transport listens on (port 0: any)" },
	{ "transports.io_uring-tcp.max_conns", CFG_T_INT, CFG_K_PLUGIN, 1,
	  1024, .def = 1024,
	  .doc = "most incoming connections served at once; at the bound a new one displaces the oldest that has sent no request yet, else it is closed on arrival" },
	{ "transports.io_uring-tcp.handshake_timeout_ms", CFG_T_INT,
	  CFG_K_PLUGIN, 1, MS_MAX, .def = 2000,
	  .doc = "as `transports.tcp.handshake_timeout_ms`, for io_uring-tcp" },
	{ "transports.io_uring-tcp.stall_timeout_ms", CFG_T_INT,
	  CFG_K_PLUGIN, 1, MS_MAX, .def = 60000,
	  .doc = "as `transports.tcp.stall_timeout_ms`, for io_uring-tcp" },
	{ "transports.rdma.listen", CFG_T_STRING, CFG_K_PLUGIN, 1, 0,
	  .unset = "none: rdma is not used", .form = "`IP:PORT`",
	  .doc = "address of the RDMA-capable netdev the rdma transport listens on" },
	{ "transports.rdma.depth", CFG_T_INT, CFG_K_PLUGIN, 1, 255,
	  .def = 16, .doc = "calls in flight per RDMA connection" },
	{ "transports.rdma.max_conns", CFG_T_INT, CFG_K_PLUGIN, 1, 4096,
	  .def = 128, .doc = "incoming RDMA connections at once" },

	{ "peers", CFG_T_PEERS, 0, 0, CFG_MAX_NODES, .unset = "none",
	  .form = "`( { id = N; TRANSPORT = \"ENDPOINT\"; ... }, ... )`",
	  .doc = "static list of the other nodes" },

	{ "coordinator.url", CFG_T_STRING, 0, 1, 255, .unset = "none",
	  .form = "`http://HOST:PORT`",
	  .doc = "the coordinator; a node with one needs no `peers`" },
	{ "coordinator.urls", CFG_T_LIST, 0, 1, CFG_MAX_URLS,
	  .unset = "none", .form = "list of URLs",
	  .doc = "several coordinator URLs (etcd members), tried in turn" },
	{ "coordinator.backend", CFG_T_CHOICE, 0, 0, 0,
	  .def_str = "embedded", .form = "embedded|etcd",
	  FIELD(coord_backend), .doc = "what the URLs are" },
	{ "coordinator.ttl_ms", CFG_T_INT, 0, 100, MS_MAX, .def = 5000,
	  .doc = "a node silent this long drops out (`pagemesh coordinator`: for every cluster it serves)" },
	{ "coordinator.timeout_ms", CFG_T_INT, 0, 10, 600000, .def = 5000,
	  .doc = "longest one request to the coordinator may take" },
	{ "coordinator.listen", CFG_T_STRING, 0, 1, 255,
	  .unset = "required by `pagemesh coordinator` without `--listen`",
	  .form = "`HOST:PORT`",
	  .doc = "address `pagemesh coordinator -c FILE` serves on" },
	{ "coordinator.key_file", CFG_T_STRING, 0, 1, PATH_MAX - 1,
	  .unset = "`security.key_file`", .form = "file name",
	  .doc = "cluster key of `pagemesh coordinator -c FILE`" },

	{ "pager.threads", CFG_T_INT, 0, 1, PM_MAX_FAULT_THREADS, .def = 2,
	  FIELD(pager_threads),
	  .doc = "fault threads; each serves a fault start to finish" },
	{ "pager.timeout_ms", CFG_T_INT, 0, 10, 600000, .def = 5000,
	  FIELD(timeout_ms),
	  .doc = "deadline of one request of a fault to its home; one that runs out is sent again while the home lives" },
	{ "pager.prefetch", CFG_T_INT, 0, 0, 15, .def = 0, FIELD(prefetch),
	  .doc = "on a sequential fault, also fetch up to this many next pages" },
	{ "pager.migratory", CFG_T_INT, 0, 0, 1, .def = 1, FIELD(migratory),
	  .doc = "1: a page that one node after another reads and then writes (a lock, a counter) is granted exclusive on a read, one fault per hand-off, until a holder gives it back unwritten; 0: reads always share" },
	{ "pager.local_limit", CFG_T_SIZE, CFG_K_PAGES, 0, SIZE_MAX_BYTES,
	  .def = 0, .unset = "unbounded", FIELD(local_limit),
	  .doc = "most of the region kept mapped here; the rest is evicted to its home" },
	{ "pager.policy", CFG_T_CHOICE, 0, 0, 0, .def_str = "2q",
	  .form = "2q|clock|fifo", FIELD(evict_policy),
	  .doc = "which page a full `local_limit` evicts: `\"2q\"` (pages that fault again soon after their eviction are protected, up to 3/4 of the limit; the rest go first), `\"fifo\"` (oldest mapped) or `\"clock\"` (second chance); 2q measured the fewest re-faults (`fault_bench -s`, `bench/evict_sim.py`)" },

	/* "" is off / no key, as it was before the table. */
	{ "metrics.listen", CFG_T_STRING, 0, 0, 0, .unset = "off",
	  .form = "`HOST:PORT`", FIELD(metrics_listen),
	  .doc = "address serving Prometheus text at `/metrics` (latency as the histogram `pagemesh_fault_duration_seconds`), `/healthz` (200 while the process runs) and `/readyz` (200 once the node is up, 503 while it starts or stops)" },
	{ "security.key_file", CFG_T_STRING, 0, 0, 0,
	  .unset = "none (loopback-only clusters)", .form = "file name",
	  FIELD(key_file),
	  .doc = "cluster key (mode 0600, 16+ bytes): peers prove it before any page moves; signs coordinator writes" },

	{ "vm.kernel", CFG_T_STRING, 0, 1, PATH_MAX - 1,
	  .unset = "none: give `--kernel`", .form = "file name",
	  .doc = "Linux bzImage `pagemesh vm` boots" },
	{ "vm.initrd", CFG_T_STRING, 0, 1, PATH_MAX - 1, .unset = "none",
	  .form = "file name", .doc = "initramfs of the guest" },
	{ "vm.cmdline", CFG_T_STRING, 0, 0, 4095,
	  .def_str = VMM_DEFAULT_CMDLINE, .doc = "guest kernel command line" },
	{ "vm.vcpus", CFG_T_INT, 0, 1, VMM_MAX_VCPUS, .def = 1,
	  .doc = "vCPUs of the guest, each a thread of `pagemesh vm`" },
	{ "vm.memory", CFG_T_SIZE, CFG_K_PAGES, 2 << 20, SIZE_MAX_BYTES,
	  .unset = "`cluster.memory`",
	  .doc = "guest RAM: the first bytes of the region, at most `cluster.memory`" },
};

const size_t cfg_n_keys = sizeof(cfg_keys) / sizeof(cfg_keys[0]);

const struct cfg_key *cfg_key_find(const char *name)
{
	size_t i;

	for (i = 0; i < cfg_n_keys; i++)
		if (!strcmp(cfg_keys[i].name, name))
			return &cfg_keys[i];
	return NULL;
}

bool cfg_key_is_group(const char *prefix)
{
	size_t i, n = strlen(prefix);

	for (i = 0; i < cfg_n_keys; i++)
		if (!strncmp(cfg_keys[i].name, prefix, n) &&
		    cfg_keys[i].name[n] == '.')
			return true;
	return false;
}

void cfg_size_str(uint64_t v, char *buf, size_t len)
{
	static const char suffix[] = "TGMK";
	int i;

	for (i = 0; i < 4 && v; i++) {
		unsigned int shift = 10 * (4 - i);

		if (!(v & ((1ull << shift) - 1))) {
			snprintf(buf, len, "%llu%c",
				 (unsigned long long)(v >> shift), suffix[i]);
			return;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

static void num_str(const struct cfg_key *k, int64_t v, char *buf,
		    size_t len)
{
	if (k->type == CFG_T_SIZE && v >= 0)
		cfg_size_str((uint64_t)v, buf, len);
	else
		snprintf(buf, len, "%lld", (long long)v);
}

int cfg_key_check(const char *name, int64_t v, char *why, size_t whylen)
{
	const struct cfg_key *k = cfg_key_find(name);
	char lo[24], hi[24];

	if (!k) {
		snprintf(why, whylen, "%s: not a key of the config table",
			 name);
		return -ENOENT;
	}
	if (v < k->min || v > k->max) {
		num_str(k, k->min, lo, sizeof(lo));
		num_str(k, k->max, hi, sizeof(hi));
		snprintf(why, whylen, "%s: %lld is out of range [%s, %s]",
			 k->name, (long long)v, lo, hi);
		return -ERANGE;
	}
	if ((k->flags & CFG_K_PAGES) && v % PM_PAGE_SIZE) {
		snprintf(why, whylen,
			 "%s: %lld bytes is not a %smultiple of the page size (%u)",
			 k->name, (long long)v, k->min > 0 ? "positive " : "",
			 PM_PAGE_SIZE);
		return -ERANGE;
	}
	return 0;
}

/* "a|b|c" as `"a"`, `"b"` or `"c"` (quote: with backticks, for markdown). */
void cfg_choices_str(const char *form, bool md, char *buf, size_t len)
{
	const char *p = form, *bar;
	size_t used = 0;
	int n = 0;

	buf[0] = '\0';
	while (p && *p && used < len) {
		bar = strchr(p, '|');
		used += snprintf(buf + used, len - used, "%s%s\"%.*s\"%s",
				 !n ? "" : bar ? ", " : " or ", md ? "`" : "",
				 (int)(bar ? (size_t)(bar - p) : strlen(p)), p,
				 md ? "`" : "");
		p = bar ? bar + 1 : NULL;
		n++;
	}
}

void cfg_key_values(const struct cfg_key *k, char *buf, size_t len)
{
	char lo[24], hi[24];

	switch (k->type) {
	case CFG_T_INT:
	case CFG_T_SIZE:
		num_str(k, k->min, lo, sizeof(lo));
		num_str(k, k->max, hi, sizeof(hi));
		snprintf(buf, len, "%s%s to %s%s",
			 k->type == CFG_T_SIZE ? "size, " : "", lo, hi,
			 k->flags & CFG_K_PAGES ? ", whole pages" : "");
		break;
	case CFG_T_CHOICE:
		cfg_choices_str(k->form, true, buf, len);
		break;
	default:
		snprintf(buf, len, "%s", k->form ? k->form : "string");
		break;
	}
}

void cfg_key_default(const struct cfg_key *k, char *buf, size_t len)
{
	if (k->unset)
		snprintf(buf, len, "%s", k->unset);
	else if (k->type == CFG_T_INT || k->type == CFG_T_SIZE)
		num_str(k, k->def, buf, len);
	else
		snprintf(buf, len, "`\"%s\"`", k->def_str ? k->def_str : "");
}

/*
 * Edit distance with adjacent swaps (optimal string alignment), capped:
 * anything over 3 is as far as 4, which is all a suggestion needs.
 */
static int distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	int d[64][64];

	if (la >= 64 || lb >= 64)
		return 4;
	for (i = 0; i <= la; i++)
		d[i][0] = (int)i;
	for (j = 0; j <= lb; j++)
		d[0][j] = (int)j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			int c = a[i - 1] != b[j - 1], v = d[i - 1][j - 1] + c;

			if (d[i - 1][j] + 1 < v)
				v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb] > 3 ? 4 : d[la][lb];
}

/* Last part of a dotted name. */
static const char *leaf(const char *name)
{
	const char *dot = strrchr(name, '.');

	return dot ? dot + 1 : name;
}

/* Length of the parent part of name ("pager" of "pager.threds"). */
static size_t parent_len(const char *name)
{
	const char *dot = strrchr(name, '.');

	return dot ? (size_t)(dot - name) : 0;
}

struct best {
	int d;
	char name[128];
};

/* Consider candidate (its first n bytes) for name: a sibling, close enough
 * for its length (one edit in a short word is already a lot). */
static void consider(struct best *b, const char *name, const char *cand,
		     size_t n)
{
	char c[128];
	size_t pl = parent_len(name);
	int d, limit;

	if (n >= sizeof(c))
		return;
	memcpy(c, cand, n);
	c[n] = '\0';
	if (parent_len(c) != pl || strncmp(c, name, pl))
		return;
	d = distance(leaf(name), leaf(c));
	limit = strlen(leaf(name)) <= 4 ? 1 : strlen(leaf(name)) <= 8 ? 2 : 3;
	if (d && d <= limit && d < b->d) {
		b->d = d;
		snprintf(b->name, sizeof(b->name), "%s", c);
	}
}

bool cfg_key_suggest(const char *name, const char *const *extra, int n,
		     char *out, size_t outlen)
{
	struct best b = { .d = 4 };
	size_t pl = parent_len(name), i;
	int k;

	for (i = 0; i < cfg_n_keys; i++) {
		const char *kn = cfg_keys[i].name, *dot;

		/* the key itself, and the group of it at name's depth */
		consider(&b, name, kn, strlen(kn));
		if (strncmp(kn, name, pl) || (pl && kn[pl] != '.'))
			continue;
		dot = strchr(kn + pl + (pl ? 1 : 0), '.');
		if (dot)
			consider(&b, name, kn, (size_t)(dot - kn));
	}
	for (k = 0; k < n; k++)
		consider(&b, name, extra[k], strlen(extra[k]));
	if (b.d < 4) {
		snprintf(out, outlen, "%s", b.name);
		return true;
	}
	/* The right key in the wrong group: cluster = { threads = 2; } */
	for (i = 0; pl && i < cfg_n_keys; i++) {
		if (!strcmp(leaf(cfg_keys[i].name), leaf(name))) {
			snprintf(out, outlen, "%s", cfg_keys[i].name);
			return true;
		}
	}
	return false;
}
