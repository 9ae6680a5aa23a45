// SPDX-License-Identifier: MIT
/* io_uring-tcp transport: the exported ops table, probe/init/fini, and the
 * helpers both sides share (provided-buffer rings, send queues). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ut.h"

/* --- provided buffers ---------------------------------------------------- */

int ut_bufring_setup(struct io_uring *ring, struct ut_bufring *b,
		     uint16_t bgid, uint32_t count)
{
	struct io_uring_buf_reg reg;
	uint32_t i;
	int r;

	memset(b, 0, sizeof(*b));
	b->count = count;
	b->bgid = bgid;
	b->br_len = (size_t)count * sizeof(struct io_uring_buf);
	/* The kernel wants the ring page-aligned. */
	b->br = mmap(NULL, b->br_len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->br == MAP_FAILED) {
		b->br = NULL;
		return -errno;
	}
	b->bufs = malloc((size_t)count * UT_BUF_SIZE);
	if (!b->bufs) {
		r = -ENOMEM;
		goto err_unmap;
	}
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)b->br;
	reg.ring_entries = count;
	reg.bgid = bgid;
	r = io_uring_register_buf_ring(ring, &reg, 0);
	if (r < 0)
		goto err_free;
	b->registered = true;
	io_uring_buf_ring_init(b->br);
	for (i = 0; i < count; i++)
		io_uring_buf_ring_add(b->br, ut_buf(b, i), UT_BUF_SIZE,
				      (unsigned short)i,
				      io_uring_buf_ring_mask(count), (int)i);
	io_uring_buf_ring_advance(b->br, (int)count);
	return 0;

err_free:
	free(b->bufs);
	b->bufs = NULL;
err_unmap:
	munmap(b->br, b->br_len);
	b->br = NULL;
	return r;
}

/* Hand buffer bid back to the kernel once its bytes are consumed. */
void ut_bufring_recycle(struct ut_bufring *b, uint32_t bid)
{
	io_uring_buf_ring_add(b->br, ut_buf(b, bid), UT_BUF_SIZE,
			      (unsigned short)bid,
			      io_uring_buf_ring_mask(b->count), 0);
	io_uring_buf_ring_advance(b->br, 1);
}

void ut_bufring_free(struct io_uring *ring, struct ut_bufring *b)
{
	if (b->registered && ring)
		io_uring_unregister_buf_ring(ring, b->bgid);
	if (b->br)
		munmap(b->br, b->br_len);
	free(b->bufs);
	memset(b, 0, sizeof(*b));
}

/* --- send queues --------------------------------------------------------- */

void ut_sendq_init(struct ut_sendq *q, uint32_t cap)
{
	memset(q, 0, sizeof(*q));
	q->cap = cap;
}

void ut_sendq_free(struct ut_sendq *q)
{
	free(q->fill);
	free(q->fly);
	ut_sendq_init(q, q->cap);
}

/* Append one whole frame to fill. -ENOBUFS past the cap, -ENOMEM. */
int ut_sendq_append(struct ut_sendq *q, const struct iovec *iov, int n)
{
	uint64_t need = q->fill_len;
	uint32_t ncap;
	void *p;
	int i;

	for (i = 0; i < n; i++)
		need += iov[i].iov_len;
	if (need > q->cap)
		return -ENOBUFS;
	if (need > q->fill_cap) {
		ncap = q->fill_cap ? q->fill_cap : 16384;
		while (ncap < need)
			ncap = ncap > q->cap / 2 ? q->cap : ncap * 2;
		p = realloc(q->fill, ncap);
		if (!p)
			return -ENOMEM;
		q->fill = p;
		q->fill_cap = ncap;
	}
	for (i = 0; i < n; i++) {
		if (!iov[i].iov_len)
			continue;
		memcpy(q->fill + q->fill_len, iov[i].iov_base, iov[i].iov_len);
		q->fill_len += (uint32_t)iov[i].iov_len;
	}
	return 0;
}

/* If nothing is in flight and bytes wait, swap them into fly: true. */
bool ut_sendq_start(struct ut_sendq *q)
{
	unsigned char *tp;
	uint32_t tc;

	if (q->inflight || !q->fill_len)
		return false;
	tp = q->fly;
	tc = q->fly_cap;
	q->fly = q->fill;
	q->fly_cap = q->fill_cap;
	q->fly_len = q->fill_len;
	q->fly_off = 0;
	q->fill = tp;
	q->fill_cap = tc;
	q->fill_len = 0;
	q->inflight = true;
	return true;
}

/* fd is an index into the ring's registered files when fixed. */
void ut_sendq_prep(struct ut_sendq *q, struct io_uring_sqe *sqe, int fd,
		   bool fixed, uint64_t ud)
{
	/* MSG_WAITALL: the kernel retries short sends itself. */
	io_uring_prep_send(sqe, fd, q->fly + q->fly_off,
			   q->fly_len - q->fly_off, MSG_NOSIGNAL | MSG_WAITALL);
	if (fixed)
		sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, ud);
}

/*
 * Account a send completion: 1 when part of fly is still to go (prep
 * again), 0 when fly is done, -errno on a socket error.
 */
int ut_sendq_done(struct ut_sendq *q, int res)
{
	if (res < 0) {
		q->inflight = false;
		return res;
	}
	if ((uint32_t)res > q->fly_len - q->fly_off) {
		q->inflight = false;
		return -EIO;
	}
	q->fly_off += (uint32_t)res;
	if (q->fly_off < q->fly_len)
		return 1;
	q->fly_len = 0;
	q->fly_off = 0;
	q->inflight = false;
	return 0;
}

int ut_ring_init(struct io_uring *ring, unsigned entries, unsigned flags)
{
	struct io_uring_params p;

	memset(&p, 0, sizeof(p));
	p.flags = flags | IORING_SETUP_CQSIZE;
	p.cq_entries = entries * 8;
	return io_uring_queue_init_params(entries, ring, &p);
}

/* --- probe, init, fini --------------------------------------------------- */

/*
 * Multishot receive (6.0) with a provided-buffer ring (5.19) is what the
 * receive path is built on: try it for real on a socket pair.
 */
static int ut_probe_multishot(struct io_uring *ring, char *why, size_t whylen)
{
	struct __kernel_timespec ts = { .tv_sec = 1 };
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct ut_bufring b;
	int sv[2], r, res;
	unsigned flags;

	if (!(ring->features & IORING_FEAT_EXT_ARG)) {
		snprintf(why, whylen,
			 "io_uring lacks IORING_FEAT_EXT_ARG (kernel < 5.11)");
		return -EOPNOTSUPP;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		snprintf(why, whylen, "socketpair: %s", strerror(-r));
		return r;
	}
	r = ut_bufring_setup(ring, &b, 0, 2);
	if (r < 0) {
		snprintf(why, whylen,
			 "io_uring cannot register a provided-buffer ring: %s (kernel < 5.19?)",
			 strerror(-r));
		goto out_close;
	}
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 0;
	io_uring_sqe_set_data64(sqe, 1);
	if (write(sv[1], "x", 1) != 1) {
		r = -errno;
		snprintf(why, whylen, "write to socketpair: %s", strerror(-r));
		goto out_buf;
	}
	r = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
	if (r < 0) {
		snprintf(why, whylen, "io_uring multishot receive: %s",
			 strerror(-r));
		goto out_buf;
	}
	res = cqe->res;
	flags = cqe->flags;
	io_uring_cqe_seen(ring, cqe);
	if (res != 1 || !(flags & IORING_CQE_F_MORE)) {
		snprintf(why, whylen,
			 "io_uring multishot receive unsupported (res %d%s; kernel < 6.0?)",
			 res, flags & IORING_CQE_F_MORE ? "" : ", no F_MORE");
		r = res < 0 ? res : -EOPNOTSUPP;
		goto out_buf;
	}
	r = 0;
out_buf:
	/* Closing the socket ends the receive; queue_exit reaps the rest. */
	shutdown(sv[0], SHUT_RDWR);
	ut_bufring_free(ring, &b);
out_close:
	close(sv[0]);
	close(sv[1]);
	return r;
}

static int ut_probe(const struct pm_host *host, char *why, size_t whylen)
{
	struct io_uring ring;
	char buf[32];
	ssize_t n;
	int fd, r;

	(void)host;
	fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			if (atoi(buf) != 0) {
				snprintf(why, whylen,
					 "io_uring disabled by kernel.io_uring_disabled=%d",
					 atoi(buf));
				return -EPERM;
			}
		}
	}
	r = io_uring_queue_init(8, &ring, 0);
	if (r < 0) {
		snprintf(why, whylen, "io_uring_queue_init failed: %s",
			 strerror(-r));
		return r;
	}
	r = ut_probe_multishot(&ring, why, whylen);
	io_uring_queue_exit(&ring);
	return r;
}

/*
 * Settings (transports.io_uring-tcp.KEY): listen ("HOST:PORT", default
 * 127.0.0.1:0); max_conns, most incoming connections served at once (1 ..
 * UT_MAX_CONNS, default all): at the bound a new one displaces the
 * oldest that has sent no whole request yet (a peer sends its HELLO as
 * soon as it has dialled), and only when none is left is it closed;
 * handshake_timeout_ms (default 2000), how long an incoming connection may
 * take to deliver its first whole request, however its bytes trickle in,
 * before it is dropped: without it a peer that connects and stays silent,
 * or sends half a header, holds a slot for ever, and enough of them lock
 * out every real peer; and stall_timeout_ms (default 60000), how long,
 * after that first request, a frame may go without a byte part-way. That
 * one is long because a live peer's frame stalls for seconds while TCP
 * retransmits through loss, and dropping it loses its requests in flight.
 */
static int ut_init(const struct pm_host *host, struct pm_tctx **out)
{
	struct ut_tctx *t;
	int64_t maxc, hs, stall;
	const char *s;
	int r;

	if (!host || host->size < offsetof(struct pm_host, cfg_int) +
				  sizeof(host->cfg_int) ||
	    !host->log || !host->cfg_string || !host->cfg_int)
		return -EINVAL;
	if (pm_net_cfg_range(host, "io_uring-tcp", "max_conns", UT_MAX_CONNS,
			     1, UT_MAX_CONNS, &maxc) ||
	    pm_net_cfg_range(host, "io_uring-tcp", "handshake_timeout_ms",
			     UT_HANDSHAKE_TIMEOUT_MS, 1, UT_MS_MAX, &hs) ||
	    pm_net_cfg_range(host, "io_uring-tcp", "stall_timeout_ms",
			     UT_STALL_TIMEOUT_MS, 1, UT_MS_MAX, &stall))
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->host = host;
	t->max_conns = (uint32_t)maxc;
	t->handshake_timeout_ns = hs * 1000000;
	t->stall_timeout_ns = stall * 1000000;
	t->lfd = -1;
	t->efd = -1;
	r = host->cfg_string(host->ctx, "listen", &s);
	if (r == -ENOENT) {
		s = "127.0.0.1:0";
	} else if (r < 0) {
		ut_log(t, PM_LOG_ERROR, "config key listen: not a string");
		goto err;
	}
	if (strlen(s) >= sizeof(t->listen_ep)) {
		ut_log(t, PM_LOG_ERROR, "config key listen: '%s' too long", s);
		r = -EINVAL;
		goto err;
	}
	strcpy(t->listen_ep, s);
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->dirty_lock, NULL);
	*out = (struct pm_tctx *)t;
	return 0;
err:
	free(t);
	return r;
}

static void ut_fini(struct pm_tctx *tc)
{
	struct ut_tctx *t = (struct ut_tctx *)tc;

	if (!t)
		return;
	ut_server_fini(t);
	ut_client_fini(t);
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->dirty_lock);
	free(t);
}

static const struct pm_transport_ops ut_ops = {
	.size = sizeof(struct pm_transport_ops),
	.abi_major = PM_TRANSPORT_ABI_MAJOR,
	.abi_minor = PM_TRANSPORT_ABI_MINOR,
	.name = "io_uring-tcp",
	.version = UT_VERSION,
	.caps = PM_CAP_RELIABLE | PM_CAP_BATCH,
	.probe = ut_probe,
	.init = ut_init,
	.fini = ut_fini,
	.listen = ut_listen,
	.endpoint = ut_endpoint,
	.connect = ut_connect,
	.disconnect = ut_disconnect,
	.call = ut_call,
	.reply = ut_reply,
	.drop = ut_drop,
	.any_listen = pm_net_any_listen,
	.test_raw_dial = pm_net_test_raw_dial,
};

PM_TRANSPORT_EXPORT const struct pm_transport_ops *PM_TRANSPORT_ENTRY(void)
{
	return &ut_ops;
}
