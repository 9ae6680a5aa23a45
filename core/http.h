/* SPDX-License-Identifier: MIT */
/* HTTP plumbing shared by the coordinator server and the metrics endpoint:
 * listen addresses and a libmicrohttpd daemon serving on one. */
#ifndef PM_HTTP_H
#define PM_HTTP_H

#include <stddef.h>
#include <sys/socket.h>

struct MHD_Connection;
struct MHD_Daemon;

/*
 * "HOST:PORT", "[V6]:PORT" or ":PORT" (any address) -> socket address.
 * 0 or -EINVAL with a message naming listen in err.
 */
int http_parse_listen(const char *listen, struct sockaddr_storage *ss,
		      socklen_t *sslen, char *err, size_t errlen);

/*
 * Start a libmicrohttpd daemon, one thread per connection, on listen, with
 * handler and completion callback (MHD's types, kept opaque here so that
 * users of http.h need not include microhttpd.h). *port gets the bound
 * port. 0 or -errno with a message in err.
 */
int http_start(const char *listen, void *handler, void *handler_cls,
	       void *completed, void *completed_cls, int conn_limit,
	       struct MHD_Daemon **out, int *port, char *err, size_t errlen);

/*
 * The same with per_ip_limit connections at most from one address (0: no
 * such limit) and connections idle for idle_s seconds closed (http_start:
 * no per-address limit, 30 s).
 */
int http_start_opts(const char *listen, void *handler, void *handler_cls,
		    void *completed, void *completed_cls, int conn_limit,
		    int per_ip_limit, int idle_s, struct MHD_Daemon **out,
		    int *port, char *err, size_t errlen);

/* "ADDR:PORT" ("[V6]:PORT") of the client of conn, for log lines. */
void http_peer_name(struct MHD_Connection *conn, char *out, size_t len);

#endif
