# ferry: build, test and bench. Every library is found through pkg-config.

PREFIX ?= /usr/local
BUILD ?= build
CC ?= cc
PKGS := libarchive openssl libcurl yaml-0.1 sqlite3 jansson libmicrohttpd

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral $(WARN_EXTRA)
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(PKG_CFLAGS) \
	-Icommon -Iregistry -Isigning -Ibuilder -Iinstaller -MMD -MP \
	-DFERRY_VERSION=\"$(shell cat VERSION 2>/dev/null || echo 0.0.0)\"
LDLIBS := $(PKG_LIBS) -lpthread

COMMON_SRC := $(wildcard common/*.c)
REGISTRY_SRC := $(wildcard registry/*.c)
SIGV_SRC := signing/sig_verify.c signing/sig_cosign.c
SIGS_SRC := signing/sig_sign.c
BUILDER_SRC := $(filter-out builder/main.c,$(wildcard builder/*.c))
INSTALLER_SRC := $(filter-out installer/main.c,$(wildcard installer/*.c))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
# libFuzzer targets: every tests/fuzz/fuzz_NAME.c, seeds in tests/fuzz/corpus/NAME/
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

LIBCOMMON := $(BUILD)/libcommon.a
LIBREGISTRY := $(BUILD)/libregistry.a
LIBSIGV := $(BUILD)/libsigverify.a
LIBSIGS := $(BUILD)/libsigsign.a
LIBBUILDER := $(BUILD)/libbuilder.a
LIBINSTALLER := $(BUILD)/libinstaller.a

BINS := $(BUILD)/ferry-build $(BUILD)/ferry-install
UNITS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
# Each fuzz target linked with tests/fuzz/replay.c (normal compiler): runs its seeds once.
REPLAYS := $(patsubst tests/fuzz/fuzz_%.c,$(BUILD)/fuzz-replay/%,$(FUZZ_SRC))
# The same targets linked with libFuzzer (only in `make fuzz`, BUILD=build-fuzz).
FUZZERS := $(patsubst tests/fuzz/fuzz_%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
ALL_LIBS := $(LIBBUILDER) $(LIBINSTALLER) $(LIBSIGS) $(LIBSIGV) $(LIBREGISTRY) $(LIBCOMMON)

FUZZ_SECONDS ?= 60
FUZZ_RUNS ?=
FUZZ_TARGETS ?=
FUZZ_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
	-fno-sanitize-recover=undefined

.PHONY: all deps check check-asan check-tsan unit fuzz fuzz-build lint format install install-doc demo bench clean portable deb

all: $(BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBCOMMON): $(call obj,$(COMMON_SRC))
$(LIBREGISTRY): $(call obj,$(REGISTRY_SRC))
$(LIBSIGV): $(call obj,$(SIGV_SRC))
$(LIBSIGS): $(call obj,$(SIGS_SRC))
$(LIBBUILDER): $(call obj,$(BUILDER_SRC))
$(LIBINSTALLER): $(call obj,$(INSTALLER_SRC))
$(BUILD)/%.a:
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The installer links verify-only signing code: no private-key code.
$(BUILD)/ferry-build: $(BUILD)/builder/main.o $(LIBBUILDER) $(LIBSIGS) $(LIBSIGV) $(LIBREGISTRY) $(LIBCOMMON)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/ferry-install: $(BUILD)/installer/main.o $(LIBINSTALLER) $(LIBSIGV) $(LIBREGISTRY) $(LIBCOMMON)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests link the program libraries too (builder/installer code minus main).
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIBBUILDER) $(LIBINSTALLER) $(LIBSIGS) $(LIBSIGV) $(LIBREGISTRY) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/fuzz-replay/%: $(BUILD)/tests/fuzz/replay.o $(BUILD)/tests/fuzz/fuzz_%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/fuzz_%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(LDLIBS)

deps:
	@./scripts/deps

unit: $(UNITS) $(REPLAYS)

# The README's test command. Installs what is missing, builds, runs every test.
# The portable ferry-install is built once (cached in build/portable/, a
# few minutes the first time) so that its test runs too; no other test
# needs it, and a failed portable build only skips that test
# (FERRY_NO_PORTABLE=1 leaves it out).
check: deps
	$(MAKE) all unit
	@if [ -z "$(FERRY_NO_PORTABLE)" ] && [ "$(BUILD)" = build ]; then \
		$(MAKE) portable || echo "make check: the portable build failed; tests/e2e/portable.sh will be skipped"; fi
	./tests/run $(BUILD)

check-asan: deps
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all unit
	FERRY_SANITIZER=address ASAN_OPTIONS=detect_leaks=1 ./tests/run build-asan

# ThreadSanitizer: the unit tests and the threaded e2e paths (serve, push,
# the store writers, pulls). tests/tsan.supp names library internals only.
TSAN_FILTER ?=
check-tsan: deps
	$(MAKE) BUILD=build-tsan CFLAGS="-O1 -g -fsanitize=thread -fno-omit-frame-pointer" all unit
	FERRY_SANITIZER=thread TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=0 second_deadlock_stack=1 $(TSAN_OPTIONS)" \
		./tests/run build-tsan $(TSAN_FILTER)

# libFuzzer: build every target with clang into build-fuzz/, run each for
# FUZZ_SECONDS (or FUZZ_RUNS inputs); a crash fails. FUZZ_TARGETS="ref range"
# picks some. docs/fuzzing.md.
fuzz: deps
	$(MAKE) BUILD=build-fuzz CC=clang WARN_EXTRA=-Wno-unknown-warning-option \
		CFLAGS="$(FUZZ_CFLAGS)" fuzz-build
	FUZZ_SECONDS="$(FUZZ_SECONDS)" FUZZ_RUNS="$(FUZZ_RUNS)" ./tests/fuzz/run build-fuzz $(FUZZ_TARGETS)

fuzz-build: $(FUZZERS)

# A static (musl) ferry-install and ferry-build in build/portable/, from
# Debian's library sources, cached there: docs/portable.md.
portable:
	./scripts/portable

# .deb packages of the dynamic build (and of the portable one when built):
# docs/portable.md.
deb: all
	./scripts/deb $(BUILD)

lint:
	@./scripts/lint

format:
	clang-format -i $$(git ls-files "*.c" "*.h")

install: all install-doc
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/

# Man pages (man/*.1, plain roff) and the bash completion (one file, loaded
# by bash-completion under either program's name).
install-doc:
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 0644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 completion/ferry.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/ferry-build
	install -m 0644 completion/ferry.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/ferry-install

demo: deps
	$(MAKE) all
	./scripts/demo $(BUILD)

bench: deps
	$(MAKE) all
	./bench/run $(BUILD)

clean:
	rm -rf build build-asan build-tsan build-fuzz

# build/portable (scripts/portable) holds library sources: not ours to include.
-include $(shell find $(BUILD) -path $(BUILD)/portable -prune -o -name '*.d' -type f -print 2>/dev/null)
