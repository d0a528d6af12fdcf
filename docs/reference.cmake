# The documentation printed from a table in the code by
# `KYCD SOURCE --reference FORMAT`, put where it belongs. SOURCE is `config`
# (the key table of src/io/config_keys.c, placeholder @KEYS@; the default) or
# `help` (the command table of src/cmd/cmd.c, placeholder @COMMANDS@):
#   FORMAT=man:      IN (a man page template) with the placeholder replaced
#                    by it and @VERSION@ by VERSION, written to OUT
#                    (kycd.conf(5), kycd(8));
#   FORMAT=markdown: the key table of DOC (docs/configuration.md), between
#                    its config-keys markers, replaced by it (target
#                    `config-table`; SOURCE config only).
#   cmake -DKYCD=path/to/kycd -DFORMAT=man -DIN=docs/kycd.conf.5.in -DOUT=kycd.conf.5 -DVERSION=x -P docs/reference.cmake
#   cmake -DKYCD=path/to/kycd -DSOURCE=help -DFORMAT=man -DIN=docs/kycd.8.in -DOUT=kycd.8 -DVERSION=x -P docs/reference.cmake
#   cmake -DKYCD=path/to/kycd -DFORMAT=markdown -DDOC=docs/configuration.md -P docs/reference.cmake
cmake_minimum_required(VERSION 3.20)
if(NOT DEFINED SOURCE)
  set(SOURCE config)
endif()
if(SOURCE STREQUAL "help")
  set(placeholder "@COMMANDS@")
else()
  set(placeholder "@KEYS@")
endif()
execute_process(COMMAND ${KYCD} ${SOURCE} --reference ${FORMAT}
                OUTPUT_VARIABLE ref RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${KYCD} ${SOURCE} --reference ${FORMAT} failed (${rc})")
endif()
if(FORMAT STREQUAL "man")
  string(STRIP "${ref}" ref)
  file(READ ${IN} text)
  string(FIND "${text}" "${placeholder}" at)
  if(at LESS 0)
    message(FATAL_ERROR "${IN} has no ${placeholder}")
  endif()
  string(REPLACE "${placeholder}" "${ref}" text "${text}")
  string(REPLACE "@VERSION@" "${VERSION}" text "${text}")
  file(WRITE ${OUT}.tmp "${text}")
  file(RENAME ${OUT}.tmp ${OUT})
  return()
endif()
file(READ ${DOC} text)
string(FIND "${text}" "<!-- BEGIN config-keys" b)
string(FIND "${text}" "<!-- END config-keys -->" e)
if(b LESS 0 OR e LESS b)
  message(FATAL_ERROR "${DOC}: no config-keys markers")
endif()
string(SUBSTRING "${text}" ${b} -1 from_b)
string(FIND "${from_b}" "\n" nl)
math(EXPR head_end "${b} + ${nl} + 1")
string(SUBSTRING "${text}" 0 ${head_end} head)
string(SUBSTRING "${text}" ${e} -1 tail)
file(WRITE ${DOC} "${head}${ref}${tail}")
