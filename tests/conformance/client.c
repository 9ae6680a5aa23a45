// SPDX-License-Identifier: MIT
/*
 * The client side of each case: the fixture (server, client instance,
 * connection), calls carrying a command, calls verified byte for byte and
 * threads blocked in a call.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

/* On the heap: a failed test leaves it (and the plugin threads that point
 * into it) behind instead of letting the next test reuse its stack. */
struct fix *fix_up(void)
{
	struct fix *f = calloc(1, sizeof(*f));
	int r;

	assert_non_null(f);
	f->s = srv_alloc();
	r = srv_start(f->s, listen_addr, "server");
	if (r)
		fail_msg("server init/listen/endpoint on %s: %s", listen_addr,
			 strerror(-r));
	ih_setup(&f->cih, listen_addr, "client");
	r = ops->init(&f->cih.host, &f->ct);
	if (r)
		fail_msg("client init: %s", strerror(-r));
	r = ops->connect(f->ct, f->s->ep, ms_from_now(5000), &f->c);
	if (r)
		fail_msg("connect %s: %s", f->s->ep, strerror(-r));
	return f;
}

void fix_down(struct fix *f)
{
	char why[256];

	if (late_report(why, sizeof(why)))
		fail_msg("%s", why);
	if (f->c)
		ops->disconnect(f->c);
	f->c = NULL;
	if (f->ct)
		ops->fini(f->ct);
	f->ct = NULL;
	srv_check_clean(f->s);
	srv_free(f->s);
	free(f);
}

/* A call whose request is just a command. */
int cmd_call(struct pm_tconn *c, uint32_t cmd, int32_t arg,
	     struct pm_msg *rep, int64_t deadline)
{
	struct cmd m = { .cmd = cmd, .arg = arg };
	struct pm_msg req = { .msg = &m, .msg_len = CMD_LEN };
	struct pm_msg none = { 0 };

	memcpy(m.magic, CMD_MAGIC, 4);
	return tcall(c, &req, rep ? rep : &none, deadline);
}

bool guard_ok(const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i] != POISON)
			return false;
	return true;
}

/*
 * One verified call: request of mlen/plen random bytes (starting with
 * command cmd unless CMD_ECHO), reply buffers of exactly the needed size
 * plus extra, poisoned, with guard bytes behind them. 0, the call's error,
 * or -EBADMSG with err saying what differed.
 */
int echo_once(struct pm_tconn *c, uint64_t *rng, uint32_t cmd,
	      uint32_t mlen, uint32_t plen, uint32_t extra,
	      int64_t deadline, char *err, size_t errlen)
{
	uint8_t qmsg[PM_MSG_MAX], rmsg[PM_MSG_MAX + GUARD];
	uint8_t *qpay = NULL, *rpay = NULL;
	struct pm_msg req = { 0 }, rep = { 0 };
	uint32_t mcap = mlen + extra > PM_MSG_MAX ? PM_MSG_MAX : mlen + extra;
	uint32_t pcap = plen + extra;
	uint32_t i;
	int r;

	if (cmd != CMD_ECHO && mlen < CMD_LEN)
		mlen = CMD_LEN;
	if (mcap < mlen)
		mcap = mlen;
	rand_fill(rng, qmsg, mlen);
	if (cmd != CMD_ECHO) {
		struct cmd m = { .cmd = cmd };

		memcpy(m.magic, CMD_MAGIC, 4);
		memcpy(qmsg, &m, CMD_LEN);
	} else if (mlen >= 1 && qmsg[0] == 'P') {
		qmsg[0] = 'Q';	/* never look like a command */
	}
	if (plen) {
		qpay = malloc(plen);
		if (!qpay)
			return -ENOMEM;
		rand_fill(rng, qpay, plen);
	}
	if (pcap) {
		rpay = malloc(pcap + GUARD);
		if (!rpay) {
			free(qpay);
			return -ENOMEM;
		}
		memset(rpay, POISON, pcap + GUARD);
	}
	memset(rmsg, POISON, sizeof(rmsg));
	req.msg = mlen ? qmsg : NULL;
	req.msg_len = mlen;
	req.payload = qpay;
	req.payload_len = plen;
	rep.msg = rmsg;
	rep.msg_cap = mcap;
	rep.payload = rpay;
	rep.payload_cap = pcap;

	r = tcall(c, &req, &rep, deadline);
	if (r) {
		snprintf(err, errlen, "call(msg %u, payload %u): %s", mlen,
			 plen, strerror(-r));
		goto out;
	}
	r = -EBADMSG;
	if (rep.msg_len != mlen || rep.payload_len != plen) {
		snprintf(err, errlen,
			 "reply lengths msg %u payload %u, sent msg %u payload %u",
			 rep.msg_len, rep.payload_len, mlen, plen);
		goto out;
	}
	for (i = 0; i < mlen; i++)
		if (rmsg[i] != (qmsg[i] ^ XOR)) {
			snprintf(err, errlen,
				 "reply msg byte %u of %u differs (msg %u, payload %u)",
				 i, mlen, mlen, plen);
			goto out;
		}
	for (i = 0; i < plen; i++)
		if (rpay[i] != (qpay[i] ^ XOR)) {
			snprintf(err, errlen,
				 "reply payload byte %u of %u differs (msg %u)",
				 i, plen, mlen);
			goto out;
		}
	if (!guard_ok(rmsg + mcap, GUARD) ||
	    (rpay && !guard_ok(rpay + pcap, GUARD))) {
		snprintf(err, errlen,
			 "the plugin wrote past the reply buffers (msg_cap %u, payload_cap %u)",
			 mcap, pcap);
		goto out;
	}
	r = 0;
out:
	free(qpay);
	free(rpay);
	return r;
}

static void *caller_main(void *a)
{
	struct caller *cl = a;

	cl->r = cmd_call(cl->c, cl->cmd, 0, NULL, cl->deadline);
	cl->t_ret = pm_now_ns();
	return NULL;
}

/* n threads, each blocked in one call of cmd with a deadline ms away. On
 * the heap (see fix_up): a failed test leaves them behind. */
struct caller *callers_start(struct pm_tconn *c, uint32_t cmd, int n, int ms)
{
	struct caller *cl = calloc(n, sizeof(*cl));
	int i;

	assert_non_null(cl);
	for (i = 0; i < n; i++) {
		cl[i].c = c;
		cl[i].cmd = cmd;
		cl[i].deadline = ms_from_now(ms);
		cl[i].r = 1;
		assert_int_equal(pthread_create(&cl[i].th, NULL, caller_main,
						&cl[i]), 0);
	}
	return cl;
}

/* Each of the n callers returns within 5 s of what the test did (after:
 * "disconnect", "fini"), with -ESHUTDOWN. */
void callers_expect_shutdown(struct caller *cl, int n, const char *after)
{
	int i;

	for (i = 0; i < n; i++) {
		if (join_ms(cl[i].th, 5000))
			fail_msg("call %d still blocked after %s", i, after);
		if (cl[i].r != -ESHUTDOWN)
			fail_msg("call %d: %d (%s), want -ESHUTDOWN", i,
				 cl[i].r, strerror(-cl[i].r));
	}
}
