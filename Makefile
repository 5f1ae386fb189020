# ferry: build, test and bench. Every library is found through pkg-config.

PREFIX ?= /usr/local
BUILD ?= build
CC ?= cc
PKGS := libarchive openssl libcurl yaml-0.1 sqlite3 jansson libmicrohttpd

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral -Wno-format-truncation
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(PKG_CFLAGS) \
	-Icommon -Iregistry -Isigning -Ibuilder -Iinstaller -MMD -MP \
	-DFERRY_VERSION=\"$(shell cat VERSION 2>/dev/null || echo 0.0.0)\"
LDLIBS := $(PKG_LIBS) -lpthread

COMMON_SRC := $(wildcard common/*.c)
REGISTRY_SRC := $(wildcard registry/*.c)
SIGV_SRC := signing/sig_verify.c
SIGS_SRC := signing/sig_sign.c
BUILDER_SRC := $(filter-out builder/main.c,$(wildcard builder/*.c))
INSTALLER_SRC := $(filter-out installer/main.c,$(wildcard installer/*.c))
UNIT_SRC := $(wildcard tests/unit/test_*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

LIBCOMMON := $(BUILD)/libcommon.a
LIBREGISTRY := $(BUILD)/libregistry.a
LIBSIGV := $(BUILD)/libsigverify.a
LIBSIGS := $(BUILD)/libsigsign.a
LIBBUILDER := $(BUILD)/libbuilder.a
LIBINSTALLER := $(BUILD)/libinstaller.a

BINS := $(BUILD)/ferry-build $(BUILD)/ferry-install
UNITS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all deps check check-asan unit lint format install demo bench clean

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

deps:
	@./scripts/deps

unit: $(UNITS)

# The README's test command. Installs what is missing, builds, runs every test.
check: deps
	$(MAKE) all unit
	./tests/run $(BUILD)

check-asan: deps
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all unit
	ASAN_OPTIONS=detect_leaks=1 ./tests/run build-asan

lint:
	@./scripts/lint

format:
	clang-format -i $$(git ls-files "*.c" "*.h")

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/

demo: deps
	$(MAKE) all
	./scripts/demo $(BUILD)

bench: deps
	$(MAKE) all
	./bench/run $(BUILD)

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
