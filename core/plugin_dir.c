// SPDX-License-Identifier: MIT
/* The folder transports.dir defaults to: the installed PLUGINDIR, or the
 * build folder's plugins/ for code that runs from the build folder. */
#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin_dir.h"

/* $(B)/core/paths.h, written by the Makefile: PLUGINDIR and the absolute
 * build folder. A build without it (the fuzzer's) knows no build folder. */
#if __has_include("paths.h")
#include "paths.h"
#endif
#ifndef PM_PLUGINDIR
#define PM_PLUGINDIR "/usr/local/lib/pagemesh/plugins"
#endif
#ifndef PM_BUILD_DIR
#define PM_BUILD_DIR ""
#endif

/* Is the file holding this code (libpagemesh.so, or the program that
 * linked libpagemesh.a) inside dir? */
static bool code_is_under(const char *dir)
{
	char here[PATH_MAX], root[PATH_MAX];
	struct link_map *lm = NULL;
	const char *file;
	Dl_info info;
	size_t n;

	if (!dir[0] || !realpath(dir, root))
		return false;
	if (!dladdr1((void *)pm_plugin_dir_default, &info, (void **)&lm,
		     RTLD_DL_LINKMAP) || !lm)
		return false;
	/* The main program's link map has no name. */
	file = lm->l_name && lm->l_name[0] ? lm->l_name : "/proc/self/exe";
	if (!realpath(file, here))
		return false;
	n = strlen(root);
	return !strncmp(here, root, n) && here[n] == '/';
}

static char dir_default[PATH_MAX];

static void find_default(void)
{
	if (code_is_under(PM_BUILD_DIR))
		snprintf(dir_default, sizeof(dir_default), "%s/plugins",
			 PM_BUILD_DIR);
	else
		snprintf(dir_default, sizeof(dir_default), "%s", PM_PLUGINDIR);
}

const char *pm_plugin_dir_default(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, find_default);
	return dir_default;
}

const char *pm_plugin_dir_installed(void)
{
	return PM_PLUGINDIR;
}
