// SPDX-License-Identifier: MIT
/*
 * Peer authentication, end to end: real `pagemesh node` processes on
 * loopback, and a raw TCP client speaking the wire protocol that tries to
 * get pages without the key, with a wrong key, with a replayed handshake,
 * and with garbage after an honest handshake. Also the start-up refusals
 * (key file mode, size, absence; no key off loopback; a wrong key).
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "cluster.h"
#include "frame.h"
#include "proto.h"

#define NONCE 32
#define MACLEN 32
#define WAIT_MS 20000

static char bin[512];
static uint64_t node1_inc;	/* the raw client's incarnation (setup_pair) */

static int64_t now_ms(void)
{
	return pm_now_ns() / 1000000;
}

static void start_nodes(struct cluster *c)
{
	char *argv[] = { bin, (char *)"node", (char *)"-c", (char *)"{cfg}",
			 NULL };

	assert_int_equal(cl_write_configs(c, "16M"), 0);
	for (int i = 0; i < c->n; i++)
		assert_int_equal(cl_spawn(c, i, argv), 0);
	for (int i = 0; i < c->n; i++)
		if (!cl_log_has(c, i, " up: region", WAIT_MS)) {
			cl_dump(c, i, NULL);
			fail_msg("node %d did not come up", i);
		}
}

static void stop_nodes(struct cluster *c)
{
	for (int i = 0; i < c->n; i++)
		if (c->pid[i] > 0)
			kill(c->pid[i], SIGTERM);
	assert_int_equal(cl_wait(c, 20000), 0);
}

/* ---- a raw client of the wire protocol ---------------------------------- */

static int raw_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void raw_send(int fd, const void *buf, size_t len)
{
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* A request frame: header, core message, payload. */
static size_t frame(uint8_t *out, uint64_t id, const struct pm_proto_req *rq,
		    const void *payload, uint32_t plen)
{
	struct pm_frame_hdr h;

	pm_frame_encode(&h, PM_FRAME_REQ, id, 0, sizeof(*rq), plen);
	memcpy(out, &h, sizeof(h));
	memcpy(out + sizeof(h), rq, sizeof(*rq));
	if (plen)
		memcpy(out + sizeof(h) + sizeof(*rq), payload, plen);
	return sizeof(h) + sizeof(*rq) + plen;
}

/* Read exactly len bytes before the deadline: 0, -ECONNRESET (closed) or
 * -ETIMEDOUT. */
static int read_full(int fd, void *buf, size_t len, int64_t end)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = end - now_ms();
		ssize_t r;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		r = recv(fd, (uint8_t *)buf + got, len - got, 0);
		if (r <= 0)
			return -ECONNRESET;
		got += (size_t)r;
	}
	return 0;
}

struct reply {
	int status;
	struct pm_proto_rep rp;
	uint32_t msg_len, plen;
	uint8_t payload[PM_PAYLOAD_MAX];
};

/* 0 and *r, or -ECONNRESET when the node closed the connection first. */
static int raw_reply(int fd, struct reply *r)
{
	int64_t end = now_ms() + WAIT_MS;
	struct pm_frame_hdr h;
	uint8_t msg[PM_MSG_MAX];
	int e;

	e = read_full(fd, &h, sizeof(h), end);
	if (e)
		return e;
	assert_null(pm_frame_decode(&h));
	assert_int_equal(h.kind, PM_FRAME_REP);
	r->status = h.status;
	r->msg_len = h.msg_len;
	r->plen = h.payload_len;
	assert_int_equal(read_full(fd, msg, h.msg_len, end), 0);
	assert_int_equal(read_full(fd, r->payload, h.payload_len, end), 0);
	memset(&r->rp, 0, sizeof(r->rp));
	memcpy(&r->rp, msg, h.msg_len < sizeof(r->rp) ? h.msg_len
						      : sizeof(r->rp));
	return 0;
}

/* The node hung up: EOF or reset before the deadline, nothing else. */
static void assert_closed(int fd)
{
	uint8_t b[64];
	int64_t end = now_ms() + WAIT_MS;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		assert_true(now_ms() < end);
		if (poll(&p, 1, 500) <= 0)
			continue;
		r = recv(fd, b, sizeof(b), 0);
		if (r <= 0)
			return;
		fail_msg("the node sent %zd more bytes instead of closing", r);
	}
}

static void hmac(const uint8_t *key, size_t keylen, const char *role,
		 const char *cluster, int cid, int sid, const uint8_t *nc,
		 const uint8_t *ns, uint8_t out[MACLEN])
{
	char t[512], hc[2 * NONCE + 1], hs[2 * NONCE + 1];
	unsigned int len = 0;
	int n;

	for (int i = 0; i < NONCE; i++) {
		snprintf(hc + 2 * i, 3, "%02x", nc[i]);
		snprintf(hs + 2 * i, 3, "%02x", ns[i]);
	}
	n = snprintf(t, sizeof(t), "pagemesh-auth-v1|%s|%zu:%s|%d|%d|%s|%s",
		     role, strlen(cluster), cluster, cid, sid, hc, hs);
	assert_non_null(HMAC(EVP_sha256(), key, (int)keylen, (uint8_t *)t,
			     (size_t)n, out, &len));
	assert_int_equal(len, MACLEN);
}

static size_t read_key(const char *path, uint8_t *key, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, key, cap);
	close(fd);
	assert_true(n >= 16);
	return (size_t)n;
}

/* The HELLO of node `from` with nonce nc, as a frame. */
static size_t hello_frame(uint8_t *out, int from, const uint8_t *nc)
{
	struct pm_proto_req rq = { .op = PM_OP_HELLO, .from = (uint16_t)from,
				   .arg = 2, .arg64 = 16u << 20,
				   .page = node1_inc };
	uint8_t pl[NONCE + 8];

	memcpy(pl, nc, NONCE);
	memcpy(pl + NONCE, "test", 4);
	return frame(out, 1, &rq, pl, NONCE + 4);
}

static size_t auth_frame(uint8_t *out, int from, const uint8_t *mac)
{
	struct pm_proto_req rq = { .op = PM_OP_AUTH, .from = (uint16_t)from,
				   .page = node1_inc };

	return frame(out, 2, &rq, mac, MACLEN);
}

static size_t read_frame(uint8_t *out, int from, uint64_t page)
{
	struct pm_proto_req rq = { .op = PM_OP_READ, .from = (uint16_t)from,
				   .page = page };

	return frame(out, 3, &rq, NULL, 0);
}

/*
 * Handshake as node 1 with key (which may be wrong) and nonce nc; the
 * captured HELLO and AUTH frames go to hello_out/auth_out when set.
 * Returns the AUTH reply's status, or -ECONNRESET.
 */
static int handshake(int fd, const uint8_t *key, size_t keylen,
		     const uint8_t *nc, uint8_t *hello_out, size_t *hello_len,
		     uint8_t *auth_out, size_t *auth_len, bool *server_ok)
{
	static struct reply r;
	uint8_t buf[512], mac[MACLEN], want[MACLEN];
	size_t len;

	len = hello_frame(buf, 1, nc);
	if (hello_out) {
		memcpy(hello_out, buf, len);
		*hello_len = len;
	}
	raw_send(fd, buf, len);
	assert_int_equal(raw_reply(fd, &r), 0);
	assert_int_equal(r.status, 0);
	assert_true(r.rp.flags & PM_RP_AUTH);
	assert_int_equal(r.plen, NONCE + MACLEN);
	/* The node's proof is checkable with the right key only. */
	hmac(key, keylen, "server", "test", 1, 0, nc, r.payload, want);
	*server_ok = !memcmp(want, r.payload + NONCE, MACLEN);
	hmac(key, keylen, "client", "test", 1, 0, nc, r.payload, mac);
	len = auth_frame(buf, 1, mac);
	if (auth_out) {
		memcpy(auth_out, buf, len);
		*auth_len = len;
	}
	raw_send(fd, buf, len);
	if (raw_reply(fd, &r))
		return -ECONNRESET;
	return r.status;
}

static struct cluster cl;
static uint8_t key[4096];
static size_t keylen;

/*
 * The raw client speaks as node 1, and as its running incarnation (read
 * from its log): node 0 takes another incarnation of a live node for an
 * impostor (test_live_id_refused), whatever key it holds.
 */

static int setup_pair(void **state)
{
	char path[600], line[512];
	FILE *f;

	(void)state;
	if (cl_init(&cl, 2))
		return -1;
	keylen = read_key(cl.key_path, key, sizeof(key));
	start_nodes(&cl);
	cl_path(&cl, 1, "log", path, sizeof(path));
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "; incarnation 0x");

		if (p && strstr(line, " up: region"))
			node1_inc = strtoull(p + strlen("; incarnation "),
					     NULL, 16);
	}
	if (f)
		fclose(f);
	return node1_inc ? 0 : -1;
}

static int teardown_pair(void **state)
{
	(void)state;
	stop_nodes(&cl);
	cl_cleanup(&cl);
	return 0;
}

/*
 * A key holder posing as node 1 while node 1 is alive: refused before
 * anything changes (-EADDRINUSE on its HELLO), and node 0 says so.
 * Before, it was taken, and node 0 forgot what the real node 1 held.
 */
static void test_live_id_refused(void **state)
{
	static struct reply r;
	uint8_t nc[NONCE], buf[512];
	struct cluster c;
	int fd;

	(void)state;
	assert_int_equal(cl_init(&c, 2), 0);
	start_nodes(&c);
	memset(nc, 0x5b, sizeof(nc));
	node1_inc = 0x1234;	/* not the running node 1's */
	fd = raw_connect(c.port[0]);
	raw_send(fd, buf, hello_frame(buf, 1, nc));
	assert_int_equal(raw_reply(fd, &r), 0);
	assert_int_equal(r.status, -EADDRINUSE);
	close(fd);
	assert_true(cl_log_has(&c, 0, "claims node id 1, which a live node holds", 0));
	assert_false(cl_log_has(&c, 0, "node 1 restarted", 0));
	stop_nodes(&c);
	cl_cleanup(&c);
}

/* An honest client with the key gets the page: the other tests can fail. */
static void test_key_gets_pages(void **state)
{
	static struct reply r;
	uint8_t nc[NONCE], buf[512];
	bool server_ok;
	int fd;

	(void)state;
	memset(nc, 0x5a, sizeof(nc));
	fd = raw_connect(cl.port[0]);
	assert_int_equal(handshake(fd, key, keylen, nc, NULL, NULL, NULL, NULL,
				   &server_ok), 0);
	assert_true(server_ok);
	raw_send(fd, buf, read_frame(buf, 1, 3));
	assert_int_equal(raw_reply(fd, &r), 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.rp.page, 3);
	close(fd);
}

static void test_no_key(void **state)
{
	static struct reply r;
	uint8_t buf[512];
	int fd, e;

	(void)state;
	fd = raw_connect(cl.port[0]);
	raw_send(fd, buf, read_frame(buf, 1, 3));
	e = raw_reply(fd, &r);
	if (!e) {
		assert_int_equal(r.status, -EACCES);
		assert_int_equal(r.plen, 0);
	}
	assert_closed(fd);
	close(fd);
	assert_true(cl_log_has(&cl, 0, "has not authenticated", WAIT_MS));
}

static void test_wrong_key(void **state)
{
	uint8_t bad[32], nc[NONCE], buf[512];
	bool server_ok;
	int fd;

	(void)state;
	memset(bad, 0x11, sizeof(bad));
	memset(nc, 0x22, sizeof(nc));
	fd = raw_connect(cl.port[0]);
	assert_int_not_equal(handshake(fd, bad, sizeof(bad), nc, NULL, NULL,
				       NULL, NULL, &server_ok), 0);
	assert_false(server_ok);
	/* Whatever follows gets nothing: the connection is gone. */
	send(fd, buf, read_frame(buf, 1, 3), MSG_NOSIGNAL);
	assert_closed(fd);
	close(fd);
	assert_true(cl_log_has(&cl, 0, "wrong proof of the cluster key", WAIT_MS));
}

/* A handshake captured on one connection is worthless on another. */
static void test_replay(void **state)
{
	static struct reply r;
	uint8_t hello[512], auth[512], nc[NONCE], buf[512];
	size_t hl, al;
	bool server_ok;
	int fd, e;

	(void)state;
	memset(nc, 0x33, sizeof(nc));
	fd = raw_connect(cl.port[0]);
	assert_int_equal(handshake(fd, key, keylen, nc, hello, &hl, auth, &al,
				   &server_ok), 0);
	close(fd);

	fd = raw_connect(cl.port[0]);
	raw_send(fd, hello, hl);
	assert_int_equal(raw_reply(fd, &r), 0);
	assert_int_equal(r.status, 0);
	raw_send(fd, auth, al);
	e = raw_reply(fd, &r);
	if (!e)
		assert_int_equal(r.status, -EACCES);
	send(fd, buf, read_frame(buf, 1, 3), MSG_NOSIGNAL);
	assert_closed(fd);
	close(fd);
}

/* Authenticated, then nonsense: the node drops the connection, logs it,
 * and keeps serving. */
static void test_garbage_after_auth(void **state)
{
	static struct reply r;
	struct pm_proto_req rq = { .op = 99, .from = 1 };
	uint8_t nc[NONCE], buf[512];
	bool server_ok;
	int fd, e;

	(void)state;
	memset(nc, 0x44, sizeof(nc));
	fd = raw_connect(cl.port[0]);
	assert_int_equal(handshake(fd, key, keylen, nc, NULL, NULL, NULL, NULL,
				   &server_ok), 0);
	raw_send(fd, buf, frame(buf, 9, &rq, NULL, 0));
	e = raw_reply(fd, &r);
	if (!e)
		assert_int_equal(r.status, -EPROTO);
	assert_closed(fd);
	close(fd);
	assert_true(cl_log_has(&cl, 0, "bad field 'op'", WAIT_MS));

	/* A page beyond the region, as the node it authenticated as. */
	memset(nc, 0x45, sizeof(nc));
	fd = raw_connect(cl.port[0]);
	assert_int_equal(handshake(fd, key, keylen, nc, NULL, NULL, NULL, NULL,
				   &server_ok), 0);
	raw_send(fd, buf, read_frame(buf, 1, 1ull << 40));
	e = raw_reply(fd, &r);
	if (!e)
		assert_int_equal(r.status, -EPROTO);
	assert_closed(fd);
	close(fd);
	assert_true(cl_log_has(&cl, 0, "bad field 'page'", WAIT_MS));

	/* BARRIER's flags: SERVER_ONLY alone, and with generation 0 only. */
	for (int k = 0; k < 2; k++) {
		struct pm_proto_req br = {
			.op = PM_OP_BARRIER, .from = 1,
			.flags = k ? PM_RQ_SERVER_ONLY : PM_RQ_SERVER_ONLY | 0x01,
			.arg = k ? 1 : 0,
		};

		memset(nc, 0x47 + k, sizeof(nc));
		fd = raw_connect(cl.port[0]);
		assert_int_equal(handshake(fd, key, keylen, nc, NULL, NULL,
					   NULL, NULL, &server_ok), 0);
		raw_send(fd, buf, frame(buf, 4, &br, NULL, 0));
		e = raw_reply(fd, &r);
		if (!e)
			assert_int_equal(r.status, -EPROTO);
		assert_closed(fd);
		close(fd);
		assert_true(cl_log_has(&cl, 0, k ? "bad field 'arg'" :
					       "bad field 'flags'", WAIT_MS));
	}

	/* A server-only node's start-up barrier after the cluster formed
	 * (node 1 started again): it passes at once. */
	{
		struct pm_proto_req br = { .op = PM_OP_BARRIER, .from = 1,
					   .flags = PM_RQ_SERVER_ONLY };

		memset(nc, 0x49, sizeof(nc));
		fd = raw_connect(cl.port[0]);
		assert_int_equal(handshake(fd, key, keylen, nc, NULL, NULL,
					   NULL, NULL, &server_ok), 0);
		raw_send(fd, buf, frame(buf, 4, &br, NULL, 0));
		assert_int_equal(raw_reply(fd, &r), 0);
		assert_int_equal(r.status, 0);
		close(fd);
	}

	/* An honest request, then bytes that are no frame at all. */
	memset(nc, 0x46, sizeof(nc));
	fd = raw_connect(cl.port[0]);
	assert_int_equal(handshake(fd, key, keylen, nc, NULL, NULL, NULL, NULL,
				   &server_ok), 0);
	raw_send(fd, buf, read_frame(buf, 1, 2));
	assert_int_equal(raw_reply(fd, &r), 0);
	assert_int_equal(r.status, 0);
	memset(buf, 0xee, 64);
	raw_send(fd, buf, 64);
	assert_closed(fd);
	close(fd);

	/* Still serving honest clients. */
	test_key_gets_pages(state);
}

/* ---- start-up refusals --------------------------------------------------- */

/* Run `pagemesh node -c` on node i's config; its exit code, stderr kept. */
static int run_node(struct cluster *c, int i, int timeout_ms)
{
	char *argv[] = { bin, (char *)"node", (char *)"-c", (char *)"{cfg}",
			 NULL };

	assert_int_equal(cl_spawn(c, i, argv), 0);
	cl_wait(c, timeout_ms);
	return c->status[i];
}

static void expect_config_error(struct cluster *c, const char *what)
{
	int st;

	st = run_node(c, 0, 10000);
	if (st != 78 || !cl_log_has(c, 0, what, 0)) {
		cl_dump(c, 0, NULL);
		fail_msg("expected exit 78 and '%s', got exit %d", what, st);
	}
}

static void test_key_file_checks(void **state)
{
	struct cluster c;
	char path[400];
	int fd;

	(void)state;
	assert_int_equal(cl_init(&c, 2), 0);
	assert_int_equal(cl_write_configs(&c, "16M"), 0);

	chmod(c.key_path, 0640);
	expect_config_error(&c, "must not be readable or writable by group");
	chmod(c.key_path, 0602);
	expect_config_error(&c, "must not be readable or writable by group");
	chmod(c.key_path, 0600);

	snprintf(path, sizeof(path), "%s/short.key", c.dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789abcde", 15), 15);
	close(fd);
	c.node_key[0] = path;
	assert_int_equal(cl_write_configs(&c, "16M"), 0);
	expect_config_error(&c, "short.key: 15 bytes");

	snprintf(path, sizeof(path), "%s/missing.key", c.dir);
	assert_int_equal(cl_write_configs(&c, "16M"), 0);
	expect_config_error(&c, "missing.key: No such file");

	/* No key is fine on loopback only. */
	c.node_key[0] = "";
	snprintf(c.host[0], sizeof(c.host[0]), "0.0.0.0");
	assert_int_equal(cl_write_configs(&c, "16M"), 0);
	expect_config_error(&c, "a cluster key is required");
	snprintf(c.host[0], sizeof(c.host[0]), "127.0.0.1");
	snprintf(c.host[1], sizeof(c.host[1]), "192.0.2.1");
	assert_int_equal(cl_write_configs(&c, "16M"), 0);
	expect_config_error(&c, "node 1's tcp endpoint is 192.0.2.1");
	cl_cleanup(&c);
}

static void test_keyless_loopback(void **state)
{
	struct cluster c;

	(void)state;
	assert_int_equal(cl_init(&c, 2), 0);
	c.key_path[0] = '\0';
	start_nodes(&c);
	assert_true(cl_log_has(&c, 0, "peers are not authenticated", 0));
	stop_nodes(&c);
	for (int i = 0; i < 2; i++)
		assert_int_equal(c.status[i], 0);
	cl_cleanup(&c);
}

static void test_wrong_key_node(void **state)
{
	char *argv[] = { bin, (char *)"node", (char *)"-c", (char *)"{cfg}",
			 NULL };
	struct cluster c;
	char other[400];

	(void)state;
	assert_int_equal(cl_init(&c, 2), 0);
	snprintf(other, sizeof(other), "%s/other.key", c.dir);
	assert_int_equal(cl_write_key(other), 0);
	c.node_key[1] = other;
	assert_int_equal(cl_write_configs(&c, "16M"), 0);
	assert_int_equal(cl_spawn(&c, 0, argv), 0);
	assert_int_equal(cl_spawn(&c, 1, argv), 0);
	/*
	 * Whichever checks the other's proof first refuses it and exits,
	 * naming the peer; the other then finds no one to talk to. Neither
	 * may come up.
	 */
	int64_t end = now_ms() + WAIT_MS;
	int who = -1;

	while (who < 0 && now_ms() < end) {
		for (int i = 0; i < 2 && who < 0; i++)
			if (cl_log_has(&c, i, "failed to prove the cluster key", 0))
				who = i;
		if (who < 0)
			poll(NULL, 0, 20);
	}
	/* The other would retry until start-up's deadline: stop it. */
	if (who >= 0 && c.pid[1 - who] > 0)
		kill(c.pid[1 - who], SIGKILL);
	cl_wait(&c, 10000);
	for (int i = 0; i < 2; i++)
		if (who < 0 || cl_log_has(&c, i, " up: region", 0)) {
			cl_dump(&c, i, NULL);
			fail_msg("node %d came up or nobody refused the key", i);
		}
	assert_true(cl_log_has(&c, who, "pagemesh node: node ", 0));
	assert_true(cl_log_has(&c, who, " at 127.0.0.1:", 0));
	printf("  node %d refused node %d's key and exited %d\n", who,
	       1 - who, c.status[who]);
	assert_int_equal(c.status[who], 1);
	cl_cleanup(&c);
}

int main(void)
{
	const struct CMUnitTest pair[] = {
		cmocka_unit_test(test_key_gets_pages),
		cmocka_unit_test(test_no_key),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_garbage_after_auth),
	};
	const struct CMUnitTest startup[] = {
		cmocka_unit_test(test_key_file_checks),
		cmocka_unit_test(test_keyless_loopback),
		cmocka_unit_test(test_wrong_key_node),
		cmocka_unit_test(test_live_id_refused),
	};
	int r;

	snprintf(bin, sizeof(bin), "%s/pagemesh", cl_build());
	cl_block_sigchld();
	signal(SIGPIPE, SIG_IGN);
	r = cmocka_run_group_tests_name("auth: raw clients", pair, setup_pair,
					teardown_pair);
	r |= cmocka_run_group_tests_name("auth: start-up", startup, NULL,
					 NULL);
	return r ? 1 : 0;
}
