// The SSD tier's I/O steps both engines share, and the pread/pwrite engine; see ssd_io.h.
#include "ssd_io.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "checksum.h"

namespace kvf {

void SsdFail(SsdBatch& b, int err, const std::string& what) {
  std::lock_guard<std::mutex> lock(b.mu);
  if (b.err.load() != 0) return;
  b.failed_what = what + ": " + ErrnoString(err);
  b.err.store(err);
}

bool SsdPrepare(SsdBatch& b, size_t i, SsdCounters* c) {
  SsdOp& op = b.ops[i];
  op.io_len = SsdRoundUp(op.len);
  op.buf = op.mem;
  if (reinterpret_cast<uintptr_t>(op.mem) % kSsdAlign != 0 || op.len % kSsdAlign != 0) {
    void* p = nullptr;
    if (posix_memalign(&p, kSsdAlign, op.io_len) != 0) {
      SsdFail(b, ENOMEM, "bounce buffer");
      return false;
    }
    op.bounce.reset(static_cast<uint8_t*>(p));
    op.buf = op.bounce.get();
    c->bounced++;
  }
  if (b.write) {
    if (!op.summed) b.sums[i] = PageChecksum(op.mem, op.len);
    if (op.buf != op.mem) {
      std::memcpy(op.buf, op.mem, op.len);
      std::memset(op.buf + op.len, 0, op.io_len - op.len);
    }
  }
  return true;
}

void SsdComplete(SsdBatch& b, size_t i, int res_errno, SsdCounters* c) {
  SsdOp& op = b.ops[i];
  if (res_errno != 0) {
    c->errors++;
    SsdFail(b, res_errno, std::string(b.write ? "write" : "read") + " of " + std::to_string(op.len) +
                              " bytes at file offset " + std::to_string(op.file_off));
    return;
  }
  if (b.write) {
    c->writes++;
    c->bytes_written += op.len;
    return;
  }
  if (op.buf != op.mem) std::memcpy(op.mem, op.buf, op.len);
  op.bounce.reset();
  c->reads++;
  c->bytes_read += op.len;
  if (PageChecksum(op.mem, op.len) != b.sums[i]) {
    b.bad[i] = 1;
    c->mismatches++;
  }
}

void SsdFinish(std::unique_ptr<SsdBatch> b, SsdCounters* c) {
  if (b->write && b->err.load() == 0 && fdatasync(b->fd) != 0) {
    c->errors++;
    SsdFail(*b, errno, "fdatasync");
  }
  for (SsdOp& op : b->ops) op.bounce.reset();
  c->batches_in_flight--;
  b->done(*b);
}

namespace {

// pread/pwrite on a few threads: each takes one page operation at a time from a shared queue.
class ThreadIo : public SsdIo {
 public:
  ThreadIo(uint32_t threads, SsdCounters* counters, SsdFaults* faults) : counters_(counters), faults_(faults) {
    for (uint32_t t = 0; t < threads; t++) threads_.emplace_back([this] { Worker(); });
  }
  ~ThreadIo() override { Stop(); }
  const char* name() const override { return "threads"; }

  void Submit(std::unique_ptr<SsdBatch> batch) override {
    counters_->batches_in_flight++;
    if (batch->ops.empty()) {
      SsdFinish(std::move(batch), counters_);
      return;
    }
    SsdBatch* b = batch.release();
    b->remaining = static_cast<uint32_t>(b->ops.size());
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < b->ops.size(); i++) queue_.push_back({b, i});
    }
    cv_.notify_all();
  }

  void Stop() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  struct Item {
    SsdBatch* batch;
    size_t op;
  };

  void Worker() {
    for (;;) {
      Item it;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping and drained
        it = queue_.front();
        queue_.pop_front();
      }
      Run(*it.batch, it.op);
      if (--it.batch->remaining == 0) SsdFinish(std::unique_ptr<SsdBatch>(it.batch), counters_);
    }
  }

  void Run(SsdBatch& b, size_t i) {
    if (b.err.load() != 0 || !SsdPrepare(b, i, counters_)) return;
    if (faults_->Take()) return SsdComplete(b, i, EIO, counters_);
    SsdOp& op = b.ops[i];
    while (op.done < op.io_len) {
      ssize_t n = b.write ? pwrite(b.fd, op.buf + op.done, op.io_len - op.done, op.file_off + op.done)
                          : pread(b.fd, op.buf + op.done, op.io_len - op.done, op.file_off + op.done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return SsdComplete(b, i, n < 0 ? errno : EIO, counters_);
      op.done += static_cast<uint64_t>(n);
    }
    SsdComplete(b, i, 0, counters_);
  }

  SsdCounters* counters_;
  SsdFaults* faults_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
};

}  // namespace

std::unique_ptr<SsdIo> SsdIo::Threads(uint32_t threads, SsdCounters* counters, SsdFaults* faults) {
  return std::make_unique<ThreadIo>(threads, counters, faults);
}

}  // namespace kvf
