// SPDX-License-Identifier: MIT
/* The embedded coordinator's server (run by `pagemesh coordinator`, see
 * coord_cli.c): request intake with its size limit and signature check,
 * node expiry, start and a graceful stop. The API is coord_api.c. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "coord_srv.h"
#include "http.h"
#include "log.h"

/* ---- dispatch ------------------------------------------------------------ */

void coord_refused(struct coord_server *s, struct MHD_Connection *conn,
		   const char *fmt, ...)
{
	int64_t sec = coord_now_ms() / 1000;
	char peer[80], msg[512];
	int skipped = 0;
	va_list ap;

	pthread_mutex_lock(&s->lock);
	if (sec != s->log_second) {
		skipped = s->log_skipped;
		s->log_second = sec;
		s->log_lines = 0;
		s->log_skipped = 0;
	}
	if (s->log_lines >= 5) {
		s->log_skipped++;
		pthread_mutex_unlock(&s->lock);
		return;
	}
	s->log_lines++;
	pthread_mutex_unlock(&s->lock);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	http_peer_name(conn, peer, sizeof(peer));
	if (skipped)
		pm_warn("coordinator: refused a request from %s: %s (and %d more refusals in the second before, not logged)",
			peer, msg, skipped);
	else
		pm_warn("coordinator: refused a request from %s: %s", peer, msg);
}

/*
 * With a cluster key: is the request signed, fresh and new? 0, or the
 * status to refuse it with and why. The nonce is taken only once the MAC
 * checks out, so that no one without the key can fill the table.
 */
static unsigned int check_signature(struct coord_server *s,
				    struct MHD_Connection *conn,
				    const char *url, const char *method,
				    const struct coord_req *rq, const char *h,
				    char *why, size_t whylen)
{
	const char *cluster = MHD_lookup_connection_value(conn,
			MHD_GET_ARGUMENT_KIND, "cluster");
	char nonce[AUTH_REQ_NONCE_HEX + 1], mac[AUTH_REQ_MAC_HEX + 1];
	char want[AUTH_REQ_MAC_HEX + 1];
	const char *what;
	int64_t ts, now;
	int r;

	if (!h) {
		snprintf(why, whylen,
			 "missing " COORD_AUTH_HEADER " (this coordinator has a cluster key)");
		return MHD_HTTP_UNAUTHORIZED;
	}
	if (auth_request_parse(h, &ts, nonce, mac, &what)) {
		snprintf(why, whylen, "malformed " COORD_AUTH_HEADER ": %s",
			 what);
		return MHD_HTTP_UNAUTHORIZED;
	}
	/* ts is in [0, INT64_MAX]; with now not negative either, no
	 * difference below can overflow. */
	now = auth_wall_ms();
	if (now < 0)
		now = 0;
	if (ts > now + COORD_AUTH_SKEW_MS || now - ts > COORD_AUTH_SKEW_MS) {
		snprintf(why, whylen,
			 "stale " COORD_AUTH_HEADER " timestamp: %lld ms %s this coordinator's clock, the window is %d ms (clocks apart?)",
			 (long long)(ts > now ? ts - now : now - ts),
			 ts > now ? "ahead of" : "behind",
			 COORD_AUTH_SKEW_MS);
		return MHD_HTTP_UNAUTHORIZED;
	}
	if (auth_request_mac(s->key, s->keylen, ts, nonce, method, url,
			     cluster, rq->body, rq->len, want) ||
	    CRYPTO_memcmp(want, mac, AUTH_REQ_MAC_HEX)) {
		snprintf(why, whylen,
			 "wrong " COORD_AUTH_HEADER " signature (another key?)");
		return MHD_HTTP_UNAUTHORIZED;
	}
	r = coord_nonce_take(&s->nonces, nonce, ts + COORD_AUTH_SKEW_MS, now);
	if (r == -EEXIST) {
		snprintf(why, whylen,
			 "replayed request: nonce %s of " COORD_AUTH_HEADER " was used already (each signed request is taken once)",
			 nonce);
		return MHD_HTTP_UNAUTHORIZED;
	}
	if (r) {
		snprintf(why, whylen,
			 "%d signed requests within %d ms: no room to remember more nonces; retry in a moment",
			 COORD_NONCES_MAX, 2 * COORD_AUTH_SKEW_MS);
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	}
	return 0;
}

static enum MHD_Result coord_handler(void *cls, struct MHD_Connection *conn,
				     const char *url, const char *method,
				     const char *version,
				     const char *upload_data,
				     size_t *upload_data_size, void **con_cls)
{
	struct coord_server *s = cls;
	struct coord_req *rq = *con_cls;

	(void)version;
	if (!rq) {
		const char *cl = MHD_lookup_connection_value(conn,
				MHD_HEADER_KIND,
				MHD_HTTP_HEADER_CONTENT_LENGTH);

		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		pthread_mutex_lock(&s->lock);
		s->active++;
		pthread_mutex_unlock(&s->lock);
		/* Refuse a body declared too large before reading any. */
		if (cl && strtoull(cl, NULL, 10) > COORD_BODY_MAX) {
			rq->too_big = true;
			return coord_send_error(conn,
						MHD_HTTP_CONTENT_TOO_LARGE,
						NULL,
						"request body of %s bytes is over the limit of %d",
						cl, COORD_BODY_MAX);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		/* Chunked bodies have no length up front: keep at most
		 * the limit, drop the rest, and answer 413 at the end. */
		if (!rq->too_big &&
		    *upload_data_size <= COORD_BODY_MAX - rq->len) {
			char *nb = realloc(rq->body, rq->len +
					   *upload_data_size + 1);

			if (!nb)
				return MHD_NO;
			rq->body = nb;
			memcpy(rq->body + rq->len, upload_data,
			       *upload_data_size);
			rq->len += *upload_data_size;
		} else if (!rq->too_big) {
			rq->too_big = true;
			free(rq->body);
			rq->body = NULL;
			rq->len = 0;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rq->too_big)
		return coord_send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
					"request body is over the limit of %d bytes",
					COORD_BODY_MAX);
	if (s->keylen) {
		const char *h = MHD_lookup_connection_value(conn,
				MHD_HEADER_KIND, COORD_AUTH_HEADER);
		bool write = strcmp(method, "GET") && strcmp(method, "HEAD");
		unsigned int st;
		char why[256];

		/* Reads may come unsigned; a signature sent is checked, so
		 * that a signed long-poll can be told from an unsigned one. */
		if (h || write) {
			st = check_signature(s, conn, url, method, rq, h, why,
					     sizeof(why));
			if (st) {
				coord_refused(s, conn, "%s %s: %s", method,
					      url, why);
				if (st == MHD_HTTP_SERVICE_UNAVAILABLE)
					return coord_send_busy(conn,
							"%s %s: %s", method,
							url, why);
				return coord_send_error(conn, st, NULL,
							"%s %s: %s", method,
							url, why);
			}
			rq->signed_ok = true;
		}
	}
	return coord_route(s, conn, url, method, rq);
}

static void coord_completed(void *cls, struct MHD_Connection *conn,
			    void **con_cls,
			    enum MHD_RequestTerminationCode toe)
{
	struct coord_server *s = cls;
	struct coord_req *rq = *con_cls;

	(void)conn;
	(void)toe;
	if (rq) {
		free(rq->body);
		free(rq);
		*con_cls = NULL;
		pthread_mutex_lock(&s->lock);
		s->active--;
		if (s->stopping)
			pthread_cond_broadcast(&s->changed);
		pthread_mutex_unlock(&s->lock);
	}
}

/* Drops nodes whose last heartbeat is older than the TTL. */
static void *reaper_main(void *arg)
{
	struct coord_server *s = arg;
	int tick = s->ttl_ms / 4, i, j;
	struct timespec ts;

	if (tick < 10)
		tick = 10;
	if (tick > 1000)
		tick = 1000;
	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		int64_t now = coord_now_ms();

		for (i = 0; i < s->n_clusters; i++) {
			struct coord_cluster *cl = s->clusters[i];

			for (j = 0; j < CFG_MAX_NODES; j++) {
				if (!cl->node[j].live ||
				    now - cl->node[j].last_seen_ms <=
					    s->ttl_ms)
					continue;
				cl->node[j].live = false;
				coord_bump(s, cl);
				pm_info("cluster '%s': node %d expired (no heartbeat for %lld ms)",
					cl->name, j,
					(long long)(now -
						    cl->node[j].last_seen_ms));
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)tick * 1000000;
		ts.tv_sec += ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&s->changed, &s->lock, &ts);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int coord_server_start(const char *listen, int ttl_ms,
		       struct coord_server **out, char *err, size_t errlen)
{
	pthread_condattr_t ca;
	struct coord_server *s;
	int r;

	if (cfg_key_check("coordinator.ttl_ms", ttl_ms, err, errlen))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->ttl_ms = ttl_ms;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->changed, &ca);
	pthread_condattr_destroy(&ca);

	r = pthread_create(&s->reaper, NULL, reaper_main, s);
	if (r) {
		snprintf(err, errlen, "cannot start the expiry thread: %s",
			 strerror(r));
		coord_server_stop(s);
		return -r;
	}
	s->reaper_started = true;
	r = http_start_opts(listen, (void *)coord_handler, s,
			    (void *)coord_completed, s, COORD_CONN_LIMIT,
			    COORD_CONN_PER_IP, COORD_IDLE_TIMEOUT_S, &s->d,
			    &s->port, err, errlen);
	if (r) {
		coord_server_stop(s);
		return r;
	}
	*out = s;
	return 0;
}

int coord_server_set_key(struct coord_server *s, const unsigned char *key,
			 size_t len)
{
	int r;

	if (len < AUTH_KEY_MIN || len > AUTH_KEY_MAX)
		return -EINVAL;
	/* Before the key: once there is one, every write takes a nonce. */
	if (!s->nonces.cap) {
		r = coord_nonces_init(&s->nonces, COORD_NONCES_MAX);
		if (r)
			return r;
	}
	pthread_mutex_lock(&s->lock);
	memcpy(s->key, key, len);
	s->keylen = len;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int coord_server_port(const struct coord_server *s)
{
	return s->port;
}

void coord_server_stop(struct coord_server *s)
{
	MHD_socket lfd = MHD_INVALID_SOCKET;
	int i;

	if (!s)
		return;
	/*
	 * Release long-polls, take no new connections, and give requests in
	 * flight (the released polls among them) a moment to be answered:
	 * MHD_stop_daemon would cut them off.
	 */
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->changed);
	if (s->d) {
		struct timespec ts;

		lfd = MHD_quiesce_daemon(s->d);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 2;
		while (s->active > 0)
			if (pthread_cond_timedwait(&s->changed, &s->lock,
						   &ts) == ETIMEDOUT)
				break;
	}
	pthread_mutex_unlock(&s->lock);
	if (s->d)
		MHD_stop_daemon(s->d);
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	if (s->reaper_started)
		pthread_join(s->reaper, NULL);
	for (i = 0; i < s->n_clusters; i++)
		free(s->clusters[i]);
	coord_nonces_free(&s->nonces);
	pthread_cond_destroy(&s->changed);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
