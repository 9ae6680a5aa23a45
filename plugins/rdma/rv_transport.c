/* SPDX-License-Identifier: MIT */
/* RDMA transport plugin: the ops table, probe, the rdma_cm listener and its
 * event thread, and outgoing connections that redial a broken link. */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "rv.h"

#define RV_CM_DEV "/dev/infiniband/rdma_cm"

static void rv_kick(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: a wake-up is already pending. */
	}
}

static int rv_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* --- probe ---------------------------------------------------------------- */

static int rv_probe(const struct pm_host *host, char *why, size_t whylen)
{
	struct ibv_device **list;
	struct ibv_context *ctx;
	struct ibv_port_attr pa;
	union ibv_gid gid;
	char gs[INET6_ADDRSTRLEN] = "?";
	const char *dev;
	int n = 0, err = 0;

	(void)host;
	errno = 0;
	list = ibv_get_device_list(&n);
	if (!list) {
		err = errno ? errno : ENODEV;
		snprintf(why, whylen, "no RDMA device (ibv_get_device_list: %s)",
			 strerror(err));
		return -ENODEV;
	}
	if (n <= 0) {
		ibv_free_device_list(list);
		snprintf(why, whylen, "no RDMA device");
		return -ENODEV;
	}
	dev = ibv_get_device_name(list[0]);
	ctx = ibv_open_device(list[0]);
	if (!ctx) {
		err = errno ? errno : ENODEV;
		snprintf(why, whylen, "cannot open RDMA device %s: %s",
			 dev ? dev : "?", strerror(err));
		ibv_free_device_list(list);
		return -err;
	}
	err = ibv_query_port(ctx, 1, &pa);
	if (err) {
		snprintf(why, whylen, "RDMA device %s: query port 1: %s",
			 dev ? dev : "?", strerror(err));
		err = -err;
		goto out;
	}
	if (ibv_query_gid(ctx, 1, 0, &gid) == 0)
		inet_ntop(AF_INET6, gid.raw, gs, sizeof(gs));
	if (pa.state != IBV_PORT_ACTIVE) {
		snprintf(why, whylen, "RDMA device %s port 1 is %s",
			 dev ? dev : "?", ibv_port_state_str(pa.state));
		err = -ENETDOWN;
		goto out;
	}
	if (access(RV_CM_DEV, R_OK | W_OK)) {
		err = -errno;
		snprintf(why, whylen,
			 "RDMA device %s found but %s: %s (load rdma_ucm)",
			 dev ? dev : "?", RV_CM_DEV, strerror(-err));
		goto out;
	}
	snprintf(why, whylen, "%s port 1 %s gid %s%s", dev ? dev : "?",
		 ibv_port_state_str(pa.state), gs,
		 n > 1 ? " (more devices present)" : "");
out:
	ibv_close_device(ctx);
	ibv_free_device_list(list);
	return err;
}

/* --- incoming links and the CM thread ------------------------------------ */

/* Free incoming links whose thread has finished and nobody references. */
static void rv_reap(struct pm_tctx *t)
{
	struct rv_link **pp, *l;
	bool dead;

	pthread_mutex_lock(&t->lock);
again:
	for (pp = &t->in_links; (l = *pp); pp = &l->next) {
		pthread_mutex_lock(&l->lock);
		dead = l->exited;
		pthread_mutex_unlock(&l->lock);
		if (dead && l->refs == 0) {
			*pp = l->next;
			pthread_mutex_unlock(&t->lock);
			rv_link_destroy(l);
			pthread_mutex_lock(&t->lock);
			pthread_cond_broadcast(&t->cond);
			goto again;
		}
	}
	pthread_mutex_unlock(&t->lock);
}

static void rv_set_ack_timeout(struct rdma_cm_id *id)
{
	uint8_t to = RV_ACK_TIMEOUT;

	/* Best effort: older kernels keep their default timeout. */
	rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &to,
			sizeof(to));
}

/*
 * The dialling peer's depth from its connect request, checked: a missing
 * or foreign private data means our own depth.
 */
static uint32_t rv_peer_depth(struct pm_tctx *t,
			      const struct rdma_cm_event *ev)
{
	const struct rdma_conn_param *cp = &ev->param.conn;
	struct rv_priv pd;

	if (!cp->private_data || cp->private_data_len < sizeof(pd))
		return t->depth;
	memcpy(&pd, cp->private_data, sizeof(pd));
	if (le32toh(pd.magic) != RV_PRIV_MAGIC || pd.depth == 0)
		return t->depth;
	if (pd.depth > RV_PEER_DEPTH_CAP && pd.depth > t->depth)
		return t->depth > RV_PEER_DEPTH_CAP ? t->depth :
			RV_PEER_DEPTH_CAP;
	return pd.depth;
}

/* A peer dials us. Acks ev. */
static void rv_accept(struct pm_tctx *t, struct rdma_cm_event *ev)
{
	struct rdma_cm_id *id = ev->id;
	struct rdma_conn_param cp;
	struct rv_link *l = NULL;
	char peer[PM_ENDPOINT_MAX] = "?";
	bool refuse;
	int err, n = 0;

	rv_format_addr(rdma_get_peer_addr(id), ntohs(rdma_get_dst_port(id)),
		       peer, sizeof(peer));
	pthread_mutex_lock(&t->lock);
	refuse = t->stopping || !t->listening;
	for (l = t->in_links; l && n < t->max_conns; l = l->next)
		n++;
	pthread_mutex_unlock(&t->lock);
	if (refuse)
		goto reject;
	if (n >= t->max_conns) {
		rv_log(t, PM_LOG_WARN,
		       "peer %s: refused: %d connections already (max_conns)",
		       peer, n);
		goto reject;
	}
	l = NULL;

	rv_set_ack_timeout(id);
	err = rv_link_create(t, id, true, rv_peer_depth(t, ev), &l);
	if (err)
		goto reject;
	snprintf(l->peer, sizeof(l->peer), "%s", peer);
	err = rv_link_start(l);
	if (err) {
		rv_log(t, PM_LOG_ERROR, "peer %s: cannot start a thread: %s",
		       peer, strerror(-err));
		rdma_reject(id, NULL, 0);
		rdma_ack_cm_event(ev);
		rv_link_destroy(l);	/* destroys id too */
		return;
	}
	pthread_mutex_lock(&t->lock);
	l->conn_id = ++t->next_conn_id;
	l->next = t->in_links;
	t->in_links = l;
	pthread_mutex_unlock(&t->lock);

	rv_fill_conn_param(&cp, NULL, 0);
	if (rdma_accept(id, &cp)) {
		err = errno;
		rv_log(t, PM_LOG_WARN, "peer %s: rdma_accept: %s", peer,
		       strerror(err));
		rv_link_close(l, -ECONNABORTED);
	} else {
		rv_log(t, PM_LOG_DEBUG, "peer %s: connection %llu accepted",
		       peer, (unsigned long long)l->conn_id);
	}
	rdma_ack_cm_event(ev);
	return;

reject:
	rdma_reject(id, NULL, 0);
	rdma_ack_cm_event(ev);
	rdma_destroy_id(id);
}

static void rv_cm_event(struct pm_tctx *t, struct rdma_cm_event *ev)
{
	struct rv_link *l;

	if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
		rv_accept(t, ev);
		return;
	}
	if (ev->id == t->listen_id) {
		if (ev->event == RDMA_CM_EVENT_DEVICE_REMOVAL)
			rv_log(t, PM_LOG_ERROR,
			       "RDMA device of the listener %s was removed",
			       t->endpoint);
		rdma_ack_cm_event(ev);
		return;
	}
	l = ev->id->context;
	switch (ev->event) {
	case RDMA_CM_EVENT_DISCONNECTED:
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
	case RDMA_CM_EVENT_CONNECT_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_REJECTED:
	case RDMA_CM_EVENT_TIMEWAIT_EXIT:
		if (l) {
			rv_log(t, PM_LOG_DEBUG, "peer %s: %s", l->peer,
			       rdma_event_str(ev->event));
			/* Broken first, then answer the peer's DREQ: once it
			 * has our answer, our next call redials. */
			rv_link_close(l, -ECONNRESET);
			rv_link_cm_gone(l);
		}
		if (ev->event != RDMA_CM_EVENT_DISCONNECTED)
			break;
		/* An outgoing link may be destroyed by another thread
		 * meanwhile: l->lock keeps its QP until this returns (l
		 * itself lives until the event is acked: rdma_destroy_id
		 * waits for that). */
		if (l)
			pthread_mutex_lock(&l->lock);
		rdma_disconnect(ev->id);
		if (l)
			pthread_mutex_unlock(&l->lock);
		break;
	default:
		break;
	}
	rdma_ack_cm_event(ev);
}

static void *rv_cm_thread(void *arg)
{
	struct pm_tctx *t = arg;
	struct rdma_cm_event *ev;
	struct pollfd pfd[2];
	bool stop;
	int n;

	pfd[0].fd = t->cm_ch->fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = t->evfd;
	pfd[1].events = POLLIN;
	for (;;) {
		pthread_mutex_lock(&t->lock);
		stop = t->stopping;
		pthread_mutex_unlock(&t->lock);
		if (stop)
			break;
		rv_reap(t);
		n = poll(pfd, 2, 1000);
		if (n <= 0)
			continue;
		if (pfd[1].revents & POLLIN) {
			uint64_t v;

			if (read(t->evfd, &v, sizeof(v)) < 0) {
				/* EAGAIN: someone else took it. */
			}
		}
		if (pfd[0].revents & POLLIN)
			while (rdma_get_cm_event(t->cm_ch, &ev) == 0)
				rv_cm_event(t, ev);
	}
	return NULL;
}

/* --- init / fini / listen ------------------------------------------------ */

static int rv_init(const struct pm_host *host, struct pm_tctx **out)
{
	struct sockaddr_storage ss;
	struct pm_tctx *t;
	const char *s;
	int64_t v;
	int err;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->host = host;
	t->evfd = -1;
	pthread_mutex_init(&t->lock, NULL);
	rv_cond_init(&t->cond);

	err = host->cfg_string(host->ctx, "listen", &s);
	if (err == 0) {
		if (rv_parse_endpoint(s, &ss) ||
		    strlen(s) >= sizeof(t->listen_cfg)) {
			rv_log(t, PM_LOG_ERROR,
			       "listen: cannot parse \"%s\" (want IP:PORT of the RDMA netdev)",
			       s);
			err = -EINVAL;
			goto fail;
		}
		snprintf(t->listen_cfg, sizeof(t->listen_cfg), "%s", s);
	} else if (err != -ENOENT) {
		rv_log(t, PM_LOG_ERROR, "listen: must be a string \"IP:PORT\"");
		err = -EINVAL;
		goto fail;
	}

	t->depth = RV_DEPTH_DEFAULT;
	err = host->cfg_int(host->ctx, "depth", &v);
	if (err == 0 && (v < 1 || v > RV_DEPTH_MAX)) {
		rv_log(t, PM_LOG_ERROR,
		       "depth: %lld is out of range [1, %u] (calls in flight per connection)",
		       (long long)v, RV_DEPTH_MAX);
		err = -EINVAL;
		goto fail;
	} else if (err == 0) {
		t->depth = (uint32_t)v;
	} else if (err != -ENOENT) {
		rv_log(t, PM_LOG_ERROR, "depth: must be an integer");
		err = -EINVAL;
		goto fail;
	}

	t->max_conns = RV_MAX_CONNS_DEFAULT;
	err = host->cfg_int(host->ctx, "max_conns", &v);
	if (err == 0 && (v < 1 || v > RV_MAX_CONNS_MAX)) {
		rv_log(t, PM_LOG_ERROR,
		       "max_conns: %lld is out of range [1, %d] (incoming connections at once)",
		       (long long)v, RV_MAX_CONNS_MAX);
		err = -EINVAL;
		goto fail;
	} else if (err == 0) {
		t->max_conns = (int)v;
	} else if (err != -ENOENT) {
		rv_log(t, PM_LOG_ERROR, "max_conns: must be an integer");
		err = -EINVAL;
		goto fail;
	}

	t->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->evfd < 0) {
		err = -errno;
		goto fail;
	}
	t->cm_ch = rdma_create_event_channel();
	if (!t->cm_ch) {
		err = errno ? -errno : -ENODEV;
		rv_log(t, PM_LOG_ERROR, "rdma_create_event_channel: %s",
		       strerror(-err));
		goto fail;
	}
	err = rv_set_nonblock(t->cm_ch->fd);
	if (err)
		goto fail;
	err = -pthread_create(&t->cm_thr, NULL, rv_cm_thread, t);
	if (err)
		goto fail;
	t->cm_started = true;
	*out = t;
	return 0;
fail:
	if (t->cm_ch)
		rdma_destroy_event_channel(t->cm_ch);
	if (t->evfd >= 0)
		close(t->evfd);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t);
	return err;
}

static bool rv_is_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr ==
			htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(
		&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static int rv_listen(struct pm_tctx *t, const struct pm_listener *lst)
{
	struct sockaddr_storage ss;
	int reuse = 1, err;
	uint16_t port;

	if (!lst || !lst->on_request)
		return -EINVAL;
	if (t->listen_id)
		return -EBUSY;
	if (!t->listen_cfg[0]) {
		rv_log(t, PM_LOG_ERROR,
		       "listen is not set (IP:PORT of the RDMA-capable netdev)");
		return -EINVAL;
	}
	rv_parse_endpoint(t->listen_cfg, &ss);	/* checked by init */

	if (rdma_create_id(t->cm_ch, &t->listen_id, NULL, RDMA_PS_TCP)) {
		err = -errno;
		rv_log(t, PM_LOG_ERROR, "rdma_create_id: %s", strerror(-err));
		t->listen_id = NULL;
		return err;
	}
	rdma_set_option(t->listen_id, RDMA_OPTION_ID, RDMA_OPTION_ID_REUSEADDR,
			&reuse, sizeof(reuse));
	if (rdma_bind_addr(t->listen_id, (struct sockaddr *)&ss)) {
		err = -errno;
		rv_log(t, PM_LOG_ERROR,
		       "cannot listen on %s: %s (is an RDMA device on that address's netdev?)",
		       t->listen_cfg, strerror(-err));
		goto fail;
	}
	port = ntohs(rdma_get_src_port(t->listen_id));
	err = rv_format_addr(rdma_get_local_addr(t->listen_id), port,
			     t->endpoint, sizeof(t->endpoint));
	if (err)
		goto fail;

	pthread_mutex_lock(&t->lock);
	t->lst = *lst;
	t->listening = true;
	pthread_mutex_unlock(&t->lock);
	if (rdma_listen(t->listen_id, 64)) {
		err = -errno;
		rv_log(t, PM_LOG_ERROR, "rdma_listen on %s: %s", t->endpoint,
		       strerror(-err));
		pthread_mutex_lock(&t->lock);
		t->listening = false;
		pthread_mutex_unlock(&t->lock);
		goto fail;
	}
	if (rv_is_wildcard(&ss))
		rv_log(t, PM_LOG_WARN,
		       "listening on %s: peers cannot dial a wildcard address; set listen to the RDMA netdev's IP",
		       t->endpoint);
	else
		rv_log(t, PM_LOG_INFO, "listening on %s", t->endpoint);
	return 0;
fail:
	rdma_destroy_id(t->listen_id);
	t->listen_id = NULL;
	t->endpoint[0] = '\0';
	return err;
}

static int rv_endpoint(struct pm_tctx *t, char *buf, size_t len)
{
	size_t n = strlen(t->endpoint);

	if (!t->listen_id || !n)
		return -EINVAL;
	if (n >= len)
		return -ENOSPC;
	memcpy(buf, t->endpoint, n + 1);
	return 0;
}

/* --- outgoing connections ------------------------------------------------ */

static int rv_cm_errno(const struct rdma_cm_event *ev)
{
	switch (ev->event) {
	case RDMA_CM_EVENT_REJECTED:
		return -ECONNREFUSED;
	case RDMA_CM_EVENT_UNREACHABLE:
		return ev->status == -ETIMEDOUT ? -ETIMEDOUT : -EHOSTUNREACH;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
		return ev->status < 0 && ev->status > -4096 ?
			ev->status : -EHOSTUNREACH;
	case RDMA_CM_EVENT_CONNECT_ERROR:
		return -ECONNREFUSED;
	default:
		return -ECONNRESET;
	}
}

/* Wait on a private channel for event want; any other event is an error. */
static int rv_wait_cm(struct rdma_event_channel *ch,
		      enum rdma_cm_event_type want, int64_t deadline_ns,
		      const bool *abort)
{
	struct rdma_cm_event *ev;
	struct pollfd pfd = { .fd = ch->fd, .events = POLLIN };
	int err;

	for (;;) {
		int64_t left = deadline_ns - pm_now_ns();

		if (rdma_get_cm_event(ch, &ev) == 0) {
			err = ev->event == want ? 0 : rv_cm_errno(ev);
			rdma_ack_cm_event(ev);
			return err;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		if (abort && __atomic_load_n(abort, __ATOMIC_ACQUIRE))
			return -ESHUTDOWN;
		if (left <= 0)
			return -ETIMEDOUT;
		/* Short steps so a disconnect() aborts the dial. */
		if (poll(&pfd, 1, left > 100000000 ? 100 :
			 (int)(left / 1000000) + 1) < 0 && errno != EINTR)
			return -errno;
	}
}

static int rv_cm_ms(int64_t deadline_ns)
{
	int64_t ms = (deadline_ns - pm_now_ns()) / 1000000;

	if (ms < 1)
		return 1;
	return ms > RV_CM_STEP_MS ? RV_CM_STEP_MS : (int)ms;
}

/* Resolve, connect and start one link to endpoint; blocks until deadline. */
static int rv_dial(struct pm_tctx *t, const char *endpoint,
		   int64_t deadline_ns, const bool *abort,
		   struct rv_link **out)
{
	struct rdma_event_channel *ch;
	struct sockaddr_storage dst;
	struct rdma_conn_param cp;
	struct rv_priv priv;
	struct rdma_cm_id *id = NULL;
	struct rv_link *l = NULL;
	const char *step;
	int err;

	if (rv_parse_endpoint(endpoint, &dst))
		return -EINVAL;
	ch = rdma_create_event_channel();
	if (!ch)
		return errno ? -errno : -ENODEV;
	err = rv_set_nonblock(ch->fd);
	if (err)
		goto out_ch;
	step = "rdma_create_id";
	if (rdma_create_id(ch, &id, NULL, RDMA_PS_TCP)) {
		err = -errno;
		id = NULL;
		goto out_log;
	}
	step = "resolving the address";
	if (rdma_resolve_addr(id, NULL, (struct sockaddr *)&dst,
			      rv_cm_ms(deadline_ns))) {
		err = -errno;
		goto out_log;
	}
	err = rv_wait_cm(ch, RDMA_CM_EVENT_ADDR_RESOLVED, deadline_ns, abort);
	if (err)
		goto out_log;
	rv_set_ack_timeout(id);
	step = "resolving the route";
	if (rdma_resolve_route(id, rv_cm_ms(deadline_ns))) {
		err = -errno;
		goto out_log;
	}
	err = rv_wait_cm(ch, RDMA_CM_EVENT_ROUTE_RESOLVED, deadline_ns, abort);
	if (err)
		goto out_log;
	err = rv_link_create(t, id, false, t->depth, &l);
	if (err)
		goto out_id;
	snprintf(l->peer, sizeof(l->peer), "%s", endpoint);
	id = NULL;	/* owned by l now */
	step = "connecting";
	rv_fill_conn_param(&cp, &priv, t->depth);
	if (rdma_connect(l->id, &cp)) {
		err = -errno;
		goto out_log;
	}
	err = rv_wait_cm(ch, RDMA_CM_EVENT_ESTABLISHED, deadline_ns, abort);
	if (err)
		goto out_log;
	/* From now on the CM thread sees this link's disconnect. */
	step = "rdma_migrate_id";
	if (rdma_migrate_id(l->id, t->cm_ch)) {
		err = -errno;
		goto out_log;
	}
	err = rv_link_start(l);
	if (err)
		goto out_link;
	rdma_destroy_event_channel(ch);
	*out = l;
	return 0;

out_log:
	rv_log(t, err == -ECONNREFUSED || err == -ETIMEDOUT ?
	       PM_LOG_DEBUG : PM_LOG_WARN, "dialling %s: %s: %s", endpoint,
	       step, strerror(-err));
out_link:
	if (l)
		rv_link_destroy(l);
out_id:
	if (id)
		rdma_destroy_id(id);
out_ch:
	rdma_destroy_event_channel(ch);
	return err;
}

static void rv_link_put(struct rv_link *l)
{
	if (__atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL) == 0)
		rv_link_destroy(l);
}

static int rv_connect(struct pm_tctx *t, const char *endpoint,
		      int64_t deadline_ns, struct pm_tconn **out)
{
	struct sockaddr_storage ss;
	struct pm_tconn *c;
	struct rv_link *l;
	int err;

	if (!endpoint || strlen(endpoint) >= PM_ENDPOINT_MAX ||
	    rv_parse_endpoint(endpoint, &ss)) {
		rv_log(t, PM_LOG_ERROR,
		       "cannot parse endpoint \"%s\" (want IP:PORT)",
		       endpoint ? endpoint : "(null)");
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->t = t;
	snprintf(c->endpoint, sizeof(c->endpoint), "%s", endpoint);
	pthread_mutex_init(&c->lock, NULL);
	rv_cond_init(&c->cond);

	err = rv_dial(t, endpoint, deadline_ns, NULL, &l);
	if (err) {
		pthread_cond_destroy(&c->cond);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return err;
	}
	l->refs = 1;
	c->link = l;
	pthread_mutex_lock(&t->lock);
	c->next = t->conns;
	t->conns = c;
	pthread_mutex_unlock(&t->lock);
	*out = c;
	return 0;
}

/* Fail c's calls with -ESHUTDOWN, wait for them to leave, free c. */
static void rv_conn_free(struct pm_tconn *c)
{
	struct pm_tctx *t = c->t;
	struct rv_link *l;
	int64_t warn_at = pm_now_ns() + 5000000000LL;

	pthread_mutex_lock(&c->lock);
	__atomic_store_n(&c->shut, true, __ATOMIC_RELEASE);
	if (c->link)
		rv_link_close(c->link, -ESHUTDOWN);
	pthread_cond_broadcast(&c->cond);
	while (c->callers > 0) {
		/* Woken calls return at once; a dial in progress notices
		 * the shutdown within 100 ms. */
		if (rv_cond_wait_until(&c->cond, &c->lock,
				       pm_now_ns() + 1000000000) == ETIMEDOUT &&
		    pm_now_ns() > warn_at) {
			rv_log(t, PM_LOG_WARN,
			       "%s: still waiting for %d calls to return",
			       c->endpoint, c->callers);
			warn_at = pm_now_ns() + 5000000000LL;
		}
	}
	l = c->link;
	c->link = NULL;
	pthread_mutex_unlock(&c->lock);
	if (l)
		rv_link_put(l);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void rv_disconnect(struct pm_tconn *c)
{
	struct pm_tctx *t;
	struct pm_tconn **pp;

	if (!c)
		return;
	t = c->t;
	pthread_mutex_lock(&t->lock);
	for (pp = &t->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	rv_conn_free(c);
}

/* A usable link for a call (ref taken), redialling once if it broke. */
static int rv_conn_link(struct pm_tconn *c, int64_t deadline_ns,
			bool *redialled, struct rv_link **out)
{
	struct rv_link *l, *nl;
	int err;

	for (;;) {
		if (c->shut)
			return -ESHUTDOWN;
		if (c->dialing) {
			if (rv_cond_wait_until(&c->cond, &c->lock,
					       deadline_ns) == ETIMEDOUT)
				return -ETIMEDOUT;
			continue;
		}
		l = c->link;
		if (l && !rv_link_broken(l))
			break;
		if (*redialled)
			return -ECONNRESET;
		c->link = NULL;
		c->dialing = true;
		pthread_mutex_unlock(&c->lock);
		if (l)
			rv_link_put(l);
		err = rv_dial(c->t, c->endpoint, deadline_ns, &c->shut, &nl);
		pthread_mutex_lock(&c->lock);
		c->dialing = false;
		pthread_cond_broadcast(&c->cond);
		if (err) {
			rv_log(c->t, PM_LOG_DEBUG, "redialling %s: %s",
			       c->endpoint, strerror(-err));
			if (err == -ETIMEDOUT || err == -ESHUTDOWN)
				return err;
			return -ECONNRESET;
		}
		nl->refs = 1;
		if (c->shut) {
			pthread_mutex_unlock(&c->lock);
			rv_link_put(nl);
			pthread_mutex_lock(&c->lock);
			return -ESHUTDOWN;
		}
		c->link = nl;
		*redialled = true;
	}
	__atomic_add_fetch(&l->refs, 1, __ATOMIC_ACQ_REL);
	*out = l;
	return 0;
}

static int rv_call(struct pm_tconn *c, const struct pm_msg *req,
		   struct pm_msg *rep, int64_t deadline_ns)
{
	struct pm_msg none = { 0 };
	struct rv_link *l = NULL;
	bool redialled = false;
	int ret;

	if (!c || !req)
		return -EINVAL;
	if (req->msg_len > PM_MSG_MAX || req->payload_len > PM_PAYLOAD_MAX)
		return -EMSGSIZE;
	if ((req->msg_len && !req->msg) ||
	    (req->payload_len && !req->payload))
		return -EINVAL;
	if (!rep)
		rep = &none;
	if (pm_now_ns() >= deadline_ns)
		return -ETIMEDOUT;	/* nothing to send it for */

	pthread_mutex_lock(&c->lock);
	if (c->shut) {
		pthread_mutex_unlock(&c->lock);
		return -ESHUTDOWN;
	}
	c->callers++;
	for (;;) {
		ret = rv_conn_link(c, deadline_ns, &redialled, &l);
		pthread_mutex_unlock(&c->lock);
		if (!ret) {
			ret = rv_link_call(l, req, rep, deadline_ns);
			rv_link_put(l);
		}
		pthread_mutex_lock(&c->lock);
		/* A request that never reached the peer of a broken link
		 * goes out once more on a fresh one: the peer may have been
		 * gone before we heard of it (its CM disconnect is async). */
		if (ret != RV_ENOTSENT)
			break;
		if (redialled) {
			ret = -ECONNRESET;
			break;
		}
	}
	if (--c->callers == 0)
		pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* --- replies, drop ------------------------------------------------------- */

/* The incoming link conn_id with a reference taken, or NULL. */
static struct rv_link *rv_in_get(struct pm_tctx *t, uint64_t conn_id)
{
	struct rv_link *l;

	pthread_mutex_lock(&t->lock);
	for (l = t->in_links; l; l = l->next)
		if (l->conn_id == conn_id)
			break;
	if (l)
		l->refs++;
	pthread_mutex_unlock(&t->lock);
	return l;
}

static void rv_in_put(struct pm_tctx *t, struct rv_link *l)
{
	bool exited;

	pthread_mutex_lock(&t->lock);
	if (--l->refs == 0) {
		pthread_mutex_lock(&l->lock);
		exited = l->exited;
		pthread_mutex_unlock(&l->lock);
		if (exited)
			rv_kick(t->evfd);	/* let the CM thread free it */
	}
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static int rv_reply(struct pm_tctx *t, uint64_t conn_id, uint64_t req_id,
		    int status, const struct pm_msg *rep)
{
	struct rv_link *l;
	int ret;

	if (status > 0 || status < -4095)
		return -EINVAL;
	if (rep && (rep->msg_len > PM_MSG_MAX ||
		    rep->payload_len > PM_PAYLOAD_MAX))
		return -EMSGSIZE;
	if (rep && ((rep->msg_len && !rep->msg) ||
		    (rep->payload_len && !rep->payload)))
		return -EINVAL;
	l = rv_in_get(t, conn_id);
	if (!l)
		return -ENOTCONN;
	ret = rv_link_reply(l, req_id, status, rep);
	rv_in_put(t, l);
	return ret;
}

static int rv_drop(struct pm_tctx *t, uint64_t conn_id)
{
	struct rv_link *l;
	bool gone;

	l = rv_in_get(t, conn_id);
	if (!l)
		return -ENOENT;
	/* Already closing: on_close has run or is about to; the connection
	 * is gone as far as the core is concerned. */
	pthread_mutex_lock(&l->lock);
	gone = l->closing;
	pthread_mutex_unlock(&l->lock);
	if (!gone) {
		rv_log(t, PM_LOG_INFO, "peer %s: connection %llu dropped",
		       l->peer, (unsigned long long)conn_id);
		rv_link_close(l, -ECONNRESET);
	}
	rv_in_put(t, l);
	return gone ? -ENOENT : 0;
}

static void rv_fini(struct pm_tctx *t)
{
	struct pm_tconn *c;
	struct rv_link *l;

	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	t->stopping = true;
	t->listening = false;
	pthread_mutex_unlock(&t->lock);
	rv_kick(t->evfd);
	if (t->cm_started)
		pthread_join(t->cm_thr, NULL);

	for (;;) {
		pthread_mutex_lock(&t->lock);
		c = t->conns;
		if (c)
			t->conns = c->next;
		pthread_mutex_unlock(&t->lock);
		if (!c)
			break;
		rv_conn_free(c);
	}

	/* Incoming links: their threads run on_close as they exit. */
	pthread_mutex_lock(&t->lock);
	for (l = t->in_links; l; l = l->next) {
		rv_link_close(l, -ESHUTDOWN);
		rv_link_cm_gone(l);	/* no CM thread to wait for now */
	}
	while ((l = t->in_links)) {
		if (l->refs > 0) {
			/* A reply() in progress: it returns within
			 * RV_REPLY_WAIT_MS now that the link is closing. */
			rv_cond_wait_until(&t->cond, &t->lock,
					   pm_now_ns() + 100000000);
			continue;
		}
		t->in_links = l->next;
		pthread_mutex_unlock(&t->lock);
		rv_link_destroy(l);
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);

	if (t->listen_id)
		rdma_destroy_id(t->listen_id);
	rdma_destroy_event_channel(t->cm_ch);
	close(t->evfd);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static const struct pm_transport_ops rv_ops = {
	.size = sizeof(struct pm_transport_ops),
	.abi_major = PM_TRANSPORT_ABI_MAJOR,
	.abi_minor = PM_TRANSPORT_ABI_MINOR,
	.name = RV_NAME,
	.version = RV_VERSION,
	.caps = PM_CAP_RDMA | PM_CAP_RELIABLE,
	.probe = rv_probe,
	.init = rv_init,
	.fini = rv_fini,
	.listen = rv_listen,
	.endpoint = rv_endpoint,
	.connect = rv_connect,
	.disconnect = rv_disconnect,
	.call = rv_call,
	.reply = rv_reply,
	.drop = rv_drop,
};

PM_TRANSPORT_EXPORT const struct pm_transport_ops *PM_TRANSPORT_ENTRY(void);

PM_TRANSPORT_EXPORT const struct pm_transport_ops *PM_TRANSPORT_ENTRY(void)
{
	return &rv_ops;
}
