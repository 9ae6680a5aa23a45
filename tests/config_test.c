// SPDX-License-Identifier: MIT
/*
 * Bad configuration files: `pagemesh node -c FILE` must exit 78 with a
 * message naming the file, the line and what is wrong, before starting
 * anything. Also cfg_parse_size() on its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cfg.h"
#include "cluster.h"

static const char good_tail[] =
	"transports = { order = [ \"tcp\" ]; dir = \"%s/plugins\";\n"
	"  tcp = { listen = \"127.0.0.1:1\"; }; };\n"
	"peers = ( { id = 1; tcp = \"127.0.0.1:2\"; } );\n";

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

int main(void)
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
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
