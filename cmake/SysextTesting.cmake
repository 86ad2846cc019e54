# One Criterion test file per module, each one ctest entry named after it.
function(sysext_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE sysext_testsupport sysext_internal PkgConfig::CRITERION
                        ${T_LIBS})
  target_compile_definitions(${name} PRIVATE
    SYSEXT_SHARED_DIR="${SYSEXT_SHARED_DIR}"
    SYSEXT_SOURCE_DIR="${SYSEXT_SOURCE_DIR}"
    SYSEXT_BINARY_DIR="${PROJECT_BINARY_DIR}")
  # Criterion forks a worker per test; --jobs keeps the two-core CI machine from oversubscribing.
  add_test(NAME ${name} COMMAND ${name} --jobs=2 --short-filename)
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
endfunction()
