// SPDX-License-Identifier: MIT
/* Configuration file: libconfig parsing, checks against the key table
 * (cfg_keys.c, cfg_check.c) and the checks across keys, all with FILE:LINE
 * messages, so a bad key is found without reading the source. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cfg.h"
#include "cfg_priv.h"
#include "plugin_dir.h"

/* Line to blame for what is not in the file at all: its last one. */
static unsigned int last_line(const char *path)
{
	unsigned int n = 0;
	int ch, prev = '\n';
	FILE *f = fopen(path, "r");

	if (!f)
		return 0;
	while ((ch = getc(f)) != EOF) {
		n += ch == '\n';
		prev = ch;
	}
	fclose(f);
	return n + (prev != '\n');
}

static int vfail(const struct cfg *c, const config_setting_t *s, char *err,
		 size_t errlen, const char *fmt, va_list ap)
{
	unsigned int line = s ? config_setting_source_line(s) : 0;
	const char *file = s ? config_setting_source_file(s) : NULL;
	int n;

	if (!line)
		line = last_line(c->path);
	n = snprintf(err, errlen, "%s:%u: ", file ? file : c->path, line);
	if (n < 0 || (size_t)n >= errlen)
		return -EINVAL;
	vsnprintf(err + n, errlen - n, fmt, ap);
	return -EINVAL;
}

int cfg_fail(const struct cfg *c, const config_setting_t *s, char *err,
	     size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(c, s, err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* key's setting, else that of its nearest group in the file, else NULL. */
static const config_setting_t *blame(const struct cfg *c, const char *key)
{
	const config_setting_t *s = NULL;
	char buf[256], *dot;

	if (!c->loaded)
		return NULL;
	snprintf(buf, sizeof(buf), "%s", key);
	while (!(s = config_lookup(&c->lc, buf)) && (dot = strrchr(buf, '.')))
		*dot = '\0';
	return s;
}

int cfg_fail_key(const struct cfg *c, const char *key, char *err,
		 size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(c, blame(c, key), err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int cfg_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	uint64_t mul = 1;
	char *end;

	/* strtoull would take a sign or leading blanks: neither is a size. */
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': mul = 1ull << 10; break;
	case 'm': case 'M': mul = 1ull << 20; break;
	case 'g': case 'G': mul = 1ull << 30; break;
	case 't': case 'T': mul = 1ull << 40; break;
	}
	if (mul > 1 && *++end == 'i' && end[1] == 'B')
		end += 2;
	if (*end)
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

/* The file's setting of table key name (its entry in *k), or NULL. */
static const config_setting_t *get(const struct cfg *c, const char *name,
				   const struct cfg_key **k, bool *found)
{
	const config_setting_t *s;

	*k = cfg_key_find(name);
	s = *k && c->loaded ? config_lookup(&c->lc, name) : NULL;
	if (found)
		*found = s != NULL;
	return s;
}

int cfg_get_int(const struct cfg *c, const char *key, int64_t *out,
		bool *found)
{
	const struct cfg_key *k;
	const config_setting_t *s = get(c, key, &k, found);

	if (!k || k->type != CFG_T_INT || (s && !cfg_is_int(s)))
		return -EINVAL;
	if (!s && k->unset)
		return -ENOENT;
	*out = s ? config_setting_get_int64(s) : k->def;
	return 0;
}

int cfg_get_string(const struct cfg *c, const char *key, const char **out,
		   bool *found)
{
	const struct cfg_key *k;
	const config_setting_t *s = get(c, key, &k, found);

	if (!k || (k->type != CFG_T_STRING && k->type != CFG_T_CHOICE) ||
	    (s && config_setting_type(s) != CONFIG_TYPE_STRING))
		return -EINVAL;
	if (!s && !k->def_str)
		return -ENOENT;
	*out = s ? config_setting_get_string(s) : k->def_str;
	return 0;
}

int cfg_get_size(const struct cfg *c, const char *key, uint64_t *out,
		 bool *found)
{
	const struct cfg_key *k;
	const config_setting_t *s = get(c, key, &k, found);
	char err[8];

	if (!k || k->type != CFG_T_SIZE)
		return -EINVAL;
	if (!s && k->unset)
		return -ENOENT;
	if (!s) {
		*out = (uint64_t)k->def;
		return 0;
	}
	/* Checked by cfg_read: no message to keep. */
	return cfg_setting_size(c, key, s, out, err, sizeof(err));
}

/* The fields of struct cfg the table names: the file's value or the
 * default. Values were checked by cfg_check_keys. */
static int fill_fields(struct cfg *c, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < cfg_n_keys; i++) {
		const struct cfg_key *k = &cfg_keys[i];
		config_setting_t *s = config_lookup(&c->lc, k->name);
		char *f = (char *)c + k->off;
		const char *str;
		uint64_t size = 0;

		if (!s && (k->flags & CFG_K_REQUIRED))
			return cfg_fail_key(c, k->name, err, errlen,
					    "missing key '%s'", k->name);
		if (!k->len)
			continue;
		switch (k->type) {
		case CFG_T_INT:
			*(int *)f = (int)(s ? config_setting_get_int64(s)
					    : k->def);
			break;
		case CFG_T_SIZE:
			if (s && cfg_setting_size(c, k->name, s, &size, err,
						  errlen))
				return -EINVAL;
			*(uint64_t *)f = s ? size : (uint64_t)k->def;
			break;
		case CFG_T_STRING:
		case CFG_T_CHOICE:
			str = s ? config_setting_get_string(s) : k->def_str;
			snprintf(f, k->len, "%s", str ? str : "");
			break;
		default:
			break;
		}
	}
	return 0;
}

static int load_transports(struct cfg *c, char *err, size_t errlen)
{
	config_setting_t *order = config_lookup(&c->lc, "transports.order");
	int i, j, n = config_setting_length(order);

	for (i = 0; i < n; i++) {
		const char *name = config_setting_get_string_elem(order, i);
		size_t k;

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
	return 0;
}

/* A peer's key that names no transport: the closest that does. */
static int unknown_peer_key(struct cfg *c, const config_setting_t *e, int i,
			    const char *k, char *err, size_t errlen)
{
	char names[CFG_MAX_TRANSPORTS + 1][CFG_NAME_MAX + 16], near[128];
	char name[CFG_NAME_MAX + 16];
	const char *cand[CFG_MAX_TRANSPORTS + 1];
	int t;

	for (t = 0; t <= c->n_transports; t++) {
		snprintf(names[t], sizeof(names[t]), "peers.%s",
			 t < c->n_transports ? c->transports[t] : "id");
		cand[t] = names[t];
	}
	snprintf(name, sizeof(name), "peers.%s", k);
	if (cfg_key_suggest(name, cand, c->n_transports + 1, near,
			    sizeof(near)))
		return cfg_fail(c, e, err, errlen,
				"peers[%d].%s: unknown transport '%s' (not in transports.order; did you mean '%s'?)",
				i, k, k, near + strlen("peers."));
	return cfg_fail(c, e, err, errlen,
			"peers[%d].%s: unknown transport '%s' (not in transports.order)",
			i, k, k);
}

static int load_peers(struct cfg *c, char *err, size_t errlen)
{
	config_setting_t *peers = config_lookup(&c->lc, "peers");
	int i, t, n;

	if (!peers)
		return 0;
	n = config_setting_length(peers);
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
		if (!cfg_is_int(id))
			return cfg_fail(c, id, err, errlen,
					"peers[%d].id: expected an integer, found %s",
					i, cfg_type_name(id));
		cp->id = (int)config_setting_get_int64(id);
		if (config_setting_get_int64(id) < 0 ||
		    config_setting_get_int64(id) >= c->cluster_nodes)
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
				return unknown_peer_key(c, e, i, k, err,
							errlen);
			if (config_setting_type(e) != CONFIG_TYPE_STRING)
				return cfg_fail(c, e, err, errlen,
						"peers[%d].%s: expected an endpoint string, found %s",
						i, k, cfg_type_name(e));
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
	config_setting_t *urls, *url;
	int i;

	if (!g) {
		c->coord_backend[0] = '\0';	/* no coordinator at all */
		return 0;
	}
	urls = config_lookup(&c->lc, "coordinator.urls");
	for (i = 0; urls && i < config_setting_length(urls); i++)
		snprintf(c->coord_urls[c->n_coord_urls++],
			 sizeof(c->coord_urls[0]), "%s",
			 config_setting_get_string_elem(urls, i));
	url = config_lookup(&c->lc, "coordinator.url");
	if (url && c->n_coord_urls >= CFG_MAX_URLS)
		return cfg_fail(c, url, err, errlen,
				"coordinator.url: with urls, more than %d URLs",
				CFG_MAX_URLS);
	if (url)
		snprintf(c->coord_urls[c->n_coord_urls++],
			 sizeof(c->coord_urls[0]), "%s",
			 config_setting_get_string(url));
	if (c->n_coord_urls &&
	    !cfg_plain_name(c->cluster_name, sizeof(c->cluster_name)))
		return cfg_fail_key(c, "cluster.name", err, errlen,
				    "cluster.name '%s': use letters, digits, '_', '.' and '-' for a coordinated cluster",
				    c->cluster_name);
	if (c->n_coord_urls)
		return 0;
	return cfg_fail(c, g, err, errlen,
			"coordinator: needs url = \"http://HOST:PORT\" or urls = [ ... ]");
}

int cfg_read(const char *path, struct cfg *c, char *err, size_t errlen)
{
	struct stat st;

	memset(c, 0, sizeof(*c));
	snprintf(c->path, sizeof(c->path), "%s", path);
	config_init(&c->lc);
	c->loaded = true;
	/* libconfig reads a folder as an empty file and fails with ENOENT. */
	if (!stat(path, &st) && !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a config file (%s)", path,
			 S_ISDIR(st.st_mode) ? "a folder" : "not a regular file");
		return -EINVAL;
	}
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
	if (cfg_check_ints(c, err, errlen))
		return -EINVAL;
	return cfg_check_keys(c, err, errlen);
}

int cfg_load(const char *path, struct cfg *c, char *err, size_t errlen)
{
	config_setting_t *s;
	uint64_t vm_mem;
	int r;

	r = cfg_read(path, c, err, errlen);
	if (!r)
		r = fill_fields(c, err, errlen);
	if (r)
		return r;
	if (!c->transport_dir[0])
		snprintf(c->transport_dir, sizeof(c->transport_dir), "%s",
			 pm_plugin_dir_default());
	/* Eviction keeps a fault's run (1 + prefetch pages) twice, plus 2. */
	if (c->local_limit &&
	    c->local_limit / PM_PAGE_SIZE < 2 * (uint64_t)(c->prefetch + 1) + 2)
		return cfg_fail_key(c, "pager.local_limit", err, errlen,
				    "pager.local_limit: %llu pages is too small: pager.prefetch = %d needs at least %d",
				    (unsigned long long)(c->local_limit /
							 PM_PAGE_SIZE),
				    c->prefetch, 2 * (c->prefetch + 1) + 2);
	if (c->node_id >= c->cluster_nodes)
		return cfg_fail_key(c, "node.id", err, errlen,
				    "node.id: %d is out of range [0, %d] (cluster.nodes = %d)",
				    c->node_id, c->cluster_nodes - 1,
				    c->cluster_nodes);
	s = config_lookup(&c->lc, "vm.memory");
	if (s && !cfg_setting_size(c, "vm.memory", s, &vm_mem, err, errlen) &&
	    vm_mem > c->memory)
		return cfg_fail(c, s, err, errlen,
				"vm.memory: %llu bytes is larger than cluster.memory (%llu)",
				(unsigned long long)vm_mem,
				(unsigned long long)c->memory);
	r = load_transports(c, err, errlen);
	if (!r)
		r = load_peers(c, err, errlen);
	if (!r)
		r = load_coordinator(c, err, errlen);
	return r;
}

void cfg_free(struct cfg *c)
{
	if (c->loaded)
		config_destroy(&c->lc);
	c->loaded = false;
}

bool cfg_plain_name(const char *s, size_t max)
{
	size_t n = strlen(s);

	return n && n < max &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz"
		      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
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
	if (!cfg_is_int(s))
		return -EINVAL;
	*out = config_setting_get_int64(s);
	return 0;
}
