// SPDX-License-Identifier: MIT
/* Leveled logging (log.h): one write() per line to stderr, so lines of
 * concurrent threads and processes do not interleave, or a callback; the
 * same line repeated is rate-limited per logger. */
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
 * A line repeated is the same text from the same logger: lines that differ
 * (another plugin rejected, another peer) all pass. Per text and logger,
 * at most burst lines pass in a window; the rest are counted, and the
 * first line that passes after the window says how many were dropped.
 * Debug lines, asked for, always pass.
 */
#define RL_SLOTS 128

struct rl_slot {
	uint64_t text;			/* FNV-1a of the line; 0: free */
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

/* Does this line pass? *dropped: lines like it dropped before it. */
static bool rl_pass(const struct pm_logger *l, const char *msg,
		    unsigned long long *dropped)
{
	uint64_t t = 14695981039346656037ull;
	struct rl_slot *s = NULL, *old = NULL;
	uintptr_t h;
	bool pass;
	int64_t now;

	*dropped = 0;
	if (rl_burst <= 0)
		return true;
	for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
		t = (t ^ *p) * 1099511628211ull;
	t |= 1;		/* never 0, the free mark */
	h = (uintptr_t)(t >> 7) ^ ((uintptr_t)l >> 4);
	pthread_mutex_lock(&rl_lock);
	now = rl_clock();
	for (int i = 0; i < 8 && !s; i++) {
		struct rl_slot *c = &rl_slots[(h + i) % RL_SLOTS];

		if (c->text == t && c->l == l)
			s = c;
		else if (!old || !c->text || (old->text &&
					      c->start_ms < old->start_ms))
			old = c;
	}
	if (!s) {
		/* A new line, or one forgotten: its count starts afresh. */
		s = old;
		*s = (struct rl_slot){ .text = t, .l = l, .start_ms = now };
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
	char msg[1024], line[1200];
	struct timespec ts;
	struct tm tm;
	int n, m;

	if (level > l->level)
		return;
	if (level < 0)
		level = 0;
	if (level > PM_LOG_DEBUG)
		level = PM_LOG_DEBUG;
	m = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (m < 0)
		return;
	if (level < PM_LOG_DEBUG && !rl_pass(l, msg, &dropped))
		return;
	if (dropped && m < (int)sizeof(msg))
		snprintf(msg + m, sizeof(msg) - m,
			 " (suppressed %llu similar lines)", dropped);
	if (l->fn) {
		l->fn(l->arg, level, msg);
		return;
	}
	pthread_once(&log_journal_once, find_journal);
	if (log_journal) {
		/* LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
		static const int prio[] = { 3, 4, 6, 7 };

		n = snprintf(line, sizeof(line), "<%d>%s: %s: %s", prio[level],
			     l->prefix, names[level], msg);
	} else {
		/* ISO 8601, UTC, milliseconds: sortable, no wrap-around. */
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line),
			     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: %s: %s",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			     tm.tm_hour, tm.tm_min, tm.tm_sec,
			     ts.tv_nsec / 1000000, l->prefix, names[level], msg);
	}
	if (n < 0)
		return;
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
