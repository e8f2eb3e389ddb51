# The C library: libvmspace (static and shared), its headers and vmspace.pc.
# The root Makefile includes this fragment.
#
#   make capi                stage the library, headers and vmspace.pc in target/capi
#   make install PREFIX=...  install them (DESTDIR honoured); default /usr/local,
#                            libraries in LIBDIR ($(PREFIX)/lib), headers in
#                            INCLUDEDIR ($(PREFIX)/include)
#   make install-strip       the same, the libraries stripped of debugging
#                            information (GNU's install-strip; STRIP=...)
#   make uninstall           remove the files install put there (same
#                            variables; and include/vmspace/ when empty);
#                            builds nothing
#   make capi-install-check  install into a temporary prefix, build the vmem(9)
#                            example against it with pkg-config (shared and
#                            static) and run both
#   make capi-asan           the C tests as one program under AddressSanitizer,
#                            linked with libvmspace.a
#
# The C tests themselves run in `make test` (crate capi/ctest).

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
# The directories reach the recipes through the environment, and the
# recipes quote them, so that they may hold any character a file name can
# (spaces, quotes, &, |, %: capi-install-check installs under such a
# prefix); only a $, which make reads as its own, must be written $$.
# vmspace.pc is written by capi/scripts/pc.sh from the same variables: the
# directories relative to ${prefix} where they are under it, else whole
# (capi-install-check greps both lines); a directory .pc cannot name (a
# newline, a carriage return, or ${ in it) fails the build there.
install install-strip uninstall: export CAPI_DEST_LIBDIR = $(DESTDIR)$(LIBDIR)
install install-strip uninstall: export CAPI_DEST_INCLUDEDIR = $(DESTDIR)$(INCLUDEDIR)
capi: export PC_PREFIX = $(PREFIX)
capi: export PC_LIBDIR = $(LIBDIR)
capi: export PC_INCLUDEDIR = $(INCLUDEDIR)
CAPI_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' capi/user/Cargo.toml)
# Cargo's output directory (CARGO_TARGET_DIR when set); the stage stays in
# this checkout's target/.
CAPI_CARGO_TARGET := $(or $(CARGO_TARGET_DIR),target)
CAPI_STAGE := target/capi
CAPI_LIB := $(CAPI_CARGO_TARGET)/release/libvmspace_capi_user

.PHONY: capi install install-strip uninstall capi-install-check capi-asan

capi: cargo-present
	$(CARGO) build --release -q -p vmspace-capi-user
	rm -rf $(CAPI_STAGE)
	mkdir -p $(CAPI_STAGE)/lib/pkgconfig $(CAPI_STAGE)/include/vmspace
	cp "$(CAPI_LIB).a" $(CAPI_STAGE)/lib/libvmspace.a
	cp "$(CAPI_LIB).so" $(CAPI_STAGE)/lib/libvmspace.so.$(CAPI_VERSION)
	ln -sf libvmspace.so.$(CAPI_VERSION) $(CAPI_STAGE)/lib/libvmspace.so.0
	ln -sf libvmspace.so.0 $(CAPI_STAGE)/lib/libvmspace.so
	cp capi/include/vmspace.h $(CAPI_STAGE)/include/
	cp capi/include/vmspace/vmem.h $(CAPI_STAGE)/include/vmspace/
	PC_VERSION='$(CAPI_VERSION)' bash capi/scripts/pc.sh capi/vmspace.pc.in \
		$(CAPI_STAGE)/lib/pkgconfig/vmspace.pc

# Every file install puts down, relative to LIBDIR and INCLUDEDIR (uninstall
# removes exactly these).
CAPI_INSTALLED_LIBS := libvmspace.a libvmspace.so.$(CAPI_VERSION) libvmspace.so.0 \
	libvmspace.so pkgconfig/vmspace.pc
CAPI_INSTALLED_HEADERS := vmspace.h vmspace/vmem.h

# The libraries are written beside their place and renamed over it, so
# that a reinstall replaces the file at once rather than writing into it (a
# program running with the old libvmspace.so mapped keeps its copy; written
# in place under it, as the first version's cp did, it could crash).
STRIP ?= strip
INSTALL ?= install
# $(call capi_put,MODE,FILE): FILE into LIBDIR as a new file.
capi_put = $(INSTALL) -m $(1) $(2) "$$CAPI_DEST_LIBDIR/.$(notdir $(2)).new" && \
	mv -f "$$CAPI_DEST_LIBDIR/.$(notdir $(2)).new" "$$CAPI_DEST_LIBDIR/$(notdir $(2))"

install: capi
	$(INSTALL) -d "$$CAPI_DEST_LIBDIR/pkgconfig" "$$CAPI_DEST_INCLUDEDIR/vmspace"
	$(call capi_put,644,$(CAPI_STAGE)/lib/libvmspace.a)
	$(call capi_put,755,$(CAPI_STAGE)/lib/libvmspace.so.$(CAPI_VERSION))
	ln -sf libvmspace.so.$(CAPI_VERSION) "$$CAPI_DEST_LIBDIR/libvmspace.so.0"
	ln -sf libvmspace.so.0 "$$CAPI_DEST_LIBDIR/libvmspace.so"
	$(INSTALL) -m 644 $(CAPI_STAGE)/lib/pkgconfig/vmspace.pc "$$CAPI_DEST_LIBDIR/pkgconfig/"
	$(INSTALL) -m 644 $(CAPI_STAGE)/include/vmspace.h "$$CAPI_DEST_INCLUDEDIR/"
	$(INSTALL) -m 644 $(CAPI_STAGE)/include/vmspace/vmem.h "$$CAPI_DEST_INCLUDEDIR/vmspace/"

install-strip: install
	$(STRIP) --strip-debug "$$CAPI_DEST_LIBDIR/libvmspace.a"
	$(STRIP) --strip-unneeded "$$CAPI_DEST_LIBDIR/libvmspace.so.$(CAPI_VERSION)"

# Files only, as automake's uninstall: a directory may have been there
# before install; but vmspace/ under INCLUDEDIR is this library's own, and
# goes when empty.
uninstall:
	rm -f $(addprefix "$$CAPI_DEST_LIBDIR"/,$(CAPI_INSTALLED_LIBS))
	rm -f $(addprefix "$$CAPI_DEST_INCLUDEDIR"/,$(CAPI_INSTALLED_HEADERS))
	if [ -d "$$CAPI_DEST_INCLUDEDIR/vmspace" ]; then \
		rmdir --ignore-fail-on-non-empty "$$CAPI_DEST_INCLUDEDIR/vmspace"; fi

capi-install-check:
	bash capi/scripts/install-check.sh

capi-asan: toolchain
	bash capi/scripts/asan.sh

# The kernel side: the built-in component exports the native API
# (kernel/builtin/capi.rs, capi_exports.c); a sample C module uses it.
#   make cmodule        build the UML kernel from this checkout and vmspace_cmod.ko
#   make cmodule-test   boot UML, insmod it (its C KUnit suite runs), rmmod, parse KTAP
.PHONY: cmodule cmodule-test
cmodule:
	bash kernel/scripts/cmodule.sh

cmodule-test:
	bash kernel/scripts/cmodule-test.sh
