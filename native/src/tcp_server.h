// Serving half of the tcp transport: one epoll thread that authenticates connections (peer id + secret issued
// by acceptPeer) and answers READ frames straight from pool memory with writev, if a live grant of that peer
// covers every range. Plain C++ (no N-API): the ObjectWrap in tcp_transport.cc owns it.
//
// Pages outlive the bytes on the wire: an answer is checked when its request arrives but written later, straight
// from pool memory, so every queued answer holds a reference on its grant. RemoveGrant only ends the grant's claim
// (later requests are refused); its completion is posted when the last answer under it has been written (or
// dropped with its connection), and only then may the node unpin and reuse the pages. A reader that stops taking
// answers is disconnected after `stall_ms`, so it cannot hold pages forever.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tcp_wire.h"
#include "transport.h"

namespace kvf {

class TcpServer {
 public:
  using EventFn = std::function<void(Completion)>;
  struct Options {
    int sockbuf = 0;        // SO_SNDBUF/SO_RCVBUF, 0: kernel autotuning
    int64_t stall_ms = 0;   // a connection with answers queued and no write progress this long is closed
  };
  TcpServer(MemoryRef mem, TransportCounters* counters, EventFn on_event);
  ~TcpServer();

  // Binds and starts the thread. Returns "" or an error message.
  std::string Start(const std::string& host, int port, const Options& opts);
  int port() const { return port_; }

  void AddPeer(const std::string& peer, const uint8_t* secret);
  void DropPeer(const std::string& peer);  // forgets its secret and grants' owner, closes its connections
  void AddGrant(const GrantId& id, const std::string& peer, std::vector<tcpwire::WireDesc> ranges,
                int64_t expires_ms);
  // Refuses reads under the grant from now on; posts Completion{id = op} once no answer under it is queued.
  void RemoveGrant(const GrantId& id, uint64_t op);
  void Stop();  // idempotent; joins the thread and closes every socket (dropping every queued answer)

 private:
  struct Conn;
  struct Resp;
  struct Grant {
    std::string peer;
    std::vector<tcpwire::WireDesc> ranges;  // sorted by offset
    int64_t expires_ms;
    // guarded by mu_:
    uint64_t answers = 0;    // queued answers reading these ranges
    uint64_t remove_op = 0;  // != 0: removed; posted when `answers` reaches zero
  };
  friend struct AnswerRef;
  void Run();
  void Accept();
  void PauseAccept(int err, int64_t now);
  void OnReadable(Conn* c);
  bool OnFrame(Conn* c, const tcpwire::Header& h, const uint8_t* payload);
  bool OnHello(Conn* c, const uint8_t* payload, uint64_t len);
  void OnRead(Conn* c, const tcpwire::Header& h, const uint8_t* payload);
  std::shared_ptr<Grant> CheckGrant(const std::string& peer, const GrantId& grant, const tcpwire::WireDesc* d,
                                    uint32_t n, std::string* why);
  void DropAnswer(Grant* g);
  void Enqueue(Conn* c, std::unique_ptr<Resp> resp);
  void QueueError(Conn* c, uint64_t req, uint16_t code, const std::string& msg);
  bool Flush(Conn* c);
  void UpdateInterest(Conn* c);
  void Sweep(int64_t now);
  void Refuse(const std::string& peer, const GrantId* grant, const std::string& msg);
  void Post(Completion c) { on_event_(std::move(c)); }

  MemoryRef mem_;
  TransportCounters* counters_;
  EventFn on_event_;
  Options opts_;
  int listen_fd_ = -1, epoll_fd_ = -1, event_fd_ = -1, port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool stopped_ = false;

  std::mutex mu_;  // guards secrets_, grants_ (and every Grant's answers/remove_op), drops_
  std::unordered_map<std::string, std::string> secrets_;
  std::unordered_map<GrantId, std::shared_ptr<Grant>, GrantIdHash> grants_;
  std::vector<std::string> drops_;

  // server thread only
  std::unordered_map<Conn*, std::unique_ptr<Conn>> conns_;
  std::unordered_map<std::string, int> conns_per_peer_;  // authenticated connections
  size_t unauthed_ = 0;
  int64_t accept_resume_ms_ = 0;  // != 0: accepting is paused until then
  int64_t accept_backoff_ms_ = 0;
};

}  // namespace kvf
