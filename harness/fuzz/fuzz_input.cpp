#include "fuzz/fuzz_input.h"

#include <unistd.h>

#include <fstream>
#include <system_error>

namespace parity::fuzz {

ScratchDir::ScratchDir() {
  std::error_code ec;
  const std::filesystem::path shm = "/dev/shm";
  const std::filesystem::path base =
      std::filesystem::is_directory(shm, ec) ? shm : std::filesystem::temp_directory_path();
  dir_ = base / ("parity-fuzz-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::filesystem::path ScratchDir::write(const std::string& name, std::string_view bytes) const {
  const std::filesystem::path file = dir_ / name;
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", file.c_str());
    std::abort();  // the harness is not at fault, but the run is worthless
  }
  return file;
}

void ScratchDir::clear() const {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) std::filesystem::remove_all(entry.path(), ec);
}

const ScratchDir& scratch() {
  static const ScratchDir dir;  // destroyed at exit, taking the last input's files with it
  return dir;
}

bool expect_valid() {
  static const bool on = [] {
    const char* value = std::getenv("PARITY_FUZZ_EXPECT_VALID");
    return value != nullptr && std::string_view(value) == "1";
  }();
  return on;
}

}  // namespace parity::fuzz
