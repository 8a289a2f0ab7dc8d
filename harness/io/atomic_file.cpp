#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "errors.h"

namespace parity::harness {

AtomicFile::AtomicFile(std::filesystem::path target, std::string flag)
    : target_(std::move(target)), flag_(std::move(flag)) {
  std::error_code ec;
  if (std::filesystem::is_directory(target_, ec))
    throw UsageError(fmt::format("{} {}: is a directory, not a file", flag_, target_.string()));
  std::string pattern = target_.string() + ".parity-XXXXXX";
  fd_ = mkstemp(pattern.data());
  if (fd_ < 0)
    throw UsageError(fmt::format("{} {}: cannot open the file for writing ({})", flag_, target_.string(),
                                 std::strerror(errno)));
  temp_ = pattern;
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) close(fd_);
  if (!temp_.empty()) unlink(temp_.c_str());
}

void AtomicFile::commit(const std::string& text) {
  const char* data = text.data();
  size_t left = text.size();
  while (left > 0) {
    const ssize_t n = write(fd_, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw InputError(fmt::format("cannot write {} ({})", target_.string(), std::strerror(errno)));
    data += n;
    left -= static_cast<size_t>(n);
  }
  // mkstemp makes the file 0600; a report is an ordinary file (0644 under the usual umask).
  const mode_t mask = umask(0);
  umask(mask);
  fchmod(fd_, 0666 & ~mask);
  const int closed = close(fd_);
  fd_ = -1;
  if (closed != 0 || std::rename(temp_.c_str(), target_.c_str()) != 0)
    throw InputError(fmt::format("cannot write {} ({})", target_.string(), std::strerror(errno)));
  temp_.clear();
}

void write_file_atomically(const std::filesystem::path& target, const std::string& text, const std::string& flag) {
  AtomicFile(target, flag).commit(text);
}

}  // namespace parity::harness
