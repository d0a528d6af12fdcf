cmake_minimum_required(VERSION 3.20)
# Writes a man page from its template: @KEYS@ becomes the output of
# `KYCD config --reference man` (the key table of src/io/config.c), and
# @VERSION@ the project's version.
#   cmake -DKYCD=path/to/kycd -DIN=docs/kycd.conf.5.in -DOUT=kycd.conf.5 -DVERSION=x -P docs/man.cmake
execute_process(COMMAND ${KYCD} config --reference man
                OUTPUT_VARIABLE keys RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${KYCD} config --reference man failed (${rc})")
endif()
string(STRIP "${keys}" keys)
file(READ ${IN} text)
string(REPLACE "@KEYS@" "${keys}" text "${text}")
string(REPLACE "@VERSION@" "${VERSION}" text "${text}")
file(WRITE ${OUT}.tmp "${text}")
file(RENAME ${OUT}.tmp ${OUT})
