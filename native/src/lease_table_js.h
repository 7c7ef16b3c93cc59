// The lease table behind a JS LeaseTable object (lease_table_js.cc), for native code that creates, consumes and
// releases leases off the JS thread (the engines' command rings).
#pragma once
#include <napi.h>

#include "lease_table.h"

namespace kvf {

// The table of a LeaseTable created by this addon, or nullptr for anything else or a closed one. JS thread only;
// the object must be kept alive (referenced) while the table is used: it lives, with its index, until finalized.
LeaseTable* UnwrapLeaseTable(Napi::Value value);

}  // namespace kvf
