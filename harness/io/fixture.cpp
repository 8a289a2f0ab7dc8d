#include "io/fixture.h"

#include <algorithm>

#include <fmt/format.h>

namespace parity::harness {

namespace {

constexpr char kHint[] = " (regenerate with ci/regen_golden or parity-dump)";

}  // namespace

Fixture::Fixture(std::filesystem::path path)
    : file_(path, "fixture", [path] { Fixture(path, H5File::Unprobed{}); }) {
  open();
}

Fixture::Fixture(std::filesystem::path path, H5File::Unprobed) : file_(std::move(path), "fixture", H5File::Unprobed{}) {
  open();
}

void Fixture::open() {
  for (std::string_view group : kGroups)
    if (!file_.exists(fmt::format("/{}", group)))
      fail(fmt::format("/{}", group), fmt::format("missing group; not a parity fixture{}", kHint));
  read_meta();
  for (std::string_view group : kGroups)
    if (group != "meta") names_.emplace(std::string(group), file_.list_datasets(fmt::format("/{}", group)));
  if (has_gradients()) {
    for (std::string_view group : kGradGroups) {
      if (!file_.exists(fmt::format("/{}", group)))
        fail(fmt::format("/{}", group), "missing group of a gradient fixture (schema_version 2)");
      names_.emplace(std::string(group), file_.list_datasets(fmt::format("/{}", group)));
    }
    const std::string loss = meta_string("grad_loss");
    if (loss != "logprob_sum" && loss != "ce_mean")
      fail("/meta", fmt::format("grad_loss \"{}\" is not a known loss (logprob_sum, ce_mean)", loss));
    if (!has("loss", "value")) fail("/loss/value", "missing dataset of a gradient fixture (schema_version 2)");
    if (const DatasetInfo value = info("loss", "value"); parity::numel(value.shape) != 1)
      fail("/loss/value", fmt::format("is {}, not a scalar", shape_str(value.shape)));
  }
  for (const auto& [group, name] : {std::pair{"inputs", "input_ids"}, {"outputs", "logits"}})
    if (!has(group, name)) fail(fmt::format("/{}/{}", group, name), "missing dataset");
  check_run_dtype();
}

// /meta dtype picks the precision and the built-in budget (bf16's is 1000x looser than float32's),
// so it must say how the model really ran: HF computes the logits in the run dtype and the dumper
// stores them as computed. A float32 dump relabelled bfloat16 would otherwise pass on the loose budget.
void Fixture::check_run_dtype() const {
  const std::string run = meta_string("dtype");
  const std::optional<DType> dtype = dtype_from_name(run);
  if (!dtype || !is_floating(*dtype))
    fail("/meta", fmt::format("dtype \"{}\" is not a floating run dtype (float32, bfloat16, float16, float64)", run));
  const DType logits = file_.info("/outputs/logits").dtype;
  if (logits != *dtype)
    fail("/outputs/logits", fmt::format("stored as {}, but /meta says the model ran in {}: the run dtype must agree "
                                        "with how the tensors are stored", dtype_name(logits), run));
}

void Fixture::read_meta() {
  meta_ = file_.attributes("/meta");
  auto version = meta_.find("schema_version");
  if (version == meta_.end() || !std::holds_alternative<int64_t>(version->second))
    fail("/meta", "no integer schema_version attribute; not a parity fixture");
  const int64_t found = std::get<int64_t>(version->second);
  if (found != kSchemaVersion && found != kGradSchemaVersion)
    fail("/meta", fmt::format("schema_version {}, this build reads {} and {}{}", found, kSchemaVersion,
                              kGradSchemaVersion, kHint));
  schema_version_ = found;
  for (const char* key : {"model_type", "dtype"}) meta_string(key);
  std::optional<std::string> text = file_.string_dataset("/meta/config");
  if (!text) fail("/meta/config", "missing or not a string dataset");
  config_ = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!config_.is_object()) fail("/meta/config", "not a JSON object");
  // The model type picks the reference family; /meta and the config must name the same one.
  const std::string type = meta_string("model_type");
  const auto it = config_.find("model_type");
  if (it == config_.end() || !it->is_string())
    fail("/meta/config", "has no string model_type");
  if (it->get<std::string>() != type)
    fail("/meta", fmt::format("model_type \"{}\" disagrees with /meta/config's \"{}\"", type, it->get<std::string>()));
}

std::string Fixture::meta_string(const std::string& key) const {
  auto it = meta_.find(key);
  if (it == meta_.end() || !std::holds_alternative<std::string>(it->second))
    fail("/meta", fmt::format("missing string attribute {}", key));
  return std::get<std::string>(it->second);
}

const std::vector<std::string>& Fixture::names(std::string_view group) const {
  auto it = names_.find(group);
  if (it == names_.end()) fail(fmt::format("/{}", group), "no such group in this fixture");
  return it->second;
}

bool Fixture::has(std::string_view group, const std::string& name) const {
  const auto& list = names(group);
  return std::find(list.begin(), list.end(), name) != list.end();
}

DatasetInfo Fixture::info(std::string_view group, const std::string& name) const {
  if (!has(group, name)) fail(fmt::format("/{}/{}", group, name), "missing dataset");
  DatasetInfo info = file_.info(fmt::format("/{}/{}", group, name));
  info.name = name;
  return info;
}

Tensor Fixture::read(std::string_view group, const std::string& name) const {
  if (!has(group, name)) fail(fmt::format("/{}/{}", group, name), "missing dataset");
  return file_.read(fmt::format("/{}/{}", group, name));
}

}  // namespace parity::harness
