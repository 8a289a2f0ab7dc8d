#include "run.h"

#include <cmath>

#include <fmt/format.h>

#include "io/hdf5_file.h"

namespace parity::harness {

namespace {

constexpr int64_t kSchemaVersion = 1;
// log p <= 0; engines that compute log_softmax in low precision can land a hair above 0.
constexpr double kMaxLogprob = 1e-3;
constexpr char kSchema[] = "parity.logprob_run";

[[noreturn]] void fail(const LogprobRun& run, const std::string& what) {
  throw InputError(fmt::format("logprob run {}: {}", run.source, what));
}

// A rank-1 (or, for top-k, rank-2) dataset of the expected kind.
Tensor read_checked(const H5File& file, const std::string& where, size_t rank, bool floating) {
  const Tensor t = file.read(where);
  if (t.shape.size() != rank) file.fail(where, fmt::format("want rank {}, got shape {}", rank, shape_str(t.shape)));
  if (is_floating(t.dtype) != floating)
    file.fail(where, fmt::format("want {} values, got {}", floating ? "float" : "integer", dtype_name(t.dtype)));
  return t;
}

std::vector<int64_t> read_ints(const H5File& file, const std::string& where, size_t rank = 1) {
  return read_checked(file, where, rank, /*floating=*/false).ints();
}

std::vector<double> read_floats(const H5File& file, const std::string& where, size_t rank = 1) {
  return read_checked(file, where, rank, /*floating=*/true).to_f64();
}

constexpr int64_t kMaxTopK = 1024;  // a report lists a handful; a huge K is a malformed file

std::optional<TopKTable> read_top_k(const H5File& file, const std::string& side) {
  const std::string group = "/top_k/" + side;
  if (!file.exists(group)) return std::nullopt;
  for (const char* name : {"/ids", "/logprobs"}) {  // shapes first: never read a hostile size
    const DatasetInfo info = file.info(group + name);
    if (info.shape.size() != 2 || info.shape[1] < 1 || info.shape[1] > kMaxTopK)
      file.fail(group + name, fmt::format("want [N, K] with 1 <= K <= {}, got {}", kMaxTopK, shape_str(info.shape)));
  }
  if (file.info(group + "/ids").shape != file.info(group + "/logprobs").shape)
    file.fail(group + "/logprobs", fmt::format("shape {} differs from {}/ids {}",
                                               shape_str(file.info(group + "/logprobs").shape), group,
                                               shape_str(file.info(group + "/ids").shape)));
  const Tensor ids = read_checked(file, group + "/ids", 2, false);
  return TopKTable{ids.shape[1], ids.ints(), read_floats(file, group + "/logprobs", 2)};
}

std::string meta_text(const std::map<std::string, AttrValue>& meta, const char* key) {
  auto it = meta.find(key);
  return it == meta.end() ? "" : attr_str(it->second);
}

void check_meta(const H5File& file, const std::map<std::string, AttrValue>& meta) {
  if (meta_text(meta, "schema") != kSchema)
    file.fail("/meta", fmt::format("schema attribute is '{}', want '{}': not a logprob run", meta_text(meta, "schema"),
                                   kSchema));
  auto version = meta.find("schema_version");
  if (version == meta.end() || !std::holds_alternative<int64_t>(version->second))
    file.fail("/meta", "no integer schema_version attribute");
  if (std::get<int64_t>(version->second) != kSchemaVersion)
    file.fail("/meta", fmt::format("schema_version {}, this build reads {}", std::get<int64_t>(version->second),
                                   kSchemaVersion));
}

void check_top_k(const LogprobRun& run, const std::optional<TopKTable>& table, const char* side) {
  if (!table) return;
  if (table->k < 1 || static_cast<int64_t>(table->ids.size()) != run.tokens() * table->k)
    fail(run, fmt::format("/top_k/{}/ids: want [{}, K >= 1], got {} values of K = {}", side, run.tokens(),
                          table->ids.size(), table->k));
  for (size_t i = 0; i < table->ids.size(); ++i)  // rows of unscored tokens are ignored
    if (table->ids[i] < 0 && run.loss_mask[i / static_cast<size_t>(table->k)])
      fail(run, fmt::format("/top_k/{}/ids: negative token id {} at [{}, {}]", side, table->ids[i],
                            static_cast<int64_t>(i) / table->k, static_cast<int64_t>(i) % table->k));
}

}  // namespace

void validate(const LogprobRun& run) {
  const size_t n = run.input_ids.size();
  if (n == 0) fail(run, "no tokens");
  for (const auto& [name, size] : {std::pair{"loss_mask", run.loss_mask.size()},
                                   {"train logprobs", run.train.size()},
                                   {"rollout logprobs", run.rollout.size()}})
    if (size != n) fail(run, fmt::format("{} has {} entries, input_ids has {}", name, size, n));
  if (run.seq_offsets.size() < 2 || run.seq_offsets.front() != 0 || run.seq_offsets.back() != run.tokens())
    fail(run, fmt::format("seq_offsets must run from 0 to the token count {} (B + 1 entries)", n));
  for (size_t i = 1; i < run.seq_offsets.size(); ++i)
    if (run.seq_offsets[i] <= run.seq_offsets[i - 1])
      fail(run, fmt::format("seq_offsets must increase strictly: sequence {} is [{}, {})", i - 1,
                            run.seq_offsets[i - 1], run.seq_offsets[i]));
  for (size_t t = 0; t < n; ++t) {
    if (run.input_ids[t] < 0) fail(run, fmt::format("negative token id {} at token {}", run.input_ids[t], t));
    if (run.loss_mask[t] > 1) fail(run, fmt::format("loss_mask holds {} at token {}; want 0 or 1", run.loss_mask[t], t));
  }
  for (size_t t = 0; t < n; ++t)  // NaN and ±Inf pass here: the metrics count and list them
    for (const auto& [side, lp] : {std::pair{"train", run.train[t]}, {"rollout", run.rollout[t]}})
      if (run.loss_mask[t] && std::isfinite(lp) && lp > kMaxLogprob)
        fail(run, fmt::format("{} logprob {} at token {} is positive: a logprob is <= 0 (negative log-likelihoods "
                              "stored by mistake?)", side, lp, t));
  int64_t scored = 0;
  for (int64_t s = 0; s < run.sequences(); ++s) {
    const int64_t first = run.seq_offsets[static_cast<size_t>(s)];
    if (run.loss_mask[static_cast<size_t>(first)])
      fail(run, fmt::format("loss_mask scores the first token of sequence {} (token {}), which has no logprob", s,
                            first));
  }
  for (uint8_t m : run.loss_mask) scored += m;
  if (scored == 0) fail(run, "loss_mask selects no token: nothing to compare");
  check_top_k(run, run.train_top_k, "train");
  check_top_k(run, run.rollout_top_k, "rollout");
}

LogprobRun load_logprob_run(const std::filesystem::path& path) {
  const H5File file(path, "logprob run");
  if (!file.exists("/meta")) file.fail("/meta", "missing group: not a logprob run (golden/README.md)");
  const std::map<std::string, AttrValue> meta = file.attributes("/meta");
  check_meta(file, meta);
  LogprobRun run;
  run.source = path.string();
  run.train_source = meta_text(meta, "train_source");
  run.rollout_source = meta_text(meta, "rollout_source");
  if (const std::string tokenizer = meta_text(meta, "tokenizer"); !tokenizer.empty())
    run.tokenizer = path.parent_path() / tokenizer;  // relative to the run file
  run.input_ids = read_ints(file, "/tokens/input_ids");
  run.seq_offsets = read_ints(file, "/tokens/seq_offsets");
  const std::vector<int64_t> mask = read_ints(file, "/tokens/loss_mask");
  for (size_t t = 0; t < mask.size(); ++t) {
    if (mask[t] != 0 && mask[t] != 1)
      file.fail("/tokens/loss_mask", fmt::format("holds {} at token {}; want 0 or 1", mask[t], t));
    run.loss_mask.push_back(static_cast<uint8_t>(mask[t]));
  }
  run.train = read_floats(file, "/logprobs/train");
  run.rollout = read_floats(file, "/logprobs/rollout");
  run.train_top_k = read_top_k(file, "train");
  run.rollout_top_k = read_top_k(file, "rollout");
  validate(run);
  return run;
}

}  // namespace parity::harness
