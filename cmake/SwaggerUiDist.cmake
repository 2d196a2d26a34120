# Fetches Swagger UI's prebuilt assets, the npm package swagger-ui-dist, at configure time into
# the build tree: ${CMAKE_BINARY_DIR}/_deps/swagger-ui-dist-<version>/package. The download is
# keyed by version and checked against a pinned SHA-512, so re-configuring and re-building
# never download again and a changed tarball stops the build. Nothing of it is committed.
#   discovery_fetch_swagger_ui(<out-var>)  sets <out-var> to the unpacked package directory.

set(DISCOVERY_SWAGGER_UI_VERSION "5.35.0")
# sha512sum of swagger-ui-dist-5.35.0.tgz as served by registry.npmjs.org (its npm integrity
# is sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==).
set(DISCOVERY_SWAGGER_UI_SHA512
    "534eaba4cb56f55dd73c638179a993512af4674f63317e0826e00da44fc465b021c341bc0a0c2bcd4e18997927fe1d3008336c5dd19aad334d1c2dec53cc9551")

function(discovery_fetch_swagger_ui out_var)
  set(version "${DISCOVERY_SWAGGER_UI_VERSION}")
  set(root "${CMAKE_BINARY_DIR}/_deps/swagger-ui-dist-${version}")
  set(package "${root}/package")
  set(${out_var} "${package}" PARENT_SCOPE)
  if(EXISTS "${root}/.complete")
    return()
  endif()
  find_program(DISCOVERY_NPM npm)
  if(NOT DISCOVERY_NPM)
    message(FATAL_ERROR
      "npm not found. discoveryd embeds Swagger UI from the npm package "
      "swagger-ui-dist@${version}, fetched at configure time; install npm (scripts/setup.sh "
      "does) and re-run cmake.")
  endif()
  message(STATUS "Fetching swagger-ui-dist@${version} with ${DISCOVERY_NPM}")
  file(REMOVE_RECURSE "${root}")
  file(MAKE_DIRECTORY "${root}")
  # `npm pack` only downloads the tarball: no package.json, no install, no scripts.
  execute_process(
    COMMAND "${DISCOVERY_NPM}" pack --silent --ignore-scripts "swagger-ui-dist@${version}"
    WORKING_DIRECTORY "${root}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 300)
  set(tarball "${root}/swagger-ui-dist-${version}.tgz")
  if(NOT rc EQUAL 0 OR NOT EXISTS "${tarball}")
    message(FATAL_ERROR
      "npm pack swagger-ui-dist@${version} failed (${rc}); is the npm registry reachable?\n"
      "${out}${err}")
  endif()
  file(SHA512 "${tarball}" sha512)
  if(NOT sha512 STREQUAL DISCOVERY_SWAGGER_UI_SHA512)
    message(FATAL_ERROR "swagger-ui-dist-${version}.tgz has SHA-512 ${sha512}, expected "
                        "${DISCOVERY_SWAGGER_UI_SHA512}")
  endif()
  file(ARCHIVE_EXTRACT INPUT "${tarball}" DESTINATION "${root}")
  file(TOUCH "${root}/.complete")
endfunction()
