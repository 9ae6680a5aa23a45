// SPDX-License-Identifier: MIT
/* Leveled logging to stderr: one write() per line so lines of concurrent
 * threads and processes do not interleave. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int pm_log_level = PM_LOG_INFO;
static char log_prefix[64] = "pagemesh";

/* PM_LOG_LEVEL=debug (or 0-3) in the environment overrides -v. */
__attribute__((constructor)) static void log_from_env(void)
{
	const char *e = getenv("PM_LOG_LEVEL");

	if (!e)
		return;
	if (!strcmp(e, "debug"))
		pm_log_level = PM_LOG_DEBUG;
	else if (!strcmp(e, "info"))
		pm_log_level = PM_LOG_INFO;
	else if (!strcmp(e, "warn"))
		pm_log_level = PM_LOG_WARN;
	else if (!strcmp(e, "error"))
		pm_log_level = PM_LOG_ERROR;
}

void pm_log_set_prefix(const char *prefix)
{
	snprintf(log_prefix, sizeof(log_prefix), "%s", prefix);
}

void pm_logv(int level, const char *fmt, va_list ap)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	char line[1024];
	struct timespec ts;
	int n, m;

	if (level > pm_log_level)
		return;
	if (level < 0)
		level = 0;
	if (level > PM_LOG_DEBUG)
		level = PM_LOG_DEBUG;
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(line, sizeof(line), "%ld.%03ld %s: %s: ",
		     (long)ts.tv_sec % 100000, ts.tv_nsec / 1000000, log_prefix,
		     names[level]);
	if (n < 0)
		return;
	m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

void pm_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pm_logv(level, fmt, ap);
	va_end(ap);
}
