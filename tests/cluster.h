/* SPDX-License-Identifier: MIT */
/*
 * Test helper: write configs for an N-node cluster, start one process per
 * node (optionally inside a network namespace), wait for all of them with
 * a deadline (SIGCHLD, no polling sleeps), and kill what is left.
 * Header-only; each test program includes it once.
 */
#ifndef PM_TEST_CLUSTER_H
#define PM_TEST_CLUSTER_H

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "free_port.h"

#define CL_MAX 16

struct cluster {
	int n;
	char dir[256];			/* temp dir with configs and logs */
	char host[CL_MAX][64];		/* address each node listens on */
	int port[CL_MAX];
	char netns[CL_MAX][64];		/* "" = run in this namespace */
	pid_t pid[CL_MAX];
	int status[CL_MAX];		/* exit code, 128+sig, or -1 */
	char extra[1024];		/* appended to every config */
	char pager[256];		/* more keys of the pager group */
	char cluster_keys[256];		/* more keys of the cluster group */
	char tr_keys[256];		/* more keys of the transport's group */
	const char *transport;		/* "tcp" (default) */
	const char *node_transport[CL_MAX];	/* per node override */
	char key_path[300];		/* cluster key (mode 0600), "" none */
	char hub[24];			/* netns hub of cl_netns_up, "" none */
	char coord[512];		/* coordinator group body: nodes then
					 * list no peers and listen on port 0 */
	const char *node_key[CL_MAX];	/* per node key file override */
	char addr[CL_MAX][128];		/* listen string and endpoint of a
					 * transport that is not HOST:PORT
					 * (AF_UNIX "@name"); "" HOST:PORT */
	char tdir[300];			/* transports.dir, "" the built-ins */
};

static inline const char *cl_build(void)
{
	const char *b = getenv("PM_BUILD");

	return b && *b ? b : "build";
}

/* A file of 32 random bytes, mode 0600: a cluster key. */
static inline int cl_write_key(const char *path)
{
	unsigned char k[32];
	int fd, in, r = 0;

	in = open("/dev/urandom", O_RDONLY);
	if (in < 0)
		return -errno;
	if (read(in, k, sizeof(k)) != (ssize_t)sizeof(k))
		r = -EIO;
	close(in);
	if (r)
		return r;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, k, sizeof(k)) != (ssize_t)sizeof(k))
		r = -EIO;
	close(fd);
	return r;
}

/* n nodes on loopback, memory as a config string ("64M"), sharing a
 * cluster key (clear key_path for a keyless cluster). */
static inline int cl_init(struct cluster *c, int n)
{
	int r;

	memset(c, 0, sizeof(*c));
	c->n = n;
	c->transport = "tcp";
	snprintf(c->dir, sizeof(c->dir), "/tmp/pm-test-XXXXXX");
	if (!mkdtemp(c->dir))
		return -errno;
	snprintf(c->key_path, sizeof(c->key_path), "%s/cluster.key", c->dir);
	r = cl_write_key(c->key_path);
	if (r)
		return r;
	for (int i = 0; i < n; i++) {
		snprintf(c->host[i], sizeof(c->host[i]), "127.0.0.1");
		c->port[i] = tu_free_port();
		if (c->port[i] < 0)
			return -EADDRNOTAVAIL;
		c->pid[i] = -1;
	}
	return 0;
}

static inline void cl_path(const struct cluster *c, int i, const char *ext,
			   char *buf, size_t len)
{
	snprintf(buf, len, "%s/node%d.%s", c->dir, i, ext);
}

static inline int cl_write_configs(struct cluster *c, const char *memory)
{
	char path[512];

	for (int i = 0; i < c->n; i++) {
		const char *tr = c->node_transport[i] ? c->node_transport[i]
						      : c->transport;
		const char *key = c->node_key[i] ? c->node_key[i]
						 : c->key_path;
		FILE *f;

		cl_path(c, i, "cfg", path, sizeof(path));
		f = fopen(path, "w");
		if (!f)
			return -errno;
		char listen[160], dir[320];

		if (c->addr[i][0])
			snprintf(listen, sizeof(listen), "%s", c->addr[i]);
		else
			snprintf(listen, sizeof(listen), "%s:%d", c->host[i],
				 c->coord[0] ? 0 : c->port[i]);
		if (c->tdir[0])
			snprintf(dir, sizeof(dir), "%s", c->tdir);
		else
			snprintf(dir, sizeof(dir), "%s/plugins", cl_build());
		fprintf(f,
			"node = { id = %d; };\n"
			"cluster = { name = \"test\"; nodes = %d; memory = \"%s\"; startup_timeout_ms = 20000; %s };\n"
			"transports = { order = [ \"%s\" ]; dir = \"%s\";\n"
			"  %s = { listen = \"%s\"; %s }; };\n"
			"%s",
			i, c->n, memory, c->cluster_keys, tr, dir, tr, listen,
			c->tr_keys,
			c->coord[0] ? "coordinator = { " : "peers = (");
		for (int j = 0, k = 0; j < c->n && !c->coord[0]; j++) {
			if (j == i)
				continue;
			/* Same wire format: a peer's endpoint is reachable
			 * by this node's transport whatever it runs. */
			if (c->addr[j][0])
				fprintf(f, "%s\n  { id = %d; %s = \"%s\"; }",
					k++ ? "," : "", j, tr, c->addr[j]);
			else
				fprintf(f, "%s\n  { id = %d; %s = \"%s:%d\"; }",
					k++ ? "," : "", j, tr, c->host[j],
					c->port[j]);
		}
		if (c->coord[0])
			fprintf(f, "%s };", c->coord);
		fprintf(f, "\n%s\npager = { threads = 2; %s };\n%s\n",
			c->coord[0] ? "" : ");", c->pager, c->extra);
		if (key[0])
			fprintf(f, "security = { key_file = \"%s\"; };\n", key);
		fclose(f);
	}
	return 0;
}

/* Start node i: argv[0] is the program; "{cfg}" in argv is replaced. */
static inline int cl_spawn(struct cluster *c, int i, char *const argv[])
{
	char cfg[512], out[512];
	char *av[32];
	int k = 0, fd;
	pid_t pid;

	cl_path(c, i, "cfg", cfg, sizeof(cfg));
	cl_path(c, i, "log", out, sizeof(out));
	if (c->netns[i][0]) {
		av[k++] = (char *)"ip";
		av[k++] = (char *)"netns";
		av[k++] = (char *)"exec";
		av[k++] = c->netns[i];
	}
	for (int j = 0; argv[j] && k < 31; j++)
		av[k++] = strcmp(argv[j], "{cfg}") ? argv[j] : cfg;
	av[k] = NULL;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(av[0], av);
		fprintf(stderr, "exec %s: %s\n", av[0], strerror(errno));
		_exit(127);
	}
	c->pid[i] = pid;
	c->status[i] = -1;
	return 0;
}

static inline void cl_block_sigchld(void)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGCHLD);
	sigprocmask(SIG_BLOCK, &s, NULL);
}

/* Wait until every started node exited or timeout_ms passed; then kill
 * the rest. Returns how many were still running at the deadline. */
/* Collect the exit of every node in [from, to) that has ended; how many
 * still run. */
static inline int cl_reap(struct cluster *c, int from, int to)
{
	int running = 0, st;

	for (int i = from; i < to; i++) {
		if (c->pid[i] <= 0)
			continue;
		if (waitpid(c->pid[i], &st, WNOHANG) == c->pid[i]) {
			c->status[i] = WIFEXITED(st) ? WEXITSTATUS(st)
					: 128 + WTERMSIG(st);
			c->pid[i] = -1;
		} else {
			running++;
		}
	}
	return running;
}

/* The last line of node i's log holding `what`, from `what` on, into
 * buf; false if there is none. */
static inline bool cl_log_last(const struct cluster *c, int i,
			       const char *what, char *buf, size_t len)
{
	char path[512], line[1024];
	bool found = false;
	FILE *f;

	cl_path(c, i, "log", path, sizeof(path));
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, what);

		if (p) {
			snprintf(buf, len, "%s", p);
			found = true;
		}
	}
	fclose(f);
	return found;
}

static inline int cl_wait(struct cluster *c, int timeout_ms)
{
	struct timespec end, now, left;
	sigset_t s;
	int running, st, late = 0;

	sigemptyset(&s);
	sigaddset(&s, SIGCHLD);
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += timeout_ms / 1000;
	end.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	for (;;) {
		running = cl_reap(c, 0, c->n);
		if (!running)
			return late;
		clock_gettime(CLOCK_MONOTONIC, &now);
		left.tv_sec = end.tv_sec - now.tv_sec;
		left.tv_nsec = end.tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0) {
			left.tv_sec--;
			left.tv_nsec += 1000000000L;
		}
		if (left.tv_sec < 0)
			break;
		/* SIGCHLD is blocked: wait for the next child exit. */
		sigtimedwait(&s, NULL, &left);
	}
	for (int i = 0; i < c->n; i++) {
		if (c->pid[i] <= 0)
			continue;
		late++;
		kill(c->pid[i], SIGKILL);
		waitpid(c->pid[i], &st, 0);
		c->status[i] = 128 + SIGKILL;
		c->pid[i] = -1;
	}
	return late;
}

/* Print node i's log (on failure, so the reason is in the test output). */
static inline void cl_dump(const struct cluster *c, int i, const char *grep)
{
	char path[512], line[1024];
	FILE *f;

	cl_path(c, i, "log", path, sizeof(path));
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (!grep || strstr(line, grep))
			printf("    [node %d] %s", i, line);
	fclose(f);
}

/* Lines of node i's log containing what, or -1 if there is no log. */
static inline int cl_log_count(const struct cluster *c, int i,
			       const char *what)
{
	char path[512], line[1024];
	int n = 0;
	FILE *f;

	cl_path(c, i, "log", path, sizeof(path));
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, what) != NULL;
	fclose(f);
	return n;
}

/* Wait (bounded) until node i's log has a line containing what: the log
 * is a file another process appends to, so it is polled. */
static inline bool cl_log_has(const struct cluster *c, int i,
			      const char *what, int timeout_ms)
{
	struct timespec now;
	char path[512], line[2048];
	long long end;

	clock_gettime(CLOCK_MONOTONIC, &now);
	end = now.tv_sec * 1000LL + now.tv_nsec / 1000000 + timeout_ms;
	cl_path(c, i, "log", path, sizeof(path));
	for (;;) {
		FILE *f = fopen(path, "r");
		bool found = false;

		if (f) {
			while (!found && fgets(line, sizeof(line), f))
				found = strstr(line, what) != NULL;
			fclose(f);
		}
		if (found)
			return true;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec * 1000LL + now.tv_nsec / 1000000 >= end)
			return false;
		poll(NULL, 0, 20);
	}
}

static inline int cl_sh(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static inline int cl_sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	r = system(cmd);
	if (r)
		printf("  command failed (%d): %s\n", r, cmd);
	return r;
}

/*
 * Each node in its own network namespace HUB-nI, address 10.213.7.(10+I)
 * on a veth whose peer is in a bridge in namespace HUB (created by the
 * test; the addresses exist only inside these namespaces). hub: at most
 * 16 characters, unique to the test process.
 */
static inline int cl_netns_up(struct cluster *c, const char *hub)
{
	snprintf(c->hub, sizeof(c->hub), "%s", hub);
	if (cl_sh("ip netns add %s && ip -n %s link add br0 type bridge && "
		  "ip -n %s link set br0 up", hub, hub, hub))
		return -1;
	for (int i = 0; i < c->n; i++) {
		snprintf(c->netns[i], sizeof(c->netns[i]), "%s-n%d", hub, i);
		snprintf(c->host[i], sizeof(c->host[i]), "10.213.7.%d",
			 10 + i);
		c->port[i] = 7701;
		if (cl_sh("ip netns add %s && "
			  "ip -n %s link add eth0 type veth peer name v%d netns %s && "
			  "ip -n %s link set v%d master br0 up && "
			  "ip -n %s addr add %s/24 dev eth0 && "
			  "ip -n %s link set eth0 up && ip -n %s link set lo up",
			  c->netns[i], c->netns[i], i, hub, hub, i,
			  c->netns[i], c->host[i], c->netns[i], c->netns[i]))
			return -1;
	}
	return 0;
}

static inline void cl_netns_down(struct cluster *c)
{
	if (!c->hub[0])
		return;
	for (int i = 0; i < c->n; i++)
		if (c->netns[i][0])
			cl_sh("ip netns del %s 2>/dev/null || true",
			      c->netns[i]);
	cl_sh("ip netns del %s 2>/dev/null || true", c->hub);
	c->hub[0] = '\0';
}

static inline void cl_cleanup(struct cluster *c)
{
	char cmd[600];

	cl_wait(c, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
	if (system(cmd))
		fprintf(stderr, "cleanup: %s failed\n", cmd);
}

#endif
