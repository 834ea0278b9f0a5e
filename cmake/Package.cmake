# `cmake --install build --prefix P` puts the library where programs find it:
#   P/include/tinyemo.h, tinyemo.hpp         the C API and its C++ wrappers
#   P/lib/libtinyemo.so.X.Y (SONAME), .so     exports only te_* (src/api/tinyemo.map)
#   P/lib/libtinyemo.a                        every module's objects
#   P/lib/pkgconfig/tinyemo.pc                pkg-config --cflags --libs tinyemo [--static]
#   P/lib/cmake/tinyemo/                      find_package(tinyemo): tinyemo::tinyemo (shared),
#                                             tinyemo::tinyemo_static
#   P/bin/tinyemo                             the CLI
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# What a program linking libtinyemo.a statically also needs (the shared
# library records its own dependencies).
set(TINYEMO_STATIC_LIBS sentencepiece webp png16 jpeg z fmt openblas stdc++ m pthread)
foreach(_l ${TINYEMO_STATIC_LIBS})
  string(APPEND TINYEMO_PC_LIBS_PRIVATE " -l${_l}")
endforeach()

target_include_directories(tinyemo_shared INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_include_directories(tinyemo_static INTERFACE $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
                           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(tinyemo_static INTERFACE ${TINYEMO_STATIC_LIBS})
set_target_properties(tinyemo_shared PROPERTIES EXPORT_NAME tinyemo)
set_target_properties(tinyemo_static PROPERTIES EXPORT_NAME tinyemo_static)

install(TARGETS tinyemo_shared tinyemo_static EXPORT tinyemoTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS tinyemo_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/tinyemo.h ${PROJECT_SOURCE_DIR}/include/tinyemo.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(EXPORT tinyemoTargets NAMESPACE tinyemo:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tinyemo)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/tinyemoConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/tinyemoConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tinyemo)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/tinyemoConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/tinyemoConfig.cmake ${PROJECT_BINARY_DIR}/tinyemoConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tinyemo)

# Relocatable: the prefix is found from the .pc file's own place, so an
# install with --prefix chosen at install time is right.
configure_file(${PROJECT_SOURCE_DIR}/cmake/tinyemo.pc.in ${PROJECT_BINARY_DIR}/tinyemo.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/tinyemo.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
