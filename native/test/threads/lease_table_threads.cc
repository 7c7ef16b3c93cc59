// The lease table under threads (native/test/lease-table-threads.test.ts builds this with ThreadSanitizer): four
// threads create (Create and CreateForPrefix), consume and release leases on one table while one moves the clock,
// sweeps and drops owners and another evicts every unpinned block and seals it again. A consumer must always get
// slots that are live and pinned (the lease's pins may not go before the load's pin is in place), and at the end no
// pin may be left and the counters must add up. Bounded: each worker runs a fixed number of operations.
#include <atomic>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "lease_table.h"

using kvf::BlockIndex;
using kvf::LeaseTable;

namespace {

constexpr int kBlocks = 64;
constexpr int kWorkers = 4;
constexpr int kOpsPerWorker = 20000;

void Key(int i, uint8_t* out) {
  std::memset(out, 0, 8);
  out[6] = static_cast<uint8_t>(i >> 8);
  out[7] = static_cast<uint8_t>(i);
}

void Seal(BlockIndex& index, int i) {
  std::lock_guard<std::mutex> lock(index.mu());
  uint8_t key[8];
  Key(i, key);
  int32_t s = index.SlotForShard(0, key, 8, 1, 0, 4096, BlockIndex::kLocal);
  if (s == BlockIndex::kNil) return;
  index.Assign(s, 0, static_cast<uint64_t>(i) * 4096);
  index.MarkShardWritten(s, 0);
}

}  // namespace

int main() {
  BlockIndex index(kBlocks);
  for (int i = 0; i < kBlocks; i++) Seal(index, i);
  LeaseTable table(index, 5);
  std::atomic<int> running{kWorkers};
  std::atomic<uint64_t> now{0}, loads{0}, bad{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWorkers; w++) {
    threads.emplace_back([&, w] {
      std::mt19937 rng(w + 1);
      std::vector<std::string> ids;
      uint32_t owner = w % 2;
      for (int op = 0; op < kOpsPerWorker; op++) {
        int what = static_cast<int>(rng() % 10);
        if (what < 4 || ids.empty()) {
          uint8_t packed[8 * 4];
          int start = static_cast<int>(rng() % (kBlocks - 4));
          for (int k = 0; k < 4; k++) Key(start + k, packed + 8 * k);
          uint64_t expires = 0;
          std::string id;
          if (rng() % 2 == 0) {
            uint32_t hits = 0;
            id = table.CreateForPrefix(owner, 0, packed, 8, 4, 2, now, &expires, &hits);
          } else {
            std::vector<int32_t> slots(4);
            {
              std::lock_guard<std::mutex> lock(index.mu());
              slots.resize(index.Prefix(0, packed, 8, 4, slots.data()));
            }
            id = table.Create(owner, 0, slots.data(), static_cast<uint32_t>(slots.size()), 2, now, &expires);
          }
          if (!id.empty()) ids.push_back(id);  // empty: no hit, or a slot was evicted between Prefix and Create
        } else if (what < 8) {
          const std::string& id = ids[rng() % ids.size()];
          std::vector<int32_t> out;
          std::string message;
          LeaseTable::Status st = table.Consume(id.data(), static_cast<uint32_t>(id.size()), owner, 0, rng() % 2,
                                                rng() % 5, now, &out, &message);
          if (st == LeaseTable::Status::kOk) {
            std::lock_guard<std::mutex> lock(index.mu());
            for (int32_t s : out) {
              if (!index.IsLive(s) || index.Pins(s) <= 0) {
                bad++;
              } else {
                index.Unpin(s);
              }
            }
            loads++;
          }
        } else if (what < 9) {
          const std::string& id = ids[rng() % ids.size()];
          std::string message;
          table.Release(id.data(), static_cast<uint32_t>(id.size()), owner, now, &message);
        } else {
          ids.clear();
        }
        if (ids.size() > 64) ids.erase(ids.begin(), ids.begin() + 32);
      }
      running--;
    });
  }
  threads.emplace_back([&] {  // the clock, sweeps and engines that go away
    std::mt19937 rng(99);
    while (running > 0) {
      now++;
      table.Sweep(now);
      if (rng() % 50 == 0) table.DropOwner(rng() % 2);
      std::this_thread::yield();
    }
  });
  threads.emplace_back([&] {  // eviction of whatever is unpinned, and saves that bring it back
    std::mt19937 rng(7);
    while (running > 0) {
      uint64_t pages[1];
      {
        std::lock_guard<std::mutex> lock(index.mu());
        int32_t victim = index.Victim();
        if (victim != BlockIndex::kNil) index.Evict(victim, pages);
      }
      Seal(index, static_cast<int>(rng() % kBlocks));
    }
  });
  for (std::thread& t : threads) t.join();
  table.Clear();
  LeaseTable::Counters c = table.GetCounters();
  uint64_t pinned = index.GetStats().pinned;
  std::printf("loads=%llu bad=%llu pinned=%llu created=%llu consumed=%llu expired=%llu released=%llu\n",
              static_cast<unsigned long long>(loads), static_cast<unsigned long long>(bad),
              static_cast<unsigned long long>(pinned), static_cast<unsigned long long>(c.created),
              static_cast<unsigned long long>(c.consumed), static_cast<unsigned long long>(c.expired),
              static_cast<unsigned long long>(c.released));
  bool ok = bad == 0 && pinned == 0 && table.Size() == 0 && c.created == c.consumed + c.expired + c.released;
  return ok ? 0 : 1;
}
