/* SPDX-License-Identifier: MIT */
/*
 * Where plugins are found when transports.dir is not set. PLUGINDIR is
 * compiled in (`make PLUGINDIR=...`, default PREFIX/lib/pagemesh/plugins);
 * but code that runs from the build folder (build/pagemesh, a program
 * linked against build/libpagemesh.so, a test in build/tests/) uses the
 * build folder's plugins/, so that the build tree works uninstalled.
 */
#ifndef PM_PLUGIN_DIR_H
#define PM_PLUGIN_DIR_H

/* The default folder (computed once; the result is static). */
const char *pm_plugin_dir_default(void);
/* The compiled-in PLUGINDIR, wherever the code runs. */
const char *pm_plugin_dir_installed(void);

#endif
