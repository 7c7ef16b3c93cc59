// The SSD tier's I/O: batches of page reads and writes between pool memory and one O_DIRECT file, run off the JS
// thread. Two engines behind one interface: io_uring (liburing; one native thread owns the ring and keeps up to
// `depth` operations in flight, a batch's operations submitted together) and, where io_uring is unavailable
// (seccomp, old kernels), pread/pwrite on a few threads. Pure C++ (no napi): ssd_file_js.cc settles Promises
// from `SsdBatch::done`.
//
// Every page carries an XXH3-64 content checksum: a write sums each page before it is submitted (unless the caller
// gave the page's sum: a sealed page, summed as its bytes were stored) and hands the sums back; a read compares each page it landed with the expected sum and flags those that differ. A write batch ends
// with fdatasync, so "done" means durable. Pages whose address and length are multiples of kSsdAlign go straight
// from and to the pool; others go through an aligned bounce buffer (the file slot is rounded up).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "memory.h"

namespace kvf {

inline constexpr uint64_t kSsdAlign = 4096;
inline uint64_t SsdRoundUp(uint64_t n) { return (n + kSsdAlign - 1) / kSsdAlign * kSsdAlign; }

struct SsdCounters {
  std::atomic<uint64_t> reads{0}, writes{0};                // page operations completed
  std::atomic<uint64_t> bytes_read{0}, bytes_written{0};    // page bytes
  std::atomic<uint64_t> batches_in_flight{0};
  std::atomic<uint64_t> errors{0};       // operations failed by the device (or the fault hook)
  std::atomic<uint64_t> mismatches{0};   // pages read back whose checksum differed
  std::atomic<uint64_t> bounced{0};      // pages that needed the bounce buffer
};

struct SsdOp {
  uint8_t* mem = nullptr;     // the page in pool memory
  uint64_t file_off = 0, len = 0;
  uint8_t* buf = nullptr;     // what the kernel reads/writes: mem, or the bounce buffer
  uint64_t io_len = 0;        // len rounded up to kSsdAlign
  uint64_t done = 0;          // bytes transferred so far
  bool summed = false;        // write: the caller gave the page's sum (a sealed page's, known since its save)
  std::unique_ptr<uint8_t, void (*)(void*)> bounce{nullptr, free};
};

struct SsdBatch {
  bool write = false;
  int fd = -1;
  MemoryRef memory;           // keeps the pool mapped until the batch is done
  std::vector<SsdOp> ops;
  std::vector<uint64_t> sums;      // write: computed (or given); read: expected
  std::vector<uint8_t> bad;        // read: 1 where the page's checksum differed
  std::atomic<uint32_t> remaining{0};
  std::atomic<int> err{0};         // first errno (0: none)
  std::string failed_what;         // what failed, set with err by the op that set it first
  std::mutex mu;
  std::function<void(SsdBatch&)> done;  // any native thread, once
};

// Test hook: fail page operations with EIO, as a failing device would: after `pass_first` more operations went
// through, the next `fail_next` fail. Set by injectFaults(), or for a whole process (tests of real node processes)
// by the environment variable KVFABRIC_TEST_SSD_FAULTS="PASS:FAIL[:TEXT]" (only files whose path contains TEXT),
// read when a file is opened.
struct SsdFaults {
  std::atomic<int64_t> pass_first{0};
  std::atomic<int64_t> fail_next{0};
  bool Take() {
    if (fail_next.load() == 0) return false;
    int64_t p = pass_first.load();
    while (p > 0)
      if (pass_first.compare_exchange_weak(p, p - 1)) return false;
    int64_t n = fail_next.load();
    while (n > 0)
      if (fail_next.compare_exchange_weak(n, n - 1)) return true;
    return false;
  }
};

class SsdIo {
 public:
  virtual ~SsdIo() = default;
  virtual const char* name() const = 0;
  // Takes ownership; `done` runs exactly once, on an I/O thread (also after Stop() for batches taken before it).
  virtual void Submit(std::unique_ptr<SsdBatch> batch) = 0;
  // Finishes what was submitted, then joins the threads. Idempotent.
  virtual void Stop() = 0;

  // An io_uring engine of `depth` entries, or nullptr with `*why` when the kernel refuses one.
  static std::unique_ptr<SsdIo> Uring(uint32_t depth, SsdCounters* counters, SsdFaults* faults, std::string* why);
  static std::unique_ptr<SsdIo> Threads(uint32_t threads, SsdCounters* counters, SsdFaults* faults);
};

// Shared steps of both engines (ssd_io.cc). Before submitting op i: sum (write) and fill the bounce buffer. After it
// completed: copy the bounce buffer out and verify (read). When the last op ended: fdatasync (write) and `done`.
bool SsdPrepare(SsdBatch& b, size_t i, SsdCounters* c);
void SsdComplete(SsdBatch& b, size_t i, int res_errno, SsdCounters* c);
void SsdFinish(std::unique_ptr<SsdBatch> b, SsdCounters* c);
void SsdFail(SsdBatch& b, int err, const std::string& what);

}  // namespace kvf
