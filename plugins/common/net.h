/* SPDX-License-Identifier: MIT */
/*
 * Socket helpers shared by the stream transports (tcp, io_uring-tcp):
 * endpoint strings <-> sockaddr, listening and dialling sockets, and
 * read/write-all bounded by a CLOCK_MONOTONIC deadline. Header-only.
 *
 * Every function returns 0 (or a count) or a negative errno. Deadlines are
 * absolute pm_now_ns() values; PM_NET_FOREVER waits until the socket is
 * shut down (receive threads that a shutdown() wakes).
 */
#ifndef PAGEMESH_PLUGIN_NET_H
#define PAGEMESH_PLUGIN_NET_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <pagemesh/transport.h>

/* The ABI 1.1 any_listen op of a stream transport: any free port on the
 * IPv4 loopback. */
static inline int pm_net_any_listen(char *buf, size_t len)
{
	return snprintf(buf, len, "127.0.0.1:0") >= (int)len ? -ENOSPC : 0;
}

/* Setting key of a plugin (its name when the host gives none): *v, def
 * when unset; -EINVAL (logged) outside lo..hi. */
static inline int pm_net_cfg_range(const struct pm_host *host,
				   const char *plugin, const char *key,
				   int64_t def, int64_t lo, int64_t hi,
				   int64_t *v)
{
	int r = host->cfg_int(host->ctx, key, v);

	if (r == -ENOENT) {
		*v = def;
		return 0;
	}
	if (r < 0 || *v < lo || *v > hi) {
		host->log(host->ctx, PM_LOG_ERROR,
			  "transports.%s.%s must be an integer in %lld..%lld",
			  host->name ? host->name : plugin, key,
			  (long long)lo, (long long)hi);
		return -EINVAL;
	}
	return 0;
}

#define PM_NET_FOREVER ((int64_t)-1)

/* Longest printable address: "[" v6 "]:" port NUL. */
#define PM_NET_ADDRSTR_MAX (INET6_ADDRSTRLEN + 9)

/*
 * Parse "HOST:PORT" or "[V6ADDR]:PORT" into ss and sslen. HOST is a numeric
 * IPv4 or IPv6 address, "localhost" (127.0.0.1) or "*" / "" (any address,
 * for listening). Names are not resolved: a resolver wait has no deadline
 * we control, and endpoints come from the coordinator already numeric.
 * PORT is 0..65535 (0 = ephemeral, for listening). On -EINVAL, err says
 * what was wrong.
 */
static inline int pm_net_parse(const char *ep, struct sockaddr_storage *ss,
			       socklen_t *sslen, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *h, *hend, *p;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	unsigned long port;
	size_t hlen;
	char *end;

	if (!ep) {
		snprintf(err, errlen, "endpoint is missing");
		return -EINVAL;
	}
	if (ep[0] == '[') {
		h = ep + 1;
		hend = strchr(h, ']');
		if (!hend || hend[1] != ':') {
			snprintf(err, errlen,
				 "endpoint '%s': expected [V6ADDR]:PORT", ep);
			return -EINVAL;
		}
		p = hend + 2;
	} else {
		h = ep;
		hend = strrchr(ep, ':');
		if (!hend) {
			snprintf(err, errlen,
				 "endpoint '%s': expected HOST:PORT", ep);
			return -EINVAL;
		}
		p = hend + 1;
	}
	hlen = (size_t)(hend - h);
	if (hlen >= sizeof(host)) {
		snprintf(err, errlen, "endpoint '%s': host part too long", ep);
		return -EINVAL;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';

	if (*p < '0' || *p > '9') {
		snprintf(err, errlen, "endpoint '%s': port is not a number",
			 ep);
		return -EINVAL;
	}
	errno = 0;
	port = strtoul(p, &end, 10);
	if (errno || *end != '\0' || port > 65535) {
		snprintf(err, errlen,
			 "endpoint '%s': port must be 0..65535", ep);
		return -EINVAL;
	}

	memset(ss, 0, sizeof(*ss));
	if (ep[0] == '[') {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) {
			snprintf(err, errlen,
				 "endpoint '%s': '%s' is not an IPv6 address",
				 ep, host);
			return -EINVAL;
		}
		*sslen = sizeof(*s6);
		return 0;
	}
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	if (host[0] == '\0' || strcmp(host, "*") == 0) {
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
	} else if (strcmp(host, "localhost") == 0) {
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
		snprintf(err, errlen,
			 "endpoint '%s': '%s' is not a numeric IPv4 address (IPv6 goes in brackets)",
			 ep, host);
		return -EINVAL;
	}
	*sslen = sizeof(*s4);
	return 0;
}

/* "127.0.0.1:7701" or "[::1]:7701". -ENOSPC if buf is too small. */
static inline int pm_net_format(const struct sockaddr *sa, char *buf,
				size_t len)
{
	char host[INET6_ADDRSTRLEN];
	int n;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		n = snprintf(buf, len, "%s:%u", host, ntohs(s4->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		n = snprintf(buf, len, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		n = snprintf(buf, len, "(family %d)", sa->sa_family);
	}
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return 0;
}

/* The printable address of fd's peer (or local end), for log lines. */
static inline void pm_net_fd_name(int fd, int local, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int r;

	r = local ? getsockname(fd, (struct sockaddr *)&ss, &sl) :
		    getpeername(fd, (struct sockaddr *)&ss, &sl);
	if (r < 0 || pm_net_format((struct sockaddr *)&ss, buf, len) < 0)
		snprintf(buf, len, "fd %d", fd);
}

/* Linux 6.15's per-socket cap on the retransmission timeout; older headers
 * lack the name, older kernels refuse it (ENOPROTOOPT), which is fine. */
#ifndef TCP_RTO_MAX_MS
#define TCP_RTO_MAX_MS 44
#endif
/* The smallest cap the kernel takes. */
#define PM_NET_RTO_MAX_MS 1000

/*
 * The socket options of request/reply traffic. Small requests must leave
 * at once, not wait for Nagle's timer. And the traffic is a thin stream
 * (a few segments in flight): a lost segment is found by the
 * retransmission timer, not by duplicate acks, and with the timer's
 * exponential backoff a segment lost three times stalls a call for 1.4 s
 * (200 + 400 + 800 ms); linear timeouts for thin streams make it 0.6 s.
 * But those are linear only while fewer than 4 segments are in flight, and
 * only for the first 6 tries: past them the timer doubles up to 120 s, so
 * under heavy loss one segment lost 7 times stalls its connection for over
 * half a minute, longer than any deadline of the pager. Capping the timer
 * at 1 s bounds that stall by the number of losses, not by 2 to their
 * power: 20 % loss needs 20 losses in a row (p = 1e-14) for a 20 s stall.
 * The options are hints: a kernel without them is not an error. The cap is
 * set before connect so that it covers the SYN too.
 */
static inline int pm_net_rpc_tune(int fd)
{
	int one = 1, rto_max = PM_NET_RTO_MAX_MS;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return -errno;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, &one,
			 sizeof(one));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_RTO_MAX_MS, &rto_max,
			 sizeof(rto_max));
	return 0;
}

/*
 * Wait until fd has one of events (or an error/hang-up, which the next I/O
 * reports), at most until deadline_ns. 0 ready, -ETIMEDOUT, -errno.
 */
static inline int pm_net_wait(int fd, short events, int64_t deadline_ns)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	struct timespec ts, *tsp = NULL;
	int64_t left;
	int r;

	for (;;) {
		if (deadline_ns != PM_NET_FOREVER) {
			left = deadline_ns - pm_now_ns();
			if (left <= 0)
				return -ETIMEDOUT;
			ts.tv_sec = left / 1000000000;
			ts.tv_nsec = left % 1000000000;
			tsp = &ts;
		}
		r = ppoll(&pfd, 1, tsp, NULL);
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/*
 * Write all of iov (which is consumed: bases and lengths move), waiting for
 * room at most until deadline_ns. Never raises SIGPIPE. 0, -ETIMEDOUT
 * (some bytes may have gone: the stream is then out of step and the caller
 * must close it), -EPIPE, -ECONNRESET, ...
 */
static inline int pm_net_writev_all(int fd, struct iovec *iov, int iovcnt,
				    int64_t deadline_ns)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
	ssize_t n;
	int r;

	while (mh.msg_iovlen > 0) {
		if (mh.msg_iov->iov_len == 0) {
			mh.msg_iov++;
			mh.msg_iovlen--;
			continue;
		}
		n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			r = pm_net_wait(fd, POLLOUT, deadline_ns);
			if (r < 0)
				return r;
			continue;
		}
		while (n > 0 && mh.msg_iovlen > 0) {
			size_t k = (size_t)n < mh.msg_iov->iov_len ?
				   (size_t)n : mh.msg_iov->iov_len;

			mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + k;
			mh.msg_iov->iov_len -= k;
			n -= (ssize_t)k;
			if (mh.msg_iov->iov_len == 0) {
				mh.msg_iov++;
				mh.msg_iovlen--;
			}
		}
	}
	return 0;
}

/*
 * Read exactly len bytes, at most until deadline_ns. 0, -ETIMEDOUT,
 * -ECONNRESET when the peer closed (also mid-way), -errno.
 */
static inline int pm_net_read_all(int fd, void *buf, size_t len,
				  int64_t deadline_ns)
{
	char *p = buf;
	ssize_t n;
	int r;

	while (len > 0) {
		n = recv(fd, p, len, MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		r = pm_net_wait(fd, POLLIN, deadline_ns);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * Read what is there (at least one byte), up to len, waiting at most until
 * deadline_ns. Returns the count, -ECONNRESET at end of stream,
 * -ETIMEDOUT, -errno. For buffered frame readers.
 */
static inline ssize_t pm_net_read_some(int fd, void *buf, size_t len,
				       int64_t deadline_ns)
{
	ssize_t n;
	int r;

	for (;;) {
		n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n > 0)
			return n;
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		r = pm_net_wait(fd, POLLIN, deadline_ns);
		if (r < 0)
			return r;
	}
}

/*
 * A non-blocking stream socket bound to and listening on sa. SO_REUSEADDR
 * so a restarted node rebinds its port at once. The request/reply options
 * are set here too, so that the SYN-ACKs of connections still in the
 * handshake get the capped timer. *out_fd on success.
 */
static inline int pm_net_listen(const struct sockaddr *sa, socklen_t salen,
				int backlog, int *out_fd)
{
	int fd, one = 1, r;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto err;
	r = pm_net_rpc_tune(fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	if (bind(fd, sa, salen) < 0)
		goto err;
	if (listen(fd, backlog) < 0)
		goto err;
	*out_fd = fd;
	return 0;
err:
	r = -errno;
	close(fd);
	return r;
}

/*
 * Dial sa; the socket comes back non-blocking with TCP_NODELAY. Waits at
 * most until deadline_ns; if cancel_fd >= 0 (an eventfd), it becoming
 * readable aborts the dial with -ECANCELED. -ECONNREFUSED, -ETIMEDOUT, ...
 */
static inline int pm_net_dial(const struct sockaddr *sa, socklen_t salen,
			      int64_t deadline_ns, int cancel_fd, int *out_fd)
{
	struct pollfd pfd[2];
	struct timespec ts;
	int fd, r, soerr;
	socklen_t sl = sizeof(soerr);
	int64_t left;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0)
		return -errno;
	r = pm_net_rpc_tune(fd);
	if (r < 0)
		goto err;
	if (connect(fd, sa, salen) == 0)
		goto done;
	if (errno != EINPROGRESS) {
		r = -errno;
		goto err;
	}
	for (;;) {
		left = deadline_ns - pm_now_ns();
		if (left <= 0) {
			r = -ETIMEDOUT;
			goto err;
		}
		ts.tv_sec = left / 1000000000;
		ts.tv_nsec = left % 1000000000;
		pfd[0] = (struct pollfd){ .fd = fd, .events = POLLOUT };
		pfd[1] = (struct pollfd){ .fd = cancel_fd, .events = POLLIN };
		r = ppoll(pfd, cancel_fd >= 0 ? 2 : 1, &ts, NULL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			r = -errno;
			goto err;
		}
		if (cancel_fd >= 0 && (pfd[1].revents & POLLIN)) {
			r = -ECANCELED;
			goto err;
		}
		if (pfd[0].revents)
			break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) {
		r = -errno;
		goto err;
	}
	if (soerr) {
		r = -soerr;
		goto err;
	}
done:
	*out_fd = fd;
	return 0;
err:
	close(fd);
	return r;
}

/*
 * The ABI 1.2 test_raw_dial op of a stream transport: a plain TCP
 * connection to endpoint, blocking, nothing sent on it. The instance is not
 * needed: the suite's raw peer is any client that can reach the port.
 */
static inline int pm_net_test_raw_dial(struct pm_tctx *t, const char *ep,
				       int64_t deadline_ns, int *out_fd)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char err[160];
	int fd = -1, r;

	(void)t;
	r = pm_net_parse(ep, &ss, &sl, err, sizeof(err));
	if (r < 0)
		return r;
	r = pm_net_dial((struct sockaddr *)&ss, sl, deadline_ns, -1, &fd);
	if (r < 0)
		return r;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*out_fd = fd;
	return 0;
}

#endif /* PAGEMESH_PLUGIN_NET_H */
