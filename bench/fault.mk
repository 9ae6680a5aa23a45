# Remote fault benchmark: pagemesh next to the naive one-handler-thread
# design, measured in the same run, with the scheduler free to mix both
# sides' threads over the CPUs and then with each side on its own CPU (-p,
# as on two machines); then scans over a working set four times
# pager.local_limit with prefetch off and on.
$(B)/bench/fault_bench: bench/fault_bench.c $(LIB_A) include/pagemesh/pagemesh.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIB_A) $(LDFLAGS) $(CORE_LIBS)

BENCH_BINS += $(B)/bench/fault_bench
BENCHES += bench-fault

bench-fault: $(B)/bench/fault_bench plugins
	@for t in $(notdir $(basename $(filter-out %/rdma.so,$(PLUGIN_SOS)))); do \
		$(RUN) 300 $(B)/bench/fault_bench -r 8 -t $$t -o $(B)/bench || exit 1; \
		$(RUN) 300 $(B)/bench/fault_bench -r 8 -p -t $$t || exit 1; \
		$(RUN) 300 $(B)/bench/fault_bench -r 8 -z -t $$t || exit 1; \
	done
	$(RUN) 300 $(B)/bench/fault_bench -s -r 3
