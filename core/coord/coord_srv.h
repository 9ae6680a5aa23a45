/* SPDX-License-Identifier: MIT */
/* Inside the embedded coordinator server: its state, shared by the request
 * intake (coord_server.c), the API (coord_api.c) and the wire format
 * (coord_json.c). Callers of the coord_* calls below on state hold s->lock. */
#ifndef PM_COORD_SRV_H
#define PM_COORD_SRV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "coord.h"

#define COORD_MAX_CLUSTERS 32

/*
 * What unauthenticated clients may hold, so that signed heartbeats and
 * registrations always find a connection and a thread: connections in
 * all (one thread each) and from one address, and seconds a connection
 * may sit idle (COORD_OPEN_POLLS_MAX in coord.h bounds their long-polls).
 */
#define COORD_CONN_LIMIT 256
#define COORD_CONN_PER_IP (COORD_CONN_LIMIT / 2)
#define COORD_IDLE_TIMEOUT_S 5

struct coord_ep {
	char transport[64];
	char endpoint[PM_ENDPOINT_MAX];
	char tcp_addr[64];
	int tcp_port;			/* 0: no tcp_addr/tcp_port given */
	bool rdma;
	int64_t rdma_qpn, rdma_lid, rdma_psn;
	char rdma_gid[40];
};

struct coord_node {
	bool live;
	int64_t last_seen_ms;
	int64_t registered_ms;
	/* Of the process that holds the id ("": it sent none). */
	char incarnation[COORD_INCARNATION_MAX + 1];
	int n_eps;
	struct coord_ep eps[CFG_MAX_TRANSPORTS];
};

struct coord_cluster {
	char name[CFG_NAME_MAX];
	int nodes;			/* node ids are 0 .. nodes-1 */
	int64_t memory_mb;
	int64_t memory_bytes;		/* 0: not given */
	bool implicit;			/* made up for a request naming none */
	int waiters;			/* long-polls parked on version */
	uint64_t version;
	struct coord_node node[CFG_MAX_NODES];
};

/* Nonces seen within the window: chained hash over a fixed pool. */
struct coord_nonce {
	uint32_t next;			/* pool index, or COORD_NONCE_NIL */
	int64_t expires_ms;		/* wall clock: TS + the window */
	uint8_t n[AUTH_REQ_NONCE_LEN];
};

#define COORD_NONCE_NIL UINT32_MAX

struct coord_nonces {
	pthread_mutex_t lock;		/* everything below */
	uint32_t cap, n_buckets, used;
	uint32_t free;			/* free list through next */
	uint32_t *bucket;
	struct coord_nonce *pool;
	uint64_t seed;			/* hash seed, random */
	int64_t full_until_ms;		/* full: no sweep before this */
};

struct coord_server {
	struct MHD_Daemon *d;
	int port;
	int ttl_ms;
	pthread_mutex_t lock;		/* everything below */
	pthread_cond_t changed;		/* a version moved, or stopping */
	bool stopping;
	int active;			/* requests between start and done */
	bool reaper_started;
	pthread_t reaper;
	int n_clusters;
	struct coord_cluster *clusters[COORD_MAX_CLUSTERS];
	int open_polls;			/* unsigned long-polls parked */
	int64_t log_second;		/* refusals logged in this second */
	int log_lines, log_skipped;
	size_t keylen;			/* 0: writes need no signature */
	unsigned char key[AUTH_KEY_MAX];
	struct coord_nonces nonces;	/* with a key */
};

/* Per-request state: the body, read up to COORD_BODY_MAX. */
struct coord_req {
	char *body;
	size_t len;
	bool too_big;
	bool signed_ok;			/* valid, fresh signature */
};

/* ---- wire format (coord_json.c) ------------------------------------------ */

enum MHD_Result coord_send_json(struct MHD_Connection *conn,
				unsigned int status, cJSON *obj,
				const char *allow);
/* {"error": "what was wrong", "status": N} */
enum MHD_Result coord_send_error(struct MHD_Connection *conn,
				 unsigned int status, const char *allow,
				 const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* 503 with Retry-After, closing the connection: {"error", "status"}. */
enum MHD_Result coord_send_busy(struct MHD_Connection *conn,
				const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Integer member key of o in [lo, hi]. 0 and *out, -ENOENT when absent (and
 * not required), or -EINVAL with the reason in why.
 */
int coord_json_int(const cJSON *o, const char *key, int64_t lo, int64_t hi,
		   int64_t *out, char *why, size_t whylen);
/* String member key of o shorter than max. Same returns as coord_json_int. */
int coord_json_str(const cJSON *o, const char *key, size_t max,
		   const char **out, char *why, size_t whylen);
/* The request body as a JSON object, or NULL after queueing a 400. */
cJSON *coord_parse_body(struct MHD_Connection *conn, struct coord_req *rq,
			enum MHD_Result *ret);
/* Fill ep from a POST /nodes/ID/endpoint body. 0 or -EINVAL with why. */
int coord_parse_ep(const cJSON *o, struct coord_ep *ep, char *why,
		   size_t whylen);

cJSON *coord_cluster_json(const struct coord_server *s,
			  const struct coord_cluster *cl);
/* One node: its first endpoint's fields at the top, all under
 * "transports". */
cJSON *coord_node_json(int id, const struct coord_node *nd, int64_t now);

/* ---- replay protection (coord_nonce.c) ----------------------------------- */

/* An empty table of cap entries. 0 or -ENOMEM. */
int coord_nonces_init(struct coord_nonces *t, uint32_t cap);
void coord_nonces_free(struct coord_nonces *t);
/*
 * Take the nonce (AUTH_REQ_NONCE_HEX hex digits) of a request whose
 * signature checked out, to be remembered until expires_ms (wall clock).
 * 0 the first time, -EEXIST for a replay, -ENOSPC when the table is full
 * of nonces that have not expired.
 */
int coord_nonce_take(struct coord_nonces *t, const char *hex,
		     int64_t expires_ms, int64_t now_ms);

/* Log a refusal of a request from conn, at most a few lines a second (a
 * flood of bad requests must not flood the log). Takes s->lock itself. */
void coord_refused(struct coord_server *s, struct MHD_Connection *conn,
		   const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- API (coord_api.c) --------------------------------------------------- */

/* A cluster's membership changed: move its version, wake the long-polls. */
void coord_bump(struct coord_server *s, struct coord_cluster *cl);

/* Answer one complete request (body read, signature checked). */
/* GET /healthz, /readyz and /metrics (coord_probe.c): true, with *ret,
 * when url is one of them. Open to anyone, like every read. */
bool coord_probe(struct coord_server *s, struct MHD_Connection *conn,
		 const char *url, const char *method, enum MHD_Result *ret);

enum MHD_Result coord_route(struct coord_server *s,
			    struct MHD_Connection *conn, const char *url,
			    const char *method, struct coord_req *rq);

#endif
