// Leases in native memory (lease_table.h). The table's mutex guards the maps; pins and unpins happen after it is
// dropped, under the index lock. Two rules keep a lease's blocks pinned without a gap:
// - Create pins before the lease is visible, so nothing can end (and unpin) a lease whose pins are not there yet.
// - Consume hands out slots whose load pin it takes only after dropping mu_. Until then the lease counts the
//   consumer as `loading`; a lease that ends meanwhile keeps its pins (parked in draining_) until the last such
//   consumer has pinned, so a slot never drops to zero pins between the lease and the load.
#include "lease_table.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <utility>

namespace kvf {

namespace {

using Lock = std::lock_guard<std::mutex>;

// base64url (no padding) of kIdBytes * 3 / 4 = 12 random bytes from the kernel's CSPRNG.
std::string NewId() {
  uint8_t raw[12];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("lease id: getrandom failed");
    }
    got += static_cast<size_t>(n);
  }
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string id;
  id.reserve(LeaseTable::kIdBytes);
  for (size_t i = 0; i < sizeof raw; i += 3) {
    uint32_t v = uint32_t{raw[i]} << 16 | uint32_t{raw[i + 1]} << 8 | raw[i + 2];
    for (int shift = 18; shift >= 0; shift -= 6) id.push_back(kAlphabet[(v >> shift) & 63]);
  }
  return id;
}

// The id as JSON.stringify writes it (what the TypeScript table's messages did).
std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out + "\"";
}

}  // namespace

LeaseTable::LeaseTable(BlockIndex& index, uint64_t ttl_ms) : index_(index), ttl_ms_(ttl_ms) {}

LeaseTable::~LeaseTable() { Clear(); }

std::string LeaseTable::Create(uint32_t owner, uint32_t ns, const int32_t* slots, uint32_t count, uint32_t ranks,
                               uint64_t now_ms, uint64_t* expires_at_ms) {
  Lease lease{owner, ns, ranks, 0, now_ms + ttl_ms_, std::vector<int32_t>(slots, slots + count),
              std::vector<uint8_t>(ranks, 0), 0};
  {
    Lock lock(index_.mu());
    for (uint32_t i = 0; i < count; i++) {
      if (!index_.IsLive(slots[i])) return std::string();  // a stale slot: no lease, nothing pinned
    }
    for (uint32_t i = 0; i < count; i++) index_.Pin(slots[i]);
  }
  *expires_at_ms = lease.expires_at_ms;
  return Insert(std::move(lease));
}

std::string LeaseTable::CreateForPrefix(uint32_t owner, uint32_t ns, const uint8_t* packed, uint32_t hash_len,
                                        uint32_t count, uint32_t ranks, uint64_t now_ms, uint64_t* expires_at_ms,
                                        uint32_t* hits) {
  Lease lease{owner, ns, ranks, 0, now_ms + ttl_ms_, std::vector<int32_t>(count), std::vector<uint8_t>(ranks, 0), 0};
  {
    Lock lock(index_.mu());
    *hits = index_.Prefix(ns, packed, hash_len, count, lease.slots.data());
    for (uint32_t i = 0; i < *hits; i++) index_.Pin(lease.slots[i]);
  }
  *expires_at_ms = 0;
  if (*hits == 0) return std::string();
  lease.slots.resize(*hits);
  *expires_at_ms = lease.expires_at_ms;
  return Insert(std::move(lease));
}

std::string LeaseTable::Insert(Lease lease) {
  Lock lock(mu_);
  std::string id = NewId();
  while (live_.count(id) != 0 || draining_.count(id) != 0 || ended_.count(id) != 0) id = NewId();
  live_.emplace(id, std::move(lease));
  counters_.created++;
  return id;
}

LeaseTable::Status LeaseTable::Consume(const char* id_chars, uint32_t id_len, uint32_t owner, uint32_t ns,
                                       uint32_t rank, uint32_t count, uint64_t now_ms,
                                       std::vector<int32_t>* slots_out, std::string* message) {
  std::string id(id_chars, id_len);
  std::vector<int32_t> unpin;  // an expired lease's pins
  Status status = Status::kOk;
  {
    Lock lock(mu_);
    auto it = live_.find(id);
    if (it == live_.end()) return Missing(id, message);
    Lease& lease = it->second;
    if (lease.owner != owner) {
      *message = "lease " + id + ": belongs to another engine";
      return Status::kForeign;
    }
    if (lease.expires_at_ms <= now_ms) {
      EndLocked(it, Ended::kExpired, &unpin);
      *message = "lease " + id + ": expired";
      status = Status::kExpired;
    } else if (lease.ns != ns) {
      *message = "lease " + id + ": belongs to another namespace";
      return Status::kForeign;
    } else if (rank >= lease.ranks) {
      *message = "lease " + id + ": tp_rank " + std::to_string(rank) + " is not one of its " +
                 std::to_string(lease.ranks) + " ranks";
      return Status::kForeign;
    } else if (lease.consumed[rank] != 0) {
      *message = "lease " + id + ": already loaded by tp_rank " + std::to_string(rank);
      return Status::kConsumed;
    } else if (count > lease.slots.size()) {
      *message = "block_ids: expected at most " + std::to_string(lease.slots.size()) + " ids (the lease's hit), got " +
                 std::to_string(count);
      return Status::kInvalid;
    } else {
      slots_out->assign(lease.slots.begin(), lease.slots.begin() + count);
      lease.consumed[rank] = 1;
      lease.consumed_count++;
      lease.loading++;  // whoever ends it (this call included) leaves its pins until the load's pin is in place
      if (lease.consumed_count == lease.ranks) EndLocked(it, Ended::kConsumed, &unpin);
    }
  }
  if (status != Status::kOk) {
    UnpinAll(unpin);
    return status;
  }
  {
    Lock lock(index_.mu());
    for (int32_t slot : *slots_out) index_.Pin(slot);
  }
  Loaded(id);
  return Status::kOk;
}

void LeaseTable::Loaded(const std::string& id) {
  std::vector<int32_t> unpin;
  {
    Lock lock(mu_);
    auto it = live_.find(id);
    if (it != live_.end()) {
      it->second.loading--;
      return;
    }
    auto d = draining_.find(id);
    if (d == draining_.end()) return;
    if (--d->second.loading == 0) {
      unpin = std::move(d->second.slots);
      draining_.erase(d);
    }
  }
  UnpinAll(unpin);
}

LeaseTable::Status LeaseTable::Release(const char* id_chars, uint32_t id_len, uint32_t owner, uint64_t now_ms,
                                       std::string* message) {
  std::string id(id_chars, id_len);
  std::vector<int32_t> unpin;
  Status status = Status::kOk;
  {
    Lock lock(mu_);
    auto it = live_.find(id);
    if (it == live_.end()) return Missing(id, message);
    if (it->second.owner != owner) {
      *message = "lease " + id + ": belongs to another engine";
      return Status::kForeign;
    }
    if (it->second.expires_at_ms <= now_ms) {
      *message = "lease " + id + ": expired";
      status = Status::kExpired;
    }
    EndLocked(it, status == Status::kOk ? Ended::kReleased : Ended::kExpired, &unpin);
  }
  UnpinAll(unpin);
  return status;
}

uint32_t LeaseTable::Sweep(uint64_t now_ms) {
  std::vector<int32_t> unpin;
  uint32_t n = 0;
  {
    Lock lock(mu_);
    for (auto it = live_.begin(); it != live_.end();) {
      auto next = std::next(it);
      if (it->second.expires_at_ms <= now_ms) {
        EndLocked(it, Ended::kExpired, &unpin);
        n++;
      }
      it = next;
    }
  }
  UnpinAll(unpin);
  return n;
}

uint32_t LeaseTable::DropOwner(uint32_t owner) {
  std::vector<int32_t> unpin;
  uint32_t n = 0;
  {
    Lock lock(mu_);
    for (auto it = live_.begin(); it != live_.end();) {
      auto next = std::next(it);
      if (it->second.owner == owner) {
        EndLocked(it, Ended::kReleased, &unpin);
        n++;
      }
      it = next;
    }
  }
  UnpinAll(unpin);
  return n;
}

void LeaseTable::Clear() {
  std::vector<int32_t> unpin;
  {
    Lock lock(mu_);
    while (!live_.empty()) EndLocked(live_.begin(), Ended::kReleased, &unpin);
  }
  UnpinAll(unpin);
}

uint32_t LeaseTable::Size() const {
  Lock lock(mu_);
  return static_cast<uint32_t>(live_.size());
}

LeaseTable::Counters LeaseTable::GetCounters() const {
  Lock lock(mu_);
  return counters_;
}

void LeaseTable::EndLocked(std::unordered_map<std::string, Lease>::iterator it, Ended why,
                           std::vector<int32_t>* unpin) {
  switch (why) {
    case Ended::kExpired: counters_.expired++; break;
    case Ended::kConsumed: counters_.consumed++; break;
    case Ended::kReleased: counters_.released++; break;
  }
  if (ended_.emplace(it->first, why).second) {
    ended_order_.push_back(it->first);
    if (ended_order_.size() > kTombstones) {
      ended_.erase(ended_order_.front());
      ended_order_.pop_front();
    }
  }
  if (it->second.loading > 0) {
    draining_.emplace(it->first, std::move(it->second));  // the last loader in flight drops its pins (Loaded)
  } else {
    unpin->insert(unpin->end(), it->second.slots.begin(), it->second.slots.end());
  }
  live_.erase(it);
}

LeaseTable::Status LeaseTable::Missing(const std::string& id, std::string* message) const {
  auto it = ended_.find(id);
  Ended why = it == ended_.end() ? Ended::kReleased : it->second;
  if (it != ended_.end() && why == Ended::kExpired) {
    *message = "lease " + id + ": expired";
    return Status::kExpired;
  }
  if (it != ended_.end() && why == Ended::kConsumed) {
    *message = "lease " + id + ": already loaded by every rank";
    return Status::kConsumed;
  }
  *message = "lease_id: no such lease " + Quoted(id) + (it != ended_.end() ? " (released)" : "");
  return Status::kUnknown;
}

void LeaseTable::UnpinAll(const std::vector<int32_t>& slots) {
  if (slots.empty()) return;
  Lock lock(index_.mu());
  for (int32_t slot : slots) index_.Unpin(slot);
}

}  // namespace kvf
