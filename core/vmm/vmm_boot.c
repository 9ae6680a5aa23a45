// SPDX-License-Identifier: MIT
/* Linux x86 boot protocol for the VMM: check a bzImage's setup header,
 * lay out kernel, initrd and command line in guest RAM, build boot_params
 * (e820 map of the RAM) and an Intel MP table so Linux finds every vCPU. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm.h"

/* Offsets in boot_params ("zero page"), Documentation/arch/x86/boot.rst
 * and zero-page.rst. The setup header starts at 0x1f1 in both the
 * bzImage and boot_params. */
#define BP_E820_ENTRIES 0x1e8
#define BP_SETUP_SECTS 0x1f1
#define BP_VID_MODE 0x1fa
#define BP_BOOT_FLAG 0x1fe
#define BP_JUMP 0x200
#define BP_HEADER 0x202
#define BP_VERSION 0x206
#define BP_TYPE_OF_LOADER 0x210
#define BP_LOADFLAGS 0x211
#define BP_CODE32_START 0x214
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_HEAP_END_PTR 0x224
#define BP_CMD_LINE_PTR 0x228
#define BP_INITRD_ADDR_MAX 0x22c
#define BP_CMDLINE_SIZE 0x238
#define BP_INIT_SIZE 0x260
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128
#define BP_SIZE 0x1000

#define LOADED_HIGH 0x01
#define CAN_USE_HEAP 0x80

#define E820_RAM 1
#define E820_RESERVED 2

/* Guest-physical places of what we lay out. */
#define GPA_BOOT_PARAMS 0x10000ull
#define GPA_CMDLINE 0x20000ull
#define GPA_MPTABLE 0xf0000ull
#define GPA_EBDA 0x9fc00ull	/* 639 KiB: the usual end of base memory */
#define GPA_KERNEL 0x100000ull	/* protected-mode code, code32_start */
/* A relocatable x86-64 kernel decompresses to LOAD_PHYSICAL_ADDR (16 MiB
 * in distribution kernels) and needs init_size bytes from there. */
#define GPA_KERNEL_RUN 0x1000000ull
#define MIN_PROTOCOL 0x020a	/* 2.10: init_size is present */

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, sizeof(v)); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, sizeof(v)); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, sizeof(v)); }

/* Read a whole regular file of at most max bytes. */
static int read_file(const char *path, size_t max, uint8_t **out,
		     size_t *len, char *err, size_t errlen)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out_close;
	}
	if ((uint64_t)st.st_size > max) {
		r = -EFBIG;
		snprintf(err, errlen, "%s: %lld bytes, more than %zu",
			 path, (long long)st.st_size, max);
		goto out_close;
	}
	buf = malloc(st.st_size ? st.st_size : 1);
	if (!buf) {
		r = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto out_close;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			snprintf(err, errlen, "%s: read: %s", path,
				 n < 0 ? strerror(errno) : "file shrank");
			goto out_free;
		}
		got += n;
	}
	close(fd);
	*out = buf;
	*len = got;
	return 0;

out_free:
	free(buf);
out_close:
	close(fd);
	return r;
}

int vmm_kernel_read(const char *path, struct vmm_kernel *k, char *err,
		    size_t errlen)
{
	unsigned int sects;
	int r;

	memset(k, 0, sizeof(*k));
	/* No bzImage is near 1 GiB; a bigger file is not one. */
	r = read_file(path, 1u << 30, &k->data, &k->size, err, errlen);
	if (r) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s", err);
		snprintf(err, errlen, "kernel %s", msg);
		return r;
	}
	r = -EINVAL;
	if (k->size < BP_SIZE) {
		snprintf(err, errlen,
			 "%s: not a bzImage (%zu bytes, too short for a setup header)",
			 path, k->size);
		goto out_free;
	}
	if (get16(k->data + BP_BOOT_FLAG) != 0xaa55 ||
	    memcmp(k->data + BP_HEADER, "HdrS", 4)) {
		snprintf(err, errlen,
			 "%s: not a bzImage (no 0xAA55 boot flag and \"HdrS\" magic at 0x1fe/0x202)",
			 path);
		goto out_free;
	}
	k->version = get16(k->data + BP_VERSION);
	if (k->version < MIN_PROTOCOL) {
		snprintf(err, errlen,
			 "%s: boot protocol %u.%02u is too old (need %u.%02u or later)",
			 path, k->version >> 8, k->version & 0xff,
			 MIN_PROTOCOL >> 8, MIN_PROTOCOL & 0xff);
		goto out_free;
	}
	if (!(k->data[BP_LOADFLAGS] & LOADED_HIGH)) {
		snprintf(err, errlen,
			 "%s: not a bzImage (a zImage that loads at 0x10000 is not supported)",
			 path);
		goto out_free;
	}
	sects = k->data[BP_SETUP_SECTS] ? k->data[BP_SETUP_SECTS] : 4;
	k->setup_size = (size_t)(sects + 1) * 512;
	if (k->setup_size >= k->size) {
		snprintf(err, errlen,
			 "%s: setup_sects %u puts the kernel past the end of the file (%zu bytes)",
			 path, sects, k->size);
		goto out_free;
	}
	k->init_size = get32(k->data + BP_INIT_SIZE);
	k->initrd_addr_max = get32(k->data + BP_INITRD_ADDR_MAX);
	k->cmdline_max = get32(k->data + BP_CMDLINE_SIZE);
	if (k->init_size < k->size - k->setup_size) {
		snprintf(err, errlen,
			 "%s: init_size %u is smaller than the kernel itself (%zu)",
			 path, k->init_size, k->size - k->setup_size);
		goto out_free;
	}
	return 0;

out_free:
	vmm_kernel_free(k);
	return r;
}

void vmm_kernel_free(struct vmm_kernel *k)
{
	free(k->data);
	k->data = NULL;
}

/* First byte above what the booting kernel may use. */
static uint64_t kernel_end(const struct vmm_kernel *k)
{
	uint64_t a = GPA_KERNEL + (k->size - k->setup_size);
	uint64_t b = GPA_KERNEL_RUN + k->init_size;

	return a > b ? a : b;
}

static uint64_t low_ram_end(uint64_t ram_size)
{
	return ram_size < VMM_LOW_RAM_MAX ? ram_size : VMM_LOW_RAM_MAX;
}

/* Where the initrd goes: as high as the kernel allows. 0 if it does not
 * fit above the kernel. */
static uint64_t initrd_place(const struct vmm_kernel *k, uint64_t size,
			     uint64_t ram_size)
{
	uint64_t top = low_ram_end(ram_size);

	if ((uint64_t)k->initrd_addr_max + 1 < top)
		top = (uint64_t)k->initrd_addr_max + 1;
	if (size > top)
		return 0;
	top = (top - size) & ~0xfffull;
	return top >= kernel_end(k) ? top : 0;
}

int vmm_boot_check(const struct vmm_kernel *k, const char *initrd,
		   uint64_t initrd_size, uint64_t ram_size, size_t cmdline_len,
		   char *err, size_t errlen)
{
	if (!initrd)
		initrd_size = 0;
	if (initrd && initrd_size >= ram_size) {
		snprintf(err, errlen,
			 "initrd %s of %llu bytes is larger than guest RAM (%llu bytes)",
			 initrd, (unsigned long long)initrd_size,
			 (unsigned long long)ram_size);
		return -EINVAL;
	}
	if (kernel_end(k) > low_ram_end(ram_size)) {
		snprintf(err, errlen,
			 "guest RAM of %llu MiB is too small for the kernel: it needs %llu MiB",
			 (unsigned long long)(ram_size >> 20),
			 (unsigned long long)((kernel_end(k) + (1 << 20) - 1) >> 20));
		return -EINVAL;
	}
	if (initrd && !initrd_place(k, initrd_size, ram_size)) {
		snprintf(err, errlen,
			 "initrd %s of %llu MiB does not fit between the kernel (ends at %llu MiB) and the top of guest RAM below %llu MiB",
			 initrd, (unsigned long long)(initrd_size >> 20),
			 (unsigned long long)(kernel_end(k) >> 20),
			 (unsigned long long)
			 (((uint64_t)k->initrd_addr_max + 1 < low_ram_end(ram_size) ?
			   (uint64_t)k->initrd_addr_max + 1 :
			   low_ram_end(ram_size)) >> 20));
		return -EINVAL;
	}
	if (k->cmdline_max && cmdline_len > k->cmdline_max) {
		snprintf(err, errlen,
			 "command line of %zu characters is longer than the kernel accepts (%u)",
			 cmdline_len, k->cmdline_max);
		return -EINVAL;
	}
	if (cmdline_len >= GPA_MPTABLE - GPA_CMDLINE) {
		snprintf(err, errlen, "command line of %zu characters is too long",
			 cmdline_len);
		return -EINVAL;
	}
	return 0;
}

static int e820_add(uint8_t *bp, uint64_t addr, uint64_t size, uint32_t type)
{
	uint8_t n = bp[BP_E820_ENTRIES];
	uint8_t *e;

	if (n >= BP_E820_MAX)
		return -ENOSPC;
	e = bp + BP_E820_TABLE + (size_t)n * 20;
	put64(e, addr);
	put64(e + 8, size);
	put32(e + 16, type);
	bp[BP_E820_ENTRIES] = n + 1;
	return 0;
}

static uint8_t mp_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return (uint8_t)-sum;
}

/*
 * Intel MP specification 1.4 table: one processor entry per vCPU (APIC id
 * = vCPU index, 0 is the boot CPU), one ISA bus, the in-kernel IOAPIC and
 * ISA IRQs 0-15 wired to its pins 0-15, as KVM's default routing has them.
 * Without it Linux finds no SMP configuration and starts one CPU.
 */
static int build_mptable(struct vmm *vm, char *err, size_t errlen)
{
	const uint32_t ioapic_id = vm->nvcpus;
	size_t len = 44 + (size_t)vm->nvcpus * 20 + 8 + 8 + 16 * 8 + 2 * 8;
	uint8_t *fp = vmm_gpa(vm, GPA_MPTABLE, 16 + len);
	uint8_t *t, *e;
	int i, entries = 0;

	if (!fp || len > 0xffff) {
		snprintf(err, errlen, "MP table does not fit at 0x%llx",
			 GPA_MPTABLE);
		return -ENOSPC;
	}
	memset(fp, 0, 16 + len);
	t = fp + 16;
	e = t + 44;
	for (i = 0; i < vm->nvcpus; i++, entries++, e += 20) {
		e[0] = 0;			/* processor */
		e[1] = i;			/* local APIC id */
		e[2] = 0x14;			/* APIC version */
		e[3] = 0x01 | (i == 0 ? 0x02 : 0); /* enabled, BSP */
		put32(e + 4, 0x600);		/* family 6 signature */
		put32(e + 8, 0x201);		/* FPU, APIC */
	}
	e[0] = 1;				/* bus 0: ISA */
	memcpy(e + 2, "ISA   ", 6);
	e += 8, entries++;
	e[0] = 2;				/* IOAPIC */
	e[1] = ioapic_id;
	e[2] = 0x11;
	e[3] = 1;				/* enabled */
	put32(e + 4, 0xfec00000);
	e += 8, entries++;
	for (i = 0; i < 16; i++, entries++, e += 8) {
		e[0] = 3;			/* I/O interrupt */
		e[1] = 0;			/* INT */
		e[4] = 0;			/* source bus */
		e[5] = i;			/* source IRQ */
		e[6] = ioapic_id;
		e[7] = i;			/* IOAPIC pin */
	}
	e[0] = 4;				/* local interrupt */
	e[1] = 3;				/* ExtINT from the PIC */
	e[6] = 0xff;				/* all local APICs */
	e[7] = 0;				/* LINT0 */
	e += 8, entries++;
	e[0] = 4;
	e[1] = 1;				/* NMI */
	e[6] = 0xff;
	e[7] = 1;				/* LINT1 */
	entries++;

	memcpy(t, "PCMP", 4);
	put16(t + 4, (uint16_t)len);
	t[6] = 4;				/* spec 1.4 */
	memcpy(t + 8, "PAGEMESH", 8);
	memcpy(t + 16, "VMM         ", 12);
	put16(t + 34, entries);
	put32(t + 36, 0xfee00000);		/* local APIC */
	t[7] = mp_checksum(t, len);

	memcpy(fp, "_MP_", 4);
	put32(fp + 4, GPA_MPTABLE + 16);
	fp[8] = 1;				/* length in 16-byte units */
	fp[9] = 4;
	fp[10] = mp_checksum(fp, 16);
	return 0;
}

static int load_initrd(struct vmm *vm, const struct vmm_kernel *k,
		       const char *path, uint8_t *bp, char *err,
		       size_t errlen)
{
	uint8_t *data;
	uint64_t gpa;
	size_t len;
	void *dst;
	int r;

	r = read_file(path, vm->ram_size, &data, &len, err, errlen);
	if (r)
		return r;
	gpa = initrd_place(k, len, vm->ram_size);
	dst = gpa ? vmm_gpa(vm, gpa, len) : NULL;
	if (!dst) {
		snprintf(err, errlen, "%s: %zu bytes do not fit in guest RAM above the kernel",
			 path, len);
		free(data);
		return -ENOSPC;
	}
	memcpy(dst, data, len);
	free(data);
	put32(bp + BP_RAMDISK_IMAGE, (uint32_t)gpa);
	put32(bp + BP_RAMDISK_SIZE, (uint32_t)len);
	return 0;
}

int vmm_boot_linux(struct vmm *vm, const struct vmm_kernel *k,
		   const char *initrd_path, const char *cmdline, char *err,
		   size_t errlen)
{
	size_t pm_size = k->size - k->setup_size;
	size_t hdr_end, cl = strlen(cmdline);
	uint64_t low = low_ram_end(vm->ram_size);
	uint8_t *bp, *dst;
	int r;

	r = vmm_boot_check(k, NULL, 0, vm->ram_size, cl, err, errlen);
	if (r)
		return r;
	bp = vmm_gpa(vm, GPA_BOOT_PARAMS, BP_SIZE);
	dst = vmm_gpa(vm, GPA_KERNEL, pm_size);
	if (!bp || !dst) {
		snprintf(err, errlen, "guest RAM too small for the kernel");
		return -ENOSPC;
	}
	memset(bp, 0, BP_SIZE);
	/* The setup header's length is in its own jump instruction: it ends
	 * at 0x202 + the jump's byte offset. */
	hdr_end = 0x202 + k->data[BP_JUMP + 1];
	if (hdr_end > BP_E820_TABLE)
		hdr_end = BP_E820_TABLE;
	memcpy(bp + BP_SETUP_SECTS, k->data + BP_SETUP_SECTS,
	       hdr_end - BP_SETUP_SECTS);
	memcpy(dst, k->data + k->setup_size, pm_size);

	put16(bp + BP_VID_MODE, 0xffff);	/* "normal" */
	bp[BP_TYPE_OF_LOADER] = 0xff;		/* undefined loader */
	bp[BP_LOADFLAGS] |= CAN_USE_HEAP;
	put16(bp + BP_HEAP_END_PTR, 0xfe00);
	put32(bp + BP_CODE32_START, GPA_KERNEL);

	dst = vmm_gpa(vm, GPA_CMDLINE, cl + 1);
	if (!dst) {
		snprintf(err, errlen, "guest RAM too small for the command line");
		return -ENOSPC;
	}
	memcpy(dst, cmdline, cl + 1);
	put32(bp + BP_CMD_LINE_PTR, GPA_CMDLINE);

	if (initrd_path) {
		r = load_initrd(vm, k, initrd_path, bp, err, errlen);
		if (r)
			return r;
	}

	/* Base memory up to the EBDA, the BIOS area (where the MP table
	 * lives) reserved, then the rest of RAM around the 32-bit hole. */
	r = e820_add(bp, 0, GPA_EBDA, E820_RAM);
	r = r ? r : e820_add(bp, GPA_EBDA, GPA_KERNEL - GPA_EBDA,
			     E820_RESERVED);
	r = r ? r : e820_add(bp, GPA_KERNEL, low - GPA_KERNEL, E820_RAM);
	if (!r && vm->ram_size > low)
		r = e820_add(bp, VMM_HIGH_RAM_BASE, vm->ram_size - low,
			     E820_RAM);
	if (r) {
		snprintf(err, errlen, "e820 map full");
		return r;
	}
	r = build_mptable(vm, err, errlen);
	if (r)
		return r;
	/* 32-bit boot protocol: flat segments, %esi = boot_params, %ebp,
	 * %edi and %ebx zero. */
	vm->entry_set = true;
	vm->entry_rip = GPA_KERNEL;
	vm->entry_rsi = GPA_BOOT_PARAMS;
	vm->entry_rbx = 0;
	vm->entry_rdx = 0;
	return 0;
}
