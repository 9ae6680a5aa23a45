// SPDX-License-Identifier: MIT
/* `pagemesh coordinator`: options, the -c file, and the run loop around the
 * embedded coordinator server (coord_server.c). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "cli.h"
#include "coord.h"
#include "log.h"

static void coordinator_usage(FILE *f)
{
	fprintf(f,
"usage: pagemesh coordinator -c FILE | --listen ADDR:PORT [--ttl-ms N]\n"
"                            [--key-file FILE]\n"
"\n"
"Runs the embedded coordinator (HTTP+JSON) until SIGINT or SIGTERM.\n"
"\n"
"  -c, --config FILE   read  coordinator = { listen = \"127.0.0.1:7700\";\n"
"                      ttl_ms = 5000; }  (a node config works too)\n"
"  -l, --listen ADDR:PORT\n"
"                      address to serve on (port 0: any free port); wins\n"
"                      over the file's\n"
"  -t, --ttl-ms N      a node without heartbeat for N ms drops out\n"
"                      (default %d)\n"
"  -k, --key-file FILE cluster key: writes (POST, DELETE) must be signed\n"
"                      with it (header %s, HMAC-SHA256;\n"
"                      the file's coordinator.key_file or\n"
"                      security.key_file works too)\n"
"  -h, --help          this text\n"
"\n"
"On start it prints 'listening on http://ADDR:PORT' to stdout.\n"
"\n"
"API (JSON bodies; the cluster is the body's \"cluster\", else ?cluster=,\n"
"else \"%s\", which exists without a POST and takes node ids 0-63):\n"
"  POST /clusters {\"name\",\"nodes\",\"memory_mb\"}    201 (200 if the same)\n"
"  GET  /clusters/NAME                              200, 404\n"
"  POST /nodes/ID/endpoint {\"transport_type\":\"tcp\",\"tcp_addr\",\"tcp_port\",\n"
"       \"endpoint\"} (rdma adds rdma_qpn, rdma_lid, rdma_gid, rdma_psn)\n"
"  POST /nodes/ID/heartbeat                         200, 404 if expired\n"
"  DELETE /nodes/ID                                 leave now\n"
"  GET  /endpoints[?wait=V[&timeout_ms=T]]          {\"endpoints\":{...},\n"
"       \"version\":N}; wait holds until version > V (at most %d ms)\n"
"Errors: 400 (malformed JSON names the offset), 401 (unsigned write with\n"
"a key), 404, 405 (with Allow), 409 (cluster exists with another shape),\n"
"413 (body over %d bytes).\n",
		COORD_TTL_MS_DEFAULT, COORD_AUTH_HEADER, COORD_DEFAULT_CLUSTER,
		COORD_WAIT_MAX_MS, COORD_BODY_MAX);
}

/* coordinator.listen / coordinator.ttl_ms from a libconfig file. */
static int coordinator_config(const char *path, char *listen, size_t llen,
			      int *ttl_ms, char *keyfile, size_t klen)
{
	static const char *const keykeys[] = { "coordinator.key_file",
					       "security.key_file" };
	size_t k;
	config_setting_t *s;
	const char *str;
	long long v;
	config_t lc;
	int r = PM_EXIT_CONFIG;

	config_init(&lc);
	if (!config_read_file(&lc, path)) {
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
			fprintf(stderr, "pagemesh coordinator: %s: cannot read: %s\n",
				path, strerror(errno ? errno : ENOENT));
		else
			fprintf(stderr, "pagemesh coordinator: %s:%d: syntax error: %s\n",
				path, config_error_line(&lc),
				config_error_text(&lc));
		goto out;
	}
	s = config_lookup(&lc, "coordinator.listen");
	if (s) {
		str = config_setting_get_string(s);
		if (!str || !*str || strlen(str) >= llen) {
			fprintf(stderr, "pagemesh coordinator: %s:%u: coordinator.listen: expected a \"HOST:PORT\" string\n",
				path, config_setting_source_line(s));
			goto out;
		}
		if (!*listen)
			snprintf(listen, llen, "%s", str);
	}
	s = config_lookup(&lc, "coordinator.ttl_ms");
	if (s) {
		if (config_setting_type(s) != CONFIG_TYPE_INT &&
		    config_setting_type(s) != CONFIG_TYPE_INT64) {
			fprintf(stderr, "pagemesh coordinator: %s:%u: coordinator.ttl_ms: expected an integer\n",
				path, config_setting_source_line(s));
			goto out;
		}
		v = config_setting_get_int64(s);
		if (v < 50 || v > 3600000) {
			fprintf(stderr, "pagemesh coordinator: %s:%u: coordinator.ttl_ms: %lld is out of range [50, 3600000]\n",
				path, config_setting_source_line(s), v);
			goto out;
		}
		if (*ttl_ms < 0)
			*ttl_ms = (int)v;
	}
	for (k = 0; k < 2 && !*keyfile; k++) {
		s = config_lookup(&lc, keykeys[k]);
		if (!s)
			continue;
		str = config_setting_get_string(s);
		if (!str || !*str || strlen(str) >= klen) {
			fprintf(stderr, "pagemesh coordinator: %s:%u: %s: expected a file name\n",
				path, config_setting_source_line(s),
				keykeys[k]);
			goto out;
		}
		snprintf(keyfile, klen, "%s", str);
	}
	if (!*listen) {
		fprintf(stderr, "pagemesh coordinator: %s: missing key 'coordinator.listen' (or give --listen)\n",
			path);
		goto out;
	}
	r = 0;
out:
	config_destroy(&lc);
	return r;
}

int cmd_coordinator(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "ttl-ms", required_argument, NULL, 't' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char listen[256] = "", err[PATH_MAX + 128], keyfile[PATH_MAX] = "";
	unsigned char *key = NULL;
	size_t keylen = 0;
	char *end;
	const char *config = NULL;
	struct coord_server *s;
	sigset_t set;
	int ttl_ms = -1, opt, sig, r;
	long v;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:l:t:k:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 'l':
			snprintf(listen, sizeof(listen), "%s", optarg);
			break;
		case 't':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (!*optarg || *end || errno || v < 50 ||
			    v > 3600000) {
				fprintf(stderr, "pagemesh coordinator: --ttl-ms '%s': expected milliseconds in [50, 3600000]\n",
					optarg);
				return PM_EXIT_USAGE;
			}
			ttl_ms = (int)v;
			break;
		case 'k':
			snprintf(keyfile, sizeof(keyfile), "%s", optarg);
			break;
		case 'h':
			coordinator_usage(stdout);
			return PM_EXIT_OK;
		default:
			coordinator_usage(stderr);
			return PM_EXIT_USAGE;
		}
	}
	if (optind < argc || (!config && !*listen)) {
		coordinator_usage(stderr);
		return PM_EXIT_USAGE;
	}
	if (config) {
		r = coordinator_config(config, listen, sizeof(listen),
				       &ttl_ms, keyfile, sizeof(keyfile));
		if (r)
			return r;
	}
	if (ttl_ms < 0)
		ttl_ms = COORD_TTL_MS_DEFAULT;
	if (*keyfile) {
		key = malloc(AUTH_KEY_MAX + 1);
		if (!key)
			return PM_EXIT_RUNTIME;
		r = auth_load_key(keyfile, key, &keylen, err, sizeof(err));
		if (r) {
			fprintf(stderr, "pagemesh coordinator: %s\n", err);
			free(key);
			return PM_EXIT_CONFIG;
		}
	}

	/* Signals are taken by sigwait() below, not by any worker thread. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	pm_log_set_prefix("coordinator");
	r = coord_server_start(listen, ttl_ms, &s, err, sizeof(err));
	if (r) {
		free(key);
		fprintf(stderr, "pagemesh coordinator: %s\n", err);
		return r == -EINVAL ? PM_EXIT_USAGE : PM_EXIT_RUNTIME;
	}
	/* Keys were checked on load: this cannot fail on length. */
	if (key)
		coord_server_set_key(s, key, keylen);
	free(key);
	{
		char host[256];
		char *colon;

		snprintf(host, sizeof(host), "%s", listen);
		colon = strrchr(host, ':');
		if (colon)
			*colon = '\0';
		printf("listening on http://%s:%d (ttl %d ms)\n",
		       *host ? host : "0.0.0.0", coord_server_port(s), ttl_ms);
		fflush(stdout);
	}
	pm_info("serving on %s, port %d, ttl %d ms, writes %s", listen,
		coord_server_port(s), ttl_ms,
		keylen ? "signed with the cluster key" : "open to anyone");
	if (sigwait(&set, &sig))
		sig = SIGTERM;
	pm_info("stopping on signal %d", sig);
	coord_server_stop(s);
	return PM_EXIT_OK;
}
