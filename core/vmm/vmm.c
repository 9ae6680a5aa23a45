// SPDX-License-Identifier: MIT
/* The KVM VM behind `pagemesh vm` (the command is vmm_cli.c): guest RAM from
 * the pagemesh region, vCPU threads and the run loop that ends them. One
 * thread per vCPU, on this node, so a vCPU touching a page homed on another
 * node faults through userfaultfd exactly as a program's thread does. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include <pagemesh/pagemesh.h>

#include "cfg.h"
#include "cli.h"
#include "log.h"
#include "vmm.h"

#define KVM_TSS_ADDR 0xfffbd000ull
#define KVM_IDMAP_ADDR 0xfffbc000ull
#define JOIN_TIMEOUT_S 5

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
int vmm_mem_open(struct vmm_mem *m, const char *config, uint64_t want,
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

void vmm_mem_close(struct vmm_mem *m)
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

void vmm_prepare(struct vmm *vm)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	sigset_t block;
	int i;

	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = -1;
	for (i = 0; i < VMM_MAX_VCPUS; i++)
		vm->vcpu[i].fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	/* Signals: the vCPU kick, and the ones vmm_run waits for, blocked in
	 * every thread from here on. They stay blocked after the VM is gone:
	 * a kick still pending must not kill the process on its way out. */
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	vm->waiter = pthread_self();
}

/* --- the VM ----------------------------------------------------------------- */

int vmm_create(struct vmm *vm, int kvm_fd, const struct vmm_mem *m,
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
		vm->nvcpus = i + 1;	/* what vmm_destroy must close */
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

void vmm_destroy(struct vmm *vm)
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

/* SIGINT/SIGTERM/SIGUSR2 are blocked in every thread and taken here with
 * sigtimedwait; SIGUSR1 kicks a vCPU out of KVM_RUN. */
int vmm_run(struct vmm *vm, int timeout_s, char *err, size_t errlen)
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

int vmm_open_kvm(char *err, size_t errlen)
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
