/* SPDX-License-Identifier: MIT */
/* Inside the coordinator client: the state both backends share, the libcurl
 * request helper with failover (coord_http.c), and the etcd backend's entry
 * points. */
#ifndef PM_COORD_PRIV_H
#define PM_COORD_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "coord.h"

struct pm_logger;

enum coord_backend { COORD_EMBEDDED, COORD_ETCD };

#define COORD_CONNECT_MS_DEFAULT 1000
/* Largest response body kept; a longer one is an error, not a realloc. */
#define COORD_RESP_MAX (1 << 20)

struct coord {
	enum coord_backend backend;
	const struct pm_logger *log;	/* of the node that opened it */
	char cluster[CFG_NAME_MAX];
	int nodes;
	uint64_t memory;
	int n_urls;
	char urls[CFG_MAX_URLS][256];
	int cur;			/* URL that answered last (atomic) */
	int ttl_ms;			/* liveness TTL (server's / lease's) */
	int connect_ms;
	int request_ms;
	/* This process's claim on its node id (see coord.h): random, so
	 * that a restarted node, or a second one with the same id, differs. */
	char incarnation[COORD_INCARNATION_HEX + 1];
	size_t keylen;			/* security.key_file; 0: none */
	unsigned char key[AUTH_KEY_MAX + 1];

	pthread_mutex_t lock;		/* the fields below */
	pthread_cond_t cond;		/* stop was set */
	bool stop;
	bool hb_started;
	pthread_t hb;
	bool registered;
	struct coord_member self;
	char lease[24];			/* etcd lease id, decimal */
};

struct coord_buf {
	char *data;			/* NUL-terminated */
	size_t len;
	/* Streaming: called after each arrival; nonzero ends the transfer. */
	int (*stream)(struct coord_buf *b, void *arg);
	void *arg;
	bool ended;			/* stream asked to end */
};

void coord_buf_free(struct coord_buf *b);

/*
 * One request to urls[idx] + path. body NULL: no body (GET, or an empty
 * POST when method says so). 0 with *status and resp filled, or -errno for
 * a transport failure (logged at level lvl with the URL).
 */
int coord_http_once(struct coord *co, int idx, const char *method,
		    const char *path, const char *body, int timeout_ms,
		    long *status, struct coord_buf *resp, int lvl);

/*
 * The same with failover: tries every URL, starting with the last that
 * answered, in rounds until timeout_ms elapses, each try at most attempt_ms
 * (0: all the time left), so that a member that hangs costs only that much.
 * A 5xx answer counts as a failure of that URL. 0 with the answer, or
 * -errno of the last failure.
 */
int coord_http(struct coord *co, const char *method, const char *path,
	       const char *body, int timeout_ms, int attempt_ms, long *status,
	       struct coord_buf *resp);

/* Wait on co->cond up to ms; true if stop was set. Caller holds co->lock. */
bool coord_wait_stop(struct coord *co, int ms);

/* Sort members by node id. */
void coord_sort_members(struct coord_member *m, int n);

/* etcd backend (coord_etcd.c). Same contracts as the public calls. */
int coord_etcd_open(struct coord *co);
int coord_etcd_register(struct coord *co);
int coord_etcd_keepalive(struct coord *co);	/* -ENOENT: lease gone */
int coord_etcd_members(struct coord *co, uint64_t after, int timeout_ms,
		       struct coord_member *out, int max, int *n,
		       uint64_t *version);
void coord_etcd_leave(struct coord *co);

#endif
