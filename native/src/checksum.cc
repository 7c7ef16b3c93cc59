// Page checksums (XXH3-64 from libxxhash) for the copy engine's summed batches; see checksum.h.
#include "checksum.h"

#include <xxhash.h>
#if defined(__x86_64__)
// Debian's libxxhash is built with its x86 dispatcher: the *_dispatch entry points pick the widest vector kernel
// the CPU has (AVX2 here: ~1.5x the SSE2 baseline that the plain entry points are compiled for).
#include <xxh_x86dispatch.h>
#define KVF_XXH3(data, len) XXH3_64bits_dispatch(data, len)
#else
#define KVF_XXH3(data, len) XXH3_64bits(data, len)
#endif

#include <memory>
#include <string>

#include "memory.h"
#include "modules.h"

namespace kvf {

uint64_t PageChecksum(const uint8_t* data, uint64_t len) { return KVF_XXH3(data, len); }

std::unique_ptr<PageSums> PageSums::FromArgs(const Napi::CallbackInfo& info, bool verify, MemoryRef* mem) {
  Napi::Env env = info.Env();
  auto fail = [&](const std::string& msg) { return CodedError(env, code::kInvalidArgument, msg); };
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw fail("pageOffsets: expected a Float64Array");
  uint64_t page_bytes = ToIndex(env, info[2], "pageBytes");
  if (page_bytes == 0) throw fail("pageBytes: expected a positive integer");
  Napi::Float64Array offs = info[1].As<Napi::Float64Array>();
  size_t count = offs.ElementLength();
  if (count > UINT32_MAX) throw fail("pageOffsets: at most 2^32-1 pages per call");
  if (verify && (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
                 info[3].As<Napi::Uint32Array>().ElementLength() != 2 * count)) {
    throw fail("expected: expected a Uint32Array of " + std::to_string(2 * count) + " elements (lo, hi per page)");
  }
  *mem = AcquireMemory(info[0], "memory");
  auto sums = std::make_unique<PageSums>();
  sums->verify_ = verify;
  sums->page_bytes_ = page_bytes;
  sums->offsets_.resize(count);
  for (size_t p = 0; p < count; p++) {
    double v = offs[p];
    uint64_t o = v >= 0 && v <= 9007199254740991.0 ? static_cast<uint64_t>(v) : 0;
    if (!(v >= 0 && v <= 9007199254740991.0) || static_cast<double>(o) != v || !(*mem)->Contains(o, page_bytes)) {
      throw fail("pageOffsets[" + std::to_string(p) + "]: expected the offset of a " + std::to_string(page_bytes) +
                 "-byte page inside the memory (size " + std::to_string((*mem)->size()) + ")");
    }
    sums->offsets_[p] = o;
  }
  if (verify) {
    const uint32_t* expected = info[3].As<Napi::Uint32Array>().Data();
    sums->expected_.resize(count);
    for (size_t p = 0; p < count; p++)
      sums->expected_[p] = static_cast<uint64_t>(expected[2 * p]) | static_cast<uint64_t>(expected[2 * p + 1]) << 32;
    sums->bad_.assign(count, 0);
  }
  sums->sums_.assign(count, 0);
  return sums;
}

void PageSums::Run(uint32_t first, uint32_t last, const uint8_t* base) {
  for (uint32_t p = first; p <= last; p++) {
    sums_[p] = KVF_XXH3(base + offsets_[p], page_bytes_);
    if (verify_) bad_[p] = sums_[p] != expected_[p];
  }
}

void PageSums::SetResult(Napi::Env env, Napi::Object result) const {
  if (verify_) {
    uint32_t n = 0;
    for (uint8_t b : bad_) n += b;
    Napi::Uint32Array out = Napi::Uint32Array::New(env, n);
    n = 0;
    for (size_t p = 0; p < bad_.size(); p++)
      if (bad_[p]) out[n++] = static_cast<uint32_t>(p);
    result.Set("mismatches", out);
    return;
  }
  Napi::Uint32Array out = Napi::Uint32Array::New(env, 2 * sums_.size());
  for (size_t p = 0; p < sums_.size(); p++) {
    out[2 * p] = static_cast<uint32_t>(sums_[p]);
    out[2 * p + 1] = static_cast<uint32_t>(sums_[p] >> 32);
  }
  result.Set("checksums", out);
}

namespace {
// pageChecksum(data: Buffer | Uint8Array) -> bigint. Synchronous: for tests and tools, not the data path.
Napi::Value PageChecksumJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw CodedError(env, code::kInvalidArgument, "data: expected a Buffer or Uint8Array");
  }
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  return Napi::BigInt::New(env, PageChecksum(data.Data(), data.ByteLength()));
}
}  // namespace

void InitChecksum(Napi::Env env, Napi::Object exports) {
  exports.Set("pageChecksum", Napi::Function::New(env, PageChecksumJs, "pageChecksum"));
}

}  // namespace kvf
