// Fuzz target: the TOML readers of budgets and case files. The bytes are parsed as a budget file
// (parse_budget), a logprob budget (parse_logprob_budget) and, written to cases/case.toml, as a
// case file (load_case: every section, expectations and a [logprobs] table included). A budget the
// parser accepts is also laid over the built-in ones, as every run does.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_input.h"
#include "gate/budget.h"
#include "logprobs/gate.h"
#include "run/case_file.h"

namespace {

using namespace parity::harness;

template <class Body>
void refused_or_accepted(Body&& body) {
  try {
    body();
  } catch (const parity::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(parity::fuzz::as_bytes(data, size));
  // Each reader on its own: one refusing says nothing about the next.
  refused_or_accepted([&] {
    const Budget budget = parse_budget(text, "fuzz.toml");
    (void)effective_budget(budget, "float32");
    (void)effective_budget(budget, "bfloat16");
  });
  refused_or_accepted([&] { (void)parse_logprob_budget(text, "fuzz.toml"); });
  return parity::fuzz::run_one([&] {
    (void)load_case(parity::fuzz::scratch().write("case.toml", text));
  });
}
