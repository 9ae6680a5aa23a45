/* SPDX-License-Identifier: MIT */
/* Peer authentication: the cluster key, the HMAC-SHA256 challenge-response
 * that opens every connection, which incoming connections passed it, and
 * the MAC that signs the coordinator's write requests. */
#ifndef PM_AUTH_H
#define PM_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

#define AUTH_NONCE_LEN 32
#define AUTH_MAC_LEN 32
/* A key file holds AUTH_KEY_MIN to AUTH_KEY_MAX bytes, used as they are. */
#define AUTH_KEY_MIN 16
#define AUTH_KEY_MAX 4096

/*
 * Read a key file into key (room for AUTH_KEY_MAX + 1 bytes: one past the
 * limit tells "too long" from "full"). 0 or -errno with the file and the
 * reason in err. Modes are auth_open's to check.
 */
int auth_load_key(const char *path, unsigned char *key, size_t *len,
		  char *err, size_t errlen);

/*
 * The handshake (HELLO is the first call on every outgoing connection):
 *   client -> server  HELLO, payload Nc | cluster name
 *   server -> client  HELLO reply with PM_RP_AUTH, payload Ns | Ms
 *   client -> server  AUTH, payload Mc
 *   server -> client  AUTH reply, status 0 (or -EACCES and the drop)
 * Ms = HMAC(key, auth_transcript("server", ...)), Mc the same with
 * "client": both bound to the cluster, both node ids and both nonces, so
 * no message of one connection is accepted on another.
 */

struct auth;

/*
 * Load security.key_file if set (refused when missing, shorter than 16
 * bytes, or readable or writable by group or other). *out is a keyless
 * auth when the config has no key. 0, or -errno and a message in err.
 */
int auth_open(const struct cfg *c, struct auth **out, char *err,
	      size_t errlen);
void auth_close(struct auth *a);
bool auth_has_key(const struct auth *a);

/* Is "HOST:PORT" / "[V6]:PORT" / "HOST" a loopback address? */
bool auth_addr_is_loopback(const char *hostport);

/* MAC of role ("server" or "client") over the handshake's transcript. */
int auth_mac(const struct auth *a, const char *role, const char *cluster,
	     int client_id, int server_id, const uint8_t *nc,
	     const uint8_t *ns, uint8_t mac[AUTH_MAC_LEN]);
/* Constant-time check of a received MAC. 0 or -EACCES. */
int auth_verify(const struct auth *a, const char *role, const char *cluster,
		int client_id, int server_id, const uint8_t *nc,
		const uint8_t *ns, const uint8_t *mac);
/* A fresh nonce from the OpenSSL CSPRNG. 0 or -EIO. */
int auth_nonce(uint8_t nonce[AUTH_NONCE_LEN]);

/*
 * Server side, per incoming connection (transport index, conn_id).
 * hello: remember client_id and both nonces (Ns made here), write Ns and
 * Ms. Without a key the connection is trusted at once (loopback only).
 */
int auth_server_hello(struct auth *a, int tidx, uint64_t conn_id,
		      int client_id, int server_id, const char *cluster,
		      const uint8_t *nc, uint8_t ns[AUTH_NONCE_LEN],
		      uint8_t ms[AUTH_MAC_LEN]);
/* The AUTH message: 0 and the connection is trusted, -EACCES on a wrong
 * MAC or node id, -ENOENT without a HELLO first. */
int auth_server_finish(struct auth *a, int tidx, uint64_t conn_id,
		       int client_id, int server_id, const char *cluster,
		       const uint8_t *mc);
/* May a request claiming to be from node `from` pass on this connection? */
bool auth_conn_ok(struct auth *a, int tidx, uint64_t conn_id, int from);
void auth_conn_closed(struct auth *a, int tidx, uint64_t conn_id);

/*
 * Signed coordinator requests (see COORD_AUTH_HEADER in coord.h) carry a
 * random nonce of AUTH_REQ_NONCE_LEN bytes, in hex, that the server
 * remembers for the signature's window, so that no request is taken twice.
 */
#define AUTH_REQ_NONCE_LEN 16
#define AUTH_REQ_NONCE_HEX (2 * AUTH_REQ_NONCE_LEN)
#define AUTH_REQ_MAC_HEX (2 * AUTH_MAC_LEN)

/* n bytes from the OpenSSL CSPRNG as 2n lowercase hex digits and a NUL
 * (out has room for 2n + 1). 0 or -EIO. */
int auth_random_hex(char *out, size_t n);

/*
 * MAC of a coordinator request: out = hex HMAC-SHA256 under key of
 * "TS\nNONCE\nMETHOD\nPATH\nCLUSTER\nBODY". ts is at least 0, nonce
 * AUTH_REQ_NONCE_HEX lowercase hex digits. 0, -EINVAL (ts or nonce),
 * -ENAMETOOLONG or -ENOMEM.
 */
int auth_request_mac(const unsigned char *key, size_t keylen, int64_t ts,
		     const char *nonce, const char *method, const char *path,
		     const char *cluster, const char *body, size_t bodylen,
		     char out[AUTH_REQ_MAC_HEX + 1]);

/*
 * Split a received "TS:NONCE:MAC" header. TS is decimal digits only (no
 * sign, no space, at most INT64_MAX), NONCE and MAC exactly
 * AUTH_REQ_NONCE_HEX and AUTH_REQ_MAC_HEX lowercase hex digits. 0, or
 * -EINVAL with what was wrong in *why (a static string).
 */
int auth_request_parse(const char *hdr, int64_t *ts,
		       char nonce[AUTH_REQ_NONCE_HEX + 1],
		       char mac[AUTH_REQ_MAC_HEX + 1], const char **why);

/* Unix time in ms: the TS of a signed request (clocks of hosts agree on
 * it, unlike the monotonic clock). */
int64_t auth_wall_ms(void);

/* Serialise re-handshakes of the client side (a peer restarted). */
void auth_client_lock(struct auth *a);
void auth_client_unlock(struct auth *a);

#endif
