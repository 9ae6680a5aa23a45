// SPDX-License-Identifier: MIT
/* `pagemesh vm`: a small KVM VMM whose guest RAM is the pagemesh region, so
 * a vCPU touching a page homed on another node faults through userfaultfd
 * exactly as a program's thread does. One thread per vCPU, on this node. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include <pagemesh/pagemesh.h>

#include "cfg.h"
#include "cli.h"
#include "log.h"
#include "vmm.h"

#define DEFAULT_MEM (256ull << 20)
#define DEFAULT_CMDLINE \
	"console=ttyS0 reboot=k panic=-1 nokaslr i8042.noaux"
#define KVM_TSS_ADDR 0xfffbd000ull
#define KVM_IDMAP_ADDR 0xfffbc000ull
#define JOIN_TIMEOUT_S 5

struct vm_opts {
	const char *config;
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	int64_t vcpus;
	uint64_t mem;
	bool mem_set;
	bool selftest;
	bool start_barrier;
	int timeout_s;
};

/* Guest RAM: the node's region, or anonymous memory without a node. */
struct vm_mem {
	struct pm_node *node;
	void *base;
	size_t len;
	bool anon;
};

static void kick_handler(int sig)
{
	(void)sig;	/* only there to make KVM_RUN return EINTR */
}

void *vmm_gpa(struct vmm *vm, uint64_t gpa, uint64_t len)
{
	uint64_t low = vm->ram_size < VMM_LOW_RAM_MAX ? vm->ram_size
						      : VMM_LOW_RAM_MAX;
	uint64_t high = vm->ram_size - low, off;

	if (gpa < low)
		return len <= low - gpa ? vm->ram + gpa : NULL;
	if (gpa < VMM_HIGH_RAM_BASE)
		return NULL;
	off = gpa - VMM_HIGH_RAM_BASE;
	if (off >= high || len > high - off)
		return NULL;
	return vm->ram + low + off;
}

/* --- memory source --------------------------------------------------------
 * The one place that decides where guest RAM comes from. */
static int mem_open(struct vm_mem *m, const char *config, uint64_t want,
		    int *code, char *err, size_t errlen)
{
	memset(m, 0, sizeof(*m));
	if (config) {
		m->node = pm_node_start_ex(config, err, errlen, code);
		if (!m->node)
			return -EINVAL;
		m->base = pm_node_region(m->node, &m->len);
		if (want > m->len) {
			snprintf(err, errlen,
				 "%s: guest memory of %llu bytes is larger than the region (%zu)",
				 config, (unsigned long long)want, m->len);
			*code = PM_EXIT_CONFIG;
			pm_node_stop(m->node);
			m->node = NULL;
			return -EINVAL;
		}
		return 0;
	}
	m->base = mmap(NULL, want, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->base == MAP_FAILED) {
		m->base = NULL;
		snprintf(err, errlen, "mmap of %llu bytes of guest RAM: %s",
			 (unsigned long long)want, strerror(errno));
		*code = PM_EXIT_RUNTIME;
		return -ENOMEM;
	}
	m->len = want;
	m->anon = true;
	return 0;
}

static void mem_close(struct vm_mem *m)
{
	if (m->node)
		pm_node_stop(m->node);
	else if (m->anon && m->base)
		munmap(m->base, m->len);
	memset(m, 0, sizeof(*m));
}

/* --- vCPUs ---------------------------------------------------------------- */

static int set_cpuid(struct vmm *vm, struct vmm_vcpu *v)
{
	struct kvm_cpuid2 *c;
	int nent = 64, r;
	uint32_t i;

	for (;;) {
		c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = nent;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			break;
		r = -errno;
		free(c);
		if (r != -E2BIG || nent >= 4096)
			return r;
		nent *= 2;
	}
	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function == 1) {
			/* Initial APIC id = vCPU index, as the MP table
			 * says; and tell Linux it runs on a hypervisor. */
			e->ebx = (e->ebx & 0x00ffffff) | ((uint32_t)v->id << 24);
			e->ecx |= 1u << 31;
		} else if (e->function == 0xb || e->function == 0x1f) {
			e->edx = v->id;
		}
	}
	r = ioctl(v->fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
	free(c);
	return r;
}

int vmm_vcpu_flat32(struct vmm_vcpu *v, uint64_t rip, uint64_t rsi,
		    uint64_t rbx, uint64_t rdx)
{
	struct kvm_segment code = {
		.base = 0, .limit = 0xffffffff, .selector = 0x10,
		.type = 0xb, .present = 1, .dpl = 0, .db = 1, .s = 1,
		.l = 0, .g = 1,
	};
	struct kvm_segment data = code;
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	data.type = 0x3;
	data.selector = 0x18;
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.cr0 = (sregs.cr0 | 1) & ~(1ull << 31);	/* PE, no paging */
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;	/* reserved bit; interrupts off */
	regs.rip = rip;
	regs.rsi = rsi;
	regs.rbx = rbx;
	regs.rdx = rdx;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

static bool vm_ended(struct vmm *vm)
{
	return __atomic_load_n(&vm->end, __ATOMIC_ACQUIRE) != VMM_RUNNING;
}

static void handle_io(struct vmm *vm, struct vmm_vcpu *v)
{
	struct kvm_run *run = v->run;
	uint32_t size = run->io.size, count = run->io.count, i;
	bool wr = run->io.direction == KVM_EXIT_IO_OUT;
	uint64_t off = run->io.data_offset;

	v->io_exits++;
	/* The data lies in the shared run page: check before touching. */
	if (!size || size > 8 || off > v->run_size ||
	    (uint64_t)size * count > v->run_size - off) {
		vmm_end(vm, VMM_END_ERROR, 1,
			"vCPU %d: bad I/O exit (port 0x%x, size %u, count %u)",
			v->id, run->io.port, size, count);
		return;
	}
	for (i = 0; i < count; i++) {
		uint8_t *d = (uint8_t *)run + off + (size_t)i * size;

		if (!vmm_bus_io(vm, &vm->pio, run->io.port, d, size, wr)) {
			if (!wr)
				memset(d, 0xff, size);
			pm_dbg("vm: unclaimed port %s 0x%x/%u", wr ? "out" : "in",
			       run->io.port, size);
		}
	}
}

static void handle_mmio(struct vmm *vm, struct vmm_vcpu *v)
{
	struct kvm_run *run = v->run;
	uint32_t len = run->mmio.len;

	v->mmio_exits++;
	if (!len || len > sizeof(run->mmio.data)) {
		vmm_end(vm, VMM_END_ERROR, 1, "vCPU %d: bad MMIO exit (len %u)",
			v->id, len);
		return;
	}
	if (!vmm_bus_io(vm, &vm->mmio, run->mmio.phys_addr, run->mmio.data,
			len, run->mmio.is_write)) {
		if (!run->mmio.is_write)
			memset(run->mmio.data, 0xff, len);
		pm_dbg("vm: unclaimed MMIO %s 0x%llx/%u",
		       run->mmio.is_write ? "write" : "read",
		       (unsigned long long)run->mmio.phys_addr, len);
	}
}

static void *vcpu_thread(void *arg)
{
	struct vmm_vcpu *v = arg;
	struct vmm *vm = v->vm;
	struct kvm_regs regs;
	sigset_t kick;

	sigemptyset(&kick);
	sigaddset(&kick, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);

	while (!vm_ended(vm)) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			vmm_end(vm, VMM_END_ERROR, 1, "vCPU %d: KVM_RUN: %s",
				v->id, strerror(errno));
			break;
		}
		switch (v->run->exit_reason) {
		case KVM_EXIT_IO:
			handle_io(vm, v);
			break;
		case KVM_EXIT_MMIO:
			handle_mmio(vm, v);
			break;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_HLT:
			vmm_end(vm, VMM_END_ERROR, 1,
				"vCPU %d halted with nothing to wake it", v->id);
			break;
		case KVM_EXIT_SHUTDOWN:
			memset(&regs, 0, sizeof(regs));
			ioctl(v->fd, KVM_GET_REGS, &regs);
			vmm_end(vm, VMM_END_ERROR, 1,
				"vCPU %d: guest triple fault (shutdown) at rip 0x%llx",
				v->id, (unsigned long long)regs.rip);
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			vmm_end(vm, VMM_END_RESET, 0,
				"guest system event %u",
				v->run->system_event.type);
			break;
		case KVM_EXIT_FAIL_ENTRY:
			vmm_end(vm, VMM_END_ERROR, 1,
				"vCPU %d: entry failed, reason 0x%llx", v->id,
				(unsigned long long)v->run->fail_entry
					.hardware_entry_failure_reason);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			vmm_end(vm, VMM_END_ERROR, 1,
				"vCPU %d: KVM internal error %u", v->id,
				v->run->internal.suberror);
			break;
		default:
			vmm_end(vm, VMM_END_ERROR, 1,
				"vCPU %d: unexpected exit reason %u", v->id,
				v->run->exit_reason);
			break;
		}
	}
	return NULL;
}

/* --- the VM ----------------------------------------------------------------- */

static int vm_create(struct vmm *vm, int kvm_fd, struct vm_mem *m,
		     uint64_t ram_size, int nvcpus, char *err, size_t errlen)
{
	struct kvm_pit_config pit = { .flags = 0 };
	uint64_t low = ram_size < VMM_LOW_RAM_MAX ? ram_size : VMM_LOW_RAM_MAX;
	struct kvm_userspace_memory_region slot;
	int i, run_size, r;

	vm->kvm_fd = kvm_fd;
	vm->ram = m->base;
	vm->ram_size = ram_size;
	vm->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(-r));
		return r;
	}
	/* TSS and identity map only matter to Intel VMX; both sit just
	 * below 4 GiB, away from RAM. */
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR,
		  &(uint64_t){ KVM_IDMAP_ADDR }) < 0 ||
	    ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0 ||
	    ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		r = -errno;
		snprintf(err, errlen, "setting up the VM (irqchip, PIT): %s",
			 strerror(-r));
		return r;
	}
	slot = (struct kvm_userspace_memory_region){
		.slot = 0, .guest_phys_addr = 0, .memory_size = low,
		.userspace_addr = (uintptr_t)m->base,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		goto slot_fail;
	if (ram_size > low) {
		slot = (struct kvm_userspace_memory_region){
			.slot = 1, .guest_phys_addr = VMM_HIGH_RAM_BASE,
			.memory_size = ram_size - low,
			.userspace_addr = (uintptr_t)m->base + low,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			goto slot_fail;
	}
	run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < (int)sizeof(struct kvm_run)) {
		snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE: %s",
			 run_size < 0 ? strerror(errno) : "too small");
		return -EINVAL;
	}
	for (i = 0; i < nvcpus; i++) {
		struct vmm_vcpu *v = &vm->vcpu[i];

		v->vm = vm;
		v->id = i;
		v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, i);
		if (v->fd < 0) {
			r = -errno;
			snprintf(err, errlen, "KVM_CREATE_VCPU %d: %s", i,
				 strerror(-r));
			return r;
		}
		vm->nvcpus = i + 1;	/* what vm_destroy must close */
		v->run_size = run_size;
		v->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE,
			      MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED) {
			r = -errno;
			v->run = NULL;
			snprintf(err, errlen, "mmap of vCPU %d state: %s", i,
				 strerror(-r));
			return r;
		}
		r = set_cpuid(vm, v);
		if (r) {
			snprintf(err, errlen, "KVM_SET_CPUID2 on vCPU %d: %s",
				 i, strerror(-r));
			return r;
		}
	}
	return 0;

slot_fail:
	r = -errno;
	snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION (%llu bytes at %p): %s",
		 (unsigned long long)slot.memory_size,
		 (void *)(uintptr_t)slot.userspace_addr, strerror(-r));
	return r;
}

static void vm_destroy(struct vmm *vm)
{
	int i;

	for (i = 0; i < vm->nvcpus; i++) {
		if (vm->vcpu[i].run)
			munmap(vm->vcpu[i].run, vm->vcpu[i].run_size);
		if (vm->vcpu[i].fd >= 0)
			close(vm->vcpu[i].fd);
	}
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
}

/*
 * Run the vCPUs until the guest ends, a signal arrives or timeout_s
 * passes (0: no limit). SIGINT/SIGTERM/SIGUSR2 are blocked in every thread
 * and taken here with sigtimedwait; SIGUSR1 kicks a vCPU out of KVM_RUN.
 */
static int vm_run(struct vmm *vm, int timeout_s, char *err, size_t errlen)
{
	struct timespec ts, *tsp = NULL;
	int64_t deadline = 0;
	sigset_t wait_set;
	int i, r = 0, sig;

	sigemptyset(&wait_set);
	sigaddset(&wait_set, SIGINT);
	sigaddset(&wait_set, SIGTERM);
	sigaddset(&wait_set, SIGUSR2);
	if (timeout_s > 0)
		deadline = pm_now_ns() + (int64_t)timeout_s * 1000000000;

	for (i = 0; i < vm->nvcpus; i++) {
		r = pthread_create(&vm->vcpu[i].thread, NULL, vcpu_thread,
				   &vm->vcpu[i]);
		if (r) {
			snprintf(err, errlen, "starting vCPU %d: %s", i,
				 strerror(r));
			vmm_end(vm, VMM_END_ERROR, 1, "could not start vCPU %d",
				i);
			r = -r;
			break;
		}
		vm->vcpu[i].started = true;
	}
	while (!vm_ended(vm)) {
		if (deadline) {
			int64_t left = deadline - pm_now_ns();

			if (left <= 0) {
				vmm_end(vm, VMM_END_STOPPED, 1,
					"stopped after --timeout %d s",
					timeout_s);
				break;
			}
			ts.tv_sec = left / 1000000000;
			ts.tv_nsec = left % 1000000000;
			tsp = &ts;
		}
		sig = sigtimedwait(&wait_set, NULL, tsp);
		if (sig == SIGINT || sig == SIGTERM)
			vmm_end(vm, VMM_END_STOPPED, 1, "stopped by signal %d",
				sig);
	}

	/* Stop every vCPU: immediate_exit covers one about to enter
	 * KVM_RUN, the signal one inside it (waiting on a page too). */
	for (i = 0; i < vm->nvcpus; i++) {
		if (!vm->vcpu[i].started)
			continue;
		vm->vcpu[i].run->immediate_exit = 1;
		pthread_kill(vm->vcpu[i].thread, SIGUSR1);
	}
	for (i = 0; i < vm->nvcpus; i++) {
		struct timespec dl;

		if (!vm->vcpu[i].started)
			continue;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += JOIN_TIMEOUT_S;
		if (pthread_timedjoin_np(vm->vcpu[i].thread, NULL, &dl)) {
			pm_err("vm: vCPU %d did not stop within %d s", i,
			       JOIN_TIMEOUT_S);
			r = r ? r : -ETIMEDOUT;
		}
		vm->vcpu[i].started = false;
	}
	return r;
}

/* --- command line ------------------------------------------------------------ */

static void usage(FILE *out)
{
	fprintf(out,
"usage: pagemesh vm -c FILE [options]\n"
"       pagemesh vm --kernel BZIMAGE [options]     (local memory, no node)\n"
"       pagemesh vm --selftest [-c FILE] [options]\n"
"\n"
"Boots a KVM guest whose RAM is the pagemesh region: with -c, this process\n"
"starts a node from FILE (see pagemesh node) and gives the guest its\n"
"region, so guest pages homed on other nodes are fetched over the network\n"
"on first touch. Without -c the guest gets local anonymous memory.\n"
"Guest RAM starts at guest-physical 0 and continues at 4 GiB above 3 GiB.\n"
"\n"
"The config file's vm group (flags override it):\n"
"  vm = { kernel = \"bzImage\"; initrd = \"initrd.img\";\n"
"         cmdline = \"console=ttyS0 reboot=k\"; vcpus = 2;\n"
"         memory = \"512M\"; };      # memory: at most cluster.memory\n"
"\n"
"options:\n"
"  -c, --config FILE   node config with a vm group\n"
"  --kernel FILE       Linux bzImage (boot protocol 2.10 or later)\n"
"  --initrd FILE       initramfs, placed at the top of low RAM\n"
"  --cmdline STRING    kernel command line (default:\n"
"                      \"" DEFAULT_CMDLINE "\")\n"
"  --vcpus N           vCPUs, 1 to %d (default 1); each is a thread here\n"
"  --mem SIZE          guest RAM (\"512M\"): without -c default 256M; with\n"
"                      -c the first SIZE bytes of the region (default all)\n"
"  --selftest          run the built-in test guest instead of a kernel: it\n"
"                      fills RAM above 1 MiB with a pattern, reads it back\n"
"                      and reports a checksum that is checked here\n"
"  --timeout SECONDS   stop the guest after this long (exit 1)\n"
"  --start-barrier     with -c: once the node is up, wait at a cluster\n"
"                      barrier (pm_node_barrier) before loading the guest,\n"
"                      so other nodes can fill the pages they are home for\n"
"                      first (the guest's kernel and initrd land after them)\n"
"  -h, --help          this text\n"
"\n"
"Guest devices: 8250 UART on COM1 (0x3f8, IRQ 4) printing to stdout, an\n"
"in-kernel PIC/IOAPIC/PIT, an MP table for the vCPUs, and two ports that\n"
"end the VM: 0xFE written to port 0x64 (i8042 reset: Linux reboots this\n"
"way with reboot=k, so `reboot -f` in the guest ends it with status 0)\n"
"and a byte written to port 0x501, which becomes this command's exit\n"
"status (from a Linux guest: write it to /dev/port at offset 0x501).\n"
"A Linux power-off (no ACPI here) only halts the CPUs: use reboot.\n"
"On exit a line \"vm: summary key=value...\" on stderr gives the guest's\n"
"status, VM exits and, with a node, its page counters.\n"
"\n"
"exit codes: the guest's status; 1 runtime error (no /dev/kvm, guest\n"
"crash, timeout, failed self-test); 2 usage; 78 configuration error\n"
"(missing kernel, not a bzImage, initrd larger than RAM, vcpus 0).\n",
		VMM_MAX_VCPUS);
}

enum {
	OPT_KERNEL = 256, OPT_INITRD, OPT_CMDLINE, OPT_VCPUS, OPT_MEM,
	OPT_SELFTEST, OPT_TIMEOUT, OPT_START_BARRIER,
};

static int parse_args(int argc, char **argv, struct vm_opts *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "cmdline", required_argument, NULL, OPT_CMDLINE },
		{ "vcpus", required_argument, NULL, OPT_VCPUS },
		{ "mem", required_argument, NULL, OPT_MEM },
		{ "selftest", no_argument, NULL, OPT_SELFTEST },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "start-barrier", no_argument, NULL, OPT_START_BARRIER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long v;
	int c;

	memset(o, 0, sizeof(*o));
	o->vcpus = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->config = optarg; break;
		case OPT_KERNEL: o->kernel = optarg; break;
		case OPT_INITRD: o->initrd = optarg; break;
		case OPT_CMDLINE: o->cmdline = optarg; break;
		case OPT_SELFTEST: o->selftest = true; break;
		case OPT_START_BARRIER: o->start_barrier = true; break;
		case OPT_VCPUS:
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end) {
				fprintf(stderr, "pagemesh vm: --vcpus '%s' is not a number\n",
					optarg);
				return PM_EXIT_USAGE;
			}
			o->vcpus = v;
			break;
		case OPT_MEM:
			if (cfg_parse_size(optarg, &o->mem)) {
				fprintf(stderr, "pagemesh vm: --mem '%s' is not a size (digits with an optional K, M, G)\n",
					optarg);
				return PM_EXIT_USAGE;
			}
			o->mem_set = true;
			break;
		case OPT_TIMEOUT:
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 ||
			    v > 86400) {
				fprintf(stderr, "pagemesh vm: --timeout '%s': expected 1 to 86400 seconds\n",
					optarg);
				return PM_EXIT_USAGE;
			}
			o->timeout_s = v;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			fprintf(stderr, "see pagemesh vm --help\n");
			return PM_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pagemesh vm: unexpected argument '%s' (see pagemesh vm --help)\n",
			argv[optind]);
		return PM_EXIT_USAGE;
	}
	if (o->start_barrier && !o->config) {
		fprintf(stderr, "pagemesh vm: --start-barrier needs -c FILE (a node to wait with)\n");
		return PM_EXIT_USAGE;
	}
	return 0;
}

/* Fill what the flags left open from the config's vm group. */
static int apply_config(struct vm_opts *o, struct cfg *c, char *err,
			size_t errlen)
{
	const char *s;
	uint64_t size;
	int64_t n;
	bool found;
	int r;

	r = cfg_load(o->config, c, err, errlen);
	if (r)
		return r;
	if (!o->kernel) {
		r = cfg_lookup_string(c, "vm.kernel", &s, &found, err, errlen);
		if (r)
			return r;
		if (found)
			o->kernel = s;
	}
	if (!o->initrd) {
		r = cfg_lookup_string(c, "vm.initrd", &s, &found, err, errlen);
		if (r)
			return r;
		if (found)
			o->initrd = s;
	}
	if (!o->cmdline) {
		r = cfg_lookup_string(c, "vm.cmdline", &s, &found, err,
				      errlen);
		if (r)
			return r;
		if (found)
			o->cmdline = s;
	}
	if (o->vcpus < 0) {
		r = cfg_lookup_int(c, "vm.vcpus", &n, &found, err, errlen);
		if (r)
			return r;
		if (found)
			o->vcpus = n;
	}
	if (!o->mem_set) {
		r = cfg_lookup_size(c, "vm.memory", &size, &found, err,
				    errlen);
		if (r)
			return r;
		o->mem = found ? size : c->memory;
		o->mem_set = true;
	}
	if (o->mem > c->memory) {
		snprintf(err, errlen,
			 "%s: guest memory of %llu bytes is larger than cluster.memory (%llu)",
			 o->config, (unsigned long long)o->mem,
			 (unsigned long long)c->memory);
		return -EINVAL;
	}
	return 0;
}

/* Everything that can be checked before a VM exists: bad input exits 78
 * here whether or not this machine has KVM. */
static int check_input(struct vm_opts *o, struct vmm_kernel *k, char *err,
		       size_t errlen)
{
	const char *src = o->config ? o->config : "command line";
	struct stat st = { 0 };
	int r;

	if (o->vcpus < 0)
		o->vcpus = 1;
	if (o->vcpus < 1 || o->vcpus > VMM_MAX_VCPUS) {
		snprintf(err, errlen, "%s: vcpus = %lld: must be 1 to %d", src,
			 (long long)o->vcpus, VMM_MAX_VCPUS);
		return -EINVAL;
	}
	if (!o->mem_set)
		o->mem = DEFAULT_MEM;
	if (o->mem < (2u << 20) || o->mem % PM_PAGE_SIZE) {
		snprintf(err, errlen,
			 "%s: guest memory of %llu bytes: must be at least 2 MiB and a multiple of %u",
			 src, (unsigned long long)o->mem, PM_PAGE_SIZE);
		return -EINVAL;
	}
	if (o->selftest)
		return 0;
	if (!o->kernel) {
		snprintf(err, errlen,
			 "no kernel: pass --kernel BZIMAGE or set vm.kernel in the config (or use --selftest)");
		return -EINVAL;
	}
	r = vmm_kernel_read(o->kernel, k, err, errlen);
	if (r)
		return r;
	if (!o->cmdline)
		o->cmdline = DEFAULT_CMDLINE;
	if (o->initrd) {
		if (stat(o->initrd, &st) < 0) {
			r = -errno;
			snprintf(err, errlen, "initrd %s: %s", o->initrd,
				 strerror(-r));
			goto out_kernel;
		}
		if (!S_ISREG(st.st_mode)) {
			r = -EINVAL;
			snprintf(err, errlen, "initrd %s: not a regular file",
				 o->initrd);
			goto out_kernel;
		}
	}
	r = vmm_boot_check(k, o->initrd, (uint64_t)st.st_size, o->mem,
			   strlen(o->cmdline), err, errlen);
	if (r)
		goto out_kernel;
	return 0;

out_kernel:
	vmm_kernel_free(k);
	return r;
}

static int open_kvm(char *err, size_t errlen)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int v;

	if (fd < 0) {
		if (errno == ENOENT || errno == ENXIO || errno == ENODEV)
			snprintf(err, errlen,
				 "no /dev/kvm: KVM is not available on this machine");
		else
			snprintf(err, errlen, "/dev/kvm: %s", strerror(errno));
		return -1;
	}
	v = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION) {
		snprintf(err, errlen, "/dev/kvm: API version %d, need %d", v,
			 KVM_API_VERSION);
		close(fd);
		return -1;
	}
	return fd;
}

static void print_summary(struct vmm *vm, struct vm_mem *m, int status)
{
	uint64_t io = 0, mmio = 0;
	struct pm_stats st;
	char extra[512] = "";
	int i;

	for (i = 0; i < vm->nvcpus; i++) {
		io += vm->vcpu[i].io_exits;
		mmio += vm->vcpu[i].mmio_exits;
	}
	if (m->node && !pm_node_stats(m->node, &st))
		snprintf(extra, sizeof(extra),
			 " node=%d faults_total=%llu faults_zero=%llu faults_local=%llu faults_remote=%llu pages_received=%llu pages_sent=%llu",
			 pm_node_id(m->node),
			 (unsigned long long)st.faults_total,
			 (unsigned long long)st.faults_zero,
			 (unsigned long long)st.faults_local,
			 (unsigned long long)st.faults_remote,
			 (unsigned long long)st.pages_received,
			 (unsigned long long)st.pages_sent);
	fprintf(stderr,
		"vm: summary exit=%d vcpus=%d ram_bytes=%llu io_exits=%llu mmio_exits=%llu%s\n",
		status, vm->nvcpus, (unsigned long long)vm->ram_size,
		(unsigned long long)io, (unsigned long long)mmio, extra);
}

int cmd_vm(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	struct vmm_kernel kernel = { 0 };
	/* Static: a vCPU thread that would not stop (see vm_run) may still
	 * look at it while this process exits. */
	static struct vmm vm;
	uint64_t st_start = 0, st_len = 0;
	uint32_t seed = 0;
	sigset_t block;
	struct vm_opts o;
	struct vm_mem m = { 0 };
	struct cfg c = { 0 };
	char err[1024];
	int code, kvm_fd, status = PM_EXIT_RUNTIME, i, r;

	r = parse_args(argc, argv, &o);
	if (r)
		return r < 0 ? PM_EXIT_OK : r;
	if (o.config && apply_config(&o, &c, err, sizeof(err))) {
		fprintf(stderr, "pagemesh vm: %s\n", err);
		status = PM_EXIT_CONFIG;
		goto out_cfg;
	}
	if (check_input(&o, &kernel, err, sizeof(err))) {
		fprintf(stderr, "pagemesh vm: %s\n", err);
		status = PM_EXIT_CONFIG;
		goto out_cfg;
	}
	kvm_fd = open_kvm(err, sizeof(err));
	if (kvm_fd < 0) {
		fprintf(stderr, "pagemesh vm: %s\n", err);
		goto out_kernel;
	}
	code = PM_EXIT_RUNTIME;
	if (mem_open(&m, o.config, o.mem, &code, err, sizeof(err))) {
		fprintf(stderr, "pagemesh vm: %s\n", err);
		status = code;
		goto out_kvm;
	}

	if (o.start_barrier) {
		r = pm_node_barrier(m.node, c.startup_timeout_ms);
		if (r) {
			fprintf(stderr, "pagemesh vm: start barrier: %s (are the other nodes up?)\n",
				strerror(-r));
			goto out_mem;
		}
		/* Progress lines: a run that stalls shows which step. */
		pm_info("vm: start barrier passed");
	}
	memset(&vm, 0, sizeof(vm));
	vm.kvm_fd = vm.vm_fd = -1;
	for (i = 0; i < VMM_MAX_VCPUS; i++)
		vm.vcpu[i].fd = -1;
	pthread_mutex_init(&vm.lock, NULL);
	/* Signals: the vCPU kick, and the ones main waits for, blocked in
	 * every thread from here on. They stay blocked after the VM is gone:
	 * a kick still pending must not kill the process on its way out. */
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	vm.waiter = pthread_self();

	r = vm_create(&vm, kvm_fd, &m, o.mem, o.vcpus, err, sizeof(err));
	if (r) {
		fprintf(stderr, "pagemesh vm: %s\n", err);
		goto out_vm;
	}
	r = vmm_devices_init(&vm, STDOUT_FILENO);
	if (r) {
		fprintf(stderr, "pagemesh vm: registering devices: %s\n",
			strerror(-r));
		goto out_vm;
	}
	pm_info("vm: KVM VM created, loading the guest");
	if (o.selftest) {
		seed = (uint32_t)(pm_now_ns() ^ getpid());
		r = vmm_selftest_load(&vm, &st_start, &st_len, seed, err,
				      sizeof(err));
	} else {
		r = vmm_boot_linux(&vm, &kernel, o.initrd, o.cmdline, err,
				   sizeof(err));
	}
	if (!r)
		r = vmm_vcpu_flat32(&vm.vcpu[0], vm.entry_rip, vm.entry_rsi,
				    vm.entry_rbx, vm.entry_rdx);
	if (r) {
		fprintf(stderr, "pagemesh vm: loading the guest: %s\n", err);
		goto out_devices;
	}
	pm_info("vm: %d vCPU(s), %llu MiB of %s RAM, %s", vm.nvcpus,
		(unsigned long long)(vm.ram_size >> 20),
		m.node ? "pagemesh" : "local",
		o.selftest ? "built-in test guest" : o.kernel);

	err[0] = '\0';
	r = vm_run(&vm, o.timeout_s, err, sizeof(err));
	if (r && err[0])
		fprintf(stderr, "pagemesh vm: %s\n", err);

	switch (vm.end) {
	case VMM_END_EXIT_PORT:
		status = vm.exit_status;
		break;
	case VMM_END_RESET:
		status = PM_EXIT_OK;
		break;
	default:
		status = PM_EXIT_RUNTIME;
		break;
	}
	fprintf(stderr, "pagemesh vm: %s\n", vm.why[0] ? vm.why : "guest ended");
	if (o.selftest && vm.end == VMM_END_EXIT_PORT) {
		uint32_t want = vmm_selftest_expect(st_start, st_len, seed);

		if (!vm.reported || vm.report != want) {
			fprintf(stderr,
				"pagemesh vm: selftest FAILED: guest reported %s0x%08x, expected 0x%08x\n",
				vm.reported ? "" : "nothing, not even ",
				vm.report, want);
			status = PM_EXIT_RUNTIME;
		} else if (vmm_selftest_verify(&vm, st_start, st_len, seed,
					       err, sizeof(err))) {
			fprintf(stderr, "pagemesh vm: selftest FAILED: %s\n",
				err);
			status = PM_EXIT_RUNTIME;
		} else {
			printf("selftest: %llu MiB filled and checked by the guest, checksum 0x%08x ok\n",
			       (unsigned long long)(st_len >> 20), want);
			fflush(stdout);
		}
	}
	print_summary(&vm, &m, status);
	if (r)
		status = PM_EXIT_RUNTIME;
	/*
	 * The node, and with it the userfaultfd, goes before the VM: KVM's
	 * async page-fault worker may still wait on a fault in the region
	 * that nobody will serve (its home died), and closing the VM
	 * flushes that worker. Seen: close(vm_fd) in D state for minutes.
	 * Closing the uffd wakes every such fault; the retry then fails or
	 * finds plain memory, so the VM's teardown ends.
	 */
	mem_close(&m);
	if (r == -ETIMEDOUT) {
		/* A vCPU is still inside KVM_RUN (a fault it waits on does
		 * not take signals): leave the VM and its devices to the
		 * exit of this process; the node still leaves properly. */
		goto out_mem;
	}

out_devices:
	vmm_devices_fini(&vm);
out_vm:
	vm_destroy(&vm);
	pthread_mutex_destroy(&vm.lock);
out_mem:
	mem_close(&m);
out_kvm:
	close(kvm_fd);
out_kernel:
	vmm_kernel_free(&kernel);
out_cfg:
	if (o.config)
		cfg_free(&c);
	return status;
}
