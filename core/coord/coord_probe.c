// SPDX-License-Identifier: MIT
/* The coordinator's operational endpoints: GET /healthz (it answers),
 * /readyz (it serves, and is not stopping) and /metrics (Prometheus text:
 * clusters, their sizes, live members and parked long-polls). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "coord_srv.h"

static enum MHD_Result send_text(struct MHD_Connection *conn,
				 unsigned int status, const char *ctype,
				 char *text, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_plain(struct MHD_Connection *conn,
				  unsigned int status, const char *msg)
{
	char *t = strdup(msg);

	return t ? send_text(conn, status, "text/plain; charset=utf-8", t,
			     strlen(t)) : MHD_NO;
}

/* A family's header, then its samples: one per cluster. */
static void family(FILE *f, const char *name, const char *type,
		   const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static enum MHD_Result send_metrics(struct coord_server *s,
				    struct MHD_Connection *conn)
{
	static const struct {
		const char *name, *help;
	} per[] = {
		{ "pagemesh_coordinator_cluster_nodes",
		  "Nodes the cluster was created with." },
		{ "pagemesh_coordinator_live_nodes",
		  "Nodes registered and not expired." },
		{ "pagemesh_coordinator_waiters",
		  "Long-polls parked on the cluster's membership." },
	};
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return MHD_NO;
	pthread_mutex_lock(&s->lock);
	family(f, "pagemesh_coordinator_info", "gauge",
	       "Always 1; the labels say which coordinator this is.");
	fprintf(f, "pagemesh_coordinator_info{version=\"%s\",signed_writes=\"%s\"} 1\n",
		PM_VERSION, s->keylen ? "yes" : "no");
	family(f, "pagemesh_coordinator_clusters", "gauge",
	       "Clusters this coordinator serves.");
	fprintf(f, "pagemesh_coordinator_clusters %d\n", s->n_clusters);
	family(f, "pagemesh_coordinator_open_polls", "gauge",
	       "Unsigned long-polls parked (at most 32).");
	fprintf(f, "pagemesh_coordinator_open_polls %d\n", s->open_polls);
	family(f, "pagemesh_coordinator_active_requests", "gauge",
	       "Requests being served.");
	fprintf(f, "pagemesh_coordinator_active_requests %d\n", s->active);
	for (size_t k = 0; k < sizeof(per) / sizeof(per[0]); k++) {
		family(f, per[k].name, "gauge", per[k].help);
		for (int i = 0; i < s->n_clusters; i++) {
			const struct coord_cluster *cl = s->clusters[i];
			int v = cl->nodes;

			if (k == 1) {
				v = 0;
				for (int j = 0; j < cl->nodes; j++)
					v += cl->node[j].live;
			} else if (k == 2) {
				v = cl->waiters;
			}
			/* Names are plain (cfg_plain_name): no escaping. */
			fprintf(f, "%s{cluster=\"%s\"} %d\n", per[k].name,
				cl->name, v);
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (fclose(f)) {
		free(text);
		return MHD_NO;
	}
	return send_text(conn, MHD_HTTP_OK,
			 "text/plain; version=0.0.4; charset=utf-8", text, len);
}

bool coord_probe(struct coord_server *s, struct MHD_Connection *conn,
		 const char *url, const char *method, enum MHD_Result *ret)
{
	bool stopping;

	if (strcmp(url, "/healthz") && strcmp(url, "/readyz") &&
	    strcmp(url, "/metrics"))
		return false;
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		*ret = send_plain(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
				  "use GET\n");
		return true;
	}
	if (!strcmp(url, "/healthz")) {
		*ret = send_plain(conn, MHD_HTTP_OK, "ok\n");
		return true;
	}
	if (!strcmp(url, "/readyz")) {
		pthread_mutex_lock(&s->lock);
		stopping = s->stopping;
		pthread_mutex_unlock(&s->lock);
		*ret = stopping ? send_plain(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
					     "stopping\n")
				: send_plain(conn, MHD_HTTP_OK, "ready\n");
		return true;
	}
	*ret = send_metrics(s, conn);
	return true;
}
