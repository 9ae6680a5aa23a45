#!/usr/bin/env python3
# Replacement policies of core/evict.c replayed offline on fault_bench -s's
# touch sequences: faults per pass, in seconds instead of minutes. It models
# what the policies can see (the fault that maps a page, nothing else) and
# the evictor's watermarks; it matched the real bench within 3% (faults per
# pass, every row), so policy parameters can be explored here first.
#   bench/evict_sim.py [--hot N] [--rounds R] [--sweep]
#     --hot N   hot set of N/16 of the 64 MiB set (fault_bench: 3)
#     --sweep   2Q over protected shares and promotion distances
import argparse
import collections

M64 = (1 << 64) - 1
PAGES = 16384                   # the 64 MiB working set
NP = 2 * PAGES                  # the node's region; the set is its top half
LIMIT = 4096                    # local_limit 16 MiB
MARGIN = min(512, LIMIT // 8)   # evict.c margin()
LOW, HIGH = LIMIT - MARGIN, LIMIT - MARGIN // 2


def touches(mode, seed, hot16):
    """fault_bench.c scan(): the same xorshift, the same pages."""
    x = (0x9e3779b97f4a7c15 * (2 * seed - 1)) & M64
    for i in range(PAGES):
        if mode == 'seq':
            p = i % PAGES
        else:
            x ^= (x << 13) & M64
            x ^= x >> 7
            x ^= (x << 17) & M64
            p = (x >> 8) % PAGES
            if mode == 'hot' and x % 10 < 9:
                p = (x >> 8) % (PAGES * hot16 // 16)
        yield PAGES + p


class Fifo:
    def __init__(self):
        self.q, self.res = collections.deque(), set()

    def mapped(self, p):
        self.res.add(p)
        self.q.append(p)

    def victim(self):
        while True:
            p = self.q.popleft()
            if p in self.res:
                return p


class Clock:
    def __init__(self):
        self.ref, self.res, self.hand = bytearray(NP), set(), 0

    def mapped(self, p):
        self.res.add(p)
        self.ref[p] = 1

    def victim(self):
        while True:
            p = self.hand % NP
            self.hand += 1
            if p in self.res:
                if not self.ref[p]:
                    return p
                self.ref[p] = 0


class TwoQ:
    def __init__(self, protected=LIMIT - LIMIT // 4, distance=LIMIT // 8):
        self.rings = (collections.deque(), collections.deque())
        self.ring_of, self.stamp, self.res = {}, {}, set()
        self.clock, self.protected, self.distance = 0, protected, distance

    def mapped(self, p):
        self.res.add(p)
        st = self.stamp.pop(p, None)
        q = int(st is not None and self.clock - st <= self.distance)
        self.rings[q].append(p)
        self.ring_of[p] = q

    def victim(self):
        prob, prot = self.rings
        while len(prot) > self.protected:
            x = prot.popleft()
            prob.append(x)
            self.ring_of[x] = 0
        while True:
            q = 0 if prob else 1
            p = self.rings[q].popleft()
            if p in self.res and self.ring_of.get(p) == q:
                del self.ring_of[p]
                self.clock += 1
                self.stamp[p] = self.clock
                return p


def run(pol, hot16, rounds):
    """fault_bench -s order: per round sequential, random, hot-set, then
    3 settled passes; faults per pass."""
    faults = collections.Counter()
    for _ in range(rounds):
        for row, mode, seeds in (('sequential', 'seq', [1]),
                                 ('random', 'rand', [1]),
                                 ('hot-set', 'hot', [1]),
                                 ('hot-settld', 'hot', [2, 3, 4])):
            for seed in seeds:
                for p in touches(mode, seed, hot16):
                    if p in pol.res:
                        continue
                    faults[row] += 1
                    if len(pol.res) + 1 > LIMIT:       # evict_make_room
                        pol.res.discard(pol.victim())
                    pol.mapped(p)
                    if len(pol.res) > HIGH:             # evict_thread
                        while len(pol.res) > LOW:
                            pol.res.discard(pol.victim())
    return {r: f // (rounds * (3 if r == 'hot-settld' else 1))
            for r, f in faults.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--hot', type=int, default=3)
    ap.add_argument('--rounds', type=int, default=4)
    ap.add_argument('--sweep', action='store_true')
    a = ap.parse_args()
    pols = [('fifo', Fifo), ('clock', Clock), ('2q', TwoQ)]
    if a.sweep:
        pols += [('2q %d/%d' % (h, d), lambda h=h, d=d: TwoQ(h, d))
                 for h in (LIMIT // 2, LIMIT * 3 // 4, LIMIT * 7 // 8)
                 for d in (LIMIT // 16, LIMIT // 8, LIMIT // 4, LIMIT // 2)]
    print('faults per pass, hot set %d/16 of %d pages, limit %d'
          % (a.hot, PAGES, LIMIT))
    for name, mk in pols:
        r = run(mk(), a.hot, a.rounds)
        print('%-14s' % name, '  '.join('%s %5d' % kv for kv in r.items()),
              flush=True)


if __name__ == '__main__':
    main()
