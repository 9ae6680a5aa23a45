// SPDX-License-Identifier: MIT
/* `pagemesh vm`: options and the vm group of the config, the checks that
 * exit 78 before any VM exists, and the run that boots the guest (vmm.c). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pagemesh/pagemesh.h>

#include "cfg.h"
#include "cli.h"
#include "log.h"
#include "vmm.h"

#define DEFAULT_MEM (256ull << 20)

struct vm_opts {
	const char *config;
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	const char *kernel_key;	/* key kernel came from, or NULL */
	const char *initrd_key;	/* the same for initrd */
	int64_t vcpus;
	uint64_t mem;
	bool mem_set;
	bool selftest;
	bool start_barrier;
	int timeout_s;
};

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
"                      \"" VMM_DEFAULT_CMDLINE "\")\n"
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
				fprintf(stderr, "pagemesh vm: --mem '%s' is not a size (digits with an optional K, M, G or T)\n",
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

/* Fill what the flags left open from the config's vm group (checked
 * against the key table by cfg_load, vm.memory against cluster.memory). */
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
	if (!o->kernel && !cfg_get_string(c, "vm.kernel", &s, NULL)) {
		o->kernel = s;
		o->kernel_key = "vm.kernel";
	}
	if (!o->initrd && !cfg_get_string(c, "vm.initrd", &s, NULL)) {
		o->initrd = s;
		o->initrd_key = "vm.initrd";
	}
	if (!o->cmdline && !cfg_get_string(c, "vm.cmdline", &s, &found) &&
	    found)
		o->cmdline = s;
	if (o->vcpus < 0 && !cfg_get_int(c, "vm.vcpus", &n, &found) && found)
		o->vcpus = n;
	if (!o->mem_set) {
		o->mem = cfg_get_size(c, "vm.memory", &size, NULL) ? c->memory
								   : size;
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

/* err about the file a config key named: "FILE:LINE: KEY: err". */
static int blame(const struct cfg *c, const char *key, char *err,
		 size_t errlen)
{
	char why[1024];

	if (!key)
		return -EINVAL;
	snprintf(why, sizeof(why), "%s", err);
	return cfg_fail_key(c, key, err, errlen, "%s: %s", key, why);
}

/* Everything that can be checked before a VM exists: bad input exits 78
 * here whether or not this machine has KVM. The ranges are the key table's
 * (vm.vcpus, vm.memory), the flags' as well as the file's. */
static int check_input(struct vm_opts *o, const struct cfg *c,
		       struct vmm_kernel *k, char *err, size_t errlen)
{
	const struct cfg_key *kv = cfg_key_find("vm.vcpus");
	const struct cfg_key *km = cfg_key_find("vm.memory");
	const char *src = o->config ? o->config : "command line";
	char why[256], lo[24], hi[24];
	struct stat st = { 0 };
	int r;

	if (o->vcpus < 0)
		o->vcpus = kv->def;
	if (cfg_key_check(kv->name, o->vcpus, why, sizeof(why))) {
		snprintf(err, errlen, "%s: vcpus = %lld: must be %lld to %lld",
			 src, (long long)o->vcpus, (long long)kv->min,
			 (long long)kv->max);
		return -EINVAL;
	}
	if (!o->mem_set)
		o->mem = DEFAULT_MEM;
	if (o->mem > INT64_MAX ||
	    cfg_key_check(km->name, (int64_t)o->mem, why, sizeof(why))) {
		cfg_size_str((uint64_t)km->min, lo, sizeof(lo));
		cfg_size_str((uint64_t)km->max, hi, sizeof(hi));
		snprintf(err, errlen,
			 "%s: guest memory of %llu bytes: must be %s to %s and a multiple of %u",
			 src, (unsigned long long)o->mem, lo, hi, PM_PAGE_SIZE);
		return -EINVAL;
	}
	if (o->selftest)
		return 0;
	if (!o->kernel) {
		snprintf(err, errlen,
			 "no kernel: pass --kernel BZIMAGE or set vm.kernel in the config (or use --selftest)");
		return c ? blame(c, "vm", err, errlen) : -EINVAL;
	}
	r = vmm_kernel_read(o->kernel, k, err, errlen);
	if (r)
		return o->kernel_key ? blame(c, o->kernel_key, err, errlen) : r;
	if (!o->cmdline)
		o->cmdline = VMM_DEFAULT_CMDLINE;
	if (o->initrd) {
		if (stat(o->initrd, &st) < 0) {
			r = -errno;
			snprintf(err, errlen, "initrd %s: %s", o->initrd,
				 strerror(-r));
			goto out_initrd;
		}
		if (!S_ISREG(st.st_mode)) {
			r = -EINVAL;
			snprintf(err, errlen, "initrd %s: not a regular file",
				 o->initrd);
			goto out_initrd;
		}
	}
	/* Sizes of kernel, initrd and RAM together: no one key to blame. */
	r = vmm_boot_check(k, o->initrd, (uint64_t)st.st_size, o->mem,
			   strlen(o->cmdline), err, errlen);
	if (r)
		goto out_kernel;
	return 0;

out_initrd:
	if (o->initrd_key)
		r = blame(c, o->initrd_key, err, errlen);
out_kernel:
	vmm_kernel_free(k);
	return r;
}

static void print_summary(struct vmm *vm, struct vmm_mem *m, int status)
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
	struct vmm_kernel kernel = { 0 };
	/* Static: a vCPU thread that would not stop (see vmm_run) may still
	 * look at it while this process exits. */
	static struct vmm vm;
	uint64_t st_start = 0, st_len = 0;
	uint32_t seed = 0;
	struct vm_opts o;
	struct vmm_mem m = { 0 };
	struct cfg c = { 0 };
	char err[1024];
	int code, kvm_fd, status = PM_EXIT_RUNTIME, r;

	r = parse_args(argc, argv, &o);
	if (r)
		return r < 0 ? PM_EXIT_OK : r;
	if (o.config && apply_config(&o, &c, err, sizeof(err))) {
		fprintf(stderr, "pagemesh vm: %s\n", err);
		status = PM_EXIT_CONFIG;
		goto out_cfg;
	}
	if (check_input(&o, o.config ? &c : NULL, &kernel, err,
			sizeof(err))) {
		fprintf(stderr, "pagemesh vm: %s\n", err);
		status = PM_EXIT_CONFIG;
		goto out_cfg;
	}
	kvm_fd = vmm_open_kvm(err, sizeof(err));
	if (kvm_fd < 0) {
		fprintf(stderr, "pagemesh vm: %s\n", err);
		goto out_kernel;
	}
	code = PM_EXIT_RUNTIME;
	if (vmm_mem_open(&m, o.config, o.mem, &code, err, sizeof(err))) {
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
	vmm_prepare(&vm);

	r = vmm_create(&vm, kvm_fd, &m, o.mem, o.vcpus, err, sizeof(err));
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
	r = vmm_run(&vm, o.timeout_s, err, sizeof(err));
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
	vmm_mem_close(&m);
	if (r == -ETIMEDOUT) {
		/* A vCPU is still inside KVM_RUN (a fault it waits on does
		 * not take signals): leave the VM and its devices to the
		 * exit of this process; the node still leaves properly. */
		goto out_mem;
	}

out_devices:
	vmm_devices_fini(&vm);
out_vm:
	vmm_destroy(&vm);
	pthread_mutex_destroy(&vm.lock);
out_mem:
	vmm_mem_close(&m);
out_kvm:
	close(kvm_fd);
out_kernel:
	vmm_kernel_free(&kernel);
out_cfg:
	if (o.config)
		cfg_free(&c);
	return status;
}
