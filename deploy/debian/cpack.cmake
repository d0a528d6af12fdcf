# The Debian package (CPack's DEB generator), included by CMakeLists.txt.
# Build it from any build folder:  cpack -G DEB  (README, "Deploy").
# CPack installs the project with the prefix /usr into its staging folder
# (DESTDIR), so cmake/install.cmake puts the unit in /lib/systemd/system and
# the configuration in /etc/kycd. dpkg-shlibdeps writes the Depends of the
# libraries the binary links (libssl3, libpq5, libcjson1, libcurl4, libc6).
set(CPACK_PACKAGE_NAME kycd)
# 0.1.0+gitN from a git checkout (cmake/version.cmake), so that each
# commit's package upgrades the one before: Debian version 0.1.0+gitN-1.
set(CPACK_PACKAGE_VERSION ${KYCD_FULL_VERSION})
set(CPACK_PACKAGE_CONTACT "kycd maintainers <kycd@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "receiver of P100's KYC webhooks, storing them in PostgreSQL")
set(CPACK_PACKAGE_DESCRIPTION
    "kycd takes P100's KYC Verification Status webhooks over TLS, checks the\n"
    "shared webhook token and stores every delivery in PostgreSQL before it\n"
    "answers 200, with a local spool for database outages. A reconciler asks\n"
    "P100's Get KYC Status about late, out-of-order or missing webhooks.")
string(REPLACE ";" "" CPACK_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
# The changelog (installed as changelog.Debian.gz) must name this version.
file(STRINGS ${CMAKE_CURRENT_LIST_DIR}/changelog _kycd_cl LIMIT_COUNT 1)
if(NOT _kycd_cl MATCHES "^kycd \\(${PROJECT_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE}\\) ")
  message(FATAL_ERROR "deploy/debian/changelog starts with '${_kycd_cl}', not version "
                      "${PROJECT_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE}: add an entry")
endif()
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# postinst creates the system user with adduser
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_LIST_DIR}/conffiles ${CMAKE_CURRENT_LIST_DIR}/postinst
    ${CMAKE_CURRENT_LIST_DIR}/prerm ${CMAKE_CURRENT_LIST_DIR}/postrm)
include(CPack)
