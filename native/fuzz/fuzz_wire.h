// What both tcp fuzzers share: a deadline-bounded loopback connection that writes and reads at once (so neither
// side can block on a full socket buffer), a frame splitter for byte streams, the HELLO a real reader sends, and
// the failure exit that libFuzzer records as a crash with the input that caused it.
//
// The handshake follows tcpwire::kVersion: version 2 sends the peer secret itself in HELLO; version 3 answers the
// server's CHALLENGE (type 7, a 32-byte nonce) with HMAC-SHA256(secret, "kvfabric-tcp-hello/3" || nonce || id).
#pragma once
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../src/tcp_wire.h"

namespace kvf::fuzz {

inline constexpr uint16_t kChallenge = 7;  // version 3: the server's first frame, payload = nonce
inline constexpr size_t kNonceBytes = 32;
inline constexpr char kHelloContext[] = "kvfabric-tcp-hello/3";  // 20 bytes, no terminator on the wire
inline constexpr bool kChallenged = tcpwire::kVersion >= 3;
inline constexpr int64_t kDeadlineMs = 10000;  // per exchange; a server this slow on loopback is hung

[[noreturn]] inline void Fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "fuzz: ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
  std::abort();
}

inline int64_t MonoMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// HELLO's payload: u16 id length, id, then the secret (v2) or the HMAC over the challenge nonce (v3).
inline std::vector<uint8_t> HelloPayload(const std::string& id, const uint8_t* secret, const uint8_t* nonce) {
  std::vector<uint8_t> p(2);
  uint16_t n = uint16_t(id.size());
  std::memcpy(p.data(), &n, 2);
  p.insert(p.end(), id.begin(), id.end());
  if constexpr (kChallenged) {
    std::vector<uint8_t> msg(kHelloContext, kHelloContext + sizeof kHelloContext - 1);
    msg.insert(msg.end(), nonce, nonce + kNonceBytes);
    msg.insert(msg.end(), id.begin(), id.end());
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    if (!HMAC(EVP_sha256(), secret, int(tcpwire::kSecretBytes), msg.data(), msg.size(), mac, &mac_len))
      Fail("HMAC-SHA256 failed");
    p.insert(p.end(), mac, mac + mac_len);
  } else {
    p.insert(p.end(), secret, secret + tcpwire::kSecretBytes);
  }
  return p;
}

inline void AppendFrame(std::vector<uint8_t>* out, const tcpwire::Header& h, const void* payload, size_t n) {
  const uint8_t* hb = reinterpret_cast<const uint8_t*>(&h);
  out->insert(out->end(), hb, hb + sizeof h);
  if (n) out->insert(out->end(), static_cast<const uint8_t*>(payload), static_cast<const uint8_t*>(payload) + n);
}

struct Frame {
  tcpwire::Header h;
  size_t payload;  // offset of the payload in the stream
};

// The complete frames at the start of `s` (a trailing partial frame is left out); `*used` = bytes they span.
inline std::vector<Frame> SplitFrames(const std::vector<uint8_t>& s, size_t* used = nullptr) {
  std::vector<Frame> out;
  size_t pos = 0;
  while (s.size() - pos >= sizeof(tcpwire::Header)) {
    Frame f;
    std::memcpy(&f.h, s.data() + pos, sizeof f.h);
    if (f.h.length > s.size() - pos - sizeof f.h) break;
    f.payload = pos + sizeof f.h;
    pos = f.payload + f.h.length;
    out.push_back(f);
  }
  if (used) *used = pos;
  return out;
}

// One nonblocking loopback connection; every call gives up at the deadline set when it was made.
class Conn {
 public:
  explicit Conn(int fd) : fd_(fd), deadline_(MonoMs() + kDeadlineMs) {
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  static Conn Dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0) Fail("socket: %s", std::strerror(errno));
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      // A signal (libFuzzer's timers) may interrupt a blocking connect: the connection goes on by itself; wait
      // for it and ask how it ended.
      int err = errno;
      if (err == EINTR) {
        pollfd p{fd, POLLOUT, 0};
        while (poll(&p, 1, kDeadlineMs) < 0 && errno == EINTR) {
        }
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      }
      if (err != 0) Fail("connect to 127.0.0.1:%d: %s", port, std::strerror(err));
    }
    return Conn(fd);
  }
  Conn(Conn&& o) noexcept : in(std::move(o.in)), eof(o.eof), fd_(o.fd_), deadline_(o.deadline_) { o.fd_ = -1; }
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }

  // Writes `n` bytes in pieces of at most `chunk` while reading whatever comes back. False once the other side
  // stopped taking bytes (reset or closed); a write that blocks past the deadline is a hang.
  bool Send(const uint8_t* p, size_t n, size_t chunk = SIZE_MAX) {
    while (n > 0) {
      if (!Wait(POLLOUT)) Fail("could not write for %lld ms", (long long)kDeadlineMs);
      ssize_t w = send(fd_, p, std::min(n, chunk), MSG_NOSIGNAL);
      if (w < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (w <= 0) return false;
      p += w, n -= size_t(w);
    }
    return true;
  }
  bool Send(const std::vector<uint8_t>& b, size_t chunk = SIZE_MAX) { return Send(b.data(), b.size(), chunk); }
  void ShutdownWrite() { shutdown(fd_, SHUT_WR); }

  // Reads until `done(in)` holds or the other side closes (eof). A deadline passing first is a hang.
  template <typename Done>
  void ReadUntil(Done done, const char* what) {
    while (!eof && !done(in))
      if (!Wait(0)) Fail("%s: nothing for %lld ms (%zu bytes read)", what, (long long)kDeadlineMs, in.size());
  }
  void ReadToEof(const char* what) {
    ReadUntil([](const std::vector<uint8_t>&) { return false; }, what);
  }
  // Waits at most `ms` for input (read into `in`). A deadline passing while polling is a hang.
  void Poll(int ms) {
    if (MonoMs() >= deadline_) Fail("connection still open after %lld ms", (long long)kDeadlineMs);
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, ms) > 0) Drain();
  }

  std::vector<uint8_t> in;  // every byte read so far
  bool eof = false;         // the other side closed (or reset) the connection

 private:
  // Polls for `ev` (plus input, which is always drained into `in`). False at the deadline.
  bool Wait(short ev) {
    for (;;) {
      int64_t left = deadline_ - MonoMs();
      if (left <= 0) return false;
      pollfd p{fd_, short(POLLIN | ev), 0};
      if (poll(&p, 1, int(left)) < 0 && errno != EINTR) Fail("poll: %s", std::strerror(errno));
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) Drain();
      if ((p.revents & ev) || eof || (ev == 0 && p.revents)) return true;
    }
  }
  void Drain() {
    uint8_t buf[64 << 10];
    for (;;) {
      ssize_t r = recv(fd_, buf, sizeof buf, 0);
      if (r > 0) {
        in.insert(in.end(), buf, buf + r);
        continue;
      }
      if (r == 0 || (errno != EAGAIN && errno != EINTR)) eof = true;
      return;
    }
  }

  int fd_;
  int64_t deadline_;
};

}  // namespace kvf::fuzz
