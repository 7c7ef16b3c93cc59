// Serving half of the tcp transport: one epoll thread that authenticates connections (peer id + secret issued
// by acceptPeer) and answers READ frames straight from pool memory with writev, if a live grant of that peer
// covers every range. Plain C++ (no N-API): the ObjectWrap in tcp_transport.cc owns it.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
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
  TcpServer(MemoryRef mem, TransportCounters* counters, EventFn on_event);
  ~TcpServer();

  // Binds and starts the thread. Returns "" or an error message.
  std::string Start(const std::string& host, int port, int sockbuf);
  int port() const { return port_; }

  void AddPeer(const std::string& peer, const uint8_t* secret);
  void DropPeer(const std::string& peer);  // forgets its secret and grants' owner, closes its connections
  void AddGrant(uint64_t id, const std::string& peer, std::vector<tcpwire::WireDesc> ranges, int64_t expires_ms);
  void RemoveGrant(uint64_t id);
  void Stop();  // idempotent; joins the thread and closes every socket

 private:
  struct Conn;
  struct Grant {
    std::string peer;
    std::vector<tcpwire::WireDesc> ranges;  // sorted by offset
    int64_t expires_ms;
  };
  void Run();
  void Accept();
  void OnReadable(Conn* c);
  bool OnFrame(Conn* c, const tcpwire::Header& h, const uint8_t* payload);
  bool OnHello(Conn* c, const uint8_t* payload, uint64_t len);
  void OnRead(Conn* c, const tcpwire::Header& h, const uint8_t* payload);
  std::string CheckGrant(const std::string& peer, uint64_t grant, const tcpwire::WireDesc* d, uint32_t n);
  void QueueError(Conn* c, uint64_t req, uint16_t code, const std::string& msg);
  bool Flush(Conn* c);
  void UpdateInterest(Conn* c);
  void CloseConn(Conn* c);
  void Refuse(const std::string& peer, uint64_t grant, const std::string& msg);

  MemoryRef mem_;
  TransportCounters* counters_;
  EventFn on_event_;
  int listen_fd_ = -1, epoll_fd_ = -1, event_fd_ = -1, port_ = 0, sockbuf_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool stopped_ = false;

  std::mutex mu_;  // guards secrets_, grants_, drops_
  std::unordered_map<std::string, std::string> secrets_;
  std::unordered_map<uint64_t, Grant> grants_;
  std::vector<std::string> drops_;

  std::unordered_map<Conn*, std::unique_ptr<Conn>> conns_;  // server thread only
};

}  // namespace kvf
