# Writes OUTPUT (a header defining SIDETAP_COMMIT) from the source tree's
# git commit; run at every build, rewrites the header only when it changes,
# so only main.cpp recompiles after a commit. Order of sources:
#   1. -DCOMMIT=... (the SIDETAP_COMMIT cache variable: packagers);
#   2. `git describe --always --dirty --abbrev=12` in SOURCE_DIR;
#   3. SOURCE_DIR/.commit, filled in by `git archive` (export-subst);
#   4. "unknown".
if(NOT COMMIT)
  find_package(Git QUIET)
  if(GIT_FOUND)
    execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SOURCE_DIR} describe --always --dirty --abbrev=12
                    OUTPUT_VARIABLE COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE
                    RESULT_VARIABLE git_result ERROR_QUIET)
    if(NOT git_result EQUAL 0)
      set(COMMIT "")
    endif()
  endif()
endif()
if(NOT COMMIT AND EXISTS ${SOURCE_DIR}/.commit)
  file(STRINGS ${SOURCE_DIR}/.commit archived LIMIT_COUNT 1)
  if(archived AND NOT archived MATCHES "\\$Format")
    set(COMMIT "${archived}")
  endif()
endif()
if(NOT COMMIT)
  set(COMMIT "unknown")
endif()
set(content "#pragma once\n#define SIDETAP_COMMIT \"${COMMIT}\"\n")
if(EXISTS ${OUTPUT})
  file(READ ${OUTPUT} old)
endif()
if(NOT old STREQUAL content)
  file(WRITE ${OUTPUT} "${content}")
endif()
