// SPDX-License-Identifier: MIT
/* The VMM's built-in test guest: a few bytes of 32-bit code that fill guest
 * RAM with a pattern, checksum it and report through I/O ports, so the VM
 * loop and the memory path are tested in well under a second. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm.h"

#define SELFTEST_CODE_GPA 0x8000ull
#define SELFTEST_FILL_GPA 0x100000ull	/* everything above 1 MiB */

/*
 * Entered in flat 32-bit protected mode with %esi = first address,
 * %edx = number of dwords, %ebx = seed:
 *
 *	mov edi, esi; mov ecx, edx
 * 1:	mov eax, edi; xor eax, ebx; mov [edi], eax	; dword = addr ^ seed
 *	add edi, 4; dec ecx; jnz 1b
 *	mov edi, esi; mov ecx, edx; xor eax, eax
 * 2:	rol eax, 1; add eax, [edi]			; read it all back
 *	add edi, 4; dec ecx; jnz 2b
 *	mov dx, 0x502; out dx, eax			; the checksum
 *	mov al, 0; mov dx, 0x501; out dx, al		; exit status 0
 * 3:	hlt; jmp 3b
 */
static const uint8_t selftest_code[] = {
	0x89, 0xf7, 0x89, 0xd1,
	0x89, 0xf8, 0x31, 0xd8, 0x89, 0x07, 0x83, 0xc7, 0x04, 0x49,
	0x75, 0xf4,
	0x89, 0xf7, 0x89, 0xd1, 0x31, 0xc0,
	0xd1, 0xc0, 0x03, 0x07, 0x83, 0xc7, 0x04, 0x49, 0x75, 0xf6,
	0x66, 0xba, 0x02, 0x05, 0xef,
	0xb0, 0x00, 0x66, 0xba, 0x01, 0x05, 0xee,
	0xf4, 0xeb, 0xfd,
};

int vmm_selftest_load(struct vmm *vm, uint64_t *start, uint64_t *len,
		      uint32_t seed, char *err, size_t errlen)
{
	uint64_t end = vm->ram_size < VMM_LOW_RAM_MAX ? vm->ram_size
						      : VMM_LOW_RAM_MAX;
	void *code = vmm_gpa(vm, SELFTEST_CODE_GPA, sizeof(selftest_code));

	/* The loop counts dwords in 32 bits and addresses fit in 32 bits
	 * below the hole, so low RAM is what it can fill. */
	if (!code || end <= SELFTEST_FILL_GPA + 4096) {
		snprintf(err, errlen,
			 "guest RAM of %llu bytes is too small for the test guest (needs more than 1 MiB)",
			 (unsigned long long)vm->ram_size);
		return -EINVAL;
	}
	memcpy(code, selftest_code, sizeof(selftest_code));
	*start = SELFTEST_FILL_GPA;
	*len = (end - SELFTEST_FILL_GPA) & ~3ull;
	vm->entry_set = true;
	vm->entry_rip = SELFTEST_CODE_GPA;
	vm->entry_rsi = *start;
	vm->entry_rdx = *len / 4;
	vm->entry_rbx = seed;
	return 0;
}

/* The same sums as the guest code, from the formula, not from memory. */
uint32_t vmm_selftest_expect(uint64_t start, uint64_t len, uint32_t seed)
{
	uint32_t sum = 0, a = (uint32_t)start;
	uint64_t i;

	for (i = 0; i < len / 4; i++, a += 4)
		sum = ((sum << 1) | (sum >> 31)) + (a ^ seed);
	return sum;
}

int vmm_selftest_verify(struct vmm *vm, uint64_t start, uint64_t len,
			uint32_t seed, char *err, size_t errlen)
{
	const uint32_t *p = vmm_gpa(vm, start, len);
	uint64_t i;

	if (!p) {
		snprintf(err, errlen, "range 0x%llx+%llu is not guest RAM",
			 (unsigned long long)start, (unsigned long long)len);
		return -EINVAL;
	}
	for (i = 0; i < len / 4; i++) {
		uint32_t want = (uint32_t)(start + i * 4) ^ seed;

		if (p[i] != want) {
			snprintf(err, errlen,
				 "guest memory at 0x%llx holds 0x%08x, expected 0x%08x",
				 (unsigned long long)(start + i * 4), p[i],
				 want);
			return -EIO;
		}
	}
	return 0;
}
