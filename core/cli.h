/* SPDX-License-Identifier: MIT */
/* Subcommands of the pagemesh binary. Each lives in the module it drives
 * and returns the process exit code (PM_EXIT_*). */
#ifndef PM_CLI_H
#define PM_CLI_H

#define PM_EXIT_OK 0
#define PM_EXIT_RUNTIME 1
#define PM_EXIT_USAGE 2
/* PM_EXIT_CONFIG (78) is in cfg.h */

/* argv[0] is the subcommand name; getopt-ready. */
int cmd_node(int argc, char **argv);		/* node.c */
int cmd_list_transports(int argc, char **argv);	/* loader.c */
int cmd_coordinator(int argc, char **argv);	/* coord_cli.c */
int cmd_stats(int argc, char **argv);		/* metrics.c */
int cmd_vm(int argc, char **argv);		/* vmm_cli.c */

#endif
