# libgreen — gevent for C.
#
#   make                  libraries, samples (build/)
#   make run              the boss/worker sample (the README's first run)
#   make check            the Check suites (installs missing Debian packages first)
#   make check-asan       the suites under ASan + UBSan (build/asan/)
#   make check-valgrind   the suites under valgrind memcheck
#   make check-ucontext   the suites on the ucontext switch (build/ucontext/)
#   make bench            the benchmarks against the peers (tests/bench/)
#   make install PREFIX=/some/dir
#
# Variables: SWITCH=asm|ucontext, SAN=asan, BUILD=dir, CC, CFLAGS, PREFIX.

PREFIX  ?= /usr/local
CC      ?= cc
BUILD   ?= build
SWITCH  ?= asm
SAN     ?=
ARCH    := $(shell uname -m)

VERSION_MAJOR := 0
VERSION       := 0.1.0

OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CPPFLAGS_LIB := -D_GNU_SOURCE -Iinclude -Ilib
LIBCFLAGS := -std=gnu11 $(WARN) -fPIC -fvisibility=hidden $(CFLAGS)
LDLIBS_LIB := -lev -lcurl -lm -lpthread

ifeq ($(SAN),asan)
  SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LIBCFLAGS += $(SANFLAGS)
  LDFLAGS += $(SANFLAGS)
endif

# The context switch: assembly for the architecture, or glibc ucontext.
ifeq ($(SWITCH),ucontext)
  ARCH_SRC := lib/arch/switch_ucontext.c
  CPPFLAGS_LIB += -DGREEN_SWITCH_UCONTEXT
else ifeq ($(ARCH),x86_64)
  ARCH_SRC := lib/arch/switch_x86_64.S lib/arch/ctx_asm.c
  # The switch is entered with an inline push + jmp (lib/arch/switch.h).
  CPPFLAGS_LIB += -DGREEN__NO_RED_ZONE
  LIBCFLAGS += -mno-red-zone
else ifeq ($(ARCH),aarch64)
  ARCH_SRC := lib/arch/switch_aarch64.S lib/arch/ctx_asm.c
else
  $(error no assembly switch for $(ARCH): use make SWITCH=ucontext)
endif

LIB_SRC  := $(wildcard lib/*.c) $(ARCH_SRC)
LIB_OBJ  := $(patsubst %,$(BUILD)/obj/%.o,$(LIB_SRC))
HEADERS  := $(wildcard include/*.h lib/*.h lib/arch/*.h monkey/*.h)

SAMPLE_SRC := $(wildcard samples/*.c)
SAMPLES    := $(patsubst samples/%.c,$(BUILD)/samples/%,$(SAMPLE_SRC))
TEST_SRC   := $(wildcard tests/test_*.c)
TESTS      := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))

# The shell checks `make check` runs after the suites: every tests/*/*-test.sh
# (each ends with a "N passed, N failed" line) and the aarch64 switch test.
EXTRA_CHECKS := $(sort $(wildcard tests/*/*-test.sh)) tests/arch/run-aarch64.sh

CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck)

APP_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) -Iinclude -Itests $(if $(SAN),$(SANFLAGS))

.PHONY: all lib monkey samples tests run check check-run check-asan check-valgrind check-ucontext \
        check-aarch64 bench install deps clean

all: lib monkey samples

lib: $(BUILD)/libgreen.a $(BUILD)/libgreen.so

# green-run --threads (monkey/threads.c) tells libgreen's own pthread calls
# from the program's by their return address, which a tail call would hide:
# the files that call pthread functions off the hot paths are built without
# sibling calls, and tests/monkey/threads-test.sh checks that libgreen.so
# has no jump to one (green.c and hub.c have none today).
NO_SIBCALL_SRC := curl io local monitor proc stack threadpool
$(patsubst %,$(BUILD)/obj/lib/%.c.o,$(NO_SIBCALL_SRC)): LIBCFLAGS += -fno-optimize-sibling-calls

$(BUILD)/obj/%.c.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_LIB) $(LIBCFLAGS) -c $< -o $@

$(BUILD)/obj/%.S.o: %.S lib/arch/frame_x86_64.h lib/arch/frame_aarch64.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_LIB) $(LIBCFLAGS) -c $< -o $@

$(BUILD)/libgreen.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libgreen.so: $(LIB_OBJ) lib/libgreen.map
	$(CC) -shared -Wl,-soname,libgreen.so.$(VERSION_MAJOR) -Wl,--version-script=lib/libgreen.map \
	    $(LDFLAGS) -o $(BUILD)/libgreen.so.$(VERSION) $(LIB_OBJ) $(LDLIBS_LIB)
	ln -sf libgreen.so.$(VERSION) $(BUILD)/libgreen.so.$(VERSION_MAJOR)
	ln -sf libgreen.so.$(VERSION) $@

# The monkey shim: a separate shared object that depends on libgreen.so.
MONKEY_SRC := $(filter-out monkey/green-run.c,$(wildcard monkey/*.c))
MONKEY_OBJ := $(patsubst %,$(BUILD)/obj/%.o,$(MONKEY_SRC))
MONKEY_SO  := $(if $(MONKEY_SRC),$(BUILD)/libgreen-monkey.so)

monkey: $(MONKEY_SO) $(BUILD)/green-run

$(BUILD)/libgreen-monkey.so: $(MONKEY_OBJ) $(BUILD)/libgreen.so
	$(CC) -shared -Wl,-soname,libgreen-monkey.so $(LDFLAGS) -o $@ $(MONKEY_OBJ) \
	    -L$(BUILD) -lgreen -Wl,-rpath,'$$ORIGIN' -ldl $(LDLIBS_LIB)

$(BUILD)/green-run: monkey/green-run.c
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) $< -o $@ $(LDFLAGS)

samples: $(SAMPLES)

$(BUILD)/samples/%: samples/%.c $(BUILD)/libgreen.a include/green.h
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) $< -o $@ $(LDFLAGS) $(BUILD)/libgreen.a $(LDLIBS_LIB)

tests: $(TESTS)

# The shim's suites link libgreen and the shim as shared objects, as programs
# that use the shim do (a static libgreen beside the shim's would be a second
# hub per thread).
$(BUILD)/tests/test_monkey: tests/test_monkey.c tests/testutil.h $(BUILD)/libgreen.so $(BUILD)/libgreen-monkey.so $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) -Ilib -Imonkey $(CHECK_CFLAGS) $< -o $@ $(LDFLAGS) -L$(BUILD) \
	    -Wl,--no-as-needed -lgreen-monkey -lgreen -Wl,--as-needed -Wl,-rpath,'$$ORIGIN/..' $(CHECK_LIBS) $(LDLIBS_LIB)

$(BUILD)/tests/test_%: tests/test_%.c tests/testutil.h $(BUILD)/libgreen.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) -Ilib $(CHECK_CFLAGS) $< -o $@ $(LDFLAGS) $(BUILD)/libgreen.a \
	    $(CHECK_LIBS) $(LDLIBS_LIB)

run: deps
	@$(MAKE) --no-print-directory $(BUILD)/samples/boss_worker
	$(BUILD)/samples/boss_worker

deps:
	@sh tests/install-deps.sh

# Runs every suite; each test forks (Check's default) with a timeout.
check-run: tests samples
	@sh tests/run-suites.sh $(BUILD) $(RUNNER)

check: deps
	@$(MAKE) --no-print-directory lib monkey tests samples
	@EXTRA_CHECKS="$(EXTRA_CHECKS)" sh tests/run-suites.sh $(BUILD)

# The sanitizer, valgrind and ucontext runs scale the million-greenlet tests
# down (GREEN_TEST_QUICK): the full sizes run in the plain suite.
check-asan: deps
	@GREEN_TEST_QUICK=1 $(MAKE) --no-print-directory BUILD=build/asan SAN=asan check-run

check-ucontext: deps
	@GREEN_TEST_QUICK=1 $(MAKE) --no-print-directory BUILD=build/ucontext SWITCH=ucontext check-run

check-valgrind: deps
	@GREEN_TEST_QUICK=1 $(MAKE) --no-print-directory BUILD=build/valgrind OPT=-O1 \
	    RUNNER="valgrind -q --fair-sched=yes --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --track-origins=no" \
	    check-run

# The aarch64 switch, cross-built and run under qemu-user where available.
check-aarch64:
	@sh tests/arch/run-aarch64.sh

bench: deps lib monkey samples
	@sh tests/bench/run.sh $(BUILD)

install: lib monkey
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/green.h include/green_curl.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libgreen.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libgreen.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libgreen.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libgreen.so.$(VERSION_MAJOR)
	ln -sf libgreen.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libgreen.so
	$(if $(MONKEY_SO),install -m 755 $(MONKEY_SO) $(DESTDIR)$(PREFIX)/lib/)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BUILD)/green-run $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' lib/libgreen.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/libgreen.pc

clean:
	rm -rf build
