// The io_uring engine of the SSD tier (ssd_io.h): one native thread owns the ring. It takes submitted batches in
// order, keeps up to `depth` page operations in flight (a batch's operations go in one io_uring_submit, as many as
// fit), reaps completions, resubmits short transfers, and finishes a batch when its last operation ended.
#include <liburing.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ssd_io.h"

namespace kvf {
namespace {

class UringIo : public SsdIo {
 public:
  UringIo(uint32_t depth, SsdCounters* counters, SsdFaults* faults)
      : depth_(depth), counters_(counters), faults_(faults) {
    init_rc_ = io_uring_queue_init(depth, &ring_, 0);
    if (init_rc_ == 0) thread_ = std::thread([this] { Loop(); });
  }
  ~UringIo() override {
    Stop();
    if (init_rc_ == 0) io_uring_queue_exit(&ring_);
  }
  int init_rc() const { return init_rc_; }
  const char* name() const override { return "io_uring"; }

  void Submit(std::unique_ptr<SsdBatch> batch) override {
    counters_->batches_in_flight++;
    batch->remaining = static_cast<uint32_t>(batch->ops.size());
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(batch.release());
    }
    cv_.notify_one();
  }

  void Stop() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Active {
    SsdBatch* batch;
    size_t next;  // the next op to submit
  };
  struct Tag {
    SsdBatch* batch;
    size_t op;
  };

  void Loop() {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (inflight_ == 0 && active_.empty() && retry_.empty())
          cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_ && queue_.empty() && inflight_ == 0 && active_.empty() && retry_.empty()) return;
        for (SsdBatch* b : queue_) active_.push_back({b, 0});
        queue_.clear();
      }
      Fill();
      if (inflight_ == 0) continue;
      int rc = io_uring_submit(&ring_);
      if (rc < 0 && rc != -EBUSY && rc != -EAGAIN && rc != -EINTR && !submit_failed_) {
        submit_failed_ = true;  // logged once; what is queued stays in the ring and is submitted again
        counters_->errors++;
        fprintf(stderr, "kvfabric ssd: io_uring_submit failed: %s\n", std::strerror(-rc));
      }
      Reap();
    }
  }

  // Queues ops (retries first) while the ring has room.
  void Fill() {
    while (inflight_ < depth_ && !retry_.empty()) {
      if (!Queue(retry_.front())) return;
      retry_.pop_front();
    }
    while (inflight_ < depth_ && !active_.empty()) {
      SsdBatch* b = active_.front().batch;
      if (b->ops.empty()) {
        active_.pop_front();
        SsdFinish(std::unique_ptr<SsdBatch>(b), counters_);
        continue;
      }
      size_t i = active_.front().next++;
      // off the list before its last op can end the batch (EndOp frees it)
      if (i + 1 == b->ops.size()) active_.pop_front();
      if (b->err.load() != 0 || !SsdPrepare(*b, i, counters_)) {
        EndOp(b);
        continue;
      }
      if (faults_->Take()) {
        SsdComplete(*b, i, EIO, counters_);
        EndOp(b);
        continue;
      }
      auto* t = new Tag{b, i};
      if (!Queue(t)) {  // no submission entry free (not expected: in flight < depth): the op waits
        retry_.push_front(t);
        return;
      }
    }
  }

  bool Queue(Tag* t) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) return false;
    SsdOp& op = t->batch->ops[t->op];
    if (t->batch->write)
      io_uring_prep_write(sqe, t->batch->fd, op.buf + op.done, op.io_len - op.done, op.file_off + op.done);
    else
      io_uring_prep_read(sqe, t->batch->fd, op.buf + op.done, op.io_len - op.done, op.file_off + op.done);
    io_uring_sqe_set_data(sqe, t);
    inflight_++;
    return true;
  }

  // Waits for at least one completion (briefly: new batches may be waiting), then takes every one there is.
  void Reap() {
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{0, 1000 * 1000};
    int rc = io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN) return;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      seen++;
      Complete(static_cast<Tag*>(io_uring_cqe_get_data(cqe)), cqe->res);
    }
    io_uring_cq_advance(&ring_, seen);
  }

  void Complete(Tag* t, int res) {
    inflight_--;
    SsdBatch* b = t->batch;
    SsdOp& op = b->ops[t->op];
    if (res == -EAGAIN || res == -EINTR) return retry_.push_back(t);
    if (res > 0) {
      op.done += static_cast<uint64_t>(res);
      if (op.done < op.io_len) return retry_.push_back(t);  // short transfer: the rest
    }
    SsdComplete(*b, t->op, res < 0 ? -res : (res == 0 ? EIO : 0), counters_);
    delete t;
    EndOp(b);
  }

  void EndOp(SsdBatch* b) {
    if (--b->remaining == 0) SsdFinish(std::unique_ptr<SsdBatch>(b), counters_);
  }

  io_uring ring_{};
  int init_rc_ = 0;
  bool submit_failed_ = false;
  uint32_t depth_;
  SsdCounters* counters_;
  SsdFaults* faults_;
  uint32_t inflight_ = 0;            // ring thread only
  std::deque<Active> active_;        // ring thread only
  std::deque<Tag*> retry_;           // ring thread only
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<SsdBatch*> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<SsdIo> SsdIo::Uring(uint32_t depth, SsdCounters* counters, SsdFaults* faults, std::string* why) {
  // Test hook: KVFABRIC_TEST_SSD_URING_REFUSED=ERRNO refuses the ring as a kernel would (seccomp answers EPERM,
  // kernels without io_uring ENOSYS; not a positive number: EPERM), so the fallback can be tested anywhere.
  if (const char* refused = getenv("KVFABRIC_TEST_SSD_URING_REFUSED")) {
    int err = atoi(refused);
    if (err <= 0) err = EPERM;
    *why = std::string("io_uring_queue_init: ") + std::strerror(err) + " (KVFABRIC_TEST_SSD_URING_REFUSED)";
    return nullptr;
  }
  auto io = std::make_unique<UringIo>(depth, counters, faults);
  if (io->init_rc() < 0) {
    *why = std::string("io_uring_queue_init: ") + std::strerror(-io->init_rc());
    return nullptr;
  }
  return io;
}

}  // namespace kvf
