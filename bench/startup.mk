# Start-up and stop of one node with a 1 GiB, 64 GiB and 1 TiB region:
# time to "up", RSS then, and the stop, with 1 GiB as the baseline.
BENCHES += bench-startup

bench-startup: $(BIN) plugins
	$(RUN) 300 sh bench/startup.sh $(B) 5
