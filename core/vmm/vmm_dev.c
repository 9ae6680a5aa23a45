// SPDX-License-Identifier: MIT
/* The VMM's devices: an address-range bus for port I/O and MMIO, an 8250
 * UART on COM1 (guest output to stdout), a CMOS clock, the i8042 reset
 * line, and two ports of our own: the guest's exit status and the test
 * guest's report. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "log.h"
#include "vmm.h"

int vmm_bus_add(struct vmm_bus *bus, uint64_t base, uint64_t len,
		vmm_io_fn fn, void *dev, const char *name)
{
	int i;

	if (!len || base > UINT64_MAX - (len - 1))
		return -EINVAL;
	if (bus->n >= VMM_MAX_DEVS)
		return -ENOSPC;
	for (i = 0; i < bus->n; i++) {
		const struct vmm_range *r = &bus->r[i];

		/* Overlap test on last addresses: no sum can overflow. */
		if (base <= r->base + (r->len - 1) &&
		    r->base <= base + (len - 1))
			return -EBUSY;
	}
	bus->r[bus->n++] = (struct vmm_range){ base, len, fn, dev, name };
	return 0;
}

bool vmm_bus_io(struct vmm *vm, struct vmm_bus *bus, uint64_t addr,
		uint8_t *data, uint32_t size, bool is_write)
{
	int i;

	for (i = 0; i < bus->n; i++) {
		const struct vmm_range *r = &bus->r[i];

		if (addr < r->base || addr - r->base >= r->len ||
		    size > r->len - (addr - r->base))
			continue;
		r->fn(vm, r->dev, addr - r->base, data, size, is_write);
		return true;
	}
	return false;
}

void vmm_end(struct vmm *vm, enum vmm_end how, int status, const char *fmt,
	     ...)
{
	va_list ap;

	pthread_mutex_lock(&vm->lock);
	if (vm->end == VMM_RUNNING) {
		vm->exit_status = status;
		if (fmt) {
			va_start(ap, fmt);
			vsnprintf(vm->why, sizeof(vm->why), fmt, ap);
			va_end(ap);
		}
		__atomic_store_n(&vm->end, how, __ATOMIC_RELEASE);
		pthread_kill(vm->waiter, SIGUSR2);
	}
	pthread_mutex_unlock(&vm->lock);
}

/* --- 8250 UART ------------------------------------------------------------
 * Enough of a 16550A for Linux's serial8250 driver and its console: output
 * only (reads of RBR return 0, no data is ever ready), the "transmitter
 * empty" interrupt that the driver's interrupt-driven writes wait for, and
 * the loopback bits of MSR that its probe checks. */
#define UART_LCR_DLAB 0x80
#define UART_IER_THRI 0x02
#define UART_MCR_LOOP 0x10
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40

static void uart_update_irq(struct vmm *vm, struct vmm_uart *u)
{
	bool level = (u->ier & UART_IER_THRI) && u->thr_irq;
	struct kvm_irq_level irq = { .irq = VMM_IRQ_COM1, .level = level };

	if (level == u->line)
		return;
	u->line = level;
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		pm_warn("vm: uart: KVM_IRQ_LINE %d: %s", VMM_IRQ_COM1,
			strerror(errno));
}

static void uart_out(struct vmm_uart *u, uint8_t c)
{
	ssize_t n;

	/* The guest's console goes out unbuffered; a short write to a
	 * closed pipe drops output but never stops the guest. */
	do {
		n = write(u->out_fd, &c, 1);
	} while (n < 0 && errno == EINTR);
}

static void uart_io(struct vmm *vm, void *dev, uint64_t off, uint8_t *data,
		    uint32_t size, bool is_write)
{
	struct vmm_uart *u = dev;
	bool dlab;
	uint8_t v = 0;

	if (size != 1) {	/* the 8250 has byte registers only */
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	pthread_mutex_lock(&u->lock);
	dlab = u->lcr & UART_LCR_DLAB;
	if (is_write) {
		v = data[0];
		switch (off) {
		case 0:
			if (dlab) {
				u->dll = v;
				break;
			}
			uart_out(u, v);
			/* Sent at once, so the holding register is
			 * empty again. */
			u->thr_irq = true;
			break;
		case 1:
			if (dlab) {
				u->dlm = v;
				break;
			}
			/* Enabling THRI with the register empty raises the
			 * interrupt: the driver's THRE test relies on it. */
			if ((v & UART_IER_THRI) && !(u->ier & UART_IER_THRI))
				u->thr_irq = true;
			u->ier = v & 0x0f;
			break;
		case 2: u->fcr = v; break;
		case 3: u->lcr = v; break;
		case 4: u->mcr = v & 0x1f; break;
		case 7: u->scr = v; break;
		}
	} else {
		switch (off) {
		case 0: v = dlab ? u->dll : 0; break;
		case 1: v = dlab ? u->dlm : u->ier; break;
		case 2:
			/* 0xc0: FIFOs enabled, so Linux sees a 16550A. */
			v = (u->fcr & 1) ? 0xc0 : 0;
			if ((u->ier & UART_IER_THRI) && u->thr_irq) {
				v |= 0x02;
				u->thr_irq = false;	/* read clears it */
			} else {
				v |= 0x01;		/* nothing pending */
			}
			break;
		case 3: v = u->lcr; break;
		case 4: v = u->mcr; break;
		case 5: v = UART_LSR_THRE | UART_LSR_TEMT; break;
		case 6:
			if (u->mcr & UART_MCR_LOOP)	/* outputs wired back */
				v = ((u->mcr & 0x01) << 5) |
				    ((u->mcr & 0x02) << 3) |
				    ((u->mcr & 0x0c) << 4);
			else				/* DCD, DSR, CTS */
				v = 0xb0;
			break;
		case 7: v = u->scr; break;
		}
		data[0] = v;
	}
	uart_update_irq(vm, u);
	pthread_mutex_unlock(&u->lock);
}

/* --- i8042: only the reset line. Linux with reboot=k pulses it to reboot;
 * we take that as the guest's end. Status reads say "buffers empty", so
 * the reset command is accepted and the driver's probe finds no keyboard.
 */
static int i8042_cmd;	/* tells the command port from the data port */

static void i8042_io(struct vmm *vm, void *dev, uint64_t off, uint8_t *data,
		     uint32_t size, bool is_write)
{
	(void)off;
	if (!is_write) {
		memset(data, 0, size);
		return;
	}
	if (dev == &i8042_cmd && size == 1 && data[0] == 0xfe)
		vmm_end(vm, VMM_END_RESET, 0, "guest reset (i8042)");
}

static void exit_io(struct vmm *vm, void *dev, uint64_t off, uint8_t *data,
		    uint32_t size, bool is_write)
{
	(void)dev;
	(void)off;
	if (!is_write) {
		memset(data, 0, size);
		return;
	}
	vmm_end(vm, VMM_END_EXIT_PORT, data[0], "guest exit status %u",
		data[0]);
}

static void report_io(struct vmm *vm, void *dev, uint64_t off, uint8_t *data,
		      uint32_t size, bool is_write)
{
	uint32_t v = 0;

	(void)dev;
	(void)off;
	if (!is_write) {
		memset(data, 0, size);
		return;
	}
	memcpy(&v, data, size < 4 ? size : 4);
	pthread_mutex_lock(&vm->lock);
	vm->report = v;
	vm->reported = true;
	pthread_mutex_unlock(&vm->lock);
}

/* --- CMOS RTC (ports 0x70 index, 0x71 data): the host's UTC time in BCD,
 * never "update in progress". Without it Linux's rtc_cmos probe spins on
 * the UIP bit of an all-ones register for tens of seconds. */
static uint8_t bcd(int v)
{
	return (uint8_t)((v / 10) << 4 | (v % 10));
}

static void rtc_io(struct vmm *vm, void *dev, uint64_t off, uint8_t *data,
		   uint32_t size, bool is_write)
{
	struct vmm_rtc *rtc = dev;
	struct tm tm;
	time_t now;
	uint8_t v;

	(void)vm;
	if (size != 1) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	pthread_mutex_lock(&rtc->lock);
	if (off == 0) {
		if (is_write)
			rtc->index = data[0] & 0x7f;	/* bit 7: NMI mask */
		else
			data[0] = rtc->index;
		goto out;
	}
	if (is_write) {
		/* Time and status registers stay the host's; the rest is
		 * plain CMOS memory. */
		if (rtc->index > 0x0d && rtc->index != 0x32)
			rtc->ram[rtc->index] = data[0];
		goto out;
	}
	now = time(NULL);
	gmtime_r(&now, &tm);
	switch (rtc->index) {
	case 0x00: v = bcd(tm.tm_sec > 59 ? 59 : tm.tm_sec); break;
	case 0x02: v = bcd(tm.tm_min); break;
	case 0x04: v = bcd(tm.tm_hour); break;
	case 0x06: v = bcd(tm.tm_wday + 1); break;
	case 0x07: v = bcd(tm.tm_mday); break;
	case 0x08: v = bcd(tm.tm_mon + 1); break;
	case 0x09: v = bcd(tm.tm_year % 100); break;
	case 0x32: v = bcd(19 + tm.tm_year / 100); break;
	case 0x0a: v = 0x26; break;	/* 32.768 kHz, 1024 Hz; UIP clear */
	case 0x0b: v = 0x02; break;	/* 24-hour, BCD, no interrupts */
	case 0x0c: v = 0x00; break;
	case 0x0d: v = 0x80; break;	/* valid RAM and time */
	default: v = rtc->ram[rtc->index]; break;
	}
	data[0] = v;
out:
	pthread_mutex_unlock(&rtc->lock);
}

/* Port 0x80 is the classic "I/O delay" port: written often, means nothing. */
static void ignore_io(struct vmm *vm, void *dev, uint64_t off, uint8_t *data,
		      uint32_t size, bool is_write)
{
	(void)vm;
	(void)dev;
	(void)off;
	if (!is_write)
		memset(data, 0xff, size);
}

int vmm_devices_init(struct vmm *vm, int out_fd)
{
	struct vmm_uart *u = &vm->uart;
	int r;

	memset(u, 0, sizeof(*u));
	pthread_mutex_init(&u->lock, NULL);
	u->out_fd = out_fd;
	r = vmm_bus_add(&vm->pio, VMM_PORT_COM1, 8, uart_io, u, "com1");
	/* Data (0x60) and command/status (0x64) only: 0x61 between them is
	 * the PIT's speaker gate, which KVM's in-kernel PIT owns. */
	if (!r)
		r = vmm_bus_add(&vm->pio, VMM_PORT_I8042, 1, i8042_io, NULL,
				"i8042-data");
	if (!r)
		r = vmm_bus_add(&vm->pio, VMM_PORT_I8042_CMD, 1, i8042_io,
				&i8042_cmd, "i8042-cmd");
	if (!r)
		r = vmm_bus_add(&vm->pio, VMM_PORT_EXIT, 1, exit_io, NULL,
				"exit");
	if (!r)
		r = vmm_bus_add(&vm->pio, VMM_PORT_REPORT, 4, report_io, NULL,
				"report");
	if (!r)
		r = vmm_bus_add(&vm->pio, 0x80, 1, ignore_io, NULL, "delay");
	if (!r)
		r = vmm_bus_add(&vm->pio, VMM_PORT_RTC, 2, rtc_io, &vm->rtc,
				"rtc");
	if (r) {
		pthread_mutex_destroy(&u->lock);
		return r;
	}
	memset(&vm->rtc, 0, sizeof(vm->rtc));
	pthread_mutex_init(&vm->rtc.lock, NULL);
	return 0;
}

void vmm_devices_fini(struct vmm *vm)
{
	pthread_mutex_destroy(&vm->uart.lock);
	pthread_mutex_destroy(&vm->rtc.lock);
}
