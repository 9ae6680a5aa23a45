// SPDX-License-Identifier: MIT
/* Payload of the VMM's Linux guest test: runs (static) as a program inside
 * the nested guest, writes MIB MiB of memory with a pattern unique to each
 * 8-byte word and the seed, reads it all back and verifies it.
 *
 *	vmm_fill SEED MIB            fill, verify, print the checksum
 *	vmm_fill --expect SEED MIB   print the checksum from the formula only
 *
 * Prints "PM-VM-FILL MIB CHECKSUM ok|BAD"; exit 0 when every word held
 * its value, 1 otherwise, 2 on usage errors. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* splitmix64: a cheap mix so neighbouring words and pages differ. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t word(uint64_t seed, uint64_t i)
{
	return mix(seed ^ (i * 0x100000001b3ull));
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || end == s || *end || *s == '-' ? -EINVAL : 0;
}

int main(int argc, char **argv)
{
	bool expect = argc == 4 && !strcmp(argv[1], "--expect");
	uint64_t seed, mib, n, i, sum = 0, bad = 0;
	uint64_t *p;

	if ((argc != 3 && !expect) ||
	    parse_u64(argv[argc - 2], &seed) ||
	    parse_u64(argv[argc - 1], &mib) || !mib || mib > (1u << 20)) {
		fprintf(stderr, "usage: vmm_fill [--expect] SEED MIB (1 to 1048576)\n");
		return 2;
	}
	n = mib << 17;		/* 8-byte words */
	if (expect) {
		for (i = 0; i < n; i++)
			sum = (sum << 1 | sum >> 63) ^ word(seed, i);
		printf("PM-VM-FILL %" PRIu64 " %016" PRIx64 " ok\n", mib, sum);
		return 0;
	}
	p = mmap(NULL, n * 8, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "vmm_fill: mmap of %" PRIu64 " MiB: %s\n", mib,
			strerror(errno));
		return 1;
	}
	for (i = 0; i < n; i++)
		p[i] = word(seed, i);
	for (i = 0; i < n; i++) {
		uint64_t w = word(seed, i);

		if (p[i] != w && bad++ < 5)
			fprintf(stderr, "vmm_fill: word %" PRIu64 " holds %016" PRIx64 ", expected %016" PRIx64 "\n",
				i, p[i], w);
		sum = (sum << 1 | sum >> 63) ^ p[i];
	}
	printf("PM-VM-FILL %" PRIu64 " %016" PRIx64 " %s\n", mib, sum,
	       bad ? "BAD" : "ok");
	return bad ? 1 : 0;
}
