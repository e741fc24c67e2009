# Thin wrapper: every target installs what it needs, configures and builds.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build test demo clean format

all: build

deps:
	@scripts/deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DBWPROVD_WERROR=ON $(CMAKE_FLAGS) >/dev/null

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j 2 $(CTEST_FLAGS)

demo: build
	/usr/bin/python3 tests/demo.py $(BUILD)

format:
	clang-format -i common/*.[ch] daemon/*.[ch] tests/*/*.[ch]

clean:
	rm -rf $(BUILD)
