// SPDX-License-Identifier: MIT
/* Leveled logging (log.h): one write() per line to stderr, so lines of
 * concurrent threads and processes do not interleave, or a callback; the
 * same line repeated is rate-limited per format and logger. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* ---- repeats --------------------------------------------------------- */

/*
 * One format string is one kind of line (a call site, or a few that share
 * it). Per format and logger, at most burst lines pass in a window; the
 * rest are counted, and the first line that passes after the window says
 * how many were dropped. Debug lines, asked for, always pass.
 */
#define RL_SLOTS 128

struct rl_slot {
	const char *fmt;		/* NULL: free */
	const struct pm_logger *l;
	int64_t start_ms;		/* of the current window */
	unsigned int count;		/* lines passed in it */
	unsigned long long dropped;	/* since the last line passed */
};

static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rl_slot rl_slots[RL_SLOTS];
static int rl_burst = PM_LOG_BURST, rl_window_ms = PM_LOG_WINDOW_MS;

static int64_t rl_clock_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t (*rl_clock)(void) = rl_clock_real;

void pm_log_ratelimit(int burst, int window_ms, int64_t (*clock_ms)(void))
{
	pthread_mutex_lock(&rl_lock);
	rl_burst = burst;
	rl_window_ms = window_ms;
	rl_clock = clock_ms ? clock_ms : rl_clock_real;
	memset(rl_slots, 0, sizeof(rl_slots));
	pthread_mutex_unlock(&rl_lock);
}

/* Does this line pass? *dropped: lines of its kind dropped before it. */
static bool rl_pass(const struct pm_logger *l, const char *fmt,
		    unsigned long long *dropped)
{
	uintptr_t h = ((uintptr_t)fmt >> 3) ^ ((uintptr_t)l >> 4);
	struct rl_slot *s = NULL, *old = NULL;
	bool pass;
	int64_t now;

	*dropped = 0;
	if (rl_burst <= 0)
		return true;
	pthread_mutex_lock(&rl_lock);
	now = rl_clock();
	for (int i = 0; i < 8 && !s; i++) {
		struct rl_slot *c = &rl_slots[(h + i) % RL_SLOTS];

		if (c->fmt == fmt && c->l == l)
			s = c;
		else if (!old || !c->fmt || (old->fmt &&
					     c->start_ms < old->start_ms))
			old = c;
	}
	if (!s) {
		/* A new kind, or one forgotten: its count starts afresh. */
		s = old;
		*s = (struct rl_slot){ .fmt = fmt, .l = l, .start_ms = now };
	}
	if (now - s->start_ms >= rl_window_ms) {
		s->start_ms = now;
		s->count = 0;
	}
	pass = s->count < (unsigned int)rl_burst;
	if (pass) {
		s->count++;
		*dropped = s->dropped;
		s->dropped = 0;
	} else {
		s->dropped++;
	}
	pthread_mutex_unlock(&rl_lock);
	return pass;
}

/* ---- journald ----------------------------------------------------------- */

/* Is stderr systemd's journal (JOURNAL_STREAM is its "DEV:INODE")? Then
 * lines carry a <N> syslog priority and no timestamp: the journal keeps
 * its own. */
static bool log_journal;
static pthread_once_t log_journal_once = PTHREAD_ONCE_INIT;

static void find_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	log_journal = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 &&
		      !fstat(STDERR_FILENO, &st) &&
		      (unsigned long long)st.st_dev == dev &&
		      (unsigned long long)st.st_ino == ino;
}

void pm_logv(int level, const char *fmt, va_list ap)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	const struct pm_logger *l = pm_log_current();
	unsigned long long dropped = 0;
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
	if (level < PM_LOG_DEBUG && !rl_pass(l, fmt, &dropped))
		return;
	if (l->fn) {
		n = vsnprintf(line, sizeof(line), fmt, ap);
		if (n < 0)
			return;
		if (dropped && n < (int)sizeof(line))
			snprintf(line + n, sizeof(line) - n,
				 " (suppressed %llu similar lines)", dropped);
		l->fn(l->arg, level, line);
		return;
	}
	pthread_once(&log_journal_once, find_journal);
	if (log_journal) {
		/* LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
		static const int prio[] = { 3, 4, 6, 7 };

		n = snprintf(line, sizeof(line), "<%d>%s: %s: ", prio[level],
			     l->prefix, names[level]);
	} else {
		/* ISO 8601, UTC, milliseconds: sortable, no wrap-around. */
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line),
			     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: %s: ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			     tm.tm_hour, tm.tm_min, tm.tm_sec,
			     ts.tv_nsec / 1000000, l->prefix, names[level]);
	}
	if (n < 0)
		return;
	m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if (dropped && n < (int)sizeof(line))
		n += snprintf(line + n, sizeof(line) - n,
			      " (suppressed %llu similar lines)", dropped);
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
