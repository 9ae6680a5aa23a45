/* SPDX-License-Identifier: MIT */
/* Inside the config loader: what cfg.c, cfg_check.c and cfg_keys.c share. */
#ifndef PM_CFG_PRIV_H
#define PM_CFG_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

/* Every setting of c against the table (cfg_check.c). 0 or -EINVAL. */
int cfg_check_keys(const struct cfg *c, char *err, size_t errlen);
/* Integers libconfig 1.5 truncated, from the source text. 0 or -EINVAL. */
int cfg_check_ints(const struct cfg *c, char *err, size_t errlen);

/* "a string", "an integer", ... for messages. */
const char *cfg_type_name(const config_setting_t *s);
bool cfg_is_int(const config_setting_t *s);
/* Setting s (named key in messages) as a size. 0 or -EINVAL and err. */
int cfg_setting_size(const struct cfg *c, const char *key,
		     const config_setting_t *s, uint64_t *out, char *err,
		     size_t errlen);

/* "a|b|c" as "a", "b" or "c" (md: each in backticks, for markdown). */
void cfg_choices_str(const char *form, bool md, char *buf, size_t len);

#endif
