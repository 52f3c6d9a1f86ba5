// bglmm/control.hpp — how a long run talks to its caller: interruption and progress.
// The driver calls RunControl::poll() every iteration; the callbacks (which may take the
// Python GIL) run at most every `interval` so the hot loop pays only a clock read.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>

namespace bglmm {

struct RunControl {
  std::function<bool()> interrupted;                                 // true: stop now
  std::function<void(std::int64_t done, std::int64_t total)> progress;  // iterations done
  std::chrono::milliseconds interval{100};
};

class Poller {
 public:
  Poller(const RunControl& control, std::int64_t total)
      : control_(control), total_(total), last_(std::chrono::steady_clock::now()) {}

  // Returns true when the caller asked to stop.
  bool poll(std::int64_t done) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < control_.interval && done < total_) return false;
    last_ = now;
    if (control_.progress) control_.progress(done, total_);
    return control_.interrupted && control_.interrupted();
  }

 private:
  const RunControl& control_;
  std::int64_t total_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace bglmm
