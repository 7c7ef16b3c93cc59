// The tcp transport's HELLO proof (tcp_wire.h): HMAC-SHA256 keyed by the reader's secret over the context string,
// the server's nonce and the reader's id. OpenSSL's HMAC comes from the Node.js binary the addon is loaded into.
#pragma once
#include <cstdint>
#include <string>
#include "tcp_wire.h"

namespace kvf::tcpwire {

void HelloProof(const uint8_t* secret, const uint8_t* nonce, const std::string& peer, uint8_t out[kProofBytes]);

// Fills `out` with `n` bytes from the kernel's CSPRNG; false only if it can not (never on Linux >= 3.17).
bool RandomBytes(uint8_t* out, size_t n);

}  // namespace kvf::tcpwire
