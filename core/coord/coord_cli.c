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

#include "cli.h"
#include "coord.h"
#include "http.h"
#include "log.h"
#include "notify.h"

/* The table's entry of --ttl-ms and coordinator.ttl_ms, one range. */
static const struct cfg_key *ttl_key(void)
{
	return cfg_key_find("coordinator.ttl_ms");
}

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
"                      (%lld to %lld, default %lld)\n"
"  -k, --key-file FILE cluster key: writes (POST, DELETE) must be signed\n"
"                      with it (header %s: TS:NONCE:HMAC-SHA256,\n"
"                      each nonce taken once; the file's\n"
"                      coordinator.key_file or security.key_file works too)\n"
"  -h, --help          this text\n"
"\n"
"On start it prints 'listening on http://ADDR:PORT' to stdout.\n"
"\n"
"API (JSON bodies; the cluster is the body's \"cluster\", else ?cluster=,\n"
"else \"%s\", which exists without a POST and takes node ids 0-63):\n"
"  POST /clusters {\"name\",\"nodes\",\"memory_mb\"}    201 (200 if the same)\n"
"  GET  /clusters/NAME                              200, 404\n"
"  POST /nodes/ID/endpoint {\"transport_type\":\"tcp\",\"tcp_addr\",\"tcp_port\",\n"
"       \"endpoint\",\"incarnation\"} (rdma adds rdma_qpn, rdma_lid,\n"
"       rdma_gid, rdma_psn); incarnation: hex, the registering process's\n"
"  POST /nodes/ID/heartbeat {\"incarnation\"}         200, 404 if expired\n"
"  DELETE /nodes/ID [{\"incarnation\"}]              leave now\n"
"  GET  /endpoints[?wait=V[&timeout_ms=T]]          {\"endpoints\":{...},\n"
"       \"version\":N}; wait holds until version > V (at most %d ms;\n"
"       %d unsigned waits at once)\n"
"  GET  /healthz, /readyz (503 while stopping), /metrics (Prometheus text)\n"
"Errors: 400 (malformed JSON names the offset), 401 (with a key: a write\n"
"unsigned, or any request signed wrongly, stale or replayed), 404, 405\n"
"(with Allow), 409 (cluster exists with another shape; node id live for\n"
"another incarnation), 413 (body over %d bytes), 503 (unsigned waits\n"
"full).\n",
		(long long)ttl_key()->min, (long long)ttl_key()->max,
		(long long)ttl_key()->def, COORD_AUTH_HEADER,
		COORD_DEFAULT_CLUSTER, COORD_WAIT_MAX_MS,
		COORD_OPEN_POLLS_MAX, COORD_BODY_MAX);
}

/*
 * What flags left open, from the file c (a coordinator = { ... } group, or
 * a whole node config): listen, ttl and the key file; *keykey is the key
 * the key file came from. 0, or -EINVAL with "FILE:LINE: ..." in err.
 */
static int coordinator_config(const struct cfg *c, char *listen, size_t llen,
			      int *ttl_ms, char *keyfile, size_t klen,
			      const char **keykey, char *err, size_t errlen)
{
	static const char *const keykeys[] = { "coordinator.key_file",
					       "security.key_file" };
	const char *str;
	int64_t v;
	size_t k;

	/* cfg_read checked types, lengths and ranges against the table. */
	if (!*listen && !cfg_get_string(c, "coordinator.listen", &str, NULL)) {
		struct sockaddr_storage ss;
		char why[PATH_MAX];
		socklen_t sl;

		/* Here, not at start: a bad address in a file is the file's
		 * error (78, with its line), a bad --listen a usage one. */
		if (http_parse_listen(str, &ss, &sl, why, sizeof(why)))
			return cfg_fail_key(c, "coordinator.listen", err,
					    errlen, "coordinator.listen: %s",
					    why);
		snprintf(listen, llen, "%s", str);
	}
	if (*ttl_ms < 0 && !cfg_get_int(c, "coordinator.ttl_ms", &v, NULL))
		*ttl_ms = (int)v;
	for (k = 0; k < 2 && !*keyfile; k++) {
		if (cfg_get_string(c, keykeys[k], &str, NULL))
			continue;
		snprintf(keyfile, klen, "%s", str);
		*keykey = keykeys[k];
	}
	if (!*listen)
		return cfg_fail_key(c, "coordinator.listen", err, errlen,
				    "missing key 'coordinator.listen' (or give --listen)");
	return 0;
}

/* The key file: 0, or PM_EXIT_CONFIG after saying why (with the file and
 * line of the setting, when the name came from the config). */
static int coordinator_key(const struct cfg *c, const char *keyfile,
			   const char *keykey, unsigned char **key,
			   size_t *keylen)
{
	char err[PATH_MAX + 128], msg[2 * PATH_MAX + 256];

	*key = malloc(AUTH_KEY_MAX + 1);
	if (!*key)
		return PM_EXIT_RUNTIME;
	if (!auth_load_key(keyfile, *key, keylen, err, sizeof(err)))
		return 0;
	if (keykey)
		cfg_fail_key(c, keykey, msg, sizeof(msg), "%s: %s", keykey,
			     err);
	else
		snprintf(msg, sizeof(msg), "--key-file: %s", err);
	fprintf(stderr, "pagemesh coordinator: %s\n", msg);
	free(*key);
	*key = NULL;
	return PM_EXIT_CONFIG;
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
	const char *config = NULL, *keykey = NULL;
	unsigned char *key = NULL;
	struct coord_server *s;
	struct cfg *c = NULL;
	size_t keylen = 0;
	int ttl_ms = -1, opt, sig, r = 0;
	sigset_t set;
	char *end;
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
			if (!*optarg || *end || errno ||
			    cfg_key_check(ttl_key()->name, v, err,
					  sizeof(err))) {
				fprintf(stderr, "pagemesh coordinator: --ttl-ms '%s': expected milliseconds in [%lld, %lld]\n",
					optarg, (long long)ttl_key()->min,
					(long long)ttl_key()->max);
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
		c = calloc(1, sizeof(*c));
		if (!c)
			return PM_EXIT_RUNTIME;
		r = cfg_read(config, c, err, sizeof(err));
		if (!r)
			r = coordinator_config(c, listen, sizeof(listen),
					       &ttl_ms, keyfile,
					       sizeof(keyfile), &keykey, err,
					       sizeof(err));
		if (r)
			fprintf(stderr, "pagemesh coordinator: %s\n", err);
	}
	r = r ? PM_EXIT_CONFIG : 0;	/* said so above */
	if (!r && *keyfile)
		r = coordinator_key(c, keyfile, keykey, &key, &keylen);
	if (c)
		cfg_free(c);
	free(c);
	if (r)
		return r;
	if (ttl_ms < 0)
		ttl_ms = (int)ttl_key()->def;

	/* Signals are taken by sigwait() below, not by any worker thread. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	snprintf(pm_log_default.prefix, sizeof(pm_log_default.prefix), "%s",
		 "coordinator");
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
	if (!keylen && !auth_addr_is_loopback(listen))
		pm_warn("%s is not loopback and there is no --key-file: anyone who reaches it can register, replace and remove nodes",
			listen);
	pm_notify("READY=1\nSTATUS=serving");
	if (sigwait(&set, &sig))
		sig = SIGTERM;
	pm_notify("STOPPING=1");
	pm_info("stopping on signal %d", sig);
	coord_server_stop(s);
	return PM_EXIT_OK;
}
