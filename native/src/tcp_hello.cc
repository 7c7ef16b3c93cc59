#include "tcp_hello.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>

#include <cerrno>

namespace kvf::tcpwire {

void HelloProof(const uint8_t* secret, const uint8_t* nonce, const std::string& peer, uint8_t out[kProofBytes]) {
  std::string msg(kHelloContext);
  msg.append(reinterpret_cast<const char*>(nonce), kNonceBytes);
  msg += peer;
  unsigned int len = kProofBytes;
  HMAC(EVP_sha256(), secret, int(kSecretBytes), reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out,
       &len);
}

bool RandomBytes(uint8_t* out, size_t n) {
  while (n > 0) {
    ssize_t got = getrandom(out, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    out += got;
    n -= size_t(got);
  }
  return true;
}

}  // namespace kvf::tcpwire
