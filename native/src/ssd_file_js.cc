// `SsdFileNative`: one SSD tier file (O_DIRECT) and the engine doing its I/O (ssd_io.h), for JavaScript. The JS
// thread checks the arguments against the file and the pool and copies them into an SsdBatch; the engine's
// threads do the rest and settle the batch's Promise through the Completer. Validation with field-naming messages
// lives in native/lib/ssd-file.ts; the checks here keep native code safe (bounds, alignment).
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "modules.h"
#include "ssd_io.h"
#include "threaded_object.h"
#include "transport.h"

namespace kvf {
namespace {

constexpr const char* kSsdFailed = "SSD_FAILED";

// Opens (creating) `path` for direct I/O and sizes it; "" or why not.
std::string OpenDirect(const std::string& path, uint64_t size, int* fd_out) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    if (e == EINVAL)
      return path + ": the filesystem refuses O_DIRECT (EINVAL; tmpfs and some FUSE filesystems do): put the SSD "
                    "tier on a filesystem on a block device (ext4, xfs)";
    return path + ": open: " + ErrnoString(e);
  }
  struct statfs fs;
  if (fstatfs(fd, &fs) == 0 && (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC)) {
    close(fd);
    return path + ": is on tmpfs/ramfs (memory, not an SSD: nothing on it survives a reboot and direct I/O is "
                  "not real there): put the SSD tier on a filesystem on a block device (ext4, xfs)";
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return path + ": not a regular file";
  }
  if (static_cast<uint64_t>(st.st_size) != size) {
    int rc = static_cast<uint64_t>(st.st_size) < size ? posix_fallocate(fd, 0, static_cast<off_t>(size)) : 0;
    if (rc == EOPNOTSUPP || rc == EINVAL || static_cast<uint64_t>(st.st_size) > size)
      rc = ftruncate(fd, static_cast<off_t>(size)) == 0 ? 0 : errno;
    if (rc != 0) {
      close(fd);
      return path + ": sizing to " + std::to_string(size) + " bytes: " + ErrnoString(rc);
    }
  }
  *fd_out = fd;
  return std::string();
}

class SsdFile : public Napi::ObjectWrap<SsdFile>, ThreadedObject {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SsdFileNative",
                       {InstanceMethod<&SsdFile::Write>("write"), InstanceMethod<&SsdFile::Read>("read"),
                        InstanceMethod<&SsdFile::Counters>("counters"),
                        InstanceMethod<&SsdFile::InjectFaults>("injectFaults"),
                        InstanceMethod<&SsdFile::Close>("close")});
  }

  // new SsdFileNative(path, sizeBytes, engine: "auto" | "io_uring" | "threads", depth, threads)
  explicit SsdFile(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SsdFile>(info) {
    Napi::Env env = info.Env();
    path_ = info[0].As<Napi::String>();
    size_ = ToIndex(env, info[1], "sizeBytes");
    std::string engine = info[2].As<Napi::String>();
    uint32_t depth = static_cast<uint32_t>(ToIndex(env, info[3], "depth"));
    uint32_t threads = static_cast<uint32_t>(ToIndex(env, info[4], "threads"));
    if (size_ % kSsdAlign != 0) throw CodedError(env, code::kInvalidArgument, "sizeBytes: expected a multiple of 4096");
    std::string err = OpenDirect(path_, size_, &fd_);
    if (!err.empty()) throw CodedError(env, kSsdFailed, err);
    if (engine != "threads") io_ = SsdIo::Uring(depth, &counters_, &faults_, &fallback_reason_);
    if (!io_ && engine == "io_uring") {
      close(fd_);
      throw CodedError(env, kSsdFailed, path_ + ": io_uring unavailable: " + fallback_reason_);
    }
    if (!io_) io_ = SsdIo::Threads(threads, &counters_, &faults_);
    if (engine == "threads") fallback_reason_ = "pread/pwrite threads asked for";
    if (const char* spec = getenv("KVFABRIC_TEST_SSD_FAULTS")) {
      long long pass = 0, fail = 0;
      int used = 0;
      if (sscanf(spec, "%lld:%lld%n", &pass, &fail, &used) == 2 && pass >= 0 && fail >= 0) {
        // an optional ":TEXT" limits the faults to files whose path contains TEXT (one drive of several)
        std::string only = spec[used] == ':' ? std::string(spec + used + 1) : std::string();
        if (only.empty() || path_.find(only) != std::string::npos) {
          faults_.pass_first = pass;
          faults_.fail_next = fail;
        }
      }
    }
    completer_ = Completer::Create(env, "kvfabric-ssd", Napi::Function());
    Napi::Object self = info.This().As<Napi::Object>();
    self.Set("engine", io_->name());
    if (!fallback_reason_.empty()) self.Set("fallbackReason", fallback_reason_);
    WatchEnvExit(env);
  }

  ~SsdFile() override { EndUnclosed(); }

 private:
  void Shutdown() override {
    closed_ = true;
    if (io_) io_->Stop();  // finishes what was submitted
    io_.reset();
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  // write(pool, poolOffsets, fileOffsets, lengths, knownSums?: Uint32Array, known?: Uint8Array)
  //   -> Promise<{ bytes, data?: Buffer of (lo, hi) u32 sums }>; a page with known[i] set is not summed: its sum is
  //   knownSums[2i], knownSums[2i + 1] (a sealed page's, computed as its bytes were stored), handed back as it is
  Napi::Value Write(const Napi::CallbackInfo& info) { return Start(info, true); }
  // read(pool, poolOffsets, fileOffsets, lengths, expected: Uint32Array) -> Promise<{ bytes, data?: bad flags }>
  Napi::Value Read(const Napi::CallbackInfo& info) { return Start(info, false); }

  Napi::Value Start(const Napi::CallbackInfo& info, bool write) {
    Napi::Env env = info.Env();
    auto invalid = [&](const std::string& m) { return CodedError(env, code::kInvalidArgument, m); };
    if (closed_) throw CodedError(env, kSsdFailed, path_ + ": used after close()");
    auto b = std::make_unique<SsdBatch>();
    b->write = write;
    b->fd = fd_;
    b->memory = AcquireMemory(info[0], "pool");
    std::vector<uint64_t> mem_offs, file_offs, lens;
    if (!ReadU64Array(info[1], &mem_offs)) throw invalid("poolOffsets: expected a Float64Array of offsets");
    if (!ReadU64Array(info[2], &file_offs) || file_offs.size() != mem_offs.size())
      throw invalid("fileOffsets: expected a Float64Array as long as poolOffsets");
    if (!ReadU64Array(info[3], &lens) || lens.size() != mem_offs.size())
      throw invalid("lengths: expected a Float64Array as long as poolOffsets");
    size_t n = mem_offs.size();
    b->ops.resize(n);
    b->sums.assign(n, 0);
    for (size_t i = 0; i < n; i++) {
      std::string at = "[" + std::to_string(i) + "]";
      if (lens[i] == 0) throw invalid("lengths" + at + ": expected a positive length");
      if (!b->memory->Contains(mem_offs[i], lens[i])) throw invalid("poolOffsets" + at + ": outside the pool");
      if (file_offs[i] % kSsdAlign != 0 || file_offs[i] > size_ || SsdRoundUp(lens[i]) > size_ - file_offs[i])
        throw invalid("fileOffsets" + at + ": expected a 4096-aligned slot inside the file");
      b->ops[i].mem = b->memory->base() + mem_offs[i];
      b->ops[i].file_off = file_offs[i];
      b->ops[i].len = lens[i];
    }
    if (write && !info[4].IsUndefined()) {
      if (!info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
          info[4].As<Napi::Uint32Array>().ElementLength() != 2 * n)
        throw invalid("knownSums: expected a Uint32Array of (lo, hi) per page");
      if (!info[5].IsTypedArray() || info[5].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
          info[5].As<Napi::Uint8Array>().ElementLength() != n)
        throw invalid("known: expected a Uint8Array with a flag per page");
      auto e = info[4].As<Napi::Uint32Array>();
      auto k = info[5].As<Napi::Uint8Array>();
      for (size_t i = 0; i < n; i++) {
        if (k[i] == 0) continue;
        b->ops[i].summed = true;
        b->sums[i] = uint64_t{e[2 * i]} | (uint64_t{e[2 * i + 1]} << 32);
      }
    }
    if (!write) {
      if (!info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
          info[4].As<Napi::Uint32Array>().ElementLength() != 2 * n)
        throw invalid("expected: expected a Uint32Array of (lo, hi) per page");
      auto e = info[4].As<Napi::Uint32Array>();
      for (size_t i = 0; i < n; i++) b->sums[i] = uint64_t{e[2 * i]} | (uint64_t{e[2 * i + 1]} << 32);
      b->bad.assign(n, 0);
    }
    auto [promise, id] = completer_->Add(env);
    Completer* comp = completer_;
    std::string path = path_;
    b->done = [comp, id, path](SsdBatch& done) {
      Completion c;
      c.id = id;
      if (done.err.load() != 0) {
        c.code = kSsdFailed;
        c.message = path + ": " + done.failed_what;
      } else {
        for (const SsdOp& op : done.ops) c.bytes += static_cast<double>(op.len);
        if (done.write) {
          c.data.resize(done.sums.size() * 8);
          for (size_t i = 0; i < done.sums.size(); i++) {
            uint32_t lo = static_cast<uint32_t>(done.sums[i]), hi = static_cast<uint32_t>(done.sums[i] >> 32);
            std::memcpy(&c.data[8 * i], &lo, 4);
            std::memcpy(&c.data[8 * i + 4], &hi, 4);
          }
        } else {
          c.data = done.bad;
        }
      }
      comp->Post(std::move(c));
    };
    io_->Submit(std::move(b));
    return promise;
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("reads", double(counters_.reads.load()));
    o.Set("writes", double(counters_.writes.load()));
    o.Set("bytesRead", double(counters_.bytes_read.load()));
    o.Set("bytesWritten", double(counters_.bytes_written.load()));
    o.Set("batchesInFlight", double(counters_.batches_in_flight.load()));
    o.Set("errors", double(counters_.errors.load()));
    o.Set("mismatches", double(counters_.mismatches.load()));
    o.Set("bounced", double(counters_.bounced.load()));
    return o;
  }

  // Test hook: the next `n` page operations fail with EIO, as a failing device would.
  void InjectFaults(const Napi::CallbackInfo& info) {
    faults_.pass_first.store(0);
    faults_.fail_next.store(static_cast<int64_t>(ToIndex(info.Env(), info[0], "n")));
  }

  void Close(const Napi::CallbackInfo& info) {
    if (closed_) return;
    Shutdown();
    completer_->Release(info.Env());
  }

  std::string path_, fallback_reason_;
  uint64_t size_ = 0;
  int fd_ = -1;
  SsdCounters counters_;
  SsdFaults faults_;
  std::unique_ptr<SsdIo> io_;
};

}  // namespace

void InitSsd(Napi::Env env, Napi::Object exports) { exports.Set("SsdFileNative", SsdFile::Define(env)); }

}  // namespace kvf
