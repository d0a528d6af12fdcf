# The changelog the package installs (changelog.Debian.gz), included by
# CMakeLists.txt before the documents are compressed: it must name the
# package's version, so a build from git (KYCD_FULL_VERSION 0.1.0+gitN,
# cmake/version.cmake) gets an entry of its own, for its commit, above the
# release's entries of deploy/debian/changelog. Sets KYCD_CHANGELOG (the
# file, rewritten only when its text changes).
set(KYCD_CHANGELOG ${CMAKE_BINARY_DIR}/gen/changelog.Debian)
file(READ ${CMAKE_CURRENT_LIST_DIR}/changelog _kycd_cl)
if(NOT KYCD_FULL_VERSION STREQUAL PROJECT_VERSION)
  set(_kycd_date "${KYCD_GIT_DATE}")
  if(_kycd_date STREQUAL "")
    set(_kycd_date "Thu, 01 Jan 1970 00:00:00 +0000")
  endif()
  string(SUBSTRING "${KYCD_GIT_COMMIT}" 0 12 _kycd_short)
  string(CONCAT _kycd_cl "kycd (${KYCD_FULL_VERSION}-1) unstable; urgency=medium\n\n"
                "  * Built from git, commit ${_kycd_short}.\n\n"
                " -- kycd maintainers <kycd@example.org>  ${_kycd_date}\n\n" "${_kycd_cl}")
endif()
set(_kycd_old "")
if(EXISTS ${KYCD_CHANGELOG})
  file(READ ${KYCD_CHANGELOG} _kycd_old)
endif()
if(NOT _kycd_old STREQUAL _kycd_cl)
  file(WRITE ${KYCD_CHANGELOG} "${_kycd_cl}")
endif()
