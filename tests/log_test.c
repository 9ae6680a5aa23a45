// SPDX-License-Identifier: MIT
/* The logger's repeat limit (log.c): of one line (same text, same logger),
 * PM_LOG_BURST per window, then one saying how many were suppressed. A fake
 * clock drives the windows; lines are caught by a logger callback, and on
 * stderr through a pipe. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static int64_t now_ms;
static int64_t fake_clock(void)
{
	return now_ms;
}

struct caught {
	int n;
	char last[1024];
};

static void catch_line(void *arg, int level, const char *msg)
{
	struct caught *c = arg;

	(void)level;
	c->n++;
	snprintf(c->last, sizeof(c->last), "%s", msg);
}

static struct caught a, b;
static struct pm_logger la = { .level = PM_LOG_DEBUG, .fn = catch_line,
			       .arg = &a };
static struct pm_logger lb = { .level = PM_LOG_DEBUG, .fn = catch_line,
			       .arg = &b };

static int setup(void **state)
{
	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	now_ms = 1000;
	pm_log_ratelimit(PM_LOG_BURST, PM_LOG_WINDOW_MS, fake_clock);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pm_log_use(NULL);
	pm_log_ratelimit(PM_LOG_BURST, PM_LOG_WINDOW_MS, NULL);
	return 0;
}

/* What an unreachable coordinator did: the same warning, 10 a second. */
static void warn_unreachable(int i)
{
	(void)i;
	pm_warn("coordinator POST http://%s/nodes/%d/heartbeat: Couldn't connect to server (HTTP status 0)",
		"10.0.0.1:7700", 2);
}

static void test_burst_then_count(void **state)
{
	(void)state;
	pm_log_use(&la);
	for (int i = 0; i < 100; i++) {
		warn_unreachable(i);
		now_ms += 50;	/* 100 lines in 5 s: one window */
	}
	assert_int_equal(a.n, PM_LOG_BURST);
	assert_null(strstr(a.last, "suppressed"));
	now_ms += PM_LOG_WINDOW_MS;
	warn_unreachable(100);
	assert_int_equal(a.n, PM_LOG_BURST + 1);
	assert_string_equal(a.last, "coordinator POST http://10.0.0.1:7700/nodes/2/heartbeat: Couldn't connect to server (HTTP status 0) (suppressed 95 similar lines)");
	/* The count was said once. */
	warn_unreachable(101);
	assert_int_equal(a.n, PM_LOG_BURST + 2);
	assert_null(strstr(a.last, "suppressed"));
}

static void test_rate_over_time(void **state)
{
	(void)state;
	pm_log_use(&la);
	/* 10 a second for a minute: at most a burst per window gets out. */
	for (int i = 0; i < 600; i++) {
		warn_unreachable(i);
		now_ms += 100;
	}
	assert_true(a.n <= PM_LOG_BURST * (60000 / PM_LOG_WINDOW_MS + 1));
	assert_true(a.n >= PM_LOG_BURST * (60000 / PM_LOG_WINDOW_MS));
}

static void test_kinds_apart(void **state)
{
	(void)state;
	pm_log_use(&la);
	for (int i = 0; i < 20; i++)
		warn_unreachable(i);
	/* Lines of one format that differ all pass (each rejected plugin,
	 * each peer), and another logger has its own counts. */
	for (int i = 0; i < 3 * PM_LOG_BURST; i++)
		pm_warn("transport p%d: rejected", i);
	assert_int_equal(a.n, PM_LOG_BURST + 3 * PM_LOG_BURST);
	pm_log_use(&lb);
	for (int i = 0; i < 20; i++)
		warn_unreachable(i);
	assert_int_equal(b.n, PM_LOG_BURST);
}

static void test_debug_and_off(void **state)
{
	(void)state;
	pm_log_use(&la);
	for (int i = 0; i < 50; i++)
		pm_dbg("page %d: queued", i);
	assert_int_equal(a.n, 50);
	pm_log_ratelimit(0, PM_LOG_WINDOW_MS, fake_clock);
	for (int i = 0; i < 50; i++)
		warn_unreachable(i);
	assert_int_equal(a.n, 100);
}

/* The same on stderr, where most lines go. */
static void test_stderr(void **state)
{
	struct pm_logger le = { .level = PM_LOG_INFO };
	char buf[65536];
	int p[2], saved, lines = 0;
	ssize_t n, got = 0;

	(void)state;
	snprintf(le.prefix, sizeof(le.prefix), "test");
	assert_int_equal(pipe(p), 0);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
	pm_log_use(&le);
	for (int i = 0; i < 30; i++)
		warn_unreachable(i);
	now_ms += PM_LOG_WINDOW_MS;
	warn_unreachable(30);
	pm_log_use(NULL);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[1]);
	while ((n = read(p[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += n;
	close(p[0]);
	buf[got] = '\0';
	for (char *s = buf; (s = strchr(s, '\n')); s++)
		lines++;
	assert_int_equal(lines, PM_LOG_BURST + 1);
	assert_non_null(strstr(buf, "test: warn: coordinator POST http://10.0.0.1:7700/nodes/2/heartbeat: Couldn't connect to server (HTTP status 0) (suppressed 25 similar lines)\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_burst_then_count, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rate_over_time, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_kinds_apart, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_debug_and_off, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stderr, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
