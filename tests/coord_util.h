/* SPDX-License-Identifier: MIT */
/* Helpers for the coordinator and metrics tests: child processes that die
 * with the test, free loopback ports, libcurl requests, temp node configs. */
#ifndef PM_TEST_COORD_UTIL_H
#define PM_TEST_COORD_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "free_port.h"

static inline long long tu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Build dir of the binaries under test (make sets PM_BUILD). */
static inline const char *tu_build(void)
{
	const char *b = getenv("PM_BUILD");

	return b && *b ? b : "build";
}

/*
 * Start argv[0] with argv; its stdout comes to *out_fd when out_fd is set
 * (else it is the test's). The child gets SIGKILL if the test dies, so a
 * test killed by its timeout leaves nothing behind. pid or -errno.
 */
static inline pid_t tu_spawn(char *const argv[], int *out_fd,
			     const char *log_path)
{
	int p[2] = { -1, -1 };
	pid_t pid, parent = getpid();

	if (out_fd && pipe2(p, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		int e = errno;

		if (out_fd) {
			close(p[0]);
			close(p[1]);
		}
		return -e;
	}
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (out_fd)
			dup2(p[1], STDOUT_FILENO);
		if (log_path) {
			int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC,
				      0600);

			if (fd >= 0) {
				dup2(fd, STDERR_FILENO);
				if (!out_fd)
					dup2(fd, STDOUT_FILENO);
				close(fd);
			}
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (out_fd) {
		close(p[1]);
		*out_fd = p[0];
	}
	return pid;
}

/* Read one line from fd within timeout_ms. 0 or -ETIMEDOUT / -EIO. */
static inline int tu_read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	long long deadline = tu_now_ms() + timeout_ms;
	size_t n = 0;

	while (n + 1 < len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		long long left = deadline - tu_now_ms();
		ssize_t r;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		r = read(fd, buf + n, 1);
		if (r <= 0)
			return -EIO;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return 0;
}

/* Stop a child: signal, then wait up to timeout_ms for it to exit (SIGKILL
 * after that). The wait status, or -1 if it had to be killed. */
static inline int tu_stop(pid_t pid, int sig, int timeout_ms)
{
	int pfd, st, ret = -1;

	if (pid <= 0)
		return -1;
	pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	kill(pid, sig);
	if (pfd >= 0) {
		struct pollfd p = { .fd = pfd, .events = POLLIN };

		if (poll(&p, 1, timeout_ms) == 1 &&
		    waitpid(pid, &st, 0) == pid)
			ret = st;
		close(pfd);
		if (ret != -1)
			return ret;
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

struct tu_resp {
	long status;
	char body[256 * 1024];
	size_t len;
	char headers[4096];
	size_t hlen;
};

static size_t tu_body_cb(char *p, size_t sz, size_t nm, void *arg)
{
	struct tu_resp *r = arg;
	size_t n = sz * nm, room = sizeof(r->body) - 1 - r->len;

	memcpy(r->body + r->len, p, n < room ? n : room);
	r->len += n < room ? n : room;
	r->body[r->len] = '\0';
	return n;
}

static size_t tu_hdr_cb(char *p, size_t sz, size_t nm, void *arg)
{
	struct tu_resp *r = arg;
	size_t n = sz * nm, room = sizeof(r->headers) - 1 - r->hlen;

	memcpy(r->headers + r->hlen, p, n < room ? n : room);
	r->hlen += n < room ? n : room;
	r->headers[r->hlen] = '\0';
	return n;
}

/*
 * One HTTP request with libcurl. body may be NULL; chunked sends the body
 * with Transfer-Encoding: chunked (no Content-Length). CURLcode.
 */
static inline int tu_http(const char *method, const char *url,
			  const char *body, size_t body_len, int chunked,
			  struct tu_resp *r)
{
	struct curl_slist *h = NULL;
	CURLcode rc;
	CURL *c = curl_easy_init();

	memset(r, 0, sizeof(*r));
	if (!c)
		return CURLE_OUT_OF_MEMORY;
	h = curl_slist_append(h, "Content-Type: application/json");
	if (chunked)
		h = curl_slist_append(h, "Transfer-Encoding: chunked");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tu_body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, tu_hdr_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		if (!chunked)
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE,
					 (long)body_len);
	} else if (!strcmp(method, "POST")) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	}
	if (strcmp(method, "GET") && strcmp(method, "POST"))
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	return rc;
}

/* Temp files made here, removed by tu_cleanup_files() even when a test
 * failed half-way. */
static char tu_files[64][64];
static int tu_n_files;

static inline void tu_track_file(const char *path)
{
	if (tu_n_files < 64)
		snprintf(tu_files[tu_n_files++], sizeof(tu_files[0]), "%s",
			 path);
}

static inline void tu_cleanup_files(void)
{
	while (tu_n_files > 0)
		unlink(tu_files[--tu_n_files]);
}

/* Write a node config for the coordinator client; path into out. */
static inline int tu_node_config(char *out, size_t outlen, int node_id,
				 int nodes, const char *cluster,
				 const char *backend, const char *const *urls,
				 int n_urls, int ttl_ms, const char *extra)
{
	char tmpl[] = "/tmp/pm-coord-cfg-XXXXXX";
	FILE *f;
	int fd, i;

	fd = mkstemp(tmpl);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(tmpl);
		return -EIO;
	}
	fprintf(f,
		"node = { id = %d; };\n"
		"cluster = { name = \"%s\"; nodes = %d; memory = \"64M\"; };\n"
		"transports = { order = [ \"tcp\" ]; };\n"
		"coordinator = {\n  backend = \"%s\";\n  ttl_ms = %d;\n"
		"  urls = [ ",
		node_id, cluster, nodes, backend, ttl_ms);
	for (i = 0; i < n_urls; i++)
		fprintf(f, "%s\"%s\"", i ? ", " : "", urls[i]);
	fprintf(f, " ];\n};\n%s", extra ? extra : "");
	if (fclose(f)) {
		unlink(tmpl);
		return -EIO;
	}
	snprintf(out, outlen, "%s", tmpl);
	tu_track_file(tmpl);
	return 0;
}

#endif
