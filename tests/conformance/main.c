// SPDX-License-Identifier: MIT
/*
 * Transport conformance suite: `conformance PLUGIN.so` runs the whole
 * transport ABI against one plugin, the way the core uses it (fabtests-style:
 * the same program for every transport).
 *
 * Each test starts its own server and client instances of the plugin in this
 * process. The server's handler understands a tiny command set carried at the
 * start of a request's core message (see struct cmd); anything else is
 * echoed with every byte XORed with 0xA5, so a reply cannot pass for the
 * request it answers. Calls are verified byte for byte.
 *
 * Environment:
 *   PM_CONFORMANCE_LISTEN  listen address given to each instance
 *                          ("127.0.0.1:0" by default)
 *   PM_CONFORMANCE_FRAME   "none" skips the cases that speak the shared
 *                          stream frame (plugins/common/frame.h) on raw
 *                          sockets, for a stream transport with its own
 *   PM_CONFORMANCE_SEED    seed of the random data (printed every run)
 * The raw-socket cases run only when the endpoint is HOST:PORT and the
 * plugin is not an RDMA transport (PM_CAP_RDMA): a stream transport.
 *
 * The cases live in this folder one feature to a file (conformance.h says
 * which file holds which); main() lists them in the order they run.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conformance.h"

struct pm_plugin plug;
const struct pm_transport_ops *ops;
bool usable;
char listen_addr[PM_ENDPOINT_MAX] = "127.0.0.1:0";
bool frame_checks = true;
uint64_t seed;

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_init_fini_repeat),
		cmocka_unit_test(test_listen_endpoint),
		cmocka_unit_test(test_call_sizes),
		cmocka_unit_test(test_reply_too_big),
		cmocka_unit_test(test_reply_msg_too_big),
		cmocka_unit_test(test_remote_status),
		cmocka_unit_test(test_concurrent_calls),
		cmocka_unit_test(test_concurrent_connections),
		cmocka_unit_test(test_deferred_out_of_order),
		cmocka_unit_test(test_call_timeout),
		cmocka_unit_test(test_peer_gone_mid_call),
		cmocka_unit_test(test_reconnect),
		cmocka_unit_test(test_drop),
		cmocka_unit_test(test_on_close_once),
		cmocka_unit_test(test_reply_unknown_conn),
		cmocka_unit_test(test_disconnect_inflight),
		cmocka_unit_test(test_fini_inflight),
		cmocka_unit_test(test_raw_valid_frame),
		cmocka_unit_test(test_raw_garbage),
		cmocka_unit_test(test_raw_bad_magic),
		cmocka_unit_test(test_raw_bad_lengths),
		cmocka_unit_test(test_raw_bad_kind),
		cmocka_unit_test(test_raw_huge_payload),
		cmocka_unit_test(test_raw_truncated_stall),
		cmocka_unit_test(test_raw_half_frame_close),
		cmocka_unit_test(test_handshake_silent),
		cmocka_unit_test(test_handshake_slowloris),
		cmocka_unit_test(test_handshake_stall_after_request),
		cmocka_unit_test(test_handshake_frees_slots),
	};
	const char *env, *base;
	char name[CFG_NAME_MAX], group[CFG_NAME_MAX + 16];
	size_t n;

	if (argc != 2 || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "--help")) {
		fprintf(argc == 2 ? stdout : stderr,
			"usage: conformance PLUGIN.so\n"
			"Runs the transport ABI conformance suite against one plugin.\n"
			"env: PM_CONFORMANCE_LISTEN (default 127.0.0.1:0),\n"
			"     PM_CONFORMANCE_FRAME=none, PM_CONFORMANCE_SEED\n");
		return argc == 2 ? 0 : 2;
	}
	env = getenv("PM_CONFORMANCE_LISTEN");
	if (env && *env)
		snprintf(listen_addr, sizeof(listen_addr), "%s", env);
	env = getenv("PM_CONFORMANCE_FRAME");
	frame_checks = !(env && !strcmp(env, "none"));
	env = getenv("PM_CONFORMANCE_SEED");
	seed = env && *env ? strtoull(env, NULL, 0) :
		(uint64_t)pm_now_ns() ^ ((uint64_t)getpid() << 32);
	if (!seed)
		seed = 1;

	/* the transport's name: the file name without directory and .so */
	base = strrchr(argv[1], '/');
	base = base ? base + 1 : argv[1];
	snprintf(name, sizeof(name), "%s", base);
	n = strlen(name);
	if (n > 3 && !strcmp(name + n - 3, ".so"))
		name[n - 3] = '\0';

	loader_open_path(&plug, argv[1], name, NULL, 0);
	ops = plug.ops;
	usable = plug.usable;
	printf("conformance: %s (%s), listen %s, seed 0x%" PRIx64 "\n",
	       argv[1], name, listen_addr, seed);
	if (ops && !usable)
		printf("conformance: SKIP: %s: %s: every test after test_load is skipped\n",
		       argv[1], plug.why);
	fflush(stdout);
	snprintf(group, sizeof(group), "conformance-%s", name);
	n = cmocka_run_group_tests_name(group, tests, NULL, NULL);
	/* A failed test leaves its fixture behind, and with it plugin
	 * threads that may still run: unloading the plugin under them
	 * would turn the failure into a crash at exit. */
	if (!n)
		loader_close(&plug);
	return n ? 1 : 0;
}
