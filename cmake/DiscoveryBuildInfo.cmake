# What --version and kong_build_info report, taken from the build: the project's version (also the
# Debian package's, see DiscoveryPackaging.cmake), the git commit and the build date.
#
# The date honours SOURCE_DATE_EPOCH (reproducible builds, dpkg-buildpackage); the revision is read
# at configure time, and a commit re-runs the configuration so it does not go stale.
find_package(Git QUIET)
set(DISCOVERY_REVISION "unknown")
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse HEAD
                  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                  OUTPUT_VARIABLE revision OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE revision_result ERROR_QUIET)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --absolute-git-dir
                  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                  OUTPUT_VARIABLE git_dir OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE git_dir_result ERROR_QUIET)
  if(revision_result EQUAL 0)
    set(DISCOVERY_REVISION "${revision}")
  endif()
  if(git_dir_result EQUAL 0 AND EXISTS "${git_dir}/logs/HEAD")
    # Appended to by every commit, checkout and reset of this worktree.
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${git_dir}/logs/HEAD")
  endif()
endif()
string(TIMESTAMP DISCOVERY_BUILD_DATE "%Y-%m-%dT%H:%M:%SZ" UTC)
set(DISCOVERY_VERSION "${PROJECT_VERSION}")
