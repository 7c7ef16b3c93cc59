// Checking pages while a transport lands them (DESIGN §2 "Remote pull"): a reader that knows the holder's checksum
// of every page sums each page in slices, right after each slice arrived and while its bytes are still in this
// core's cache, and compares the sum with the holder's once the page's last byte is in. The sums equal
// PageChecksum's (XXH3-64, seed 0), so a page checked here and one checked by the copy engine mean the same thing.
// Plain C++ for one thread (the transport's receiving thread); no napi.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace kvf {

// One running page sum (the receiving side of a connection sums one page at a time, in order).
class PageHasher {
 public:
  PageHasher();
  ~PageHasher();
  PageHasher(const PageHasher&) = delete;
  PageHasher& operator=(const PageHasher&) = delete;

  void Reset();
  void Update(const uint8_t* data, uint64_t len);
  uint64_t Digest() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// What one batch checks: every page `page_bytes` long, the holder's sum of each, and the pages that differed.
struct LandedPages {
  uint64_t page_bytes = 0;           // 0: the batch checks nothing
  std::vector<uint64_t> expected;    // the holder's sum of each page, in the order of the batch's descriptors
  std::vector<uint32_t> mismatches;  // the pages (indexes into `expected`) whose bytes differ, in landing order

  bool checking() const { return page_bytes != 0; }

  // `len` more bytes landed in a run of whole pages that starts at `run` (its first page is `first_page`), `at`
  // bytes into the run. Sums them into `hasher`, and compares each page whose last byte is now in.
  void Landed(PageHasher& hasher, const uint8_t* run, uint32_t first_page, uint64_t at, uint64_t len);
};

}  // namespace kvf
