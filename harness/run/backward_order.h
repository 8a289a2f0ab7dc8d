// Where each gradient row sits in a backward pass, from a fixture's forward order: one place for
// `parity check --grad` (run/grad_sink.h) and `parity compare --grad` (run/grad_compare.h).
// A module's call starts and ends in the forward at the fixture positions of its first key (its
// inputs, stored when it is called) and its last (its output, stored when it returns). A backward
// runs in reverse: a module's output gradient exists when the backward reaches its end, its input
// and parameter gradients once it has gone back through the module to its start (a decoder
// layer's input gradient after every module inside it).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/fixture.h"

namespace parity::harness {

class BackwardOrder {
 public:
  explicit BackwardOrder(const Fixture& fixture);

  // Smaller comes first in the backward; a module the fixture never hooked sorts last.
  int64_t of_module(const std::string& module, bool output = false) const;
  // A gradient of a hook key: at its module's end (an output) or start (an input).
  int64_t of_key(const std::string& key) const;
  // The hooked modules, in no particular order.
  std::vector<std::string> modules() const;

  // Added to a row's tie-break sequence: a parameter row sorts before its module's input rows.
  static constexpr int64_t kParamFirst = int64_t{1} << 40;

 private:
  struct Span {
    int64_t first = -1, last = -1;
  };
  std::map<std::string, Span> spans_;
};

// Whether `name` lies inside `ancestor` ("model.layers.1.mlp.up_proj" in "model.layers.1.mlp").
bool descends_from(const std::string& name, const std::string& ancestor);
// The longest of `modules` that prefixes the parameter's name ("" when none does).
std::string owner_of(const std::string& param, const std::vector<std::string>& modules);

}  // namespace parity::harness
