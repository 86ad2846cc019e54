# A component is one subsystem's object library. All of them are linked into libsysext.so
# (hidden visibility, only sysext_* exported) and into sysext_internal.a, which tests,
# fuzzers and benchmarks link to reach internals without widening the export list.
define_property(GLOBAL PROPERTY SYSEXT_COMPONENTS BRIEF_DOCS "object libraries of libsysext" FULL_DOCS "-")
define_property(GLOBAL PROPERTY SYSEXT_COMPONENT_LIBS BRIEF_DOCS "their link deps" FULL_DOCS "-")

function(sysext_component name)
  cmake_parse_arguments(C "" "" "SOURCES;LIBS" ${ARGN})
  add_library(${name} OBJECT ${C_SOURCES})
  target_include_directories(${name} PUBLIC
    ${SYSEXT_SOURCE_DIR} ${SYSEXT_SOURCE_DIR}/libsysext/include ${PROJECT_BINARY_DIR}/gen/include)
  target_compile_options(${name} PRIVATE -fvisibility=hidden)
  target_compile_definitions(${name} PRIVATE SYSEXT_BUILDING_LIBRARY)
  if(C_LIBS)
    target_link_libraries(${name} PUBLIC ${C_LIBS})
  endif()
  set_property(GLOBAL APPEND PROPERTY SYSEXT_COMPONENTS ${name})
  set_property(GLOBAL APPEND PROPERTY SYSEXT_COMPONENT_LIBS ${C_LIBS})
endfunction()
