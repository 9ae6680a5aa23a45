// SPDX-License-Identifier: MIT
/* Prometheus text exposition of a node's counters (GET /metrics on
 * metrics.listen) and `pagemesh stats`, which prints them as a table. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <microhttpd.h>

#include "cfg.h"
#include "cli.h"
#include "http.h"
#include "log.h"
#include "counters.h"
#include "metrics.h"

/* Weak: the node defines it; a program without the node (tests, tools)
 * passes metrics_extra.hist_bound_ns instead. */
extern uint64_t pm_hist_bound_ns(int i) __attribute__((weak));

struct metrics {
	struct MHD_Daemon *d;
	int port;
	metrics_fill_fn fill;
	void *arg;
	bool ready;		/* atomic: fill may be called, /readyz is 200 */
};

/* ---- rendering ----------------------------------------------------------- */

struct sb {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_printf(struct sb *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sb_printf(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += n;
			return;
		}
		{
			size_t cap = b->cap ? b->cap * 2 : 16384;
			char *np;

			while (cap - b->len <= (size_t)n)
				cap *= 2;
			np = realloc(b->p, cap);
			if (!np) {
				b->oom = true;
				return;
			}
			b->p = np;
			b->cap = cap;
		}
	}
}

/* A label value with \, " and newline escaped, as the format requires. */
static const char *esc(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	for (; *s && o + 3 < len; s++) {
		if (*s == '\\' || *s == '"') {
			buf[o++] = '\\';
			buf[o++] = *s;
		} else if (*s == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else {
			buf[o++] = *s;
		}
	}
	buf[o] = '\0';
	return buf;
}

static void family(struct sb *b, const char *name, const char *type,
		   const char *help)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(struct sb *b, const char *name, const char *help,
		  uint64_t v)
{
	family(b, name, "gauge", help);
	sb_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void render_hist(struct sb *b, const struct pm_stats *st,
			const struct metrics_extra *x)
{
	static const char *const name = "pagemesh_fault_duration_seconds";
	uint64_t (*bound)(int) = x->hist_bound_ns ? x->hist_bound_ns
						  : pm_hist_bound_ns;
	unsigned long long cum = 0;
	int i;

	if (!bound)
		return;	/* nothing to say where the buckets end */
	family(b, name, "histogram",
	       "Time from a page fault to the page being installed.");
	for (i = 0; i < PM_HIST_BUCKETS - 1; i++) {
		cum += st->fault_hist[i];
		sb_printf(b, "%s_bucket{le=\"%.12g\"} %llu\n", name,
			  bound(i) / 1e9, cum);
	}
	cum += st->fault_hist[PM_HIST_BUCKETS - 1];
	sb_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, cum);
	sb_printf(b, "%s_sum %.9f\n", name, x->fault_sum_ns / 1e9);
	sb_printf(b, "%s_count %llu\n", name, cum);
}

const struct pm_counter_def pm_counter_defs[PM_NCOUNTERS] = {
#define PM_COUNTER_DEF(f, fam, lab, h) \
	[PM_C_##f] = { #f, offsetof(struct pm_stats, f), fam, lab, h },
	PM_COUNTERS(PM_COUNTER_DEF)
#undef PM_COUNTER_DEF
};

char *metrics_render(const struct pm_stats *st, const struct metrics_extra *x,
		     size_t *len)
{
	char e1[128], e2[128], e3[520];
	struct sb b = { 0 };
	size_t k;
	int i;

	family(&b, "pagemesh_info", "gauge",
	       "Always 1; the labels say which node this is.");
	if (x->node_id >= 0)
		sb_printf(&b, "pagemesh_info{node=\"%d\",cluster=\"%s\",version=\"%s\"} 1\n",
			  x->node_id, esc(x->cluster, e1, sizeof(e1)),
			  PM_VERSION);
	else
		sb_printf(&b, "pagemesh_info{cluster=\"%s\",version=\"%s\"} 1\n",
			  esc(x->cluster, e1, sizeof(e1)), PM_VERSION);

	for (k = 0; k < PM_NCOUNTERS; k++) {
		const struct pm_counter_def *d = &pm_counter_defs[k];
		uint64_t v = *(const uint64_t *)((const char *)st + d->off);

		if (d->help[0])
			family(&b, d->family, "counter", d->help);
		if (d->labels[0])
			sb_printf(&b, "%s{%s} %llu\n", d->family, d->labels,
				  (unsigned long long)v);
		else
			sb_printf(&b, "%s %llu\n", d->family,
				  (unsigned long long)v);
	}
	gauge(&b, "pagemesh_resident_bytes",
	      "Bytes of the region mapped on this node.",
	      st->resident_pages * PM_PAGE_SIZE);
	if (x->region_bytes)
		gauge(&b, "pagemesh_region_bytes",
		      "Size of the shared region.", x->region_bytes);
	/* Latency is the histogram: quantiles over any window are the
	 * scraper's (histogram_quantile), or `pagemesh stats`'. */
	render_hist(&b, st, x);

	if (x->n_transports > 0) {
		static const struct {
			const char *name, *type, *help;
			size_t off;
		} tf[] = {
			{ "pagemesh_transport_sent_bytes_total", "counter",
			  "Bytes sent through this transport.",
			  offsetof(struct metrics_transport, bytes_sent) },
			{ "pagemesh_transport_received_bytes_total", "counter",
			  "Bytes received through this transport.",
			  offsetof(struct metrics_transport, bytes_received) },
			{ "pagemesh_transport_sent_messages_total", "counter",
			  "Messages sent through this transport.",
			  offsetof(struct metrics_transport, messages_sent) },
			{ "pagemesh_transport_received_messages_total",
			  "counter", "Messages received through this transport.",
			  offsetof(struct metrics_transport,
				   messages_received) },
			{ "pagemesh_transport_errors_total", "counter",
			  "Failed calls on this transport.",
			  offsetof(struct metrics_transport, errors) },
		};
		int n = x->n_transports < CFG_MAX_TRANSPORTS ?
			x->n_transports : CFG_MAX_TRANSPORTS;

		for (k = 0; k < sizeof(tf) / sizeof(tf[0]); k++) {
			family(&b, tf[k].name, tf[k].type, tf[k].help);
			for (i = 0; i < n; i++) {
				const uint64_t *v = (const uint64_t *)
					((const char *)&x->transports[i] +
					 tf[k].off);

				sb_printf(&b, "%s{transport=\"%s\"} %llu\n",
					  tf[k].name,
					  esc(x->transports[i].name, e1,
					      sizeof(e1)),
					  (unsigned long long)*v);
			}
		}
	}

	if (x->n_peers > 0) {
		int n = x->n_peers < METRICS_MAX_PEERS ? x->n_peers
						       : METRICS_MAX_PEERS;

		family(&b, "pagemesh_peer_info", "gauge",
		       "Always 1; the labels say how this peer is reached.");
		for (i = 0; i < n; i++)
			sb_printf(&b, "pagemesh_peer_info{peer=\"%d\",transport=\"%s\",endpoint=\"%s\"} 1\n",
				  x->peers[i].node_id,
				  esc(x->peers[i].transport, e1, sizeof(e1)),
				  esc(x->peers[i].endpoint, e3, sizeof(e3)));
		family(&b, "pagemesh_peer_up", "gauge",
		       "1 if the peer is connected and answering.");
		for (i = 0; i < n; i++)
			sb_printf(&b, "pagemesh_peer_up{peer=\"%d\",transport=\"%s\"} %d\n",
				  x->peers[i].node_id,
				  esc(x->peers[i].transport, e1, sizeof(e1)),
				  x->peers[i].up ? 1 : 0);
		family(&b, "pagemesh_peer_sent_bytes_total", "counter",
		       "Bytes sent to this peer.");
		for (i = 0; i < n; i++)
			sb_printf(&b, "pagemesh_peer_sent_bytes_total{peer=\"%d\",transport=\"%s\"} %llu\n",
				  x->peers[i].node_id,
				  esc(x->peers[i].transport, e1, sizeof(e1)),
				  (unsigned long long)x->peers[i].bytes_sent);
		family(&b, "pagemesh_peer_received_bytes_total", "counter",
		       "Bytes received from this peer.");
		for (i = 0; i < n; i++)
			sb_printf(&b, "pagemesh_peer_received_bytes_total{peer=\"%d\",transport=\"%s\"} %llu\n",
				  x->peers[i].node_id,
				  esc(x->peers[i].transport, e1, sizeof(e1)),
				  (unsigned long long)
				  x->peers[i].bytes_received);
	}

	if (x->n_msgs > 0) {
		int n = x->n_msgs < METRICS_MAX_MSG_TYPES ?
			x->n_msgs : METRICS_MAX_MSG_TYPES;

		family(&b, "pagemesh_coherence_sent_messages_total", "counter",
		       "Coherence protocol messages sent, by type.");
		for (i = 0; i < n; i++)
			sb_printf(&b, "pagemesh_coherence_sent_messages_total{type=\"%s\"} %llu\n",
				  esc(x->msgs[i].type, e2, sizeof(e2)),
				  (unsigned long long)x->msgs[i].sent);
		family(&b, "pagemesh_coherence_received_messages_total",
		       "counter",
		       "Coherence protocol messages received, by type.");
		for (i = 0; i < n; i++)
			sb_printf(&b, "pagemesh_coherence_received_messages_total{type=\"%s\"} %llu\n",
				  esc(x->msgs[i].type, e2, sizeof(e2)),
				  (unsigned long long)x->msgs[i].received);
	}

	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

/* ---- the HTTP endpoint --------------------------------------------------- */

static enum MHD_Result plain(struct MHD_Connection *conn, unsigned int status,
			     const char *msg, const char *allow)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(msg), (void *)msg,
					    MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; charset=utf-8");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result metrics_handler(void *cls, struct MHD_Connection *conn,
				       const char *url, const char *method,
				       const char *version,
				       const char *upload_data,
				       size_t *upload_data_size, void **con_cls)
{
	struct metrics *m = cls;
	struct metrics_extra *x;
	struct MHD_Response *r;
	struct pm_stats *st;
	enum MHD_Result ret;
	size_t len;
	char *txt;
	int rc;

	(void)version;
	(void)upload_data;
	/* First call: headers only. Nothing here takes a body. */
	if (!*con_cls) {
		*con_cls = m;
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/metrics") && strcmp(url, "/healthz") &&
	    strcmp(url, "/readyz"))
		return plain(conn, MHD_HTTP_NOT_FOUND,
			     "not found: metrics are at /metrics (also /healthz, /readyz)\n",
			     NULL);
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return plain(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
			     "use GET\n", "GET, HEAD");
	/* The process answers: healthy, whatever the node is doing. */
	if (!strcmp(url, "/healthz"))
		return plain(conn, MHD_HTTP_OK, "ok\n", NULL);
	if (!__atomic_load_n(&m->ready, __ATOMIC_ACQUIRE))
		return plain(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
			     "not ready: the node is starting or stopping\n",
			     NULL);
	if (!strcmp(url, "/readyz"))
		return plain(conn, MHD_HTTP_OK, "ready\n", NULL);

	st = calloc(1, sizeof(*st));
	x = calloc(1, sizeof(*x));
	if (!st || !x) {
		free(st);
		free(x);
		return MHD_NO;
	}
	x->node_id = -1;
	rc = m->fill(m->arg, st, x);
	txt = rc ? NULL : metrics_render(st, x, &len);
	free(st);
	free(x);
	if (rc) {
		pm_warn("metrics: cannot read the counters: %s", strerror(-rc));
		return plain(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
			     "cannot read the counters\n", NULL);
	}
	if (!txt)
		return MHD_NO;
	r = MHD_create_response_from_buffer(len, txt, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(txt);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; version=0.0.4; charset=utf-8");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

struct metrics *metrics_start(const char *listen, metrics_fill_fn fill,
			      void *arg, char *err, size_t errlen)
{
	return metrics_start_ex(listen, fill, arg, true, err, errlen);
}

void metrics_set_ready(struct metrics *m, bool ready)
{
	if (m)
		__atomic_store_n(&m->ready, ready, __ATOMIC_RELEASE);
}

struct metrics *metrics_start_ex(const char *listen, metrics_fill_fn fill,
				 void *arg, bool ready, char *err,
				 size_t errlen)
{
	struct metrics *m;

	if (!fill) {
		snprintf(err, errlen, "metrics: no fill function");
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "metrics: out of memory");
		return NULL;
	}
	m->fill = fill;
	m->arg = arg;
	m->ready = ready;
	if (http_start(listen, (void *)metrics_handler, m, NULL, NULL, 16,
		       &m->d, &m->port, err, errlen)) {
		free(m);
		return NULL;
	}
	pm_info("metrics on http://%s/metrics, /healthz, /readyz (port %d)",
		listen, m->port);
	return m;
}

int metrics_port(const struct metrics *m)
{
	return m->port;
}

void metrics_stop(struct metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->d);
	free(m);
}

/* ---- `pagemesh stats` ---------------------------------------------------- */

#define STATS_MAX_NODES 16
#define STATS_INTERVAL 2
#define STATS_BODY_MAX (4 << 20)

struct stats_body {
	char *p;
	size_t len;
};

static size_t stats_data(char *p, size_t sz, size_t nm, void *arg)
{
	struct stats_body *b = arg;
	size_t n = sz * nm;
	char *np;

	if (n > STATS_BODY_MAX - b->len)
		return 0;
	np = realloc(b->p, b->len + n + 1);
	if (!np)
		return 0;
	b->p = np;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

/* GET url (with /metrics appended when it has no path). 0 or -errno. */
static int stats_fetch(const char *node, struct stats_body *b)
{
	const char *path = strstr(node, "://");
	char url[512];
	long status = 0;
	CURLcode rc;
	CURL *c;

	path = strchr(path ? path + 3 : node, '/');
	snprintf(url, sizeof(url), "%s%.400s%s",
		 strstr(node, "://") ? "" : "http://", node,
		 path ? "" : "/metrics");
	c = curl_easy_init();
	if (!c)
		return -ENOMEM;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, stats_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (rc) {
		fprintf(stderr, "pagemesh stats: %s: %s\n", url,
			curl_easy_strerror(rc));
		return -EIO;
	}
	if (status != 200) {
		fprintf(stderr, "pagemesh stats: %s: HTTP status %ld\n", url,
			status);
		return -EIO;
	}
	return 0;
}

struct stats_row {
	char key[192];
	char val[STATS_MAX_NODES][32];
};

/* The peer_* families of one node, one row per peer: they become its
 * own table (node, up, transport, endpoint, then the counters). */
#define STATS_PEER_COLS 8

struct stats_peer {
	int id;
	char transport[CFG_NAME_MAX];
	char endpoint[256];
	char val[STATS_PEER_COLS][32];
};

struct stats_peers {
	int n;
	struct stats_peer p[METRICS_MAX_PEERS];
};

struct stats_table {
	struct stats_row *rows;
	int n, cap;
	char head[STATS_MAX_NODES][64];
	struct stats_peers *peers;	/* [STATS_MAX_NODES] */
	char pcol[STATS_PEER_COLS][64];	/* the counters' columns */
	int npcol;
};

static struct stats_row *stats_row(struct stats_table *t, const char *key)
{
	struct stats_row *nr;
	int i;

	for (i = 0; i < t->n; i++)
		if (!strcmp(t->rows[i].key, key))
			return &t->rows[i];
	if (t->n == t->cap) {
		int cap = t->cap ? t->cap * 2 : 64;

		nr = realloc(t->rows, cap * sizeof(*nr));
		if (!nr)
			return NULL;
		t->rows = nr;
		t->cap = cap;
	}
	nr = &t->rows[t->n++];
	memset(nr, 0, sizeof(*nr));
	snprintf(nr->key, sizeof(nr->key), "%s", key);
	return nr;
}

/* A sample's value as the table shows it: bytes humanised ("1.5 GiB",
 * exact below 1 KiB), everything else as sent. */
static void stats_value(const char *name, const char *val, char *out,
			size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB",
					     "PiB" };
	char *end;
	double v;
	int u = -1;

	v = strtod(val, &end);
	if (!strstr(name, "bytes") || *end || end == val || v < 1024) {
		snprintf(out, len, "%s", val);
		return;
	}
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v,
		 units[u]);
}

/* Label key's value in "name{a=\"x\",b=\"y\"}" into out: 0, or -ENOENT. */
static int stats_label(const char *name, const char *key, char *out,
		       size_t len)
{
	char want[40];
	const char *p = strchr(name, '{');
	size_t o = 0;

	snprintf(want, sizeof(want), "%s=\"", key);
	while (p && (p = strstr(p, want)) && p[-1] != '{' && p[-1] != ',')
		p++;
	if (!p)
		return -ENOENT;
	for (p += strlen(want); *p && *p != '"' && o + 1 < len; p++) {
		if (*p == '\\' && p[1])
			p++;
		out[o++] = *p;
	}
	out[o] = '\0';
	return 0;
}

/* A peer_* sample ("peer_sent_bytes_total{peer=\"1\",...}", the
 * prefix gone) into column col's peer table. */
static void stats_peer_line(struct stats_table *t, int col,
			    const char *name, const char *val)
{
	struct stats_peers *ps = &t->peers[col];
	struct stats_peer *pp = NULL;
	char id[16], fam[64], *end;
	size_t fl = strcspn(name, "{");
	long v;
	int c;

	if (stats_label(name, "peer", id, sizeof(id)))
		return;
	v = strtol(id, &end, 10);
	if (*end || end == id || v < 0 || v >= CFG_MAX_NODES)
		return;
	for (int i = 0; i < ps->n && !pp; i++)
		if (ps->p[i].id == v)
			pp = &ps->p[i];
	if (!pp) {
		if (ps->n == METRICS_MAX_PEERS)
			return;
		pp = &ps->p[ps->n++];
		memset(pp, 0, sizeof(*pp));
		pp->id = (int)v;
	}
	if (!pp->transport[0])
		stats_label(name, "transport", pp->transport,
			    sizeof(pp->transport));
	if (!pp->endpoint[0])
		stats_label(name, "endpoint", pp->endpoint,
			    sizeof(pp->endpoint));
	/* The column: "up", "sent", "received", ... */
	snprintf(fam, sizeof(fam), "%.*s", (int)(fl > 5 ? fl - 5 : 0),
		 name + 5);
	if (!strcmp(fam, "info"))
		return;
	fl = strlen(fam);
	if (fl > 6 && !strcmp(fam + fl - 6, "_total"))
		fam[fl -= 6] = '\0';
	if (fl > 6 && !strcmp(fam + fl - 6, "_bytes"))
		fam[fl -= 6] = '\0';
	for (c = 0; c < t->npcol && strcmp(t->pcol[c], fam); c++)
		;
	if (c == t->npcol) {
		if (c == STATS_PEER_COLS)
			return;
		snprintf(t->pcol[t->npcol++], sizeof(t->pcol[0]), "%s", fam);
	}
	if (!strcmp(fam, "up")) {
		snprintf(pp->val[c], sizeof(pp->val[c]), "%s",
			 strcmp(val, "0") ? "yes" : "no");
		return;
	}
	stats_value(name, val, pp->val[c], sizeof(pp->val[c]));
	/* The header says "sent", not "sent_bytes": a unit on each. */
	if (strstr(name, "_bytes") && !strchr(pp->val[c], ' ') &&
	    strlen(pp->val[c]) + 3 <= sizeof(pp->val[c]))
		strcat(pp->val[c], " B");
}

/* One sample line "name{labels} value" into column col. */
static int stats_line(struct stats_table *t, int col, char *line)
{
	char *val, *name = line;
	struct stats_row *r;
	const char *lab;

	val = strrchr(line, ' ');
	if (!val || val == line)
		return -EINVAL;
	*val++ = '\0';
	if (!strncmp(name, "pagemesh_", 9))
		name += 9;
	/* Buckets belong in a plot; the table shows count, sum, p50/p99. */
	if (strstr(name, "_bucket{"))
		return 0;
	if (!strncmp(name, "info{", 5)) {
		lab = strstr(name, "node=\"");
		if (lab)
			snprintf(t->head[col], sizeof(t->head[col]),
				 "node %.*s", (int)strcspn(lab + 6, "\""),
				 lab + 6);
		return 0;
	}
	if (!strncmp(name, "peer_", 5) && strchr(name, '{')) {
		stats_peer_line(t, col, name, val);
		return 0;
	}
	r = stats_row(t, name);
	if (!r)
		return -ENOMEM;
	stats_value(name, val, r->val[col], sizeof(r->val[col]));
	return 0;
}

/*
 * Column col's peers as a table: a header, then one row per peer; text
 * left-aligned, counters right-aligned, two spaces between columns, each
 * as wide as its widest cell.
 */
static void stats_print_peers(const struct stats_table *t, int col,
			      const char *url)
{
	const struct stats_peers *ps = &t->peers[col];
	int nc, w[4 + STATS_PEER_COLS];
	const char *head[4 + STATS_PEER_COLS] = { "node", "up", "transport",
						  "endpoint" };
	char id[16];
	int up = -1;

	if (!ps->n)
		return;
	/* "up" is a counter family too; it goes second, with the labels. */
	for (int c = 0; c < t->npcol; c++)
		if (!strcmp(t->pcol[c], "up"))
			up = c;
	for (int c = 0, k = 4; c < t->npcol; c++)
		if (c != up)
			head[k++] = t->pcol[c];
	nc = 4 + t->npcol - (up >= 0);	/* without "up": a column of "-" */
	for (int c = 0; c < nc; c++)
		w[c] = (int)strlen(head[c]);
	for (int i = 0; i < ps->n; i++) {
		const struct stats_peer *pp = &ps->p[i];
		int l;

		l = snprintf(id, sizeof(id), "%d", pp->id);
		if (l > w[0])
			w[0] = l;
		if (up >= 0 && (l = (int)strlen(pp->val[up])) > w[1])
			w[1] = l;
		if ((l = (int)strlen(pp->transport)) > w[2])
			w[2] = l;
		if ((l = (int)strlen(pp->endpoint)) > w[3])
			w[3] = l;
		for (int c = 0, k = 4; c < t->npcol; c++) {
			if (c == up)
				continue;
			if ((l = (int)strlen(pp->val[c])) > w[k])
				w[k] = l;
			k++;
		}
	}
	if (strncmp(t->head[col], "node ", 5))
		printf("\npeers of %s:\n", url);
	else
		printf("\npeers of %s (%s):\n", t->head[col], url);
	for (int c = 0; c < nc; c++)
		printf(c < 4 ? "%s%-*s" : "%s%*s", c ? "  " : "",
		       c == nc - 1 && c < 4 ? 0 : w[c], head[c]);
	printf("\n");
	for (int i = 0; i < ps->n; i++) {
		const struct stats_peer *pp = &ps->p[i];
		const char *cell[4 + STATS_PEER_COLS];

		snprintf(id, sizeof(id), "%d", pp->id);
		cell[0] = id;
		cell[1] = up >= 0 && pp->val[up][0] ? pp->val[up] : "-";
		cell[2] = pp->transport[0] ? pp->transport : "-";
		cell[3] = pp->endpoint[0] ? pp->endpoint : "-";
		for (int c = 0, k = 4; c < t->npcol; c++)
			if (c != up)
				cell[k++] = pp->val[c][0] ? pp->val[c] : "-";
		for (int c = 0; c < nc; c++)
			printf(c < 4 ? "%s%-*s" : "%s%*s", c ? "  " : "",
			       c == nc - 1 && c < 4 ? 0 : w[c], cell[c]);
		printf("\n");
	}
}

/* ---- windowed latency ---------------------------------------------------- */

#define STATS_MAX_BUCKETS 128

/* The fault histogram of one scrape: bucket bounds (s) and counts. */
struct stats_hist {
	int n;
	double le[STATS_MAX_BUCKETS];		/* +Inf: INFINITY */
	double cum[STATS_MAX_BUCKETS];
};

static void stats_hist_read(const char *body, struct stats_hist *h)
{
	static const char key[] = "pagemesh_fault_duration_seconds_bucket{le=\"";
	const char *p = body;

	h->n = 0;
	while (p && (p = strstr(p, key)) && h->n < STATS_MAX_BUCKETS) {
		char *end;
		double le, c;

		p += sizeof(key) - 1;
		le = !strncmp(p, "+Inf", 4) ? INFINITY : strtod(p, &end);
		p = strchr(p, ' ');
		if (!p)
			break;
		c = strtod(p + 1, &end);
		h->le[h->n] = le;
		h->cum[h->n++] = c;
	}
}

/*
 * Quantile q of what happened between scrapes a and b, as Prometheus'
 * histogram_quantile() estimates it (linear within the bucket). NAN when
 * nothing happened or the two disagree on the buckets.
 */
static double stats_quantile(const struct stats_hist *a,
			     const struct stats_hist *b, double q)
{
	double total, rank, prev = 0, lo = 0;

	if (!b->n || a->n != b->n)
		return NAN;
	total = b->cum[b->n - 1] - a->cum[a->n - 1];
	if (total <= 0)
		return NAN;
	rank = q * total;
	for (int i = 0; i < b->n; i++) {
		double c = b->cum[i] - a->cum[i];

		if (a->le[i] != b->le[i])
			return NAN;
		if (c >= rank) {
			if (isinf(b->le[i]))
				return lo;	/* past the last bound */
			return lo + (b->le[i] - lo) * (c > prev ?
				(rank - prev) / (c - prev) : 1);
		}
		prev = c;
		lo = b->le[i];
	}
	return lo;
}

/* "41.3us", "2.10ms", "-" */
static void stats_duration(double s, char *buf, size_t len)
{
	if (isnan(s))
		snprintf(buf, len, "-");
	else if (s < 1e-3)
		snprintf(buf, len, "%.1fus", s * 1e6);
	else if (s < 1)
		snprintf(buf, len, "%.2fms", s * 1e3);
	else
		snprintf(buf, len, "%.2fs", s);
}

static void stats_usage(FILE *f)
{
	fprintf(f,
"usage: pagemesh stats -c FILE | --node URL [--node URL ...]\n"
"\n"
"Fetches /metrics from each node and prints the counters as a table, one\n"
"column per node, with the fault latency (p50, p99) of the faults that\n"
"happened between two fetches INTERVAL seconds apart; then each node's\n"
"peers as a table of their own: node, up, transport, endpoint, and the\n"
"bytes sent to and received from each.\n"
"\n"
"  -c, --config FILE   a node config: its metrics.listen is the node\n"
"  -n, --node URL      http://HOST:PORT (or HOST:PORT, or the full\n"
"                      /metrics URL); repeat for more nodes (up to %d)\n"
"  -i, --interval S    seconds between the two fetches, 1 to 3600\n"
"                      (default %d; 0: fetch once, no latency rows)\n"
"  -h, --help          this text\n",
		STATS_MAX_NODES, STATS_INTERVAL);
}

int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "node", required_argument, NULL, 'n' },
		{ "interval", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char nodes[STATS_MAX_NODES][300], err[PATH_MAX + 256];
	struct stats_table t = { 0 };
	int n = 0, opt, i, col, ret = PM_EXIT_OK, interval = STATS_INTERVAL;
	struct stats_hist *h0 = NULL;
	bool fetched[STATS_MAX_NODES] = { false };
	int cw[STATS_MAX_NODES];
	char *end;
	size_t w = 6;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:n:i:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			interval = (int)strtol(optarg, &end, 10);
			if (!*optarg || *end || interval < 0 ||
			    interval > 3600) {
				fprintf(stderr, "pagemesh stats: --interval %s: not 0 to 3600 seconds\n",
					optarg);
				return PM_EXIT_USAGE;
			}
			break;
		case 'c': {
			struct cfg *c = calloc(1, sizeof(*c));
			char host[256], *colon;

			if (!c)
				return PM_EXIT_RUNTIME;
			if (cfg_load(optarg, c, err, sizeof(err))) {
				fprintf(stderr, "pagemesh stats: %s\n", err);
				cfg_free(c);
				free(c);
				return PM_EXIT_CONFIG;
			}
			if (!c->metrics_listen[0]) {
				fprintf(stderr, "pagemesh stats: %s: no metrics.listen: this node serves no metrics\n",
					optarg);
				cfg_free(c);
				free(c);
				return PM_EXIT_CONFIG;
			}
			/* A wildcard listen address is reached on loopback. */
			snprintf(host, sizeof(host), "%s", c->metrics_listen);
			colon = strrchr(host, ':');
			if (n < STATS_MAX_NODES && colon) {
				*colon = '\0';
				snprintf(nodes[n++], sizeof(nodes[0]),
					 "http://%s:%s/metrics",
					 !*host || !strcmp(host, "0.0.0.0") ||
					 !strcmp(host, "*") ? "127.0.0.1" :
					 !strcmp(host, "[::]") ? "[::1]" : host,
					 colon + 1);
			}
			cfg_free(c);
			free(c);
			break;
		}
		case 'n':
			if (n < STATS_MAX_NODES)
				snprintf(nodes[n++], sizeof(nodes[0]), "%s",
					 optarg);
			break;
		case 'h':
			stats_usage(stdout);
			return PM_EXIT_OK;
		default:
			stats_usage(stderr);
			return PM_EXIT_USAGE;
		}
	}
	if (!n || optind < argc) {
		stats_usage(stderr);
		return PM_EXIT_USAGE;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return PM_EXIT_RUNTIME;
	/* First fetch: where each node's histogram stands. */
	h0 = calloc(n, sizeof(*h0));
	t.peers = calloc(n, sizeof(*t.peers));
	if (!h0 || !t.peers) {
		free(h0);
		free(t.peers);
		return PM_EXIT_RUNTIME;
	}
	for (col = 0; interval && col < n; col++) {
		struct stats_body b = { 0 };

		if (!stats_fetch(nodes[col], &b)) {
			stats_hist_read(b.p, &h0[col]);
			fetched[col] = true;
		} else {
			ret = PM_EXIT_RUNTIME;
		}
		free(b.p);
	}
	/* The window the latency rows cover; nothing to wait for without
	 * a node that answered. */
	for (col = 0; interval && col < n && !fetched[col]; col++)
		;
	if (interval && col < n)
		sleep(interval);
	for (col = 0; col < n; col++) {
		struct stats_body b = { 0 };
		char *line, *save = NULL;

		snprintf(t.head[col], sizeof(t.head[col]), "%.63s", nodes[col]);
		if ((interval && !fetched[col]) || stats_fetch(nodes[col], &b)) {
			ret = PM_EXIT_RUNTIME;
			free(b.p);
			continue;
		}
		if (interval) {
			struct stats_hist h1;
			char key[64];
			struct stats_row *r;
			const double qs[2] = { 0.5, 0.99 };

			stats_hist_read(b.p, &h1);
			for (int k = 0; k < 2; k++) {
				snprintf(key, sizeof(key),
					 "fault p%d (last %d s)",
					 (int)(qs[k] * 100), interval);
				r = stats_row(&t, key);
				if (r)
					stats_duration(stats_quantile(&h0[col],
								      &h1,
								      qs[k]),
						       r->val[col],
						       sizeof(r->val[col]));
			}
			snprintf(key, sizeof(key), "faults (last %d s)",
				 interval);
			r = stats_row(&t, key);
			if (r && h1.n && h0[col].n == h1.n)
				snprintf(r->val[col], sizeof(r->val[col]),
					 "%.0f", h1.cum[h1.n - 1] -
					 h0[col].cum[h1.n - 1]);
		}
		for (line = strtok_r(b.p, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			if (line[0] == '#' || !line[0])
				continue;
			if (stats_line(&t, col, line) == -ENOMEM) {
				ret = PM_EXIT_RUNTIME;
				break;
			}
		}
		free(b.p);
	}
	curl_global_cleanup();
	for (i = 0; i < t.n; i++)
		if (strlen(t.rows[i].key) > w)
			w = strlen(t.rows[i].key);
	/* Each node's column as wide as its widest cell, 18 at least. */
	for (col = 0; col < n; col++) {
		cw[col] = 18;
		if ((int)strlen(t.head[col]) > cw[col])
			cw[col] = (int)strlen(t.head[col]);
		for (i = 0; i < t.n; i++)
			if ((int)strlen(t.rows[i].val[col]) > cw[col])
				cw[col] = (int)strlen(t.rows[i].val[col]);
	}
	if (t.n) {
		printf("%-*s", (int)w, "metric");
		for (col = 0; col < n; col++)
			printf("  %*s", cw[col], t.head[col]);
		printf("\n");
		for (i = 0; i < t.n; i++) {
			printf("%-*s", (int)w, t.rows[i].key);
			for (col = 0; col < n; col++)
				printf("  %*s", cw[col],
				       t.rows[i].val[col][0] ?
				       t.rows[i].val[col] : "-");
			printf("\n");
		}
	}
	for (col = 0; col < n; col++)
		stats_print_peers(&t, col, nodes[col]);
	free(t.peers);
	free(t.rows);
	free(h0);
	return ret;
}
