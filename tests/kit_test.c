// SPDX-License-Identifier: MIT
/*
 * The transport writer's kit tested: pagemesh-conformance passes the
 * example AF_UNIX transport (examples/transport-unix) and fails each of
 * its deliberately broken builds on the rule it breaks; its options and
 * its per-case bound work.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include <pagemesh/transport.h>

static const char *bdir;

struct run {
	int rc;			/* exit status, or -1 */
	double secs;
	char *out;		/* stdout and stderr */
};

/* Run the shell command cmd; its exit status and output. */
static struct run run_cmd(const char *cmd)
{
	struct run r = { .rc = -1 };
	size_t cap = 1 << 16, n = 0;
	int64_t t0 = pm_now_ns();
	FILE *p;
	int st;

	p = popen(cmd, "r");
	assert_non_null(p);
	r.out = malloc(cap);
	assert_non_null(r.out);
	for (;;) {
		size_t got;

		if (cap - n < 4096) {
			cap *= 2;
			r.out = realloc(r.out, cap);
			assert_non_null(r.out);
		}
		got = fread(r.out + n, 1, cap - n - 1, p);
		if (!got)
			break;
		n += got;
	}
	r.out[n] = '\0';
	st = pclose(p);
	r.secs = (double)(pm_now_ns() - t0) / 1e9;
	if (WIFEXITED(st))
		r.rc = WEXITSTATUS(st);
	return r;
}

/* Run `env pagemesh-conformance args` under a hard timeout. */
static struct run conf(const char *env, const char *args)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "%s timeout -k 5 240 %s/tests/conformance %s 2>&1",
		 env, bdir, args);
	return run_cmd(cmd);
}

static void expect(const struct run *r, const char *needle)
{
	if (!strstr(r->out, needle)) {
		print_error("%s\n", r->out);
		fail_msg("output lacks \"%s\" (exit %d)", needle, r->rc);
	}
}

static void expect_rc(const struct run *r, int rc);

static void expect_not(const struct run *r, const char *needle)
{
	if (strstr(r->out, needle)) {
		print_error("%s\n", r->out);
		fail_msg("output has \"%s\" (exit %d)", needle, r->rc);
	}
}

/*
 * The example's whole suite: every case that applies to it run and
 * passed, none skipped and no rule unchecked; the frame.h cases not part
 * of it, in one line; the handshake cases run through its test_raw_dial.
 */
static void expect_example_suite(const struct run *r)
{
	static const char *const ok[] = {
		"[       OK ] test_corrupt_input",
		"[       OK ] test_handshake_silent",
		"[       OK ] test_handshake_slowloris",
		"[       OK ] test_handshake_stall_after_request",
		"[       OK ] test_handshake_frees_slots",
	};

	expect_rc(r, 0);
	expect(r, "RESULT: PASS");
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		expect(r, ok[i]);
	expect(r, "8 case(s) for frame.h transports not applicable to unix");
	expect_not(r, "SKIPPED");
	expect_not(r, "SKIP:");
	expect_not(r, "NOT CHECKED");
	expect_not(r, "[ RUN      ] test_raw_");
}

static void expect_rc(const struct run *r, int rc)
{
	if (r->rc != rc) {
		print_error("%s\n", r->out);
		fail_msg("exit %d, want %d", r->rc, rc);
	}
}

static void test_example_passes(void **state)
{
	char args[512];
	struct run r;

	(void)state;
	snprintf(args, sizeof(args), "%s/examples/transport-unix/unix.so",
		 bdir);
	r = conf("", args);
	print_message("  example: exit %d after %.1f s\n", r.rc, r.secs);
	expect(&r, "[  PASSED  ]");
	/* its own framing is checked, not skipped as "not TCP"; so are its
	 * silent and slow peers */
	expect_example_suite(&r);
	free(r.out);
}

static void test_twice_fails(void **state)
{
	char args[512];
	struct run r;

	(void)state;
	snprintf(args, sizeof(args), "%s/examples/transport-unix/unix_twice.so",
		 bdir);
	r = conf("", args);
	expect_rc(&r, 1);
	expect(&r, "[  FAILED  ] test_exactly_once");
	expect(&r, "more than once");
	/* No "RESULT: FAIL" asked: a later case may end the run first (its
	 * held requests arrive twice, so it disconnects before every caller
	 * is inside call(), which ASan reports as a use after free). */
	free(r.out);
}

static void test_late_fails(void **state)
{
	char args[512];
	struct run r;

	(void)state;
	snprintf(args, sizeof(args),
		 "--only test_call_timeout,test_call_sizes %s/examples/transport-unix/unix_late.so",
		 bdir);
	r = conf("", args);
	expect_rc(&r, 1);
	expect(&r, "[  FAILED  ] test_call_timeout");
	expect(&r, "PM_CALL_LATE_MS");
	expect(&r, "[       OK ] test_call_sizes");
	free(r.out);
}

/* Without its handshake bound the example lets silent peers hold every
 * slot: the handshake cases, which run on it through test_raw_dial, fail. */
static void test_silent_fails(void **state)
{
	char args[512];
	struct run r;

	(void)state;
	snprintf(args, sizeof(args),
		 "--only test_handshake_silent,test_call_sizes %s/examples/transport-unix/unix_silent.so",
		 bdir);
	r = conf("", args);
	expect_rc(&r, 1);
	expect(&r, "[  FAILED  ] test_handshake_silent");
	expect(&r, "still open");
	expect(&r, "[       OK ] test_call_sizes");
	free(r.out);
}

/* A case past PM_CONFORMANCE_CASE_S ends the run, failed, on time. */
static void test_case_bound(void **state)
{
	char args[512];
	struct run r;

	(void)state;
	snprintf(args, sizeof(args),
		 "--only test_call_timeout %s/examples/transport-unix/unix_late.so",
		 bdir);
	r = conf("PM_CONFORMANCE_CASE_S=1", args);
	print_message("  a 1 s bound on a case taking 2.6 s: exit %d after %.1f s\n",
		      r.rc, r.secs);
	expect_rc(&r, 1);
	expect(&r, "[  TIMEOUT ] test_call_timeout");
	assert_true(r.secs < 1 + 10);
	free(r.out);
}

/* No any_listen and no --listen: one clear failure, not one per case;
 * --listen makes the same plugin pass. */
static void test_no_listen(void **state)
{
	char args[512];
	struct run r;
	const char *p;
	int fails = 0;

	(void)state;
	snprintf(args, sizeof(args),
		 "--only test_any_listen,test_call_sizes,test_drop %s/examples/transport-unix/unix_nolisten.so",
		 bdir);
	r = conf("PM_CONFORMANCE_LISTEN=", args);
	expect_rc(&r, 1);
	expect(&r, "no listen address");
	expect(&r, "[  FAILED  ] test_any_listen");
	expect(&r, "[  SKIPPED ] test_call_sizes");
	for (p = r.out; (p = strstr(p, "[  FAILED  ] test_")); p++)
		fails++;
	assert_int_equal(fails, 2);	/* the case and the summary's list */
	free(r.out);

	snprintf(args, sizeof(args),
		 "--listen @ --only test_any_listen,test_call_sizes %s/examples/transport-unix/unix_nolisten.so",
		 bdir);
	r = conf("", args);
	expect_rc(&r, 0);
	expect(&r, "NOT CHECKED");	/* no any_listen: said, prominently */
	free(r.out);
}

static void test_options(void **state)
{
	char args[512];
	struct run r;

	(void)state;
	r = conf("", "--list");
	expect_rc(&r, 0);
	expect(&r, "test_exactly_once\n");
	expect(&r, "test_raw_garbage\n");
	free(r.out);
	/* with a plugin: its suite, and what is not part of it */
	snprintf(args, sizeof(args), "--list %s/examples/transport-unix/unix.so",
		 bdir);
	r = conf("", args);
	expect_rc(&r, 0);
	expect(&r, "test_handshake_silent\n");
	expect(&r, "# not applicable: test_raw_valid_frame,");
	expect_not(&r, "test_raw_garbage\n");
	free(r.out);
	r = conf("", "--help");
	expect_rc(&r, 0);
	expect(&r, "rule: at most once");
	free(r.out);
	snprintf(args, sizeof(args),
		 "--only test_nonesuch %s/examples/transport-unix/unix.so", bdir);
	r = conf("", args);
	expect_rc(&r, 2);
	expect(&r, "no case 'test_nonesuch'");
	free(r.out);
	snprintf(args, sizeof(args),
		 "--skip test_concurrent_calls --only test_load,test_concurrent_calls %s/examples/transport-unix/unix.so",
		 bdir);
	r = conf("", args);
	expect_rc(&r, 0);
	expect(&r, "Running 1 test(s)");
	free(r.out);
	r = conf("", "");
	expect_rc(&r, 2);
	free(r.out);
}

/*
 * A transport written out of tree, as a third party would: the example's
 * source alone, built with the README's own command line against the
 * installed headers (pkg-config), checked by the installed
 * pagemesh-conformance. PM_KIT_ROOT is a staged `make install DESTDIR=`, PM_KIT_PREFIX its PREFIX.
 */
static void test_installed_tree(void **state)
{
	const char *root = getenv("PM_KIT_ROOT");
	const char *prefix = getenv("PM_KIT_PREFIX");
	char line[512], cc[2048] = "", dir[] = "/tmp/pm-kit-XXXXXX";
	char cmd[4096], env[1024];
	bool in = false;
	struct run r;
	FILE *f;

	(void)state;
	if (!root || !*root) {
		print_message("SKIP: PM_KIT_ROOT unset: no staged install (make test-kit stages one)\n");
		skip();
	}
	if (!prefix || !*prefix)
		prefix = "/usr/local";
	/* the README's build line, continuation lines joined */
	f = fopen("README.md", "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);

		if (!in && strncmp(line, "cc -std=gnu11", 13))
			continue;
		in = true;
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\\'))
			line[--n] = '\0';
		strncat(cc, line, sizeof(cc) - strlen(cc) - 1);
		if (strstr(line, "unix.c"))
			break;
	}
	fclose(f);
	if (!strstr(cc, "-o unix.so unix.c"))
		fail_msg("README.md has no build line 'cc -std=gnu11 ... -o unix.so unix.c'");
	print_message("  README: %s\n", cc);

	assert_non_null(mkdtemp(dir));
	snprintf(env, sizeof(env),
		 "PKG_CONFIG_PATH=%s%s/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=%s",
		 root, prefix, root);
	snprintf(cmd, sizeof(cmd),
		 "cp examples/transport-unix/unix.c %s/ && cd %s && %s sh -c '%s' 2>&1",
		 dir, dir, env, cc);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		print_message("  cc: %s", line);
	if (pclose(f)) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		assert_int_equal(system(cmd), 0);
		fail_msg("the README's build line failed against %s", root);
	}
	/* the installed suite, not the build tree's */
	snprintf(cmd, sizeof(cmd),
		 "timeout -k 5 240 %s%s/bin/pagemesh-conformance %s/unix.so 2>&1",
		 root, prefix, dir);
	r = run_cmd(cmd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	expect_example_suite(&r);
	free(r.out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_example_passes),
		cmocka_unit_test(test_twice_fails),
		cmocka_unit_test(test_late_fails),
		cmocka_unit_test(test_silent_fails),
		cmocka_unit_test(test_case_bound),
		cmocka_unit_test(test_no_listen),
		cmocka_unit_test(test_installed_tree),
	};

	bdir = getenv("PM_BUILD");
	if (!bdir || !*bdir)
		bdir = "build";
	return cmocka_run_group_tests_name("kit", tests, NULL, NULL);
}
