// `parity inspect`: a fixture's meta, a summary of its HF config, and every tensor it holds.
#pragma once

#include <string>

#include "io/fixture.h"

namespace parity::harness {

// The numerics-relevant HF config keys present in `config`, one "key value" per entry.
std::vector<std::string> config_summary(const nlohmann::json& config);

// The whole `parity inspect` report (reads dataset headers, never tensor data).
std::string inspect_text(const Fixture& fixture);

}  // namespace parity::harness
