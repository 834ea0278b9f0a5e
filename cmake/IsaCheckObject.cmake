# cmake -DOBJECT=... -DREADELF=... -P IsaCheckObject.cmake: fails when a kernel
# variant's object (cmake/Isa.cmake) has code that runs before main.
execute_process(COMMAND ${READELF} -SW ${OBJECT} OUTPUT_VARIABLE _sections RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "${READELF} -SW ${OBJECT} failed")
endif()
if(_sections MATCHES "\\.init_array|\\.ctors")
  message(FATAL_ERROR "${OBJECT} has dynamic initialisers (.init_array): a namespace-scope object with a "
                      "constructor in a kernel file would run that variant's instructions on every CPU at start-up; "
                      "make it constexpr or a function-local static")
endif()
