#include "io/hdf5_handle.h"

namespace parity::harness {

void silence_hdf5_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

std::string hdf5_error_detail() {
  std::string innermost;
  auto walk = [](unsigned, const H5E_error2_t* error, void* data) -> herr_t {
    auto* out = static_cast<std::string*>(data);
    if (out->empty() && error->desc) *out = error->desc;  // H5E_WALK_UPWARD: innermost first
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk, &innermost);
  H5Eclear2(H5E_DEFAULT);
  return innermost;
}

}  // namespace parity::harness
