// SPDX-License-Identifier: MIT
/*
 * Transport conformance suite, installed as pagemesh-conformance: runs the
 * whole transport ABI against one plugin, the way the core uses it
 * (fabtests-style: the same program for every transport).
 *
 * Each case starts its own server and client instances of the plugin in
 * this process. The server's handler understands a tiny command set carried
 * at the start of a request's core message (see struct cmd); anything else
 * is echoed with every byte XORed with 0xA5, so a reply cannot pass for the
 * request it answers. Calls are verified byte for byte, and every call's
 * return is timed against its deadline (PM_CALL_LATE_MS).
 *
 * The cases live in this folder one feature to a file (conformance.h says
 * which file holds which); cases[] below lists them in the order they run,
 * with what each checks and the ABI rule it enforces (--help prints them).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conformance.h"

struct pm_plugin plug;
const struct pm_transport_ops *ops;
bool usable;
char listen_addr[PM_ENDPOINT_MAX];
const char *listen_from = "";
bool frame_checks = true;
uint64_t seed;

/* What a case needs of the plugin to be part of its suite at all. */
enum {
	NEEDS_FRAME = 1,	/* speaks plugins/common/frame.h on TCP */
};

struct case_def {
	const char *name;
	CMUnitTestFunction fn;
	const char *checks;
	const char *rule;
	unsigned needs;
};

#define CASE(n, c, r) { #n, n, c, r, 0 }
/* A case of the built-in stream framing, for frame.h transports only. */
#define FRAME_CASE(n, c, r) { #n, n, c, r, NEEDS_FRAME }
static const struct case_def cases[] = {
	CASE(test_load, "the entry symbol returns one static table of ABI major 1, at least 1.0's size",
	     "versioning: one entry symbol, size first, ops only appended"),
	CASE(test_probe, "probe is cheap and repeatable, and respects the reason buffer's length",
	     "probe: no side effects, a reason string"),
	CASE(test_any_listen, "any_listen names an address many instances listen on at once, and an endpoint is accepted back as a listen string",
	     "1.1 any_listen; endpoints are listen strings"),
	CASE(test_init_fini_repeat, "init/fini and init/listen/fini, ten and five times over",
	     "fini frees everything and joins every thread"),
	CASE(test_listen_endpoint, "endpoint() fits its buffer exactly (-ENOSPC else), fails before listen(), and connect() rejects garbage",
	     "endpoint() before listen(); -ENOSPC; connect -EINVAL"),
	CASE(test_call_sizes, "every message size 0..PM_MSG_MAX against payloads 0..PM_PAYLOAD_MAX, byte for byte",
	     "call/reply move the exact bytes, never past the buffers"),
	CASE(test_reply_too_big, "a reply payload larger than payload_cap is -EMSGSIZE and writes nothing past the buffer",
	     "call: -EMSGSIZE"),
	CASE(test_reply_msg_too_big, "a reply message larger than msg_cap is -EMSGSIZE",
	     "call: -EMSGSIZE"),
	CASE(test_remote_status, "statuses -1..-4095 come back unchanged; out-of-range statuses are refused by reply()",
	     "reply status range: 0 or -PM_STATUS_MAX..-1"),
	CASE(test_exactly_once, "each request reaches on_request exactly once, in order, one at a time per connection",
	     "at most once; per-connection order and concurrency of on_request"),
	CASE(test_concurrent_calls, "8 threads x 500 calls on one connection",
	     "call is thread-safe, many calls in flight per connection"),
	CASE(test_concurrent_connections, "8 connections x 200 calls, on_request concurrent across connections",
	     "on_request may run concurrently for different connections"),
	CASE(test_deferred_out_of_order, "replies from another thread, in reverse and random order",
	     "reply from any thread, later; replies matched by id"),
	CASE(test_call_timeout, "a call without a reply returns -ETIMEDOUT within PM_CALL_LATE_MS of its deadline; the late reply is discarded",
	     "late completions: at most PM_CALL_LATE_MS after the deadline"),
	CASE(test_peer_gone_mid_call, "a call in flight fails fast when its peer goes away, and so does the next",
	     "at most once: a request in flight is failed, never resent"),
	CASE(test_no_resend, "a request the peer saw is not sent again when its connection breaks; the call fails with -ECONNRESET or -EPIPE",
	     "at most once: never resend a request the peer may have seen"),
	CASE(test_reconnect, "after the peer restarts on its endpoint, the old connection's next call reaches it",
	     "connect: the next call redials once"),
	CASE(test_drop, "drop() ends one incoming connection with one on_close; -ENOENT after; the client redials",
	     "drop/on_close: on_close follows drop, never inside it"),
	CASE(test_drop_in_handler, "drop() of its own connection from inside on_request, then on_close from a plugin thread",
	     "drop may be called from on_request; on_close never inside drop"),
	CASE(test_on_close_once, "one on_close per incoming connection, by the end of fini",
	     "fini delivers every incoming connection's on_close"),
	CASE(test_reply_unknown_conn, "reply() to an unknown connection is -ENOTCONN, drop() -ENOENT",
	     "reply/drop on unknown ids"),
	CASE(test_disconnect_inflight, "disconnect with calls in flight fails them with -ESHUTDOWN and waits for them",
	     "disconnect: -ESHUTDOWN"),
	CASE(test_fini_inflight, "fini with calls in flight fails them with -ESHUTDOWN and frees the connection",
	     "fini frees outgoing connections, wakes their calls"),
	CASE(test_corrupt_input, "malformed requests in the plugin's own framing (test_corrupt): the connection is dropped, the core gets nothing of them, others are served",
	     "malformed frames: disconnect, log, keep serving"),
	FRAME_CASE(test_raw_valid_frame, "a hand-made frame of plugins/common/frame.h on a raw socket is served",
	     "built-in stream framing"),
	FRAME_CASE(test_raw_garbage, "garbage on a raw socket: dropped, others served",
	     "malformed frames: disconnect, log, keep serving"),
	FRAME_CASE(test_raw_bad_magic, "a frame with a wrong magic: dropped", "malformed frames"),
	FRAME_CASE(test_raw_bad_lengths, "frames whose lengths lie: dropped", "every length checked before use"),
	FRAME_CASE(test_raw_bad_kind, "a frame of an unknown kind: dropped", "malformed frames"),
	FRAME_CASE(test_raw_huge_payload, "a frame claiming a huge payload: dropped without allocating it",
	     "every length checked before use"),
	FRAME_CASE(test_raw_truncated_stall, "a frame cut short and left: dropped once stalled", "malformed frames"),
	FRAME_CASE(test_raw_half_frame_close, "half a frame, then the end: dropped", "malformed frames"),
	CASE(test_handshake_silent, "a peer that connects and says nothing is dropped after handshake_timeout_ms",
	     "stream listeners: bounded handshakes"),
	CASE(test_handshake_slowloris, "a first request trickled in is dropped after handshake_timeout_ms",
	     "stream listeners: bounded handshakes"),
	CASE(test_handshake_stall_after_request, "after a request, a stalled frame is bounded by stall_timeout_ms, not the handshake bound",
	     "stream listeners: live peers are not dropped"),
	CASE(test_handshake_frees_slots, "silent peers holding max_conns slots are dropped, a real peer gets in",
	     "stream listeners: slots are freed"),
};
#define NCASES ((int)(sizeof(cases) / sizeof(cases[0])))

/* --- per-case bookkeeping: skipped rules, late calls, the watchdog ------ */

static const struct case_def *cur;
static int case_limit_s = 30;
static struct {
	const char *name, *rule;
	char why[200];
	bool unchecked;
} skips[NCASES];
static int nskips;
static int finished;
/* Why the frame.h cases are not part of this plugin's suite ("": they
 * are), and how many of them were left out. */
static char frame_na[240];
static int frame_na_n;

static pthread_mutex_t wd_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cv;
static uint64_t wd_gen;		/* which case is armed; 0 none */
static int64_t wd_deadline;
static int64_t case_t0;

static void print_skips(void)
{
	int i, n = 0;

	for (i = 0; i < nskips; i++)
		n += skips[i].unchecked;
	if (n) {
		printf("conformance: *** %d ABI rule(s) NOT CHECKED for %s ***\n",
		       n, plug.name);
		for (i = 0; i < nskips; i++)
			if (skips[i].unchecked)
				printf("conformance:   %s (%s): %s\n",
				       skips[i].name, skips[i].rule,
				       skips[i].why);
	}
	for (i = 0; i < nskips; i++)
		if (!skips[i].unchecked)
			printf("conformance: not applicable: %s: %s\n",
			       skips[i].name, skips[i].why);
	if (frame_na_n)
		printf("conformance: %d case(s) for frame.h transports not applicable to %s: %s\n",
		       frame_na_n, plug.name, frame_na);
	fflush(stdout);
}

/*
 * Does the plugin speak plugins/common/frame.h on TCP? Decided before any
 * case runs, from what the suite knows without an instance: the
 * environment, PM_CAP_RDMA and the listen string. false, with why, when
 * not. A plugin not loaded, or without a listen string, keeps the cases
 * (they skip, saying why).
 */
static bool speaks_frame(char *why, size_t len)
{
	const char *own = ops && PM_OPS_HAS(ops, test_corrupt) ?
		"; its own framing is checked by test_corrupt_input" :
		"; the plugin has no test_corrupt op (ABI 1.1), see test_corrupt_input";

	if (!frame_checks) {
		snprintf(why, len, "PM_CONFORMANCE_FRAME=none%s", own);
		return false;
	}
	if (!ops || !listen_addr[0])
		return true;
	if (ops->caps & PM_CAP_RDMA) {
		snprintf(why, len, "an RDMA transport (PM_CAP_RDMA)%s", own);
		return false;
	}
	if (!is_stream_listen(listen_addr)) {
		snprintf(why, len, "listen string '%.64s' is no TCP HOST:PORT%s",
			 listen_addr, own);
		return false;
	}
	return true;
}

void case_skip(bool unchecked, const char *fmt, ...)
{
	va_list ap;
	char why[200];

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	print_message("SKIP: %s\n", why);
	if (cur && nskips < NCASES) {
		skips[nskips].name = cur->name;
		skips[nskips].rule = cur->rule;
		skips[nskips].unchecked = unchecked;
		snprintf(skips[nskips].why, sizeof(skips[0].why), "%s", why);
		nskips++;
	}
	skip();
	abort();	/* skip() jumps back into cmocka */
}

void case_unchecked(const char *fmt, ...)
{
	va_list ap;

	if (!cur || nskips >= NCASES)
		return;
	va_start(ap, fmt);
	vsnprintf(skips[nskips].why, sizeof(skips[0].why), fmt, ap);
	va_end(ap);
	print_message("  NOT CHECKED: %s\n", skips[nskips].why);
	skips[nskips].name = cur->name;
	skips[nskips].rule = cur->rule;
	skips[nskips].unchecked = true;
	nskips++;
}

static void *watchdog_main(void *arg)
{
	uint64_t gen;

	(void)arg;
	pthread_mutex_lock(&wd_mu);
	for (;;) {
		struct timespec ts;

		if (!wd_gen) {
			pthread_cond_wait(&wd_cv, &wd_mu);
			continue;
		}
		gen = wd_gen;
		ts.tv_sec = wd_deadline / 1000000000;
		ts.tv_nsec = wd_deadline % 1000000000;
		if (pthread_cond_timedwait(&wd_cv, &wd_mu, &ts) != ETIMEDOUT ||
		    wd_gen != gen)
			continue;
		/* A case overran: the plugin blocked past every deadline it
		 * was given. Its threads may hold the process: end it here. */
		printf("[  TIMEOUT ] %s: still running after %d s (PM_CONFORMANCE_CASE_S): a call, callback or teardown of the plugin blocked past its deadlines\n",
		       cur ? cur->name : "?", case_limit_s);
		printf("conformance: FAILED: %s after %d case(s) finished\n",
		       cur ? cur->name : "?", finished);
		print_skips();
		fflush(stdout);
		_exit(1);
	}
	return NULL;
}

static int case_setup(void **state)
{
	cur = *state;
	late_reset();
	case_t0 = pm_now_ns();
	pthread_mutex_lock(&wd_mu);
	wd_gen++;
	wd_deadline = pm_now_ns() + (int64_t)case_limit_s * 1000000000;
	pthread_cond_broadcast(&wd_cv);
	pthread_mutex_unlock(&wd_mu);
	return 0;
}

static int case_teardown(void **state)
{
	char why[256];

	(void)state;
	pthread_mutex_lock(&wd_mu);
	wd_gen = 0;
	pthread_cond_broadcast(&wd_cv);
	pthread_mutex_unlock(&wd_mu);
	finished++;
	/* say so when a case comes near its bound */
	if (pm_now_ns() - case_t0 > (int64_t)case_limit_s * 1000000000 / 3)
		print_message("  slow: %.1f s of the %d s bound\n",
			      (double)(pm_now_ns() - case_t0) / 1e9,
			      case_limit_s);
	if (late_report(why, sizeof(why))) {
		print_error("%s: %s\n", cur->name, why);
		return -1;
	}
	return 0;
}

/* --- command line ------------------------------------------------------- */

static void usage(FILE *out)
{
	int i;

	fprintf(out,
		"usage: pagemesh-conformance [--listen ADDR] [--only CASE,...] [--skip CASE,...]\n"
		"                            [--list] PLUGIN.so\n"
		"Runs the transport ABI conformance suite against one plugin and prints\n"
		"cmocka's summary; exits 0 if every case run passed, 1 if one failed,\n"
		"2 on a usage error.\n\n"
		"  --listen ADDR  the listen string of every instance: an address on which\n"
		"                 many instances may listen at once (\"any free address\").\n"
		"                 Default: the plugin's any_listen op (ABI 1.1).\n"
		"  --only LIST    run only these cases (comma-separated names)\n"
		"  --skip LIST    run all but these\n"
		"  --list         print the case names and exit; with PLUGIN.so, only\n"
		"                 the cases of its suite, and a line '# not applicable'\n"
		"                 naming those that are not and why\n\n"
		"environment:\n"
		"  PM_CONFORMANCE_LISTEN   as --listen (the option wins)\n"
		"  PM_CONFORMANCE_FRAME    \"none\": the plugin does not speak\n"
		"                          plugins/common/frame.h although its listen\n"
		"                          string is HOST:PORT: the test_raw_* cases are\n"
		"                          not part of its suite (they never are for\n"
		"                          other listen strings, or PM_CAP_RDMA)\n"
		"  PM_CONFORMANCE_SEED     seed of the random data (printed every run)\n"
		"  PM_CONFORMANCE_CASE_S   bound of one case in seconds (30); a case\n"
		"                          past it ends the run as a failure\n\n"
		"Every call is timed: one returning more than PM_CALL_LATE_MS (%d ms)\n"
		"after its deadline fails the case it ran in.\n\n"
		"cases (what each checks; the ABI rule of include/pagemesh/transport.h\n"
		"it enforces):\n", PM_CALL_LATE_MS);
	for (i = 0; i < NCASES; i++)
		fprintf(out, "  %s\n      %s\n      rule: %s\n", cases[i].name,
			cases[i].checks, cases[i].rule);
}

static int find_case(const char *name, size_t n)
{
	int i;

	for (i = 0; i < NCASES; i++)
		if (strlen(cases[i].name) == n &&
		    !strncmp(cases[i].name, name, n))
			return i;
	return -1;
}

/* Mark (val) the cases of a comma-separated list; -1 on an unknown name. */
static int mark_cases(const char *list, bool *sel, bool val, const char *opt)
{
	const char *p = list, *e;
	int i;

	while (*p) {
		e = strchrnul(p, ',');
		if (e > p) {
			i = find_case(p, (size_t)(e - p));
			if (i < 0) {
				fprintf(stderr, "pagemesh-conformance: %s: no case '%.*s' (see --list)\n",
					opt, (int)(e - p), p);
				return -1;
			}
			sel[i] = val;
		}
		p = *e ? e + 1 : e;
	}
	return 0;
}

enum { OPT_LISTEN = 1, OPT_ONLY, OPT_SKIP, OPT_LIST };

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "only", required_argument, NULL, OPT_ONLY },
		{ "skip", required_argument, NULL, OPT_SKIP },
		{ "list", no_argument, NULL, OPT_LIST },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct CMUnitTest tests[NCASES];
	const char *env, *base, *only = NULL, *skipl = NULL, *lopt = NULL;
	char name[CFG_NAME_MAX], group[CFG_NAME_MAX + 16];
	bool sel[NCASES], wanted[NCASES], list = false;
	pthread_condattr_t ca;
	pthread_t wd;
	int i, n, o, ntests = 0;

	while ((o = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (o) {
		case OPT_LISTEN:
			lopt = optarg;
			break;
		case OPT_ONLY:
			only = optarg;
			break;
		case OPT_SKIP:
			skipl = optarg;
			break;
		case OPT_LIST:
			list = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (list && optind == argc) {
		for (i = 0; i < NCASES; i++)
			printf("%s\n", cases[i].name);
		return 0;
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	for (i = 0; i < NCASES; i++)
		sel[i] = !only;
	if (only && mark_cases(only, sel, true, "--only"))
		return 2;
	memcpy(wanted, sel, sizeof(wanted));
	if (skipl && mark_cases(skipl, sel, false, "--skip"))
		return 2;
	env = getenv("PM_CONFORMANCE_CASE_S");
	if (env && *env && atoi(env) > 0)
		case_limit_s = atoi(env);
	env = getenv("PM_CONFORMANCE_FRAME");
	frame_checks = !(env && !strcmp(env, "none"));
	env = getenv("PM_CONFORMANCE_SEED");
	seed = env && *env ? strtoull(env, NULL, 0) :
		(uint64_t)pm_now_ns() ^ ((uint64_t)getpid() << 32);
	if (!seed)
		seed = 1;

	/* the transport's name: the file name without directory and .so */
	base = strrchr(argv[optind], '/');
	base = base ? base + 1 : argv[optind];
	snprintf(name, sizeof(name), "%s", base);
	n = (int)strlen(name);
	if (n > 3 && !strcmp(name + n - 3, ".so"))
		name[n - 3] = '\0';

	loader_open_path(&plug, argv[optind], name, NULL, 0);
	ops = plug.ops;
	usable = plug.usable;

	/* The listen string is the plugin's own: --listen, the environment,
	 * or the plugin's answer to "any free address". */
	env = getenv("PM_CONFORMANCE_LISTEN");
	if (lopt) {
		snprintf(listen_addr, sizeof(listen_addr), "%s", lopt);
		listen_from = "--listen";
	} else if (env && *env) {
		snprintf(listen_addr, sizeof(listen_addr), "%s", env);
		listen_from = "PM_CONFORMANCE_LISTEN";
	} else if (ops && PM_OPS_HAS(ops, any_listen) &&
		   !ops->any_listen(listen_addr, sizeof(listen_addr))) {
		listen_from = "the plugin's any_listen";
	} else {
		listen_addr[0] = '\0';
	}
	if (!speaks_frame(frame_na, sizeof(frame_na)))
		frame_checks = false;
	else
		frame_na[0] = '\0';
	if (list) {
		for (i = 0, n = 0; i < NCASES; i++) {
			if (frame_na[0] && (cases[i].needs & NEEDS_FRAME))
				n++;
			else
				printf("%s\n", cases[i].name);
		}
		for (i = 0, o = 0; n && i < NCASES; i++)
			if (cases[i].needs & NEEDS_FRAME)
				printf("%s%s", o++ ? "," : "# not applicable: ",
				       cases[i].name);
		if (n)
			printf(" (cases for frame.h transports: %s)\n",
			       frame_na);
		return 0;
	}
	printf("conformance: %s (%s), listen %s%s%s, seed 0x%" PRIx64 "\n",
	       argv[optind], name, listen_addr[0] ? listen_addr : "(none)",
	       listen_addr[0] ? " from " : "", listen_from, seed);
	if (ops && !usable)
		printf("conformance: SKIP: %s: %s: every test after test_load is skipped\n",
		       argv[optind], plug.why);
	if (ops && usable && !listen_addr[0])
		printf("conformance: no listen address: %s has no any_listen op (ABI 1.1) and neither --listen nor PM_CONFORMANCE_LISTEN was given; test_any_listen fails, every case that needs an instance is skipped\n",
		       name);
	fflush(stdout);

	/* cases that are not part of this plugin's suite: not run, not
	 * skipped; one line at the end says so */
	for (i = 0; frame_na[0] && i < NCASES; i++)
		if ((cases[i].needs & NEEDS_FRAME) && wanted[i]) {
			sel[i] = wanted[i] = false;
			frame_na_n++;
		}
	for (i = 0, n = 0; i < NCASES; i++)
		if (!sel[i] && !(frame_na[0] && (cases[i].needs & NEEDS_FRAME)))
			printf("%s%s", n++ ? "," : "conformance: not run (--only/--skip): ",
			       cases[i].name);
	if (n)
		printf("\n");
	/* a case excluded by --skip is a rule not checked: say so at the end */
	for (i = 0; skipl && i < NCASES; i++)
		if (wanted[i] && !sel[i] && nskips < NCASES) {
			skips[nskips].name = cases[i].name;
			skips[nskips].rule = cases[i].rule;
			skips[nskips].unchecked = true;
			snprintf(skips[nskips].why, sizeof(skips[0].why),
				 "excluded by --skip");
			nskips++;
		}
	for (i = 0; i < NCASES; i++) {
		if (!sel[i])
			continue;
		tests[ntests++] = (struct CMUnitTest){
			.name = cases[i].name,
			.test_func = cases[i].fn,
			.setup_func = case_setup,
			.teardown_func = case_teardown,
			.initial_state = (void *)&cases[i],
		};
	}
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wd_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&wd, NULL, watchdog_main, NULL)) {
		fprintf(stderr, "pagemesh-conformance: cannot start the watchdog thread\n");
		return 1;
	}
	pthread_detach(wd);
	snprintf(group, sizeof(group), "conformance-%s", name);
	n = _cmocka_run_group_tests(group, tests, ntests, NULL, NULL);
	print_skips();
	if (n)
		printf("conformance: RESULT: FAIL: %d case(s) failed or errored (see above) for %s\n",
		       n, argv[optind]);
	else
		printf("conformance: RESULT: PASS: %d case(s) run for %s\n",
		       ntests, argv[optind]);
	fflush(stdout);
	/* A failed test leaves its fixture behind, and with it plugin
	 * threads that may still run: unloading the plugin under them
	 * would turn the failure into a crash at exit. */
	if (!n)
		loader_close(&plug);
	return n ? 1 : 0;
}
