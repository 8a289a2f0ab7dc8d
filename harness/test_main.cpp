// The one doctest binary, parity_tests: every *_test.cpp listed in the CMakeLists.txt files.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
