# Instruction-set variants of the kernels (src/core/isa.h).
#
# TINYEMO_NATIVE=ON (the default): every file is compiled once with
# -march=native (cmake/Flags.cmake) and this file does nothing more.
#
# TINYEMO_NATIVE=OFF (the portable build): everything is compiled for plain
# x86-64, except the files in TINYEMO_ISA_SOURCES, which are compiled once per
# variant below, with that variant's flags and TINYEMO_ISA_VARIANT=<name>
# (their functions go to namespace tinyemo::isa_<name>); src/core/dispatch.cpp
# picks one at run time. A new file with kernels (intrinsics, or loops whose
# speed depends on the target) is added to TINYEMO_ISA_SOURCES and its public
# functions to src/core/isa_kernels.h.
set(TINYEMO_ISA_SOURCES
    core/attention.cpp
    core/dtype_convert.cpp
    core/gemm_packed.cpp
    core/isa_table.cpp
    core/linear_dot.cpp
    core/linear_dot_kquant.cpp
    core/matmul.cpp
    core/ops.cpp)
# Best first; the names must match src/core/dispatch.cpp's list.
set(TINYEMO_ISA_VARIANTS avx512 avx2 baseline)
set(TINYEMO_ISA_FLAGS_avx512 -march=x86-64-v4 -mavx512vnni -mavx512vbmi -mavx512bf16 -mtune=generic)
set(TINYEMO_ISA_FLAGS_avx2 -march=x86-64-v3 -mtune=generic)
set(TINYEMO_ISA_FLAGS_baseline -march=x86-64 -mtune=generic)

# Called by src/CMakeLists.txt's tinyemo_module on each module's source list
# (`sources_var` names it): a portable build takes TINYEMO_ISA_SOURCES out of
# the core module's (they are compiled per variant below).
function(tinyemo_isa_exclude module sources_var)
  if(NOT TINYEMO_NATIVE AND module STREQUAL "tinyemo_core")
    list(TRANSFORM TINYEMO_ISA_SOURCES PREPEND ${CMAKE_CURRENT_SOURCE_DIR}/ OUTPUT_VARIABLE _sources)
    set(_kept ${${sources_var}})
    list(REMOVE_ITEM _kept ${_sources})
    set(${sources_var} ${_kept} PARENT_SCOPE)
  endif()
endfunction()

# Called by src/CMakeLists.txt once the core module exists: in a portable
# build, compiles TINYEMO_ISA_SOURCES into one object library per variant and sets TINYEMO_ISA_OBJECTS (in the caller's scope) to
# the objects to link beside <core>'s.
function(tinyemo_isa_variants core)
  set(TINYEMO_ISA_OBJECTS "" PARENT_SCOPE)
  if(TINYEMO_NATIVE)
    target_compile_definitions(${core}_objects PRIVATE TINYEMO_PORTABLE=0)
    return()
  endif()
  target_compile_definitions(${core}_objects PRIVATE TINYEMO_PORTABLE=1)
  list(TRANSFORM TINYEMO_ISA_SOURCES PREPEND ${CMAKE_CURRENT_SOURCE_DIR}/ OUTPUT_VARIABLE _sources)
  set(_objects "")
  foreach(_variant IN LISTS TINYEMO_ISA_VARIANTS)
    set(_target ${core}_${_variant}_objects)
    add_library(${_target} OBJECT ${_sources})
    target_include_directories(${_target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/include)
    # The core module's dependencies (for their headers) and the shared flags.
    get_target_property(_deps ${core}_objects LINK_LIBRARIES)
    target_link_libraries(${_target} PRIVATE ${_deps})
    target_compile_definitions(${_target} PRIVATE TINYEMO_ISA_VARIANT=${_variant})
    # -fno-gnu-unique: GCC marks inline variables and the statics of inline
    # functions STB_GNU_UNIQUE, which objcopy below cannot make local.
    target_compile_options(${_target} PRIVATE ${TINYEMO_ISA_FLAGS_${_variant}} $<$<CXX_COMPILER_ID:GNU>:-fno-gnu-unique>)
    # The variant's objects become one object in which only its entry points
    # (tinyemo::isa_<name>::...) stay global: every other symbol, and in
    # particular the inline functions and template instantiations it shares
    # with the rest of the program (std::vector<float>::..., fmt::...),
    # becomes local, with its COMDAT group dissolved. Otherwise the linker
    # would keep one copy of each for the whole program, perhaps the one
    # compiled for AVX-512, and a CPU without it would fault outside the kernels.
    string(LENGTH "isa_${_variant}" _len)
    set(_object ${CMAKE_CURRENT_BINARY_DIR}/tinyemo_isa_${_variant}.o)
    add_custom_command(OUTPUT ${_object}
      COMMAND ${CMAKE_LINKER} -r -o ${_object}.r $<TARGET_OBJECTS:${_target}>
      COMMAND ${CMAKE_OBJCOPY} -R .group -w --keep-global-symbol=_ZN7tinyemo${_len}isa_${_variant}* ${_object}.r
              ${_object}
      # Code that runs before main (a dynamic initialiser) would run on every CPU.
      COMMAND ${CMAKE_COMMAND} -DOBJECT=${_object} -DREADELF=${CMAKE_READELF} -P
              ${PROJECT_SOURCE_DIR}/cmake/IsaCheckObject.cmake
      DEPENDS ${_target} $<TARGET_OBJECTS:${_target}> ${PROJECT_SOURCE_DIR}/cmake/IsaCheckObject.cmake
      COMMENT "Linking the ${_variant} kernels into one object"
      COMMAND_EXPAND_LISTS VERBATIM)
    list(APPEND _objects ${_object})
  endforeach()
  target_sources(${core} PRIVATE ${_objects})
  set(TINYEMO_ISA_OBJECTS ${_objects} PARENT_SCOPE)
endfunction()
