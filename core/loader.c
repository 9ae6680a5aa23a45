// SPDX-License-Identifier: MIT
/* Transport plugin loader: dlopen each configured transport, check its ops
 * table against the ABI, probe it, and lend it the host-services table. */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "cli.h"
#include "loader.h"
#include "plugin_dir.h"
#include "auth.h"
#include "log.h"

/* Decision appended to a rejection when another transport follows. */
#define NEXT_MSG "trying next transport"

/* --- host services lent to a plugin (ctx is its struct pm_plugin) --- */

static void host_vlog(void *ctx, int level, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void host_vlog(void *ctx, int level, const char *fmt, va_list ap)
{
	const struct pm_plugin *p = ctx;
	const struct pm_logger *old;
	char msg[900];

	/* A plugin's own threads log as the node that loaded it. */
	old = pm_log_use(p->log ? p->log : pm_log_current());
	if (pm_log_on(level)) {
		vsnprintf(msg, sizeof(msg), fmt, ap);
		pm_log(level, "transport %s: %s", p->name, msg);
	}
	pm_log_use(old);
}

static void host_log(void *ctx, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void host_log(void *ctx, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	host_vlog(ctx, level, fmt, ap);
	va_end(ap);
}

/* Remember that the plugin asked for key (see loader_check_keys). */
static void asked(struct pm_plugin *p, const char *key)
{
	int i;

	pthread_mutex_lock(&p->asked_lock);
	for (i = 0; i < p->n_asked; i++)
		if (!strcmp(p->asked[i], key))
			break;
	if (i == p->n_asked && !p->asked_full) {
		if (p->n_asked == (int)(sizeof(p->asked) /
					sizeof(p->asked[0])) ||
		    strlen(key) >= sizeof(p->asked[0]))
			p->asked_full = true;
		else
			snprintf(p->asked[p->n_asked++], sizeof(p->asked[0]),
				 "%s", key);
	}
	pthread_mutex_unlock(&p->asked_lock);
}

static int host_cfg_string(void *ctx, const char *key, const char **out)
{
	struct pm_plugin *p = ctx;
	int i;

	if (!key || !out)
		return -EINVAL;
	asked(p, key);
	for (i = 0; i < p->n_over; i++) {
		if (!strcmp(p->over[i].key, key)) {
			*out = p->over[i].val;
			return 0;
		}
	}
	if (!p->cfg)
		return -ENOENT;
	return cfg_transport_string(p->cfg, p->name, key, out);
}

static int host_cfg_int(void *ctx, const char *key, int64_t *out)
{
	struct pm_plugin *p = ctx;

	if (!key || !out)
		return -EINVAL;
	asked(p, key);
	if (!p->cfg)
		return -ENOENT;
	return cfg_transport_int(p->cfg, p->name, key, out);
}

int loader_set_string(struct pm_plugin *p, const char *key, const char *val)
{
	int i;

	if (strlen(key) >= sizeof(p->over[0].key) ||
	    strlen(val) >= sizeof(p->over[0].val))
		return -ENOSPC;
	for (i = 0; i < p->n_over; i++)
		if (!strcmp(p->over[i].key, key))
			break;
	if (i == p->n_over) {
		if (p->n_over == (int)(sizeof(p->over) / sizeof(p->over[0])))
			return -ENOSPC;
		p->n_over++;
	}
	snprintf(p->over[i].key, sizeof(p->over[i].key), "%s", key);
	snprintf(p->over[i].val, sizeof(p->over[i].val), "%s", val);
	return 0;
}

/* --- checks ---------------------------------------------------------- */

/* The ops of ABI 1.0, all mandatory, by name for the rejection message. */
#define OP(f) { #f, offsetof(struct pm_transport_ops, f) }
static const struct {
	const char *name;
	size_t off;
} mandatory_ops[] = {
	OP(probe), OP(init), OP(fini), OP(listen), OP(endpoint),
	OP(connect), OP(disconnect), OP(call), OP(reply), OP(drop),
};
#undef OP

static void set_why(struct pm_plugin *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_why(struct pm_plugin *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->why, sizeof(p->why), fmt, ap);
	va_end(ap);
}

/*
 * dlerror() repeats the file name ("PATH: invalid ELF header"); the log
 * line names the file already, so keep only the reason.
 */
static const char *dl_reason(const char *path, const char *e)
{
	size_t n = strlen(path);

	if (!e)
		return "unknown dlopen error";
	if (!strncmp(e, path, n) && e[n] == ':' && e[n + 1] == ' ')
		return e + n + 2;
	return e;
}

/* --- the file, before dlopen ------------------------------------------ */

/*
 * What this process can load: dlopen maps a plugin's segments straight
 * from the file, so one cut short (a copy that ran out of disk, an
 * interrupted install) is not an error but a SIGBUS the first time the
 * loader touches a page past the end. A file of another machine or class
 * is refused by dlopen too, but only with a terse message.
 */
#if defined(__x86_64__)
#define PM_ELF_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define PM_ELF_MACHINE EM_AARCH64
#elif defined(__i386__)
#define PM_ELF_MACHINE EM_386
#elif defined(__arm__)
#define PM_ELF_MACHINE EM_ARM
#elif defined(__riscv)
#define PM_ELF_MACHINE EM_RISCV
#elif defined(__powerpc__)
#define PM_ELF_MACHINE (__SIZEOF_POINTER__ == 8 ? EM_PPC64 : EM_PPC)
#elif defined(__s390__)
#define PM_ELF_MACHINE EM_S390
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define PM_ELF_DATA ELFDATA2LSB
#else
#define PM_ELF_DATA ELFDATA2MSB
#endif

#define PM_ELF_CLASS (__SIZEOF_POINTER__ == 8 ? ELFCLASS64 : ELFCLASS32)

/* More than any shared object has: bounds the reads of a corrupt file. */
#define PM_ELF_MAX_PHDRS 4096

#ifdef PM_ELF_MACHINE
static const char *elf_machine_name(unsigned int m)
{
	switch (m) {
	case EM_386: return "x86";
	case EM_ARM: return "arm";
	case EM_X86_64: return "x86-64";
	case EM_AARCH64: return "aarch64";
	case EM_RISCV: return "riscv";
	case EM_PPC: return "ppc";
	case EM_PPC64: return "ppc64";
	case EM_S390: return "s390";
	default: return "unknown";
	}
}
#endif

/* Does [off, off + n * entsize) lie within size bytes? Overflow-safe. */
static bool elf_fits(uint64_t off, uint64_t n, uint64_t entsize,
		     uint64_t size)
{
	if (off > size)
		return false;
	if (entsize && n > (size - off) / entsize)
		return false;
	return true;
}

/* pread exactly len bytes at off: 0, or -EIO when the file is shorter. */
static int pread_all(int fd, void *buf, size_t len, off_t off)
{
	char *b = buf;
	ssize_t n;

	while (len) {
		n = pread(fd, b, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		b += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Read the first section header (extended counts of huge files live in
 * it: e_phnum == PN_XNUM, e_shnum == 0). 0 or -errno with p->why.
 */
static int elf_shdr0(struct pm_plugin *p, int fd, const ElfW(Ehdr) *eh,
		     uint64_t size, ElfW(Shdr) *sh)
{
	int r;

	if (!eh->e_shoff || eh->e_shentsize != sizeof(*sh) ||
	    !elf_fits(eh->e_shoff, 1, sizeof(*sh), size)) {
		set_why(p, "rejected: truncated or corrupt: extended ELF header counts without a readable section header 0");
		return -ENOEXEC;
	}
	r = pread_all(fd, sh, sizeof(*sh), (off_t)eh->e_shoff);
	if (r) {
		set_why(p, "rejected: cannot read section header 0: %s",
			strerror(-r));
		return r == -EIO ? -ENOEXEC : r;
	}
	return 0;
}

/*
 * The ELF header of fd (size bytes), its program and section header
 * tables and the file extent of every segment must make sense for this
 * process before dlopen may map it. 0 or -errno with p->why.
 */
static int check_elf(struct pm_plugin *p, int fd, uint64_t size)
{
	ElfW(Ehdr) eh;
	ElfW(Phdr) ph;
	ElfW(Shdr) sh0;
	uint64_t phnum, shnum, i;
	ssize_t n;
	int r;

	do {
		n = pread(fd, &eh, sizeof(eh), 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		r = -errno;
		set_why(p, "rejected: cannot read: %s", strerror(-r));
		return r;
	}
	if ((size_t)n < SELFMAG || memcmp(eh.e_ident, ELFMAG, SELFMAG)) {
		set_why(p, "rejected: not an ELF file (no ELF magic in its first bytes)");
		return -ENOEXEC;
	}
	if ((size_t)n < sizeof(eh)) {
		set_why(p, "rejected: truncated: %zd bytes, shorter than an ELF header (%zu)",
			n, sizeof(eh));
		return -ENOEXEC;
	}
	if (eh.e_ident[EI_CLASS] != PM_ELF_CLASS) {
		set_why(p, "rejected: ELF class %u (%s), this process is %s",
			eh.e_ident[EI_CLASS],
			eh.e_ident[EI_CLASS] == ELFCLASS32 ? "32-bit" :
			eh.e_ident[EI_CLASS] == ELFCLASS64 ? "64-bit" :
			"invalid", PM_ELF_CLASS == ELFCLASS64 ? "64-bit" :
			"32-bit");
		return -ENOEXEC;
	}
	if (eh.e_ident[EI_DATA] != PM_ELF_DATA) {
		set_why(p, "rejected: ELF byte order %u, this machine is %s-endian",
			eh.e_ident[EI_DATA],
			PM_ELF_DATA == ELFDATA2LSB ? "little" : "big");
		return -ENOEXEC;
	}
	if (eh.e_ident[EI_VERSION] != EV_CURRENT ||
	    eh.e_version != EV_CURRENT) {
		set_why(p, "rejected: ELF version %u, not %u",
			eh.e_ident[EI_VERSION], EV_CURRENT);
		return -ENOEXEC;
	}
#ifdef PM_ELF_MACHINE
	if (eh.e_machine != PM_ELF_MACHINE) {
		set_why(p, "rejected: built for another machine: ELF e_machine %u (%s), this machine is %u (%s)",
			eh.e_machine, elf_machine_name(eh.e_machine),
			PM_ELF_MACHINE, elf_machine_name(PM_ELF_MACHINE));
		return -ENOEXEC;
	}
#endif
	if (eh.e_type != ET_DYN) {
		set_why(p, "rejected: ELF type %u is not a shared object (ET_DYN)",
			eh.e_type);
		return -ENOEXEC;
	}
	if (eh.e_ehsize < sizeof(eh)) {
		set_why(p, "rejected: corrupt ELF header: e_ehsize %u < %zu",
			eh.e_ehsize, sizeof(eh));
		return -ENOEXEC;
	}

	phnum = eh.e_phnum;
	shnum = eh.e_shnum;
	if (phnum == PN_XNUM || (eh.e_shoff && !shnum)) {
		r = elf_shdr0(p, fd, &eh, size, &sh0);
		if (r)
			return r;
		if (phnum == PN_XNUM)
			phnum = sh0.sh_info;
		if (!shnum)
			shnum = sh0.sh_size;
	}
	if (!phnum || phnum > PM_ELF_MAX_PHDRS ||
	    eh.e_phentsize != sizeof(ph)) {
		set_why(p, "rejected: corrupt ELF header: %llu program headers of %u bytes (a shared object has them, of %zu bytes)",
			(unsigned long long)phnum, eh.e_phentsize, sizeof(ph));
		return -ENOEXEC;
	}
	if (!elf_fits(eh.e_phoff, phnum, sizeof(ph), size)) {
		set_why(p, "rejected: truncated: the program header table (%llu entries at byte %llu) runs past the end of the file (%llu bytes)",
			(unsigned long long)phnum,
			(unsigned long long)eh.e_phoff,
			(unsigned long long)size);
		return -ENOEXEC;
	}
	if (eh.e_shoff) {
		if (eh.e_shentsize != sizeof(sh0)) {
			set_why(p, "rejected: corrupt ELF header: section headers of %u bytes, not %zu",
				eh.e_shentsize, sizeof(sh0));
			return -ENOEXEC;
		}
		if (!elf_fits(eh.e_shoff, shnum, sizeof(sh0), size)) {
			set_why(p, "rejected: truncated: the section header table (%llu entries at byte %llu) runs past the end of the file (%llu bytes)",
				(unsigned long long)shnum,
				(unsigned long long)eh.e_shoff,
				(unsigned long long)size);
			return -ENOEXEC;
		}
	}
	/* What dlopen maps: each segment's bytes must be in the file. */
	for (i = 0; i < phnum; i++) {
		r = pread_all(fd, &ph, sizeof(ph),
			      (off_t)(eh.e_phoff + i * sizeof(ph)));
		if (r) {
			set_why(p, "rejected: cannot read program header %llu: %s",
				(unsigned long long)i, strerror(-r));
			return r == -EIO ? -ENOEXEC : r;
		}
		if (!elf_fits(ph.p_offset, 1, ph.p_filesz, size)) {
			set_why(p, "rejected: truncated: segment %llu (type 0x%x, %llu bytes at byte %llu) runs past the end of the file (%llu bytes)",
				(unsigned long long)i, ph.p_type,
				(unsigned long long)ph.p_filesz,
				(unsigned long long)ph.p_offset,
				(unsigned long long)size);
			return -ENOEXEC;
		}
	}
	return 0;
}

/*
 * Is the file at p->path something dlopen may be handed? A regular,
 * readable file holding a sane ELF shared object of this machine. Read
 * with pread, never mapped: mapping it is what crashes on a short file.
 * 0 or -errno with p->why.
 */
static int check_file(struct pm_plugin *p)
{
	struct stat st;
	int fd, r;

	if (stat(p->path, &st)) {
		int e = errno;

		if (e == ENOENT || e == ENOTDIR) {
			set_why(p, "not found");
			return -ENOENT;
		}
		set_why(p, "cannot access: %s", strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		set_why(p, "rejected: not a regular file");
		return -EINVAL;
	}
	/* O_NONBLOCK: should it have become a FIFO since stat, open must
	 * not wait for a writer. */
	fd = open(p->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		set_why(p, "rejected: cannot read: %s", strerror(-r));
		return r;
	}
	if (fstat(fd, &st)) {
		r = -errno;
		set_why(p, "rejected: cannot read: %s", strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		set_why(p, "rejected: not a regular file");
		r = -EINVAL;
		goto out;
	}
	r = check_elf(p, fd, (uint64_t)st.st_size);
out:
	close(fd);
	return r;
}

/* Checks in the order the ABI promises things; 0 or -errno with p->why. */
static int check_plugin(struct pm_plugin *p)
{
	const struct pm_transport_ops *ops;
	pm_transport_entry_fn entry;
	size_t i;
	int major, r;

	r = check_file(p);
	if (r)
		return r;

	dlerror();
	p->dl = dlopen(p->path, RTLD_NOW | RTLD_LOCAL);
	if (!p->dl) {
		set_why(p, "rejected: cannot load: %s",
			dl_reason(p->path, dlerror()));
		return -ENOEXEC;
	}

	entry = (pm_transport_entry_fn)dlsym(p->dl, PM_TRANSPORT_ENTRY_NAME);
	if (!entry) {
		/* A plugin of another major exports pagemesh_transport_vN. */
		for (major = 0; major < 10; major++) {
			char sym[32];

			snprintf(sym, sizeof(sym), "pagemesh_transport_v%d",
				 major);
			if (major != PM_TRANSPORT_ABI_MAJOR &&
			    dlsym(p->dl, sym)) {
				set_why(p, "rejected: built for ABI major %d (exports %s), core speaks %d",
					major, sym, PM_TRANSPORT_ABI_MAJOR);
				return -EPROTO;
			}
		}
		set_why(p, "rejected: no entry symbol %s",
			PM_TRANSPORT_ENTRY_NAME);
		return -ENOEXEC;
	}

	ops = entry();
	if (!ops) {
		set_why(p, "rejected: %s() returned no ops table",
			PM_TRANSPORT_ENTRY_NAME);
		return -EINVAL;
	}
	/* size and the version fields keep their place in every major. */
	if (ops->abi_major != PM_TRANSPORT_ABI_MAJOR) {
		set_why(p, "rejected: ABI major %u, core speaks %d",
			ops->abi_major, PM_TRANSPORT_ABI_MAJOR);
		return -EPROTO;
	}
	if (ops->size < PM_OPS_MIN_SIZE) {
		set_why(p, "rejected: ops table of %u bytes, ABI %d.0 needs at least %zu",
			ops->size, PM_TRANSPORT_ABI_MAJOR, PM_OPS_MIN_SIZE);
		return -EINVAL;
	}
	for (i = 0; i < sizeof(mandatory_ops) / sizeof(mandatory_ops[0]);
	     i++) {
		void (*fn)(void);

		/* every op is a function pointer of the same size */
		memcpy(&fn, (const char *)ops + mandatory_ops[i].off,
		       sizeof(fn));
		if (!fn) {
			set_why(p, "rejected: mandatory op '%s' is NULL",
				mandatory_ops[i].name);
			return -EINVAL;
		}
	}
	if (!ops->name || !ops->name[0]) {
		set_why(p, "rejected: the ops table has an empty name");
		return -EINVAL;
	}
	p->ops = ops;
	return 0;
}

static int run_probe(struct pm_plugin *p)
{
	char why[sizeof(p->why)];
	int r;

	memset(why, 0, sizeof(why));
	r = p->ops->probe(&p->host, why, sizeof(why));
	why[sizeof(why) - 1] = '\0';
	if (r > 0) {
		set_why(p, "probe failed: probe returned %d, not 0 or -errno",
			r);
		return -EINVAL;
	}
	if (r < 0) {
		set_why(p, "probe failed: %s", why[0] ? why : strerror(-r));
		return r;
	}
	/* A usable probe may say what it found (device, port state). */
	snprintf(p->why, sizeof(p->why), "%s", why);
	return 0;
}

static int open_one(struct pm_plugin *p, const char *path, const char *name,
		    const struct cfg *cfg, int node_id, const char *next)
{
	int r;

	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->asked_lock, NULL);
	if (!name || !name[0] || strlen(name) >= sizeof(p->name)) {
		set_why(p, "rejected: bad transport name");
		pm_warn("transport: %s: %s; %s", path, p->why, next);
		p->err = -EINVAL;
		return p->err;
	}
	snprintf(p->name, sizeof(p->name), "%s", name);
	/* Without a '/', dlopen would search the library path instead. */
	if ((size_t)snprintf(p->path, sizeof(p->path), "%s%s",
			     strchr(path, '/') ? "" : "./", path) >=
	    sizeof(p->path)) {
		set_why(p, "rejected: path too long");
		r = -ENAMETOOLONG;
		goto fail;
	}
	p->cfg = cfg;
	p->host.size = sizeof(p->host);
	p->host.abi_major = PM_TRANSPORT_ABI_MAJOR;
	p->host.abi_minor = PM_TRANSPORT_ABI_MINOR;
	p->host.ctx = p;
	p->host.name = p->name;
	p->host.page_size = PM_PAGE_SIZE;
	p->host.node_id = node_id < 0 ? 0 : (uint32_t)node_id;
	p->host.log = host_log;
	p->host.vlog = host_vlog;
	p->host.cfg_string = host_cfg_string;
	p->host.cfg_int = host_cfg_int;

	r = check_plugin(p);
	if (r)
		goto fail_close;
	r = run_probe(p);
	if (r)
		goto fail;	/* keep ops: --list-transports shows them */
	p->usable = true;
	pm_info("transport %s: %s: loaded (%s %s, ABI %u.%u)%s%s", p->name,
		p->path, p->ops->name, p->ops->version ? p->ops->version : "?",
		p->ops->abi_major, p->ops->abi_minor, p->why[0] ? ": " : "",
		p->why);
	return 0;

fail_close:
	p->ops = NULL;
	if (p->dl)
		dlclose(p->dl);
	p->dl = NULL;
fail:
	p->err = r;
	pm_warn("transport %s: %s: %s; %s", p->name, p->path, p->why, next);
	return r;
}

int loader_open_path(struct pm_plugin *p, const char *path, const char *name,
		     const struct cfg *cfg, int node_id)
{
	return open_one(p, path, name, cfg, node_id, NEXT_MSG);
}

static int open_in_dir(struct pm_plugin *p, const char *dir,
		       const char *name, const struct cfg *cfg, int node_id,
		       const char *next)
{
	char path[PATH_MAX];
	int n;

	n = snprintf(path, sizeof(path), "%s/%s.so", dir, name);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		memset(p, 0, sizeof(*p));
		pthread_mutex_init(&p->asked_lock, NULL);
		snprintf(p->name, sizeof(p->name), "%s", name);
		set_why(p, "rejected: path too long");
		pm_warn("transport %s: %s/...: %s; %s", name, dir, p->why,
			next);
		p->err = -ENAMETOOLONG;
		return p->err;
	}
	return open_one(p, path, name, cfg, node_id, next);
}

int loader_open(struct pm_plugin *p, const char *dir, const char *name,
		const struct cfg *cfg, int node_id)
{
	return open_in_dir(p, dir, name, cfg, node_id, NEXT_MSG);
}

/* The folder of the built-in transports (plugin_dir.c): transports.dir's
 * default, searched last. */
static const char *builtin_dir(void)
{
	return pm_plugin_dir_default();
}

/*
 * Folder i of the search list of dirs ("A:B:C", then the built-in folder
 * unless listed): 0 and dir set, -ENOENT past the last.
 */
static int dir_at(const char *dirs, int i, char *dir, size_t len)
{
	const char *p = dirs, *e, *b = builtin_dir();
	bool has_builtin = false;
	int k = 0;

	for (;;) {
		size_t n;

		e = strchrnul(p, ':');
		n = (size_t)(e - p);
		if (n) {
			if (n == strlen(b) && !strncmp(p, b, n))
				has_builtin = true;
			if (k++ == i) {
				snprintf(dir, len, "%.*s", (int)n, p);
				return 0;
			}
		}
		if (!*e)
			break;
		p = e + 1;
	}
	if (has_builtin || k != i)
		return -ENOENT;
	snprintf(dir, len, "%s", b);
	return 0;
}

int loader_find(const struct cfg *cfg, const char *name, char *path,
		size_t len)
{
	char dir[PATH_MAX];
	int i;

	path[0] = '\0';
	for (i = 0; !dir_at(cfg->transport_dir, i, dir, sizeof(dir)); i++) {
		char p[PATH_MAX + CFG_NAME_MAX + 8];

		snprintf(p, sizeof(p), "%s/%s.so", dir, name);
		if (!i || !access(p, F_OK))
			snprintf(path, len, "%s", p);
		if (!access(p, F_OK))
			return 0;
	}
	return -ENOENT;
}

int loader_open_all(const struct cfg *cfg, struct pm_plugin *plugins)
{
	char path[PATH_MAX];
	int i, n = 0;

	for (i = 0; i < cfg->n_transports && i < CFG_MAX_TRANSPORTS; i++) {
		const char *next = i + 1 < cfg->n_transports ?
			NEXT_MSG : "no transport left to try";

		/* not found anywhere: the first folder's path says so */
		loader_find(cfg, cfg->transports[i], path, sizeof(path));
		if (!open_one(&plugins[i], path, cfg->transports[i], cfg,
			      cfg->node_id, next))
			n++;
	}
	return n;
}

void loader_close(struct pm_plugin *p)
{
	if (p->ctx && p->ops)
		p->ops->fini(p->ctx);
	p->ctx = NULL;
	if (p->dl)
		dlclose(p->dl);
	pthread_mutex_destroy(&p->asked_lock);
	memset(p, 0, sizeof(*p));
}

int loader_check_keys(struct pm_plugin *p, char *err, size_t errlen)
{
	const char *cand[sizeof(p->asked) / sizeof(p->asked[0])];
	char group[CFG_NAME_MAX + 16], names[32][CFG_NAME_MAX + 80];
	char key[CFG_NAME_MAX + 80], near[128];
	config_setting_t *g;
	int i, k, n, r = 0;

	snprintf(group, sizeof(group), "transports.%s", p->name);
	if (!p->cfg || !p->cfg->loaded || cfg_key_is_group(group))
		return 0;
	g = config_lookup(&p->cfg->lc, group);
	if (!g || !config_setting_is_group(g))
		return 0;
	pthread_mutex_lock(&p->asked_lock);
	n = p->asked_full ? -1 : p->n_asked;
	for (k = 0; k < n; k++) {
		snprintf(names[k], sizeof(names[k]), "%s.%s", group,
			 p->asked[k]);
		cand[k] = names[k];
	}
	for (i = 0; n >= 0 && !r && i < config_setting_length(g); i++) {
		config_setting_t *s = config_setting_get_elem(g, i);

		for (k = 0; k < n; k++)
			if (!strcmp(p->asked[k], config_setting_name(s)))
				break;
		if (k < n)
			continue;
		snprintf(key, sizeof(key), "%s.%s", group,
			 config_setting_name(s));
		if (cfg_key_suggest(key, cand, n, near, sizeof(near)))
			r = cfg_fail(p->cfg, s, err, errlen,
				     "unknown key '%s' (transport %s never looked it up; did you mean '%s'?)",
				     key, p->name, near);
		else
			r = cfg_fail(p->cfg, s, err, errlen,
				     "unknown key '%s' (transport %s never looked it up)",
				     key, p->name);
	}
	pthread_mutex_unlock(&p->asked_lock);
	return r;
}

bool loader_addr_is_local(const struct pm_plugin *p, const char *addr)
{
	const struct pm_transport_ops *ops = p ? p->ops : NULL;
	int r;

	if (ops && PM_OPS_HAS(ops, is_local)) {
		r = ops->is_local(addr);
		if (r == 0 || r == 1)
			return r;
		if (r > 1)
			pm_warn("transport %s: %s: is_local(\"%s\") returned %d, not 0, 1 or -errno: taken as not host-local",
				p->name, p->path, addr, r);
		return false;
	}
	if (ops && (ops->caps & PM_CAP_HOST_LOCAL))
		return true;
	return auth_addr_is_loopback(addr);
}

void loader_caps_str(uint64_t caps, char *buf, size_t len)
{
	static const struct {
		uint64_t bit;
		const char *name;
	} names[] = {
		{ PM_CAP_RELIABLE, "reliable" },
		{ PM_CAP_ZEROCOPY, "zerocopy" },
		{ PM_CAP_RDMA, "rdma" },
		{ PM_CAP_ONESIDED, "onesided" },
		{ PM_CAP_BATCH, "batch" },
		{ PM_CAP_HOST_LOCAL, "host-local" },
	};
	size_t i, used = 0;

	if (!len)
		return;
	buf[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(caps & names[i].bit))
			continue;
		caps &= ~names[i].bit;
		used += snprintf(buf + used, used < len ? len - used : 0,
				 "%s%s", used ? "," : "", names[i].name);
	}
	if (caps)	/* bits this core does not know: show them raw */
		used += snprintf(buf + used, used < len ? len - used : 0,
				 "%s0x%llx", used ? "," : "",
				 (unsigned long long)caps);
	if (!used)
		snprintf(buf, len, "-");
}

void loader_print(const struct pm_plugin *plugins, int n, FILE *out)
{
	bool first_seen = false;
	char caps[128];
	int i;

	for (i = 0; i < n; i++) {
		const struct pm_plugin *p = &plugins[i];
		const struct pm_transport_ops *o = p->ops;
		bool first = p->usable && !first_seen;

		if (first)
			first_seen = true;
		fprintf(out, "%d. %s%s\n", i + 1, p->name,
			first ? "  [first usable: used]" : "");
		fprintf(out, "   file:          %s\n", p->path);
		if (o) {
			loader_caps_str(o->caps, caps, sizeof(caps));
			fprintf(out, "   name:          %s\n", o->name);
			fprintf(out, "   version:       %s\n",
				o->version ? o->version : "?");
			fprintf(out, "   abi:           %u.%u\n", o->abi_major,
				o->abi_minor);
			fprintf(out, "   capabilities:  %s\n", caps);
		}
		if (p->usable)
			fprintf(out, "   probe:         ok%s%s\n",
				p->why[0] ? ": " : "", p->why);
		else
			fprintf(out, "   probe:         %s\n", p->why);
	}
}

/* --- pagemesh --list-transports -c FILE ------------------------------ */

static void list_usage(FILE *out)
{
	fprintf(out,
"usage: pagemesh --list-transports -c FILE\n"
"\n"
"Loads every transport named in the config's transports.order from\n"
"transports.dir (default: PLUGINDIR, see --version), checks it against the\n"
"ABI and probes it, then prints for each: file, name, version, ABI,\n"
"capabilities and the probe result (ok, or why it cannot be used). The\n"
"first usable transport is marked; nodes prefer it.\n"
"\n"
"options:\n"
"  -c, --config FILE   node config file (libconfig)\n"
"  -h, --help          this text\n"
"\n"
"exit codes: 0 at least one transport is usable, 1 none is,\n"
"            2 usage, 78 configuration error\n");
}

int cmd_list_transports(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pm_plugin *plugins;
	const char *path = NULL;
	char err[512];
	struct cfg *c;
	int i, n, opt, rc;

	optind = 0;	/* full getopt re-initialisation (glibc) */
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'h':
			list_usage(stdout);
			return PM_EXIT_OK;
		default:
			list_usage(stderr);
			return PM_EXIT_USAGE;
		}
	}
	if (!path || optind < argc) {
		fprintf(stderr, "pagemesh --list-transports: %s\n",
			!path ? "needs -c FILE" : "unexpected argument");
		list_usage(stderr);
		return PM_EXIT_USAGE;
	}

	c = calloc(1, sizeof(*c));
	plugins = calloc(CFG_MAX_TRANSPORTS, sizeof(*plugins));
	if (!c || !plugins) {
		fprintf(stderr, "pagemesh --list-transports: out of memory\n");
		rc = PM_EXIT_RUNTIME;
		goto out_free;
	}
	if (cfg_load(path, c, err, sizeof(err))) {
		fprintf(stderr, "pagemesh: %s\n", err);
		rc = PM_EXIT_CONFIG;
		goto out_cfg;
	}
	n = loader_open_all(c, plugins);
	printf("transports of %s (from %s, then %s), in order of preference:\n",
	       path, c->transport_dir, builtin_dir());
	loader_print(plugins, c->n_transports, stdout);
	if (n)
		printf("%d of %d transports usable\n", n, c->n_transports);
	else
		printf("no usable transport (0 of %d)\n", c->n_transports);
	fflush(stdout);
	for (i = 0; i < c->n_transports; i++)
		loader_close(&plugins[i]);
	rc = n ? PM_EXIT_OK : PM_EXIT_RUNTIME;
out_cfg:
	cfg_free(c);
out_free:
	free(plugins);
	free(c);
	return rc;
}
