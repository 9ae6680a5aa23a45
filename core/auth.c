// SPDX-License-Identifier: MIT
/* Peer authentication: cluster key loading, the HMAC-SHA256 handshake's
 * MACs, the table of incoming connections that passed it, and the MAC that
 * signs the coordinator's write requests. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth.h"

#define AUTH_BUCKETS 256

enum { AC_PENDING = 0, AC_TRUSTED = 1 };

/* One incoming connection that sent a HELLO. */
struct auth_conn {
	struct auth_conn *next;
	int tidx;
	uint64_t conn_id;
	int client_id;
	int state;
	uint8_t nc[AUTH_NONCE_LEN], ns[AUTH_NONCE_LEN];
};

struct auth_bucket {
	pthread_mutex_t lock;
	struct auth_conn *head;
};

struct auth {
	size_t keylen;		/* 0: no key (loopback-only cluster) */
	unsigned char key[AUTH_KEY_MAX + 1];
	pthread_mutex_t client_lock;
	struct auth_bucket b[AUTH_BUCKETS];
};

int auth_open(const struct cfg *c, struct auth **out, char *err,
	      size_t errlen)
{
	char why[PATH_MAX + 128];
	struct auth *a;
	struct stat st;
	int r;

	*out = NULL;
	a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&a->client_lock, NULL);
	for (int i = 0; i < AUTH_BUCKETS; i++)
		pthread_mutex_init(&a->b[i].lock, NULL);
	if (!c->key_file[0])
		goto done;
	/* Each refusal names the file and line of security.key_file. */
	if (stat(c->key_file, &st)) {
		r = -errno;
		cfg_fail_key(c, "security.key_file", err, errlen,
			     "security.key_file %s: %s", c->key_file,
			     strerror(-r));
		goto out_free;
	}
	/* /proc and /sys files pass S_ISREG but have no size. */
	if (!S_ISREG(st.st_mode) || !st.st_size) {
		r = cfg_fail_key(c, "security.key_file", err, errlen,
				 "security.key_file %s: %s", c->key_file,
				 S_ISREG(st.st_mode) ?
				 "empty, or not a file on disk (/proc, /sys)" :
				 "not a regular file");
		goto out_free;
	}
	/* The key opens every page of the cluster: only its owner reads it. */
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		r = -EPERM;
		cfg_fail_key(c, "security.key_file", err, errlen,
			     "security.key_file %s has mode %04o: it must not be readable or writable by group or other (chmod 600 %s)",
			     c->key_file, (unsigned)(st.st_mode & 07777),
			     c->key_file);
		goto out_free;
	}
	r = auth_load_key(c->key_file, a->key, &a->keylen, why, sizeof(why));
	if (r) {
		cfg_fail_key(c, "security.key_file", err, errlen,
			     "security.key_file: %s", why);
		goto out_free;
	}
done:
	*out = a;
	return 0;

out_free:
	auth_close(a);
	return r;
}

void auth_close(struct auth *a)
{
	if (!a)
		return;
	for (int i = 0; i < AUTH_BUCKETS; i++) {
		struct auth_conn *e = a->b[i].head, *nx;

		for (; e; e = nx) {
			nx = e->next;
			free(e);
		}
		pthread_mutex_destroy(&a->b[i].lock);
	}
	pthread_mutex_destroy(&a->client_lock);
	OPENSSL_cleanse(a->key, sizeof(a->key));
	free(a);
}

bool auth_has_key(const struct auth *a)
{
	return a && a->keylen;
}

bool auth_addr_is_loopback(const char *hostport)
{
	char host[PM_ENDPOINT_MAX];
	const char *end;
	struct in6_addr a6;
	struct in_addr a4;
	size_t len;

	if (!hostport)
		return false;
	if (hostport[0] == '[') {
		end = strchr(hostport, ']');
		if (!end)
			return false;
		hostport++;
	} else {
		end = strrchr(hostport, ':');
		/* Two colons without brackets: a bare IPv6 address. */
		if (end && strchr(hostport, ':') != end)
			end = NULL;
		if (!end)
			end = hostport + strlen(hostport);
	}
	len = (size_t)(end - hostport);
	if (len >= sizeof(host))
		return false;
	memcpy(host, hostport, len);
	host[len] = '\0';
	if (!strcmp(host, "localhost"))
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

static void hex(char *out, const uint8_t *b, size_t n)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = '\0';
}

int auth_mac(const struct auth *a, const char *role, const char *cluster,
	     int client_id, int server_id, const uint8_t *nc,
	     const uint8_t *ns, uint8_t mac[AUTH_MAC_LEN])
{
	char t[512], hc[2 * AUTH_NONCE_LEN + 1], hs[2 * AUTH_NONCE_LEN + 1];
	unsigned int maclen = 0;
	int len;

	if (!auth_has_key(a))
		return -ENOKEY;
	hex(hc, nc, AUTH_NONCE_LEN);
	hex(hs, ns, AUTH_NONCE_LEN);
	/* The cluster name is length-prefixed: no name can shift a field. */
	len = snprintf(t, sizeof(t), "pagemesh-auth-v1|%s|%zu:%s|%d|%d|%s|%s",
		       role, strlen(cluster), cluster, client_id, server_id,
		       hc, hs);
	if (len < 0 || (size_t)len >= sizeof(t))
		return -ENAMETOOLONG;
	if (!HMAC(EVP_sha256(), a->key, (int)a->keylen, (unsigned char *)t,
		  (size_t)len, mac, &maclen) || maclen != AUTH_MAC_LEN)
		return -EIO;
	return 0;
}

int auth_verify(const struct auth *a, const char *role, const char *cluster,
		int client_id, int server_id, const uint8_t *nc,
		const uint8_t *ns, const uint8_t *mac)
{
	uint8_t want[AUTH_MAC_LEN];
	int r;

	r = auth_mac(a, role, cluster, client_id, server_id, nc, ns, want);
	if (r)
		return r;
	r = CRYPTO_memcmp(want, mac, AUTH_MAC_LEN) ? -EACCES : 0;
	OPENSSL_cleanse(want, sizeof(want));
	return r;
}

int auth_nonce(uint8_t nonce[AUTH_NONCE_LEN])
{
	return RAND_bytes(nonce, AUTH_NONCE_LEN) == 1 ? 0 : -EIO;
}

static struct auth_bucket *bucket(struct auth *a, int tidx, uint64_t conn_id)
{
	uint64_t h = (conn_id ^ ((uint64_t)tidx << 56)) *
		     0x9e3779b97f4a7c15ull;

	return &a->b[h >> 56];
}

/* Bucket lock held. */
static struct auth_conn *find(struct auth_bucket *b, int tidx,
			      uint64_t conn_id)
{
	struct auth_conn *e;

	for (e = b->head; e; e = e->next)
		if (e->tidx == tidx && e->conn_id == conn_id)
			return e;
	return NULL;
}

int auth_server_hello(struct auth *a, int tidx, uint64_t conn_id,
		      int client_id, int server_id, const char *cluster,
		      const uint8_t *nc, uint8_t ns[AUTH_NONCE_LEN],
		      uint8_t ms[AUTH_MAC_LEN])
{
	struct auth_bucket *b = bucket(a, tidx, conn_id);
	struct auth_conn *e;
	int r = 0;

	if (auth_has_key(a)) {
		r = auth_nonce(ns);
		if (!r)
			r = auth_mac(a, "server", cluster, client_id,
				     server_id, nc, ns, ms);
		if (r)
			return r;
	}
	pthread_mutex_lock(&b->lock);
	e = find(b, tidx, conn_id);
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e) {
			pthread_mutex_unlock(&b->lock);
			return -ENOMEM;
		}
		e->tidx = tidx;
		e->conn_id = conn_id;
		e->state = AC_PENDING;
		e->next = b->head;
		b->head = e;
	}
	/*
	 * A connection that proved the key stays trusted through a repeated
	 * HELLO (a re-handshake of the client), but only as the same node.
	 */
	if (e->state == AC_TRUSTED && e->client_id != client_id)
		e->state = AC_PENDING;
	e->client_id = client_id;
	if (auth_has_key(a)) {
		memcpy(e->nc, nc, AUTH_NONCE_LEN);
		memcpy(e->ns, ns, AUTH_NONCE_LEN);
	} else {
		e->state = AC_TRUSTED;
	}
	pthread_mutex_unlock(&b->lock);
	return 0;
}

int auth_server_finish(struct auth *a, int tidx, uint64_t conn_id,
		       int client_id, int server_id, const char *cluster,
		       const uint8_t *mc)
{
	struct auth_bucket *b = bucket(a, tidx, conn_id);
	uint8_t nc[AUTH_NONCE_LEN], ns[AUTH_NONCE_LEN];
	struct auth_conn *e;
	int r;

	if (!auth_has_key(a))
		return auth_conn_ok(a, tidx, conn_id, client_id) ? 0 : -ENOENT;
	pthread_mutex_lock(&b->lock);
	e = find(b, tidx, conn_id);
	if (!e) {
		pthread_mutex_unlock(&b->lock);
		return -ENOENT;
	}
	if (e->client_id != client_id) {
		pthread_mutex_unlock(&b->lock);
		return -EACCES;
	}
	memcpy(nc, e->nc, sizeof(nc));
	memcpy(ns, e->ns, sizeof(ns));
	pthread_mutex_unlock(&b->lock);

	r = auth_verify(a, "client", cluster, client_id, server_id, nc, ns, mc);

	pthread_mutex_lock(&b->lock);
	e = find(b, tidx, conn_id);
	/* Trust only the exchange these nonces belong to. */
	if (!r && e && !memcmp(e->ns, ns, sizeof(ns)))
		e->state = AC_TRUSTED;
	else if (!r)
		r = -EACCES;
	if (e)	/* each Ns answers at most one AUTH */
		memset(e->ns, 0, sizeof(e->ns));
	pthread_mutex_unlock(&b->lock);
	return r;
}

bool auth_conn_ok(struct auth *a, int tidx, uint64_t conn_id, int from)
{
	struct auth_bucket *b = bucket(a, tidx, conn_id);
	struct auth_conn *e;
	bool ok;

	pthread_mutex_lock(&b->lock);
	e = find(b, tidx, conn_id);
	ok = e && e->state == AC_TRUSTED && e->client_id == from;
	pthread_mutex_unlock(&b->lock);
	return ok;
}

void auth_conn_closed(struct auth *a, int tidx, uint64_t conn_id)
{
	struct auth_bucket *b = bucket(a, tidx, conn_id);
	struct auth_conn **pp, *e;

	pthread_mutex_lock(&b->lock);
	for (pp = &b->head; (e = *pp); pp = &e->next) {
		if (e->tidx == tidx && e->conn_id == conn_id) {
			*pp = e->next;
			free(e);
			break;
		}
	}
	pthread_mutex_unlock(&b->lock);
}

void auth_client_lock(struct auth *a)
{
	pthread_mutex_lock(&a->client_lock);
}

void auth_client_unlock(struct auth *a)
{
	pthread_mutex_unlock(&a->client_lock);
}

/* ---- keys and signed requests -------------------------------------------- */

int64_t auth_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int auth_load_key(const char *path, unsigned char *key, size_t *len,
		  char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "key file %s: %s", path, strerror(-r));
		return r;
	}
	/* The rules of auth_open, for every reader of a key (the
	 * coordinator too): a file on disk that only its owner reads. */
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || !st.st_size ||
	    (st.st_mode & (S_IRWXG | S_IRWXO))) {
		r = S_ISREG(st.st_mode) && st.st_size ? -EPERM : -EINVAL;
		if (r == -EPERM)
			snprintf(err, errlen,
				 "key file %s has mode %04o: it must not be readable or writable by group or other (chmod 600 %s)",
				 path, (unsigned)(st.st_mode & 07777), path);
		else
			snprintf(err, errlen,
				 "key file %s: not a regular file on disk",
				 path);
		close(fd);
		return r;
	}
	/* Read one byte past the limit to tell "too long" from "full". */
	while (got <= AUTH_KEY_MAX) {
		n = read(fd, key + got, AUTH_KEY_MAX + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			snprintf(err, errlen, "key file %s: %s", path,
				 strerror(-r));
			break;
		}
		if (!n)
			break;
		got += n;
	}
	close(fd);
	if (r)
		return r;
	if (got < AUTH_KEY_MIN || got > AUTH_KEY_MAX) {
		snprintf(err, errlen,
			 "key file %s: %zu%s bytes; a key has %d to %d bytes",
			 path, got, got > AUTH_KEY_MAX ? "+" : "",
			 AUTH_KEY_MIN, AUTH_KEY_MAX);
		return -EINVAL;
	}
	*len = got;
	return 0;
}

int auth_random_hex(char *out, size_t n)
{
	uint8_t b[64];

	if (n > sizeof(b) || RAND_bytes(b, (int)n) != 1)
		return -EIO;
	hex(out, b, n);
	OPENSSL_cleanse(b, n);
	return 0;
}

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int auth_request_mac(const unsigned char *key, size_t keylen, int64_t ts,
		     const char *nonce, const char *method, const char *path,
		     const char *cluster, const char *body, size_t bodylen,
		     char out[AUTH_REQ_MAC_HEX + 1])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char head[704];
	size_t hl;
	char *msg;
	int n;

	/* The nonce is a fixed-width field: no nonce can shift METHOD. */
	if (ts < 0 || !nonce || strlen(nonce) != AUTH_REQ_NONCE_HEX ||
	    !all_hex(nonce, AUTH_REQ_NONCE_HEX))
		return -EINVAL;
	n = snprintf(head, sizeof(head), "%lld\n%s\n%s\n%s\n%s\n",
		     (long long)ts, nonce, method, path, cluster ? cluster : "");
	if (n < 0 || (size_t)n >= sizeof(head))
		return -ENAMETOOLONG;
	hl = (size_t)n;
	msg = malloc(hl + bodylen + 1);
	if (!msg)
		return -ENOMEM;
	memcpy(msg, head, hl);
	if (bodylen)
		memcpy(msg + hl, body, bodylen);
	if (!HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)msg,
		  hl + bodylen, mac, &maclen) || maclen != AUTH_MAC_LEN) {
		free(msg);
		return -ENOMEM;
	}
	free(msg);
	hex(out, mac, AUTH_MAC_LEN);
	return 0;
}

int auth_request_parse(const char *hdr, int64_t *ts,
		       char nonce[AUTH_REQ_NONCE_HEX + 1],
		       char mac[AUTH_REQ_MAC_HEX + 1], const char **why)
{
	const char *p = hdr, *n, *m;
	int64_t v = 0;

	/*
	 * Digit by digit with the bound checked before each step: strtoll
	 * takes a sign and spaces, and its INT64_MIN was negated on the
	 * skew check (signed overflow).
	 */
	if (*p < '0' || *p > '9') {
		*why = "timestamp is not a decimal number";
		return -EINVAL;
	}
	for (; *p >= '0' && *p <= '9'; p++) {
		int d = *p - '0';

		if (v > (INT64_MAX - d) / 10) {
			*why = "timestamp out of range";
			return -EINVAL;
		}
		v = v * 10 + d;
	}
	if (*p != ':') {
		*why = "timestamp is not a decimal number";
		return -EINVAL;
	}
	n = p + 1;
	m = strchr(n, ':');
	if (!m) {
		/* What clients before the nonce sent: say so. */
		*why = "no nonce (TS:MAC is the old format; want TS:NONCE:MAC)";
		return -EINVAL;
	}
	if ((size_t)(m - n) != AUTH_REQ_NONCE_HEX ||
	    !all_hex(n, AUTH_REQ_NONCE_HEX)) {
		*why = "nonce is not 32 lowercase hex digits";
		return -EINVAL;
	}
	m++;
	if (strlen(m) != AUTH_REQ_MAC_HEX || !all_hex(m, AUTH_REQ_MAC_HEX)) {
		*why = "MAC is not 64 lowercase hex digits";
		return -EINVAL;
	}
	*ts = v;
	memcpy(nonce, n, AUTH_REQ_NONCE_HEX);
	nonce[AUTH_REQ_NONCE_HEX] = '\0';
	memcpy(mac, m, AUTH_REQ_MAC_HEX + 1);
	return 0;
}
