/* SPDX-License-Identifier: MIT */
/* The VMM's internals: a KVM guest whose RAM is the pagemesh region, a tiny
 * port/MMIO bus, the Linux boot protocol and the built-in test guest. */
#ifndef PM_VMM_H
#define PM_VMM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMM_MAX_VCPUS 64
/* vm.cmdline when neither the config nor --cmdline gives one. */
#define VMM_DEFAULT_CMDLINE \
	"console=ttyS0 reboot=k panic=-1 nokaslr i8042.noaux"
#define VMM_MAX_DEVS 16

/* Guest-physical layout. RAM starts at 0; above 3 GiB it continues at
 * 4 GiB so the 32-bit hole stays free for devices. */
#define VMM_LOW_RAM_MAX (3ull << 30)
#define VMM_HIGH_RAM_BASE (4ull << 30)

/* I/O ports of our own devices. */
#define VMM_PORT_EXIT 0x501	/* outb: guest exit status, ends the VM */
#define VMM_PORT_REPORT 0x502	/* outl: test guest's checksum */
#define VMM_PORT_COM1 0x3f8
#define VMM_PORT_I8042 0x60	/* data */
#define VMM_PORT_I8042_CMD 0x64	/* 0xFE written here resets */
#define VMM_IRQ_COM1 4
#define VMM_PORT_RTC 0x70	/* CMOS index; 0x71 data */

struct vmm;

/* A device's handler: off is relative to the range's base; data holds size
 * bytes (1, 2, 4 or 8) to write, or receives what a read returns. */
typedef void (*vmm_io_fn)(struct vmm *vm, void *dev, uint64_t off,
			  uint8_t *data, uint32_t size, bool is_write);

struct vmm_range {
	uint64_t base;
	uint64_t len;
	vmm_io_fn fn;
	void *dev;
	const char *name;
};

/* Address-range bus: one for ports, one for MMIO. */
struct vmm_bus {
	int n;
	struct vmm_range r[VMM_MAX_DEVS];
};

struct vmm_uart {
	pthread_mutex_t lock;
	int out_fd;
	uint8_t ier, lcr, mcr, fcr, scr, dll, dlm;
	bool thr_irq;		/* "transmitter empty" interrupt pending */
	bool line;		/* level last sent to the IRQ line */
};

struct vmm_rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t ram[128];
};

struct vmm_vcpu {
	struct vmm *vm;
	int id;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool started;
	uint64_t io_exits;
	uint64_t mmio_exits;
};

/* How the guest ended. */
enum vmm_end {
	VMM_RUNNING = 0,
	VMM_END_EXIT_PORT,	/* wrote its status to VMM_PORT_EXIT */
	VMM_END_RESET,		/* i8042 reset (Linux reboot=k) */
	VMM_END_ERROR,		/* triple fault, failed entry, internal error */
	VMM_END_STOPPED,	/* signal or --timeout */
};

struct vmm {
	int kvm_fd;
	int vm_fd;
	uint8_t *ram;		/* host address of guest-physical 0 */
	uint64_t ram_size;
	int nvcpus;
	struct vmm_vcpu vcpu[VMM_MAX_VCPUS];
	struct vmm_bus pio;
	struct vmm_bus mmio;
	struct vmm_uart uart;
	struct vmm_rtc rtc;

	/* entry state of the boot vCPU */
	bool entry_set;
	uint64_t entry_rip;
	uint64_t entry_rsi, entry_rbx, entry_rdx;

	pthread_t waiter;	/* thread vmm_end() wakes with SIGUSR2 */
	pthread_mutex_t lock;	/* guards the fields below */
	enum vmm_end end;
	int exit_status;	/* guest's status for VMM_END_EXIT_PORT */
	char why[256];		/* message for VMM_END_ERROR */
	uint32_t report;	/* last value on VMM_PORT_REPORT */
	bool reported;
};

/* --- guest memory ------------------------------------------------------ */

/*
 * Host pointer to len bytes of guest-physical memory at gpa, or NULL when
 * any of the range lies outside RAM (or crosses the 3-4 GiB hole).
 * Overflow-safe: never computes gpa + len.
 */
void *vmm_gpa(struct vmm *vm, uint64_t gpa, uint64_t len);

/* --- bus (vmm_dev.c) ---------------------------------------------------- */
int vmm_bus_add(struct vmm_bus *bus, uint64_t base, uint64_t len,
		vmm_io_fn fn, void *dev, const char *name);
/* false when no device covers [addr, addr + size). */
bool vmm_bus_io(struct vmm *vm, struct vmm_bus *bus, uint64_t addr,
		uint8_t *data, uint32_t size, bool is_write);
/* Registers the UART, RTC, i8042, exit and report ports. */
int vmm_devices_init(struct vmm *vm, int out_fd);
void vmm_devices_fini(struct vmm *vm);
/* Ends the VM: the first caller's reason wins; wakes the waiter. */
void vmm_end(struct vmm *vm, enum vmm_end how, int status, const char *fmt,
	     ...) __attribute__((format(printf, 4, 5)));

/* --- Linux boot protocol (vmm_boot.c) ------------------------------------ */

/* A checked bzImage, read into memory. */
struct vmm_kernel {
	uint8_t *data;
	size_t size;
	size_t setup_size;	/* bytes before the protected-mode code */
	uint16_t version;	/* boot protocol version */
	uint32_t init_size;	/* memory the kernel needs while booting */
	uint32_t initrd_addr_max;
	uint32_t cmdline_max;	/* longest command line, without NUL */
};

/*
 * Read and check a bzImage ("HdrS", protocol >= 2.06, loaded high). 0, or
 * -errno with a message naming the file and what is wrong in err.
 */
int vmm_kernel_read(const char *path, struct vmm_kernel *k, char *err,
		    size_t errlen);
void vmm_kernel_free(struct vmm_kernel *k);

/*
 * Will the kernel and the file initrd (NULL: none) of initrd_size bytes
 * fit in ram_size? 0 or -EINVAL with the reason in err. Used before any
 * VM exists.
 */
int vmm_boot_check(const struct vmm_kernel *k, const char *initrd,
		   uint64_t initrd_size, uint64_t ram_size, size_t cmdline_len,
		   char *err, size_t errlen);

/*
 * Place kernel, initrd (may be NULL) and command line in guest RAM, build
 * boot_params with an e820 map of the RAM and an MP table for the vCPUs,
 * and set the boot vCPU's entry. 0 or -errno with a message in err.
 */
int vmm_boot_linux(struct vmm *vm, const struct vmm_kernel *k,
		   const char *initrd_path, const char *cmdline, char *err,
		   size_t errlen);

/* --- built-in test guest (vmm_guest.c) ------------------------------------ */

/* First byte the test guest fills, and how many bytes it fills. */
int vmm_selftest_load(struct vmm *vm, uint64_t *start, uint64_t *len,
		      uint32_t seed, char *err, size_t errlen);
/* The checksum the test guest must report for that range and seed. */
uint32_t vmm_selftest_expect(uint64_t start, uint64_t len, uint32_t seed);
/* Check the memory the guest filled: 0, or -EIO with the first bad
 * address in err. */
int vmm_selftest_verify(struct vmm *vm, uint64_t start, uint64_t len,
			uint32_t seed, char *err, size_t errlen);

/* --- the VM (vmm.c) ------------------------------------------------------ */

struct pm_node;

/* Guest RAM: the node's region, or anonymous memory without a node. */
struct vmm_mem {
	struct pm_node *node;
	void *base;
	size_t len;
	bool anon;
};

/*
 * With config, start the node it describes and lend its region (want bytes
 * of it); without, map want bytes of anonymous memory. 0, or -errno with a
 * message in err and the exit code to use in *code.
 */
int vmm_mem_open(struct vmm_mem *m, const char *config, uint64_t want,
		 int *code, char *err, size_t errlen);
void vmm_mem_close(struct vmm_mem *m);

/* /dev/kvm opened and its API version checked: the fd, or -1 and err. */
int vmm_open_kvm(char *err, size_t errlen);

/* Zero vm and block the signals vmm_run takes, in this thread and every
 * thread it starts (the vCPUs). Call before vmm_create. */
void vmm_prepare(struct vmm *vm);

/* The VM with RAM from m (ram_size bytes of it) and nvcpus vCPUs. 0 or
 * -errno with a message in err; vmm_destroy undoes what was done. */
int vmm_create(struct vmm *vm, int kvm_fd, const struct vmm_mem *m,
	       uint64_t ram_size, int nvcpus, char *err, size_t errlen);
void vmm_destroy(struct vmm *vm);

/*
 * Run the vCPUs until the guest ends, a signal arrives or timeout_s passes
 * (0: no limit); vm->end says which. -ETIMEDOUT when a vCPU would not stop.
 */
int vmm_run(struct vmm *vm, int timeout_s, char *err, size_t errlen);

/* --- CPU state (vmm.c) --------------------------------------------------- */

/* Flat 32-bit protected mode, paging off, selectors 0x10 (code) and
 * 0x18 (data), as both boot paths want. */
int vmm_vcpu_flat32(struct vmm_vcpu *v, uint64_t rip, uint64_t rsi,
		    uint64_t rbx, uint64_t rdx);

#endif
