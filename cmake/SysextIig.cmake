# sysext_iig(TARGET target SOURCES a.iig ...): run sysext-iig on each .iig into
# ${CMAKE_CURRENT_BINARY_DIR}/gen/<name>.h and <name>.iig.c, add the .c to the target and the
# gen/ directory to its include path. Generated files are never committed.
function(sysext_iig)
  cmake_parse_arguments(IIG "" "TARGET" "SOURCES" ${ARGN})
  if(NOT IIG_TARGET OR NOT IIG_SOURCES)
    message(FATAL_ERROR "sysext_iig(TARGET target SOURCES a.iig ...)")
  endif()
  set(gen ${CMAKE_CURRENT_BINARY_DIR}/gen)
  file(MAKE_DIRECTORY ${gen})
  foreach(src IN LISTS IIG_SOURCES)
    get_filename_component(abs ${src} ABSOLUTE)
    get_filename_component(name ${src} NAME_WE)
    add_custom_command(
      OUTPUT ${gen}/${name}.h ${gen}/${name}.iig.c
      COMMAND sysext_iig --def ${abs} --header ${gen}/${name}.h --impl ${gen}/${name}.iig.c
      DEPENDS ${abs} sysext_iig
      COMMENT "sysext-iig ${name}.iig"
      VERBATIM)
    target_sources(${IIG_TARGET} PRIVATE ${gen}/${name}.h ${gen}/${name}.iig.c)
  endforeach()
  target_include_directories(${IIG_TARGET} PRIVATE ${gen})
endfunction()
