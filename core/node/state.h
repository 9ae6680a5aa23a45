/* SPDX-License-Identifier: MIT */
/*
 * The page state machine: a page's state on this node (lstate[]) and, on
 * its home, its directory entry. Every change goes through ls_set() and
 * dir_set() here; a PM_DEBUG build (make asan) checks that each change is
 * legal and made under the right lock. DESIGN.md beside this file has the
 * protocol and why it loses no write; this file has the states.
 *
 * Local state: a mapping and flags, one byte per region page, under the
 * page's llock.
 *
 *                 fault (read)          grant lands
 *     INVALID ----------------> INVALID|FETCHING ----------> SHARED / EXCL
 *       ^  ^                        |  action from home:           |
 *       |  |                        |  +ACTED (our copy went) or   |
 *       |  |   grant dropped        |  +REFUSE (refuse the grant)  |
 *       |  +------------------------+                              |
 *       |                                                          |
 *       |   invalidate / recall (data goes to home)                |
 *       +----------------------------------------------------------+
 *       |
 *       |   eviction (evict.c): SHARED/EXCL -> INVALID|EVICTING, and
 *       |   INVALID|EVICTING(|WAITED) -> INVALID when the home answered
 *
 *     SHARED --fault (write-protect)--> SHARED|FETCHING --grant--> EXCL
 *     EXCL   --downgrade--> SHARED
 *
 * Rules (ls_check() enforces them in debug builds):
 *   - A mapping appears (INVALID -> SHARED/EXCL) or is upgraded (SHARED ->
 *     EXCL) only by a grant: the old state has FETCHING.
 *   - FETCHING is set only on a page with no flags, and is cleared together
 *     with ACTED and REFUSE: those two only qualify a fetch in flight.
 *   - EVICTING is set with the mapping going to INVALID, never together
 *     with FETCHING; WAITED only qualifies EVICTING.
 *   - A mapping may always be dropped (to INVALID) or downgraded (EXCL ->
 *     SHARED): that is what the home's actions do.
 * ls_set() also keeps the count of mapped pages (evict.c) in step with the
 * mapping, so no path can forget it.
 *
 * Directory entry (home only), under the page's dlock, or held by the
 * transaction that set `busy`:
 *
 *     UNOWNED --read--> SHARED{readers} --write--> EXCL{writer}
 *        ^  \____________write (invalidations first)___^  |
 *        |                                                |
 *        +--- eviction, recall ahead, holder's loss ------+
 *     EXCL{a} --read by b--> SHARED{a?, b}   (a downgraded, or gone)
 *     EXCL{a} --write by b--> EXCL{b}        (a recalled)
 *
 * Invariants (dir_check()): SHARED has at least one sharer, UNOWNED none and
 * no owner; a lost page is UNOWNED; the store is behind (store_behind) only
 * while some node holds the page, since an entry nobody holds serves its
 * grants from the store.
 */
#ifndef PM_STATE_H
#define PM_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "lock.h"

/* Node-local page state (lstate[]): low bits the mapping, high bits flags. */
enum {
	LS_INVALID = 0,		/* not mapped here */
	LS_SHARED = 1,		/* mapped read-only (uffd-wp) */
	LS_EXCL = 2,		/* mapped writable */
	LS_MASK = 3,
	LF_WAITED = 0x08,	/* a fault found it LF_EVICTING: wake it */
	LF_FETCHING = 0x10,	/* a request to home is in flight */
	LF_ACTED = 0x20,	/* home acted on our old copy while we were
				 * upgrading: the grant is out of date */
	LF_REFUSE = 0x40,	/* an action found the fetch in flight and
				 * was answered "not held": drop the grant */
	LF_EVICTING = 0x80,	/* dropped here, home not yet told (evict.c) */
	LF_FETCH_FLAGS = LF_FETCHING | LF_ACTED | LF_REFUSE,
};

/* Directory state at home. */
enum { DIR_UNOWNED = 0, DIR_SHARED = 1, DIR_EXCL = 2 };

struct txn;

struct dir_entry {
	uint8_t state;		/* DIR_* */
	uint8_t written;	/* the store holds data (0: zeros, never
				 * written back; all-zero bytes are an unused
				 * entry, so the table needs no set-up) */
	uint8_t busy;		/* a transaction owns the entry */
	uint8_t lost : 1;	/* its only copy died with its holder */
	uint8_t migratory : 1;	/* read then written by one node after
				 * another: a remote read gets it exclusive */
	uint8_t store_behind;	/* the current data is a holder's copy (the
				 * home's own mapped one, or the owner's) */
	uint8_t bounce;		/* 1 + slot: the data is in that bounce slot
				 * until the grant is delivered */
	uint16_t owner;		/* DIR_EXCL */
	uint64_t sharers;	/* DIR_SHARED: bit per node */
	struct txn *qhead, *qtail;	/* requests waiting for !busy */
};

struct pm_node;

#ifdef PM_DEBUG
void ls_check(struct pm_node *n, uint64_t page, uint8_t old, uint8_t s);
void dir_check(struct pm_node *n, uint64_t page, const struct dir_entry *e,
	       uint8_t state, uint16_t owner, uint64_t sharers);
#endif

#endif
