// PendingUpdates: see pending_updates.h.
#include "pending_updates.h"

#include <algorithm>
#include <tuple>

namespace kvf {

void PendingUpdates::Note(uint32_t ns, const uint8_t* packed, uint32_t hash_len, uint32_t count, int8_t update,
                          uint8_t tier, Counts* counts) {
  if (update == kRemove) tier = 0;
  for (uint32_t i = 0; i < count; i++) NoteOne(ns, packed + static_cast<size_t>(i) * hash_len, hash_len, update, tier, counts);
}

void PendingUpdates::NoteOne(uint32_t ns, const uint8_t* hash, uint32_t len, int8_t update, uint8_t tier,
                             Counts* counts) {
  int32_t id = keys_.Find(ns, hash, len);
  if (id == KeyTable::kNone) {
    if (keys_.size() >= max_) {
      counts->dropped++;
      return;
    }
    id = keys_.Add(ns, hash, len);
    if (static_cast<size_t>(id) >= updates_.size()) {
      updates_.resize(static_cast<size_t>(id) + 1);
      tiers_.resize(static_cast<size_t>(id) + 1);
    }
    updates_[id] = update;
    tiers_[id] = tier;
    counts->added++;
    return;
  }
  int8_t& old = updates_[id];
  if (update == kRemove) {
    if (old == kRemove) {
      counts->repeated++;
    } else if (old == kInsert) {
      keys_.Remove(id);  // never announced: the metaserver's view is right as it is
      counts->netted++;
    } else {
      old = kRemove;  // a moved block the metaserver may hold: it must hear of the remove
      tiers_[id] = 0;
      counts->replaced++;
    }
    return;
  }
  if (old == kRemove) {
    old = kMove;  // back before the remove went out: the metaserver may hold it, with an older tier
    tiers_[id] = tier;
    counts->replaced++;
    return;
  }
  // an insert stays an insert (never sent), a move a move; the latest tier is the one to send
  if (tiers_[id] == tier) {
    counts->repeated++;
  } else {
    tiers_[id] = tier;
    counts->replaced++;
  }
}

std::vector<PendingUpdates::Group> PendingUpdates::Take() {
  // Ids sorted by (namespace, kind, tier, hash length), then one packed list per run of equal keys.
  std::vector<int32_t> ids;
  ids.reserve(keys_.size());
  for (uint32_t id = 0; id < keys_.IdBound(); id++)
    if (keys_.IsLive(static_cast<int32_t>(id))) ids.push_back(static_cast<int32_t>(id));
  auto key = [this](int32_t id) {
    return std::make_tuple(keys_.Tag(id), updates_[id] == kRemove, tiers_[id], keys_.KeyLength(id));
  };
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    auto ka = key(a), kb = key(b);
    return ka < kb || (ka == kb && a < b);  // within a group, in id order
  });
  std::vector<Group> out;
  for (size_t i = 0; i < ids.size();) {
    auto k = key(ids[i]);
    size_t j = i;
    while (j < ids.size() && key(ids[j]) == k) j++;
    Group g{std::get<0>(k), std::get<1>(k), std::get<2>(k), std::get<3>(k), {}};
    g.packed.resize((j - i) * g.hash_len);
    for (size_t n = i; n < j; n++)
      std::copy_n(keys_.Key(ids[n]), g.hash_len, g.packed.data() + (n - i) * g.hash_len);
    out.push_back(std::move(g));
    i = j;
  }
  keys_ = KeyTable();
  updates_.clear();
  tiers_.clear();
  return out;
}

}  // namespace kvf
