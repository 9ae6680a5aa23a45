// SPDX-License-Identifier: MIT
/* Leveled logging (log.h): one write() per line to stderr, so lines of
 * concurrent threads and processes do not interleave, or a callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct pm_logger pm_log_default = {
	.level = PM_LOG_INFO, .prefix = "pagemesh",
};

static __thread const struct pm_logger *log_cur;

const struct pm_logger *pm_log_use(const struct pm_logger *l)
{
	const struct pm_logger *old = log_cur;

	log_cur = l;
	return old;
}

const struct pm_logger *pm_log_current(void)
{
	return log_cur ? log_cur : &pm_log_default;
}

bool pm_log_on(int level)
{
	return level <= pm_log_current()->level;
}

int pm_log_level_from_env(int fallback)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	const char *e = getenv("PM_LOG_LEVEL");

	if (!e)
		return fallback;
	for (int i = 0; i < 4; i++)
		if (!strcmp(e, names[i]) || (e[0] == '0' + i && !e[1]))
			return i;
	return fallback;
}

void pm_logv(int level, const char *fmt, va_list ap)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	const struct pm_logger *l = pm_log_current();
	char line[1024];
	struct timespec ts;
	struct tm tm;
	int n, m;

	if (level > l->level)
		return;
	if (level < 0)
		level = 0;
	if (level > PM_LOG_DEBUG)
		level = PM_LOG_DEBUG;
	if (l->fn) {
		if (vsnprintf(line, sizeof(line), fmt, ap) >= 0)
			l->fn(l->arg, level, line);
		return;
	}
	/* ISO 8601, UTC, milliseconds: sortable, and no wrap-around. */
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, l->prefix,
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
