// SPDX-License-Identifier: MIT
/* VMM tests that need no KVM: guest-address bounds, the device bus,
 * UART and clock, bzImage checks, the boot_params/e820/MP table layout, the test
 * guest's checksum, and `pagemesh vm` failing cleanly (78 for bad input
 * before any VM exists, 1 without /dev/kvm). The guest suite
 * (tests/guest/suites/vmm.sh) runs the VMM under real KVM. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <pagemesh/transport.h>

#include "vmm.h"

static char tmpdir[PATH_MAX];
static char pm_bin[PATH_MAX];	/* $PM_BUILD/pagemesh */
static char good_kernel[PATH_MAX + 32];

#define SYN_INIT_SIZE (1u << 20)
#define SYN_BODY 8192

/* A file with a minimal but well-formed bzImage setup header, or one of
 * its broken variants. */
enum syn { SYN_GOOD, SYN_NO_MAGIC, SYN_OLD, SYN_ZIMAGE, SYN_SECTS };

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void make_kernel(const char *path, enum syn kind)
{
	size_t setup = 5 * 512, len = setup + SYN_BODY;
	uint8_t *k = calloc(1, len);
	uint32_t v32;
	size_t i;

	assert_non_null(k);
	k[0x1f1] = kind == SYN_SECTS ? 200 : 4;		/* setup_sects */
	k[0x1fe] = 0x55;
	k[0x1ff] = 0xaa;
	k[0x200] = 0xeb;				/* jmp */
	k[0x201] = 0x66;				/* header ends 0x268 */
	memcpy(k + 0x202, kind == SYN_NO_MAGIC ? "HdrX" : "HdrS", 4);
	k[0x206] = kind == SYN_OLD ? 0x04 : 0x0f;	/* 2.15 or 2.04 */
	k[0x207] = 0x02;
	k[0x211] = kind == SYN_ZIMAGE ? 0 : 1;		/* LOADED_HIGH */
	v32 = 0x7fffffff;
	memcpy(k + 0x22c, &v32, 4);			/* initrd_addr_max */
	v32 = 2047;
	memcpy(k + 0x238, &v32, 4);			/* cmdline_size */
	v32 = SYN_INIT_SIZE;
	memcpy(k + 0x260, &v32, 4);			/* init_size */
	for (i = setup; i < len; i++)
		k[i] = (uint8_t)(i * 7);
	write_file(path, k, len);
	free(k);
}

/* A VM without KVM: anonymous RAM, enough for layout and device tests. */
static void fake_vm(struct vmm *vm, uint64_t ram, int nvcpus)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = -1;
	vm->ram = mmap(NULL, ram, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(vm->ram != MAP_FAILED);
	vm->ram_size = ram;
	vm->nvcpus = nvcpus;
	vm->waiter = pthread_self();
	pthread_mutex_init(&vm->lock, NULL);
}

static void fake_vm_free(struct vmm *vm)
{
	munmap(vm->ram, vm->ram_size);
	pthread_mutex_destroy(&vm->lock);
}

/* --- guest addresses ------------------------------------------------------ */

static void test_gpa_bounds(void **state)
{
	struct vmm vm;
	const uint64_t G = 1ull << 30;

	(void)state;
	fake_vm(&vm, 64 << 20, 1);
	assert_ptr_equal(vmm_gpa(&vm, 0, 64 << 20), vm.ram);
	assert_ptr_equal(vmm_gpa(&vm, (64 << 20) - 1, 1),
			 vm.ram + (64 << 20) - 1);
	assert_null(vmm_gpa(&vm, (64 << 20) - 1, 2));
	assert_null(vmm_gpa(&vm, 64 << 20, 0 + 1));
	assert_null(vmm_gpa(&vm, 1, UINT64_MAX));	/* no wrap-around */
	assert_null(vmm_gpa(&vm, UINT64_MAX, 2));
	assert_null(vmm_gpa(&vm, UINT64_MAX - 4095, 4096));
	fake_vm_free(&vm);

	/* 3.5 GiB: 3 GiB low, the hole, 512 MiB at 4 GiB. */
	fake_vm(&vm, 3 * G + 512 * (1 << 20), 1);
	assert_ptr_equal(vmm_gpa(&vm, 3 * G - 4096, 4096),
			 vm.ram + 3 * G - 4096);
	assert_null(vmm_gpa(&vm, 3 * G - 4096, 8192));	/* into the hole */
	assert_null(vmm_gpa(&vm, 3 * G, 1));
	assert_null(vmm_gpa(&vm, 4 * G - 1, 1));
	assert_ptr_equal(vmm_gpa(&vm, 4 * G, 1), vm.ram + 3 * G);
	assert_ptr_equal(vmm_gpa(&vm, 4 * G + 512 * (1 << 20) - 8, 8),
			 vm.ram + 3 * G + 512 * (1 << 20) - 8);
	assert_null(vmm_gpa(&vm, 4 * G + 512 * (1 << 20) - 8, 9));
	fake_vm_free(&vm);
}

/* --- bus and devices -------------------------------------------------------- */

struct probe { uint64_t off; uint32_t size; bool wr; int calls; };

static void probe_io(struct vmm *vm, void *dev, uint64_t off, uint8_t *data,
		     uint32_t size, bool is_write)
{
	struct probe *p = dev;

	(void)vm;
	p->off = off;
	p->size = size;
	p->wr = is_write;
	p->calls++;
	if (!is_write)
		memset(data, 0xab, size);
}

static void test_bus(void **state)
{
	struct vmm_bus bus = { 0 };
	struct probe a = { 0 }, b = { 0 };
	uint8_t d[8];

	(void)state;
	assert_int_equal(vmm_bus_add(&bus, 0x100, 0x10, probe_io, &a, "a"), 0);
	assert_int_equal(vmm_bus_add(&bus, 0x110, 0x10, probe_io, &b, "b"), 0);
	assert_int_equal(vmm_bus_add(&bus, 0x10f, 2, probe_io, &b, "x"),
			 -EBUSY);
	assert_int_equal(vmm_bus_add(&bus, 0x0f0, 0x11, probe_io, &b, "y"),
			 -EBUSY);
	assert_int_equal(vmm_bus_add(&bus, UINT64_MAX - 2, 8, probe_io, &b,
				     "wrap"), -EINVAL);
	assert_int_equal(vmm_bus_add(&bus, 0x200, 0, probe_io, &b, "empty"),
			 -EINVAL);

	assert_true(vmm_bus_io(NULL, &bus, 0x114, d, 4, false));
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.off, 4);
	assert_int_equal(d[3], 0xab);
	assert_int_equal(a.calls, 0);
	/* An access straddling the end of a range belongs to no device. */
	assert_false(vmm_bus_io(NULL, &bus, 0x10e, d, 4, true));
	assert_false(vmm_bus_io(NULL, &bus, 0x11f, d, 2, true));
	assert_true(vmm_bus_io(NULL, &bus, 0x11f, d, 1, true));
	assert_false(vmm_bus_io(NULL, &bus, UINT64_MAX, d, 8, false));
	assert_int_equal(b.calls, 2);
	assert_true(b.wr);
}

static uint8_t port_in(struct vmm *vm, uint16_t port)
{
	uint8_t v = 0x5a;

	assert_true(vmm_bus_io(vm, &vm->pio, port, &v, 1, false));
	return v;
}

static void port_out(struct vmm *vm, uint16_t port, uint8_t v)
{
	assert_true(vmm_bus_io(vm, &vm->pio, port, &v, 1, true));
}

static void test_uart_and_exit(void **state)
{
	struct timespec zero = { 0, 0 };
	const char *msg = "hi\n";
	sigset_t s2, old;
	struct vmm vm;
	char out[8] = { 0 };
	int pfd[2], i;

	(void)state;
	sigemptyset(&s2);
	sigaddset(&s2, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &s2, &old);
	assert_int_equal(pipe(pfd), 0);
	fake_vm(&vm, 8 << 20, 1);
	assert_int_equal(vmm_devices_init(&vm, pfd[1]), 0);

	for (i = 0; msg[i]; i++) {
		/* Linux waits for "holding register empty" before each. */
		assert_true(port_in(&vm, VMM_PORT_COM1 + 5) & 0x20);
		port_out(&vm, VMM_PORT_COM1, msg[i]);
	}
	assert_int_equal(read(pfd[0], out, sizeof(out)), 3);
	assert_string_equal(out, msg);
	/* Scratch register and divisor latch keep what was written. */
	port_out(&vm, VMM_PORT_COM1 + 7, 0x3c);
	assert_int_equal(port_in(&vm, VMM_PORT_COM1 + 7), 0x3c);
	port_out(&vm, VMM_PORT_COM1 + 3, 0x80);
	port_out(&vm, VMM_PORT_COM1, 0x0c);
	assert_int_equal(port_in(&vm, VMM_PORT_COM1), 0x0c);
	port_out(&vm, VMM_PORT_COM1 + 3, 0x03);
	/* No interrupt pending while THRI is off. */
	assert_int_equal(port_in(&vm, VMM_PORT_COM1 + 2) & 0x0f, 0x01);
	/* Loopback: MCR outputs come back in MSR (the probe checks it). */
	port_out(&vm, VMM_PORT_COM1 + 4, 0x1f);
	assert_int_equal(port_in(&vm, VMM_PORT_COM1 + 6) & 0xf0, 0xf0);
	port_out(&vm, VMM_PORT_COM1 + 4, 0x10);
	assert_int_equal(port_in(&vm, VMM_PORT_COM1 + 6) & 0xf0, 0x00);

	/* CMOS clock: never "update in progress", valid, today's year. */
	{
		time_t now = time(NULL);
		struct tm tm;
		uint8_t y, mon;

		gmtime_r(&now, &tm);
		port_out(&vm, VMM_PORT_RTC, 0x0a);
		assert_int_equal(port_in(&vm, VMM_PORT_RTC + 1) & 0x80, 0);
		port_out(&vm, VMM_PORT_RTC, 0x8d);	/* NMI bit ignored */
		assert_int_equal(port_in(&vm, VMM_PORT_RTC + 1), 0x80);
		port_out(&vm, VMM_PORT_RTC, 0x08);
		mon = port_in(&vm, VMM_PORT_RTC + 1);
		assert_true(mon >= 0x01 && mon <= 0x12 && (mon & 0x0f) <= 9);
		port_out(&vm, VMM_PORT_RTC, 0x09);
		y = port_in(&vm, VMM_PORT_RTC + 1);
		assert_int_equal((y >> 4) * 10 + (y & 0x0f),
				 tm.tm_year % 100);
		port_out(&vm, VMM_PORT_RTC, 0x40);	/* plain CMOS RAM */
		port_out(&vm, VMM_PORT_RTC + 1, 0x99);
		assert_int_equal(port_in(&vm, VMM_PORT_RTC + 1), 0x99);
	}

	/* An unclaimed port is nobody's. */
	assert_false(vmm_bus_io(&vm, &vm.pio, 0x2f8, (uint8_t[1]){ 0 }, 1,
				false));

	/* The exit port ends the VM with the guest's status; later ends do
	 * not overwrite the first. */
	assert_int_equal(vm.end, VMM_RUNNING);
	port_out(&vm, VMM_PORT_EXIT, 7);
	assert_int_equal(vm.end, VMM_END_EXIT_PORT);
	assert_int_equal(vm.exit_status, 7);
	port_out(&vm, VMM_PORT_I8042_CMD, 0xfe);
	assert_int_equal(vm.end, VMM_END_EXIT_PORT);
	assert_int_equal(sigtimedwait(&s2, NULL, &zero), SIGUSR2);

	vmm_devices_fini(&vm);
	fake_vm_free(&vm);
	fake_vm(&vm, 8 << 20, 1);
	assert_int_equal(vmm_devices_init(&vm, pfd[1]), 0);
	port_out(&vm, VMM_PORT_I8042_CMD, 0x20);	/* not a reset */
	assert_int_equal(vm.end, VMM_RUNNING);
	port_out(&vm, VMM_PORT_I8042_CMD, 0xfe);
	assert_int_equal(vm.end, VMM_END_RESET);
	assert_int_equal(sigtimedwait(&s2, NULL, &zero), SIGUSR2);
	vmm_devices_fini(&vm);
	fake_vm_free(&vm);
	close(pfd[0]);
	close(pfd[1]);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* --- bzImage and boot layout ------------------------------------------------ */

static void expect_bad_kernel(enum syn kind, const char *needle)
{
	char path[PATH_MAX + 32], err[512];
	struct vmm_kernel k;

	snprintf(path, sizeof(path), "%s/bad%d", tmpdir, kind);
	make_kernel(path, kind);
	assert_int_equal(vmm_kernel_read(path, &k, err, sizeof(err)), -EINVAL);
	printf("# %s\n", err);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, needle));
}

static void test_kernel_checks(void **state)
{
	char err[512], path[PATH_MAX + 32];
	struct vmm_kernel k;

	(void)state;
	assert_int_equal(vmm_kernel_read(good_kernel, &k, err, sizeof(err)), 0);
	assert_int_equal(k.version, 0x020f);
	assert_int_equal(k.setup_size, 5 * 512);
	assert_int_equal(k.init_size, SYN_INIT_SIZE);
	vmm_kernel_free(&k);

	expect_bad_kernel(SYN_NO_MAGIC, "not a bzImage");
	expect_bad_kernel(SYN_OLD, "boot protocol 2.04 is too old");
	expect_bad_kernel(SYN_ZIMAGE, "zImage");
	expect_bad_kernel(SYN_SECTS, "setup_sects 200");
	snprintf(path, sizeof(path), "%s/none", tmpdir);
	assert_int_equal(vmm_kernel_read(path, &k, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "No such file"));
	snprintf(path, sizeof(path), "%s/short", tmpdir);
	write_file(path, "MZ", 2);
	assert_int_equal(vmm_kernel_read(path, &k, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too short"));
}

static void test_boot_check(void **state)
{
	struct vmm_kernel k;
	char err[512];

	(void)state;
	assert_int_equal(vmm_kernel_read(good_kernel, &k, err, sizeof(err)), 0);
	assert_int_equal(vmm_boot_check(&k, "rd", 1 << 20, 64 << 20, 10, err,
					sizeof(err)), 0);
	assert_int_equal(vmm_boot_check(&k, "rd", 64 << 20, 64 << 20, 10, err,
					sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "initrd rd of 67108864 bytes is larger than guest RAM"));
	/* Fits in RAM but not above the kernel (which ends at 17 MiB). */
	assert_int_equal(vmm_boot_check(&k, "rd", 60 << 20, 64 << 20, 10, err,
					sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "does not fit"));
	assert_int_equal(vmm_boot_check(&k, NULL, 0, 16 << 20, 10, err,
					sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too small for the kernel"));
	assert_int_equal(vmm_boot_check(&k, NULL, 0, 64 << 20, 2048, err,
					sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "longer than the kernel accepts (2047)"));
	vmm_kernel_free(&k);
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return s;
}

static void test_boot_layout(void **state)
{
	const char *cmdline = "console=ttyS0 reboot=k test=1";
	char rd[PATH_MAX + 32], err[512];
	uint64_t ram = 128 << 20, covered = 0;
	struct vmm_kernel k;
	uint8_t *bp, *fp, *t, *e;
	uint32_t rd_gpa, rd_len, n, i, cpus = 0;
	struct vmm vm;
	uint8_t blob[3 * 4096 + 5];

	(void)state;
	for (i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)(i * 13 + 1);
	snprintf(rd, sizeof(rd), "%s/initrd", tmpdir);
	write_file(rd, blob, sizeof(blob));
	assert_int_equal(vmm_kernel_read(good_kernel, &k, err, sizeof(err)), 0);
	fake_vm(&vm, ram, 3);
	assert_int_equal(vmm_boot_linux(&vm, &k, rd, cmdline, err, sizeof(err)),
			 0);

	assert_true(vm.entry_set);
	assert_int_equal(vm.entry_rip, 0x100000);
	bp = vmm_gpa(&vm, vm.entry_rsi, 4096);
	assert_non_null(bp);
	assert_memory_equal(bp + 0x202, "HdrS", 4);
	assert_int_equal(rd32(bp + 0x214), 0x100000);		/* code32 */
	assert_memory_equal(vm.ram + 0x100000, k.data + k.setup_size,
			    k.size - k.setup_size);
	assert_string_equal((char *)vmm_gpa(&vm, rd32(bp + 0x228), 64),
			    cmdline);

	/* initrd: copied whole, page aligned, above the kernel, in RAM. */
	rd_gpa = rd32(bp + 0x218);
	rd_len = rd32(bp + 0x21c);
	assert_int_equal(rd_len, sizeof(blob));
	assert_int_equal(rd_gpa % 4096, 0);
	assert_true(rd_gpa >= 0x1000000 + SYN_INIT_SIZE);
	assert_non_null(vmm_gpa(&vm, rd_gpa, rd_len));
	assert_memory_equal(vm.ram + rd_gpa, blob, sizeof(blob));

	/* e820: in order, no overlaps, every entry in RAM, and together
	 * (usable plus the reserved BIOS area) they cover all of it. */
	n = bp[0x1e8];
	assert_true(n >= 3);
	for (i = 0; i < n; i++) {
		e = bp + 0x2d0 + i * 20;
		assert_non_null(vmm_gpa(&vm, rd64(e), rd64(e + 8)));
		if (i)
			assert_true(rd64(e) >= rd64(e - 20) + rd64(e - 12));
		covered += rd64(e + 8);
	}
	assert_int_equal(covered, ram);

	/* MP table: both checksums zero, one processor per vCPU. */
	fp = NULL;
	for (i = 0xf0000; i < 0x100000; i += 16)
		if (!memcmp(vm.ram + i, "_MP_", 4)) {
			fp = vm.ram + i;
			break;
		}
	assert_non_null(fp);
	assert_int_equal(sum8(fp, 16), 0);
	t = vmm_gpa(&vm, rd32(fp + 4), 44);
	assert_non_null(t);
	assert_memory_equal(t, "PCMP", 4);
	assert_int_equal(sum8(t, t[4] | t[5] << 8), 0);
	e = t + 44;
	for (i = 0; i < (uint32_t)(t[34] | t[35] << 8); i++) {
		if (e[0] == 0) {
			assert_int_equal(e[1], cpus);	/* APIC id */
			cpus++;
		}
		e += e[0] == 0 ? 20 : 8;
	}
	assert_int_equal(cpus, 3);

	fake_vm_free(&vm);
	vmm_kernel_free(&k);
}

/* --- the test guest's arithmetic ------------------------------------------- */

static void test_selftest_sum(void **state)
{
	uint32_t seed = (uint32_t)time(NULL), sum = 0, *p;
	uint64_t start, len, i;
	struct vmm vm;
	char err[256];

	(void)state;
	fake_vm(&vm, 4 << 20, 1);
	assert_int_equal(vmm_selftest_load(&vm, &start, &len, seed, err,
					   sizeof(err)), 0);
	assert_int_equal(start, 1 << 20);
	assert_int_equal(len, 3 << 20);
	assert_int_equal(vm.entry_rdx, len / 4);
	/* Do what the guest code does, here, then check both agree. */
	p = vmm_gpa(&vm, start, len);
	for (i = 0; i < len / 4; i++)
		p[i] = (uint32_t)(start + i * 4) ^ seed;
	for (i = 0; i < len / 4; i++)
		sum = ((sum << 1) | (sum >> 31)) + p[i];
	assert_int_equal(vmm_selftest_expect(start, len, seed), sum);
	assert_int_not_equal(vmm_selftest_expect(start, len, seed + 1), sum);
	assert_int_equal(vmm_selftest_verify(&vm, start, len, seed, err,
					     sizeof(err)), 0);
	p[12345] ^= 0x100;
	assert_int_equal(vmm_selftest_verify(&vm, start, len, seed, err,
					     sizeof(err)), -EIO);
	assert_non_null(strstr(err, "0x10c0e4"));	/* 1 MiB + 12345 * 4 */
	fake_vm_free(&vm);

	fake_vm(&vm, 1 << 20, 1);
	assert_int_equal(vmm_selftest_load(&vm, &start, &len, seed, err,
					   sizeof(err)), -EINVAL);
	fake_vm_free(&vm);
}

/* --- pagemesh vm as a process --------------------------------------------- */

/* Run pagemesh with args; its exit code, stderr+stdout in out. Bounded:
 * the child is killed after 20 s. */
static int run_pm(char *out, size_t outlen, const char *const *args)
{
	const char *argv[16] = { pm_bin };
	int64_t deadline;
	size_t got = 0;
	int p[2], st, i;
	pid_t pid;

	for (i = 0; args[i] && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		execv(pm_bin, (char **)argv);
		_exit(127);
	}
	close(p[1]);
	deadline = pm_now_ns() + 20000000000ll;
	for (;;) {
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };
		int64_t left = (deadline - pm_now_ns()) / 1000000;
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		n = read(p[0], out + got, outlen - 1 - got);
		if (n <= 0)
			break;
		got += n;
		if (got == outlen - 1)
			break;
	}
	out[got] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	printf("# pagemesh vm ...: %s", out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void expect_run(int code, const char *needle, const char *const *args)
{
	char out[8192];

	assert_int_equal(run_pm(out, sizeof(out), args), code);
	if (needle && !strstr(out, needle))
		fail_msg("output lacks \"%s\"", needle);
}

static void test_cli_bad_input(void **state)
{
	char big[PATH_MAX + 32], cfg[PATH_MAX + 32], notbz[PATH_MAX + 32];
	char cfgtxt[512];
	int fd;

	(void)state;
	snprintf(big, sizeof(big), "%s/big-initrd", tmpdir);
	fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 300 << 20), 0);	/* sparse */
	close(fd);
	snprintf(notbz, sizeof(notbz), "%s/not-bzimage", tmpdir);
	make_kernel(notbz, SYN_NO_MAGIC);
	snprintf(cfg, sizeof(cfg), "%s/vm.cfg", tmpdir);
	snprintf(cfgtxt, sizeof(cfgtxt),
		 "cluster = { name = \"t\"; nodes = 1; memory = \"64M\"; };\n"
		 "node = { id = 0; };\n"
		 "transports = { order = [ \"tcp\" ]; };\n"
		 "vm = { vcpus = 2; };\n");
	write_file(cfg, cfgtxt, strlen(cfgtxt));

	expect_run(78, "kernel /nonexistent/bzImage: No such file",
		   (const char *const[]){ "vm", "--kernel",
					  "/nonexistent/bzImage", NULL });
	expect_run(78, "not a bzImage",
		   (const char *const[]){ "vm", "--kernel", notbz, NULL });
	expect_run(78, "is larger than guest RAM",
		   (const char *const[]){ "vm", "--kernel", good_kernel,
					  "--initrd", big, NULL });
	expect_run(78, "vcpus = 0: must be 1 to 64",
		   (const char *const[]){ "vm", "--kernel", good_kernel,
					  "--vcpus", "0", NULL });
	expect_run(78, "no kernel",
		   (const char *const[]){ "vm", "-c", cfg, NULL });
	expect_run(78, "larger than cluster.memory",
		   (const char *const[]){ "vm", "-c", cfg, "--mem", "128M",
					  "--kernel", good_kernel, NULL });
	expect_run(2, "--vcpus 'two' is not a number",
		   (const char *const[]){ "vm", "--vcpus", "two", NULL });
	expect_run(2, NULL, (const char *const[]){ "vm", "--bogus", NULL });
	expect_run(2, "--start-barrier needs -c",
		   (const char *const[]){ "vm", "--selftest", "--start-barrier",
					  NULL });
	expect_run(0, "--selftest",
		   (const char *const[]){ "vm", "--help", NULL });
}

static void test_cli_no_kvm(void **state)
{
	(void)state;
	if (access("/dev/kvm", F_OK) == 0)
		skip();		/* KVM here: the guest suite covers it */
	expect_run(1, "no /dev/kvm: KVM is not available on this machine",
		   (const char *const[]){ "vm", "--kernel", good_kernel, NULL });
	expect_run(1, "no /dev/kvm: KVM is not available on this machine",
		   (const char *const[]){ "vm", "--selftest", NULL });
}

static int teardown(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gpa_bounds),
		cmocka_unit_test(test_bus),
		cmocka_unit_test(test_uart_and_exit),
		cmocka_unit_test(test_kernel_checks),
		cmocka_unit_test(test_boot_check),
		cmocka_unit_test(test_boot_layout),
		cmocka_unit_test(test_selftest_sum),
		cmocka_unit_test(test_cli_bad_input),
		cmocka_unit_test(test_cli_no_kvm),
	};
	const char *b = getenv("PM_BUILD");
	int r;

	snprintf(pm_bin, sizeof(pm_bin), "%s/pagemesh", b ? b : "build");
	if (access(pm_bin, X_OK)) {
		fprintf(stderr, "vmm_test: %s: %s (set PM_BUILD)\n", pm_bin,
			strerror(errno));
		return 1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pm-vmm-test.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("vmm_test: mkdtemp");
		return 1;
	}
	snprintf(good_kernel, sizeof(good_kernel), "%s/bzImage", tmpdir);
	make_kernel(good_kernel, SYN_GOOD);
	r = cmocka_run_group_tests_name("vmm", tests, NULL, NULL);
	if (teardown())
		fprintf(stderr, "vmm_test: could not remove %s\n", tmpdir);
	return r;
}
