// Bus-error guard for copies that touch engine memory. An engine region is a file the engine shares with the node;
// if its owner truncates it while a copy runs, touching the lost pages raises SIGBUS, whose default action kills
// the whole node (every tenant's cache on the host). Copies run inside RunGuarded(): a SIGBUS on that thread jumps
// back out of the copy, and the caller fails that one batch with an error instead.
//
//   InstallFaultGuard();                      // once, before the first guarded copy (idempotent, thread-safe)
//   uintptr_t addr = 0;
//   bool ok = RunGuarded([&] { std::memcpy(dst, src, n); }, &addr);  // false: SIGBUS at `addr`
//
// The guarded function must not own anything with a destructor (the jump skips destructors): plain memcpy loops.
// A SIGBUS outside a guarded copy goes to the handler that was installed before (by default: the process dies).
#pragma once
#include <csetjmp>
#include <cstdint>

namespace kvf {

void InstallFaultGuard();

namespace fault_guard {
// The thread's jump target while it runs a guarded copy (nullptr otherwise), and where the last fault hit.
sigjmp_buf*& CurrentJump();
uintptr_t& LastFaultAddress();
// After a jump: unblocks SIGBUS on this thread (the handler runs with it blocked when the kernel defers it).
void Recovered();
}  // namespace fault_guard

// Runs fn(); false (with the faulting address in *fault_addr) when a SIGBUS interrupted it.
template <typename Fn>
bool RunGuarded(Fn&& fn, uintptr_t* fault_addr) {
  sigjmp_buf jump;
  sigjmp_buf*& slot = fault_guard::CurrentJump();
  sigjmp_buf* outer = slot;
  // savemask 0: no sigprocmask system call per copy; Recovered() restores the mask on the rare faulting path.
  if (sigsetjmp(jump, 0) != 0) {
    slot = outer;
    fault_guard::Recovered();
    *fault_addr = fault_guard::LastFaultAddress();
    return false;
  }
  slot = &jump;
  fn();
  slot = outer;
  return true;
}

}  // namespace kvf
