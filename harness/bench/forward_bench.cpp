// `parity_bench_forward`: times the reference's chained forward() on a local checkpoint folder
// (config.json + safetensors), the way `parity check` runs it, minus the comparisons. Any family the
// reference implements: make_reference_model picks it from config.json's model_type (olmoe,
// gemma4_text, gemma4). A benchmark, not a test: ci/bench_layer (ci/bench_olmoe_layer,
// ci/bench_gemma4_layer) runs it beside HF transformers on the same random weights.
//
//   build/parity_bench_forward CHECKPOINT_DIR --tokens 256 --repeats 3 --precision f64
//
// Prints one JSON line on stdout:
//   {"seconds": [..one per timed repeat..], "warmup_seconds": s, "load_seconds": s, "tokens": N,
//    "precision": "f64", "openblas": "<core> <config>", "openblas_threads": n,
//    "layer_seconds": [[..layer 0, one per timed repeat..], [..layer 1..], ...]}
//
// What is timed: each repeat is one model.forward() on batch 1 × N random ids (fixed seed, all ids
// < vocab_size, attention_mask all ones, position_ids 0..N-1) with a sink that discards every hook.
// The reference reads its weights lazily, layer by layer: each forward() asks the WeightSource for
// every tensor it uses, so reading and converting the weights from the mmapped checkpoint (and,
// for a per-expert checkpoint, fusing the experts into [E, 2I, H] / [E, H, I]) is included in
// every repeat: the cost of a chained `parity check`. With --keep-weights the model holds every
// weight once read, so repeats after the warm-up compare like with like against an in-memory HF
// model. The first forward() also pays
// for page faults on the cold mapping and BLAS start-up, so it is reported separately as
// warmup_seconds and only the later repeats are in "seconds".
//
// layer_seconds: the sink notes when each hook is emitted. Decoder layer i's time runs from the
// emit just before its first sub-module hook ("<...>layers.i.<module>") to its last hook
// (decoder_layer_of(key) == i); the families emit a layer's hooks once the layer is done, so this
// is the layer's whole compute, weight reading included. What the layers leave out of "seconds"
// is the embedding, rotary tables, masks, final norm, LM head and logprobs.
//
// Exit codes: 0 done, 2 usage or input error (one line on stderr).
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "models/model.h"

namespace {

constexpr int kExitUsageOrInput = 2;
constexpr uint64_t kIdSeed = 1234;

// Drops every hook (only the forward's own work is timed), noting when each was emitted.
class TimingSink final : public parity::HookSink {
 public:
  void emit(const std::string& key, const parity::Array& /*value*/) override { note(key); }
  void emit_top_k(const std::string& key, const TopK& /*top_k*/) override { note(key); }

  void clear() { events_.clear(); }

  // Seconds per decoder layer in the last forward (see layer_seconds above).
  std::vector<double> layer_seconds() const {
    std::vector<double> out;
    for (int64_t layer = 0;; ++layer) {
      const std::string sub = fmt::format("layers.{}.", layer);
      std::optional<size_t> first, last;
      for (size_t i = 0; i < events_.size(); ++i) {
        if (!first && i > 0 && events_[i].key.find(sub) != std::string::npos) first = i;
        if (parity::decoder_layer_of(events_[i].key) == layer) last = i;
      }
      if (!first || !last || *last < *first) return out;
      out.push_back(std::chrono::duration<double>(events_[*last].time - events_[*first - 1].time).count());
    }
  }

 private:
  struct Event {
    std::string key;
    std::chrono::steady_clock::time_point time;
  };
  void note(const std::string& key) { events_.push_back({key, std::chrono::steady_clock::now()}); }
  std::vector<Event> events_;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

parity::ForwardInputs make_inputs(int64_t tokens, int64_t vocab_size) {
  parity::ForwardInputs in;
  const parity::Shape shape{1, tokens};
  in.input_ids.shape = in.attention_mask.shape = in.position_ids.shape = shape;
  std::mt19937_64 rng(kIdSeed);
  std::uniform_int_distribution<int64_t> id(0, vocab_size - 1);
  for (int64_t s = 0; s < tokens; ++s) {
    in.input_ids.data.push_back(id(rng));
    in.attention_mask.data.push_back(1);
    in.position_ids.data.push_back(s);
  }
  return in;
}

int run(const std::string& dir, int64_t tokens, int repeats, const std::string& precision_name, bool keep_weights) {
  const std::optional<parity::Precision> precision = parity::precision_from_name(precision_name);
  if (!precision) throw parity::Error(fmt::format("--precision {}: want f64, f32 or bf16", precision_name));

  auto start = std::chrono::steady_clock::now();
  const parity::harness::Checkpoint checkpoint{std::filesystem::path(dir)};
  const nlohmann::json& config = checkpoint.config();
  const std::unique_ptr<parity::ReferenceModel> model =
      parity::make_reference_model(config, checkpoint, parity::Numerics(*precision), keep_weights);
  const double load_seconds = seconds_since(start);  // headers and config only: weights come per forward

  // As the reference resolves it: the multimodal gemma4 wrapper keeps it in text_config.
  const int64_t vocab_size = parity::resolved_config(config).at("vocab_size").get<int64_t>();
  const parity::ForwardInputs inputs = make_inputs(tokens, vocab_size);
  TimingSink sink;

  start = std::chrono::steady_clock::now();
  model->forward(inputs, sink, /*routing=*/nullptr);
  const double warmup_seconds = seconds_since(start);

  std::vector<double> seconds;
  std::vector<std::vector<double>> layer_seconds;  // [layer][repeat]
  for (int r = 0; r < repeats; ++r) {
    sink.clear();
    start = std::chrono::steady_clock::now();
    model->forward(inputs, sink, /*routing=*/nullptr);
    seconds.push_back(seconds_since(start));
    const std::vector<double> layers = sink.layer_seconds();
    layer_seconds.resize(std::max(layer_seconds.size(), layers.size()));
    for (size_t l = 0; l < layers.size(); ++l) layer_seconds[l].push_back(layers[l]);
  }

  const nlohmann::ordered_json line = {
      {"seconds", seconds},
      {"warmup_seconds", warmup_seconds},
      {"load_seconds", load_seconds},
      {"tokens", tokens},
      {"precision", std::string(parity::precision_name(*precision))},
      {"keep_weights", keep_weights},
      {"openblas", fmt::format("{} ({})", openblas_get_corename(), openblas_get_config())},
      {"openblas_threads", openblas_get_num_threads()},
      {"layer_seconds", layer_seconds},
  };
  fmt::print("{}\n", line.dump());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"parity_bench_forward: times the reference's chained forward() on a checkpoint folder",
               "parity_bench_forward"};
  std::string dir;
  int64_t tokens = 256;
  int repeats = 3;
  std::string precision = "f64";
  bool keep_weights = false;
  app.add_option("CHECKPOINT", dir, "folder with config.json and safetensors (save_pretrained)")->required();
  // >= 2: forward() computes next-token logprobs, which need a next token.
  app.add_option("--tokens", tokens, "sequence length (batch 1)")->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  app.add_option("--repeats", repeats, "timed forwards after the warm-up")->check(CLI::Range(1, 1000));
  app.add_option("--precision", precision, "f64, f32 or bf16 (parity::Numerics)");
  app.add_flag("--keep-weights", keep_weights, "hold weights in memory after the first forward");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "parity_bench_forward: error: {} (see --help)\n", e.what());
    return kExitUsageOrInput;
  }
  try {
    return run(dir, tokens, repeats, precision, keep_weights);
  } catch (const std::exception& e) {  // parity::Error, InputError, json errors, bad_alloc
    fmt::print(stderr, "parity_bench_forward: error: {}\n", e.what());
    return kExitUsageOrInput;
  }
}
