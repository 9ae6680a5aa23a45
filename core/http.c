// SPDX-License-Identifier: MIT
/* HTTP plumbing shared by the coordinator server and the metrics endpoint:
 * listen-address parsing and starting a libmicrohttpd daemon on it. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "http.h"
#include "log.h"

int http_parse_listen(const char *listen, struct sockaddr_storage *ss,
		      socklen_t *sslen, char *err, size_t errlen)
{
	struct addrinfo hints = { 0 }, *res = NULL;
	char host[256], *port, *end;
	const char *h;
	long p;
	int r;

	if (!listen || strlen(listen) >= sizeof(host)) {
		snprintf(err, errlen, "listen address missing or too long");
		return -EINVAL;
	}
	snprintf(host, sizeof(host), "%s", listen);
	if (host[0] == '[') {
		end = strchr(host, ']');
		if (!end || end[1] != ':') {
			snprintf(err, errlen,
				 "listen address '%s': expected [IPV6]:PORT",
				 listen);
			return -EINVAL;
		}
		*end = '\0';
		h = host + 1;
		port = end + 2;
	} else {
		port = strrchr(host, ':');
		if (!port) {
			snprintf(err, errlen,
				 "listen address '%s': expected HOST:PORT",
				 listen);
			return -EINVAL;
		}
		*port++ = '\0';
		h = host;
	}
	errno = 0;
	p = strtol(port, &end, 10);
	if (!*port || *end || errno || p < 0 || p > 65535) {
		snprintf(err, errlen,
			 "listen address '%s': port '%s' is not a number in [0, 65535]",
			 listen, port);
		return -EINVAL;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (!*h || !strcmp(h, "*"))
		h = NULL;
	r = getaddrinfo(h, port, &hints, &res);
	if (r || !res) {
		snprintf(err, errlen, "listen address '%s': %s", listen,
			 r ? gai_strerror(r) : "no address");
		return -EINVAL;
	}
	if (res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		snprintf(err, errlen, "listen address '%s': address too long",
			 listen);
		return -EINVAL;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* libmicrohttpd's own complaints go through our logger. */
static void httpd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	pm_dbg("httpd: %s", line);
}

/* Bound here, not by libmicrohttpd, so that a failure says why; with its
 * backlog (a short one drops a burst of connections). The socket, or
 * -errno. */
static int listen_fd(const struct sockaddr_storage *ss, socklen_t sslen)
{
	int fd, one = 1, r;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (const struct sockaddr *)ss, sslen) ||
	    listen(fd, SOMAXCONN)) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int http_start(const char *listen, void *handler, void *handler_cls,
	       void *completed, void *completed_cls, int conn_limit,
	       struct MHD_Daemon **out, int *port, char *err, size_t errlen)
{
	return http_start_opts(listen, handler, handler_cls, completed,
			       completed_cls, conn_limit, 0, 30, out, port,
			       err, errlen);
}

int http_start_opts(const char *listen, void *handler, void *handler_cls,
		    void *completed, void *completed_cls, int conn_limit,
		    int per_ip_limit, int idle_s, struct MHD_Daemon **out,
		    int *port, char *err, size_t errlen)
{
	/* ITC: MHD_quiesce_daemon() needs it, for a graceful stop. */
	unsigned int flags = MHD_USE_THREAD_PER_CONNECTION |
			     MHD_USE_INTERNAL_POLLING_THREAD |
			     MHD_USE_ITC | MHD_USE_ERROR_LOG;
	struct sockaddr_storage ss, bound;
	socklen_t sslen, blen = sizeof(bound);
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *d;
	int r, fd;

	r = http_parse_listen(listen, &ss, &sslen, err, errlen);
	if (r)
		return r;
	fd = listen_fd(&ss, sslen);
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", listen,
			 strerror(-fd));
		return fd;
	}
	/*
	 * One thread per connection so that a long-polling request cannot
	 * stall the others; the connection limits bound the threads (in all,
	 * and those one address can hold) and the idle timeout frees those
	 * of clients that went quiet.
	 */
	d = MHD_start_daemon(flags, 0, NULL, NULL,
			     (MHD_AccessHandlerCallback)handler, handler_cls,
			     MHD_OPTION_LISTEN_SOCKET, fd,
			     MHD_OPTION_CONNECTION_LIMIT,
			     (unsigned int)conn_limit,
			     MHD_OPTION_PER_IP_CONNECTION_LIMIT,
			     (unsigned int)per_ip_limit,
			     MHD_OPTION_CONNECTION_TIMEOUT,
			     (unsigned int)idle_s,
			     MHD_OPTION_NOTIFY_COMPLETED,
			     (MHD_RequestCompletedCallback)completed,
			     completed_cls,
			     MHD_OPTION_EXTERNAL_LOGGER, httpd_log, NULL,
			     MHD_OPTION_END);
	if (!d) {
		close(fd);
		snprintf(err, errlen, "cannot serve HTTP on %s", listen);
		return -EIO;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_LISTEN_FD);
	if (!info || getsockname(info->listen_fd, (struct sockaddr *)&bound,
				 &blen)) {
		MHD_stop_daemon(d);
		snprintf(err, errlen, "%s: cannot read the bound port", listen);
		return -EIO;
	}
	if (bound.ss_family == AF_INET6)
		*port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
	else
		*port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
	*out = d;
	return 0;
}

void http_peer_name(struct MHD_Connection *conn, char *out, size_t len)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
			MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char host[NI_MAXHOST], serv[NI_MAXSERV];
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	socklen_t sl;

	snprintf(out, len, "an unknown address");
	if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return;
	sl = sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
				      : sizeof(struct sockaddr_in6);
	if (getnameinfo(sa, sl, host, sizeof(host), serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV))
		return;
	snprintf(out, len, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
		 host, serv);
}
