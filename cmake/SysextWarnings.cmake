# Warnings are errors everywhere; sanitizers are one switch.
add_compile_options(-Wall -Wextra -Werror -Wvla -Wshadow -Wformat=2 -Wno-unused-parameter
                    -Wstrict-prototypes -Wmissing-prototypes -Wimplicit-fallthrough
                    -fno-strict-aliasing)
add_compile_definitions(_GNU_SOURCE)

if(SYSEXT_SANITIZE)
  set(_san -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_compile_options(${_san})
  add_link_options(-fsanitize=address,undefined)
endif()

# libFuzzer needs coverage instrumentation in the library code too, not only in the target.
if(SYSEXT_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

# A shared library must resolve every symbol itself (-Wl,--no-undefined), except where the
# executable provides part of the runtime: clang's sanitizer and libFuzzer runtimes are linked
# into the program, not into shared objects.
set(SYSEXT_SHARED_NO_UNDEFINED -Wl,--no-undefined)
if(SYSEXT_FUZZ OR (SYSEXT_SANITIZE AND CMAKE_C_COMPILER_ID STREQUAL "Clang"))
  set(SYSEXT_SHARED_NO_UNDEFINED)
endif()
