// A file written whole or not at all. The text goes to a temporary file beside the target, which
// replaces the target by rename(2) only once it is complete: until then the target is untouched,
// so a run that stops with an input error neither truncates an earlier good report nor leaves half
// of one that a CI system would read as complete.
#pragma once

#include <filesystem>
#include <string>

namespace parity::harness {

class AtomicFile {
 public:
  // Creates the temporary file at once, so an unwritable folder fails (UsageError naming `flag`
  // and the path) before any work is done.
  AtomicFile(std::filesystem::path target, std::string flag);
  ~AtomicFile();  // removes the temporary file unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::filesystem::path& target() const { return target_; }
  // Writes `text` and renames it over the target; InputError when that fails.
  void commit(const std::string& text);

 private:
  std::filesystem::path target_, temp_;
  std::string flag_;
  int fd_ = -1;
};

// One file written atomically (AtomicFile's rules).
void write_file_atomically(const std::filesystem::path& target, const std::string& text, const std::string& flag);

}  // namespace parity::harness
