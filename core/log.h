/* SPDX-License-Identifier: MIT */
/*
 * The one leveled logger. Each node has its own (level, prefix, and where
 * lines go: stderr, or the callback of pm_node_start_opts); the threads of
 * a node use it, since every entry point into a node's code (its threads,
 * the transport callbacks, the API) names it with pm_log_use(). Lines from
 * anywhere else, or before a node exists, go to pm_log_default, which only
 * main() changes (the CLI's -v).
 */
#ifndef PM_LOG_H
#define PM_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <pagemesh/transport.h>	/* enum pm_log_default.level */

struct pm_logger {
	int level;			/* lines above it are dropped */
	void (*fn)(void *arg, int level, const char *msg); /* NULL: stderr */
	void *arg;
	char prefix[64];		/* "node 2" */
};

/* stderr, info, prefix "pagemesh". */
extern struct pm_logger pm_log_default;

/* The calling thread's logger from now on (NULL: the default); returns
 * the one it replaces, to be put back when a callback returns. */
const struct pm_logger *pm_log_use(const struct pm_logger *l);
const struct pm_logger *pm_log_current(void);
bool pm_log_on(int level);
/* PM_LOG_LEVEL's value (error, warn, info, debug or 0-3), or fallback. */
int pm_log_level_from_env(int fallback);

/*
 * Repeats: of one line (the same text from the same logger), at most
 * PM_LOG_BURST of error, warn or info level per PM_LOG_WINDOW_MS; the first
 * let through after others were dropped ends with "(suppressed N similar
 * lines)". Lines that differ are not limited, nor debug lines.
 */
#define PM_LOG_BURST 5
#define PM_LOG_WINDOW_MS 10000
/* Other limits (burst 0: none) and clock (NULL: CLOCK_MONOTONIC), for
 * tests; forgets what was counted. */
void pm_log_ratelimit(int burst, int window_ms, int64_t (*clock_ms)(void));

void pm_logv(int level, const char *fmt, va_list ap);
void pm_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define pm_err(...) pm_log(PM_LOG_ERROR, __VA_ARGS__)
#define pm_warn(...) pm_log(PM_LOG_WARN, __VA_ARGS__)
#define pm_info(...) pm_log(PM_LOG_INFO, __VA_ARGS__)
#define pm_dbg(...)                                                        \
	do {                                                               \
		if (pm_log_on(PM_LOG_DEBUG))                               \
			pm_log(PM_LOG_DEBUG, __VA_ARGS__);                 \
	} while (0)

#endif
