# Swagger UI's prebuilt assets, the npm package swagger-ui-dist, fetched at configure time into
# the build tree by cmake/NpmPackage.cmake (pinned version and SHA-512; nothing committed).
#   discovery_fetch_swagger_ui(<out-var>)  sets <out-var> to the unpacked package directory.
include(NpmPackage)

set(DISCOVERY_SWAGGER_UI_VERSION "5.35.0")
# sha512sum of swagger-ui-dist-5.35.0.tgz as served by registry.npmjs.org (its npm integrity
# is sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==).
set(DISCOVERY_SWAGGER_UI_SHA512
    "534eaba4cb56f55dd73c638179a993512af4674f63317e0826e00da44fc465b021c341bc0a0c2bcd4e18997927fe1d3008336c5dd19aad334d1c2dec53cc9551")

function(discovery_fetch_swagger_ui out_var)
  discovery_fetch_npm_package(swagger-ui-dist "${DISCOVERY_SWAGGER_UI_VERSION}"
                              "${DISCOVERY_SWAGGER_UI_SHA512}" package)
  set(${out_var} "${package}" PARENT_SCOPE)
endfunction()
