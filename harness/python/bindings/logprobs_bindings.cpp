// parity.logprob_metrics / parity.gate_logprobs / parity.logprobs_report: train-vs-inference
// logprob parity (harness/logprobs/) on the tensors of an RL step.
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <cmath>

#include "args.h"
#include "arrays.h"
#include "json_bridge.h"
#include "logprobs/gate.h"
#include "logprobs/run.h"
#include "logprobs_report.h"

namespace parity::python {

using namespace harness;

namespace {

// seq_lens: a 1-D integer array of lengths >= 1 that add up to the n packed tokens. Named
// InputErrors (a float NaN, a negative or zero length, a sum off by some tokens) before any offset
// is formed: a sum that overflowed would index the mask out of bounds.
std::vector<int64_t> offsets_from(const py::handle& seq_lens, int64_t n) {
  const py::array raw = as_numpy(seq_lens, "seq_lens");
  if (raw.dtype().kind() == 'f') {  // a float array is refused below; a non-finite length gets its own message
    const auto f = as_f64(raw, "seq_lens");
    for (py::ssize_t i = 0; i < f.size(); ++i)
      if (!std::isfinite(f.data()[i]))
        input_error("seq_lens: {} at {}: a length must be a finite integer", f.data()[i], index_str(i, shape_of(f)));
  }
  const auto lens = as_i64(raw, "seq_lens");
  if (lens.ndim() != 1) input_error("seq_lens: expected a 1-D array [B], got shape {}", shape_str(shape_of(lens)));
  if (lens.size() == 0) input_error("seq_lens: no sequences (an empty array)");
  std::vector<int64_t> offsets{0};
  for (py::ssize_t i = 0; i < lens.size(); ++i) {
    const int64_t len = lens.data()[i];
    if (len < 1) input_error("seq_lens: {} at [{}]: every sequence holds at least one token", len, i);
    if (len > n - offsets.back())
      input_error("seq_lens: {} at [{}] brings the total past the {} packed tokens of train", len, i, n);
    offsets.push_back(offsets.back() + len);
  }
  if (offsets.back() != n) input_error("seq_lens: the lengths add up to {}, train and rollout hold {} tokens", offsets.back(), n);
  return offsets;
}

// A run from [B, S] tensors (each row one sequence; position 0 has no logprob and must be
// unscored) or from packed [N] tensors plus seq_lens. Every argument is checked against train's
// shape here, naming it; validate() then applies the rules every run obeys.
LogprobRun run_from_arrays(const py::handle& train, const py::handle& rollout, const py::handle& loss_mask,
                           const py::handle& token_ids, const py::handle& seq_lens) {
  const auto t = as_f64(train, "train"), r = as_f64(rollout, "rollout");
  const Shape shape = shape_of(t);
  if (shape_of(r) != shape)
    input_error("train {} and rollout {} differ in shape", shape_str(shape), shape_str(shape_of(r)));
  LogprobRun run;
  run.source = "python arrays";
  run.train_source = "train";
  run.rollout_source = "rollout";
  run.train.assign(t.data(), t.data() + t.size());
  run.rollout.assign(r.data(), r.data() + r.size());
  const int64_t n = t.size();
  if (t.ndim() == 2) {
    if (!seq_lens.is_none()) input_error("seq_lens is for packed [N] tensors; the rows of [B, S] train are the sequences");
    const int64_t length = t.shape(1);
    for (int64_t b = 0; b <= t.shape(0); ++b) run.seq_offsets.push_back(b * length);
  } else if (t.ndim() == 1) {
    if (seq_lens.is_none()) input_error("packed [N] tensors need seq_lens (the length of each sequence)");
    run.seq_offsets = offsets_from(seq_lens, n);
  } else {
    input_error("train and rollout must be [B, S] or packed [N], got {}", shape_str(shape));
  }
  auto same_shape = [&](const py::array& a, const char* what) {
    if (shape_of(a) != shape) input_error("{} {} differs from train {}", what, shape_str(shape_of(a)), shape_str(shape));
  };
  if (loss_mask.is_none()) {
    run.loss_mask.assign(n, 1);  // every token but each sequence's first
    for (size_t i = 0; i + 1 < run.seq_offsets.size(); ++i)
      if (run.seq_offsets[i] < n) run.loss_mask[run.seq_offsets[i]] = 0;
  } else {
    const auto mask = as_i64(loss_mask, "loss_mask", Bools::kAllow);
    same_shape(mask, "loss_mask");
    for (py::ssize_t i = 0; i < mask.size(); ++i) {
      const int64_t m = mask.data()[i];
      if (m != 0 && m != 1) input_error("loss_mask: {} at {}; a mask holds only 0 and 1 (or bools)", m, index_str(i, shape));
      run.loss_mask.push_back(static_cast<uint8_t>(m));
    }
  }
  if (token_ids.is_none()) {
    run.input_ids.assign(n, 0);
  } else {
    const auto ids = as_i64(token_ids, "token_ids");
    same_shape(ids, "token_ids");
    run.input_ids.assign(ids.data(), ids.data() + ids.size());
  }
  validate(run);
  return run;
}

py::dict token_dict(const TokenDiff& d) {
  return py::dict(py::arg("sequence") = d.at.sequence, py::arg("position") = d.at.position,
                  py::arg("token_id") = d.token_id, py::arg("train") = d.train, py::arg("rollout") = d.rollout,
                  py::arg("diff") = d.diff);
}

py::dict summary_dict(const LogprobSummary& s) {
  py::dict metrics;
  for (const LogprobMetric& m : s.metrics) metrics[py::str(m.name)] = m.value;
  py::list catastrophic, nonfinite;
  for (const TokenDiff& d : s.catastrophic) catastrophic.append(token_dict(d));
  for (const TokenDiff& d : s.nonfinite) nonfinite.append(token_dict(d));
  return py::dict(py::arg("metrics") = metrics, py::arg("tokens") = s.tokens, py::arg("scored_tokens") = s.scored_tokens,
                  py::arg("sequences") = s.sequences, py::arg("sequences_scored") = s.sequences_scored,
                  py::arg("nonfinite_tokens") = s.nonfinite_tokens, py::arg("nonfinite") = nonfinite,
                  py::arg("catastrophic_count") = s.catastrophic_count, py::arg("catastrophic") = catastrophic);
}

LogprobOptions options_from(double is_threshold, double veto_threshold, double catastrophic_threshold, int64_t top) {
  LogprobOptions o;
  o.is_threshold = is_threshold;
  o.veto_threshold = veto_threshold;
  o.catastrophic_threshold = catastrophic_threshold;
  o.catastrophic_top = top;
  return o;
}

py::object gated(const LogprobRun& run, const py::handle& budget_path) {
  const std::optional<std::filesystem::path> budget = optional_file_arg(budget_path, "budget");
  const LogprobBudget b = budget ? load_logprob_budget(*budget) : builtin_logprob_budget();
  nlohmann::json report;
  {
    py::gil_scoped_release release;
    report = reports::logprobs_json(gate_logprobs(run, b));
  }
  return to_python(report);
}

}  // namespace

void bind_logprobs(py::module_& m) {
  m.def(
      "logprob_metrics",
      [](const py::handle& train, const py::handle& rollout, const py::handle& loss_mask, const py::handle& token_ids,
         const py::handle& seq_lens, double is_threshold, double veto_threshold, double catastrophic_threshold,
         int64_t catastrophic_top) {
        const LogprobRun run = run_from_arrays(train, rollout, loss_mask, token_ids, seq_lens);
        const LogprobOptions options = options_from(is_threshold, veto_threshold, catastrophic_threshold, catastrophic_top);
        LogprobSummary summary;
        {
          py::gil_scoped_release release;
          summary = compute_logprob_metrics(run, options);
        }
        return summary_dict(summary);
      },
      py::arg("train"), py::arg("rollout"), py::arg("loss_mask") = py::none(), py::kw_only(),
      py::arg("token_ids") = py::none(), py::arg("seq_lens") = py::none(), py::arg("is_threshold") = 2.0,
      py::arg("veto_threshold") = 1e-4, py::arg("catastrophic_threshold") = 1.0, py::arg("catastrophic_top") = 20,
      "Every `parity logprobs` metric (docs/logprobs.md) of one batch: train and rollout logprobs [B, S] (a row\n"
      "per sequence; position 0 has no logprob and must be unscored) or packed [N] with seq_lens; loss_mask\n"
      "(default: every token but each sequence's first). Returns {metrics: {name: value}, counts,\n"
      "catastrophic: [{sequence, position, token_id, train, rollout, diff}], nonfinite: [...]}. Arrays are\n"
      "copied once into the run (float32 widened exactly). InputError names a bad mask value (only 0/1 or bools)\n"
      "and its position, a shape that differs from train's, a bad length in seq_lens or a bad option.");
  m.def(
      "gate_logprobs",
      [](const py::handle& train, const py::handle& rollout, const py::handle& loss_mask, const py::handle& token_ids,
         const py::handle& seq_lens, const py::handle& budget) {
        return gated(run_from_arrays(train, rollout, loss_mask, token_ids, seq_lens), budget);
      },
      py::arg("train"), py::arg("rollout"), py::arg("loss_mask") = py::none(), py::kw_only(),
      py::arg("token_ids") = py::none(), py::arg("seq_lens") = py::none(), py::arg("budget") = py::none(),
      "logprob_metrics gated on a budget TOML with a [logprobs] table (default: abs_diff_seq_mean <= 0.1):\n"
      "the dict `parity logprobs --json` writes (schema parity-logprobs/1); its \"verdict\" is \"pass\" or \"fail\".");
  m.def(
      "logprobs_report",
      [](const py::handle& run, const py::handle& budget) {
        return gated(load_logprob_run(file_arg(run, "run")), budget);
      },
      py::arg("run"), py::arg("budget") = py::none(),
      "`parity logprobs RUN --json` of a logprob-run file (golden/README.md), as a dict (no token texts).");
}

}  // namespace parity::python
