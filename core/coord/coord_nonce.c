// SPDX-License-Identifier: MIT
/* The embedded coordinator's memory of signed requests' nonces, which makes
 * a captured request useless: each nonce is taken once while its signature
 * is fresh, in a table of fixed size that refuses when full. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "coord_srv.h"

int coord_nonces_init(struct coord_nonces *t, uint32_t cap)
{
	uint32_t i;

	memset(t, 0, sizeof(*t));
	if (!cap)
		return -EINVAL;
	/* About four entries a chain when full: lookups stay short. */
	t->n_buckets = cap / 4 ? cap / 4 : 1;
	t->bucket = malloc(t->n_buckets * sizeof(*t->bucket));
	t->pool = malloc((size_t)cap * sizeof(*t->pool));
	if (!t->bucket || !t->pool ||
	    RAND_bytes((unsigned char *)&t->seed, sizeof(t->seed)) != 1) {
		free(t->bucket);
		free(t->pool);
		memset(t, 0, sizeof(*t));
		return -ENOMEM;
	}
	for (i = 0; i < t->n_buckets; i++)
		t->bucket[i] = COORD_NONCE_NIL;
	for (i = 0; i < cap; i++)
		t->pool[i].next = i + 1 < cap ? i + 1 : COORD_NONCE_NIL;
	t->free = 0;
	t->cap = cap;
	pthread_mutex_init(&t->lock, NULL);
	return 0;
}

void coord_nonces_free(struct coord_nonces *t)
{
	if (!t->cap)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t->bucket);
	free(t->pool);
	memset(t, 0, sizeof(*t));
}

static int unhex(char c)
{
	return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* Lock held. Unlink every expired entry of one chain. */
static void sweep_chain(struct coord_nonces *t, uint32_t b, int64_t now)
{
	uint32_t *pp = &t->bucket[b], i;

	while ((i = *pp) != COORD_NONCE_NIL) {
		struct coord_nonce *e = &t->pool[i];

		if (e->expires_ms < now) {
			*pp = e->next;
			e->next = t->free;
			t->free = i;
			t->used--;
		} else {
			pp = &e->next;
		}
	}
}

/* Lock held. All chains; the earliest expiry left, or INT64_MAX. */
static int64_t sweep_all(struct coord_nonces *t, int64_t now)
{
	int64_t first = INT64_MAX;
	uint32_t b, i;

	for (b = 0; b < t->n_buckets; b++) {
		sweep_chain(t, b, now);
		for (i = t->bucket[b]; i != COORD_NONCE_NIL;
		     i = t->pool[i].next)
			if (t->pool[i].expires_ms < first)
				first = t->pool[i].expires_ms;
	}
	return first;
}

int coord_nonce_take(struct coord_nonces *t, const char *hex,
		     int64_t expires_ms, int64_t now_ms)
{
	uint8_t n[AUTH_REQ_NONCE_LEN];
	uint64_t h = t->seed;
	uint32_t b, i;
	size_t k;
	int r = 0;

	if (!t->cap)
		return -ENOSPC;
	for (k = 0; k < AUTH_REQ_NONCE_LEN; k++) {
		n[k] = (uint8_t)(unhex(hex[2 * k]) << 4 |
				 unhex(hex[2 * k + 1]));
		/* Seeded: no client picks nonces that share one chain. */
		h = (h ^ n[k]) * 0x100000001b3ull;
	}
	h ^= h >> 29;
	b = (uint32_t)(h % t->n_buckets);

	pthread_mutex_lock(&t->lock);
	sweep_chain(t, b, now_ms);
	for (i = t->bucket[b]; i != COORD_NONCE_NIL; i = t->pool[i].next)
		if (!memcmp(t->pool[i].n, n, sizeof(n))) {
			r = -EEXIST;
			goto out;
		}
	/*
	 * Full: reclaim what expired in other chains, but look again only
	 * once the earliest entry left can have expired, so that a full
	 * table costs one sweep, not one per request.
	 */
	if (t->free == COORD_NONCE_NIL && now_ms >= t->full_until_ms) {
		int64_t first = sweep_all(t, now_ms);

		t->full_until_ms = first < INT64_MAX ? first + 1 : first;
	}
	if (t->free == COORD_NONCE_NIL) {
		r = -ENOSPC;
		goto out;
	}
	i = t->free;
	t->free = t->pool[i].next;
	t->used++;
	memcpy(t->pool[i].n, n, sizeof(n));
	t->pool[i].expires_ms = expires_ms;
	t->pool[i].next = t->bucket[b];
	t->bucket[b] = i;
out:
	pthread_mutex_unlock(&t->lock);
	return r;
}
