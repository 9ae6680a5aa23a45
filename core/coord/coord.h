/* SPDX-License-Identifier: MIT */
/* Coordinator: how nodes find each other. The client (embedded HTTP server or
 * etcd backend) and the embedded server. */
#ifndef PM_COORD_H
#define PM_COORD_H

#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "cfg.h"

/* Longest a GET /endpoints?wait=V is held by the server. */
#define COORD_WAIT_MAX_MS 10000
/*
 * Long-polls without a valid signature the server holds at once; more get
 * 503 at once. Each holds a connection and its thread: this keeps the
 * coordinator's connections for signed heartbeats, registrations and
 * long-polls, which are not counted.
 */
#define COORD_OPEN_POLLS_MAX 32
/* Largest request body the server reads; larger ones get 413. */
#define COORD_BODY_MAX (64 * 1024)
/* Name of the cluster used when a request names none. */
#define COORD_DEFAULT_CLUSTER "default"

/* ---- client ------------------------------------------------------------ */

struct coord;

struct coord_member {
	int node_id;
	int n_eps;
	struct {
		char transport[64];		/* "tcp", "io_uring-tcp", "rdma" */
		char endpoint[PM_ENDPOINT_MAX];	/* the plugin's own string */
	} eps[CFG_MAX_TRANSPORTS];
};

/*
 * Connect to the coordinator named by c (coordinator.backend "embedded" or
 * "etcd", coordinator.url/urls; optional coordinator.ttl_ms) and create the
 * cluster (cluster.name, cluster.nodes, cluster.memory) unless it exists.
 * An existing cluster with another node count or memory size is -EEXIST.
 * 0 or -errno; errors are logged with the URL and HTTP status.
 */
int coord_open(const struct cfg *c, struct coord **out);

/*
 * Publish every endpoint of self (node_id = this node), then keep this node
 * alive (heartbeats, or the etcd lease keepalive) on a thread of its own until
 * coord_close(). If the coordinator forgets the node (restart, expiry), the
 * thread registers it again. 0 or -errno; -EADDRINUSE when the embedded
 * coordinator keeps the id live for another incarnation (another process
 * with this node id) for longer than twice the TTL: one that crashed has
 * expired by then, so only a live twin is refused.
 */
int coord_register(struct coord *co, const struct coord_member *self);

/*
 * The live members, sorted by node id, once the membership version is
 * greater than after_version (0 returns at once). Waits at most timeout_ms:
 * then -ETIMEDOUT, with out/n/version still filled with the current state.
 * More than max members is -E2BIG (the first max are filled). The version
 * moves on every membership change (join, new endpoint, leave, expiry); with
 * etcd it is the store revision, which can also move for other writes.
 */
int coord_members(struct coord *co, uint64_t after_version, int timeout_ms,
		  struct coord_member *out, int max, int *n, uint64_t *version);

/*
 * Wait until at least want members are live (e.g. cluster.nodes at start-up),
 * up to timeout_ms: 0, or -ETIMEDOUT with the members seen so far in out.
 */
int coord_wait_members(struct coord *co, int want, int timeout_ms,
		       struct coord_member *out, int max, int *n,
		       uint64_t *version);

/*
 * Turn members into c->peers (what start-up reads for a static peer list):
 * every member but c->node_id, each endpoint filed under its transport's
 * index in c->transports; transports this node does not use are left out.
 * Returns the number of peers set.
 */
int coord_fill_peers(struct cfg *c, const struct coord_member *m, int n);

/* Stop heart-beating and leave (the node's entries are removed), free co. */
void coord_close(struct coord *co);

/* Liveness TTL in effect (server's, or the etcd lease's), in ms. */
int coord_ttl_ms(const struct coord *co);

/* ---- embedded server ----------------------------------------------------- */

struct coord_server;

/*
 * Serve the coordinator API on listen ("HOST:PORT", "[V6]:PORT", ":PORT";
 * port 0 picks a free one). 0 or -errno with a message in err.
 */
int coord_server_start(const char *listen, int ttl_ms,
		       struct coord_server **out, char *err, size_t errlen);
/* From now on, refuse write requests not signed with key (401). */
int coord_server_set_key(struct coord_server *s, const unsigned char *key,
			 size_t len);
int coord_server_port(const struct coord_server *s);
void coord_server_stop(struct coord_server *s);

/* Monotonic clock in ms; the clock of every deadline here. */
static inline int64_t coord_now_ms(void)
{
	return pm_now_ns() / 1000000;
}

/*
 * Cluster key (security.key_file) for the coordinator's requests: every
 * request of a client with a key carries "X-Pagemesh-Auth: TS:NONCE:MAC",
 * TS the sender's Unix time in ms (auth_wall_ms), NONCE 16 random bytes in
 * hex, fresh for every request, MAC the hex HMAC-SHA256 under the key of
 * "TS\nNONCE\nMETHOD\nPATH\nCLUSTER\nBODY" (auth_request_mac; PATH
 * without the query, CLUSTER the ?cluster= value or ""). A server with the
 * key requires it on writes (POST, DELETE), checks it wherever it is sent,
 * accepts TS within COORD_AUTH_SKEW_MS of its own clock and takes each
 * NONCE once: it remembers them until their TS is out of that window, at
 * most COORD_NONCES_MAX at a time: beyond that, 503 until some expire,
 * rather than forget one early (its request could be replayed).
 */
#define COORD_AUTH_HEADER "X-Pagemesh-Auth"
#define COORD_AUTH_SKEW_MS 30000
/*
 * 32 bytes each, allocated with the key. A node sends about one request
 * per TTL/3 and each nonce is kept up to 2 * COORD_AUTH_SKEW_MS: room for
 * some 600 nodes at the default TTL of 5 s.
 */
#define COORD_NONCES_MAX 65536

/*
 * Node incarnations: a client makes a random one (COORD_INCARNATION_HEX
 * hex digits) per coord_open and sends it as "incarnation" in the body of
 * its registrations, heartbeats and leave; the server takes 1 to
 * COORD_INCARNATION_MAX lowercase hex digits. While a node id is live, only
 * its incarnation may add or change endpoints, beat, or leave with one
 * (409 naming the node otherwise). A claim without an incarnation is the
 * same registration only if the node holds none either and no endpoint it
 * has changes; a leave without one is an operator's and removes the node.
 */
#define COORD_INCARNATION_HEX 32
#define COORD_INCARNATION_MAX 64

#endif
