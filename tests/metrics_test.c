// SPDX-License-Identifier: MIT
/* The metrics endpoint: a fake fill() whose counters move, scraped over
 * real HTTP and parsed back (every sample typed, values as filled, counters
 * only growing, a well-formed histogram), and `pagemesh stats` reading it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <pthread.h>

#include "coord_util.h"
#include "log.h"
#include "metrics.h"

/* The test's own bucket bounds: the pager's pm_hist_bound_ns is not part
 * of this program. Any increasing sequence will do. */
static uint64_t test_bound_ns(int i)
{
	if (i >= PM_HIST_BUCKETS - 1)
		return UINT64_MAX;
	return (256ull << (i / 4)) * (4 + i % 4) / 4;
}

/* What fill() handed out last, for comparing with what HTTP says. */
static struct {
	pthread_mutex_t lock;
	int calls;
	bool fail;
	struct pm_stats st;
	struct metrics_extra x;
} fake = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int fake_fill(void *arg, struct pm_stats *st, struct metrics_extra *x)
{
	int k, i;

	(void)arg;
	pthread_mutex_lock(&fake.lock);
	if (fake.fail) {
		pthread_mutex_unlock(&fake.lock);
		return -EIO;
	}
	k = ++fake.calls;
	st->faults_zero = 3 * k;
	st->faults_local = 5 * k;
	st->faults_remote = 7 * k + 1;
	st->faults_wp = k;
	st->faults_total = 16 * k + 1;
	st->pages_sent = 11 * k;
	st->bytes_sent = 4096ull * 11 * k + 100;
	st->bytes_received = 4096ull * 9 * k;
	st->resident_pages = 10 + k;
	st->fault_p50_ns = 50000;
	st->fault_p99_ns = 90000 + k;
	for (i = 0; i < PM_HIST_BUCKETS; i++)
		st->fault_hist[i] = (i % 7 == 0) ? (uint64_t)(k * (i + 1)) : 0;
	st->fault_hist[PM_HIST_BUCKETS - 1] = k;
	x->node_id = 2;
	snprintf(x->cluster, sizeof(x->cluster), "test\"q");
	x->region_bytes = 64ull << 20;
	x->fault_sum_ns = 1000000ull * k;
	x->n_transports = 2;
	snprintf(x->transports[0].name, sizeof(x->transports[0].name), "tcp");
	x->transports[0].bytes_sent = 1000ull * k;
	x->transports[0].bytes_received = 900ull * k;
	x->transports[0].messages_sent = 10ull * k;
	snprintf(x->transports[1].name, sizeof(x->transports[1].name),
		 "io_uring-tcp");
	x->transports[1].bytes_sent = 7;
	x->n_peers = 2;
	x->peers[0].node_id = 1;
	x->peers[0].up = true;
	snprintf(x->peers[0].transport, sizeof(x->peers[0].transport), "tcp");
	snprintf(x->peers[0].endpoint, sizeof(x->peers[0].endpoint),
		 "10.0.0.2:7701");
	x->peers[0].bytes_sent = 500ull * k;
	/* Not connected yet: no transport, no endpoint. */
	x->peers[1].node_id = 3;
	x->n_msgs = 2;
	snprintf(x->msgs[0].type, sizeof(x->msgs[0].type), "read");
	x->msgs[0].sent = 4ull * k;
	snprintf(x->msgs[1].type, sizeof(x->msgs[1].type), "invalidate");
	x->msgs[1].received = 2ull * k;
	x->hist_bound_ns = test_bound_ns;
	fake.st = *st;
	fake.x = *x;
	pthread_mutex_unlock(&fake.lock);
	return 0;
}

/* a == b within eps, saying both when not. */
#define assert_near(a, b, eps) near_((a), (b), (eps), #a, __LINE__)
static void near_(double a, double b, double eps, const char *what, int line)
{
	double d = a > b ? a - b : b - a;

	if (!(d <= eps))
		fail_msg("line %d: %s = %.17g, expected %.17g", line, what, a,
			 b);
}

static struct metrics *srv;
static char url[128];

/* ---- a small parser of the text format ----------------------------------- */

#define MAX_SAMPLES 512
#define MAX_FAMILIES 128

struct sample {
	char name[128];
	char labels[256];
	double v;
};

struct scrape {
	int n, nf;
	struct sample s[MAX_SAMPLES];
	struct {
		char name[128];
		char type[16];
	} fam[MAX_FAMILIES];
};

static const char *type_of(const struct scrape *sc, const char *name)
{
	int i;

	for (i = 0; i < sc->nf; i++)
		if (!strcmp(sc->fam[i].name, name))
			return sc->fam[i].type;
	return NULL;
}

/* The family a sample belongs to: itself, or a histogram's base name. */
static const char *family_type(const struct scrape *sc, const char *name)
{
	static const char *const sfx[] = { "_bucket", "_sum", "_count" };
	const char *t = type_of(sc, name);
	char base[128];
	size_t i, l = strlen(name);

	if (t)
		return t;
	for (i = 0; i < 3; i++) {
		size_t sl = strlen(sfx[i]);

		if (l > sl && !strcmp(name + l - sl, sfx[i])) {
			snprintf(base, sizeof(base), "%.*s", (int)(l - sl),
				 name);
			t = type_of(sc, base);
			if (t && !strcmp(t, "histogram"))
				return t;
		}
	}
	return NULL;
}

static void parse(char *text, struct scrape *sc)
{
	char *line, *save = NULL;

	memset(sc, 0, sizeof(*sc));
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct sample *s;
		char *sp, *end;

		if (!strncmp(line, "# TYPE ", 7)) {
			assert_true(sc->nf < MAX_FAMILIES);
			if (sscanf(line + 7, "%127s %15s", sc->fam[sc->nf].name,
				   sc->fam[sc->nf].type) != 2)
				fail_msg("bad TYPE line: %s", line);
			if (type_of(sc, sc->fam[sc->nf].name))
				fail_msg("TYPE twice: %s", line);
			sc->nf++;
			continue;
		}
		if (line[0] == '#')
			continue;
		assert_true(sc->n < MAX_SAMPLES);
		s = &sc->s[sc->n++];
		sp = strrchr(line, ' ');
		if (!sp)
			fail_msg("sample without value: %s", line);
		*sp = '\0';
		s->v = strtod(sp + 1, &end);
		if (end == sp + 1 || *end)
			fail_msg("bad value in: %s %s", line, sp + 1);
		sp = strchr(line, '{');
		if (sp) {
			snprintf(s->labels, sizeof(s->labels), "%s", sp);
			*sp = '\0';
		}
		snprintf(s->name, sizeof(s->name), "%s", line);
		/* Declared before use, as the format requires. */
		if (!family_type(sc, s->name))
			fail_msg("sample %s%s has no # TYPE before it", s->name,
				 s->labels);
	}
}

static const struct sample *get(const struct scrape *sc, const char *name,
				const char *labels)
{
	int i;

	for (i = 0; i < sc->n; i++)
		if (!strcmp(sc->s[i].name, name) &&
		    !strcmp(sc->s[i].labels, labels ? labels : ""))
			return &sc->s[i];
	fail_msg("no sample %s%s", name, labels ? labels : "");
	return NULL;
}

static void scrape(struct scrape *sc, struct pm_stats *st,
		   struct metrics_extra *x)
{
	struct tu_resp *r = malloc(sizeof(*r));

	assert_non_null(r);
	assert_int_equal(tu_http("GET", url, NULL, 0, 0, r), CURLE_OK);
	assert_int_equal(r->status, 200);
	assert_non_null(strcasestr(r->headers, "Content-Type: text/plain"));
	pthread_mutex_lock(&fake.lock);
	*st = fake.st;
	*x = fake.x;
	pthread_mutex_unlock(&fake.lock);
	parse(r->body, sc);
	free(r);
}

/* ---- tests --------------------------------------------------------------- */

static int setup(void **state)
{
	char err[256];

	(void)state;
	pm_log_default.level = PM_LOG_WARN;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	srv = metrics_start("127.0.0.1:0", fake_fill, NULL, err, sizeof(err));
	if (!srv) {
		fprintf(stderr, "metrics_start: %s\n", err);
		return -1;
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics",
		 metrics_port(srv));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	metrics_stop(srv);
	tu_cleanup_files();
	curl_global_cleanup();
	return 0;
}

static void test_values_and_types(void **state)
{
	struct scrape *sc = malloc(sizeof(*sc));
	struct metrics_extra x;
	struct pm_stats st;
	char lab[64];
	int i;

	(void)state;
	assert_non_null(sc);
	scrape(sc, &st, &x);
	assert_true(sc->n > 50);
	for (i = 0; i < sc->n; i++) {
		const char *t = family_type(sc, sc->s[i].name);
		size_t l = strlen(sc->s[i].name);

		assert_int_equal(strncmp(sc->s[i].name, "pagemesh_", 9), 0);
		if (!strcmp(t, "counter") &&
		    (l < 6 || strcmp(sc->s[i].name + l - 6, "_total")))
			fail_msg("counter %s lacks _total", sc->s[i].name);
	}
	assert_near(get(sc, "pagemesh_faults_total",
				"{kind=\"remote\"}")->v,
			    (double)st.faults_remote, 0);
	assert_near(get(sc, "pagemesh_faults_serviced_total", NULL)->v,
			    (double)st.faults_total, 0);
	assert_near(get(sc, "pagemesh_sent_bytes_total", NULL)->v,
			    (double)st.bytes_sent, 0);
	assert_near(get(sc, "pagemesh_resident_bytes", NULL)->v,
			    (double)st.resident_pages * 4096, 0);
	/* Latency is the histogram alone: no all-time quantile gauges. */
	assert_null(family_type(sc, "pagemesh_fault_p50_seconds"));
	assert_null(family_type(sc, "pagemesh_fault_p99_seconds"));
	assert_near(get(sc, "pagemesh_transport_sent_bytes_total",
				"{transport=\"tcp\"}")->v,
			    (double)x.transports[0].bytes_sent, 0);
	assert_near(get(sc, "pagemesh_transport_sent_bytes_total",
				"{transport=\"io_uring-tcp\"}")->v,
			    (double)x.transports[1].bytes_sent, 0);
	assert_near(get(sc, "pagemesh_peer_sent_bytes_total",
				"{peer=\"1\",transport=\"tcp\"}")->v,
			    (double)x.peers[0].bytes_sent, 0);
	assert_near(get(sc, "pagemesh_peer_up",
				"{peer=\"1\",transport=\"tcp\"}")->v, 1, 0);
	assert_near(get(sc, "pagemesh_peer_up",
				"{peer=\"3\",transport=\"\"}")->v, 0, 0);
	assert_near(get(sc, "pagemesh_peer_info",
			"{peer=\"1\",transport=\"tcp\",endpoint=\"10.0.0.2:7701\"}")->v,
		    1, 0);
	assert_near(get(sc, "pagemesh_coherence_sent_messages_total",
				"{type=\"read\"}")->v,
			    (double)x.msgs[0].sent, 0);
	/* The quote in the cluster name arrives escaped. */
	snprintf(lab, sizeof(lab),
		 "{node=\"2\",cluster=\"test\\\"q\",version=\"%s\"}",
		 PM_VERSION);
	assert_near(get(sc, "pagemesh_info", lab)->v, 1, 0);
	free(sc);
}

static void test_histogram(void **state)
{
	struct scrape *sc = malloc(sizeof(*sc));
	const char *h = "pagemesh_fault_duration_seconds_bucket";
	double prev_le = -1, prev = 0, total = 0;
	struct metrics_extra x;
	struct pm_stats st;
	int i, nb = 0;

	(void)state;
	assert_non_null(sc);
	scrape(sc, &st, &x);
	assert_string_equal(type_of(sc, "pagemesh_fault_duration_seconds"),
			    "histogram");
	for (i = 0; i < PM_HIST_BUCKETS; i++)
		total += (double)st.fault_hist[i];
	for (i = 0; i < sc->n; i++) {
		double le;

		if (strcmp(sc->s[i].name, h))
			continue;
		assert_int_equal(strncmp(sc->s[i].labels, "{le=\"", 5), 0);
		le = strcmp(sc->s[i].labels, "{le=\"+Inf\"}") ?
			strtod(sc->s[i].labels + 5, NULL) : INFINITY;
		/* Bounds rise; counts are cumulative. */
		assert_true(le > prev_le);
		assert_true(sc->s[i].v >= prev);
		if (nb < PM_HIST_BUCKETS - 1)
			assert_near(le, test_bound_ns(nb) / 1e9,
					    1e-15);
		prev_le = le;
		prev = sc->s[i].v;
		nb++;
	}
	assert_int_equal(nb, PM_HIST_BUCKETS);
	assert_true(isinf(prev_le));
	assert_near(prev, total, 0);
	assert_near(get(sc, "pagemesh_fault_duration_seconds_count",
				NULL)->v, total, 0);
	assert_near(get(sc, "pagemesh_fault_duration_seconds_sum",
				NULL)->v, x.fault_sum_ns / 1e9, 1e-9);
	free(sc);
}

static void test_counters_move(void **state)
{
	struct scrape *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	struct metrics_extra x;
	struct pm_stats st;
	int i, moved = 0;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	scrape(a, &st, &x);
	scrape(b, &st, &x);
	assert_int_equal(a->n, b->n);
	for (i = 0; i < b->n; i++) {
		const char *t = family_type(b, b->s[i].name);
		const struct sample *old = get(a, b->s[i].name,
					       b->s[i].labels);

		if (strcmp(t, "counter") && strcmp(t, "histogram"))
			continue;
		if (b->s[i].v < old->v)
			fail_msg("counter %s%s went back: %g -> %g",
				 b->s[i].name, b->s[i].labels, old->v,
				 b->s[i].v);
		moved += b->s[i].v > old->v;
	}
	assert_true(moved > 10);
	assert_true(get(b, "pagemesh_faults_total", "{kind=\"remote\"}")->v >
		    get(a, "pagemesh_faults_total", "{kind=\"remote\"}")->v);
	free(a);
	free(b);
}

static void test_http_errors(void **state)
{
	struct tu_resp *r = malloc(sizeof(*r));
	char other[160];

	(void)state;
	assert_non_null(r);
	snprintf(other, sizeof(other), "http://127.0.0.1:%d/other",
		 metrics_port(srv));
	assert_int_equal(tu_http("GET", other, NULL, 0, 0, r), CURLE_OK);
	assert_int_equal(r->status, 404);
	assert_int_equal(tu_http("POST", url, "x", 1, 0, r), CURLE_OK);
	assert_int_equal(r->status, 405);
	assert_non_null(strcasestr(r->headers, "Allow: GET"));
	pthread_mutex_lock(&fake.lock);
	fake.fail = true;
	pthread_mutex_unlock(&fake.lock);
	pm_log_default.level = PM_LOG_ERROR;	/* the warning is expected */
	assert_int_equal(tu_http("GET", url, NULL, 0, 0, r), CURLE_OK);
	pm_log_default.level = PM_LOG_WARN;
	assert_int_equal(r->status, 500);
	pthread_mutex_lock(&fake.lock);
	fake.fail = false;
	pthread_mutex_unlock(&fake.lock);
	assert_int_equal(tu_http("GET", url, NULL, 0, 0, r), CURLE_OK);
	assert_int_equal(r->status, 200);
	free(r);
}

/* /healthz answers at once; /metrics and /readyz wait for ready, and fill
 * is not called before. */
static void test_health_ready(void **state)
{
	struct tu_resp *r = malloc(sizeof(*r));
	char err[256], u[160];
	struct metrics *m;
	int calls;

	(void)state;
	assert_non_null(r);
	m = metrics_start_ex("127.0.0.1:0", fake_fill, NULL, false, err,
			     sizeof(err));
	assert_non_null(m);
	pthread_mutex_lock(&fake.lock);
	calls = fake.calls;
	pthread_mutex_unlock(&fake.lock);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/healthz", metrics_port(m));
	assert_int_equal(tu_http("GET", u, NULL, 0, 0, r), CURLE_OK);
	assert_int_equal(r->status, 200);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/readyz", metrics_port(m));
	assert_int_equal(tu_http("GET", u, NULL, 0, 0, r), CURLE_OK);
	assert_int_equal(r->status, 503);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/metrics", metrics_port(m));
	assert_int_equal(tu_http("GET", u, NULL, 0, 0, r), CURLE_OK);
	assert_int_equal(r->status, 503);
	pthread_mutex_lock(&fake.lock);
	assert_int_equal(fake.calls, calls);
	pthread_mutex_unlock(&fake.lock);
	metrics_set_ready(m, true);
	assert_int_equal(tu_http("GET", u, NULL, 0, 0, r), CURLE_OK);
	assert_int_equal(r->status, 200);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/readyz", metrics_port(m));
	assert_int_equal(tu_http("GET", u, NULL, 0, 0, r), CURLE_OK);
	assert_int_equal(r->status, 200);
	/* Stopping: not ready any more, still healthy. */
	metrics_set_ready(m, false);
	assert_int_equal(tu_http("GET", u, NULL, 0, 0, r), CURLE_OK);
	assert_int_equal(r->status, 503);
	metrics_stop(m);
	free(r);
}

/* Listen addresses: IPv6 loopback works, nonsense is refused with why. */
static void test_listen_addresses(void **state)
{
	struct tu_resp *r = malloc(sizeof(*r));
	struct metrics *m6;
	char err[256], u[128];

	(void)state;
	assert_non_null(r);
	assert_null(metrics_start("nonsense", fake_fill, NULL, err,
				  sizeof(err)));
	assert_non_null(strstr(err, "HOST:PORT"));
	assert_null(metrics_start("127.0.0.1:99999", fake_fill, NULL, err,
				  sizeof(err)));
	assert_non_null(strstr(err, "99999"));
	/* The same port twice: the second cannot have it. */
	snprintf(u, sizeof(u), "127.0.0.1:%d", metrics_port(srv));
	assert_null(metrics_start(u, fake_fill, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, u));

	m6 = metrics_start("[::1]:0", fake_fill, NULL, err, sizeof(err));
	if (!m6) {
		free(r);
		printf("SKIP: no IPv6 loopback here (%s)\n", err);
		skip();
	}
	snprintf(u, sizeof(u), "http://[::1]:%d/metrics", metrics_port(m6));
	assert_int_equal(tu_http("GET", u, NULL, 0, 0, r), CURLE_OK);
	assert_int_equal(r->status, 200);
	assert_non_null(strstr(r->body, "# TYPE pagemesh_faults_total counter"));
	metrics_stop(m6);
	free(r);
}

/* Run `pagemesh stats ARGS...`; its stdout into out; the wait status. */
static int run_stats(char *const args[], char *out, size_t len)
{
	char bin[512], *argv[8];
	long long deadline = tu_now_ms() + 20000;
	size_t n = 0;
	int fd = -1, i, st;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/pagemesh", tu_build());
	argv[0] = bin;
	argv[1] = "stats";
	for (i = 0; args[i] && i < 5; i++)
		argv[i + 2] = args[i];
	argv[i + 2] = NULL;
	pid = tu_spawn(argv, &fd, "/dev/null");
	assert_true(pid > 0);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = deadline - tu_now_ms();
		ssize_t r;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		r = read(fd, out + n, len - 1 - n);
		if (r <= 0)
			break;
		n += r;
	}
	out[n] = '\0';
	close(fd);
	st = tu_stop(pid, 0, 10000);	/* signal 0: just wait */
	return st;
}

static void test_stats_command(void **state)
{
	char *out = malloc(65536), node[128], cfgpath[] =
		"/tmp/pm-metrics-cfg-XXXXXX";
	char *args[6] = { "-i", "1", "--node", node, NULL, NULL };
	struct pm_stats before, after;
	const char *row;
	FILE *f;
	int st, fd;
	unsigned long long v;

	(void)state;
	assert_non_null(out);
	snprintf(node, sizeof(node), "http://127.0.0.1:%d", metrics_port(srv));
	pthread_mutex_lock(&fake.lock);
	before = fake.st;
	pthread_mutex_unlock(&fake.lock);
	st = run_stats(args, out, 65536);
	pthread_mutex_lock(&fake.lock);
	after = fake.st;
	pthread_mutex_unlock(&fake.lock);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	/* The header names the node, a row carries the counter it read. */
	assert_non_null(strstr(out, "node 2"));
	row = strstr(out, "\nfaults_total{kind=\"remote\"}");
	assert_non_null(row);
	assert_int_equal(sscanf(row + strlen("\nfaults_total{kind=\"remote\"}"),
				"%llu", &v), 1);
	assert_true(v > before.faults_remote && v <= after.faults_remote);
	assert_null(strstr(out, "_bucket"));
	/* Between the two fetches the fake node had faults in buckets up
	 * to the last: p50 and p99 over that second are durations. */
	row = strstr(out, "\nfault p50 (last 1 s)");
	assert_non_null(row);
	assert_null(strstr(row, "\nfault p50 (last 1 s)  -"));
	assert_non_null(strstr(out, "\nfault p99 (last 1 s)"));
	assert_non_null(strstr(out, "\nfaults (last 1 s)"));
	/* Bytes are humanised: the fake node has sent 45 KiB and more. */
	row = strstr(out, "\nsent_bytes_total ");
	assert_non_null(row);
	assert_true(strstr(row, "iB\n") && strstr(row, "iB\n") <
		    strchr(row + 1, '\n'));
	/* The peers: a table of their own, not rows of the one above. */
	assert_null(strstr(out, "\npeer_up{"));
	row = strstr(out, "\npeers of node 2 (");
	assert_non_null(row);
	row = strchr(row + 1, '\n');
	assert_non_null(row);
	assert_int_equal(strncmp(row, "\nnode  up   transport  endpoint       ",
				 38), 0);
	row = strchr(row + 1, '\n');
	assert_int_equal(strncmp(row, "\n1     yes  tcp        10.0.0.2:7701  ",
				 38), 0);
	row = strchr(row + 1, '\n');
	assert_int_equal(strncmp(row, "\n3     no   -          -              ",
				 38), 0);

	/* -c: the node's config names the address. */
	fd = mkstemp(cfgpath);
	assert_true(fd >= 0);
	tu_track_file(cfgpath);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f, "node = { id = 0; };\n"
		"cluster = { name = \"m\"; nodes = 1; memory = \"4M\"; };\n"
		"transports = { order = [ \"tcp\" ]; };\n"
		"metrics = { listen = \"0.0.0.0:%d\"; };\n",
		metrics_port(srv));
	fclose(f);
	args[0] = "-i";
	args[1] = "0";
	args[2] = "-c";
	args[3] = cfgpath;
	st = run_stats(args, out, 65536);
	unlink(cfgpath);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_non_null(strstr(out, "\nfaults_total{kind=\"remote\"}"));
	assert_null(strstr(out, "fault p50"));	/* -i 0: one fetch */

	/* Nothing listening: runtime error; no node given: usage. */
	snprintf(node, sizeof(node), "http://127.0.0.1:%d", tu_free_port());
	args[0] = "--node";
	args[1] = node;
	args[2] = NULL;
	st = run_stats(args, out, 65536);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	args[0] = NULL;
	st = run_stats(args, out, 65536);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 2);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values_and_types),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_counters_move),
		cmocka_unit_test(test_http_errors),
		cmocka_unit_test(test_health_ready),
		cmocka_unit_test(test_stats_command),
		cmocka_unit_test(test_listen_addresses),
	};

	return cmocka_run_group_tests_name("metrics", tests, setup, teardown);
}
