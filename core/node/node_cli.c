// SPDX-License-Identifier: MIT
/* `pagemesh node`: run a node from a config file until SIGINT or SIGTERM. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "node.h"

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
"\n"
"  -c, --config FILE   node configuration (see etc/ and README)\n"
"  -h, --help          this text\n"
"\n"
"exit codes: 0 stopped by a signal, 1 runtime error, 2 usage,\n"
"78 configuration error\n");
}

int cmd_node(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL;
	struct pm_node *n;
	char err[1024];
	sigset_t set;
	int c, sig, code;

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
	n = pm_node_start_ex(config, err, sizeof(err), &code);
	if (!n) {
		fprintf(stderr, "pagemesh node: %s\n", err);
		return code;
	}
	pm_log_use(&n->log);
	sigwait(&set, &sig);
	pm_info("%s: stopping", strsignal(sig));
	print_stats_table(n, stdout);
	fflush(stdout);
	node_free(n);
	return PM_EXIT_OK;
}

