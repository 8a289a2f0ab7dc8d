#include "io/hdf5_file.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <functional>

#include <algorithm>

#include <fmt/format.h>

namespace parity::harness {

namespace {

// Whether an attribute or dataset holds exactly one value: reading an array into a buffer for
// one value would overrun it.
bool is_scalar(hid_t object, bool is_attr) {
  H5Handle space(is_attr ? H5Aget_space(object) : H5Dget_space(object), H5Sclose);
  return space.valid() && H5Sget_simple_extent_type(space.get()) != H5S_NULL &&
         H5Sget_simple_extent_npoints(space.get()) == 1;
}

// Reads a single string stored either as HDF5 variable-length or fixed-length (h5py writes
// both); nullopt for anything else. `is_attr` selects H5Aread vs H5Dread on `object`.
std::optional<std::string> read_string(hid_t object, bool is_attr) {
  H5Handle type(is_attr ? H5Aget_type(object) : H5Dget_type(object), H5Tclose);
  if (!type.valid() || H5Tget_class(type.get()) != H5T_STRING || !is_scalar(object, is_attr)) return std::nullopt;
  H5Handle memtype(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_cset(memtype.get(), H5Tget_cset(type.get()));
  if (H5Tis_variable_str(type.get()) > 0) {
    H5Tset_size(memtype.get(), H5T_VARIABLE);
    char* buffer = nullptr;
    herr_t status = is_attr ? H5Aread(object, memtype.get(), &buffer)
                            : H5Dread(object, memtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &buffer);
    if (status < 0 || buffer == nullptr) return std::nullopt;
    std::string value(buffer);
    H5free_memory(buffer);
    return value;
  }
  size_t size = H5Tget_size(type.get());
  H5Tset_size(memtype.get(), size);
  std::string value(size, '\0');
  herr_t status = is_attr ? H5Aread(object, memtype.get(), value.data())
                          : H5Dread(object, memtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, value.data());
  if (status < 0) return std::nullopt;
  value.resize(value.find('\0') == std::string::npos ? size : value.find('\0'));
  return value;
}

// A scalar integer, float or string attribute; nullopt for arrays and other types.
std::optional<AttrValue> read_attr(hid_t attr) {
  if (!is_scalar(attr, true)) return std::nullopt;
  H5Handle type(H5Aget_type(attr), H5Tclose);
  switch (H5Tget_class(type.get())) {
    case H5T_INTEGER: {
      int64_t value = 0;
      if (H5Aread(attr, H5T_NATIVE_INT64, &value) >= 0) return value;
      return std::nullopt;
    }
    case H5T_FLOAT: {
      double value = 0;
      if (H5Aread(attr, H5T_NATIVE_DOUBLE, &value) >= 0) return value;
      return std::nullopt;
    }
    case H5T_STRING:
      if (auto s = read_string(attr, true)) return *s;
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

enum class Attr { kAbsent, kNotAString };

// A dataset's string attribute: the value, kAbsent, or kNotAString (array, number, ...).
std::variant<std::string, Attr> string_attr(hid_t object, const char* name) {
  if (H5Aexists(object, name) <= 0) return Attr::kAbsent;
  H5Handle attr(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
  std::optional<std::string> value = attr.valid() ? read_string(attr.get(), true) : std::nullopt;
  if (!value) return Attr::kNotAString;
  return *value;
}

// The dtype an HDF5 type holds natively, for datasets without a dtype attribute.
std::optional<DType> dtype_from_hdf5(hid_t type) {
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT) return size == 4 ? DType::F32 : size == 8 ? DType::F64 : size == 2 ? std::optional(DType::F16) : std::nullopt;
  if (cls == H5T_INTEGER && H5Tget_sign(type) == H5T_SGN_2)
    return size == 8 ? DType::I64 : size == 4 ? std::optional(DType::I32) : std::nullopt;
  return std::nullopt;
}

// Whether the HDF5 storage type is the one format v1 prescribes for `dtype` (bf16: uint16 bits).
bool storage_matches(DType dtype, hid_t type) {
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  switch (dtype) {
    case DType::BF16: return cls == H5T_INTEGER && size == 2 && H5Tget_sign(type) == H5T_SGN_NONE;
    case DType::Bool: return cls == H5T_INTEGER && size == 1 && H5Tget_sign(type) == H5T_SGN_NONE;
    default: return dtype_from_hdf5(type) == dtype;
  }
}

std::string hdf5_type_str(hid_t type) {
  static constexpr const char* kClass[] = {"integer", "float", "time", "string", "bitfield", "opaque",
                                           "compound", "reference", "enum", "vlen", "array"};
  H5T_class_t cls = H5Tget_class(type);
  const char* name = cls >= 0 && cls < static_cast<int>(std::size(kClass)) ? kClass[cls] : "unknown";
  return fmt::format("{} of {} bytes", name, H5Tget_size(type));
}

}  // namespace

std::string attr_str(const AttrValue& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&value)) return fmt::format("{}", *d);
  return std::get<std::string>(value);
}

H5File::H5File(std::filesystem::path path, std::string kind, std::function<void()> replay)
    : path_(std::move(path)), kind_(std::move(kind)) {
  silence_hdf5_errors();
  check_is_hdf5();
  probe_in_child(replay);
  open();
}

// Only in the probe's child, after the parent checked the file: no second H5Fis_hdf5, so the child
// makes exactly the calls the parent will make after the probe.
H5File::H5File(std::filesystem::path path, std::string kind, Unprobed) : path_(std::move(path)), kind_(std::move(kind)) {
  silence_hdf5_errors();
  open();
}

void H5File::check_is_hdf5() const {
  std::error_code ec;
  if (std::filesystem::is_directory(path_, ec)) fail("", "is a directory, not a file");
  if (!std::filesystem::is_regular_file(path_, ec)) fail("", "no such file");
  if (H5Fis_hdf5(path_.c_str()) <= 0) {
    std::string detail = hdf5_error_detail();
    fail("", detail.empty() ? "not an HDF5 file" : fmt::format("not a readable HDF5 file ({})", detail));
  }
}

void H5File::open() {
  file_ = H5Handle(H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file_.valid()) fail("", fmt::format("cannot open HDF5 file ({})", hdf5_error_detail()));
}

// Debian's libhdf5 1.10.8 can crash on a corrupted file instead of returning an error (seen: an
// invalid free under H5Literate while listing a group; a wild-length memcpy and a heap over-read in
// H5HG_read while reading a variable-length string attribute). So before this process touches a
// file, a forked child walks its whole metadata (every group listing, attribute and dataset header,
// and string datasets) with the same reader. If the library crashes there, only the child dies and
// the file is reported as corrupt (exit 2); a child that merely finds an error exits cleanly, and
// the parent then reports that error itself with its usual message.
// A sanitizer runtime's hook for its own death (ASan, UBSan): libFuzzer sets one that saves the
// current input as a crash. Weak, so a build without a sanitizer links without it.
constexpr rlim_t kProbeCpuSeconds = 20;  // a real fixture's walk: well under a second

extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

void H5File::probe_in_child(const std::function<void()>& replay) const {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) return;  // no child to spare: read as before
  if (pid == 0) {
    // The child must not outlive its parent (a parent killed by a timeout left a child walking a
    // corrupted file for 40 minutes under ci/fuzz), nor walk without end: a metadata walk takes
    // milliseconds, so a minute of CPU is a corrupt file, reported by the parent below.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) _exit(0);  // the parent died before prctl: nobody waits for this walk
    const rlimit cpu{kProbeCpuSeconds, kProbeCpuSeconds + 5};  // SIGXCPU first (named below), SIGKILL after
    setrlimit(RLIMIT_CPU, &cpu);
    // What the library or the C runtime prints as it dies ("double free or corruption") is the
    // child's: the parent's one-line error says what happened.
    // $PARITY_PROBE_STDERR (ci/fuzz): append it to that file instead, so a sanitizer's report of
    // a contained error can be checked afterwards for frames in the harness's own code.
    const char* log = std::getenv("PARITY_PROBE_STDERR");
    const int sink = log != nullptr ? ::open(log, O_WRONLY | O_CREAT | O_APPEND, 0644) : ::open("/dev/null", O_WRONLY);
    if (sink >= 0) dup2(sink, STDERR_FILENO), dup2(sink, STDOUT_FILENO);
    // A crash here is the file's fault and the parent reports it: the child just dies. Under a
    // fuzzer it must not also be saved as a crash of the harness, which libFuzzer's handlers of
    // these signals and the sanitizer's death callback would do. (With a log, the memory-fault
    // signals stay with the sanitizer, whose handler writes the report and exits.)
    for (const int signal : {SIGABRT, SIGILL}) std::signal(signal, SIG_DFL);
    if (log == nullptr)
      for (const int signal : {SIGSEGV, SIGBUS, SIGFPE}) std::signal(signal, SIG_DFL);
    if (__sanitizer_set_death_callback != nullptr) __sanitizer_set_death_callback(nullptr);
    try {
      if (replay) replay();
    } catch (...) {  // an error the parent will meet and report itself
    }
    try {
      std::set<haddr_t> visited;
      H5File(path_, kind_, Unprobed{}).walk_metadata("/", 0, visited);
    } catch (...) {
    }
    _exit(0);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU)
    fail("", fmt::format("corrupt HDF5 file: the HDF5 library did not finish reading its metadata in {} s of CPU",
                         kProbeCpuSeconds));
  if (WIFSIGNALED(status))
    fail("", fmt::format("corrupt HDF5 file: the HDF5 library crashed reading its metadata (signal {}, {})",
                         WTERMSIG(status), strsignal(WTERMSIG(status))));
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0)  // a sanitizer's report in the child
    fail("", fmt::format("corrupt HDF5 file: the HDF5 library failed reading its metadata (exit status {})",
                         WEXITSTATUS(status)));
}

void H5File::walk_metadata(const std::string& group, int depth, std::set<haddr_t>& visited) const {
  if (depth > 32 || visited.size() > (size_t{1} << 20)) return;
  // An error is the parent's to report; the walk goes on, since only a crash matters here.
  const auto attempt = [](auto&& step) {
    try {
      step();
    } catch (const InputError&) {
    }
  };
  attempt([&] { attributes(group); });
  std::vector<std::string> names;
  attempt([&] { names = list_group(group); });
  const std::string prefix = group == "/" ? "/" : group + "/";
  for (const std::string& name : names) {
    const std::string path = prefix + name;
    H5O_info_t info;
    const bool ok = H5Oget_info_by_name(file_.get(), path.c_str(), &info, H5P_DEFAULT) >= 0;
    H5Eclear2(H5E_DEFAULT);
    if (!ok) continue;  // a dangling link: reported when read
    if (!visited.insert(info.addr).second) continue;  // seen: a cycle, or a second link to it
    if (info.type == H5O_TYPE_GROUP) {
      walk_metadata(path, depth + 1, visited);
    } else if (info.type == H5O_TYPE_DATASET) {
      attempt([&] { attributes(path); });
      attempt([&] { this->info(path); });
      attempt([&] { string_dataset(path); });
    }
  }
}

void H5File::fail(std::string_view where, std::string_view what) const {
  if (where.empty()) throw InputError(fmt::format("{} {}: {}", kind_, path_.string(), what));
  throw InputError(fmt::format("{} {}: {}: {}", kind_, path_.string(), where, what));
}

bool H5File::exists(const std::string& link) const {
  // H5Lexists checks one level at a time: every parent must exist first.
  for (size_t slash = link.find('/', 1); slash != std::string::npos; slash = link.find('/', slash + 1))
    if (H5Lexists(file_.get(), link.substr(0, slash).c_str(), H5P_DEFAULT) <= 0) return false;
  const bool found = H5Lexists(file_.get(), link.c_str(), H5P_DEFAULT) > 0;
  H5Eclear2(H5E_DEFAULT);
  return found;
}

std::map<std::string, AttrValue> H5File::attributes(const std::string& object) const {
  H5Handle handle(H5Oopen(file_.get(), object.c_str(), H5P_DEFAULT), H5Oclose);
  H5O_info_t object_info;
  if (!handle.valid() || H5Oget_info2(handle.get(), &object_info, H5O_INFO_NUM_ATTRS) < 0)
    fail(object, fmt::format("unreadable object ({})", hdf5_error_detail()));
  std::map<std::string, AttrValue> out;
  for (hsize_t i = 0; i < object_info.num_attrs; ++i) {
    H5Handle attr(H5Aopen_by_idx(handle.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    if (!attr.valid()) fail(object, fmt::format("unreadable attribute ({})", hdf5_error_detail()));
    std::string name(static_cast<size_t>(H5Aget_name(attr.get(), 0, nullptr)), '\0');
    H5Aget_name(attr.get(), name.size() + 1, name.data());
    if (auto value = read_attr(attr.get())) out[name] = *value;
  }
  return out;
}

std::optional<std::string> H5File::string_dataset(const std::string& dataset) const {
  if (!exists(dataset)) return std::nullopt;
  H5Handle handle(H5Dopen2(file_.get(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  return handle.valid() ? read_string(handle.get(), false) : std::nullopt;
}

std::vector<std::string> H5File::list_group(const std::string& group) const {
  H5Handle handle(H5Gopen2(file_.get(), group.c_str(), H5P_DEFAULT), H5Gclose);
  if (!handle.valid()) fail(group, fmt::format("cannot open group ({})", hdf5_error_detail()));
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {  // HDF5 1.10 API names
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
    return 0;
  };
  // Creation order is the forward order the dumper recorded; fall back to names for
  // files whose producer did not track it.
  hsize_t index = 0;
  if (H5Literate(handle.get(), H5_INDEX_CRT_ORDER, H5_ITER_INC, &index, collect, &names) < 0) {
    names.clear();
    index = 0;
    if (H5Literate(handle.get(), H5_INDEX_NAME, H5_ITER_INC, &index, collect, &names) < 0)
      fail(group, fmt::format("cannot list group ({})", hdf5_error_detail()));
  }
  H5Eclear2(H5E_DEFAULT);
  return names;
}

std::vector<std::string> H5File::list_datasets(const std::string& group) const {
  std::vector<std::string> out;
  // Depth-first with a bound: soft links (or a corrupted file, found by ci/fuzz) can make a group
  // its own descendant, and a group reached twice would be listed, and walked, twice.
  std::set<haddr_t> groups;
  std::function<void(const std::string&, int)> walk = [&](const std::string& prefix, int depth) {
    for (const std::string& name : list_group(group + "/" + prefix)) {
      const std::string key = prefix.empty() ? name : prefix + name;
      const std::string path = group + "/" + key;
      H5O_info_t info;
      const bool is_group = H5Oget_info_by_name(file_.get(), path.c_str(), &info, H5P_DEFAULT) >= 0 &&
                            info.type == H5O_TYPE_GROUP;
      H5Eclear2(H5E_DEFAULT);
      // An empty subgroup holds no tensor: listed as itself, so reading it fails and names it.
      if (!is_group || list_group(path).empty()) out.push_back(key);
      else if (depth >= 16) fail(path, "groups nested more than 16 deep");
      else if (!groups.insert(info.addr).second) fail(path, "a group reached a second time (a link cycle)");
      else walk(key + "/", depth + 1);
    }
  };
  walk("", 0);
  return out;
}

H5Handle H5File::open_dataset(const std::string& where) const {
  if (!exists(where)) fail(where, "missing dataset");
  H5L_info_t link;
  if (H5Lget_info(file_.get(), where.c_str(), &link, H5P_DEFAULT) >= 0 && link.type == H5L_TYPE_EXTERNAL)
    fail(where, "external link to another file; a fixture must be self-contained");
  H5Handle handle(H5Dopen2(file_.get(), where.c_str(), H5P_DEFAULT), H5Dclose);
  if (!handle.valid()) {
    std::string detail = hdf5_error_detail();
    std::string target = link_target(where);
    if (!target.empty()) fail(where, fmt::format("dangling soft link to {} ({})", target, detail));
    fail(where, fmt::format("cannot open dataset ({})", detail));
  }
  return handle;
}

DType H5File::dataset_dtype(hid_t dataset, std::string_view where) const {
  H5Handle type(H5Dget_type(dataset), H5Tclose);
  std::optional<std::string> name = optional_string_attr(dataset, "dtype", where);
  std::optional<DType> dtype = name ? dtype_from_name(*name) : dtype_from_hdf5(type.get());
  if (name && !dtype) fail(where, fmt::format("unsupported dtype '{}'", *name));
  if (!dtype) fail(where, fmt::format("unsupported HDF5 type ({}) and no dtype attribute", hdf5_type_str(type.get())));
  if (!storage_matches(*dtype, type.get()))
    fail(where, fmt::format("dtype attribute says {} but the data is stored as {}", dtype_name(*dtype), hdf5_type_str(type.get())));
  return *dtype;
}

std::optional<std::string> H5File::optional_string_attr(hid_t dataset, const char* name, std::string_view where) const {
  auto value = string_attr(dataset, name);
  if (const auto* text = std::get_if<std::string>(&value)) return *text;
  if (std::get<Attr>(value) == Attr::kNotAString) fail(where, fmt::format("attribute {} is not a single string", name));
  return std::nullopt;
}

std::string H5File::link_target(const std::string& where) const {
  H5L_info_t link;
  if (H5Lget_info(file_.get(), where.c_str(), &link, H5P_DEFAULT) < 0 || link.type != H5L_TYPE_SOFT) return "";
  std::string target(link.u.val_size, '\0');
  H5Lget_val(file_.get(), where.c_str(), target.data(), target.size(), H5P_DEFAULT);
  return target.c_str();  // drops the terminating NUL
}

DatasetInfo H5File::info(const std::string& where) const {
  H5Handle dataset = open_dataset(where);
  DatasetInfo info{where.substr(where.rfind('/') + 1), dataset_dtype(dataset.get(), where), {}, {}, {}, {}};
  H5Handle space(H5Dget_space(dataset.get()), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) fail(where, "unreadable dataspace");
  if (H5Sget_simple_extent_type(space.get()) == H5S_NULL) fail(where, "empty (null) dataspace holds no tensor");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  info.shape.assign(dims.begin(), dims.end());
  if (!checked_numel(info.shape)) fail(where, fmt::format("shape {} is too large to be a tensor", shape_str(info.shape)));
  info.link_target = link_target(where);
  info.module = optional_string_attr(dataset.get(), "module", where).value_or("");
  info.derived = optional_string_attr(dataset.get(), "derived", where).value_or("");
  return info;
}

// The size a dataset claims is checked against what the file holds and what the machine has before
// anything is allocated: a contiguous dataset must be stored whole (else the file is truncated or
// its dims lie), and no dataset may ask for more memory than the machine has (a chunked one can
// claim terabytes of chunks that were never written).
void H5File::check_claimed_size(const std::string& where, hid_t dataset, size_t count) const {
  const double bytes = static_cast<double>(count) * sizeof(double);  // the widest buffer read() allocates
  const double memory = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
  if (memory > 0 && bytes > memory)
    fail(where, fmt::format("claims {} elements ({:.3g} GB as doubles), more than this machine's {:.3g} GB of memory",
                            count, bytes / 1e9, memory / 1e9));
  H5Handle plist(H5Dget_create_plist(dataset), H5Pclose);
  if (plist.valid() && H5Pget_layout(plist.get()) == H5D_CONTIGUOUS && count > 0) {
    H5Handle type(H5Dget_type(dataset), H5Tclose);
    const size_t element = type.valid() ? H5Tget_size(type.get()) : 0;
    const hsize_t stored = H5Dget_storage_size(dataset);
    haddr_t offset = H5Dget_offset(dataset);
    H5Eclear2(H5E_DEFAULT);
    std::error_code ec;
    const uintmax_t file_size = std::filesystem::file_size(path_, ec);
    if (element > 0 && offset != HADDR_UNDEF && !ec &&
        (stored < count * element || offset + count * element > file_size))
      fail(where, fmt::format("claims {} elements of {} bytes, but the file holds {} bytes of them: truncated or corrupt",
                              count, element, std::min<uintmax_t>(stored, offset < file_size ? file_size - offset : 0)));
  }
  H5Eclear2(H5E_DEFAULT);
}

Tensor H5File::read(const std::string& where) const {
  DatasetInfo meta = info(where);
  H5Handle dataset = open_dataset(where);
  Tensor tensor{meta.dtype, meta.shape, {}};
  size_t count = static_cast<size_t>(tensor.numel());
  check_claimed_size(where, dataset.get(), count);
  auto read_into = [&](hid_t memtype, void* buffer) {
    if (H5Dread(dataset.get(), memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer) < 0)
      fail(where, fmt::format("cannot read data ({}); file corrupt or truncated?", hdf5_error_detail()));
  };
  switch (meta.dtype) {
    case DType::F32:
    case DType::F16: {  // HDF5 converts IEEE half to float exactly
      std::vector<float> values(count);
      read_into(H5T_NATIVE_FLOAT, values.data());
      tensor.values = std::move(values);
      break;
    }
    case DType::BF16: {
      std::vector<uint16_t> bits(count);
      read_into(H5T_NATIVE_UINT16, bits.data());
      std::vector<float> values(count);
      std::transform(bits.begin(), bits.end(), values.begin(), bf16_to_f32);
      tensor.values = std::move(values);
      break;
    }
    case DType::F64: {
      std::vector<double> values(count);
      read_into(H5T_NATIVE_DOUBLE, values.data());
      tensor.values = std::move(values);
      break;
    }
    case DType::I64:
    case DType::I32:
    case DType::Bool: {
      std::vector<int64_t> values(count);
      read_into(H5T_NATIVE_INT64, values.data());
      tensor.values = std::move(values);
      break;
    }
  }
  return tensor;
}

}  // namespace parity::harness
