// parity::Error, the one exception type of the project, and PARITY_CHECK.
// Messages follow "[where] expected ..., got ..." so a user can act on a single line.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace parity {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace parity

// Throws parity::Error with a fmt-formatted message when `cond` is false.
#define PARITY_CHECK(cond, ...)                             \
  do {                                                      \
    if (!(cond)) throw ::parity::Error(fmt::format(__VA_ARGS__)); \
  } while (0)
