#include "logprobs/token_text.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "errors.h"

extern char** environ;

namespace parity::harness {

namespace {

// The interpreter that has the parity package: $PARITY_PYTHON, else python3 on PATH (an activated
// virtualenv). No path is compiled in: a binary must not depend on where it was built. ci/ and the
// tests set PARITY_PYTHON to the project's .venv.
std::string python() {
  if (const char* env = std::getenv("PARITY_PYTHON"); env && *env) return env;
  return "python3";
}

// A temp file removed when it goes out of scope.
struct TempFile {
  explicit TempFile(const char* suffix) {
    std::string pattern = (std::filesystem::temp_directory_path() / "parity_tokens_XXXXXX").string() + suffix;
    const int fd = mkstemps(pattern.data(), static_cast<int>(std::string_view(suffix).size()));
    if (fd < 0) throw InputError("cannot create a temporary file for the tokenizer");
    close(fd);
    path = pattern;
  }
  ~TempFile() { std::filesystem::remove(path); }
  std::filesystem::path path;
};

// Runs argv, stderr into err_file; returns the exit status (-1 when it could not start).
int run_process(const std::vector<std::string>& argv, const std::filesystem::path& err_file) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string last_line(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}

}  // namespace

const std::string& TokenTexts::of(int64_t id) const {
  static const std::string none;
  auto it = text.find(id);
  return it == text.end() ? none : it->second;
}

TokenTexts decode_tokens(const std::filesystem::path& tokenizer, const std::vector<int64_t>& ids, int64_t max_id) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(tokenizer, ec))
    throw InputError(fmt::format("tokenizer {}: not a file", tokenizer.string()));
  const std::set<int64_t> unique(ids.begin(), ids.end());
  TempFile in(".json"), out(".json"), err(".txt");
  std::ofstream(in.path) << nlohmann::json(std::vector<int64_t>(unique.begin(), unique.end())).dump();
  const std::string py = python();
  const int status = run_process({py, "-m", "parity.logprobs.tokens", tokenizer.string(), in.path.string(),
                                  out.path.string()},
                                 err.path);
  if (status != 0)
    throw InputError(fmt::format("tokenizer {}: {}", tokenizer.string(),
                                 status < 0 ? fmt::format("cannot run {} (set PARITY_PYTHON to a Python with the "
                                                          "parity package and tokenizers)", py)
                                            : last_line(err.path)));
  nlohmann::json result;
  try {
    std::ifstream(out.path) >> result;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("tokenizer {}: unreadable decoder output ({})", tokenizer.string(), e.what()));
  }
  TokenTexts texts{tokenizer, result.at("vocab_size").get<int64_t>(), {}};
  for (const auto& [id, text] : result.at("texts").items()) texts.text[std::stoll(id)] = text.get<std::string>();
  for (int64_t id : {max_id, unique.empty() ? 0 : *unique.rbegin()})
    if (id >= texts.vocab_size)
      throw InputError(fmt::format("tokenizer {}: token id {} is outside its vocabulary of {}", tokenizer.string(), id,
                                   texts.vocab_size));
  return texts;
}

}  // namespace parity::harness
