# The front door. Every target first makes sure its Debian packages are installed
# (tools/debian-packages.txt), then drives CMake presets (CMakePresets.json).
#
#   make demo    the tour of jitkit, then the SOM showcase benchmark
#   make test    configure, build and run every test (ctest) in build/
#   make bench   build and run every benchmark; JSON per binary in build/bench/<binary>.json
#   make asan    the tests under AddressSanitizer + UBSan (build-asan/)
#   make tsan    the concurrency tests (labels stress, code, patch, rseq, ic) under ThreadSanitizer
#                (build-tsan/). TSan reserves most of the address space, so tests that map host
#                data at fixed far/low addresses cannot run under it; TSAN_TESTS overrides. Of
#                the SOM VM's stress tests only the compile thread's (BackgroundCompile.*) run:
#                the others are single-threaded runs under GC stress.
#   make format  clang-format every C++ source
#
# Variables: JOBS (parallel jobs, default: cores), CTEST_ARGS (extra ctest arguments, e.g. -L asm).

JOBS ?= $(shell nproc)
CTEST_ARGS ?=
TSAN_TESTS ?= -L 'stress|code|patch|rseq|ic' -E '^(som\.|example\.som|SomEmbedding)'
ENSURE := tools/ensure-packages
ifeq ($(CI),true)
  export JITKIT_WERROR := ON
else
  export JITKIT_WERROR := OFF
endif

.PHONY: all build demo test bench asan tsan format clean

all: build

build:
	@$(ENSURE) build
	cmake --preset default >/dev/null
	cmake --build --preset default -j $(JOBS)

demo: build
	./build/tools/tour/jitkit-tour
	@if [ -x build/som/som ]; then tools/som-showcase; fi

test:
	@$(ENSURE) test
	cmake --preset default >/dev/null
	cmake --build --preset default -j $(JOBS)
	ctest --preset default -j $(JOBS) $(CTEST_ARGS)

bench:
	@$(ENSURE) bench
	cmake --preset default >/dev/null
	cmake --build --preset default -j $(JOBS)
	tools/run-benchmarks build

asan:
	@$(ENSURE) asan
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS) $(CTEST_ARGS)

tsan:
	@$(ENSURE) tsan
	cmake --preset tsan >/dev/null
	cmake --build --preset tsan -j $(JOBS)
	ctest --preset tsan -j $(JOBS) $(TSAN_TESTS) $(CTEST_ARGS)

format:
	@$(ENSURE) format
	git ls-files '*.h' '*.cpp' '*.cc' | xargs clang-format -i

clean:
	rm -rf build build-asan build-tsan build-release
