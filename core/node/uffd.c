// SPDX-License-Identifier: MIT
/*
 * The bottom layer: userfaultfd and page-table primitives over the region
 * (copy, write-protect, unmap, move, wake, poison). No page state, no
 * policy: callers (holder.c, home.c, evict.c, fault.c) decide what a page
 * is and say so in the arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "node.h"

/* Newer than the uapi headers of Debian 12; the running kernel has it. */
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 10)
#endif
#ifndef UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
	__u64 mode;
	__s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

const uint8_t uffd_zero_page[PM_PAGE_SIZE] __attribute__((aligned(4096)));

static struct uffdio_range range_of(struct pm_node *n, uint64_t first,
				    uint64_t count)
{
	return (struct uffdio_range){
		.start = (uintptr_t)page_addr(n, first),
		.len = count * PM_PAGE_SIZE,
	};
}

/* Wake the threads waiting on len bytes at addr (any registered pages). */
static void wake_at(struct pm_node *n, uint64_t addr, uint64_t len)
{
	struct uffdio_range r = {
		.start = addr & ~(uint64_t)(PM_PAGE_SIZE - 1),
		.len = len,
	};

	if (ioctl(n->uffd, UFFDIO_WAKE, &r) && errno != ENOENT)
		pm_warn("page at %#llx: UFFDIO_WAKE: %s",
			(unsigned long long)r.start, strerror(errno));
}

void uffd_wake(struct pm_node *n, uint64_t first, uint64_t count)
{
	wake_at(n, (uintptr_t)page_addr(n, first), count * PM_PAGE_SIZE);
}

int uffd_wp(struct pm_node *n, uint64_t first, uint64_t count, bool on)
{
	struct uffdio_writeprotect wp = {
		.range = range_of(n, first, count),
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	if (ioctl(n->uffd, UFFDIO_WRITEPROTECT, &wp)) {
		pm_err("pages %llu+%llu: UFFDIO_WRITEPROTECT(%s): %s",
		       (unsigned long long)first, (unsigned long long)count,
		       on ? "on" : "off", strerror(errno));
		return -errno;
	}
	return 0;
}

int uffd_copy(struct pm_node *n, uint64_t page, uint64_t count,
	      const void *src, bool wp)
{
	struct uffdio_copy cp = {
		.dst = (uintptr_t)page_addr(n, page),
		.src = (uintptr_t)src,
		.len = count * PM_PAGE_SIZE,
		.mode = wp ? UFFDIO_COPY_MODE_WP : 0,
	};

	if (!ioctl(n->uffd, UFFDIO_COPY, &cp)) {
		if (cp.copy == (int64_t)cp.len)
			return 0;
		pm_dbg("pages %llu+%llu: UFFDIO_COPY copied %lld bytes",
		       (unsigned long long)page, (unsigned long long)count,
		       (long long)cp.copy);
		return -EAGAIN;
	}
	if (errno == EEXIST) {
		/* Someone resolved it: its waiters must not stay asleep. */
		uffd_wake(n, page, count);
		return -EEXIST;
	}
	pm_dbg("pages %llu+%llu: UFFDIO_COPY: %s", (unsigned long long)page,
	       (unsigned long long)count, strerror(errno));
	return -errno;
}

int uffd_unmap(struct pm_node *n, uint64_t first, uint64_t count)
{
	if (!madvise(page_addr(n, first), count * PM_PAGE_SIZE,
		     MADV_DONTNEED))
		return 0;
	pm_err("pages %llu+%llu: MADV_DONTNEED: %s",
	       (unsigned long long)first, (unsigned long long)count,
	       strerror(errno));
	return -errno;
}

void uffd_protect(struct pm_node *n, uint64_t page, bool writable,
		  void *copy_out)
{
	if (writable)
		uffd_wp(n, page, 1, true);
	if (copy_out)
		memcpy(copy_out, page_addr(n, page), PM_PAGE_SIZE);
}

void uffd_drop(struct pm_node *n, uint64_t page, bool writable,
	       void *copy_out)
{
	/* Stop local writers first so the copy is the final data. */
	uffd_protect(n, page, writable, copy_out);
	uffd_unmap(n, page, 1);
}

/*
 * Taking a page away from the home (a recall for another node's write):
 * UFFDIO_MOVE of the mapped page into a bounce slot is one TLB flush, where
 * write-protect, copy, MADV_DONTNEED are two, plus the first touch of the
 * store page, all before the grant could leave. Slots are emptied all at
 * once when used up (one full flush per PM_BOUNCE_PAGES recalls).
 */
void *uffd_move_out(struct pm_node *n, uint64_t page)
{
	struct uffdio_move mv = {
		.src = (uintptr_t)page_addr(n, page), .len = PM_PAGE_SIZE,
	};
	uint8_t *slot = NULL;

	if (!n->bounce_ok)
		return NULL;
	lk_lock(&n->bounce_lock, LK_BOUNCE);
	if (n->bounce_next == PM_BOUNCE_PAGES && !n->bounce_busy) {
		if (madvise(n->bounce, PM_BOUNCE_PAGES * PM_PAGE_SIZE,
			    MADV_DONTNEED))
			pm_err("bounce slots: MADV_DONTNEED: %s",
			       strerror(errno));
		else
			n->bounce_next = 0;
	}
	if (n->bounce_next < PM_BOUNCE_PAGES) {
		slot = n->bounce + n->bounce_next++ * PM_PAGE_SIZE;
		n->bounce_busy++;
	}
	lk_unlock(&n->bounce_lock);
	if (!slot)
		return NULL;
	mv.dst = (uintptr_t)slot;
	if (ioctl(n->uffd, UFFDIO_MOVE, &mv) || mv.move != PM_PAGE_SIZE) {
		/* EBUSY: the page is shared (a fork) or pinned. */
		pm_dbg("page %llu: UFFDIO_MOVE: %s", (unsigned long long)page,
		       strerror(errno));
		uffd_bounce_done(n);
		return NULL;
	}
	/* Threads blocked on our write-protect refault and ask again. */
	uffd_wake(n, page, 1);
	return slot;
}

void uffd_bounce_fill(struct pm_node *n, uint64_t addr)
{
	struct uffdio_copy cp = {
		.dst = addr & ~(uint64_t)(PM_PAGE_SIZE - 1),
		.src = (uintptr_t)uffd_zero_page, .len = PM_PAGE_SIZE,
	};

	if (ioctl(n->uffd, UFFDIO_COPY, &cp) && errno == EEXIST)
		wake_at(n, cp.dst, PM_PAGE_SIZE);
}

void uffd_bounce_done(struct pm_node *n)
{
	lk_lock(&n->bounce_lock, LK_BOUNCE);
	n->bounce_busy--;
	lk_unlock(&n->bounce_lock);
}

/*
 * The page cannot be had: the faulting thread gets SIGBUS, never a hang.
 * Kernels before 6.6 have no UFFDIO_POISON (Debian 12's 6.1): there the
 * page is made inaccessible and the thread woken, so its retry ends in
 * SIGSEGV at that address instead of waiting forever.
 */
void uffd_poison(struct pm_node *n, uint64_t page)
{
	struct uffdio_poison p = { .range = range_of(n, page, 1) };

	if (n->have_poison && !ioctl(n->uffd, UFFDIO_POISON, &p))
		return;
	if (n->have_poison)
		pm_err("page %llu: UFFDIO_POISON: %s; making it inaccessible",
		       (unsigned long long)page, strerror(errno));
	if (mprotect(page_addr(n, page), PM_PAGE_SIZE, PROT_NONE))
		pm_err("page %llu: mprotect PROT_NONE: %s; its faulting thread stays blocked",
		       (unsigned long long)page, strerror(errno));
	uffd_wake(n, page, 1);
}

int uffd_open(struct pm_node *n)
{
	struct uffdio_api api;
	struct uffdio_register reg = {
		.range = range_of(n, 0, n->npages),
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	const uint64_t need = (1ull << _UFFDIO_COPY) |
			      (1ull << _UFFDIO_WAKE) |
			      (1ull << _UFFDIO_WRITEPROTECT);
	/* Ask for POISON (6.6+: bounded failure) and MOVE (6.8+: cheaper
	 * recalls) when the kernel has them; UFFDIO_API can be tried once
	 * per uffd, so each lesser set gets a fresh one. */
	static const uint64_t extra[] = {
		UFFD_FEATURE_POISON | UFFD_FEATURE_MOVE, UFFD_FEATURE_POISON, 0,
	};
	int r;

	for (int i = 0;; i++) {
		n->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
		if (n->uffd < 0) {
			r = -errno;
			pm_err("userfaultfd: %s%s", strerror(errno),
			       errno == EPERM ? " (needs root, CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1)" : "");
			return r;
		}
		api = (struct uffdio_api){
			.api = UFFD_API,
			.features = UFFD_FEATURE_PAGEFAULT_FLAG_WP | extra[i],
		};
		if (!ioctl(n->uffd, UFFDIO_API, &api))
			break;
		r = -errno;
		close(n->uffd);
		n->uffd = -1;
		if (!extra[i]) {
			pm_err("UFFDIO_API: %s (write-protect support needed)",
			       strerror(-r));
			return r;
		}
	}
	n->have_poison = api.features & UFFD_FEATURE_POISON;
	if (ioctl(n->uffd, UFFDIO_REGISTER, &reg)) {
		r = -errno;
		pm_err("UFFDIO_REGISTER (missing+wp) of %zu bytes: %s", n->len,
		       strerror(errno));
		return r;
	}
	if ((reg.ioctls & need) != need) {
		pm_err("userfaultfd lacks COPY/WAKE/WRITEPROTECT for this region");
		return -ENOTSUP;
	}
	if ((api.features & UFFD_FEATURE_MOVE) && n->bounce) {
		struct uffdio_register breg = {
			.range = { .start = (uintptr_t)n->bounce,
				   .len = PM_BOUNCE_PAGES * PM_PAGE_SIZE },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		/* UFFDIO_MOVE needs its destination registered with us. */
		if (ioctl(n->uffd, UFFDIO_REGISTER, &breg))
			pm_dbg("bounce slots: UFFDIO_REGISTER: %s; recalls copy",
			       strerror(errno));
		else
			n->bounce_ok = true;
	}
	return 0;
}

void uffd_close(struct pm_node *n)
{
	n->bounce_ok = false;
	if (n->uffd >= 0)
		close(n->uffd);
	n->uffd = -1;
}
