// The plain C++ helpers of memory.h (no N-API calls), kept apart from pool.cc so that programs linking the
// transports without node (the fuzzers in native/fuzz/) need nothing else.
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "memory.h"

namespace kvf {

std::string ErrnoString(int err) {
  char buf[256];
  // GNU strerror_r returns the message pointer (which may or may not be buf).
  return std::string(strerror_r(err, buf, sizeof buf));
}

Mapping::~Mapping() {
  if (base_ != nullptr) munmap(base_, map_length_);
  if (fd_ >= 0) close(fd_);
}

}  // namespace kvf
