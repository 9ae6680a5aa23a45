// SPDX-License-Identifier: MIT
/* libFuzzer target for what the coordinator code reads from the network:
 * request bodies and paths at the embedded server, and the answers the
 * client parses (embedded /endpoints, etcd /v3/kv/range), and the
 * X-Pagemesh-Auth header at a server with a key, all over real HTTP on
 * loopback. Input byte 0 picks which; the rest is the payload. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <microhttpd.h>

#include "coord.h"
#include "http.h"
#include "log.h"

static struct coord_server *srv, *srv_key;
static struct MHD_Daemon *fake;
static int srv_port, srv_key_port, fake_port;
static struct coord *emb, *etcd;
static CURL *curl;
static struct curl_slist *no_expect;	/* no 100-continue round trip */

/* What the fake server answers to anything but the set-up calls. */
static const uint8_t *fake_body;
static size_t fake_len;

static enum MHD_Result fake_handler(void *cls, struct MHD_Connection *conn,
				    const char *url, const char *method,
				    const char *version,
				    const char *upload_data,
				    size_t *upload_data_size, void **con_cls)
{
	static const char cluster[] = "{\"name\":\"f\",\"nodes\":4,"
		"\"memory_mb\":64,\"ttl_ms\":1000,\"version\":1}";
	static const char txn[] = "{\"succeeded\":true}";
	struct MHD_Response *r;
	enum MHD_Result ret;
	const void *body;
	size_t len;

	(void)cls;
	(void)method;
	(void)version;
	(void)upload_data;
	if (!*con_cls) {
		*con_cls = fake;
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!strcmp(url, "/clusters")) {
		body = cluster;
		len = strlen(cluster);
	} else if (!strcmp(url, "/v3/kv/txn")) {
		body = txn;
		len = strlen(txn);
	} else {
		body = fake_len ? (const void *)fake_body : "";
		len = fake_len;
	}
	r = MHD_create_response_from_buffer(len, (void *)body,
					    MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static void open_client(const char *backend, struct coord **out)
{
	static struct cfg c;

	memset(&c, 0, sizeof(c));
	snprintf(c.coord_backend, sizeof(c.coord_backend), "%s", backend);
	c.n_coord_urls = 1;
	snprintf(c.coord_urls[0], sizeof(c.coord_urls[0]),
		 "http://127.0.0.1:%d", fake_port);
	snprintf(c.cluster_name, sizeof(c.cluster_name), "f");
	snprintf(c.path, sizeof(c.path), "fuzz");
	c.cluster_nodes = 4;
	c.memory = 64 << 20;
	if (coord_open(&c, out)) {
		fprintf(stderr, "coord_fuzz: cannot open the %s client\n",
			backend);
		abort();
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const unsigned char key[32] = { 0x5a };
	char err[256];

	(void)argc;
	(void)argv;
	pm_log_default.level = -1;	/* bad input is the point: no log flood */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (coord_server_start("127.0.0.1:0", 1000, &srv, err, sizeof(err)) ||
	    http_start("127.0.0.1:0", (void *)fake_handler, NULL, NULL, NULL,
		       16, &fake, &fake_port, err, sizeof(err))) {
		fprintf(stderr, "coord_fuzz: %s\n", err);
		abort();
	}
	if (coord_server_start("127.0.0.1:0", 1000, &srv_key, err,
			       sizeof(err)) ||
	    coord_server_set_key(srv_key, key, sizeof(key))) {
		fprintf(stderr, "coord_fuzz: cannot start the keyed server\n");
		abort();
	}
	srv_key_port = coord_server_port(srv_key);
	srv_port = coord_server_port(srv);
	open_client("embedded", &emb);
	open_client("etcd", &etcd);
	curl = curl_easy_init();
	no_expect = curl_slist_append(NULL, "Expect:");
	return 0;
}

static size_t sink(char *p, size_t sz, size_t nm, void *arg)
{
	(void)p;
	(void)arg;
	return sz * nm;
}

/* One request to the real server: route from sel, body as given. */
static void to_server(uint8_t sel, const uint8_t *body, size_t len)
{
	static const char *const paths[] = {
		"/clusters", "/nodes/%u/endpoint", "/nodes/%u/heartbeat",
		"/nodes/%u", "/endpoints?wait=%u&timeout_ms=0",
		"/clusters/%u", "/nodes/%u/endpoint?cluster=f%u",
	};
	static const char *const methods[] = { "POST", "GET", "DELETE",
					       "PUT" };
	char url[256], path[128];
	unsigned int id = (sel >> 4) % 70;

	snprintf(path, sizeof(path), paths[sel % 7], id, id);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", srv_port, path);
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROXY, "");
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST,
			 methods[(sel >> 3) & 3]);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, (const char *)body);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, no_expect);
	curl_easy_perform(curl);
}

/*
 * An X-Pagemesh-Auth value: parsed here, then sent to the keyed server
 * (up to the first byte a header cannot carry).
 */
static void auth_header(const uint8_t *data, size_t len)
{
	char nonce[AUTH_REQ_NONCE_HEX + 1], mac[AUTH_REQ_MAC_HEX + 1];
	char hdr[600], url[128];
	struct curl_slist *h;
	const char *why;
	int64_t ts;
	size_t i, n;

	n = snprintf(hdr, sizeof(hdr), COORD_AUTH_HEADER ": ");
	for (i = 0; i < len && n + 1 < sizeof(hdr); i++) {
		if (data[i] < 0x20 || data[i] > 0x7e)
			break;
		hdr[n++] = (char)data[i];
	}
	hdr[n] = '\0';
	auth_request_parse(hdr + strlen(COORD_AUTH_HEADER ": "), &ts, nonce,
			   mac, &why);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/clusters?cluster=f",
		 srv_key_port);
	h = curl_slist_append(NULL, hdr);
	h = curl_slist_append(h, "Expect:");
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROXY, "");
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "{}");
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	curl_easy_perform(curl);
	curl_slist_free_all(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct coord_member m[8];
	uint64_t v;
	int n;

	if (size < 2)
		return 0;
	switch (data[0] % 4) {
	case 0:
		to_server(data[1], data + 2, size - 2);
		break;
	case 1:	/* the embedded server's /endpoints answer */
		fake_body = data + 1;
		fake_len = size - 1;
		coord_members(emb, 0, 0, m, 8, &n, &v);
		break;
	case 2:	/* etcd's /v3/kv/range answer */
		fake_body = data + 1;
		fake_len = size - 1;
		coord_members(etcd, 0, 0, m, 8, &n, &v);
		break;
	case 3:
		auth_header(data + 1, size - 1);
		break;
	}
	return 0;
}
