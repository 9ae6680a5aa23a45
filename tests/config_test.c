// SPDX-License-Identifier: MIT
/*
 * Bad configuration files: `pagemesh node -c FILE` must exit 78 with a
 * message naming the file, the line and what is wrong, before starting
 * anything. Also the key table itself (sane, the one range of each key,
 * the same as the tcp plugin's), cfg_parse_size() on its own, and the
 * example configs in etc/ loading.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cfg.h"
#include "cluster.h"
#include "loader.h"
#include "log.h"

static const char good_tail[] =
	"transports = { order = [ \"tcp\" ]; dir = \"%s/plugins\";\n"
	"  tcp = { listen = \"127.0.0.1:1\"; }; };\n"
	"peers = ( { id = 1; tcp = \"127.0.0.1:2\"; } );\n";


/* The source tree (README.md, etc/): where make runs the tests. */
static const char *src_dir(void)
{
	const char *s = getenv("PM_SRC");

	return s && *s ? s : ".";
}

/* body into a fresh file; its path in path (the caller unlinks it). */
static void write_tmp(char *path, size_t len, const char *body)
{
	FILE *f;
	int fd;

	snprintf(path, len, "/tmp/pm-cfg-test-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(body, f);
	assert_int_equal(fclose(f), 0);
}

/* cfg_load of body: its return, the message in err. */
static int load_text(const char *body, char *err, size_t errlen)
{
	struct cfg *c = calloc(1, sizeof(*c));
	char path[64];
	int r;

	assert_non_null(c);
	write_tmp(path, sizeof(path), body);
	err[0] = '\0';
	r = cfg_load(path, c, err, errlen);
	cfg_free(c);
	free(c);
	unlink(path);
	return r;
}

static const char good_head[] =
	"node = { id = 0; };\n"
	"cluster = { name = \"t\"; nodes = 2; memory = \"64M\"; };\n";

/* Write body (with the transports tail appended when tail is set) to a
 * file, run pagemesh node on it, and check exit code and message. */
static void expect_config_error(const char *body, bool tail,
				const char *want_line, const char *want_text)
{
	char dir[] = "/tmp/pm-cfg-XXXXXX", path[300], cmd[1200], out[4096];
	FILE *f, *p;
	size_t n;
	int st;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/bad.cfg", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(body, f);
	if (tail)
		fprintf(f, good_tail, cl_build());
	fclose(f);
	snprintf(cmd, sizeof(cmd),
		 "timeout 20 %s/pagemesh node -c %s 2>&1; echo \"exit=$?\"",
		 cl_build(), path);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	st = pclose(p);
	assert_int_equal(st, 0);
	printf("    %s", out);
	if (!strstr(out, "exit=78"))
		fail_msg("expected exit code 78, got: %s", out);
	if (want_line) {
		char loc[400];

		snprintf(loc, sizeof(loc), "%s:%s:", path, want_line);
		if (!strstr(out, loc))
			fail_msg("expected '%s' in: %s", loc, out);
	}
	if (want_text && !strstr(out, want_text))
		fail_msg("expected '%s' in: %s", want_text, out);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_wrong_type(void **state)
{
	(void)state;
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\";\n"
			    "  nodes = \"three\"; memory = \"64M\"; };\n",
			    true, "3", "cluster.nodes: expected an integer");
}

static void test_missing_key(void **state)
{
	(void)state;
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2; };\n",
			    true, "2", "missing key 'cluster.memory'");
}

static void test_unknown_transport(void **state)
{
	(void)state;
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2; memory = \"64M\"; };\n"
			    "transports = { order = [ \"carrier-pigeon\" ]; };\n",
			    false, "3", "unknown transport 'carrier-pigeon'");
}

static void test_unknown_peer_transport(void **state)
{
	(void)state;
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2; memory = \"64M\"; };\n"
			    "transports = { order = [ \"tcp\" ]; };\n"
			    "peers = ( { id = 1;\n"
			    "  udp = \"127.0.0.1:2\"; } );\n",
			    false, "5", "unknown transport 'udp'");
}

static void test_node_id_range(void **state)
{
	(void)state;
	expect_config_error("node = { id = 5; };\n"
			    "cluster = { name = \"t\"; nodes = 3; memory = \"64M\"; };\n",
			    true, "1", "node.id: 5 is out of range [0, 2]");
}

static void test_unaligned_memory(void **state)
{
	(void)state;
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2;\n"
			    "  memory = 100001L; };\n",
			    true, "3", "not a positive multiple of the page size");
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2;\n"
			    "  memory = \"12 pages\"; };\n",
			    true, "3", "is not a size");
}

static void test_syntax_error(void **state)
{
	(void)state;
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes == 2; };\n",
			    false, "2", "cannot parse: syntax error");
}

static void test_missing_peer(void **state)
{
	(void)state;
	/* Three nodes but only one peer listed and no coordinator. */
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 3; memory = \"64M\"; };\n",
			    true, NULL, "peers lists no endpoint (and no coordinator is configured) for node(s) 2");
}

static void test_parse_size(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(cfg_parse_size("256M", &v), 0);
	assert_true(v == 256ull << 20);
	assert_int_equal(cfg_parse_size("4096", &v), 0);
	assert_true(v == 4096);
	assert_int_equal(cfg_parse_size("1G", &v), 0);
	assert_true(v == 1ull << 30);
	assert_int_equal(cfg_parse_size("64KiB", &v), 0);
	assert_true(v == 64ull << 10);
	assert_int_equal(cfg_parse_size("", &v), -EINVAL);
	assert_int_equal(cfg_parse_size("-1M", &v), -EINVAL);
	assert_int_equal(cfg_parse_size("12Q", &v), -EINVAL);
	assert_int_equal(cfg_parse_size("99999999999999999999", &v), -EINVAL);
	assert_int_equal(cfg_parse_size("20000000000T", &v), -EINVAL);
}

/* --- unknown keys --------------------------------------------------------- */

static void test_typo_keys(void **state)
{
	(void)state;
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2; memory = \"64M\"; };\n"
			    "pager = { threds = 4; prefech = 2; };\n",
			    true, "3",
			    "unknown key 'pager.threds' (did you mean 'pager.threads'?)");
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2; memory = \"64M\"; };\n"
			    "pager = { threads = 4;\n"
			    "  prefech = 2; };\n",
			    true, "4",
			    "unknown key 'pager.prefech' (did you mean 'pager.prefetch'?)");
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2; memory = \"64M\"; };\n"
			    "\n"
			    "clustr = { startup_timeout_ms = 1000; };\n",
			    true, "4",
			    "unknown key 'clustr' (did you mean 'cluster'?)");
}

/* A built-in plugin's group: its keys are in the table. */
static void test_plugin_group_typo(void **state)
{
	(void)state;
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 1; memory = \"64M\"; };\n"
			    "transports = { order = [ \"tcp\" ];\n"
			    "  tcp = { lisen = \"127.0.0.1:1\"; }; };\n",
			    false, "4",
			    "unknown key 'transports.tcp.lisen' (did you mean 'transports.tcp.listen'?)");
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 1; memory = \"64M\"; };\n"
			    "transports = { order = [ \"rdma\", \"tcp\" ];\n"
			    "  tcp = { listen = \"127.0.0.1:1\"; };\n"
			    "  rdma = { dept = 8; }; };\n",
			    false, "5",
			    "unknown key 'transports.rdma.dept' (did you mean 'transports.rdma.depth'?)");
	/* A group for a transport that is neither known nor in the order. */
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 1; memory = \"64M\"; };\n"
			    "transports = { order = [ \"tcp\" ];\n"
			    "  tcp = { listen = \"127.0.0.1:1\"; };\n"
			    "  tpc = { listen = \"127.0.0.1:2\"; }; };\n",
			    false, "5",
			    "unknown key 'transports.tpc' (did you mean 'transports.tcp'?)");
}

static void test_unknown_key_hints(void **state)
{
	char err[1024];

	(void)state;
	/* Nothing close: the group's keys instead of a guess. */
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2; memory = \"64M\"; };\n"
			    "pager = { frobnicate = 1; };\n",
			    true, "3",
			    "unknown key 'pager.frobnicate' (pager takes threads, timeout_ms, prefetch, migratory, local_limit, policy)");
	/* The right key in the wrong group. */
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2;\n"
			    "  memory = \"64M\"; threads = 2; };\n",
			    true, "3",
			    "unknown key 'cluster.threads' (did you mean 'pager.threads'?)");
	/* A peer's transport, against transports.order. */
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2; memory = \"64M\"; };\n"
			    "transports = { order = [ \"tcp\" ]; };\n"
			    "peers = ( { id = 1;\n"
			    "  tpc = \"127.0.0.1:2\"; } );\n",
			    false, "5", "did you mean 'tcp'?");
	/* A third-party transport's group is its plugin's to check. */
	snprintf(err, sizeof(err), "%s"
		 "transports = { order = [ \"mine\" ];\n"
		 "  mine = { anything = 1; }; };\n"
		 "peers = ( { id = 1; mine = \"x\"; } );\n", good_head);
	assert_int_equal(load_text(err, err, sizeof(err)), 0);
}

/* --- ranges: one per key, the same for every reader ----------------------- */

static void test_ranges_from_table(void **state)
{
	char dir[] = "/tmp/pm-cfg-XXXXXX", path[300], cmd[1200], out[4096];
	const struct cfg_key *k = cfg_key_find("coordinator.ttl_ms");
	char range[64];
	FILE *f, *p;
	size_t n;

	(void)state;
	assert_non_null(k);
	snprintf(range, sizeof(range), "[%lld, %lld]", (long long)k->min,
		 (long long)k->max);
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2; memory = \"64M\"; };\n"
			    "pager = { threads = 0; };\n",
			    true, "3", "pager.threads: 0 is out of range [1, 64]");
	/* coordinator.ttl_ms in a node's config ... */
	snprintf(cmd, sizeof(cmd),
		 "node = { id = 0; };\n"
		 "cluster = { name = \"t\"; nodes = 2; memory = \"64M\"; };\n"
		 "coordinator = { url = \"http://127.0.0.1:1\";\n"
		 "  ttl_ms = %lld; };\n", (long long)k->min - 1);
	snprintf(out, sizeof(out), "coordinator.ttl_ms: %lld is out of range %s",
		 (long long)k->min - 1, range);
	expect_config_error(cmd, true, "4", out);

	/* ... in the coordinator's own file, and as its flag. */
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/coord.cfg", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "coordinator = { listen = \"127.0.0.1:0\";\n"
		"  ttl_ms = %lld; };\n", (long long)k->min - 1);
	fclose(f);
	snprintf(cmd, sizeof(cmd),
		 "timeout 20 %s/pagemesh coordinator -c %s 2>&1; echo \"exit=$?\"; "
		 "timeout 20 %s/pagemesh coordinator --listen 127.0.0.1:0 --ttl-ms %lld 2>&1; echo \"exit=$?\"",
		 cl_build(), path, cl_build(), (long long)k->min - 1);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	pclose(p);
	printf("    %s", out);
	snprintf(cmd, sizeof(cmd), "%s:2: coordinator.ttl_ms: %lld is out of range %s\nexit=78\n",
		 path, (long long)k->min - 1, range);
	if (!strstr(out, cmd))
		fail_msg("expected '%s' in: %s", cmd, out);
	snprintf(cmd, sizeof(cmd), "expected milliseconds in %s\nexit=2\n",
		 range);
	if (!strstr(out, cmd))
		fail_msg("expected '%s' in: %s", cmd, out);
	unlink(path);
	rmdir(dir);
}

/* The table's ranges of tcp's keys are the plugin's own: at each end of
 * them init passes, one past it fails. */
static void test_tcp_ranges_match_plugin(void **state)
{
	static const char *const keys[] = { "transports.tcp.send_timeout_ms",
					    "transports.tcp.max_conns" };
	struct pm_plugin *pl = calloc(1, sizeof(*pl));
	struct cfg *c = calloc(1, sizeof(*c));
	char path[64], so[PATH_MAX], err[512];
	size_t i;
	int end;

	(void)state;
	assert_non_null(pl);
	assert_non_null(c);
	snprintf(so, sizeof(so), "%s/plugins/tcp.so", cl_build());
	if (access(so, F_OK)) {
		print_message("SKIP: %s not built\n", so);
		free(pl);
		free(c);
		skip();
	}
	pm_log_default.level = -1;	/* the refusals are the point */
	write_tmp(path, sizeof(path),
		  "node = { id = 0; };\n"
		  "cluster = { name = \"t\"; nodes = 1; memory = \"64M\"; };\n"
		  "transports = { order = [ \"tcp\" ];\n"
		  "  tcp = { listen = \"127.0.0.1:0\"; send_timeout_ms = 1;\n"
		  "          max_conns = 1; }; };\n");
	assert_int_equal(cfg_load(path, c, err, sizeof(err)), 0);
	unlink(path);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const struct cfg_key *k = cfg_key_find(keys[i]);
		config_setting_t *s = config_lookup(&c->lc, keys[i]);

		assert_non_null(k);
		assert_non_null(s);
		for (end = 0; end < 4; end++) {
			int64_t v = end == 0 ? k->min : end == 1 ? k->max :
				    end == 2 ? k->min - 1 : k->max + 1;

			assert_int_equal(config_setting_set_int64(s, v),
					 CONFIG_TRUE);
			assert_int_equal(loader_open_path(pl, so, "tcp", c, 0),
					 0);
			if (pl->ops->init(&pl->host, &pl->ctx) == 0) {
				if (end >= 2)
					fail_msg("tcp took %s = %lld, outside the table's range",
						 keys[i], (long long)v);
			} else {
				pl->ctx = NULL;
				if (end < 2)
					fail_msg("tcp refused %s = %lld, inside the table's range",
						 keys[i], (long long)v);
			}
			loader_close(pl);
		}
		config_setting_set_int64(s, k->def);
	}
	pm_log_default.level = PM_LOG_INFO;
	cfg_free(c);
	free(c);
	free(pl);
}

#define CHECK(k, cond)							\
	do {								\
		if (!(cond))						\
			fail_msg("%s: not so: %s", (k)->name, #cond);	\
	} while (0)

/* Every entry is one cfg_load can use and the README can show. */
static void test_table_sane(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; i < cfg_n_keys; i++) {
		const struct cfg_key *k = &cfg_keys[i];
		const char *prev = i ? cfg_keys[i - 1].name : "";
		const char *dot = strrchr(k->name, '.');
		size_t pl = dot ? (size_t)(dot - k->name) : 0;
		char why[128];

		CHECK(k, k->doc && *k->doc);
		CHECK(k, k->min <= k->max || k->type == CFG_T_STRING ||
			 k->type == CFG_T_CHOICE);
		for (j = 0; j < i; j++)
			CHECK(k, strcmp(cfg_keys[j].name, k->name));
		/* A group's keys stand together (the hints list them so). */
		for (j = 0; pl && strncmp(prev, k->name, pl) && j + 1 < i; j++)
			CHECK(k, strncmp(cfg_keys[j].name, k->name, pl) ||
				 cfg_keys[j].name[pl] != '.');
		if (k->flags & CFG_K_REQUIRED)
			CHECK(k, k->unset && !strcmp(k->unset, "required"));
		if (!k->unset && (k->type == CFG_T_INT ||
				  k->type == CFG_T_SIZE))
			CHECK(k, !cfg_key_check(k->name, k->def, why,
						sizeof(why)));
		if (k->type == CFG_T_CHOICE)
			CHECK(k, k->def_str && k->form &&
				 strstr(k->form, k->def_str));
		if (k->len) {
			CHECK(k, k->type != CFG_T_INT || k->len == sizeof(int));
			CHECK(k, k->type != CFG_T_SIZE ||
				 k->len == sizeof(uint64_t));
			CHECK(k, k->off + k->len <= sizeof(struct cfg));
			CHECK(k, !k->def_str || strlen(k->def_str) < k->len);
		}
	}
}

/* --- what libconfig would misread ----------------------------------------- */

static void test_truncated_int(void **state)
{
	char err[1024];

	(void)state;
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2;\n"
			    "  memory = 4294971392; };\n",
			    true, "3",
			    "cluster.memory: 4294971392 does not fit in 32 bits, and libconfig would read it as 4096: write 4294971392L or a string like \"4G\"");
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2; memory = \"64M\";\n"
			    "  startup_timeout_ms = 0x100000010; };\n",
			    true, "3",
			    "cluster.startup_timeout_ms: 0x100000010 does not fit in 32 bits, and libconfig would read it as 16");
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2; memory = \"64M\"; };\n"
			    "pager = { timeout_ms = -2147483649; };\n",
			    true, "3", "pager.timeout_ms: -2147483649 does not fit in 32 bits");
	/* The same digits where libconfig reads them right. */
	snprintf(err, sizeof(err), "%s"
		 "# memory = 4294971392;\n"
		 "pager = { local_limit = 4294971392L; /* not 4294971392 */\n"
		 "  policy = \"fifo\"; }; // 4294971392\n"
		 "metrics = { listen = \"127.0.0.1:4294971392\"; };\n"
		 "vm = { cmdline = \"mem=4294971392\"; };\n"
		 "transports = { order = [ \"tcp\" ]; };\n"
		 "peers = ( { id = 1; tcp = \"127.0.0.1:2\"; } );\n",
		 good_head);
	assert_int_equal(load_text(err, err, sizeof(err)), 0);
}

/* --- sizes ---------------------------------------------------------------- */

static void test_size_strings(void **state)
{
	static const char *const bad[] = {
		" 4096", "4096B", "4096 ", "+4096", "4KB", "4 K", "0x1000",
		"4Ki", "4iB", "K", "4.5M",
	};
	uint64_t v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cfg_parse_size(bad[i], &v) != -EINVAL)
			fail_msg("'%s' taken as a size (%llu)", bad[i],
				 (unsigned long long)v);
	assert_int_equal(cfg_parse_size("4k", &v), 0);
	assert_true(v == 4096);
	assert_int_equal(cfg_parse_size("2TiB", &v), 0);
	assert_true(v == 2ull << 40);
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2;\n"
			    "  memory = \" 64M\"; };\n",
			    true, "3", "cluster.memory: ' 64M' is not a size");
	expect_config_error("node = { id = 0; };\n"
			    "cluster = { name = \"t\"; nodes = 2; memory = \"64M\"; };\n"
			    "pager = { local_limit = \"4096B\"; };\n",
			    true, "3", "pager.local_limit: '4096B' is not a size");
}

/* A key file refused for its mode: the line of security.key_file. */
static void test_key_file_line(void **state)
{
	char key[] = "/tmp/pm-cfg-key-XXXXXX", body[1024];
	int fd;

	(void)state;
	fd = mkstemp(key);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789abcdef0123456789abcdef", 32),
			 32);
	assert_int_equal(fchmod(fd, 0644), 0);
	close(fd);
	snprintf(body, sizeof(body),
		 "node = { id = 0; };\n"
		 "cluster = { name = \"t\"; nodes = 2; memory = \"64M\"; };\n"
		 "security = {\n"
		 "  key_file = \"%s\"; };\n", key);
	expect_config_error(body, true, "4", "has mode 0644");
	unlink(key);
}

/* --- the example configs -------------------------------------------------- */

static void test_etc_configs_load(void **state)
{
	char dir[PATH_MAX], path[PATH_MAX + 300], err[1024];
	struct cfg *c = calloc(1, sizeof(*c));
	struct dirent *e;
	int n = 0;
	DIR *d;

	(void)state;
	assert_non_null(c);
	snprintf(dir, sizeof(dir), "%s/etc", src_dir());
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);

		if (l < 5 || strcmp(e->d_name + l - 4, ".cfg"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (cfg_load(path, c, err, sizeof(err)))
			fail_msg("%s does not load: %s", path, err);
		cfg_free(c);
		n++;
	}
	closedir(d);
	free(c);
	assert_true(n >= 5);
}

/* --- the README's configuration reference --------------------------------- */

/* The README's row of k: key, meaning, values, default. */
static void readme_row(const struct cfg_key *k, char *buf, size_t len)
{
	char values[512], def[256];

	cfg_key_values(k, values, sizeof(values));
	cfg_key_default(k, def, sizeof(def));
	snprintf(buf, len, "| `%s` | %s | %s | %s |", k->name, k->doc, values,
		 def);
}

static void print_readme_table(FILE *f)
{
	char row[2048];
	size_t i;

	fprintf(f, "| key | meaning | values | default |\n"
		"| --- | --- | --- | --- |\n");
	for (i = 0; i < cfg_n_keys; i++) {
		readme_row(&cfg_keys[i], row, sizeof(row));
		fprintf(f, "%s\n", row);
	}
}

/* README.md's section "## Configuration reference", NUL-terminated. */
static char *readme_section(void)
{
	char path[PATH_MAX], *text, *start, *end;
	size_t n = 0, cap = 1 << 20;
	FILE *f;

	snprintf(path, sizeof(path), "%s/README.md", src_dir());
	f = fopen(path, "r");
	if (!f)
		fail_msg("%s: %s (PM_SRC names the source tree)", path,
			 strerror(errno));
	text = malloc(cap + 1);
	assert_non_null(text);
	n = fread(text, 1, cap, f);
	fclose(f);
	text[n] = '\0';
	start = strstr(text, "\n## Configuration reference\n");
	assert_non_null(start);
	end = strstr(start + 1, "\n## ");
	if (end)
		*end = '\0';
	memmove(text, start, strlen(start) + 1);
	return text;
}

/*
 * Docs cannot drift from the table: each key's row in the README is the one
 * the table makes (default and range included), and the README documents
 * no key the table lacks. `config_test --readme-table` prints the rows.
 */
static void test_readme_matches_table(void **state)
{
	char *sec = readme_section(), *line, *save = NULL, row[2048];
	int bad = 0;
	size_t i;

	(void)state;
	for (i = 0; i < cfg_n_keys; i++) {
		readme_row(&cfg_keys[i], row, sizeof(row));
		if (!strstr(sec, row)) {
			print_message("README lacks, or has another row for:\n%s\n",
				      row);
			bad++;
		}
	}
	for (line = strtok_r(sec, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char key[128];
		const char *end;

		if (strncmp(line, "| `", 3))
			continue;
		end = strstr(line + 3, "` |");
		assert_non_null(end);
		snprintf(key, sizeof(key), "%.*s", (int)(end - line - 3),
			 line + 3);
		if (!cfg_key_find(key)) {
			print_message("README documents '%s', which is not in the key table\n",
				      key);
			bad++;
		}
	}
	free(sec);
	if (bad) {
		print_message("the table as the README should have it (build/tests/config_test --readme-table):\n");
		print_readme_table(stdout);
		fail_msg("%d README rows differ from the key table", bad);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wrong_type),
		cmocka_unit_test(test_missing_key),
		cmocka_unit_test(test_unknown_transport),
		cmocka_unit_test(test_unknown_peer_transport),
		cmocka_unit_test(test_node_id_range),
		cmocka_unit_test(test_unaligned_memory),
		cmocka_unit_test(test_syntax_error),
		cmocka_unit_test(test_missing_peer),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_typo_keys),
		cmocka_unit_test(test_plugin_group_typo),
		cmocka_unit_test(test_unknown_key_hints),
		cmocka_unit_test(test_ranges_from_table),
		cmocka_unit_test(test_tcp_ranges_match_plugin),
		cmocka_unit_test(test_table_sane),
		cmocka_unit_test(test_truncated_int),
		cmocka_unit_test(test_size_strings),
		cmocka_unit_test(test_key_file_line),
		cmocka_unit_test(test_etc_configs_load),
		cmocka_unit_test(test_readme_matches_table),
	};

	if (argc > 1 && !strcmp(argv[1], "--readme-table")) {
		print_readme_table(stdout);
		return 0;
	}

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
