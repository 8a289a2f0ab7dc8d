// Budget and case files are TOML, read once (run/case_file.h) and handed on as a parsed table to
// every part that reads a section of it (budget.h, baseline.h's [bands], logprobs/gate.h's
// [logprobs]). One place for reading the file, the parse error and the "[budget <file>:<line>]"
// messages, so every section reports bad input the same way.
#pragma once

#include <filesystem>
#include <string>

#include <toml++/toml.h>

namespace parity::harness {

// A budget or case file's whole text; InputError "[budget <path>] cannot open the file".
std::string read_budget_file(const std::filesystem::path& path);
// InputError "[budget <source>:<line>] <what the parser says>" on malformed TOML.
toml::table parse_budget_toml(const std::string& text, const std::string& source);

// "<source>:<line>" of a node, for messages.
std::string where(const std::string& source, const toml::node& node);
// InputError "[budget <at>] <what>".
[[noreturn]] void budget_error(const std::string& at, const std::string& what);

}  // namespace parity::harness
