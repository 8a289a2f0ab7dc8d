// parity.known_bugs(): the known-bug registry (references/models/known_bugs.toml, compiled into the
// reference) as Python dicts, so parity.zoo, the zoo fixture generator and the tests read the
// entries C++ parsed and checked instead of parsing the file a second time.
#include <pybind11/pybind11.h>

#include "models/variants.h"

namespace py = pybind11;

namespace parity::python {

namespace {

// One [[bug]] entry with the TOML's own keys and nesting (first_failure, fixture).
py::dict bug_dict(const VariantInfo& v) {
  py::dict first_failure;
  first_failure["isolated"] = v.first_failure_isolated;
  first_failure["chained"] = v.first_failure_chained;
  py::dict fixture;
  fixture["file"] = v.fixture.file;
  fixture["config"] = v.fixture.config;
  fixture["seed"] = v.fixture.seed;
  fixture["batch"] = v.fixture.batch;
  fixture["seq_len"] = v.fixture.seq_len;
  fixture["dtype"] = v.fixture.dtype;
  py::dict out;
  out["name"] = v.name;
  out["family"] = v.family;
  out["title"] = v.title;
  out["lives_in"] = v.lives_in;
  out["source"] = v.source;
  out["story"] = v.story;
  out["first_failure"] = first_failure;
  out["lives_at"] = v.lives_at;
  out["fixture"] = fixture;
  return out;
}

}  // namespace

void bind_bugs(py::module_& m) {
  m.def(
      "known_bugs",
      [] {
        py::list out;
        for (const VariantInfo& v : known_variants()) out.append(bug_dict(v));
        return out;
      },
      "Every known bug of references/models/known_bugs.toml, in the order of parity diagnose --list: a dict per\n"
      "[[bug]] with its keys (name, family, title, lives_in, source, story, lives_at), first_failure\n"
      "{isolated, chained} and fixture {file, config, seed, batch, seq_len, dtype}. Fresh dicts on every call.");
}

}  // namespace parity::python
