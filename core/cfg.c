// SPDX-License-Identifier: MIT
/* Configuration file: libconfig parsing and validation with FILE:LINE
 * messages, so a bad key is found without reading the source. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"

static int cfg_fail(const struct cfg *c, const config_setting_t *s,
		    char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* "FILE:LINE: message" (LINE of setting s, or of nothing when s is NULL). */
static int cfg_fail(const struct cfg *c, const config_setting_t *s,
		    char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (s && config_setting_source_line(s))
		n = snprintf(err, errlen, "%s:%u: ", c->path,
			     config_setting_source_line(s));
	else
		n = snprintf(err, errlen, "%s: ", c->path);
	if (n < 0 || (size_t)n >= errlen)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int cfg_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	uint64_t mul = 1;
	char *end;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	case 't': case 'T': mul = 1ull << 40; end++; break;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end)
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

static const char *type_name(int t)
{
	switch (t) {
	case CONFIG_TYPE_GROUP: return "a group";
	case CONFIG_TYPE_INT: case CONFIG_TYPE_INT64: return "an integer";
	case CONFIG_TYPE_FLOAT: return "a float";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "a boolean";
	case CONFIG_TYPE_ARRAY: return "an array";
	case CONFIG_TYPE_LIST: return "a list";
	}
	return "something else";
}

/* Line to blame for a missing key: its parent group's, when that exists. */
static const config_setting_t *parent_of(const struct cfg *c, const char *key)
{
	char buf[256];
	char *dot;

	snprintf(buf, sizeof(buf), "%s", key);
	dot = strrchr(buf, '.');
	if (!dot)
		return NULL;
	*dot = '\0';
	return config_lookup(&c->lc, buf);
}

/*
 * The setting at key, or NULL: *r = 0 when it is absent and optional
 * (*found = false), else an error for the missing key.
 */
static config_setting_t *lookup(const struct cfg *c, const char *key,
				bool *found, char *err, size_t errlen, int *r)
{
	config_setting_t *s = config_lookup(&c->lc, key);

	*r = 0;
	if (found)
		*found = s != NULL;
	if (!s && !found)
		*r = cfg_fail(c, parent_of(c, key), err, errlen,
			      "missing key '%s'", key);
	return s;
}

static bool is_int(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_INT ||
	       config_setting_type(s) == CONFIG_TYPE_INT64;
}

int cfg_lookup_string(const struct cfg *c, const char *key, const char **out,
		      bool *found, char *err, size_t errlen)
{
	int r;
	config_setting_t *s = lookup(c, key, found, err, errlen, &r);

	if (!s)
		return r;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return cfg_fail(c, s, err, errlen,
				"%s: expected a string, found %s", key,
				type_name(config_setting_type(s)));
	*out = config_setting_get_string(s);
	return 0;
}

int cfg_lookup_int(const struct cfg *c, const char *key, int64_t *out,
		   bool *found, char *err, size_t errlen)
{
	int r;
	config_setting_t *s = lookup(c, key, found, err, errlen, &r);

	if (!s)
		return r;
	if (!is_int(s))
		return cfg_fail(c, s, err, errlen,
				"%s: expected an integer, found %s", key,
				type_name(config_setting_type(s)));
	*out = config_setting_get_int64(s);
	return 0;
}

int cfg_lookup_size(const struct cfg *c, const char *key, uint64_t *out,
		    bool *found, char *err, size_t errlen)
{
	int r;
	config_setting_t *s = lookup(c, key, found, err, errlen, &r);

	if (!s)
		return r;
	if (is_int(s)) {
		long long v = config_setting_get_int64(s);

		if (v < 0)
			return cfg_fail(c, s, err, errlen,
					"%s: size must not be negative", key);
		*out = (uint64_t)v;
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return cfg_fail(c, s, err, errlen,
				"%s: expected a size (\"256M\" or an integer), found %s",
				key, type_name(config_setting_type(s)));
	if (cfg_parse_size(config_setting_get_string(s), out))
		return cfg_fail(c, s, err, errlen,
				"%s: '%s' is not a size (digits with an optional K, M, G or T)",
				key, config_setting_get_string(s));
	return 0;
}

/* An integer key with a default and an inclusive range. */
static int int_opt(const struct cfg *c, const char *key, int64_t def,
		   int64_t lo, int64_t hi, int *out, char *err, size_t errlen)
{
	int64_t v = def;
	bool found;
	int r;

	r = cfg_lookup_int(c, key, &v, &found, err, errlen);
	if (r)
		return r;
	if (v < lo || v > hi)
		return cfg_fail(c, config_lookup(&c->lc, key), err, errlen,
				"%s: %lld is out of range [%lld, %lld]", key,
				(long long)v, (long long)lo, (long long)hi);
	*out = (int)v;
	return 0;
}

static int copy_str(const struct cfg *c, const char *key, char *dst,
		    size_t dstlen, bool required, char *err, size_t errlen)
{
	const char *s = NULL;
	bool found;
	int r;

	r = cfg_lookup_string(c, key, &s, required ? NULL : &found, err,
			      errlen);
	if (r || !s)
		return r;
	if (strlen(s) >= dstlen)
		return cfg_fail(c, config_lookup(&c->lc, key), err, errlen,
				"%s: longer than %zu characters", key,
				dstlen - 1);
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

static int load_transports(struct cfg *c, char *err, size_t errlen)
{
	config_setting_t *order = config_lookup(&c->lc, "transports.order");
	int i, j, n;

	if (!order)
		return cfg_fail(c, config_lookup(&c->lc, "transports"), err,
				errlen, "missing key 'transports.order'");
	if (!config_setting_is_aggregate(order))
		return cfg_fail(c, order, err, errlen,
				"transports.order: expected a list of names, found %s",
				type_name(config_setting_type(order)));
	n = config_setting_length(order);
	if (n < 1 || n > CFG_MAX_TRANSPORTS)
		return cfg_fail(c, order, err, errlen,
				"transports.order: needs 1 to %d names, has %d",
				CFG_MAX_TRANSPORTS, n);
	for (i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(order, i);
		const char *name = config_setting_get_string(e);
		size_t k;

		if (!name)
			return cfg_fail(c, order, err, errlen,
					"transports.order[%d]: expected a string", i);
		if (!*name || strlen(name) >= CFG_NAME_MAX)
			return cfg_fail(c, order, err, errlen,
					"transports.order[%d]: bad name '%s'",
					i, name);
		for (k = 0; name[k]; k++)
			if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789_-",
				    name[k]))
				return cfg_fail(c, order, err, errlen,
						"transports.order[%d]: unknown transport name '%s' (names are lower-case letters, digits, '-' and '_')",
						i, name);
		for (j = 0; j < i; j++)
			if (!strcmp(c->transports[j], name))
				return cfg_fail(c, order, err, errlen,
						"transports.order: '%s' listed twice",
						name);
		snprintf(c->transports[i], CFG_NAME_MAX, "%s", name);
	}
	c->n_transports = n;
	snprintf(c->transport_dir, sizeof(c->transport_dir), "build/plugins");
	return copy_str(c, "transports.dir", c->transport_dir,
			sizeof(c->transport_dir), false, err, errlen);
}

static int load_peers(struct cfg *c, char *err, size_t errlen)
{
	config_setting_t *peers = config_lookup(&c->lc, "peers");
	int i, t, n;

	if (!peers)
		return 0;
	if (!config_setting_is_list(peers) && !config_setting_is_array(peers))
		return cfg_fail(c, peers, err, errlen,
				"peers: expected a list of groups ( { id = 1; tcp = \"HOST:PORT\"; }, ... ), found %s",
				type_name(config_setting_type(peers)));
	n = config_setting_length(peers);
	if (n > CFG_MAX_NODES)
		return cfg_fail(c, peers, err, errlen,
				"peers: at most %d entries", CFG_MAX_NODES);
	for (i = 0; i < n; i++) {
		config_setting_t *p = config_setting_get_elem(peers, i);
		config_setting_t *id = config_setting_get_member(p, "id");
		struct cfg_peer *cp = &c->peers[i];
		int any = 0, j;

		if (!config_setting_is_group(p))
			return cfg_fail(c, p, err, errlen,
					"peers[%d]: expected a group", i);
		if (!id)
			return cfg_fail(c, p, err, errlen,
					"peers[%d]: missing key 'id'", i);
		if (config_setting_type(id) != CONFIG_TYPE_INT &&
		    config_setting_type(id) != CONFIG_TYPE_INT64)
			return cfg_fail(c, id, err, errlen,
					"peers[%d].id: expected an integer, found %s",
					i, type_name(config_setting_type(id)));
		cp->id = (int)config_setting_get_int64(id);
		if (config_setting_get_int64(id) < 0 ||
		    cp->id >= c->cluster_nodes)
			return cfg_fail(c, id, err, errlen,
					"peers[%d].id: %lld is out of range [0, %d] (cluster.nodes = %d)",
					i, (long long)config_setting_get_int64(id),
					c->cluster_nodes - 1, c->cluster_nodes);
		if (cp->id == c->node_id)
			return cfg_fail(c, id, err, errlen,
					"peers[%d].id: %d is this node's own id",
					i, cp->id);
		for (j = 0; j < i; j++)
			if (c->peers[j].id == cp->id)
				return cfg_fail(c, id, err, errlen,
						"peers[%d].id: node %d listed twice",
						i, cp->id);
		for (j = 0; j < config_setting_length(p); j++) {
			config_setting_t *e = config_setting_get_elem(p, j);
			const char *k = config_setting_name(e);

			if (!strcmp(k, "id"))
				continue;
			t = cfg_transport_index(c, k);
			if (t < 0)
				return cfg_fail(c, e, err, errlen,
						"peers[%d].%s: unknown transport '%s' (not in transports.order)",
						i, k, k);
			if (config_setting_type(e) != CONFIG_TYPE_STRING)
				return cfg_fail(c, e, err, errlen,
						"peers[%d].%s: expected an endpoint string, found %s",
						i, k, type_name(config_setting_type(e)));
			if (strlen(config_setting_get_string(e)) >=
			    PM_ENDPOINT_MAX)
				return cfg_fail(c, e, err, errlen,
						"peers[%d].%s: endpoint too long", i, k);
			snprintf(cp->endpoint[t], PM_ENDPOINT_MAX, "%s",
				 config_setting_get_string(e));
			any = 1;
		}
		if (!any)
			return cfg_fail(c, p, err, errlen,
					"peers[%d]: no endpoint (add e.g. tcp = \"HOST:PORT\")",
					i);
	}
	c->n_peers = n;
	return 0;
}

static int load_coordinator(struct cfg *c, char *err, size_t errlen)
{
	config_setting_t *g = config_lookup(&c->lc, "coordinator");
	config_setting_t *urls;
	const char *backend = "embedded";
	bool found;
	int i, r;

	if (!g)
		return 0;
	r = cfg_lookup_string(c, "coordinator.backend", &backend, &found, err,
			      errlen);
	if (r)
		return r;
	if (strcmp(backend, "embedded") && strcmp(backend, "etcd"))
		return cfg_fail(c, config_lookup(&c->lc, "coordinator.backend"),
				err, errlen,
				"coordinator.backend: '%s' is not \"embedded\" or \"etcd\"",
				backend);
	snprintf(c->coord_backend, sizeof(c->coord_backend), "%s", backend);
	urls = config_lookup(&c->lc, "coordinator.urls");
	if (urls) {
		if (!config_setting_is_aggregate(urls))
			return cfg_fail(c, urls, err, errlen,
					"coordinator.urls: expected a list of strings");
		for (i = 0; i < config_setting_length(urls); i++) {
			const char *u = config_setting_get_string_elem(urls, i);

			if (!u || strlen(u) >= sizeof(c->coord_urls[0]) ||
			    c->n_coord_urls >= CFG_MAX_URLS)
				return cfg_fail(c, urls, err, errlen,
						"coordinator.urls[%d]: expected a URL string (at most %d URLs)",
						i, CFG_MAX_URLS);
			snprintf(c->coord_urls[c->n_coord_urls++], 256, "%s",
				 u);
		}
	}
	r = copy_str(c, "coordinator.url", c->coord_urls[c->n_coord_urls],
		     sizeof(c->coord_urls[0]), false, err, errlen);
	if (r)
		return r;
	if (c->coord_urls[c->n_coord_urls][0])
		c->n_coord_urls++;
	if (!c->n_coord_urls)
		return cfg_fail(c, g, err, errlen,
				"coordinator: needs url = \"http://HOST:PORT\" or urls = [ ... ]");
	return 0;
}

int cfg_load(const char *path, struct cfg *c, char *err, size_t errlen)
{
	uint64_t mem;
	int64_t v;
	int r;

	memset(c, 0, sizeof(*c));
	snprintf(c->path, sizeof(c->path), "%s", path);
	config_init(&c->lc);
	c->loaded = true;
	if (!config_read_file(&c->lc, path)) {
		if (config_error_type(&c->lc) == CONFIG_ERR_FILE_IO) {
			snprintf(err, errlen, "%s: cannot read: %s", path,
				 strerror(errno ? errno : ENOENT));
			return -ENOENT;
		}
		snprintf(err, errlen, "%s:%d: cannot parse: %s",
			 config_error_file(&c->lc) ? config_error_file(&c->lc)
						   : path,
			 config_error_line(&c->lc), config_error_text(&c->lc));
		return -EINVAL;
	}

	r = cfg_lookup_int(c, "cluster.nodes", &v, NULL, err, errlen);
	if (r)
		return r;
	if (v < 1 || v > CFG_MAX_NODES)
		return cfg_fail(c, config_lookup(&c->lc, "cluster.nodes"), err,
				errlen, "cluster.nodes: %lld is out of range [1, %d]",
				(long long)v, CFG_MAX_NODES);
	c->cluster_nodes = (int)v;

	r = cfg_lookup_int(c, "node.id", &v, NULL, err, errlen);
	if (r)
		return r;
	if (v < 0 || v >= c->cluster_nodes)
		return cfg_fail(c, config_lookup(&c->lc, "node.id"), err,
				errlen,
				"node.id: %lld is out of range [0, %d] (cluster.nodes = %d)",
				(long long)v, c->cluster_nodes - 1,
				c->cluster_nodes);
	c->node_id = (int)v;

	r = copy_str(c, "cluster.name", c->cluster_name,
		     sizeof(c->cluster_name), true, err, errlen);
	if (r)
		return r;
	r = cfg_lookup_size(c, "cluster.memory", &mem, NULL, err, errlen);
	if (r)
		return r;
	if (mem == 0 || mem % PM_PAGE_SIZE)
		return cfg_fail(c, config_lookup(&c->lc, "cluster.memory"),
				err, errlen,
				"cluster.memory: %llu bytes is not a positive multiple of the page size (%u)",
				(unsigned long long)mem, PM_PAGE_SIZE);
	if (mem > (1ull << 40))
		return cfg_fail(c, config_lookup(&c->lc, "cluster.memory"),
				err, errlen,
				"cluster.memory: larger than 1T is not supported");
	c->memory = mem;
	r = int_opt(c, "cluster.startup_timeout_ms", 30000, 100, 3600000,
		    &c->startup_timeout_ms, err, errlen);
	if (r)
		return r;

	r = load_transports(c, err, errlen);
	if (r)
		return r;
	r = load_peers(c, err, errlen);
	if (r)
		return r;

	r = int_opt(c, "pager.threads", 2, 1, 64 /* PM_MAX_FAULT_THREADS */,
		    &c->pager_threads, err,
		    errlen);
	if (r)
		return r;
	r = int_opt(c, "pager.prefetch", 0, 0, 15, &c->prefetch, err,
		    errlen);
	if (r)
		return r;
	r = int_opt(c, "pager.timeout_ms", 5000, 10, 600000, &c->timeout_ms,
		    err, errlen);
	if (r)
		return r;
	r = cfg_lookup_size(c, "pager.local_limit", &c->local_limit, &(bool){0},
			    err, errlen);
	if (r)
		return r;
	if (c->local_limit % PM_PAGE_SIZE)
		return cfg_fail(c, config_lookup(&c->lc, "pager.local_limit"),
				err, errlen,
				"pager.local_limit: not a multiple of the page size (%u)",
				PM_PAGE_SIZE);
	strcpy(c->evict_policy, "2q");
	r = copy_str(c, "pager.policy", c->evict_policy,
		     sizeof(c->evict_policy), false, err, errlen);
	if (r)
		return r;
	if (strcmp(c->evict_policy, "2q") && strcmp(c->evict_policy, "clock") &&
	    strcmp(c->evict_policy, "fifo"))
		return cfg_fail(c, config_lookup(&c->lc, "pager.policy"),
				err, errlen,
				"pager.policy: \"%s\" is not \"2q\", \"clock\" or \"fifo\"",
				c->evict_policy);

	r = load_coordinator(c, err, errlen);
	if (r)
		return r;
	r = copy_str(c, "metrics.listen", c->metrics_listen,
		     sizeof(c->metrics_listen), false, err, errlen);
	if (r)
		return r;
	return copy_str(c, "security.key_file", c->key_file,
			sizeof(c->key_file), false, err, errlen);
}

void cfg_free(struct cfg *c)
{
	if (c->loaded)
		config_destroy(&c->lc);
	c->loaded = false;
}

int cfg_transport_index(const struct cfg *c, const char *name)
{
	int i;

	for (i = 0; i < c->n_transports; i++)
		if (!strcmp(c->transports[i], name))
			return i;
	return -1;
}

static config_setting_t *transport_key(const struct cfg *c,
				       const char *transport, const char *key)
{
	config_setting_t *g = config_lookup(&c->lc, "transports");

	if (!g)
		return NULL;
	g = config_setting_get_member(g, transport);
	if (!g || !config_setting_is_group(g))
		return NULL;
	return config_setting_lookup(g, key);
}

int cfg_transport_string(const struct cfg *c, const char *transport,
			 const char *key, const char **out)
{
	config_setting_t *s = transport_key(c, transport, key);

	if (!s)
		return -ENOENT;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return -EINVAL;
	*out = config_setting_get_string(s);
	return 0;
}

int cfg_transport_int(const struct cfg *c, const char *transport,
		      const char *key, int64_t *out)
{
	config_setting_t *s = transport_key(c, transport, key);

	if (!s)
		return -ENOENT;
	if (!is_int(s))
		return -EINVAL;
	*out = config_setting_get_int64(s);
	return 0;
}
