// The grant key the serving node hands a reader: which window (rkey, serving QP) covers which pool range.
#include <algorithm>
#include <cstring>

#include "verbs_conn.h"

namespace kvf {
namespace {

constexpr uint8_t kKeyVersion = 1;
constexpr size_t kHeader = 1 + 1 + 4;
constexpr size_t kEntry = 8 + 8 + 4 + 2;

template <typename T>
void Put(std::vector<uint8_t>* out, T v) {
  for (size_t i = 0; i < sizeof(T); i++) out->push_back(uint8_t(uint64_t(v) >> (8 * i)));
}

template <typename T>
T Get(const uint8_t* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); i++) v |= uint64_t(p[i]) << (8 * i);
  return T(v);
}

}  // namespace

std::vector<uint8_t> EncodeGrantKey(const Grant& g, const std::vector<uint32_t>& pool_rkeys) {
  std::vector<uint8_t> out;
  out.reserve(kHeader + g.windows.size() * kEntry);
  out.push_back(kKeyVersion);
  out.push_back(g.pool_rkey ? 2 : 1);
  Put<uint32_t>(&out, uint32_t(g.windows.size()));
  for (const Window& w : g.windows) {
    Put<uint64_t>(&out, w.offset);
    Put<uint64_t>(&out, w.length);
    Put<uint32_t>(&out, g.pool_rkey ? pool_rkeys.at(w.qp) : w.rkey);
    Put<uint16_t>(&out, uint16_t(w.qp));
  }
  return out;
}

bool ParseGrantKey(const uint8_t* p, size_t n, std::vector<KeyWindow>* out) {
  if (n < kHeader || p[0] != kKeyVersion || (p[1] != 1 && p[1] != 2)) return false;
  uint32_t count = Get<uint32_t>(p + 2);
  if (n != kHeader + size_t(count) * kEntry) return false;
  out->resize(count);
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t* e = p + kHeader + size_t(i) * kEntry;
    (*out)[i] = {Get<uint64_t>(e), Get<uint64_t>(e + 8), Get<uint32_t>(e + 16), Get<uint16_t>(e + 20)};
    if ((*out)[i].length == 0 || (*out)[i].offset + (*out)[i].length < (*out)[i].offset) return false;
  }
  std::sort(out->begin(), out->end(), [](const KeyWindow& a, const KeyWindow& b) { return a.offset < b.offset; });
  return true;
}

}  // namespace kvf
