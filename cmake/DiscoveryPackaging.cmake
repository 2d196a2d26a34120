# Install rules and the Debian package (CPack DEB) of discovery:
#   /usr/bin/discovery, /usr/bin/discoveryd
#   /lib/systemd/system/{discoveryd,discovery-exporter}.service
#   /etc/default/{discoveryd,discovery-exporter}                 (conffiles, 0640)
#   /usr/share/bash-completion/completions/{discovery,discoveryd} (generated from the binaries)
# and the maintainer scripts in packaging/debian. Build it in a Release tree:
#   cmake --build build/release --target package   ->   build/release/discovery_<version>_<arch>.deb

# The completion scripts come from the built binaries (`<binary> completion bash`), so they
# always match their command trees. HOME and the working directory point at the output folder:
# no user config file can change what is generated.
set(_completion_dir ${PROJECT_BINARY_DIR}/completion)
set(_completion_files ${_completion_dir}/discovery ${_completion_dir}/discoveryd)
add_custom_command(
  OUTPUT ${_completion_files}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${_completion_dir}
  COMMAND ${CMAKE_COMMAND} -E env HOME=${_completion_dir}
          sh -c "\"$1\" completion bash > discovery.tmp && mv discovery.tmp discovery" sh
          $<TARGET_FILE:discovery>
  COMMAND ${CMAKE_COMMAND} -E env HOME=${_completion_dir}
          sh -c "\"$1\" completion bash > discoveryd.tmp && mv discoveryd.tmp discoveryd" sh
          $<TARGET_FILE:discoveryd>
  WORKING_DIRECTORY ${_completion_dir}
  DEPENDS discovery discoveryd
  COMMENT "Generating the bash completion of discovery and discoveryd"
  VERBATIM)
add_custom_target(discovery_bash_completion ALL DEPENDS ${_completion_files})

install(TARGETS discovery discoveryd RUNTIME DESTINATION bin)
install(FILES ${_completion_files} DESTINATION share/bash-completion/completions)
# Debian 12 keeps units shipped by packages in /lib/systemd/system (usrmerge moves them later).
install(FILES packaging/systemd/discoveryd.service packaging/systemd/discovery-exporter.service
        DESTINATION /lib/systemd/system)
# 0640: an admin may put DISCOVERY_TOKEN_SECRET or etcd passwords here; systemd reads the file
# as root before it drops to the discovery user.
install(FILES packaging/default/discoveryd packaging/default/discovery-exporter
        DESTINATION /etc/default PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)

# Alerting rules for discovery itself, for the Prometheus that scrapes it.
install(FILES packaging/prometheus/discovery-alerts.yml DESTINATION share/discovery/prometheus)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME discovery)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "discovery maintainers <discovery@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "service discovery registry for Prometheus")
set(CPACK_PACKAGE_DESCRIPTION
    "discovery spreads the scrape targets of a fleet over the Prometheus servers that match them, \
with consistent hashing, and serves each server its targets over http_sd or as file_sd files. \
This package holds the server and exporter discoveryd (with systemd units) and the discovery CLI.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES TRUE)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE https://github.com/postfinance/discovery)
# Library dependencies come from dpkg-shlibdeps (dpkg-dev); postinst needs adduser.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
    ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)

# The install test of the package (tests/package/package_test.sh): it installs the package on
# this machine, so it runs only as root and with DISCOVERY_PACKAGE_TEST=1 (exit 77: skipped).
# Sanitizer builds make no package worth installing.
if(NOT DISCOVERY_SANITIZE)
  enable_testing()
  add_test(NAME package_test
           COMMAND ${PROJECT_SOURCE_DIR}/tests/package/package_test.sh --build-dir
                   ${PROJECT_BINARY_DIR})
  set_tests_properties(package_test PROPERTIES LABELS package SKIP_RETURN_CODE 77 TIMEOUT 900
                                               RUN_SERIAL TRUE)
endif()
