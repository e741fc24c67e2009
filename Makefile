# Thin wrapper: every target installs what it needs, configures and builds.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build test test-asan test-tsan demo bench clean format deb

all: build

deps:
	@scripts/deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DBWPROVD_WERROR=ON $(CMAKE_FLAGS) >/dev/null

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j 2 $(CTEST_FLAGS)

# The same suite under sanitizers, in their own build trees. Packaging and
# system tests are left out: they test files, not code paths. The regex is
# anchored: an unanchored "system" would also leave out the "systemd" tests.
SAN_CTEST = ctest --output-on-failure -j 2 -LE "^(packaging|system|bench)$$" $(CTEST_FLAGS)

test-asan: deps
	cmake -S . -B $(BUILD)-asan -DBWPROVD_WERROR=ON -DBWPROVD_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(SAN_CTEST)

# clang: gcc 12's TSan runtime misses glibc's C11 thrd_create, which
# librdkafka uses for its threads, and crashes in them.
test-tsan: build
	@command -v clang >/dev/null || { echo "test-tsan needs clang: apt-get install clang"; exit 1; }
	CC=clang cmake -S . -B $(BUILD)-tsan -DBWPROVD_WERROR=ON -DBWPROVD_TSAN=ON \
		-DBWPROVD_TEST_HELPERS_DIR=$(abspath $(BUILD)) $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD)-tsan -j $(JOBS)
	cd $(BUILD)-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(abspath tests/tsan/suppressions.txt) $(SAN_CTEST)

# libFuzzer (clang): every fuzz target for a short bounded run plus its
# corpus replay. A longer run: tests/fuzz/run.sh SECONDS.
test-fuzz: deps
	CC=clang cmake -S . -B $(BUILD)-fuzz -DBWPROVD_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD)-fuzz -j $(JOBS) --target fuzzers
	cd $(BUILD)-fuzz && ctest --output-on-failure -L fuzz $(CTEST_FLAGS)

demo: build
	/usr/bin/python3 tests/demo.py $(BUILD)

# Benchmark, not part of make test (its 30 s smoke run is: ctest -L bench).
# Release build in build-release, then every scenario of bench/bench.py
# (~20 min on 2 cores); BENCH_FLAGS e.g. "--reps 5" or "--only sweep,cpu".
BENCH_OUT ?= bench/results
bench:
	@bench/deps.sh
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	cmake --build build-release -j $(JOBS) --target bwprovd mockkafka websim curlfloor
	/usr/bin/python3 bench/bench.py --build build-release --out $(BENCH_OUT) $(BENCH_FLAGS)
	@echo "bench: results in $(BENCH_OUT)/results.json"

# bwprovd_<version>_<arch>.deb in $(BUILD)/deb (packaging/build-deb.sh), for
# this machine's Debian release, or for DIST (bookworm, trixie) built in that
# release's cached root (packaging/debroot.py; root): make deb DIST=trixie.
DIST ?=
deb:
	packaging/build-deb.sh -o $(BUILD)/deb -j $(JOBS) $(if $(DIST),--dist $(DIST))

format:
	clang-format -i common/*.[ch] daemon/*.[ch] tests/*/*.[ch]

clean:
	rm -rf $(BUILD)
