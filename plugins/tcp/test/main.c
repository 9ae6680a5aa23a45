// SPDX-License-Identifier: MIT
/*
 * Tests of the tcp transport beyond the shared conformance suite: endpoint
 * parsing (plugins/common/net.h), its settings, frames split or pipelined
 * on the wire, a peer that stops reading, replies racing drop(), many
 * connections and a bound on them, which calls a closing peer gets sent
 * again. Real sockets on loopback; build/plugins/tcp.so via dlopen.
 *
 * The cases live in this folder one feature to a file (tt_test.h says
 * which file holds which); main() lists them in the order they run.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "tt_test.h"

const struct pm_transport_ops *ops;
static void *dl;

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_endpoints),
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_split_and_pipelined),
		cmocka_unit_test(test_slow_reader_dropped),
		cmocka_unit_test(test_reply_races_drop),
		cmocka_unit_test(test_many_connections),
		cmocka_unit_test(test_max_conns),
		cmocka_unit_test(test_max_conns_displace),
		cmocka_unit_test(test_fini_waits_for_replies),
		cmocka_unit_test(test_caller_reads_itself),
		cmocka_unit_test(test_concurrent_large),
		cmocka_unit_test(test_redial_black_hole),
		cmocka_unit_test(test_idle_close_resends),
		cmocka_unit_test(test_read_then_close_fails),
		cmocka_unit_test(test_reset_fails),
	};
	const char *b = getenv("PM_BUILD");
	char path[4096];
	pm_transport_entry_fn entry;
	int r;

	snprintf(path, sizeof(path), "%s/plugins/tcp.so", b ? b : "build");
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		fprintf(stderr, "tt_test: %s\n", dlerror());
		return 1;
	}
	entry = (pm_transport_entry_fn)dlsym(dl, PM_TRANSPORT_ENTRY_NAME);
	if (!entry) {
		fprintf(stderr, "tt_test: %s: no %s\n", path,
			PM_TRANSPORT_ENTRY_NAME);
		return 1;
	}
	ops = entry();
	r = cmocka_run_group_tests_name("tcp transport", tests, NULL, NULL);
	dlclose(dl);
	return r;
}
