# Locate Eigen 3.4: a system installation first (e.g. Debian's libeigen3-dev),
# otherwise the headers shipped by the PyPI package `cmeel-eigen`, which is a
# build requirement in pyproject.toml. `python -m cmeel cmake` prints the
# prefix under which cmeel packages install their CMake configuration.
find_package(Eigen3 3.4 CONFIG QUIET)
if(NOT Eigen3_FOUND)
  if(NOT Python_EXECUTABLE)
    find_package(Python REQUIRED COMPONENTS Interpreter)
  endif()
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -m cmeel cmake
    OUTPUT_VARIABLE _bglmm_cmeel_prefix
    OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _bglmm_cmeel_result
    ERROR_QUIET)
  if(NOT _bglmm_cmeel_result EQUAL 0)
    message(FATAL_ERROR "bglmm: Eigen 3.4 not found. Install libeigen3-dev or `pip install cmeel-eigen`.")
  endif()
  list(APPEND CMAKE_PREFIX_PATH "${_bglmm_cmeel_prefix}")
  find_package(Eigen3 3.4 CONFIG REQUIRED)
endif()
message(STATUS "bglmm: using Eigen ${Eigen3_VERSION} from ${Eigen3_DIR}")
