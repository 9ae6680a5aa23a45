// SPDX-License-Identifier: MIT
/*
 * The pieces every conformance case stands on: time, random data, waits on
 * threads, the error box of worker threads, an instance's host table and
 * the test of a stream endpoint.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"
#include "log.h"

static pthread_mutex_t late_mu = PTHREAD_MUTEX_INITIALIZER;
static int late_n;
static double late_max_ms;
static int late_r;
static int bad_n;		/* calls breaking the return contract */
static char bad_first[160];

int tcall(struct pm_tconn *c, const struct pm_msg *req, struct pm_msg *rep,
	  int64_t deadline)
{
	int r = ops->call(c, req, rep, deadline);
	double over = (double)(pm_now_ns() - deadline) / 1e6;

	/* what the core refuses as a plugin bug (core/node/peer.c) */
	if (r > 0 || (!r && (rep->msg_len > rep->msg_cap ||
			     rep->payload_len > rep->payload_cap))) {
		pthread_mutex_lock(&late_mu);
		if (!bad_n++)
			snprintf(bad_first, sizeof(bad_first),
				 "call returned %d with a reply of %u+%u bytes for buffers of %u+%u",
				 r, rep->msg_len, rep->payload_len,
				 rep->msg_cap, rep->payload_cap);
		pthread_mutex_unlock(&late_mu);
	}
	if (over > PM_CALL_LATE_MS) {
		pthread_mutex_lock(&late_mu);
		if (!late_n++ || over > late_max_ms) {
			late_max_ms = over;
			late_r = r;
		}
		pthread_mutex_unlock(&late_mu);
	}
	return r;
}

void late_reset(void)
{
	pthread_mutex_lock(&late_mu);
	late_n = 0;
	late_max_ms = 0;
	bad_n = 0;
	pthread_mutex_unlock(&late_mu);
}

bool late_report(char *why, size_t len)
{
	bool late;

	pthread_mutex_lock(&late_mu);
	late = late_n > 0 || bad_n > 0;
	if (bad_n)
		snprintf(why, len, "%d call(s) broke the return contract (0 or -errno, lengths within the buffers), the first: %s",
			 bad_n, bad_first);
	else if (late)
		snprintf(why, len, "%d call(s) returned more than PM_CALL_LATE_MS (%d ms) after their deadline, the latest %.0f ms after it (returning %d): the core counts such a peer dead",
			 late_n, PM_CALL_LATE_MS, late_max_ms, late_r);
	late_n = 0;	/* reported once */
	late_max_ms = 0;
	bad_n = 0;
	pthread_mutex_unlock(&late_mu);
	return late;
}

int64_t ms_from_now(int ms)
{
	return pm_now_ns() + (int64_t)ms * 1000000;
}

double ms_since(int64_t t0)
{
	return (double)(pm_now_ns() - t0) / 1e6;
}

/* xorshift64*: fast, and reproducible from the printed seed */
uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

void rand_fill(uint64_t *s, uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (uint8_t)(rng_next(s) >> 32);
}

/* ts = now + ms on clock clk. */
static void ts_after_ms(struct timespec *ts, clockid_t clk, int ms)
{
	clock_gettime(clk, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* Wait helpers for threads: pthread_timedjoin_np counts in CLOCK_REALTIME. */
int join_ms(pthread_t th, int ms)
{
	struct timespec ts;

	ts_after_ms(&ts, CLOCK_REALTIME, ms);
	return pthread_timedjoin_np(th, NULL, &ts);
}

/* A deadline for condition variables made by cond_init_mono(). */
void mono_deadline(struct timespec *ts, int ms)
{
	ts_after_ms(ts, CLOCK_MONOTONIC, ms);
}

void cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

void eb_init(struct errbox *e)
{
	memset(e, 0, sizeof(*e));
	pthread_mutex_init(&e->mu, NULL);
}

/* On the heap, like the fixtures (see fix_up): worker threads a failed
 * test leaves behind may still note into it. */
struct errbox *eb_new(void)
{
	struct errbox *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	eb_init(e);
	return e;
}

void eb_note(struct errbox *e, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&e->mu);
	if (!e->n++) {
		va_start(ap, fmt);
		vsnprintf(e->first, sizeof(e->first), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&e->mu);
}

static void ih_vlog(void *ctx, int level, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void ih_log(void *ctx, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void ih_log(void *ctx, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ih_vlog(ctx, level, fmt, ap);
	va_end(ap);
}

static void ih_vlog(void *ctx, int level, const char *fmt, va_list ap)
{
	struct ihost *ih = ctx;
	char msg[900];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (level <= PM_LOG_WARN) {
		pthread_mutex_lock(&ih->mu);
		snprintf(ih->lines[ih->nlines++ % IH_LINES],
			 sizeof(ih->lines[0]), "%.511s", msg);
		pthread_mutex_unlock(&ih->mu);
	}
	if (level > pm_log_default.level)
		return;
	pm_log(level, "transport %s [%s]: %s", plug.name, ih->label, msg);
}

int ih_count_lines(struct ihost *ih, const char *needle)
{
	int i, n = 0;

	pthread_mutex_lock(&ih->mu);
	for (i = 0; i < IH_LINES && i < ih->nlines; i++) {
		const char *at = ih->lines[i];

		while ((at = strstr(at, needle))) {
			at += strlen(needle);
			if (*at < '0' || *at > '9') {
				n++;
				break;
			}
		}
	}
	pthread_mutex_unlock(&ih->mu);
	return n;
}

static int ih_cfg_string(void *ctx, const char *key, const char **out)
{
	struct ihost *ih = ctx;

	if (!strcmp(key, "listen") && ih->listen[0]) {
		*out = ih->listen;
		return 0;
	}
	return -ENOENT;
}

static int ih_cfg_int(void *ctx, const char *key, int64_t *out)
{
	struct ihost *ih = ctx;
	int i;

	for (i = 0; i < ih->nints; i++) {
		if (strcmp(ih->ints[i].key, key))
			continue;
		pthread_mutex_lock(&ih->mu);
		ih->asked |= 1u << i;
		pthread_mutex_unlock(&ih->mu);
		*out = ih->ints[i].val;
		return 0;
	}
	return -ENOENT;
}

void ih_set_int(struct ihost *ih, const char *key, int64_t val)
{
	assert_true(ih->nints < IH_INTS);
	ih->ints[ih->nints++] = (struct ih_int){ key, val };
}

bool ih_asked(struct ihost *ih, const char *key)
{
	bool yes = false;
	int i;

	pthread_mutex_lock(&ih->mu);
	for (i = 0; i < ih->nints; i++)
		if (!strcmp(ih->ints[i].key, key))
			yes = ih->asked & (1u << i);
	pthread_mutex_unlock(&ih->mu);
	return yes;
}

void ih_setup(struct ihost *ih, const char *listen, const char *label)
{
	memset(ih, 0, sizeof(*ih));
	pthread_mutex_init(&ih->mu, NULL);
	snprintf(ih->listen, sizeof(ih->listen), "%s", listen);
	snprintf(ih->label, sizeof(ih->label), "%s", label);
	ih->host.size = sizeof(ih->host);
	ih->host.abi_major = PM_TRANSPORT_ABI_MAJOR;
	ih->host.abi_minor = PM_TRANSPORT_ABI_MINOR;
	ih->host.ctx = ih;
	ih->host.name = plug.name;
	ih->host.page_size = PM_PAGE_SIZE;
	ih->host.log = ih_log;
	ih->host.vlog = ih_vlog;
	ih->host.cfg_string = ih_cfg_string;
	ih->host.cfg_int = ih_cfg_int;
}

/* --- endpoints ----------------------------------------------------------- */

/* "HOST:PORT" or "[V6]:PORT" -> host, port (minport..65535); false for
 * anything else. */
static bool parse_hostport(const char *ep, char *host, size_t hlen,
			   char *port, size_t plen, long minport)
{
	const char *colon = strrchr(ep, ':');
	const char *h = ep;
	size_t n;
	char *end;
	long v;

	if (!colon || colon == ep)
		return false;
	n = colon - ep;
	if (ep[0] == '[') {
		if (n < 3 || ep[n - 1] != ']')
			return false;
		h = ep + 1;
		n -= 2;
	}
	if (n >= hlen || strlen(colon + 1) >= plen)
		return false;
	errno = 0;
	v = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || v < minport || v > 65535)
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	snprintf(port, plen, "%s", colon + 1);
	return true;
}

/*
 * A stream transport: its endpoint is HOST:PORT of a TCP listener, so raw
 * sockets can reach it. An RDMA transport's IP:PORT is an rdma_cm address,
 * not a TCP port.
 */
bool is_stream(const char *ep, char *host, size_t hlen, char *port,
	       size_t plen)
{
	return !(ops->caps & PM_CAP_RDMA) &&
	       parse_hostport(ep, host, hlen, port, plen, 1);
}

bool is_stream_listen(const char *addr)
{
	char host[PM_ENDPOINT_MAX], port[16];

	return !(ops->caps & PM_CAP_RDMA) &&
	       parse_hostport(addr, host, sizeof(host), port, sizeof(port), 0);
}
