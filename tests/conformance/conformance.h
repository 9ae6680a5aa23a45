/* SPDX-License-Identifier: MIT */
/*
 * What the conformance suite's files share: the plugin under test, the
 * server whose handler obeys struct cmd, the client fixture and verified
 * calls. main.c lists the cases; each other file holds one feature's.
 */
#ifndef PM_CONFORMANCE_H
#define PM_CONFORMANCE_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "loader.h"

#define CALL_MS 10000		/* deadline of calls that must succeed */
#define MAX_CONNS 1024		/* incoming connections a server tracks */
#define XOR 0xA5		/* echo replies: every byte ^ XOR */
#define GUARD 64	/* bytes after a receive buffer that must stay intact */
#define POISON 0xEE

/* --- the plugin under test (main.c) ------------------------------------ */

extern struct pm_plugin plug;
extern const struct pm_transport_ops *ops;
extern bool usable;
extern char listen_addr[PM_ENDPOINT_MAX];
extern const char *listen_from;
/* The plugin speaks plugins/common/frame.h on TCP (its listen string is
 * HOST:PORT and PM_CONFORMANCE_FRAME is not "none"): the test_raw_* cases
 * are part of its suite, and the handshake cases send frame.h bytes. */
extern bool frame_checks;
extern uint64_t seed;

/*
 * Skip the running case with a line saying why; the summary lists it, as
 * an ABI rule NOT CHECKED when unchecked, else as not applicable.
 */
void case_skip(bool unchecked, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
/* Record, without skipping, a rule the running case could not check. */
void case_unchecked(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

#define REQUIRE_USABLE()                                                   \
	do {                                                               \
		if (!usable)                                               \
			case_skip(true, "%s: %s", plug.path,               \
				  plug.why[0] ? plug.why : "not loaded");   \
		if (!listen_addr[0])                                       \
			case_skip(true, "no listen address (see test_any_listen)"); \
	} while (0)

/* --- time, random data, threads (harness.c) ---------------------------- */

/* ops->call, timed and checked: a return more than PM_CALL_LATE_MS after
 * the deadline, a positive return or reply lengths past the buffers are
 * noted, and fail the case they ran in (fix_down, or late_report at
 * teardown). */
int tcall(struct pm_tconn *c, const struct pm_msg *req, struct pm_msg *rep,
	  int64_t deadline);
void late_reset(void);
/* true, with why, if a call of this case returned late or broke the
 * return contract; then forgets it (reported once) */
bool late_report(char *why, size_t len);

int64_t ms_from_now(int ms);
double ms_since(int64_t t0);
uint64_t rng_next(uint64_t *s);
void rand_fill(uint64_t *s, uint8_t *b, size_t n);
int join_ms(pthread_t th, int ms);
void mono_deadline(struct timespec *ts, int ms);
void cond_init_mono(pthread_cond_t *cv);

/* First error seen by worker threads (cmocka asserts only on main). */
struct errbox {
	pthread_mutex_t mu;
	int n;
	char first[512];
};

void eb_init(struct errbox *e);
struct errbox *eb_new(void);
void eb_note(struct errbox *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define assert_no_errors(e)                                                \
	do {                                                               \
		if ((e)->n)                                                \
			fail_msg("%d error(s), first: %s", (e)->n,         \
				 (e)->first);                              \
	} while (0)

/* An integer setting a case gives an instance (host->cfg_int). */
struct ih_int {
	const char *key;
	int64_t val;
};

#define IH_INTS 4
#define IH_LINES 16

/* The host table of one instance. */
struct ihost {
	struct pm_host host;
	char listen[PM_ENDPOINT_MAX];
	char label[24];
	struct ih_int ints[IH_INTS];
	int nints;
	pthread_mutex_t mu;		/* below */
	unsigned asked;			/* bit i: ints[i] was looked up */
	int nlines;			/* warnings and errors logged */
	char lines[IH_LINES][512];	/* the latest of them */
};

void ih_setup(struct ihost *ih, const char *listen, const char *label);
/* Give the instance setting key = val (before init). */
void ih_set_int(struct ihost *ih, const char *key, int64_t val);
/* Did the plugin look up key (one ih_set_int gave)? */
bool ih_asked(struct ihost *ih, const char *key);
/* Warnings and errors among the latest IH_LINES that contain needle,
 * not followed by a digit (an address "1.2.3.4:42" is not in "...:420"). */
int ih_count_lines(struct ihost *ih, const char *needle);

bool is_stream(const char *ep, char *host, size_t hlen, char *port,
	       size_t plen);
/* A listen string of a TCP listener: HOST:PORT, port 0 allowed. */
bool is_stream_listen(const char *addr);

/* --- commands a request can carry -------------------------------------- */

enum {
	CMD_ECHO = 0,	/* reply at once: msg and payload ^ XOR */
	CMD_HOLD = 1,	/* keep (conn_id, req_id); the test may reply */
	CMD_STATUS = 2,	/* reply at once with status arg, no data */
	CMD_BIG = 3,	/* reply at once with a payload of arg bytes */
	CMD_DEFER = 4,	/* keep; a replier thread echoes, shuffled */
	CMD_ONCE = 5,	/* count delivery of token arg, reply at once */
	CMD_DROP = 6,	/* drop() this connection from inside on_request */
	CMD_BADSTATUS = 7, /* reply with status arg: reply() must refuse it */
};

#define CMD_MAGIC "PMCF"
struct cmd {
	char magic[4];
	uint32_t cmd;
	int32_t arg;
};
#define CMD_LEN ((uint32_t)sizeof(struct cmd))

/* Byte i of a CMD_BIG reply's payload. */
static inline uint8_t big_byte(uint32_t i)
{
	return (uint8_t)(i * 7 + 3);
}

/* --- server instance (server.c) ---------------------------------------- */

struct held {
	uint64_t conn, req;
	uint32_t msg_len, payload_len;
	uint8_t msg[PM_MSG_MAX];
	uint8_t *payload;
};

struct conn_rec {
	uint64_t id;
	uint32_t requests;
	uint32_t closes;
	int active;			/* on_request calls running now */
};

/* Tokens of test_exactly_once: ONCE_SEQ sent one after another on one
 * connection (their order is checked), the rest by several threads. */
#define ONCE_SEQ 256
#define ONCE_N 512

struct srv {
	struct ihost ih;
	struct pm_tctx *t;
	char ep[PM_ENDPOINT_MAX];

	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t requests;
	struct conn_rec conns[MAX_CONNS];
	int nconns;
	bool conn_overflow;
	uint64_t dup_closes;		/* on_close twice for one conn */
	uint64_t late_callbacks;	/* any callback after fini returned */
	uint64_t req_after_close;	/* on_request after on_close */
	uint64_t bad_requests;		/* bad lengths or pointers */
	uint64_t overlaps;		/* on_request concurrent on one conn */
	uint64_t close_in_drop;		/* on_close ran inside drop() */
	uint8_t once[ONCE_N];		/* CMD_ONCE deliveries per token */
	int once_last;			/* the latest CMD_ONCE token */
	uint64_t once_disorder;		/* a token after a later one */
	int drop_r;			/* drop() in on_request (CMD_DROP) */
	uint64_t reply_errs;
	int first_reply_err;
	struct held *held;
	int nheld, held_cap;
	int inflight;			/* client calls in flight */
	bool finished;
};

int reply_echo(struct srv *s, uint64_t conn, uint64_t req,
	       const uint8_t *msg, uint32_t mlen, const uint8_t *pay,
	       uint32_t plen);
struct srv *srv_alloc(void);
int srv_start(struct srv *s, const char *listen, const char *label);
/* srv_start with integer settings ints[n] for the server instance. */
int srv_start_with(struct srv *s, const char *listen, const char *label,
		   const struct ih_int *ints, int n);
void srv_stop(struct srv *s);
void srv_free(struct srv *s);

typedef bool (*srv_pred)(struct srv *s, uint64_t arg);

bool srv_wait(struct srv *s, srv_pred pred, uint64_t arg, int ms);
bool p_held(struct srv *s, uint64_t n);
bool p_closed(struct srv *s, uint64_t id);
bool p_raw_closed(struct srv *s, uint64_t n);
bool p_closed_with_req(struct srv *s, uint64_t n);
bool p_conns_with_req(struct srv *s, uint64_t n);
int count_conns(struct srv *s, bool with_requests, bool closed);
int srv_locked_int(struct srv *s, int (*f)(struct srv *, bool, bool),
		   bool a, bool b);
uint64_t srv_only_conn(struct srv *s);
void srv_check_clean(struct srv *s);

/* --- client side (client.c) -------------------------------------------- */

/* One test's server, client instance and connection. */
struct fix {
	struct srv *s;
	struct ihost cih;
	struct pm_tctx *ct;
	struct pm_tconn *c;
};

struct fix *fix_up(void);
void fix_down(struct fix *f);
int cmd_call(struct pm_tconn *c, uint32_t cmd, int32_t arg,
	     struct pm_msg *rep, int64_t deadline);
bool guard_ok(const uint8_t *b, size_t n);
int echo_once(struct pm_tconn *c, uint64_t *rng, uint32_t cmd,
	      uint32_t mlen, uint32_t plen, uint32_t extra,
	      int64_t deadline, char *err, size_t errlen);

#define assert_echo(c, rng, mlen, plen)                                     \
	do {                                                                \
		char e_[512];                                               \
		int r_ = echo_once((c), (rng), CMD_ECHO, (mlen), (plen), 0, \
				   ms_from_now(CALL_MS), e_, sizeof(e_));   \
		if (r_)                                                     \
			fail_msg("%s", e_);                                 \
	} while (0)

/* A thread blocked in one call, for tests that act while it waits. */
struct caller {
	pthread_t th;
	struct pm_tconn *c;
	uint32_t cmd;
	int64_t deadline;
	int r;
	int64_t t_ret;
};

struct caller *callers_start(struct pm_tconn *c, uint32_t cmd, int n, int ms);
void callers_expect_shutdown(struct caller *cl, int n, const char *after);

/* --- the cases, by the file that holds them ---------------------------- */

/* lifecycle.c: loading, probe, init/fini, listen, endpoint, teardown */
void test_load(void **state);
void test_probe(void **state);
void test_any_listen(void **state);
void test_init_fini_repeat(void **state);
void test_listen_endpoint(void **state);
void test_disconnect_inflight(void **state);
void test_fini_inflight(void **state);

/* calls.c: calls and replies of every size, statuses, unknown conns */
void test_call_sizes(void **state);
void test_reply_too_big(void **state);
void test_reply_msg_too_big(void **state);
void test_remote_status(void **state);
void test_reply_unknown_conn(void **state);
void test_exactly_once(void **state);

/* concurrency.c: many threads and connections, out-of-order replies */
void test_concurrent_calls(void **state);
void test_concurrent_connections(void **state);
void test_deferred_out_of_order(void **state);

/* deadlines.c: calls that time out, late replies */
void test_call_timeout(void **state);

/* connection_loss.c: peer gone, redial, drop(), on_close */
void test_peer_gone_mid_call(void **state);
void test_reconnect(void **state);
void test_drop(void **state);
void test_on_close_once(void **state);
void test_drop_in_handler(void **state);
void test_no_resend(void **state);

/* corrupt.c: malformed requests in the plugin's own framing */
void test_corrupt_input(void **state);

/* malformed_frames.c: raw sockets against a stream listener */
void test_raw_valid_frame(void **state);
void test_raw_garbage(void **state);
void test_raw_bad_magic(void **state);
void test_raw_bad_lengths(void **state);
void test_raw_bad_kind(void **state);
void test_raw_huge_payload(void **state);
void test_raw_truncated_stall(void **state);
void test_raw_half_frame_close(void **state);

/* handshake.c: connections that never finish a request, and slots */
void test_handshake_silent(void **state);
void test_handshake_slowloris(void **state);
void test_handshake_stall_after_request(void **state);
void test_handshake_frees_slots(void **state);

#endif
