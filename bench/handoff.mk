# Turn-taking hand-off across 3 nodes: pager.migratory on against off in
# the same run; faults per turn per node beside turns/s.
$(B)/bench/handoff_bench: bench/handoff_bench.c tests/cluster.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS)

BENCH_BINS += $(B)/bench/handoff_bench
BENCHES += bench-handoff

bench-handoff: $(B)/bench/handoff_bench $(B)/tests/coh_worker plugins
	$(RUN) 600 $(B)/bench/handoff_bench -r 3 -n 300
