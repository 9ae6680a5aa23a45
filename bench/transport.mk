# Transport benchmark: every built plugin against a same-run blocking-socket
# baseline; table on stdout, CSV and charts under $(B)/bench only (the
# README's bench/transport-throughput.png is a chart copied from there by
# hand, from the machine the README's numbers were measured on).
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
	@if command -v gnuplot >/dev/null; then \
		gnuplot -e "datadir='$(B)/bench'; outdir='$(B)/bench'" \
			bench/plot-transport.gp && \
		echo "charts: $(B)/bench/transport-latency-cdf.png $(B)/bench/transport-throughput.png"; \
	else \
		echo "charts skipped: gnuplot not installed (make deps)"; \
	fi
