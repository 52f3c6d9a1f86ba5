// Minimal test harness (no external framework): CHECK / CHECK_NEAR count failures and
// print where they happened; BGLMM_TEST_MAIN runs the registered test functions.
#pragma once
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace bglmm::testing {

inline int& failures() {
  static int count = 0;
  return count;
}
inline int& checks() {
  static int count = 0;
  return count;
}

struct TestCase {
  std::string name;
  std::function<void()> body;
};
inline std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}
struct Register {
  Register(const char* name, std::function<void()> body) { registry().push_back({name, body}); }
};

inline int run_all() {
  for (const auto& t : registry()) {
    const int before = failures();
    try {
      t.body();
    } catch (const std::exception& e) {
      std::printf("  %s: unexpected exception: %s\n", t.name.c_str(), e.what());
      ++failures();
    }
    std::printf("[%s] %s\n", failures() == before ? " ok " : "FAIL", t.name.c_str());
  }
  std::printf("%d checks, %d failed\n", checks(), failures());
  return failures() == 0 ? 0 : 1;
}

}  // namespace bglmm::testing

#define BGLMM_CONCAT_(a, b) a##b
#define BGLMM_CONCAT(a, b) BGLMM_CONCAT_(a, b)
#define TEST_CASE(name)                                                              \
  static void BGLMM_CONCAT(test_fn_, __LINE__)();                                    \
  static ::bglmm::testing::Register BGLMM_CONCAT(test_reg_, __LINE__)(               \
      name, BGLMM_CONCAT(test_fn_, __LINE__));                                       \
  static void BGLMM_CONCAT(test_fn_, __LINE__)()

#define CHECK(cond)                                                                  \
  do {                                                                               \
    ++::bglmm::testing::checks();                                                    \
    if (!(cond)) {                                                                   \
      ++::bglmm::testing::failures();                                                \
      std::printf("  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);         \
    }                                                                                \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                        \
  do {                                                                               \
    ++::bglmm::testing::checks();                                                    \
    const double va_ = (a), vb_ = (b), vt_ = (tol);                                  \
    if (!(std::fabs(va_ - vb_) <= vt_)) {                                            \
      ++::bglmm::testing::failures();                                                \
      std::printf("  %s:%d: CHECK_NEAR(%s, %s) failed: %.17g vs %.17g (tol %.3g)\n", \
                  __FILE__, __LINE__, #a, #b, va_, vb_, vt_);                        \
    }                                                                                \
  } while (0)

#define CHECK_THROWS(expr)                                                           \
  do {                                                                               \
    ++::bglmm::testing::checks();                                                    \
    bool threw_ = false;                                                             \
    try {                                                                            \
      (void)(expr);                                                                  \
    } catch (...) {                                                                  \
      threw_ = true;                                                                 \
    }                                                                                \
    if (!threw_) {                                                                   \
      ++::bglmm::testing::failures();                                                \
      std::printf("  %s:%d: CHECK_THROWS(%s) did not throw\n", __FILE__, __LINE__, #expr); \
    }                                                                                \
  } while (0)

#define BGLMM_TEST_MAIN() \
  int main() { return ::bglmm::testing::run_all(); }
