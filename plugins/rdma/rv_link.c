/* SPDX-License-Identifier: MIT */
/* RDMA transport: one RC queue pair (a link) with its registered buffers,
 * its completion thread, and the call/reply matching that runs on it. */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <fcntl.h>

#include "rv.h"

void rv_cond_init(pthread_cond_t *c)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

/* 0 when woken (maybe spuriously), ETIMEDOUT once deadline_ns has passed. */
int rv_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m,
		       int64_t deadline_ns)
{
	struct timespec ts;

	if (pm_now_ns() >= deadline_ns)
		return ETIMEDOUT;
	ts.tv_sec = deadline_ns / 1000000000;
	ts.tv_nsec = deadline_ns % 1000000000;
	return pthread_cond_timedwait(c, m, &ts);
}

static void rv_kick(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is already non-zero, the wake is due. */
	}
}

static char *rv_recv_buf(struct rv_link *l, uint32_t idx)
{
	return l->buf + (size_t)idx * RV_SLOT_STRIDE;
}

static char *rv_send_buf(struct rv_link *l, uint32_t idx)
{
	return l->buf + (size_t)(l->nrecv + idx) * RV_SLOT_STRIDE;
}

void rv_fill_conn_param(struct rdma_conn_param *p, struct rv_priv *priv,
			uint32_t depth)
{
	memset(p, 0, sizeof(*p));
	if (priv) {
		memset(priv, 0, sizeof(*priv));
		priv->magic = htole32(RV_PRIV_MAGIC);
		priv->depth = (uint8_t)depth;
		p->private_data = priv;
		p->private_data_len = sizeof(*priv);
	}
	p->responder_resources = 0;	/* no RDMA READ either way */
	p->initiator_depth = 0;
	p->retry_count = RV_RETRY_COUNT;
	p->rnr_retry_count = RV_RNR_RETRY;
}

static int rv_post_recv(struct rv_link *l, uint32_t idx)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)rv_recv_buf(l, idx),
		.length = RV_MSG_BYTES,
		.lkey = l->mr->lkey,
	};
	struct ibv_recv_wr wr = {
		.wr_id = RV_WRID(RV_WR_RECV, idx),
		.sg_list = &sge,
		.num_sge = 1,
	}, *bad;

	return -ibv_post_recv(l->id->qp, &wr, &bad);
}

static int rv_post_send(struct rv_link *l, uint64_t wr_id, void *buf,
			uint32_t len)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)buf,
		.length = len,
		.lkey = l->mr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = wr_id,
		.sg_list = len ? &sge : NULL,
		.num_sge = len ? 1 : 0,
		.opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED,
	}, *bad;

	return -ibv_post_send(l->id->qp, &wr, &bad);
}

/* Pack header, message and payload into one send buffer; returns bytes. */
static uint32_t rv_build(char *b, uint8_t kind, uint64_t id, int32_t status,
			 const struct pm_msg *m)
{
	struct pm_frame_hdr h;
	uint32_t ml = m ? m->msg_len : 0, pl = m ? m->payload_len : 0;

	pm_frame_encode(&h, kind, id, status, ml, pl);
	memcpy(b, &h, PM_FRAME_HDR_LEN);
	if (ml)
		memcpy(b + PM_FRAME_HDR_LEN, m->msg, ml);
	if (pl)
		memcpy(b + PM_FRAME_HDR_LEN + ml, m->payload, pl);
	return PM_FRAME_HDR_LEN + ml + pl;
}

static void rv_link_close_locked(struct rv_link *l, int err)
{
	uint32_t i;

	if (l->closing)
		return;
	l->closing = true;
	l->err = err;
	if (l->pevfd >= 0)
		rv_kick(l->pevfd);
	if (l->slots)
		for (i = 0; i < l->ncall; i++)
			pthread_cond_broadcast(&l->slots[i].cond);
	pthread_cond_broadcast(&l->free_cond);
	rv_kick(l->evfd);
}

/* Fail everything on l with err (first reason wins) and stop its thread. */
void rv_link_close(struct rv_link *l, int err)
{
	pthread_mutex_lock(&l->lock);
	rv_link_close_locked(l, err);
	pthread_mutex_unlock(&l->lock);
}

/* The CM reports the connection fully gone (peer answered or timed out). */
void rv_link_cm_gone(struct rv_link *l)
{
	pthread_mutex_lock(&l->lock);
	l->cm_gone = true;
	pthread_cond_broadcast(&l->free_cond);
	pthread_mutex_unlock(&l->lock);
}

bool rv_link_broken(struct rv_link *l)
{
	bool b;

	pthread_mutex_lock(&l->lock);
	b = l->closing;
	pthread_mutex_unlock(&l->lock);
	return b;
}

/*
 * Reap send completions (any thread, l->lock held): frees send buffers.
 * Returns how many were reaped. An error other than a flush means the
 * peer stopped acknowledging: the link is closed.
 */
static int rv_reap_sends_locked(struct rv_link *l)
{
	struct ibv_wc wc[16];
	int n, i, total = 0;

	while ((n = ibv_poll_cq(l->scq, 16, wc)) > 0) {
		for (i = 0; i < n; i++) {
			uint32_t kind = RV_WRID_KIND(wc[i].wr_id);
			uint32_t idx = RV_WRID_IDX(wc[i].wr_id);

			if (kind == RV_WR_PING) {
				l->ping_busy = false;
				if (wc[i].status == IBV_WC_SUCCESS)
					l->last_rx_ns = pm_now_ns();
			} else if (kind == RV_WR_SEND && idx < l->nsend) {
				if (l->slots) {
					struct rv_slot *s = &l->slots[idx];

					s->send_busy = false;
					s->send_ok = wc[i].status ==
						IBV_WC_SUCCESS;
					pthread_cond_broadcast(&s->cond);
				} else if (l->nfree < l->nsend) {
					l->free_send[l->nfree++] = idx;
				}
			}
			if (wc[i].status != IBV_WC_SUCCESS &&
			    wc[i].status != IBV_WC_WR_FLUSH_ERR && !l->closing)
				rv_log(l->t, PM_LOG_WARN,
				       "peer %s: send failed: %s; closing the connection",
				       l->peer,
				       ibv_wc_status_str(wc[i].status));
			if (wc[i].status != IBV_WC_SUCCESS)
				rv_link_close_locked(l, -ECONNRESET);
		}
		total += n;
	}
	if (n < 0)
		rv_link_close_locked(l, -EIO);
	if (total)
		pthread_cond_broadcast(&l->free_cond);
	return total;
}

/* A reply arrived on an outgoing link: hand it to the call waiting for it. */
static void rv_complete_call(struct rv_link *l, const struct pm_frame_hdr *h,
			     const char *data)
{
	uint32_t idx = (uint32_t)(h->id & 0xff);
	struct rv_slot *s;
	struct pm_msg *rep;
	int st = h->status;

	if (idx >= l->ncall) {
		rv_log(l->t, PM_LOG_WARN,
		       "peer %s: reply for request id %#llx that was never sent; dropped",
		       l->peer, (unsigned long long)h->id);
		return;
	}
	pthread_mutex_lock(&l->lock);
	s = &l->slots[idx];
	if (!s->used || s->done || s->id != h->id) {
		/* The call already timed out: a late reply, not an error. */
		pthread_mutex_unlock(&l->lock);
		return;
	}
	rep = s->rep;
	if (h->msg_len > (rep->msg ? rep->msg_cap : 0) ||
	    h->payload_len > (rep->payload ? rep->payload_cap : 0)) {
		st = -EMSGSIZE;
	} else {
		if (h->msg_len)
			memcpy(rep->msg, data, h->msg_len);
		if (h->payload_len)
			memcpy(rep->payload, data + h->msg_len,
			       h->payload_len);
	}
	rep->msg_len = h->msg_len;
	rep->payload_len = h->payload_len;
	s->status = st;
	s->done = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&l->lock);
}

static void rv_handle_recv(struct rv_link *l, const struct ibv_wc *wc)
{
	struct pm_tctx *t = l->t;
	uint32_t idx = RV_WRID_IDX(wc->wr_id);
	struct pm_frame_hdr h;
	const char *why = NULL;
	char *b;
	bool closing;
	int err;

	if (wc->status != IBV_WC_SUCCESS) {
		if (wc->status != IBV_WC_WR_FLUSH_ERR)
			rv_log(t, PM_LOG_WARN,
			       "peer %s: receive failed: %s; closing the connection",
			       l->peer, ibv_wc_status_str(wc->status));
		rv_link_close(l, -ECONNRESET);
		return;
	}
	if (RV_WRID_KIND(wc->wr_id) != RV_WR_RECV || idx >= l->nrecv) {
		rv_log(t, PM_LOG_ERROR, "peer %s: completion with unknown id %#llx",
		       l->peer, (unsigned long long)wc->wr_id);
		rv_link_close(l, -EIO);
		return;
	}

	pthread_mutex_lock(&l->lock);
	l->last_rx_ns = pm_now_ns();
	closing = l->closing;
	pthread_mutex_unlock(&l->lock);
	if (closing)
		return;

	b = rv_recv_buf(l, idx);
	if (wc->byte_len == 0)
		goto repost;	/* heartbeat */
	if (wc->byte_len < PM_FRAME_HDR_LEN) {
		why = "length shorter than the frame header";
		goto bad;
	}
	if (wc->byte_len > RV_MSG_BYTES) {
		why = "length larger than the receive buffer";
		goto bad;
	}
	memcpy(&h, b, PM_FRAME_HDR_LEN);
	why = pm_frame_decode(&h);
	if (why)
		goto bad;
	if ((uint64_t)PM_FRAME_HDR_LEN + h.msg_len + h.payload_len !=
	    wc->byte_len) {
		why = "msg_len + payload_len do not match the received length";
		goto bad;
	}
	if (h.kind != (l->incoming ? PM_FRAME_REQ : PM_FRAME_REP)) {
		why = "kind";
		goto bad;
	}

	if (l->incoming) {
		struct pm_request r = {
			.conn_id = l->conn_id,
			.req_id = h.id,
			.msg = b + PM_FRAME_HDR_LEN,
			.msg_len = h.msg_len,
			.payload = h.payload_len ?
				b + PM_FRAME_HDR_LEN + h.msg_len : NULL,
			.payload_len = h.payload_len,
			.peer = l->peer,
		};

		t->lst.on_request(t->lst.arg, &r);
	} else {
		rv_complete_call(l, &h, b + PM_FRAME_HDR_LEN);
	}

repost:
	err = rv_post_recv(l, idx);
	if (err) {
		rv_log(t, PM_LOG_ERROR, "peer %s: cannot repost a receive: %s",
		       l->peer, strerror(-err));
		rv_link_close(l, -EIO);
	}
	return;
bad:
	rv_log(t, PM_LOG_WARN,
	       "peer %s: malformed frame (%s, %u bytes); closing the connection",
	       l->peer, why, wc->byte_len);
	rv_link_close(l, -EPROTO);
}

/* While calls wait, prove the peer alive: an empty SEND every RV_HB_MS. */
static void rv_heartbeat(struct rv_link *l)
{
	int err;

	pthread_mutex_lock(&l->lock);
	if (!l->closing && l->inflight > 0 && !l->ping_busy &&
	    pm_now_ns() - l->last_rx_ns >= (int64_t)RV_HB_MS * 1000000) {
		err = rv_post_send(l, RV_WRID(RV_WR_PING, 0), NULL, 0);
		if (err)
			rv_link_close_locked(l, -ECONNRESET);
		else
			l->ping_busy = true;
	}
	pthread_mutex_unlock(&l->lock);
}

/*
 * Tell the peer of an incoming link that it is closed, and wait (bounded)
 * until its CM has answered: by then the dialling side has marked its link
 * broken, so a call it makes after our on_close redials instead of going
 * into a dead queue pair. Not while fini runs: the CM thread is gone.
 */
static void rv_link_disconnect_wait(struct rv_link *l)
{
	struct pm_tctx *t = l->t;
	int64_t dl = pm_now_ns() + (int64_t)RV_DISC_WAIT_MS * 1000000;
	bool stopping;

	pthread_mutex_lock(&t->lock);
	stopping = t->stopping;
	pthread_mutex_unlock(&t->lock);
	/* Fails when never connected or when the peer disconnected first
	 * (the CM thread answered it): nothing to wait for then. */
	if (rdma_disconnect(l->id) || stopping)
		return;
	pthread_mutex_lock(&l->lock);
	while (!l->cm_gone)
		if (rv_cond_wait_until(&l->free_cond, &l->lock, dl) ==
		    ETIMEDOUT)
			break;
	pthread_mutex_unlock(&l->lock);
}

/* Reap the flushed sends of a closing outgoing link, for at most 300 ms. */
static void rv_drain_sends(struct rv_link *l)
{
	int64_t dl = pm_now_ns() + 300000000;
	struct pollfd pfd = { .fd = l->ch->fd, .events = POLLIN };
	struct ibv_cq *cq;
	void *ctx;
	bool busy;
	uint32_t i;

	for (;;) {
		pthread_mutex_lock(&l->lock);
		rv_reap_sends_locked(l);
		busy = false;
		for (i = 0; i < l->ncall; i++)
			busy |= l->slots[i].send_busy;
		pthread_mutex_unlock(&l->lock);
		if (!busy || pm_now_ns() >= dl)
			return;
		if (ibv_req_notify_cq(l->scq, 0))
			return;
		pthread_mutex_lock(&l->lock);
		rv_reap_sends_locked(l);
		pthread_mutex_unlock(&l->lock);
		if (poll(&pfd, 1, 20) > 0)
			while (ibv_get_cq_event(l->ch, &cq, &ctx) == 0)
				ibv_ack_cq_events(cq, 1);
	}
}

static void *rv_link_thread(void *arg)
{
	struct rv_link *l = arg;
	struct pm_tctx *t = l->t;
	struct ibv_wc wc[16];
	struct pollfd pfd[2];
	bool armed = false;
	int n, i;

	pfd[0].fd = l->ch->fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = l->evfd;
	pfd[1].events = POLLIN;

	for (;;) {
		bool closing;
		int reaped;

		pthread_mutex_lock(&l->lock);
		reaped = rv_reap_sends_locked(l);
		closing = l->closing;
		pthread_mutex_unlock(&l->lock);
		if (closing)
			break;

		/* Outgoing links: callers reap replies (rv_poll_replies). */
		n = l->incoming ? ibv_poll_cq(l->rcq, 16, wc) : 0;
		if (n < 0) {
			rv_log(t, PM_LOG_ERROR, "peer %s: polling the receive queue failed",
			       l->peer);
			rv_link_close(l, -EIO);
			break;
		}
		for (i = 0; i < n; i++)
			rv_handle_recv(l, &wc[i]);
		if (n > 0 || reaped > 0) {
			armed = false;
			continue;
		}
		if (!armed) {
			/* Arm, then look once more: completions that came
			 * in between raise no event. */
			if ((l->incoming && ibv_req_notify_cq(l->rcq, 0)) ||
			    ibv_req_notify_cq(l->scq, 0)) {
				rv_link_close(l, -EIO);
				break;
			}
			armed = true;
			continue;
		}

		n = poll(pfd, 2, RV_HB_MS);
		if (n < 0 && errno != EINTR) {
			rv_link_close(l, -errno);
			break;
		}
		if (n > 0 && (pfd[0].revents & POLLIN)) {
			struct ibv_cq *cq;
			void *ctx;

			while (ibv_get_cq_event(l->ch, &cq, &ctx) == 0)
				ibv_ack_cq_events(cq, 1);
			armed = false;
		}
		if (n > 0 && (pfd[1].revents & POLLIN)) {
			uint64_t v;

			if (read(l->evfd, &v, sizeof(v)) < 0) {
				/* EAGAIN: another read took it. */
			}
		}
		if (!l->incoming)
			rv_heartbeat(l);
	}

	if (l->incoming) {
		/* rdma_disconnect also moves the QP to the error state. */
		rv_link_disconnect_wait(l);
		if (t->lst.on_close)
			t->lst.on_close(t->lst.arg, l->conn_id);
	} else if (l->id->qp) {
		/* Flush posted work, so calls learn whether their request
		 * ever reached the peer (rv_link_call retries those that
		 * did not). Destroying the QP is what frees the buffers. */
		struct ibv_qp_attr qa = { .qp_state = IBV_QPS_ERR };

		ibv_modify_qp(l->id->qp, &qa, IBV_QP_STATE);
		rv_drain_sends(l);
	}
	pthread_mutex_lock(&l->lock);
	l->exited = true;
	pthread_mutex_unlock(&l->lock);
	if (l->incoming)
		rv_kick(t->evfd);	/* the CM thread frees it */
	return NULL;
}

static int rv_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/*
 * Build the verbs side of a link on a cm id whose device is known (address
 * resolved, or a connect request). The id is not owned on failure.
 */
int rv_link_create(struct pm_tctx *t, struct rdma_cm_id *id, bool incoming,
		   uint32_t depth, struct rv_link **out)
{
	struct ibv_qp_init_attr qa;
	struct rv_link *l;
	const char *what;
	uint32_t i;
	int err;

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->t = t;
	l->id = id;
	l->incoming = incoming;
	l->evfd = -1;
	l->pevfd = -1;
	l->ncall = incoming ? 0 : depth;
	l->nrecv = depth + RV_RECV_EXTRA;
	l->nsend = incoming ? depth + RV_SEND_EXTRA : depth;
	l->last_rx_ns = pm_now_ns();
	pthread_mutex_init(&l->lock, NULL);
	rv_cond_init(&l->free_cond);
	snprintf(l->peer, sizeof(l->peer), "?");

	what = "eventfd";
	l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->evfd < 0)
		goto fail_errno;
	what = "ibv_alloc_pd";
	l->pd = ibv_alloc_pd(id->verbs);
	if (!l->pd)
		goto fail_errno;
	what = "ibv_create_comp_channel";
	l->ch = ibv_create_comp_channel(id->verbs);
	if (!l->ch)
		goto fail_errno;
	err = rv_set_nonblock(l->ch->fd);
	if (err) {
		what = "fcntl";
		goto fail;
	}
	if (!incoming) {
		what = "eventfd";
		l->pevfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (l->pevfd < 0)
			goto fail_errno;
		what = "ibv_create_comp_channel";
		l->rch = ibv_create_comp_channel(id->verbs);
		if (!l->rch)
			goto fail_errno;
		err = rv_set_nonblock(l->rch->fd);
		if (err) {
			what = "fcntl";
			goto fail;
		}
	}
	what = "ibv_create_cq";
	l->scq = ibv_create_cq(id->verbs, (int)l->nsend + 4, l, l->ch, 0);
	if (!l->scq)
		goto fail_errno;
	l->rcq = ibv_create_cq(id->verbs, (int)l->nrecv + 4, l,
			       incoming ? l->ch : l->rch, 0);
	if (!l->rcq)
		goto fail_errno;

	memset(&qa, 0, sizeof(qa));
	qa.send_cq = l->scq;
	qa.recv_cq = l->rcq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = l->nsend + 2;	/* + heartbeat */
	qa.cap.max_recv_wr = l->nrecv;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	what = "rdma_create_qp";
	if (rdma_create_qp(id, l->pd, &qa))
		goto fail_errno;

	l->buflen = (size_t)(l->nrecv + l->nsend) * RV_SLOT_STRIDE;
	err = -posix_memalign((void **)&l->buf, 4096, l->buflen);
	if (err) {
		what = "posix_memalign";
		l->buf = NULL;
		goto fail;
	}
	/* Local access only: peers never read or write our memory. */
	what = "ibv_reg_mr";
	l->mr = ibv_reg_mr(l->pd, l->buf, l->buflen, IBV_ACCESS_LOCAL_WRITE);
	if (!l->mr)
		goto fail_errno;

	what = "allocating connection state";
	if (incoming) {
		l->free_send = calloc(l->nsend, sizeof(*l->free_send));
		if (!l->free_send) {
			err = -ENOMEM;
			goto fail;
		}
		for (i = 0; i < l->nsend; i++)
			l->free_send[i] = l->nsend - 1 - i;
		l->nfree = l->nsend;
	} else {
		l->slots = calloc(l->ncall, sizeof(*l->slots));
		if (!l->slots) {
			err = -ENOMEM;
			goto fail;
		}
		for (i = 0; i < l->ncall; i++)
			rv_cond_init(&l->slots[i].cond);
	}

	what = "ibv_post_recv";
	for (i = 0; i < l->nrecv; i++) {
		err = rv_post_recv(l, i);
		if (err)
			goto fail;
	}
	id->context = l;
	*out = l;
	return 0;

fail_errno:
	err = errno ? -errno : -ENOMEM;
fail:
	rv_log(t, PM_LOG_ERROR, "setting up a connection: %s: %s", what,
	       strerror(-err));
	l->id = NULL;	/* the caller keeps the cm id */
	if (id->qp)
		rdma_destroy_qp(id);
	rv_link_destroy(l);
	return err;
}

int rv_link_start(struct rv_link *l)
{
	int err = -pthread_create(&l->thr, NULL, rv_link_thread, l);

	if (err)
		return err;
	l->thr_started = true;
	return 0;
}

/* Stop l's thread and free l and its verbs objects, cm id included. */
void rv_link_destroy(struct rv_link *l)
{
	uint32_t i;

	if (l->evfd >= 0)
		rv_link_close(l, -ESHUTDOWN);
	if (l->thr_started)
		pthread_join(l->thr, NULL);
	if (l->id) {
		/* The CM thread may be answering a DISCONNECTED event on
		 * this id right now (our own rdma_disconnect causes one):
		 * its rdma_disconnect moves id->qp to the error state, so
		 * the QP goes only under l->lock, which that answer holds.
		 * (Seen under ASan: ibv_modify_qp on the freed QP.) */
		pthread_mutex_lock(&l->lock);
		if (!l->incoming)
			rdma_disconnect(l->id);
		if (l->id->qp)
			rdma_destroy_qp(l->id);
		pthread_mutex_unlock(&l->lock);
	}
	if (l->scq)
		ibv_destroy_cq(l->scq);
	if (l->rcq)
		ibv_destroy_cq(l->rcq);
	if (l->ch)
		ibv_destroy_comp_channel(l->ch);
	if (l->rch)
		ibv_destroy_comp_channel(l->rch);
	if (l->mr)
		ibv_dereg_mr(l->mr);
	free(l->buf);
	if (l->pd)
		ibv_dealloc_pd(l->pd);
	if (l->id)
		rdma_destroy_id(l->id);
	if (l->slots) {
		for (i = 0; i < l->ncall; i++)
			pthread_cond_destroy(&l->slots[i].cond);
		free(l->slots);
	}
	free(l->free_send);
	if (l->evfd >= 0)
		close(l->evfd);
	if (l->pevfd >= 0)
		close(l->pevfd);
	pthread_cond_destroy(&l->free_cond);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

/*
 * The leading caller of an outgoing link: reap the receive CQ (replies go
 * to their callers) until our own reply is in, the link closes or the
 * deadline passes. Only the leader touches the receive CQ and its channel.
 */
static void rv_poll_replies(struct rv_link *l, struct rv_slot *s,
			    int64_t deadline_ns)
{
	struct pollfd pfd[2] = {
		{ .fd = l->rch->fd, .events = POLLIN },
		{ .fd = l->pevfd, .events = POLLIN },
	};
	struct ibv_wc wc[16];
	bool armed = false, stop;
	int64_t left;
	int n, i;

	for (;;) {
		n = ibv_poll_cq(l->rcq, 16, wc);
		if (n < 0) {
			rv_link_close(l, -EIO);
			return;
		}
		for (i = 0; i < n; i++)
			rv_handle_recv(l, &wc[i]);
		pthread_mutex_lock(&l->lock);
		stop = s->done || l->closing;
		pthread_mutex_unlock(&l->lock);
		if (stop)
			return;
		if (n > 0) {
			armed = false;
			continue;
		}
		if (!armed) {
			if (ibv_req_notify_cq(l->rcq, 0)) {
				rv_link_close(l, -EIO);
				return;
			}
			armed = true;
			continue;	/* look once more after arming */
		}
		left = deadline_ns - pm_now_ns();
		if (left <= 0)
			return;
		left = left / 1000000 + 1;
		n = poll(pfd, 2, left > 1000 ? 1000 : (int)left);
		if (n < 0 && errno != EINTR)
			return;
		if (n > 0 && (pfd[0].revents & POLLIN)) {
			struct ibv_cq *cq;
			void *ctx;

			while (ibv_get_cq_event(l->rch, &cq, &ctx) == 0)
				ibv_ack_cq_events(cq, 1);
			armed = false;
		}
		if (n > 0 && (pfd[1].revents & POLLIN)) {
			uint64_t v;

			if (read(l->pevfd, &v, sizeof(v)) < 0) {
				/* EAGAIN: nothing pending. */
			}
		}
	}
}

/*
 * No caller leads now: wake one waiting caller to take over (one, not all:
 * a herd of wake-ups costs more than it saves on two CPUs). A caller that
 * leaves without leading passes it on the same way.
 */
static void rv_wake_follower_locked(struct rv_link *l, struct rv_slot *self)
{
	uint32_t i;

	if (l->polling)
		return;
	for (i = 0; i < l->ncall; i++) {
		struct rv_slot *f = &l->slots[i];

		if (f != self && f->used && !f->done) {
			pthread_cond_signal(&f->cond);
			return;
		}
	}
}

/* The link broke before our request reached the peer. */
static int rv_not_sent(struct rv_link *l)
{
	return l->err == -ESHUTDOWN ? -ESHUTDOWN : RV_ENOTSENT;
}

/* One call on an outgoing link: take a slot, send, wait for the reply.
 * RV_ENOTSENT when the link broke and the request never reached the peer. */
int rv_link_call(struct rv_link *l, const struct pm_msg *req,
		 struct pm_msg *rep, int64_t deadline_ns)
{
	int64_t posted_ns;
	struct rv_slot *s;
	uint32_t i, len;
	int ret;

	pthread_mutex_lock(&l->lock);
	for (;;) {
		if (l->closing) {
			ret = rv_not_sent(l);
			goto out_unlock;
		}
		for (i = 0; i < l->ncall; i++)
			if (!l->slots[i].used && !l->slots[i].send_busy)
				break;
		if (i < l->ncall)
			break;
		if (rv_reap_sends_locked(l) > 0)
			continue;
		if (rv_cond_wait_until(&l->free_cond, &l->lock,
				       deadline_ns) == ETIMEDOUT) {
			ret = -ETIMEDOUT;
			goto out_unlock;
		}
	}
	s = &l->slots[i];
	s->used = true;
	s->done = false;
	s->status = 0;
	s->rep = rep;
	s->send_busy = true;
	s->id = ((uint64_t)++l->seq << 8) | i;
	l->inflight++;
	pthread_mutex_unlock(&l->lock);

	/* The slot is ours: fill its send buffer without the lock. */
	len = rv_build(rv_send_buf(l, i), PM_FRAME_REQ, s->id, 0, req);

	pthread_mutex_lock(&l->lock);
	if (l->closing) {
		s->send_busy = false;
		ret = rv_not_sent(l);
		goto out_release;
	}
	s->send_ok = false;
	posted_ns = pm_now_ns();
	ret = rv_post_send(l, RV_WRID(RV_WR_SEND, i), rv_send_buf(l, i), len);
	if (ret) {
		s->send_busy = false;
		rv_log(l->t, PM_LOG_WARN, "peer %s: cannot post a send: %s",
		       l->peer, strerror(-ret));
		rv_link_close_locked(l, -ECONNRESET);
		ret = rv_not_sent(l);
		goto out_release;
	}
	while (!s->done && !l->closing) {
		if (!l->polling) {
			/* Lead: reap replies ourselves until ours is in. */
			l->polling = true;
			pthread_mutex_unlock(&l->lock);
			rv_poll_replies(l, s, deadline_ns);
			pthread_mutex_lock(&l->lock);
			l->polling = false;
			rv_wake_follower_locked(l, s);
			if (pm_now_ns() >= deadline_ns)
				break;
			continue;
		}
		/* Follow: the leader copies our reply and signals us, or
		 * leaves and wakes us to take over. */
		if (rv_cond_wait_until(&s->cond, &l->lock,
				       deadline_ns) == ETIMEDOUT)
			break;
	}
	if (s->done) {
		ret = s->status;
	} else if (l->closing) {
		/* Did the request reach the peer? The closing link thread
		 * flushes the send queue; wait briefly for our send's fate. */
		int64_t dl = pm_now_ns() + 500000000;

		if (dl > deadline_ns)
			dl = deadline_ns;
		while (s->send_busy && !s->done)
			if (rv_cond_wait_until(&s->cond, &l->lock, dl) ==
			    ETIMEDOUT)
				break;
		if (s->done)
			ret = s->status;
		else if (!s->send_busy && !s->send_ok)
			ret = rv_not_sent(l);
		else
			ret = l->err;
	} else {
		ret = -ETIMEDOUT;
		/* Worth a line when the transport itself has not delivered
		 * the request within a second: the peer's HCA never
		 * acknowledged it. */
		if (s->send_busy && pm_now_ns() - posted_ns > 1000000000)
			rv_log(l->t, PM_LOG_WARN,
			       "peer %s: call timed out before its request was acknowledged (%d calls waiting, last receive %lld ms ago)",
			       l->peer, l->inflight,
			       (long long)((pm_now_ns() - l->last_rx_ns) /
					   1000000));
	}
out_release:
	s->used = false;
	s->rep = NULL;
	l->inflight--;
	rv_wake_follower_locked(l, s);
	if (!s->send_busy)
		pthread_cond_broadcast(&l->free_cond);
out_unlock:
	pthread_mutex_unlock(&l->lock);
	return ret;
}

/* Send a reply on an incoming link; waits briefly for a send buffer. */
int rv_link_reply(struct rv_link *l, uint64_t req_id, int status,
		  const struct pm_msg *rep)
{
	int64_t deadline = pm_now_ns() + (int64_t)RV_REPLY_WAIT_MS * 1000000;
	uint32_t idx, len;
	int ret;

	pthread_mutex_lock(&l->lock);
	while (!l->closing && l->nfree == 0) {
		int64_t step;

		if (rv_reap_sends_locked(l) > 0)
			continue;
		if (pm_now_ns() >= deadline) {
			pthread_mutex_unlock(&l->lock);
			rv_log(l->t, PM_LOG_WARN,
			       "peer %s: no send buffer for a reply within %d ms",
			       l->peer, RV_REPLY_WAIT_MS);
			return -ENOBUFS;
		}
		/* Short steps: on the link's own thread (reply from inside
		 * on_request) nobody else reaps the send queue. */
		step = pm_now_ns() + 1000000;
		rv_cond_wait_until(&l->free_cond, &l->lock,
				   step < deadline ? step : deadline);
	}
	if (l->closing) {
		pthread_mutex_unlock(&l->lock);
		return -ENOTCONN;
	}
	idx = l->free_send[--l->nfree];
	pthread_mutex_unlock(&l->lock);

	len = rv_build(rv_send_buf(l, idx), PM_FRAME_REP, req_id, status, rep);

	pthread_mutex_lock(&l->lock);
	if (l->closing) {
		l->free_send[l->nfree++] = idx;
		pthread_mutex_unlock(&l->lock);
		return -ENOTCONN;
	}
	ret = rv_post_send(l, RV_WRID(RV_WR_SEND, idx), rv_send_buf(l, idx),
			   len);
	if (ret) {
		l->free_send[l->nfree++] = idx;
		rv_log(l->t, PM_LOG_WARN, "peer %s: cannot post a reply: %s",
		       l->peer, strerror(-ret));
		rv_link_close_locked(l, -ECONNRESET);
		ret = -ENOTCONN;
	}
	pthread_mutex_unlock(&l->lock);
	return ret;
}
