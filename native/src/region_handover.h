// The node's region handover socket: engines pass the file descriptor of their KV region over a unix
// SOCK_SEQPACKET socket (SCM_RIGHTS), so the node maps exactly the memory the engine holds instead of opening a
// path as root on the engine's say-so. One poll thread accepts connections, reads each one's single request
// (payload + descriptors + the connecting process's SO_PEERCRED), describes the descriptor (fstat, seals, access
// mode, /proc/self/fd link) and reports it to JavaScript, which decides, answers with reply(id, text), and then
// owns the descriptor. The protocol (what the payload and replies say) lives in native/lib/region-handover.ts.
#pragma once
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kvf {

class RegionHandover : public Napi::ObjectWrap<RegionHandover> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  // new RegionHandover(path, onRequest): binds and listens on `path` (which must not exist), starts the thread.
  explicit RegionHandover(const Napi::CallbackInfo& info);
  ~RegionHandover() override;

  struct Request;  // one received request, handed to JS (defined in region_handover.cc)

 private:
  Napi::Value Reply(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  void Run();
  void Shutdown();  // stops and joins the thread, closes every socket it still holds; idempotent
  void Receive(int conn);
  static void Deliver(Napi::Env env, Napi::Function fn, std::nullptr_t*, Request* req);

  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: close() wakes the poll thread
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool closed_ = false;
  using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Request, &RegionHandover::Deliver>;
  Tsfn tsfn_;

  struct Waiting {  // a connection that has not sent its request yet
    int fd;
    int64_t deadline_ms;
  };
  std::vector<Waiting> waiting_;  // poll thread only

  std::mutex mu_;                    // guards answering_ and next_id_
  std::map<uint32_t, int> answering_;  // request id -> connection waiting for reply()
  uint32_t next_id_ = 1;
};

}  // namespace kvf
