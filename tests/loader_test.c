// SPDX-License-Identifier: MIT
/* Loader negative tests: every broken plugin in tests/bad_plugins is
 * rejected with a log line naming the file and the reason, the next
 * transport in the config is used, and --list-transports shows it all. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "loader.h"
#include "log.h"
#include "plugin_dir.h"

static char build_dir[PATH_MAX];	/* absolute $PM_BUILD */
static char bad_dir[PATH_MAX];		/* $PM_BUILD/tests/bad_plugins */

/* --- capture of the log (fd 2) around a call ------------------------- */

static int cap_fd = -1, cap_saved = -1;

static void cap_begin(void)
{
	cap_fd = memfd_create("loader-log", 0);
	assert_true(cap_fd >= 0);
	cap_saved = dup(STDERR_FILENO);
	assert_true(cap_saved >= 0);
	assert_true(dup2(cap_fd, STDERR_FILENO) >= 0);
}

/* Restore stderr, return what was logged (also echoed, for the reader). */
static void cap_end(char *buf, size_t len)
{
	ssize_t n;

	assert_true(dup2(cap_saved, STDERR_FILENO) >= 0);
	close(cap_saved);
	n = pread(cap_fd, buf, len - 1, 0);
	close(cap_fd);
	cap_fd = cap_saved = -1;
	assert_true(n >= 0);
	buf[n] = '\0';
	fputs(buf, stderr);
}

/* How many lines of log contain needle. */
static int count_lines(const char *log, const char *needle)
{
	const char *line = log;
	int n = 0;

	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char tmp[2048];

		snprintf(tmp, sizeof(tmp), "%.*s", (int)len, line);
		if (strstr(tmp, needle))
			n++;
		line += len + (nl ? 1 : 0);
	}
	return n;
}

#define assert_contains(hay, needle)                                        \
	do {                                                                \
		if (!strstr((hay), (needle)))                               \
			fail_msg("expected \"%s\" in:\n%s", (needle), (hay)); \
	} while (0)

/* --- rejections ------------------------------------------------------- */

struct bad_case {
	const char *name;	/* file NAME.so in bad_plugins */
	const char *why;	/* must appear in p->why and the log line */
	int err;		/* expected return */
};

static const struct bad_case bad_cases[] = {
	{ "no_entry", "rejected: no entry symbol pagemesh_transport_v1",
	  -ENOEXEC },
	{ "null_table", "rejected: pagemesh_transport_v1() returned no ops table",
	  -EINVAL },
	{ "bad_abi", "rejected: ABI major 2, core speaks 1", -EPROTO },
	{ "v2_only", "rejected: built for ABI major 2", -EPROTO },
	{ "small_table", "rejected: ops table of", -EINVAL },
	{ "null_op", "rejected: mandatory op 'call' is NULL", -EINVAL },
	{ "no_name", "rejected: the ops table has an empty name", -EINVAL },
	{ "probe_fail", "probe failed: no frobnicator device", -ENODEV },
	/* refused from the file itself, before dlopen could map it */
	{ "not_elf", "rejected: not an ELF file", -ENOEXEC },
	{ "truncated", "rejected: truncated: the section header table (",
	  -ENOEXEC },
	{ "truncated_noshdr", "rejected: truncated: segment ", -ENOEXEC },
	{ "wrong_machine", "rejected: built for another machine: ELF e_machine",
	  -ENOEXEC },
	{ "does_not_exist", "not found", -ENOENT },
};

static void test_rejections(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *bc = &bad_cases[i];
		struct pm_plugin *p = calloc(1, sizeof(*p));
		char log[8192], path[PATH_MAX + 64], line[PATH_MAX + 512];
		int r;

		assert_non_null(p);
		snprintf(path, sizeof(path), "%s/%s.so", bad_dir, bc->name);
		cap_begin();
		r = loader_open(p, bad_dir, bc->name, NULL, 0);
		cap_end(log, sizeof(log));

		print_message("  %-15s -> %d, %s\n", bc->name, r, p->why);
		assert_int_equal(r, bc->err);
		assert_false(p->usable);
		assert_int_equal(p->err, bc->err);
		assert_contains(p->why, bc->why);
		/* one line: "transport NAME: FILE: REASON; DECISION" */
		snprintf(line, sizeof(line), "transport %s: %s: %s", bc->name,
			 path, bc->why);
		assert_contains(log, line);
		assert_contains(log, "; trying next transport");
		snprintf(line, sizeof(line), "transport %s:", bc->name);
		assert_int_equal(count_lines(log, line), 1);
		/* a table from a rejected plugin is never handed out */
		if (strcmp(bc->name, "probe_fail"))
			assert_null(p->ops);
		loader_close(p);
		free(p);
	}
}

/* A bare file name must not make dlopen search the library path. */
static void test_bare_name_is_not_searched(void **state)
{
	struct pm_plugin p;
	char log[4096];

	(void)state;
	cap_begin();
	assert_int_equal(loader_open_path(&p, "libc.so.6", "libc", NULL, 0),
			 -ENOENT);
	cap_end(log, sizeof(log));
	assert_string_equal(p.why, "not found");
	loader_close(&p);
}

/* --- a newer 1.x plugin loads; the host table works ----------------- */

static void test_extended_table_loads(void **state)
{
	struct pm_plugin *p = calloc(1, sizeof(*p));
	const char *s = NULL;
	char log[4096], want[128];
	int64_t v;
	int r;

	(void)state;
	assert_non_null(p);
	cap_begin();
	r = loader_open(p, bad_dir, "extended", NULL, 3);
	cap_end(log, sizeof(log));
	assert_int_equal(r, 0);
	assert_true(p->usable);
	assert_non_null(p->ops);
	assert_true(p->ops->size > sizeof(struct pm_transport_ops));
	assert_int_equal(p->ops->abi_minor, PM_TRANSPORT_ABI_MINOR + 1);
	assert_contains(log, "transport extended: ");
	/* a minor newer than the core's, whatever the core's is */
	snprintf(want, sizeof(want), "/extended.so: loaded (extended 1.1.0, ABI 1.%d)",
		 PM_TRANSPORT_ABI_MINOR + 1);
	assert_contains(log, want);
	assert_int_equal(count_lines(log, "transport extended:"), 1);

	/* host table as the plugin sees it */
	assert_int_equal(p->host.size, sizeof(struct pm_host));
	assert_int_equal(p->host.abi_major, PM_TRANSPORT_ABI_MAJOR);
	assert_string_equal(p->host.name, "extended");
	assert_int_equal(p->host.page_size, PM_PAGE_SIZE);
	assert_int_equal(p->host.node_id, 3);
	assert_int_equal(p->host.cfg_string(p->host.ctx, "listen", &s),
			 -ENOENT);
	assert_int_equal(p->host.cfg_int(p->host.ctx, "port", &v), -ENOENT);
	assert_int_equal(loader_set_string(p, "listen", "127.0.0.1:0"), 0);
	assert_int_equal(p->host.cfg_string(p->host.ctx, "listen", &s), 0);
	assert_string_equal(s, "127.0.0.1:0");

	cap_begin();
	p->host.log(p->host.ctx, PM_LOG_WARN, "frobnicated %d widgets", 7);
	cap_end(log, sizeof(log));
	assert_contains(log, "warn: transport extended: frobnicated 7 widgets");
	loader_close(p);
	free(p);
}

/* --- config order: rejected ones are skipped, the next one is used --- */

static char cfg_path[PATH_MAX];

/*
 * Write a node config whose transports are ORDER (a libconfig list body).
 * extended's group only when it is in the order: a group of a transport
 * the config does not use is an unknown key.
 */
static void write_config(const char *dir, const char *order)
{
	FILE *f;
	int fd;

	snprintf(cfg_path, sizeof(cfg_path), "/tmp/pm-loader-test-XXXXXX");
	fd = mkstemp(cfg_path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f,
		"node = { id = 0; };\n"
		"cluster = { name = \"loader-test\"; nodes = 1; memory = \"16M\"; };\n"
		"transports = {\n"
		"  dir = \"%s\";\n"
		"  order = [ %s ];\n"
		"  %s\n"
		"  tcp = { listen = \"127.0.0.1:0\"; };\n"
		"};\n", dir, order,
		strstr(order, "\"extended\"") ?
		"extended = { greeting = \"hello\"; };" : "");
	assert_int_equal(fclose(f), 0);
}

static void test_open_all_falls_through(void **state)
{
	struct pm_plugin *pl = calloc(CFG_MAX_TRANSPORTS, sizeof(*pl));
	struct cfg *c = calloc(1, sizeof(*c));
	char err[512], log[8192], want[128];
	int i, n;

	(void)state;
	assert_non_null(pl);
	assert_non_null(c);
	write_config(bad_dir,
		     "\"bad_abi\", \"null_op\", \"probe_fail\", \"extended\"");
	assert_int_equal(cfg_load(cfg_path, c, err, sizeof(err)), 0);
	cap_begin();
	n = loader_open_all(c, pl);
	cap_end(log, sizeof(log));
	unlink(cfg_path);

	assert_int_equal(n, 1);
	for (i = 0; i < 3; i++)
		assert_false(pl[i].usable);
	assert_true(pl[3].usable);
	assert_string_equal(pl[3].name, "extended");
	/* the config reached the plugin through host->cfg_string */
	assert_string_equal(pl[3].why, "greeting=hello");
	assert_contains(log, "transport bad_abi: ");
	assert_contains(log, "rejected: ABI major 2, core speaks 1; trying next transport");
	assert_contains(log, "probe failed: no frobnicator device; trying next transport");
	snprintf(want, sizeof(want), "loaded (extended 1.1.0, ABI 1.%d): greeting=hello",
		 PM_TRANSPORT_ABI_MINOR + 1);
	assert_contains(log, want);
	for (i = 0; i < c->n_transports; i++)
		loader_close(&pl[i]);
	cfg_free(c);
	free(c);
	free(pl);
}

/*
 * transports.dir is a list of folders searched in order, the built-in
 * folder (the key's default) last: a third-party plugin need not sit next
 * to the built-ins.
 */
static void test_dir_list(void **state)
{
	struct pm_plugin *pl = calloc(CFG_MAX_TRANSPORTS, sizeof(*pl));
	struct cfg *c = calloc(1, sizeof(*c));
	char err[512], dirs[PATH_MAX + 64], path[PATH_MAX], log[8192];
	/* Computed at run time (the build tree, or PLUGINDIR installed). */
	const char *builtin = pm_plugin_dir_default();
	int i;

	(void)state;
	assert_non_null(pl);
	assert_non_null(c);
	snprintf(dirs, sizeof(dirs), "/nonexistent-pm-dir:%s", bad_dir);
	write_config(dirs, "\"extended\", \"tcp\", \"nosuch\"");
	assert_int_equal(cfg_load(cfg_path, c, err, sizeof(err)), 0);
	unlink(cfg_path);

	/* the second folder has it */
	assert_int_equal(loader_find(c, "extended", path, sizeof(path)), 0);
	assert_non_null(strstr(path, bad_dir));
	/* nowhere: the path names the first folder */
	assert_int_equal(loader_find(c, "nosuch", path, sizeof(path)), -ENOENT);
	assert_string_equal(path, "/nonexistent-pm-dir/nosuch.so");
	/* neither listed folder has tcp.so: the built-in folder, last */
	snprintf(path, sizeof(path), "%s/tcp.so", builtin);
	if (access(path, F_OK)) {
		print_message("SKIP (built-in part): %s absent (run from the source tree after make)\n",
			      path);
	} else {
		assert_int_equal(loader_find(c, "tcp", path, sizeof(path)), 0);
		snprintf(err, sizeof(err), "%s/tcp.so", builtin);
		assert_string_equal(path, err);
	}
	cap_begin();
	assert_true(loader_open_all(c, pl) >= 1);
	cap_end(log, sizeof(log));
	assert_true(pl[0].usable);
	assert_contains(log, "/nonexistent-pm-dir/nosuch.so: not found");
	for (i = 0; i < c->n_transports; i++)
		loader_close(&pl[i]);
	cfg_free(c);
	free(c);
	free(pl);
}

/*
 * One transports.dir holding bad_plugins/BAD.so and the real tcp.so, as
 * symlinks in a temporary folder (dir, PATH_MAX). false: tcp.so is not
 * built (the caller skips).
 */
static bool dir_with_tcp(char *dir, const char *bad)
{
	char tcp[PATH_MAX + 32], l[PATH_MAX + 64], src[PATH_MAX + 64];

	snprintf(tcp, sizeof(tcp), "%s/plugins/tcp.so", build_dir);
	if (access(tcp, F_OK)) {
		print_message("SKIP: %s not built yet (tcp transport plugin absent)\n",
			      tcp);
		return false;
	}
	snprintf(dir, PATH_MAX, "/tmp/pm-loader-dir-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(l, sizeof(l), "%s/%s.so", dir, bad);
	snprintf(src, sizeof(src), "%s/%s.so", bad_dir, bad);
	assert_int_equal(symlink(src, l), 0);
	snprintf(l, sizeof(l), "%s/tcp.so", dir);
	assert_int_equal(symlink(tcp, l), 0);
	return true;
}

static void dir_with_tcp_rm(const char *dir, const char *bad)
{
	char l[PATH_MAX + 64];

	snprintf(l, sizeof(l), "%s/%s.so", dir, bad);
	unlink(l);
	snprintf(l, sizeof(l), "%s/tcp.so", dir);
	unlink(l);
	rmdir(dir);
}

/* A node whose transports.order is [ BAD, "tcp" ] ends up on tcp. */
static void falls_back_to_tcp(const char *bad, const char *why)
{
	struct pm_plugin *pl = calloc(CFG_MAX_TRANSPORTS, sizeof(*pl));
	struct cfg *c = calloc(1, sizeof(*c));
	char dir[PATH_MAX], order[128], want[PATH_MAX + 256];
	char err[512], log[8192];
	int n;

	assert_non_null(pl);
	assert_non_null(c);
	if (!dir_with_tcp(dir, bad)) {
		free(pl);
		free(c);
		skip();
	}
	snprintf(order, sizeof(order), "\"%s\", \"tcp\"", bad);
	write_config(dir, order);
	assert_int_equal(cfg_load(cfg_path, c, err, sizeof(err)), 0);
	cap_begin();
	n = loader_open_all(c, pl);
	cap_end(log, sizeof(log));
	unlink(cfg_path);
	dir_with_tcp_rm(dir, bad);

	print_message("  [ %s, tcp ] -> %s\n", bad, pl[0].why);
	assert_int_equal(n, 1);
	assert_false(pl[0].usable);
	assert_null(pl[0].ops);
	assert_null(pl[0].dl);
	assert_true(pl[1].usable);
	assert_string_equal(pl[1].ops->name, "tcp");
	snprintf(want, sizeof(want), "transport %s: %s/%s.so: %s", bad, dir,
		 bad, why);
	assert_contains(log, want);
	assert_int_equal(count_lines(log, "; trying next transport"), 1);
	assert_contains(log, "transport tcp: ");
	assert_contains(log, "/tcp.so: loaded (tcp ");
	loader_close(&pl[0]);
	loader_close(&pl[1]);
	cfg_free(c);
	free(c);
	free(pl);
}

/* The case of the first issue: a plugin of another ABI. */
static void test_falls_back_to_tcp(void **state)
{
	(void)state;
	falls_back_to_tcp("bad_abi", "rejected: ABI major 2, core speaks 1");
}

/* A cut-short copy of a plugin used to end the node with SIGBUS inside
 * dlopen; it must be refused from its headers, and tcp used. */
static void test_truncated_falls_back(void **state)
{
	(void)state;
	falls_back_to_tcp("truncated", "rejected: truncated: the section header table (");
	falls_back_to_tcp("truncated_noshdr", "rejected: truncated: segment ");
}

static void test_wrong_machine_falls_back(void **state)
{
	(void)state;
	falls_back_to_tcp("wrong_machine",
			  "rejected: built for another machine: ELF e_machine");
}

/*
 * Not a file dlopen may have: a folder and a FIFO named NAME.so (a FIFO
 * must not make the loader wait for a writer), and, when not root, a file
 * it cannot read.
 */
static void test_not_regular(void **state)
{
	static const struct {
		const char *name, *why;
		int err;
	} cases[] = {
		{ "folder", "rejected: not a regular file", -EINVAL },
		{ "fifo", "rejected: not a regular file", -EINVAL },
		{ "unreadable", "rejected: cannot read: Permission denied",
		  -EACCES },
	};
	char dir[] = "/tmp/pm-loader-dir-XXXXXX";
	char path[PATH_MAX + 64], src[PATH_MAX + 64], log[4096];
	struct pm_plugin *p = calloc(1, sizeof(*p));
	size_t i;
	int r;

	(void)state;
	assert_non_null(p);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/folder.so", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/fifo.so", dir);
	assert_int_equal(mkfifo(path, 0644), 0);
	snprintf(path, sizeof(path), "%s/unreadable.so", dir);
	snprintf(src, sizeof(src), "%s/extended.so", bad_dir);
	{
		char cmd[2 * PATH_MAX + 256];

		snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", src, path);
		assert_int_equal(system(cmd), 0);
	}
	assert_int_equal(chmod(path, 0), 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].err == -EACCES && geteuid() == 0) {
			print_message("  %-15s -> not checked: root reads any file\n",
				      cases[i].name);
			continue;
		}
		cap_begin();
		r = loader_open(p, dir, cases[i].name, NULL, 0);
		cap_end(log, sizeof(log));
		print_message("  %-15s -> %d, %s\n", cases[i].name, r, p->why);
		assert_int_equal(r, cases[i].err);
		assert_false(p->usable);
		assert_string_equal(p->why, cases[i].why);
		assert_contains(log, cases[i].why);
		loader_close(p);
	}
	free(p);
	unlink(path);
	snprintf(path, sizeof(path), "%s/fifo.so", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/folder.so", dir);
	rmdir(path);
	rmdir(dir);
}

/*
 * A plugin the key table does not know: its group may hold only the keys
 * it looked up through the host table; the rest is named with file, line
 * and the closest key it did ask for.
 */
static void test_unasked_plugin_key(void **state)
{
	struct pm_plugin *pl = calloc(CFG_MAX_TRANSPORTS, sizeof(*pl));
	struct cfg *c = calloc(1, sizeof(*c));
	char err[512], log[8192], want[PATH_MAX + 64];
	FILE *f;
	int fd;

	(void)state;
	assert_non_null(pl);
	assert_non_null(c);
	snprintf(cfg_path, sizeof(cfg_path), "/tmp/pm-loader-test-XXXXXX");
	fd = mkstemp(cfg_path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f,
		"node = { id = 0; };\n"
		"cluster = { name = \"loader-test\"; nodes = 1; memory = \"16M\"; };\n"
		"transports = {\n"
		"  dir = \"%s\";\n"
		"  order = [ \"extended\" ];\n"
		"  extended = { greeting = \"hello\";\n"
		"    greting = \"typo\"; };\n"
		"};\n", bad_dir);
	assert_int_equal(fclose(f), 0);
	/* The core cannot know the plugin's keys: the file loads. */
	assert_int_equal(cfg_load(cfg_path, c, err, sizeof(err)), 0);
	cap_begin();
	assert_int_equal(loader_open_all(c, pl), 1);
	cap_end(log, sizeof(log));
	assert_int_equal(loader_check_keys(&pl[0], err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:7: ", cfg_path);
	assert_contains(err, want);
	assert_contains(err, "unknown key 'transports.extended.greting' (transport extended never looked it up; did you mean 'transports.extended.greeting'?)");
	loader_close(&pl[0]);
	cfg_free(c);

	/* Without the typo, what the plugin asked for passes. */
	f = fopen(cfg_path, "w");
	assert_non_null(f);
	fprintf(f,
		"node = { id = 0; };\n"
		"cluster = { name = \"loader-test\"; nodes = 1; memory = \"16M\"; };\n"
		"transports = { dir = \"%s\"; order = [ \"extended\" ];\n"
		"  extended = { greeting = \"hello\"; }; };\n", bad_dir);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(cfg_load(cfg_path, c, err, sizeof(err)), 0);
	cap_begin();
	assert_int_equal(loader_open_all(c, pl), 1);
	cap_end(log, sizeof(log));
	unlink(cfg_path);
	assert_int_equal(loader_check_keys(&pl[0], err, sizeof(err)), 0);
	loader_close(&pl[0]);
	cfg_free(c);
	free(c);
	free(pl);
}

/* --- pagemesh --list-transports as a subprocess ---------------------- */

/*
 * Run argv with stdout and stderr in memory files, at most timeout_ms.
 * Returns the exit status (or -1 when killed at the deadline).
 */
static int run_capture(char *const argv[], char *out, size_t outlen,
		       int timeout_ms)
{
	int ofd = memfd_create("out", 0), efd = memfd_create("err", 0);
	struct pollfd pfd;
	int pidfd, status = -1;
	ssize_t n;
	pid_t pid;

	assert_true(ofd >= 0 && efd >= 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(ofd, STDOUT_FILENO);
		dup2(efd, STDERR_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	/* wait on the process itself, with a deadline: a pidfd in poll */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	assert_true(pidfd >= 0);
	pfd.fd = pidfd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, timeout_ms) != 1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(pidfd);
		fail_msg("%s did not finish within %d ms", argv[0], timeout_ms);
	}
	close(pidfd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	n = pread(ofd, out, outlen - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	{
		char err[4096];

		n = pread(efd, err, sizeof(err) - 1, 0);
		err[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "--- %s stderr:\n%s", argv[0], err);
	}
	fprintf(stderr, "--- %s stdout:\n%s", argv[0], out);
	close(ofd);
	close(efd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_list_transports_cli(void **state)
{
	char bin[PATH_MAX + 16], out[16384], dir[PATH_MAX], abi[64];
	char *argv[] = { bin, "--list-transports", "-c", cfg_path, NULL };
	char *help[] = { bin, "--list-transports", "--help", NULL };
	char *noarg[] = { bin, "--list-transports", NULL };
	int rc;

	(void)state;
	snprintf(bin, sizeof(bin), "%s/pagemesh", build_dir);
	if (access(bin, X_OK))
		fail_msg("%s is missing: build it with make", bin);

	write_config(bad_dir, "\"bad_abi\", \"probe_fail\", \"extended\", "
			      "\"missing\"");
	rc = run_capture(argv, out, sizeof(out), 20000);
	unlink(cfg_path);
	assert_int_equal(rc, 0);
	assert_contains(out, "1. bad_abi\n");
	assert_contains(out, "bad_plugins/bad_abi.so\n");
	assert_contains(out, "probe:         rejected: ABI major 2, core speaks 1\n");
	assert_contains(out, "2. probe_fail\n");
	assert_contains(out, "version:       0.0.1\n");
	assert_contains(out, "capabilities:  rdma\n");
	assert_contains(out, "probe:         probe failed: no frobnicator device\n");
	assert_contains(out, "3. extended  [first usable: used]\n");
	assert_contains(out, "   name:          extended\n");
	assert_contains(out, "   version:       1.1.0\n");
	/* extended.so claims one minor past the header's. */
	snprintf(abi, sizeof(abi), "   abi:           %d.%d\n",
		 PM_TRANSPORT_ABI_MAJOR, PM_TRANSPORT_ABI_MINOR + 1);
	assert_contains(out, abi);
	assert_contains(out, "   capabilities:  reliable,batch\n");
	assert_contains(out, "   probe:         ok: greeting=hello\n");
	assert_contains(out, "4. missing\n");
	assert_contains(out, "probe:         not found\n");
	assert_contains(out, "1 of 4 transports usable");

	/* nothing usable: exit 1 */
	write_config(bad_dir, "\"bad_abi\", \"null_op\"");
	rc = run_capture(argv, out, sizeof(out), 20000);
	unlink(cfg_path);
	assert_int_equal(rc, 1);
	assert_contains(out, "probe:         rejected: mandatory op 'call' is NULL\n");
	assert_contains(out, "no usable transport");

	/* a truncated plugin first: the process lives and uses tcp */
	if (dir_with_tcp(dir, "truncated")) {
		write_config(dir, "\"truncated\", \"tcp\"");
		rc = run_capture(argv, out, sizeof(out), 20000);
		unlink(cfg_path);
		dir_with_tcp_rm(dir, "truncated");
		assert_int_equal(rc, 0);
		assert_contains(out, "1. truncated\n");
		assert_contains(out, "probe:         rejected: truncated: the section header table (");
		assert_contains(out, "2. tcp  [first usable: used]\n");
		assert_contains(out, "1 of 2 transports usable");
	}

	/* a config error: exit 78 */
	snprintf(cfg_path, sizeof(cfg_path), "/tmp/pm-loader-test-no-such.cfg");
	assert_int_equal(run_capture(argv, out, sizeof(out), 20000), 78);
	/* usage */
	assert_int_equal(run_capture(noarg, out, sizeof(out), 20000), 2);
	assert_int_equal(run_capture(help, out, sizeof(out), 20000), 0);
	assert_contains(out, "usage: pagemesh --list-transports -c FILE");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rejections),
		cmocka_unit_test(test_bare_name_is_not_searched),
		cmocka_unit_test(test_extended_table_loads),
		cmocka_unit_test(test_open_all_falls_through),
		cmocka_unit_test(test_dir_list),
		cmocka_unit_test(test_falls_back_to_tcp),
		cmocka_unit_test(test_truncated_falls_back),
		cmocka_unit_test(test_wrong_machine_falls_back),
		cmocka_unit_test(test_not_regular),
		cmocka_unit_test(test_unasked_plugin_key),
		cmocka_unit_test(test_list_transports_cli),
	};
	const char *b = getenv("PM_BUILD");
	char rel[PATH_MAX];

	snprintf(rel, sizeof(rel), "%s", b && *b ? b : "build");
	if (!realpath(rel, build_dir)) {
		fprintf(stderr, "loader_test: build folder %s: %s\n", rel,
			strerror(errno));
		return 1;
	}
	snprintf(bad_dir, sizeof(bad_dir), "%.*s/tests/bad_plugins",
		 (int)(sizeof(bad_dir) - 32), build_dir);
	return cmocka_run_group_tests_name("loader", tests, NULL, NULL);
}
