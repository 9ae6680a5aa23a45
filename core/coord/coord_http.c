// SPDX-License-Identifier: MIT
/* The coordinator client's requests: libcurl with timeouts, writes signed
 * with the cluster key, and failover across the configured URLs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "coord_priv.h"
#include "log.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

/* curl_global_init is not thread-safe: run it once, before any thread. */
static void coord_curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void coord_buf_free(struct coord_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
}

static size_t on_data(char *p, size_t sz, size_t nm, void *arg)
{
	struct coord_buf *b = arg;
	size_t n = sz * nm;
	char *nb;

	if (n > COORD_RESP_MAX - b->len)
		return 0;	/* too long: the transfer fails */
	nb = realloc(b->data, b->len + n + 1);
	if (!nb)
		return 0;
	b->data = nb;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	if (b->stream && b->stream(b, b->arg)) {
		b->ended = true;
		return 0;
	}
	return n;
}

/* Is this the heartbeat thread, and coord_close() waiting for it? */
static bool hb_stopping(const struct coord *co)
{
	return __atomic_load_n(&co->stop, __ATOMIC_RELAXED) &&
	       co->hb_started && pthread_equal(pthread_self(), co->hb);
}

/* Lets coord_close() cut short a heartbeat stuck on a dead coordinator. */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn,
		       curl_off_t ut, curl_off_t un)
{
	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return hb_stopping(arg);
}

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_WRITE_ERROR:
		return -EMSGSIZE;
	default:
		return -EIO;
	}
}

/*
 * Sign a request for a coordinator that has the cluster key (see coord.h),
 * with a nonce of its own: each try of a request is a request of its own,
 * so that the server, which takes a nonce once, takes a retry too.
 */
static int auth_header(struct coord *co, const char *method,
		       const char *path, const char *body,
		       struct curl_slist **hdrs)
{
	char p[512], cluster[CFG_NAME_MAX] = "", hex[AUTH_REQ_MAC_HEX + 1];
	char nonce[AUTH_REQ_NONCE_HEX + 1], line[192];
	struct curl_slist *h;
	int64_t ts = auth_wall_ms();
	char *q, *cv, *save = NULL;
	int r;

	snprintf(p, sizeof(p), "%s", path);
	q = strchr(p, '?');
	if (q) {
		*q++ = '\0';
		for (cv = strtok_r(q, "&", &save); cv;
		     cv = strtok_r(NULL, "&", &save))
			if (!strncmp(cv, "cluster=", 8))
				snprintf(cluster, sizeof(cluster), "%s",
					 cv + 8);
	}
	r = auth_random_hex(nonce, AUTH_REQ_NONCE_LEN);
	if (!r)
		r = auth_request_mac(co->key, co->keylen, ts, nonce, method, p,
				     cluster, body, body ? strlen(body) : 0,
				     hex);
	if (r)
		return r;
	snprintf(line, sizeof(line), "%s: %lld:%s:%s", COORD_AUTH_HEADER,
		 (long long)ts, nonce, hex);
	h = curl_slist_append(*hdrs, line);
	if (!h)
		return -ENOMEM;
	*hdrs = h;
	return 0;
}

int coord_http_once(struct coord *co, int idx, const char *method,
		    const char *path, const char *body, int timeout_ms,
		    long *status, struct coord_buf *resp, int lvl)
{
	struct curl_slist *hdrs = NULL, *h;
	char url[512];
	CURLcode rc;
	CURL *c;
	int r = 0;

	pthread_once(&curl_once, coord_curl_init);
	if (curl_init_rc)
		return -ENOMEM;
	if (timeout_ms < 1)
		timeout_ms = 1;
	snprintf(url, sizeof(url), "%s%s", co->urls[idx], path);
	coord_buf_free(resp);
	resp->ended = false;
	c = curl_easy_init();
	if (!c)
		return -ENOMEM;
	h = curl_slist_append(hdrs, "Content-Type: application/json");
	if (h)
		hdrs = h;
	/* No "Expect: 100-continue" round trip for our small bodies. */
	h = curl_slist_append(hdrs, "Expect:");
	if (h)
		hdrs = h;
	/* Reads too: a signed long-poll is not held to the cap on
	 * unsigned ones, which anyone can fill. */
	if (co->keylen && co->backend == COORD_EMBEDDED) {
		r = auth_header(co, method, path, body, &hdrs);
		if (r) {
			curl_slist_free_all(hdrs);
			curl_easy_cleanup(c);
			return r;
		}
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(co->connect_ms < timeout_ms ? co->connect_ms
							    : timeout_ms));
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, co);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	if (body || strcmp(method, "GET")) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE,
				 (long)(body ? strlen(body) : 0));
	}
	if (strcmp(method, "GET") && strcmp(method, "POST"))
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	rc = curl_easy_perform(c);
	*status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	if (rc == CURLE_WRITE_ERROR && resp->ended) {
		rc = CURLE_OK;	/* the stream callback had what it needed */
	} else if (rc == CURLE_ABORTED_BY_CALLBACK && hb_stopping(co)) {
		r = -ECANCELED;	/* coord_close(): nothing to report */
	} else if (rc) {
		r = curl_errno(rc);
		if (rc == CURLE_WRITE_ERROR)
			pm_log(lvl, "coordinator %s %s: response over %d bytes",
			       method, url, COORD_RESP_MAX);
		else
			pm_log(lvl, "coordinator %s %s: %s (HTTP status %ld)",
			       method, url, curl_easy_strerror(rc), *status);
	}
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	if (r)
		coord_buf_free(resp);
	return r;
}

int coord_http(struct coord *co, const char *method, const char *path,
	       const char *body, int timeout_ms, int attempt_ms, long *status,
	       struct coord_buf *resp)
{
	int64_t deadline = coord_now_ms() + timeout_ms;
	int idx = __atomic_load_n(&co->cur, __ATOMIC_RELAXED);
	int tries = 0, r = -ETIMEDOUT;
	int64_t left;

	while ((left = deadline - coord_now_ms()) > 0) {
		/* After a full round of failures, pause before the next. */
		if (tries && tries % co->n_urls == 0) {
			struct timespec ts = { 0, 100 * 1000000L };

			if (left <= 100)
				break;
			nanosleep(&ts, NULL);
			left = deadline - coord_now_ms();
		}
		tries++;
		if (attempt_ms > 0 && left > attempt_ms)
			left = attempt_ms;
		r = coord_http_once(co, idx, method, path, body, (int)left,
				    status, resp, PM_LOG_WARN);
		if (!r && *status >= 500) {
			pm_warn("coordinator %s %s%s: HTTP status %ld: %.200s",
				method, co->urls[idx], path, *status,
				resp->data ? resp->data : "");
			coord_buf_free(resp);
			r = -EIO;
		}
		if (!r) {
			__atomic_store_n(&co->cur, idx, __ATOMIC_RELAXED);
			return 0;
		}
		/* A heartbeat that coord_close() cut short is not retried:
		 * the close would wait the whole timeout for it. */
		if (hb_stopping(co))
			return -ECANCELED;
		idx = (idx + 1) % co->n_urls;
	}
	return r;
}
