// SPDX-License-Identifier: MIT
/* pagemesh: the one binary. Dispatches to the subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "cli.h"
#include "log.h"
#include "plugin_dir.h"

/* Weak so that a build without a module still links and says so. */
#pragma weak cmd_node
#pragma weak cmd_list_transports
#pragma weak cmd_coordinator
#pragma weak cmd_stats
#pragma weak cmd_vm

static void usage(FILE *out)
{
	fprintf(out,
"usage: pagemesh [-v] COMMAND [ARGS]\n"
"       pagemesh --list-transports -c FILE\n"
"\n"
"Pools the RAM of several machines into one address space.\n"
"\n"
"commands:\n"
"  node -c FILE           run a node until SIGINT/SIGTERM\n"
"  coordinator -c FILE | --listen ADDR:PORT\n"
"                         run the embedded coordinator service\n"
"  vm -c FILE             boot a KVM guest whose RAM is the pagemesh region\n"
"  stats -c FILE | --node URL\n"
"                         print a node's counters as a table\n"
"\n"
"options:\n"
"  --list-transports      show each configured transport: file, name,\n"
"                         version, ABI, capabilities and probe result\n"
"  -v, --verbose          info lines too; -vv: debug as well (default:\n"
"                         warnings and errors, or PM_LOG_LEVEL: error,\n"
"                         warn, info or debug)\n"
"  -h, --help             this text\n"
"  --version              print the version\n"
"\n"
"exit codes: 0 ok, 1 runtime error, 2 usage, 78 configuration error\n"
"'pagemesh COMMAND --help' describes each command; benchmarks are\n"
"'make bench' in the source tree (README, Benchmarks).\n");
}

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
};

int main(int argc, char **argv)
{
	const struct command cmds[] = {
		{ "node", cmd_node },
		{ "coordinator", cmd_coordinator },
		{ "stats", cmd_stats },
		{ "vm", cmd_vm },
		{ "--list-transports", cmd_list_transports },
	};
	int i = 1, verbose = PM_LOG_WARN;
	size_t k;

	/* Warnings and errors; -v adds info, -vv (or -v -v) debug. */
	while (i < argc && (!strcmp(argv[i], "-v") ||
			    !strcmp(argv[i], "--verbose") ||
			    !strcmp(argv[i], "-vv"))) {
		verbose += strcmp(argv[i], "-vv") ? 1 : 2;
		i++;
	}
	pm_log_default.level = pm_log_level_from_env(PM_LOG_WARN);
	if (verbose > PM_LOG_DEBUG)
		verbose = PM_LOG_DEBUG;
	if (pm_log_default.level < verbose)
		pm_log_default.level = verbose;
	/* Nodes read PM_LOG_LEVEL again (pm_node_start): the flags win. */
	setenv("PM_LOG_LEVEL", (const char *[]){ "error", "warn", "info",
		"debug" }[pm_log_default.level < 0 ? 0 : pm_log_default.level],
	       1);
	if (i >= argc) {
		usage(stderr);
		return PM_EXIT_USAGE;
	}
	if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help") ||
	    !strcmp(argv[i], "help")) {
		usage(stdout);
		return PM_EXIT_OK;
	}
	if (!strcmp(argv[i], "--version")) {
		printf("pagemesh %s (transport ABI %d.%d)\nplugins: %s\n",
		       PM_VERSION, PM_TRANSPORT_ABI_MAJOR,
		       PM_TRANSPORT_ABI_MINOR, pm_plugin_dir_default());
		return PM_EXIT_OK;
	}
	for (k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++) {
		if (strcmp(argv[i], cmds[k].name))
			continue;
		if (!cmds[k].fn) {
			fprintf(stderr,
				"pagemesh: '%s' is not part of this build\n",
				argv[i]);
			return PM_EXIT_RUNTIME;
		}
		return cmds[k].fn(argc - i, argv + i);
	}
	fprintf(stderr, "pagemesh: unknown command '%s' (see pagemesh --help)\n",
		argv[i]);
	return PM_EXIT_USAGE;
}
