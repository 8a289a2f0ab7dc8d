// Token ids -> text through a real tokenizer.json, decoded by Hugging Face's `tokenizers` library
// (a maintained tokenizer, not a hand-written parser). C++ has no packaged binding for it, so this
// runs `python -m parity.logprobs.tokens` (harness/python/parity/logprobs/tokens.py) with the
// project's Python: $PARITY_PYTHON, else the .venv this build was configured beside.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace parity::harness {

struct TokenTexts {
  std::filesystem::path tokenizer;
  int64_t vocab_size = 0;                // with added tokens
  std::map<int64_t, std::string> text;   // decode([id]) for every id asked for

  const std::string& of(int64_t id) const;  // "" when not asked for
};

// Decodes `ids`. InputError (exit 2) when the tokenizer cannot be read, Python or `tokenizers` is
// missing, or an id (of `ids`, or max_id: the largest id the run holds) is outside the tokenizer's
// vocabulary, naming the id.
TokenTexts decode_tokens(const std::filesystem::path& tokenizer, const std::vector<int64_t>& ids, int64_t max_id);

}  // namespace parity::harness
