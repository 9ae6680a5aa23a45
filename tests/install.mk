# make install / uninstall into a temporary prefix, and the README's C
# example linked against the build tree and the install (shared, static).
TESTS += test-install
test-install: $(BIN) $(LIB_SO) $(B)/$(LIB_SONAME) plugins
	$(RUN) 300 env MAKE="$(MAKE)" \
		SAN="$(filter -fsanitize=%,$(LDFLAGS))" tests/install_test.sh
