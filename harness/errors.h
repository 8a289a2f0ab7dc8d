// The harness's error types, in a header with no I/O dependency so any part can throw them.
//   parity::Error (references/error.h)  the reference cannot compute something: a failure of the
//                                       module or run that needed it (exit 1 through the gate)
//   InputError                          bad input: a missing, corrupt or malformed file, a wrong
//                                       schema, a bad budget; the CLI exits 2 with its one-line
//                                       message, Python raises parity.InputError (a ValueError)
//   UsageError                          bad CLI or API use (a flag combination, a missing argument):
//                                       an InputError like any other
#pragma once

#include "error.h"

namespace parity::harness {

class InputError : public parity::Error {
 public:
  using parity::Error::Error;
};

class UsageError : public InputError {
 public:
  using InputError::InputError;
};

}  // namespace parity::harness
