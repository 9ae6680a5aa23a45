/* SPDX-License-Identifier: MIT */
/*
 * pagemesh transport plugin ABI, version 1.2 (1.0 and 1.1 plugins keep
 * loading).
 *
 * This is the only header a transport plugin needs. A plugin is a shared
 * object that exports exactly one symbol, PM_TRANSPORT_ENTRY_NAME
 * ("pagemesh_transport_v1"), a function returning a const ops table. The
 * core dlopen()s it, checks the table, probes it, and uses it as a message
 * pipe: the core owns the protocol (what the bytes of a message mean); the
 * plugin moves requests and replies between nodes.
 *
 * Model
 *   - A node listens (listen) and publishes an endpoint string (endpoint).
 *   - A node dials a peer's endpoint (connect) and gets a connection on which
 *     any number of threads may have calls in flight at once (call). Calls
 *     are matched to replies by a request id the plugin assigns; replies may
 *     come back in any order.
 *   - Requests arriving at a listener are handed to the core's handler with
 *     the id of the incoming connection and the request id. The core answers
 *     each exactly once with reply(), either from inside the handler or
 *     later from any thread (a home node waiting for invalidation acks).
 *   - Connections are one-directional for calls: the dialling side sends
 *     requests, the listening side sends replies. Two nodes that both call
 *     each other hold two connections.
 *
 * Rules for every op
 *   - Return 0 or a negative errno. Never exit, abort or print: log through
 *     the host table. A missing device or library is a probe failure with a
 *     reason string, not a crash.
 *   - Every wait is bounded by the caller's deadline (absolute
 *     CLOCK_MONOTONIC nanoseconds, see pm_now_ns()); -ETIMEDOUT when it
 *     passes.
 *   - Every length or id read from the network is checked before use; a
 *     peer that sends a malformed frame is disconnected and logged, and the
 *     listener keeps serving every other peer.
 *   - Return values are exactly 0 or -errno: the core treats a positive
 *     return, or a reply whose lengths exceed the buffers it gave, as a
 *     broken plugin (an error, logged with the plugin's name).
 *
 * Rules the core relies on (the conformance suite checks each; its --help
 * names the case that checks which)
 *   - At most once. A request is handed to on_request at most once, and
 *     call() never resends a request the peer may have seen: after a
 *     connection loss a call in flight fails (-ECONNRESET or -EPIPE); only
 *     a request the peer provably never received (not yet written, or
 *     refused before any byte of it left) may go out again on a redialled
 *     connection. The core answers an in-flight -ECONNRESET as a dead peer,
 *     and a request run twice (a page fetch, an invalidation) corrupts its
 *     bookkeeping.
 *   - Late completions. call() returns no later than PM_CALL_LATE_MS after
 *     its deadline, whatever the network does. The core's deadlines are
 *     tight (a home's actions get a fraction of pager.timeout_ms, 0.5 s
 *     at timeout_ms 1000), and a call that overran one counts as a dead
 *     peer.
 *   - Per-connection order. on_request runs on one plugin thread at a time
 *     for one incoming connection, in the order the requests arrived on
 *     it; it may run concurrently for different connections.
 *   - Re-entrancy. on_close never runs inside drop(): drop only starts the
 *     close, and on_close follows from a plugin thread. drop() and reply()
 *     may be called from inside on_request (also for its own connection).
 *     No op may be called from inside on_close other than reply() (which
 *     returns -ENOTCONN for that connection).
 *   - endpoint() before listen() fails, -ENOTCONN (some 1.0 plugins say
 *     -EINVAL), and writes nothing: the core publishes no endpoint then.
 *   - Status range. reply() carries status 0 or a negative errno in
 *     [-4095, -1]; call() returns it unchanged. Any other status is -EINVAL
 *     from reply() and nothing is sent.
 *   - fini() frees every outgoing connection not yet disconnected (the core
 *     never calls disconnect() on them after fini), and delivers on_close
 *     for every incoming connection still open before it returns.
 *   - The listen string of the config means an address to bind; the
 *     string of any_listen() (below) means "any free address", on which
 *     many instances may listen at once. An endpoint() string is accepted
 *     back as a listen string (a restarted node listens where it was).
 *
 * Versioning (the SQLite VFS / rdma-core way)
 *   - The major version is pasted into the entry symbol's name, so a plugin
 *     built for another major fails to load instead of misbehaving.
 *   - Ops are only ever appended within a major. The table starts with its
 *     own size; the core calls an op appended after 1.0 only when
 *     PM_OPS_HAS(ops, field) says the plugin's table is long enough and the
 *     pointer is not NULL.
 *   - The host table grows the same way: a plugin uses a member appended
 *     after 1.0 (vlog) only when PM_HOST_HAS(host, field), so a 1.1 plugin
 *     still runs under a 1.0 core.
 *   - 1.1 appended: pm_host.vlog, the ops any_listen, is_local and
 *     test_corrupt, PM_CAP_HOST_LOCAL. All optional.
 *   - 1.2 appended: the op test_raw_dial (a bare connection for the
 *     conformance suite's silent and slow peers). Optional; the core never
 *     calls it.
 */
#ifndef PAGEMESH_TRANSPORT_H
#define PAGEMESH_TRANSPORT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PM_TRANSPORT_ABI_MAJOR 1
#define PM_TRANSPORT_ABI_MINOR 2

/* The one symbol a plugin exports: const struct pm_transport_ops *fn(void). */
#define PM_TRANSPORT_ENTRY pagemesh_transport_v1
#define PM_TRANSPORT_ENTRY_NAME "pagemesh_transport_v1"

/* Mark the entry symbol with this when building with -fvisibility=hidden. */
#define PM_TRANSPORT_EXPORT __attribute__((visibility("default")))

/* Size of the pages that move; payloads are usually one page. */
#define PM_PAGE_SIZE 4096u
/* Largest core message (the header part of a request or reply). */
#define PM_MSG_MAX 256u
/* Largest payload of one request or reply: 16 pages (batched fetches). */
#define PM_PAYLOAD_MAX (16u * PM_PAGE_SIZE)
/* Largest endpoint string, including the terminating NUL. */
#define PM_ENDPOINT_MAX 256u
/* How late after its deadline call() may return (see "Late completions"). */
#define PM_CALL_LATE_MS 200
/* The range of a reply's status: 0 or -PM_STATUS_MAX..-1. */
#define PM_STATUS_MAX 4095

/* Log levels for pm_host.log. */
enum pm_log_level {
	PM_LOG_ERROR = 0,
	PM_LOG_WARN = 1,
	PM_LOG_INFO = 2,
	PM_LOG_DEBUG = 3,
};

/* Capability flags (pm_transport_ops.caps); informational for 1.0. */
#define PM_CAP_RELIABLE (1u << 0)  /* in-order, lossless byte or msg stream */
#define PM_CAP_ZEROCOPY (1u << 1)  /* payloads land in the caller's buffer */
#define PM_CAP_RDMA (1u << 2)      /* runs over RDMA verbs */
#define PM_CAP_ONESIDED (1u << 3)  /* can read remote pages one-sided */
#define PM_CAP_BATCH (1u << 4)     /* submits many calls per system call */
/* 1.1: every endpoint is on this host (AF_UNIX, shared memory): the core
 * may run such a cluster without a key, as it does for loopback. */
#define PM_CAP_HOST_LOCAL (1u << 5)

/*
 * Current CLOCK_MONOTONIC time in nanoseconds: the clock of deadlines.
 * It needs POSIX clocks, which strict ISO modes (-std=c11) hide: build a
 * plugin with -std=gnu11 (or gcc's default), or define
 * _POSIX_C_SOURCE=200809L before any #include, to have it.
 */
#ifdef CLOCK_MONOTONIC
static inline int64_t pm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
#endif

/*
 * Services the core lends to a plugin. Plugins never link against the core;
 * everything they need from it comes through here. The table and the
 * strings it returns stay valid until the plugin's fini() returns.
 * All functions are thread-safe.
 */
struct pm_host {
	uint32_t size;        /* sizeof(struct pm_host) as the core built it */
	uint16_t abi_major;   /* PM_TRANSPORT_ABI_MAJOR of the core */
	uint16_t abi_minor;
	void *ctx;            /* pass back as the first argument below */
	const char *name;     /* the transport's name in the config: "tcp" */
	uint32_t page_size;   /* PM_PAGE_SIZE */
	uint32_t node_id;     /* this node's id, for log messages */

	/* printf-style log line, prefixed by the core with the plugin name. */
	void (*log)(void *ctx, int level, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));

	/*
	 * Config lookup relative to this transport's group ("transports.NAME"):
	 * key "listen" reads transports.tcp.listen. Return 0 and set *out, or
	 * -ENOENT when the key is absent, -EINVAL when it has another type.
	 */
	int (*cfg_string)(void *ctx, const char *key, const char **out);
	int (*cfg_int)(void *ctx, const char *key, int64_t *out);

	/* --- appended in 1.1: check PM_HOST_HAS(host, field) first --- */

	/* log with a va_list, for a plugin's own printf-like wrappers. */
	void (*vlog)(void *ctx, int level, const char *fmt, va_list ap)
		__attribute__((format(printf, 3, 0)));
};

/* Does the core's host table have the member `field` (set)? A 1.0 core
 * hands a shorter table. */
#define PM_HOST_HAS(host, field)                                           \
	((host)->size >= offsetof(struct pm_host, field) +                 \
			sizeof((host)->field) && (host)->field != NULL)

/* One message: a core header of up to PM_MSG_MAX bytes and an optional
 * payload of up to PM_PAYLOAD_MAX bytes. */
struct pm_msg {
	void *msg;            /* send: the bytes; receive: buffer of msg_cap */
	uint32_t msg_len;     /* send: length; receive: set to what arrived */
	uint32_t msg_cap;     /* receive only: room in msg */
	void *payload;        /* may be NULL when payload_len/cap is 0 */
	uint32_t payload_len;
	uint32_t payload_cap; /* receive only */
};

/* A request as it arrives at a listener. Everything it points to is valid
 * only during the handler call: copy what must outlive it. */
struct pm_request {
	uint64_t conn_id;     /* incoming connection, unique until fini() */
	uint64_t req_id;      /* pass to reply() with conn_id */
	const void *msg;
	uint32_t msg_len;
	const void *payload;
	uint32_t payload_len;
	const char *peer;     /* printable peer address, for log messages */
};

/*
 * The core's side of a listener.
 *   on_request: called once per well-formed request, on a plugin thread.
 *     It must not wait on the network: answer at once with reply(), or
 *     keep (conn_id, req_id) and reply later from another thread.
 *     It may be called concurrently for different connections.
 *   on_close (may be NULL): the incoming connection conn_id is gone (peer
 *     closed, frame error, drop() or fini()). No on_request for that
 *     conn_id follows, and reply() on it returns -ENOTCONN.
 */
struct pm_listener {
	void (*on_request)(void *arg, const struct pm_request *req);
	void (*on_close)(void *arg, uint64_t conn_id);
	void *arg;
};

/* Opaque per-plugin types. */
struct pm_tctx;   /* one initialised transport instance */
struct pm_tconn;  /* one outgoing connection */

struct pm_transport_ops {
	/* --- header: never reordered --- */
	uint32_t size;        /* sizeof(struct pm_transport_ops) at build */
	uint16_t abi_major;   /* PM_TRANSPORT_ABI_MAJOR */
	uint16_t abi_minor;   /* PM_TRANSPORT_ABI_MINOR */
	const char *name;     /* short name, e.g. "tcp" */
	const char *version;  /* the plugin's own version string */
	uint64_t caps;        /* PM_CAP_* */

	/* --- ops of ABI 1.0: all mandatory --- */

	/*
	 * Can this transport run here? Cheap, no side effects, no threads left
	 * behind. 0 if usable; else -errno and a one-line reason in why
	 * (e.g. "no RDMA device", "io_uring disabled by sysctl").
	 * Called from the core's start-up thread, before init().
	 */
	int (*probe)(const struct pm_host *host, char *why, size_t whylen);

	/*
	 * Create an instance. host stays valid until fini(). Reads its
	 * settings through host->cfg_*. No network activity yet.
	 */
	int (*init)(const struct pm_host *host, struct pm_tctx **out);

	/*
	 * Stop listening, close every connection, fail calls still in flight
	 * with -ESHUTDOWN, join every plugin thread, free everything. After
	 * fini no callback into the core runs. Called once, when no other op
	 * of this instance is running or will run (calls may still be
	 * blocked; fini wakes them).
	 */
	void (*fini)(struct pm_tctx *t);

	/*
	 * Start accepting connections on the configured address and hand
	 * requests to lst (copied by the plugin). Called at most once.
	 * Returns once listening (the endpoint is valid); serving happens on
	 * plugin threads.
	 */
	int (*listen)(struct pm_tctx *t, const struct pm_listener *lst);

	/*
	 * The string a peer passes to connect() to reach this listener, e.g.
	 * "127.0.0.1:7701". Valid after listen(). -ENOSPC if len is too small,
	 * -ENOTCONN before listen().
	 */
	int (*endpoint)(struct pm_tctx *t, char *buf, size_t len);

	/*
	 * Dial endpoint; on success *out is a connection ready for call().
	 * Blocks at most until deadline_ns. -ECONNREFUSED, -ETIMEDOUT,
	 * -EINVAL for an endpoint string it cannot parse, ...
	 * If the peer later goes away, the next call() redials once within
	 * its own deadline before failing, so a restarted peer is reached
	 * again without a new connect().
	 */
	int (*connect)(struct pm_tctx *t, const char *endpoint,
		       int64_t deadline_ns, struct pm_tconn **out);

	/*
	 * Close and free c. Calls in flight on c fail with -ESHUTDOWN;
	 * disconnect waits for them to return. c is invalid afterwards.
	 */
	void (*disconnect)(struct pm_tconn *c);

	/*
	 * Send req and wait for its reply, at most until deadline_ns.
	 * Thread-safe: many threads may call on one connection at once.
	 * On 0, rep->msg_len and rep->payload_len are set (payload written to
	 * rep->payload, up to payload_cap; a larger reply is -EMSGSIZE).
	 * Returns the remote status when the core's reply carried one
	 * (a negative errno), -ETIMEDOUT at the deadline, -ECONNRESET or
	 * -EPIPE when the peer went away and could not be redialled,
	 * -ESHUTDOWN when disconnect() or fini() ran. A call that fails
	 * leaves the connection usable for the other calls.
	 * The caller blocks in this function; plugins should let the calling
	 * thread read its own reply where they can, rather than waking it
	 * from another thread (a cross-CPU wake-up is ~100 us here).
	 */
	int (*call)(struct pm_tconn *c, const struct pm_msg *req,
		    struct pm_msg *rep, int64_t deadline_ns);

	/*
	 * Answer request req_id received on incoming connection conn_id.
	 * status 0 or a negative errno (-PM_STATUS_MAX..-1) that the caller's
	 * call() returns; another value is -EINVAL and nothing is sent.
	 * Any thread, inside or outside on_request; exactly once per request.
	 * Does not wait for the peer beyond the socket's send buffer.
	 * -ENOTCONN if the connection has gone (the reply is dropped).
	 */
	int (*reply)(struct pm_tctx *t, uint64_t conn_id, uint64_t req_id,
		     int status, const struct pm_msg *rep);

	/*
	 * Close incoming connection conn_id (the core refuses a peer, e.g. it
	 * failed authentication). on_close follows. -ENOENT if unknown.
	 */
	int (*drop)(struct pm_tctx *t, uint64_t conn_id);

	/* --- ops appended after 1.0 go below; check PM_OPS_HAS first --- */

	/* --- 1.1 --- */

	/*
	 * Write the listen string meaning "any free address" of this
	 * transport ("127.0.0.1:0" for TCP on loopback, "@" for an abstract
	 * AF_UNIX name chosen by the kernel): the conformance suite starts
	 * many instances on it at once. 0, or -ENOSPC if len is too small.
	 * No instance needed; no side effects.
	 */
	int (*any_listen)(char *buf, size_t len);

	/*
	 * Is addr (a listen string or an endpoint of this transport) reachable
	 * only from this host? 1 yes, 0 no, -EINVAL if it cannot parse it.
	 * The core lets a cluster run without a key when every address is
	 * host-local. Without this op the core asks PM_CAP_HOST_LOCAL, then
	 * falls back to reading addr as HOST:PORT on loopback.
	 */
	int (*is_local)(const char *addr);

	/*
	 * Test only (the conformance suite calls it; the core never does):
	 * send on c's connection one request malformed the way `how` says
	 * (enum pm_corrupt), in the plugin's own framing, instead of a good
	 * one. 0 once sent; -EOPNOTSUPP for a kind the framing cannot
	 * express. The listener must treat it as any malformed frame: drop
	 * that connection (one log line), hand the core nothing of it, and
	 * keep serving the others. The next call() on c redials.
	 */
	int (*test_corrupt)(struct pm_tconn *c, int how, int64_t deadline_ns);

	/* --- 1.2 --- */

	/*
	 * Test only (the conformance suite calls it; the core never does):
	 * with any initialised instance t, open a connection to endpoint at
	 * the socket level, as connect() would, but send nothing on it, and
	 * set *fd to it (blocking, close-on-exec; the caller closes it).
	 * The suite plays with it a peer that
	 * stays silent, trickles bytes or holds a slot, and checks that the
	 * listener drops it within handshake_timeout_ms and keeps max_conns
	 * for real peers (settings of the plugin, read with cfg_int, if it
	 * has them). The listener's log line about such a peer must name it
	 * by the descriptor's own address (getsockname: "127.0.0.1:40512",
	 * "@0001f" for an autobound AF_UNIX name). 0, or -errno as connect():
	 * -EINVAL for an endpoint it cannot parse, -ETIMEDOUT past
	 * deadline_ns. Without this op the suite dials HOST:PORT endpoints
	 * over TCP itself, and skips those cases for any other endpoint.
	 */
	int (*test_raw_dial)(struct pm_tctx *t, const char *endpoint,
			     int64_t deadline_ns, int *fd);
};

/* Kinds of malformed request for test_corrupt. */
enum pm_corrupt {
	PM_CORRUPT_GARBAGE = 1,	/* bytes that are no frame at all */
	PM_CORRUPT_BAD_HEADER,	/* a frame header the framing never makes */
	PM_CORRUPT_BAD_LENGTH,	/* lengths that disagree with what arrived */
	PM_CORRUPT_HUGE,	/* lengths past PM_MSG_MAX / PM_PAYLOAD_MAX */
	PM_CORRUPT_TRUNCATED,	/* part of a frame, then the end */
	PM_CORRUPT_KINDS = PM_CORRUPT_TRUNCATED
};

/* Is the op `field` inside the plugin's table and set? */
#define PM_OPS_HAS(ops, field)                                             \
	((ops)->size >= offsetof(struct pm_transport_ops, field) +          \
			sizeof((ops)->field) && (ops)->field != NULL)

/* The smallest table the core accepts: everything up to drop. */
#define PM_OPS_MIN_SIZE                                                    \
	(offsetof(struct pm_transport_ops, drop) +                          \
	 sizeof(((struct pm_transport_ops *)0)->drop))

/* Type of the entry symbol. */
typedef const struct pm_transport_ops *(*pm_transport_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* PAGEMESH_TRANSPORT_H */
