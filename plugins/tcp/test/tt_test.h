/* SPDX-License-Identifier: MIT */
/*
 * What the tcp transport's own tests share: the plugin's table, a host
 * table that counts log lines, a server whose handler answers per the
 * first byte of the msg, raw sockets speaking the frame format, and a
 * client instance. main.c lists the cases; each other file holds one
 * feature's.
 */
#ifndef TT_TEST_H
#define TT_TEST_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include <pagemesh/transport.h>

#include "frame.h"
#include "net.h"

#define SEC 1000000000LL
#define MAX_CONNS 64
#define MAX_HELD 512		/* requests a server holds unanswered */

extern const struct pm_transport_ops *ops;

/* CLOCK_MONOTONIC ms from now, for the condition variables here. */
struct timespec mono_after_ms(int ms);

/* --- host table: settings from a small key list, log lines counted ---- */

struct host {
	struct pm_host h;
	const char *keys[4];
	const char *vals[4];
	const char *ikey;
	int64_t ival;
	pthread_mutex_t mu;
	char last[512];		/* last warning or error line */
	int lines;
};

struct host *host_new(const char *listen);
void host_free(struct host *h);

/* --- a server whose handler answers per the first byte of the msg ------ */

enum { OP_ECHO = 'e', OP_BIG = 'b', OP_HOLD = 'h' };

struct held {
	uint64_t conn, req;
};

struct srv {
	struct host *host;
	struct pm_tctx *t;
	char ep[PM_ENDPOINT_MAX];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int requests;
	int closes;
	uint64_t closed[MAX_CONNS];
	uint64_t conns[MAX_CONNS];	/* conn ids by first request */
	int nconns;
	struct held held[MAX_HELD];
	int nheld;
	int reply_errors;		/* replies that failed inline */
	uint8_t big[PM_PAYLOAD_MAX];
};

struct srv *srv_new(const char *listen, const char *ikey, int64_t ival);
void srv_free(struct srv *s);
bool srv_wait(struct srv *s, const int *field, int n, int ms);

/* --- a client instance of the plugin ----------------------------------- */

struct client {
	struct host *host;
	struct pm_tctx *t;
};

struct client *client_new(void);
struct pm_tconn *client_dial(struct client *cl, const char *ep);
void client_free(struct client *cl);
int echo(struct pm_tconn *c, uint32_t mlen, uint32_t plen, unsigned *seed);
int count_threads(void);

/* --- raw sockets speaking the frame format ----------------------------- */

int raw_dial(const char *ep);
size_t put_req(uint8_t *buf, uint64_t id, const void *m, uint32_t mlen,
	       const void *p, uint32_t plen);
int raw_send_req(int fd, uint64_t id, const void *m, uint32_t mlen);
int raw_reply(int fd, struct pm_frame_hdr *h, uint8_t *body,
	      int64_t deadline);

/* --- the cases, by the file that holds them ---------------------------- */

/* settings.c: endpoint parsing, the plugin's settings */
void test_parse_endpoints(void **state);
void test_settings(void **state);

/* wire.c: frames split or pipelined, a peer that stops reading */
void test_split_and_pipelined(void **state);
void test_slow_reader_dropped(void **state);

/* connections.c: replies racing drop(), many connections, max_conns */
void test_reply_races_drop(void **state);
void test_many_connections(void **state);
void test_max_conns(void **state);
void test_max_conns_displace(void **state);
void test_fini_waits_for_replies(void **state);

/* callers.c: the calling side reads its own replies, large calls at once */
void test_caller_reads_itself(void **state);
void test_concurrent_large(void **state);

/* redial.c: redial deadlines, which calls a closing peer gets again */
void test_redial_black_hole(void **state);
void test_idle_close_resends(void **state);
void test_read_then_close_fails(void **state);
void test_reset_fails(void **state);

#endif
