/* SPDX-License-Identifier: MIT */
/* The one leveled logger: lines to stderr, "-v" raises the level. */
#ifndef PM_LOG_H
#define PM_LOG_H

#include <stdarg.h>

#include <pagemesh/transport.h>	/* enum pm_log_level */

extern int pm_log_level;	/* lines above this level are dropped */

void pm_log_set_prefix(const char *prefix);	/* e.g. "node 2" */
void pm_logv(int level, const char *fmt, va_list ap);
void pm_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define pm_err(...) pm_log(PM_LOG_ERROR, __VA_ARGS__)
#define pm_warn(...) pm_log(PM_LOG_WARN, __VA_ARGS__)
#define pm_info(...) pm_log(PM_LOG_INFO, __VA_ARGS__)
#define pm_dbg(...)                                                        \
	do {                                                               \
		if (pm_log_level >= PM_LOG_DEBUG)                          \
			pm_log(PM_LOG_DEBUG, __VA_ARGS__);                 \
	} while (0)

#endif
