# Fetches an npm package's tarball at configure time into the build tree,
# ${CMAKE_BINARY_DIR}/_deps/<name>-<version>/package. The download is keyed by version and
# checked against a pinned SHA-512, so re-configuring and re-building never download again and
# a changed tarball stops the build. Nothing of it is committed.
#   discovery_fetch_npm_package(<name> <version> <sha512> <out-var>)
#     sets <out-var> to the unpacked package directory.

function(discovery_fetch_npm_package name version sha512_expected out_var)
  set(root "${CMAKE_BINARY_DIR}/_deps/${name}-${version}")
  set(package "${root}/package")
  set(${out_var} "${package}" PARENT_SCOPE)
  if(EXISTS "${root}/.complete")
    return()
  endif()
  find_program(DISCOVERY_NPM npm)
  if(NOT DISCOVERY_NPM)
    message(FATAL_ERROR
      "npm not found. The build fetches the npm package ${name}@${version} at configure time; "
      "install npm (scripts/setup.sh does) and re-run cmake.")
  endif()
  message(STATUS "Fetching ${name}@${version} with ${DISCOVERY_NPM}")
  file(REMOVE_RECURSE "${root}")
  file(MAKE_DIRECTORY "${root}")
  # `npm pack` only downloads the tarball: no package.json, no install, no scripts.
  execute_process(
    COMMAND "${DISCOVERY_NPM}" pack --silent --ignore-scripts "${name}@${version}"
    WORKING_DIRECTORY "${root}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 300)
  set(tarball "${root}/${name}-${version}.tgz")
  if(NOT rc EQUAL 0 OR NOT EXISTS "${tarball}")
    message(FATAL_ERROR
      "npm pack ${name}@${version} failed (${rc}); is the npm registry reachable?\n${out}${err}")
  endif()
  file(SHA512 "${tarball}" sha512)
  if(NOT sha512 STREQUAL sha512_expected)
    message(FATAL_ERROR "${name}-${version}.tgz has SHA-512 ${sha512}, expected ${sha512_expected}")
  endif()
  file(ARCHIVE_EXTRACT INPUT "${tarball}" DESTINATION "${root}")
  file(TOUCH "${root}/.complete")
endfunction()
