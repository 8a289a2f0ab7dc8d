// What every fuzz target (harness/fuzz/*_fuzz.cpp) shares. A target is one libFuzzer entry point,
// LLVMFuzzerTestOneInput, built two ways (harness/fuzz/CMakeLists.txt): linked with libFuzzer under
// clang for `ci/fuzz`, and linked with replay_main.cpp in every build so ctest replays the stored
// regression inputs (regressions/<target>/) through the same code under g++ and ASan.
//
// The rule a target checks: whatever the bytes, the reader either accepts them or throws
// parity::Error (InputError: the CLI's one-line message and exit 2). Any other exception, a crash,
// a sanitizer report, a leak or a hang is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>

#include "error.h"

namespace parity::fuzz {

// The readers take paths, so each input is written to a file in a private folder that lives as
// long as the process (on /dev/shm when there is one: a file write per execution is the hot path).
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return dir_; }
  // Writes bytes to dir/name (replacing it) and returns its path.
  std::filesystem::path write(const std::string& name, std::string_view bytes) const;
  // Removes every file written so far (a target whose inputs name several files starts clean).
  void clear() const;

 private:
  std::filesystem::path dir_;
};

// The folder every target of this process writes to.
const ScratchDir& scratch();

inline std::string_view as_bytes(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// PARITY_FUZZ_EXPECT_VALID=1 (the seed test, harness/fuzz/fuzz_seeds_test.py) turns a refusal into
// a failure: the seeds are real files the harness must read, so a reader that refuses them all
// would otherwise make every fuzzer look clean.
bool expect_valid();

// Runs one input: a parity::Error (a refusal) is the normal outcome of a bad input; anything else
// escapes to libFuzzer, which reports it as a crash with the input that caused it.
template <class Body>
int run_one(Body&& body) {
  try {
    body();
  } catch (const parity::Error& e) {
    if (e.what()[0] == '\0') {
      std::fputs("finding: a refusal with an empty message\n", stderr);
      std::abort();
    }
    if (expect_valid()) {
      std::fprintf(stderr, "a valid input was refused: %s\n", e.what());
      std::abort();
    }
  }
  return 0;
}

}  // namespace parity::fuzz
