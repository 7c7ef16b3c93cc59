// Page checksums (XXH3-64 from libxxhash) for the copy engine's summed batches; see checksum.h.
#include "checksum.h"

#include <xxhash.h>
#if defined(__x86_64__)
// Debian's libxxhash is built with its x86 dispatcher: the *_dispatch entry points pick the widest vector kernel
// the CPU has (AVX2 here: ~1.5x the SSE2 baseline that the plain entry points are compiled for).
#include <xxh_x86dispatch.h>
#define KVF_XXH3(data, len) XXH3_64bits_dispatch(data, len)
#define KVF_XXH3_UPDATE(state, data, len) XXH3_64bits_update_dispatch(state, data, len)
#else
#define KVF_XXH3(data, len) XXH3_64bits(data, len)
#define KVF_XXH3_UPDATE(state, data, len) XXH3_64bits_update(state, data, len)
#endif

#include <algorithm>
#include <cstring>
#include <memory>

#include "memory.h"
#include "modules.h"

namespace kvf {

namespace {
// A save copies a page in chunks of this size and hashes each chunk right after copying it: the chunk is still in
// L1, so summing costs hash instructions but no second trip to memory (whole 2 MiB pages would not stay in L2).
// Measured on the 2-vCPU EPYC dev VM (CPU time per byte, 256 KiB and 2 MiB pages from DRAM): 4-8 KiB chunks cost
// 14-16 % on top of the copy, 16 KiB 19 %, 64 KiB 24 %, 2 KiB 65 % (the streaming state's per-call overhead).
constexpr uint64_t kChunkBytes = 8 << 10;

struct StateFree {
  void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
};
using State = std::unique_ptr<XXH3_state_t, StateFree>;
}  // namespace

uint64_t PageChecksum(const uint8_t* data, uint64_t len) { return KVF_XXH3(data, len); }

std::string PageSums::PlanCopy(const std::vector<CopyRange>& descs, uint64_t page_bytes) {
  verify_ = false;
  page_bytes_ = page_bytes;
  uint64_t filled = 0;  // bytes of the open page so far (0: no page open)
  uint64_t next_dst = 0;
  for (size_t i = 0; i < descs.size(); i++) {
    const CopyRange& d = descs[i];
    if (filled > 0 && d.dst != next_dst) {
      return "descriptor " + std::to_string(i) + ": dst " + std::to_string(d.dst) + " does not continue page " +
             std::to_string(first_desc_.size() - 1) + " at " + std::to_string(next_dst) +
             " (a summed page must be contiguous in the destination)";
    }
    for (uint64_t off = 0; off < d.len;) {
      if (filled == 0) {
        first_desc_.push_back(static_cast<uint32_t>(i));
        first_skip_.push_back(off);
      }
      uint64_t take = std::min(d.len - off, page_bytes - filled);
      off += take;
      filled = filled + take == page_bytes ? 0 : filled + take;
    }
    next_dst = d.dst + d.len;
  }
  if (filled > 0) {
    return "the descriptors end " + std::to_string(filled) + " bytes into page " +
           std::to_string(first_desc_.size() - 1) + " of " + std::to_string(page_bytes) + " bytes";
  }
  sums_.assign(first_desc_.size(), 0);
  return std::string();
}

std::unique_ptr<PageSums> PageSums::ForVerify(const Napi::CallbackInfo& info, MemoryRef* mem) {
  Napi::Env env = info.Env();
  auto fail = [&](const std::string& msg) { return CodedError(env, code::kInvalidArgument, msg); };
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw fail("pageOffsets: expected a Float64Array");
  uint64_t page_bytes = ToIndex(env, info[2], "pageBytes");
  if (page_bytes == 0) throw fail("pageBytes: expected a positive integer");
  Napi::Float64Array offs = info[1].As<Napi::Float64Array>();
  size_t count = offs.ElementLength();
  if (count > UINT32_MAX) throw fail("pageOffsets: at most 2^32-1 pages per call");
  if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
      info[3].As<Napi::Uint32Array>().ElementLength() != 2 * count) {
    throw fail("expected: expected a Uint32Array of " + std::to_string(2 * count) + " elements (lo, hi per page)");
  }
  *mem = AcquireMemory(info[0], "memory");
  auto sums = std::make_unique<PageSums>();
  sums->verify_ = true;
  sums->page_bytes_ = page_bytes;
  sums->offsets_.resize(count);
  sums->expected_.resize(count);
  const uint32_t* expected = info[3].As<Napi::Uint32Array>().Data();
  for (size_t p = 0; p < count; p++) {
    double v = offs[p];
    uint64_t o = v >= 0 && v <= 9007199254740991.0 ? static_cast<uint64_t>(v) : 0;
    if (!(v >= 0 && v <= 9007199254740991.0) || static_cast<double>(o) != v || !(*mem)->Contains(o, page_bytes)) {
      throw fail("pageOffsets[" + std::to_string(p) + "]: expected the offset of a " + std::to_string(page_bytes) +
                 "-byte page inside the memory (size " + std::to_string((*mem)->size()) + ")");
    }
    sums->offsets_[p] = o;
    sums->expected_[p] = static_cast<uint64_t>(expected[2 * p]) | static_cast<uint64_t>(expected[2 * p + 1]) << 32;
  }
  sums->bad_.assign(count, 0);
  sums->sums_.assign(count, 0);
  return sums;
}

void PageSums::Run(uint32_t first, uint32_t last, const uint8_t* src, uint8_t* dst, const CopyRange* descs) {
  if (verify_) {
    for (uint32_t p = first; p <= last; p++) {
      sums_[p] = KVF_XXH3(dst + offsets_[p], page_bytes_);
      bad_[p] = sums_[p] != expected_[p];
    }
    return;
  }
  State state(XXH3_createState());  // ~600 bytes; nullptr only when malloc fails: then each page is summed whole
  for (uint32_t p = first; p <= last; p++) {
    if (state) XXH3_64bits_reset(state.get());
    uint32_t i = first_desc_[p];
    uint64_t skip = first_skip_[p];
    for (uint64_t left = page_bytes_; left > 0; i++, skip = 0) {
      const CopyRange& d = descs[i];
      uint64_t n = std::min(d.len - skip, left);
      const uint8_t* from = src + d.src + skip;
      uint8_t* to = dst + d.dst + skip;
      for (uint64_t off = 0; off < n; off += kChunkBytes) {
        uint64_t c = std::min(kChunkBytes, n - off);
        std::memcpy(to + off, from + off, c);
        if (state) KVF_XXH3_UPDATE(state.get(), to + off, c);  // the bytes as they landed in the pool
      }
      left -= n;
    }
    if (state) {
      sums_[p] = XXH3_64bits_digest(state.get());
    } else {
      const CopyRange& d = descs[first_desc_[p]];
      sums_[p] = KVF_XXH3(dst + d.dst + first_skip_[p], page_bytes_);  // the page is contiguous (PlanCopy)
    }
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
