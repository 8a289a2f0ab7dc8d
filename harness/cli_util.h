// What every `parity` subcommand shares: usage errors and report files.
#pragma once

#include <fstream>
#include <memory>
#include <string>

#include "checkpoint.h"
#include "fixture.h"

namespace parity::harness {

// Bad CLI use: exit 2 like any input error.
class UsageError : public InputError {
 public:
  using InputError::InputError;
};

// Report files are opened (and emptied) before the run: an unwritable path fails before any work,
// and a run that stops with an input error leaves no stale report from an earlier run behind.
// nullptr when `path` is empty (no report asked for).
std::unique_ptr<std::ofstream> open_report(const std::string& path, const char* flag);
void write_report(std::ofstream* out, const std::string& path, const std::string& text);

// --weights DIR must hold the fixture's model: InputError naming the first resolved config key
// whose value differs (a config.json in another layout of the same model is accepted).
void check_checkpoint_config(const Fixture& fixture, const Checkpoint& checkpoint);

}  // namespace parity::harness
