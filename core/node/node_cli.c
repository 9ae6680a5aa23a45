// SPDX-License-Identifier: MIT
/* `pagemesh node`: run a node from a config file until SIGINT or SIGTERM. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "node.h"
#include "notify.h"

/* The counters at exit, one "name value" pair each (counters.h). */
static void print_stats_table(struct pm_node *n, FILE *out)
{
	struct pm_stats s;

	pm_node_stats(n, &s);
	fprintf(out, "node %d:", n->id);
	for (int c = 0; c < PM_NCOUNTERS; c++)
		fprintf(out, " %s %llu", pm_counter_defs[c].field,
			(unsigned long long)*(const uint64_t *)
			((const char *)&s + pm_counter_defs[c].off));
	fprintf(out, " fault_p50_us %.1f fault_p99_us %.1f\n",
		s.fault_p50_ns / 1e3, s.fault_p99_ns / 1e3);
}

static void node_usage(FILE *out)
{
	fprintf(out,
"usage: pagemesh node -c FILE\n"
"\n"
"Run a node of the cluster described by FILE until SIGINT or SIGTERM: it\n"
"serves the pages it is home for and contributes its memory. Start-up waits\n"
"(cluster.startup_timeout_ms, default 30000) until every node is connected.\n"
"After start-up it counts as arrived at every barrier of the programs that\n"
"use the API beside it: their pm_node_barrier() and pm_node_stop() do not\n"
"wait for it. A signal stops it at once; the pages homed on it are then\n"
"lost to the programs still running (SIGBUS).\n"
"\n"
"  -c, --config FILE   node configuration (see etc/ and README)\n"
"  -h, --help          this text\n"
"\n"
"SIGINT or SIGTERM during start-up ends the process at once (exit 0); the\n"
"other nodes see it as a node that never came.\n"
"\n"
"exit codes: 0 stopped by a signal, 1 runtime error, 2 usage,\n"
"78 configuration error\n");
}

/* Start-up runs on its own thread, so that a signal can end it: it may
 * wait for the other nodes for cluster.startup_timeout_ms. */
struct starter {
	const char *config;
	struct pm_node *n;
	char err[1024];
	int code;
	int done[2];		/* a pipe: written once start-up returns */
};

static void *start_thread(void *arg)
{
	struct starter *st = arg;

	st->n = node_start_server(st->config, st->err, sizeof(st->err),
				  &st->code);
	if (write(st->done[1], "", 1) < 0)
		abort();	/* the main thread would wait forever */
	return NULL;
}

/* Waits for start-up or a stop signal: the signal's number, or 0 once
 * start-up returned (st->n says how); -1 if waiting itself failed. */
static int wait_start(struct starter *st, int sfd)
{
	struct pollfd pf[2] = {
		{ .fd = sfd, .events = POLLIN },
		{ .fd = st->done[0], .events = POLLIN },
	};
	struct signalfd_siginfo si;

	for (;;) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (pf[0].revents & POLLIN) {
			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				return -1;
			return (int)si.ssi_signo;
		}
		if (pf[1].revents)
			return 0;
	}
}

int cmd_node(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct starter st = { .done = { -1, -1 } };
	const char *config = NULL;
	struct pm_node *n;
	pthread_t tid;
	sigset_t set;
	int c, sig, sfd;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			node_usage(stdout);
			return PM_EXIT_OK;
		default:
			node_usage(stderr);
			return PM_EXIT_USAGE;
		}
	}
	if (!config || optind != argc) {
		node_usage(stderr);
		return PM_EXIT_USAGE;
	}
	/* Block the stop signals in every thread; the main thread waits. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0 || pipe2(st.done, O_CLOEXEC)) {
		fprintf(stderr, "pagemesh node: %s\n", strerror(errno));
		return PM_EXIT_RUNTIME;
	}
	st.config = config;
	if ((errno = pthread_create(&tid, NULL, start_thread, &st))) {
		fprintf(stderr, "pagemesh node: %s\n", strerror(errno));
		return PM_EXIT_RUNTIME;
	}
	sig = wait_start(&st, sfd);
	if (sig) {
		/*
		 * Start-up cannot be cut short from outside, and it owns no
		 * state that outlives the process: leave now (the watchdog
		 * follows its parent; a coordinator's entry expires).
		 */
		pm_info("%s during start-up: exiting",
			sig > 0 ? strsignal(sig) : "error waiting for it");
		_exit(sig > 0 ? PM_EXIT_OK : PM_EXIT_RUNTIME);
	}
	pthread_join(tid, NULL);
	close(sfd);
	close(st.done[0]);
	close(st.done[1]);
	n = st.n;
	if (!n) {
		fprintf(stderr, "pagemesh node: %s\n", st.err);
		return st.code;
	}
	pm_log_use(&n->log);
	{
		char state[128];

		snprintf(state, sizeof(state),
			 "READY=1\nSTATUS=node %d of %d up", n->id, n->nodes);
		pm_notify(state);
	}
	sigwait(&set, &sig);
	pm_notify("STOPPING=1");
	pm_info("%s: stopping", strsignal(sig));
	print_stats_table(n, stdout);
	fflush(stdout);
	node_free(n);
	return PM_EXIT_OK;
}

