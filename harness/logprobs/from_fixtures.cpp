#include "logprobs/from_fixtures.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "io/fixture_sources.h"
#include "models/model.h"

namespace parity::harness {

namespace {

// One side as the run needs it: [B, S - 1] next-token logprobs and [B, S, V] logits.
struct Side {
  std::string source;
  Array logprobs, logits;
};

Side fixture_side(const Fixture& f) {
  return {fmt::format("{} ({} {})", f.path().string(), f.meta_string("model_class"), f.meta_string("dtype")),
          to_array(f.read("outputs", "logprobs"), f.path().string() + ": /outputs/logprobs"),
          to_array(f.read("outputs", "logits"), f.path().string() + ": /outputs/logits")};
}

// Keeps the reference's final logits and logprobs; drops every other hook.
class OutputSink final : public HookSink {
 public:
  void emit(const std::string& key, const Array& value) override {
    if (key == "/outputs/logprobs") logprobs = value;
    if (key == "/outputs/logits") logits = value;
  }
  void emit_top_k(const std::string&, const TopK&) override {}
  Array logprobs, logits;
};

// The K most likely next tokens of every scored position, from its logits row.
TopKTable top_k_from_logits(const LogprobRun& run, const Array& logits, int64_t k) {
  const int64_t vocab = logits.last_dim();
  k = std::min(k, vocab);
  TopKTable table{k, std::vector<int64_t>(run.input_ids.size() * static_cast<size_t>(k), 0),
                  std::vector<double>(run.input_ids.size() * static_cast<size_t>(k), 0.0)};
  std::vector<int64_t> order(static_cast<size_t>(vocab));
  for (int64_t t = 0; t < run.tokens(); ++t) {
    if (!run.loss_mask[static_cast<size_t>(t)]) continue;  // unscored rows are ignored (zeros)
    const double* row = logits.row(t - 1);  // [B, S, V] rows are tokens; token t is predicted by t - 1
    const double max = *std::max_element(row, row + vocab);
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(row[v] - max);
    const double log_sum = max + std::log(sum);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int64_t a, int64_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    for (int64_t j = 0; j < k; ++j) {
      table.ids[static_cast<size_t>(t * k + j)] = order[static_cast<size_t>(j)];
      table.logprobs[static_cast<size_t>(t * k + j)] = row[order[static_cast<size_t>(j)]] - log_sum;
    }
  }
  return table;
}

LogprobRun assemble(const Fixture& inputs_of, const Side& train, const Side& rollout, int64_t top_k) {
  const IndexArray ids = to_index_array(inputs_of.read("inputs", "input_ids"), "/inputs/input_ids");
  const IndexArray mask = to_index_array(inputs_of.read("inputs", "attention_mask"), "/inputs/attention_mask");
  if (ids.shape.size() != 2 || ids.shape[1] < 2 || mask.shape != ids.shape)
    throw InputError(fmt::format("{}: want /inputs/input_ids and attention_mask [B, S >= 2], got {} and {}",
                                 inputs_of.path().string(), shape_str(ids.shape), shape_str(mask.shape)));
  const int64_t batch = ids.shape[0], seq = ids.shape[1];
  LogprobRun run;
  run.train_source = train.source;
  run.rollout_source = rollout.source;
  for (const Side* side : {&train, &rollout}) {
    if (side->logprobs.shape != Shape{batch, seq - 1} || side->logits.shape.size() != 3 ||
        side->logits.shape[0] != batch || side->logits.shape[1] != seq)
      throw InputError(fmt::format("{}: /outputs/logprobs {} and /outputs/logits {} do not fit input_ids {}",
                                   side->source, shape_str(side->logprobs.shape), shape_str(side->logits.shape),
                                   shape_str(ids.shape)));
  }
  for (int64_t b = 0; b < batch; ++b) {
    run.seq_offsets.push_back(b * seq);
    for (int64_t s = 0; s < seq; ++s) {
      const size_t t = static_cast<size_t>(b * seq + s);
      run.input_ids.push_back(ids.data[t]);
      const bool scored = s >= 1 && mask.data[t] == 1 && mask.data[t - 1] == 1;
      run.loss_mask.push_back(scored ? 1 : 0);
      run.train.push_back(scored ? train.logprobs.data[static_cast<size_t>(b * (seq - 1) + s - 1)] : 0.0);
      run.rollout.push_back(scored ? rollout.logprobs.data[static_cast<size_t>(b * (seq - 1) + s - 1)] : 0.0);
    }
  }
  run.seq_offsets.push_back(batch * seq);
  if (top_k > 0) {
    run.train_top_k = top_k_from_logits(run, train.logits, top_k);
    run.rollout_top_k = top_k_from_logits(run, rollout.logits, top_k);
  }
  run.source = fmt::format("derived from two models' outputs on the same {} tokens per sequence", seq);
  validate(run);
  return run;
}

void check_same_inputs(const Fixture& a, const Fixture& b) {
  for (const char* name : {"input_ids", "attention_mask"}) {
    const Tensor x = a.read("inputs", name), y = b.read("inputs", name);
    if (x.shape != y.shape)
      throw InputError(fmt::format("{} and {} score different tokens: /inputs/{} is {} vs {}", a.path().string(),
                                   b.path().string(), name, shape_str(x.shape), shape_str(y.shape)));
    const auto mismatch = std::mismatch(x.ints().begin(), x.ints().end(), y.ints().begin());
    if (mismatch.first != x.ints().end())
      throw InputError(fmt::format("{} and {} score different tokens: /inputs/{} differ at flat index {} ({} vs {})",
                                   a.path().string(), b.path().string(), name, mismatch.first - x.ints().begin(),
                                   *mismatch.first, *mismatch.second));
  }
}

}  // namespace

LogprobRun run_from_fixtures(const Fixture& train, const Fixture& rollout, int64_t top_k) {
  check_same_inputs(train, rollout);
  return assemble(train, fixture_side(train), fixture_side(rollout), top_k);
}

LogprobRun run_against_reference(const Fixture& fixture, const WeightSource* weights,
                                 std::optional<Precision> precision, const std::string& reference_side,
                                 int64_t top_k) {
  if (reference_side != "train" && reference_side != "rollout")
    throw InputError(fmt::format("the reference plays \"train\" or \"rollout\", not \"{}\"", reference_side));
  const FixtureWeights fixture_weights(fixture);
  if (!weights && fixture.names("weights").empty())
    throw InputError(fmt::format("[{}] has no weights (dumped with --weights none); pass --weights CHECKPOINT_DIR",
                                 fixture.path().string()));
  const std::optional<Precision> run_precision = precision_for_run_dtype(fixture.meta_string("dtype"));
  if (!precision && !run_precision)
    throw InputError(fmt::format("[{}] run dtype {} has no matching precision; pass --precision",
                                 fixture.path().string(), fixture.meta_string("dtype")));
  const Precision p = precision ? *precision : *run_precision;
  const std::unique_ptr<ReferenceModel> model = reference_model_of(fixture, weights ? *weights : fixture_weights, p);
  OutputSink sink;
  model->forward(forward_inputs(fixture), sink, /*routing=*/nullptr);
  const Side reference{fmt::format("the C++ reference ({}, chained, own routing)", precision_name(p)),
                       std::move(sink.logprobs), std::move(sink.logits)};
  const Side hf = fixture_side(fixture);
  return reference_side == "train" ? assemble(fixture, reference, hf, top_k) : assemble(fixture, hf, reference, top_k);
}

}  // namespace parity::harness
