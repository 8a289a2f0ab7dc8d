// parity.logprob_metrics / parity.gate_logprobs / parity.logprobs_report: train-vs-inference
// logprob parity (harness/logprobs/) on the tensors of an RL step.
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "arrays.h"
#include "json_bridge.h"
#include "logprobs/gate.h"
#include "logprobs/run.h"
#include "logprobs_report.h"

namespace parity::python {

using namespace harness;

namespace {

// A run from [B, S] tensors (each row one sequence; position 0 has no logprob and must be
// unscored) or from packed [N] tensors plus seq_lens.
LogprobRun run_from_arrays(const py::handle& train, const py::handle& rollout, const py::handle& loss_mask,
                           const py::handle& token_ids, const py::handle& seq_lens) {
  const auto t = as_f64(train, "train"), r = as_f64(rollout, "rollout");
  if (shape_of(t) != shape_of(r))
    throw py::value_error("train " + shape_str(shape_of(t)) + " and rollout " + shape_str(shape_of(r)) + " differ in shape");
  LogprobRun run;
  run.source = "python arrays";
  run.train_source = "train";
  run.rollout_source = "rollout";
  run.train.assign(t.data(), t.data() + t.size());
  run.rollout.assign(r.data(), r.data() + r.size());
  const int64_t n = t.size();
  if (t.ndim() == 2) {
    if (!seq_lens.is_none()) throw py::value_error("seq_lens is for packed [N] tensors; [B, S] rows are the sequences");
    const int64_t length = t.shape(1);
    for (int64_t b = 0; b <= t.shape(0); ++b) run.seq_offsets.push_back(b * length);
  } else if (t.ndim() == 1) {
    if (seq_lens.is_none()) throw py::value_error("packed [N] tensors need seq_lens (the length of each sequence)");
    const auto lens = as_i64(seq_lens, "seq_lens");
    run.seq_offsets.push_back(0);
    for (py::ssize_t i = 0; i < lens.size(); ++i) run.seq_offsets.push_back(run.seq_offsets.back() + lens.data()[i]);
  } else {
    throw py::value_error("train and rollout must be [B, S] or packed [N], got " + shape_str(shape_of(t)));
  }
  auto same_shape = [&](const py::array& a, const char* what) {
    if (shape_of(a) != shape_of(t))
      throw py::value_error(std::string(what) + " " + shape_str(shape_of(a)) + " differs from train " + shape_str(shape_of(t)));
  };
  if (loss_mask.is_none()) {
    run.loss_mask.assign(n, 1);  // every token but each sequence's first
    for (size_t i = 0; i + 1 < run.seq_offsets.size(); ++i)
      if (run.seq_offsets[i] < n) run.loss_mask[run.seq_offsets[i]] = 0;
  } else {
    const auto mask = as_i64(loss_mask, "loss_mask");
    same_shape(mask, "loss_mask");
    for (py::ssize_t i = 0; i < mask.size(); ++i) run.loss_mask.push_back(mask.data()[i] != 0);
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

py::object gated(const LogprobRun& run, const std::optional<std::filesystem::path>& budget) {
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
      "copied once into the run (float32 widened exactly); InputError names a bad mask, length or value.");
  m.def(
      "gate_logprobs",
      [](const py::handle& train, const py::handle& rollout, const py::handle& loss_mask, const py::handle& token_ids,
         const py::handle& seq_lens, const std::optional<std::filesystem::path>& budget) {
        return gated(run_from_arrays(train, rollout, loss_mask, token_ids, seq_lens), budget);
      },
      py::arg("train"), py::arg("rollout"), py::arg("loss_mask") = py::none(), py::kw_only(),
      py::arg("token_ids") = py::none(), py::arg("seq_lens") = py::none(), py::arg("budget") = py::none(),
      "logprob_metrics gated on a budget TOML with a [logprobs] table (default: abs_diff_seq_mean <= 0.1):\n"
      "the dict `parity logprobs --json` writes (schema parity-logprobs/1); its \"verdict\" is \"pass\" or \"fail\".");
  m.def(
      "logprobs_report",
      [](const std::filesystem::path& run, const std::optional<std::filesystem::path>& budget) {
        return gated(load_logprob_run(run), budget);
      },
      py::arg("run"), py::arg("budget") = py::none(),
      "`parity logprobs RUN --json` of a logprob-run file (golden/README.md), as a dict (no token texts).");
}

}  // namespace parity::python
