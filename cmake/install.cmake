# Install-time part of `cmake --install` (and of CPack, which installs with
# the prefix /usr): the systemd unit and the example configuration get the
# paths of the prefix the install really uses, not of the one configured.
# Included by install(CODE) in CMakeLists.txt with KYCD_SRC, KYCD_BUILD and
# KYCD_BINDIR set.
#   prefix /usr (the package): /usr/bin/kycd, /etc/kycd, /lib/systemd/system
#   any other prefix P:        P/bin/kycd,   P/etc/kycd, P/lib/systemd/system
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(_etc /etc)
  set(_unitdir /lib/systemd/system)
else()
  set(_etc ${CMAKE_INSTALL_PREFIX}/etc)
  set(_unitdir ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
endif()

foreach(f kycd.service kycd.conf.example)
  file(READ ${KYCD_SRC}/deploy/${f} _text)
  string(REPLACE "/usr/local/bin/kycd" "${CMAKE_INSTALL_PREFIX}/${KYCD_BINDIR}/kycd" _text "${_text}")
  string(REPLACE "/etc/kycd/" "${_etc}/kycd/" _text "${_text}")
  file(WRITE ${KYCD_BUILD}/install/${f} "${_text}")
endforeach()

file(INSTALL ${KYCD_BUILD}/install/kycd.service DESTINATION "${_unitdir}"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
# The configuration is the operator's: an install by hand never overwrites
# one that exists (the package's is a conffile, which dpkg looks after).
set(_conf kycd.conf)
if(EXISTS "$ENV{DESTDIR}${_etc}/kycd/kycd.conf")
  set(_conf kycd.conf.example)
  message(STATUS "Keeping $ENV{DESTDIR}${_etc}/kycd/kycd.conf; the example is kycd.conf.example beside it")
endif()
file(INSTALL ${KYCD_BUILD}/install/kycd.conf.example DESTINATION "${_etc}/kycd"
     RENAME ${_conf} FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
