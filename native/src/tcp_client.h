// Reading half of the tcp transport: one epoll thread owning every connection to every peer. A batch of
// descriptors is cut into READ requests striped round-robin over the peer's connections, many in flight per
// connection; DATA payloads are received straight into the destination pool pages with readv. A batch settles
// once (ok, refused, failed, timed out); bytes that arrive for a settled batch go to a scratch buffer, never
// into its pages. Plain C++: the ObjectWrap in tcp_transport.cc owns it and posts results through its Completer.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "landed_pages.h"
#include "tcp_wire.h"
#include "transport.h"

namespace kvf {

class TcpClient {
 public:
  using PostFn = std::function<void(Completion)>;
  TcpClient(TransportCounters* counters, PostFn post, int sockbuf);
  ~TcpClient();

  std::string Start();  // "" or an error message
  void Stop();          // idempotent; joins. Unsettled operations are left to the caller to reject.

  // JS thread: queue work for the client thread. `op` is the Completer id settled when done.
  void Connect(uint64_t op, const std::string& peer, const std::string& host, int port, const std::string& name,
               const std::string& secret, int connections, int64_t timeout_ms);
  // `check`, when checking, holds the holder's sum of every page: each descriptor is one page (its `page` set), and
  // each page is summed as it lands; the batch resolves with the pages that differ.
  void Read(uint64_t op, const std::string& peer, const GrantId& grant, std::vector<ReadDesc> descs,
            int64_t timeout_ms, LandedPages check);
  void Drop(const std::string& peer);

 private:
  struct Batch;
  struct Req;
  struct Conn;
  struct Peer;
  struct Cmd {
    enum Kind { kConnect, kRead, kDrop } kind = kRead;
    uint64_t op = 0;
    std::string peer, host, name, secret;
    int port = 0, connections = 0;
    GrantId grant;
    std::vector<ReadDesc> descs;
    int64_t timeout_ms = 0;
    LandedPages check;
  };

  void Run();
  void Execute(Cmd& cmd);
  void StartConnect(Cmd& cmd);
  void StartRead(Cmd& cmd);
  void DropPeer(const std::string& peer, const char* code, const std::string& msg);
  void FailConnect(Peer* p, const char* code, const std::string& msg);
  void FailConn(Conn* c, const char* code, const std::string& msg);
  void OnEvent(Conn* c, uint32_t events);
  bool OnReadable(Conn* c);
  bool OnHeader(Conn* c);
  void Pump(Conn* c);
  bool SendHello(Conn* c);
  bool FlushOut(Conn* c);
  void SetInterest(Conn* c, bool out);
  void ReqDone(Req* r, const char* code, const std::string& msg);
  void Settle(Batch* b, const char* code, const std::string& msg);
  void Sweep(int64_t now);
  int NextTimeout(int64_t now);

  TransportCounters* counters_;
  PostFn post_;
  int sockbuf_;
  int epoll_fd_ = -1, event_fd_ = -1;
  std::thread thread_;
  bool stopped_ = false;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Cmd> cmds_;

  // client thread only
  std::unordered_map<std::string, std::unique_ptr<Peer>> peers_;
  std::vector<std::unique_ptr<Peer>> graveyard_;  // dropped peers, freed after the current epoll round
  std::unordered_map<Batch*, std::unique_ptr<Batch>> batches_;
  std::set<std::pair<int64_t, Batch*>> deadlines_;
  std::vector<uint8_t> scratch_;
  uint64_t next_req_ = 1;
};

}  // namespace kvf
