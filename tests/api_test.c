// SPDX-License-Identifier: MIT
/*
 * The library as a program embeds it: three nodes started in one process
 * through pm_node_start_opts, each logging through its own callback, doing
 * real work, then scraped over /metrics. Checks that each node's lines
 * reach its own callback and nothing else (no stderr, no process-wide
 * logger changed), and that every message type and every byte a node
 * sends is counted: handshakes, barriers, and the replies a home sends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <pthread.h>

#include <pagemesh/pagemesh.h>

#include "cluster.h"

#define NODES 3
#define PAGES_READ 64	/* node 2 reads this many pages homed on node 1 */

struct node_log {
	pthread_mutex_t lock;
	char text[1 << 16];
	size_t len;
	int lines;
};

struct node_run {
	int id;
	char cfg[512];
	struct node_log log;
	struct pm_node *n;
	char err[1024];
	int errcode;
	pthread_barrier_t *scraped;	/* main has read the metrics */
	pthread_barrier_t *worked;	/* every node did its part */
	int rc;
};

static void on_log(void *arg, int level, const char *msg)
{
	struct node_log *l = arg;
	int k;

	(void)level;
	pthread_mutex_lock(&l->lock);
	k = snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s\n", msg);
	if (k > 0 && l->len + (size_t)k < sizeof(l->text))
		l->len += (size_t)k;
	l->lines++;
	pthread_mutex_unlock(&l->lock);
}

static void *node_main(void *arg)
{
	struct node_run *r = arg;
	struct pm_node_options o = PM_NODE_OPTIONS_INIT;
	volatile uint8_t *mem;
	uint64_t per_home;
	size_t len;

	o.log_level = 2;	/* info */
	o.log = on_log;
	o.log_arg = &r->log;
	r->n = pm_node_start_opts(r->cfg, &o, r->err, sizeof(r->err),
				  &r->errcode);
	if (!r->n) {
		r->rc = -1;
		pthread_barrier_wait(r->worked);
		pthread_barrier_wait(r->scraped);
		return NULL;
	}
	mem = pm_node_region(r->n, &len);
	per_home = (len / 4096 + NODES - 1) / NODES;	/* as the core splits */
	/* A home serving written pages sends replies, and little else, to
	 * node 2 (a page never written travels as a flag, not a payload). */
	if (r->id == 1)
		for (uint64_t p = 0; p < PAGES_READ; p++)
			mem[(per_home + p) * 4096] = (uint8_t)(1 + p);
	r->rc = pm_node_barrier(r->n, 30000);
	if (r->id == 2)
		for (uint64_t p = 0; p < PAGES_READ && !r->rc; p++)
			if (mem[(per_home + p) * 4096] != (uint8_t)(1 + p))
				r->rc = -1;
	if (!r->rc)
		r->rc = pm_node_barrier(r->n, 30000);
	pthread_barrier_wait(r->worked);
	pthread_barrier_wait(r->scraped);
	pm_node_stop(r->n);
	return NULL;
}

static size_t body(char *p, size_t sz, size_t nm, void *arg)
{
	char **out = arg;
	size_t old = *out ? strlen(*out) : 0, n = sz * nm;
	char *np = realloc(*out, old + n + 1);

	if (!np)
		return 0;
	memcpy(np + old, p, n);
	np[old + n] = '\0';
	*out = np;
	return n;
}

static char *scrape(int port)
{
	char url[64], *out = NULL;
	CURL *c = curl_easy_init();

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
	if (curl_easy_perform(c)) {
		free(out);
		out = NULL;
	}
	curl_easy_cleanup(c);
	return out;
}

/* The value of the sample whose line starts with `sample`, or -1. */
static double sample(const char *text, const char *sample)
{
	size_t n = strlen(sample);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1
									: p)
		if (!strncmp(p, sample, n) && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}

static void test_embedded_nodes(void **state)
{
	static struct node_run run[NODES];
	pthread_barrier_t scraped, worked;
	int mport[NODES], saved_err, errfd;
	char errpath[600], *m1, *m2;
	pthread_t th[NODES];
	struct cluster c;
	struct stat sb;
	FILE *f;

	(void)state;
	assert_int_equal(cl_init(&c, NODES), 0);
	assert_int_equal(cl_write_configs(&c, "16M"), 0);
	pthread_barrier_init(&scraped, NULL, NODES + 1);
	pthread_barrier_init(&worked, NULL, NODES + 1);
	/* Whatever the library writes to stderr lands here: nothing may. */
	snprintf(errpath, sizeof(errpath), "%s/stderr", c.dir);
	errfd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(errfd >= 0);
	fflush(stderr);
	saved_err = dup(2);
	dup2(errfd, 2);
	for (int i = 0; i < NODES; i++) {
		memset(&run[i], 0, sizeof(run[i]));
		pthread_mutex_init(&run[i].log.lock, NULL);
		run[i].id = i;
		run[i].scraped = &scraped;
		run[i].worked = &worked;
		cl_path(&c, i, "cfg", run[i].cfg, sizeof(run[i].cfg));
		mport[i] = tu_free_port();
		f = fopen(run[i].cfg, "a");
		assert_non_null(f);
		fprintf(f, "metrics = { listen = \"127.0.0.1:%d\"; };\n",
			mport[i]);
		fclose(f);
		assert_int_equal(pthread_create(&th[i], NULL, node_main,
						&run[i]), 0);
	}
	pthread_barrier_wait(&worked);
	m1 = scrape(mport[1]);
	m2 = scrape(mport[2]);
	pthread_barrier_wait(&scraped);
	for (int i = 0; i < NODES; i++)
		pthread_join(th[i], NULL);
	fflush(stderr);
	dup2(saved_err, 2);
	close(saved_err);
	close(errfd);

	for (int i = 0; i < NODES; i++) {
		char mine[64];

		if (run[i].rc)
			fail_msg("node %d: %s", i,
				 run[i].n ? "barrier failed" : run[i].err);
		/* Its own lines, none of another node's. */
		snprintf(mine, sizeof(mine), "node %d of %d up", i, NODES);
		printf("  node %d: %d log lines through its callback\n", i,
		       run[i].log.lines);
		assert_non_null(strstr(run[i].log.text, mine));
		for (int j = 0; j < NODES; j++) {
			char other[64];

			snprintf(other, sizeof(other), "node %d of %d up", j,
				 NODES);
			if (j != i)
				assert_null(strstr(run[i].log.text, other));
		}
	}
	assert_int_equal(stat(errpath, &sb), 0);
	if (sb.st_size) {
		cl_sh("cat %s", errpath);
		fail_msg("%lld bytes went to stderr", (long long)sb.st_size);
	}
	assert_non_null(m1);
	assert_non_null(m2);
	/* Handshakes and barriers are counted like every other call. */
	for (int i = 0; i < 2; i++) {
		const char *m = i ? m2 : m1;
		double hello = sample(m, "pagemesh_coherence_sent_messages_total{type=\"hello\"}");
		double auth = sample(m, "pagemesh_coherence_sent_messages_total{type=\"auth\"}");
		double bar = sample(m, "pagemesh_coherence_sent_messages_total{type=\"barrier\"}");

		printf("  node %d sent: hello %.0f auth %.0f barrier %.0f\n",
		       i + 1, hello, auth, bar);
		assert_true(hello >= 2 && auth >= 2 && bar >= 1);
	}
	/* Node 1 answered node 2's page reads: its bytes to node 2 are the
	 * replies, pages and all. */
	double to2 = sample(m1, "pagemesh_peer_sent_bytes_total{peer=\"2\",transport=\"tcp\"}");

	printf("  node 1 sent %.0f bytes to node 2 for %d pages read\n", to2,
	       PAGES_READ);
	assert_true(to2 >= PAGES_READ * 4096.0);
	free(m1);
	free(m2);
	cl_cleanup(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_embedded_nodes),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
