// SPDX-License-Identifier: MIT
/* Config checks that need the whole file: every setting against the key
 * table (unknown keys with a "did you mean", types, ranges). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "cfg_priv.h"

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

const char *cfg_type_name(const config_setting_t *s)
{
	return type_name(config_setting_type(s));
}

bool cfg_is_int(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_INT ||
	       config_setting_type(s) == CONFIG_TYPE_INT64;
}

/* A string of k: its length in bounds. */
static int check_string(const struct cfg *c, const struct cfg_key *k,
			const config_setting_t *s, const char *v, char *err,
			size_t errlen)
{
	size_t max = k->max ? (size_t)k->max : k->len ? k->len - 1 : 0;

	if (strlen(v) < (size_t)k->min)
		return cfg_fail(c, s, err, errlen, "%s: must not be empty",
				k->name);
	if (max && strlen(v) > max)
		return cfg_fail(c, s, err, errlen,
				"%s: longer than %zu characters", k->name, max);
	return 0;
}

static int check_choice(const struct cfg *c, const struct cfg_key *k,
			const config_setting_t *s, const char *v, char *err,
			size_t errlen)
{
	const char *p = k->form;
	size_t n = strlen(v);
	char all[128];

	while (p) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);

		if (len == n && !strncmp(p, v, n))
			return 0;
		p = bar ? bar + 1 : NULL;
	}
	cfg_choices_str(k->form, false, all, sizeof(all));
	return cfg_fail(c, s, err, errlen, "%s: \"%s\" is not %s", k->name, v,
			all);
}

int cfg_setting_size(const struct cfg *c, const char *key,
		     const config_setting_t *s, uint64_t *out, char *err,
		     size_t errlen)
{
	if (cfg_is_int(s)) {
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
				key, cfg_type_name(s));
	if (cfg_parse_size(config_setting_get_string(s), out))
		return cfg_fail(c, s, err, errlen,
				"%s: '%s' is not a size (digits with an optional K, M, G or T)",
				key, config_setting_get_string(s));
	return 0;
}

/* One setting s of key k: type, then range. */
static int check_value(const struct cfg *c, const struct cfg_key *k,
		       const config_setting_t *s, char *err, size_t errlen)
{
	char why[256], hi[24];
	uint64_t size;
	int i, n;

	switch (k->type) {
	case CFG_T_INT:
		if (!cfg_is_int(s))
			break;
		if (cfg_key_check(k->name, config_setting_get_int64(s), why,
				  sizeof(why)))
			return cfg_fail(c, s, err, errlen, "%s", why);
		return 0;
	case CFG_T_SIZE:
		if (cfg_setting_size(c, k->name, s, &size, err, errlen))
			return -EINVAL;
		cfg_size_str((uint64_t)k->max, hi, sizeof(hi));
		if (size > (uint64_t)k->max)
			snprintf(why, sizeof(why), "%s: %llu bytes is over %s",
				 k->name, (unsigned long long)size, hi);
		else if (!cfg_key_check(k->name, (int64_t)size, why,
					sizeof(why)))
			return 0;
		return cfg_fail(c, s, err, errlen, "%s", why);
	case CFG_T_STRING:
	case CFG_T_CHOICE:
		if (config_setting_type(s) != CONFIG_TYPE_STRING)
			break;
		if (k->type == CFG_T_CHOICE)
			return check_choice(c, k, s,
					    config_setting_get_string(s), err,
					    errlen);
		return check_string(c, k, s, config_setting_get_string(s),
				    err, errlen);
	case CFG_T_LIST:
		if (!config_setting_is_aggregate(s) ||
		    config_setting_is_group(s))
			return cfg_fail(c, s, err, errlen,
					"%s: expected a list of strings ( [ \"a\", \"b\" ] ), found %s",
					k->name, cfg_type_name(s));
		n = config_setting_length(s);
		if (n < k->min || n > k->max)
			return cfg_fail(c, s, err, errlen,
					"%s: needs %lld to %lld entries, has %d",
					k->name, (long long)k->min,
					(long long)k->max, n);
		for (i = 0; i < n; i++)
			if (!config_setting_get_string_elem(s, i))
				return cfg_fail(c, s, err, errlen,
						"%s[%d]: expected a string",
						k->name, i);
		return 0;
	case CFG_T_PEERS:
		if (!config_setting_is_list(s) && !config_setting_is_array(s))
			return cfg_fail(c, s, err, errlen,
					"%s: expected a list of groups ( { id = 1; tcp = \"HOST:PORT\"; }, ... ), found %s",
					k->name, cfg_type_name(s));
		if (config_setting_length(s) > k->max)
			return cfg_fail(c, s, err, errlen,
					"%s: at most %lld entries", k->name,
					(long long)k->max);
		return 0;
	}
	return cfg_fail(c, s, err, errlen, "%s: expected %s, found %s",
			k->name,
			k->type == CFG_T_INT ? "an integer" : "a string",
			cfg_type_name(s));
}

/* Is name in transports.order? The order itself is checked as a key. */
static bool in_order(const struct cfg *c, const char *name)
{
	config_setting_t *o = config_lookup(&c->lc, "transports.order");
	int i;

	for (i = 0; o && i < config_setting_length(o); i++) {
		const char *t = config_setting_get_string_elem(o, i);

		if (t && !strcmp(t, name))
			return true;
	}
	return false;
}

/* The names directly below prefix ("" the top), comma-separated. */
static void members(const char *prefix, char *buf, size_t len)
{
	size_t pl = strlen(prefix), used = 0, i, n;
	char prev[128] = "";

	buf[0] = '\0';
	for (i = 0; i < cfg_n_keys && used < len; i++) {
		const char *kn = cfg_keys[i].name, *rest, *dot;

		if (pl && (strncmp(kn, prefix, pl) || kn[pl] != '.'))
			continue;
		rest = kn + (pl ? pl + 1 : 0);
		dot = strchr(rest, '.');
		n = dot ? (size_t)(dot - rest) : strlen(rest);
		/* The table lists a group's keys together: one mention. */
		if (n >= sizeof(prev) || (!strncmp(prev, rest, n) && !prev[n]))
			continue;
		snprintf(prev, sizeof(prev), "%.*s", (int)n, rest);
		used += snprintf(buf + used, len - used, "%s%s",
				 used ? ", " : "", prev);
	}
}

static int unknown(const struct cfg *c, const config_setting_t *s,
		   const char *path, const char *prefix, char *err,
		   size_t errlen)
{
	char near[128], known[512];

	if (cfg_key_suggest(path, NULL, 0, near, sizeof(near)))
		return cfg_fail(c, s, err, errlen,
				"unknown key '%s' (did you mean '%s'?)", path,
				near);
	members(prefix, known, sizeof(known));
	return cfg_fail(c, s, err, errlen, "unknown key '%s' (%s takes %s)",
			path, *prefix ? prefix : "the top level", known);
}

/*
 * The members of group g (path prefix; "" at the top). A transports.NAME
 * group of a transport in transports.order that the table does not know
 * (a plugin of someone else's) is left alone: only the plugin knows its
 * keys.
 */
static int check_group(const struct cfg *c, const config_setting_t *g,
		       const char *prefix, char *err, size_t errlen)
{
	int i, r;

	for (i = 0; i < config_setting_length(g); i++) {
		config_setting_t *s = config_setting_get_elem(g, i);
		const struct cfg_key *k;
		char path[256];

		snprintf(path, sizeof(path), "%s%s%s", prefix,
			 *prefix ? "." : "", config_setting_name(s));
		k = cfg_key_find(path);
		if (k) {
			r = check_value(c, k, s, err, errlen);
		} else if (cfg_key_is_group(path) ||
			   (!strcmp(prefix, "transports") &&
			    in_order(c, config_setting_name(s)))) {
			if (!config_setting_is_group(s))
				return cfg_fail(c, s, err, errlen,
						"%s: expected a group ( %s = { ... }; ), found %s",
						path, config_setting_name(s),
						cfg_type_name(s));
			if (!cfg_key_is_group(path))
				continue;	/* a plugin's own group */
			r = check_group(c, s, path, err, errlen);
		} else {
			r = unknown(c, s, path, prefix, err, errlen);
		}
		if (r)
			return r;
	}
	return 0;
}

int cfg_check_keys(const struct cfg *c, char *err, size_t errlen)
{
	return check_group(c, config_root_setting(&c->lc), "", err, errlen);
}
