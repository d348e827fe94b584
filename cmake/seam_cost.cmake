# cmake -DSEAM_COST=<seam_cost> -DMODES=raw;seam[;armed_nomatch] -P seam_cost.cmake
# Runs seam_cost under callgrind for each mode at two call counts and prints the user-space
# instructions per call, (Ir(N2) - Ir(N1)) / (N2 - N1), so fixed costs cancel out.
find_program(VALGRIND valgrind REQUIRED)
if(NOT OUT_DIR)
  set(OUT_DIR "${CMAKE_CURRENT_BINARY_DIR}")
endif()
set(N1 20000)
set(N2 120000)
foreach(mode IN LISTS MODES)
  set(irs "")
  foreach(n ${N1} ${N2})
    set(out "${OUT_DIR}/callgrind.seam_cost.${mode}.${n}")
    execute_process(
      COMMAND ${VALGRIND} --tool=callgrind --callgrind-out-file=${out}
              --toggle-collect=faultloop_seam_cost_* ${SEAM_COST} ${mode} ${n}
      RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "seam_cost ${mode} ${n} under callgrind failed (${rc}):\n${err}")
    endif()
    file(STRINGS ${out} totals REGEX "^totals: ")
    string(REGEX MATCH "[0-9]+" ir "${totals}")
    list(APPEND irs ${ir})
  endforeach()
  list(GET irs 0 ir1)
  list(GET irs 1 ir2)
  math(EXPR per_call_x100 "(${ir2} - ${ir1}) * 100 / (${N2} - ${N1})")
  math(EXPR whole "${per_call_x100} / 100")
  math(EXPR frac "${per_call_x100} % 100")
  message(STATUS "seam_cost ${mode}: ${whole}.${frac} Ir per read(2) call (callgrind, user space)")
endforeach()
