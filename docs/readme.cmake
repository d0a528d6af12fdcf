cmake_minimum_required(VERSION 3.20)
# Rewrites the README's key table (between the config-keys markers) with the
# output of `KYCD config --reference markdown`. Target `readme`.
#   cmake -DKYCD=path/to/kycd -DREADME=README.md -P docs/readme.cmake
execute_process(COMMAND ${KYCD} config --reference markdown
                OUTPUT_VARIABLE table RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${KYCD} config --reference markdown failed (${rc})")
endif()
file(READ ${README} text)
string(FIND "${text}" "<!-- BEGIN config-keys" b)
string(FIND "${text}" "<!-- END config-keys -->" e)
if(b LESS 0 OR e LESS b)
  message(FATAL_ERROR "${README}: no config-keys markers")
endif()
string(SUBSTRING "${text}" ${b} -1 from_b)
string(FIND "${from_b}" "\n" nl)
math(EXPR head_end "${b} + ${nl} + 1")
string(SUBSTRING "${text}" 0 ${head_end} head)
string(SUBSTRING "${text}" ${e} -1 tail)
file(WRITE ${README} "${head}${table}${tail}")
