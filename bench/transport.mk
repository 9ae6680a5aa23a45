# Transport benchmark: every built plugin against a same-run blocking-socket
# baseline; table on stdout, CSV and charts under $(B)/bench and
# bench/results/ (the throughput chart also at bench/transport-throughput.png).
$(B)/bench/transport_bench: bench/transport_bench.c $(LIB_A) $(CORE_HDRS) \
		$(wildcard plugins/common/*.h)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(CORE_CFLAGS) -Iplugins/common -o $@ $< \
		$(LIB_A) $(LDFLAGS) $(CORE_LIBS)

BENCH_BINS += $(B)/bench/transport_bench
BENCHES += bench-transport

bench-transport: $(B)/bench/transport_bench plugins
	$(RUN) 300 $(B)/bench/transport_bench -o $(B)/bench
	@mkdir -p bench/results
	@if command -v gnuplot >/dev/null; then \
		gnuplot -e "datadir='$(B)/bench'; outdir='bench/results'" \
			bench/plot-transport.gp && \
		cp bench/results/transport-throughput.png \
			bench/transport-throughput.png && \
		echo "charts: bench/results/transport-latency-cdf.png bench/results/transport-throughput.png"; \
	else \
		echo "charts skipped: gnuplot not installed (make deps)"; \
	fi
