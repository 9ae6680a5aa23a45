// SPDX-License-Identifier: MIT
/* Config checks that need the whole file: every setting against the key
 * table (unknown keys with a "did you mean", types, ranges), and integers
 * libconfig 1.5 would silently truncate, found in the source text. */
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
				"%s: '%s' is not a size (digits, then nothing or K, M, G or T, optionally with iB: \"4096\", \"64K\", \"1GiB\")",
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

/* "a.b.c" of s, list elements as [i]. */
static void setting_path(const config_setting_t *s, char *buf, size_t len)
{
	const config_setting_t *p = config_setting_parent(s);
	char up[256] = "";

	if (p && config_setting_parent(p))
		setting_path(p, up, sizeof(up));
	if (config_setting_name(s))
		snprintf(buf, len, "%s%s%s", up, *up ? "." : "",
			 config_setting_name(s));
	else
		snprintf(buf, len, "%s[%d]", up, config_setting_index(s));
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
 * (a plugin of someone else's) is left to the loader: only the plugin
 * knows its keys (see loader_check_keys).
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

/* ---- integers libconfig 1.5 truncates ------------------------------------ */

/*
 * libconfig 1.5 reads an integer without an L suffix into 32 bits and drops
 * the rest without a word: "memory = 4294971392;" is 4096. Only the text
 * shows what was meant, so it is scanned for such literals (outside
 * strings and comments); the setting that holds one is the one on its line
 * with the truncated value.
 */

struct lit {
	unsigned int line;
	char text[32];
	long long truncated;	/* what libconfig stored */
};

/* Name of the INT setting on line with value v, below s. */
static bool find_int(const config_setting_t *s, const char *file,
		     unsigned int line, long long v, char *path, size_t len)
{
	int i;

	if (config_setting_type(s) == CONFIG_TYPE_INT) {
		const char *f = config_setting_source_file(s);

		if (config_setting_source_line(s) == line &&
		    config_setting_get_int64(s) == v && f &&
		    !strcmp(f, file)) {
			setting_path(s, path, len);
			return true;
		}
		return false;
	}
	if (!config_setting_is_aggregate(s))
		return false;
	for (i = 0; i < config_setting_length(s); i++)
		if (find_int(config_setting_get_elem(s, i), file, line, v,
			     path, len))
			return true;
	return false;
}

/* The value of an integer literal that does not fit 32 bits, or false. */
static bool too_wide(const char *t, size_t n, long long *truncated)
{
	char buf[64];
	unsigned long long u;
	long long v;
	bool hex;

	if (n >= sizeof(buf))
		n = sizeof(buf) - 1;
	memcpy(buf, t, n);
	buf[n] = '\0';
	hex = strchr(buf, 'x') || strchr(buf, 'X');
	errno = 0;
	if (hex) {
		/* libconfig 1.5: strtoull, then an int; 0xFFFFFFFF is -1 */
		u = strtoull(buf, NULL, 16);
		*truncated = (int)(unsigned int)u;
		return errno == ERANGE || u > 0x7fffffffull;
	}
	v = strtoll(buf, NULL, 10);
	*truncated = (int)(unsigned int)(unsigned long long)v;
	return errno == ERANGE || v < INT32_MIN || v > INT32_MAX;
}

static bool name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
	       ch == '*';
}

/* First too-wide literal of text, or false. */
static bool scan(const char *t, struct lit *out)
{
	unsigned int line = 1;
	size_t i = 0, j;

	while (t[i]) {
		char ch = t[i];

		if (ch == '\n') {
			line++;
			i++;
		} else if (ch == '#' || (ch == '/' && t[i + 1] == '/')) {
			while (t[i] && t[i] != '\n')
				i++;
		} else if (ch == '/' && t[i + 1] == '*') {
			for (i += 2; t[i] && !(t[i] == '*' && t[i + 1] == '/');
			     i++)
				line += t[i] == '\n';
			i += t[i] ? 2 : 0;
		} else if (ch == '"') {
			for (i++; t[i] && t[i] != '"'; i++) {
				if (t[i] == '\\' && t[i + 1])
					i++;
				line += t[i] == '\n';
			}
			i += t[i] ? 1 : 0;
		} else if ((ch >= '0' && ch <= '9') ||
			   ((ch == '-' || ch == '+') && t[i + 1] >= '0' &&
			    t[i + 1] <= '9')) {
			/* A number: digits, hex digits, '.', exponents, L. */
			for (j = i + 1; name_char(t[j]) || t[j] == '.' ||
			     ((t[j] == '-' || t[j] == '+') &&
			      (t[j - 1] == 'e' || t[j - 1] == 'E')); j++)
				;
			if (t[j - 1] != 'L' && !memchr(t + i, '.', j - i) &&
			    (memchr(t + i, 'x', j - i) ||
			     memchr(t + i, 'X', j - i) ||
			     (!memchr(t + i, 'e', j - i) &&
			      !memchr(t + i, 'E', j - i))) &&
			    too_wide(t + i, j - i, &out->truncated)) {
				out->line = line;
				snprintf(out->text, sizeof(out->text), "%.*s",
					 (int)(j - i < 31 ? j - i : 31), t + i);
				return true;
			}
			i = j;
		} else if (name_char(ch)) {
			while (name_char(t[i]))
				i++;
		} else {
			i++;
		}
	}
	return false;
}

/* Whole file into memory, NUL-terminated; NULL if it cannot be read. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t n = 0, cap = 0, got;
	char *buf = NULL, *nb;

	if (!f)
		return NULL;
	do {
		if (cap - n < 4096) {
			cap = cap ? cap * 2 : 8192;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* Every file the settings came from (the file, and what it @includes). */
static int source_files(const config_setting_t *s, const char **files,
			int n, int max)
{
	const char *f = config_setting_source_file(s);
	int i;

	if (f) {
		for (i = 0; i < n && strcmp(files[i], f); i++)
			;
		if (i == n && n < max)
			files[n++] = f;
	}
	for (i = 0; config_setting_is_aggregate(s) &&
		    i < config_setting_length(s); i++)
		n = source_files(config_setting_get_elem(s, i), files, n, max);
	return n;
}

int cfg_check_ints(const struct cfg *c, char *err, size_t errlen)
{
	const config_setting_t *root = config_root_setting(&c->lc);
	const struct cfg_key *k;
	const char *files[16];
	char path[256];
	struct lit l;
	int i, n;

	files[0] = c->path;
	n = source_files(root, files, 1, 16);
	for (i = 0; i < n; i++) {
		char *text = slurp(files[i]);
		bool bad = text && scan(text, &l);

		free(text);
		if (!bad)
			continue;
		if (!find_int(root, files[i], l.line, l.truncated, path,
			      sizeof(path)))
			snprintf(path, sizeof(path), "integer");
		k = cfg_key_find(path);
		snprintf(err, errlen,
			 "%s:%u: %s: %s does not fit in 32 bits, and libconfig would read it as %lld: write %sL%s",
			 files[i], l.line, path, l.text, l.truncated, l.text,
			 k && k->type == CFG_T_SIZE ?
			 " or a string like \"4G\"" : "");
		return -EINVAL;
	}
	return 0;
}
