/* SPDX-License-Identifier: MIT */
/*
 * Test helper: a real etcd cluster (1 to 3 members) on free loopback ports,
 * data in a temp dir, started and stopped by the test. Needs coord_util.h
 * (tu_*) included first.
 */
#ifndef PM_TEST_ETCD_H
#define PM_TEST_ETCD_H

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_MEMBERS 3

struct member {
	pid_t pid;
	int client_port, peer_port;
	char url[64];
};

static struct {
	char etcd[256];
	char dir[64];		/* all data dirs and logs live below */
	int n;
	struct member m[MAX_MEMBERS];
} ec;

static int find_etcd(void)
{
	const char *cands[] = { "/usr/bin/etcd", "/usr/local/bin/etcd",
				"/usr/sbin/etcd" };
	size_t i;

	for (i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
		if (!access(cands[i], X_OK)) {
			snprintf(ec.etcd, sizeof(ec.etcd), "%s", cands[i]);
			return 0;
		}
	return -1;
}

static void stop_etcd(void)
{
	int i;

	for (i = 0; i < ec.n; i++)
		if (ec.m[i].pid > 0) {
			tu_stop(ec.m[i].pid, SIGTERM, 5000);
			ec.m[i].pid = 0;
		}
	ec.n = 0;
}

static bool healthy(const char *url)
{
	char u[128];
	struct tu_resp *r = malloc(sizeof(*r));
	bool ok;

	if (!r)
		return false;
	snprintf(u, sizeof(u), "%s/health", url);
	ok = !tu_http("GET", u, NULL, 0, 0, r) && r->status == 200 &&
	     strstr(r->body, "\"true\"");
	free(r);
	return ok;
}

/* Start an n-member cluster on free loopback ports; wait until every
 * member reports healthy (bounded). 0 or -1. */
static int start_etcd(int n)
{
	char initial[1024] = "", name[16], data[128], log[128];
	char peer[64], token[64];
	long long deadline;
	int i, k, ok;

	snprintf(token, sizeof(token), "pm-test-%d", (int)getpid());
	ec.n = n;
	for (i = 0; i < n; i++) {
		ec.m[i].client_port = tu_free_port();
		ec.m[i].peer_port = tu_free_port();
		snprintf(ec.m[i].url, sizeof(ec.m[i].url),
			 "http://127.0.0.1:%d", ec.m[i].client_port);
		snprintf(initial + strlen(initial),
			 sizeof(initial) - strlen(initial),
			 "%sm%d=http://127.0.0.1:%d", i ? "," : "", i,
			 ec.m[i].peer_port);
	}
	for (i = 0; i < n; i++) {
		char *argv[] = {
			ec.etcd, "--name", name, "--data-dir", data,
			"--listen-client-urls", ec.m[i].url,
			"--advertise-client-urls", ec.m[i].url,
			"--listen-peer-urls", peer,
			"--initial-advertise-peer-urls", peer,
			"--initial-cluster", initial,
			"--initial-cluster-token", token,
			"--initial-cluster-state", "new",
			"--logger", "zap", "--log-level", "error", NULL
		};

		snprintf(name, sizeof(name), "m%d", i);
		snprintf(data, sizeof(data), "%s/m%d.etcd", ec.dir, i);
		snprintf(log, sizeof(log), "%s/m%d.log", ec.dir, i);
		snprintf(peer, sizeof(peer), "http://127.0.0.1:%d",
			 ec.m[i].peer_port);
		ec.m[i].pid = tu_spawn(argv, NULL, log);
		if (ec.m[i].pid < 0)
			return -1;
	}
	/* Polling /health is the only readiness signal etcd gives. */
	deadline = tu_now_ms() + 30000;
	do {
		for (ok = 0, k = 0; k < n; k++)
			ok += healthy(ec.m[k].url);
		if (ok == n)
			return 0;
		for (k = 0; k < n; k++)
			if (waitpid(ec.m[k].pid, NULL, WNOHANG) ==
			    ec.m[k].pid) {
				fprintf(stderr, "etcd m%d exited (see %s/m%d.log)\n",
					k, ec.dir, k);
				ec.m[k].pid = 0;
				return -1;
			}
		poll(NULL, 0, 100);
	} while (tu_now_ms() < deadline);
	fprintf(stderr, "etcd not healthy within 30 s (logs in %s)\n", ec.dir);
	return -1;
}

/* Ports were free when picked but may be taken by then: try again. */
static int start_etcd_retry(int n)
{
	int tries;

	for (tries = 0; tries < 3; tries++) {
		char cmd[128];

		if (!start_etcd(n))
			return 0;
		stop_etcd();
		snprintf(cmd, sizeof(cmd), "rm -rf %s/*.etcd", ec.dir);
		if (system(cmd))
			return -1;
	}
	return -1;
}

#endif
