// RAII over HDF5 C API identifiers, and HDF5's own error text for our one-line messages.
// HDF5's automatic error-stack printing is switched off once (silence_hdf5_errors) so a bad
// file yields our message only, never a screen of library internals.
#pragma once

#include <hdf5.h>

#include <string>
#include <utility>

namespace parity::harness {

class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  H5Handle(H5Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)), close_(other.close_) {}
  H5Handle& operator=(H5Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
      close_ = other.close_;
    }
    return *this;
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  ~H5Handle() { reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = H5I_INVALID_HID;
  }
  hid_t id_ = H5I_INVALID_HID;
  Closer close_ = nullptr;
};

void silence_hdf5_errors();
// The innermost description on HDF5's error stack ("truncated file: eof = ...", ...), or "".
std::string hdf5_error_detail();

}  // namespace parity::harness
